//! Trust on first use of each connector's authorization server, unless the policy pins one.

use time::OffsetDateTime;

use crate::config::ConnectorConfig;
use crate::records::TrustedAuthorizationServer;

use super::{Engine, from_unix};

impl Engine {
    /// Trust on first use of a connector's authorization server: the first successful
    /// connection's AS is remembered; a policy pin overrides and replaces it.
    pub(super) fn trust_authorization_server(&self, cfg: &ConnectorConfig, issuer: &str) {
        let mut trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        let current = trusted.get(&cfg.id).filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()));
        if current.is_some_and(|t| t.issuer == issuer) {
            return;
        }
        trusted.insert(
            cfg.id.clone(),
            TrustedAuthorizationServer {
                mcp_url: cfg.mcp_url.to_string(),
                issuer: issuer.to_string(),
                first_seen: self.now().unix_timestamp(),
            },
        );
    }

    /// A connector's endpoints as its last discovery found them (for `ema doctor`'s hints).
    pub fn discovered_endpoints(&self, id: &str) -> Option<crate::discovery::ConnectorEndpoints> {
        self.discovery.last_discovered(id)
    }

    /// Which authorization server EMA trusts for a connector, and why (for `ema doctor` and the
    /// diagnostics bundle): the policy's pin, else the one of its first successful connection.
    pub fn authorization_server_trust(&self, id: &str) -> Option<AuthorizationServerTrust> {
        let cfg = self.policy.connector(id)?;
        if let Some(pin) = &cfg.authorization_server {
            return Some(AuthorizationServerTrust {
                issuer: pin.to_string(),
                source: TrustSource::Policy,
                since: None,
            });
        }
        let trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        let t = trusted.get(id).filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()))?;
        Some(AuthorizationServerTrust {
            issuer: t.issuer.clone(),
            source: TrustSource::FirstUse,
            since: from_unix(t.first_seen),
        })
    }

    /// The authorization server this connector was first connected through, when the policy
    /// does not pin one.
    pub(super) fn trusted_authorization_server(&self, cfg: &ConnectorConfig) -> Option<String> {
        let trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        trusted
            .get(&cfg.id)
            .filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()))
            .map(|t| t.issuer.clone())
    }
}

/// The authorization server EMA accepts for a connector.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuthorizationServerTrust {
    /// Its issuer (RFC 8414 §2).
    pub issuer: String,
    pub source: TrustSource,
    /// When it was first seen (trust on first use).
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}

/// Why an authorization server is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustSource {
    /// The policy pins it (`authorization_server` of the connector).
    Policy,
    /// The connector's first successful connection went through it.
    FirstUse,
}
