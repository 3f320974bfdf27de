//! The state shared by every route: URLs, keys, client registrations and the
//! in-memory grant stores.
//!
//! Everything lives in memory for the life of one sandbox; opaque tokens and codes
//! are stored only as SHA-256 hashes so no credential value sits in the maps.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::catalog::ConnectorDef;
use crate::jwt::SigningKeyPair;
use crate::knobs::KnobsHandle;
use crate::oauth::RegisteredClient;
use crate::users::DemoUser;

/// Clock leeway for `exp`/`iat` checks, in seconds (the MCP conformance suite uses 30 s).
pub const LEEWAY_SECS: i64 = 30;

/// Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const AUTH_CODE_TTL_SECS: i64 = 60;

/// The IdP's single registered client id.
pub const IDP_CLIENT_ID: &str = "ema-desktop";

/// One connector as hosted: its definition and our app's registration at its AS.
#[derive(Debug)]
pub struct ConnectorState {
    pub def: ConnectorDef,
    pub client: RegisteredClient,
}

/// A pending authorization code (RFC 6749 §4.1.2) with its PKCE binding (RFC 7636 §4.4).
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub user: &'static DemoUser,
    pub auth_time: i64,
    /// The authentication context class the sign-in met (OIDC Core §2 `acr`), if asked for.
    pub acr: Option<String>,
    pub expires_at: i64,
}

/// A live IdP refresh token (RFC 6749 §6).
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub user: &'static DemoUser,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub expires_at: i64,
}

/// A connector access token as the resource server knows it.
#[derive(Debug, Clone)]
pub struct ConnectorToken {
    pub connector_id: String,
    pub sub: String,
    pub email: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

/// The mutable grant stores, keyed by token hash.
#[derive(Debug, Default)]
pub struct Stores {
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub connector_tokens: HashMap<String, ConnectorToken>,
    /// `(connector id, jti)` → `exp` of ID-JAGs already redeemed.
    pub used_jtis: HashMap<(String, String), i64>,
    /// How many requests of each kind were answered with success (`refresh`, `exchange`,
    /// `grant:<connector id>`), for tests that bound a client's request rate.
    pub counts: std::collections::BTreeMap<String, u64>,
}

impl Stores {
    /// Counts one successful request of `kind`.
    pub fn count(&mut self, kind: &str) {
        *self.counts.entry(kind.to_owned()).or_default() += 1;
    }
}

impl Stores {
    /// Drops entries that can no longer matter at sandbox time `now`.
    pub fn prune(&mut self, now: i64) {
        self.codes.retain(|_, c| c.expires_at > now);
        self.refresh_tokens.retain(|_, r| r.expires_at > now);
        self.connector_tokens.retain(|_, t| t.expires_at > now);
        // A jti must be remembered while its assertion could still pass the exp check.
        self.used_jtis.retain(|_, exp| *exp + LEEWAY_SECS >= now);
    }
}

/// Shared state of one running sandbox.
#[derive(Debug)]
pub struct SandboxState {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub origin: String,
    pub knobs: KnobsHandle,
    pub key: SigningKeyPair,
    pub idp_client: RegisteredClient,
    pub connectors: BTreeMap<String, ConnectorState>,
    /// Connector ids in catalog order (the `BTreeMap` sorts them).
    pub connector_order: Vec<String>,
    /// Connectors hosted by interop peers.
    pub external: Vec<crate::catalog::ExternalConnector>,
    /// Another IdP whose ID-JAGs the connectors' ASs accept instead of ours.
    pub trusted_idp: Option<crate::catalog::TrustedIdp>,
    stores: Mutex<Stores>,
    /// Credentials issued while the `record_issued_secrets` knob is on.
    issued: Mutex<Vec<String>>,
}

impl SandboxState {
    pub fn new(
        origin: String,
        knobs: KnobsHandle,
        key: SigningKeyPair,
        idp_client: RegisteredClient,
        connectors: Vec<ConnectorState>,
        external: Vec<crate::catalog::ExternalConnector>,
        trusted_idp: Option<crate::catalog::TrustedIdp>,
    ) -> Self {
        let connector_order = connectors.iter().map(|c| c.def.id.clone()).collect();
        Self {
            origin,
            knobs,
            key,
            idp_client,
            connectors: connectors.into_iter().map(|c| (c.def.id.clone(), c)).collect(),
            connector_order,
            external,
            trusted_idp,
            stores: Mutex::new(Stores::default()),
            issued: Mutex::new(Vec::new()),
        }
    }

    /// The sandbox clock (Unix seconds, with `clock_offset_secs`).
    pub fn now(&self) -> i64 {
        self.knobs.now()
    }

    /// Notes a credential just issued, when the `record_issued_secrets` knob is on.
    pub fn issued(&self, secret: &str) {
        if self.knobs.get().record_issued_secrets {
            self.issued.lock().unwrap_or_else(PoisonError::into_inner).push(secret.to_owned());
        }
    }

    /// The credentials recorded so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.issued.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Locks the stores, pruning expired entries first.
    pub fn stores(&self) -> MutexGuard<'_, Stores> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores.prune(self.now());
        stores
    }

    /// The IdP issuer, `http://127.0.0.1:PORT/idp`.
    pub fn idp_issuer(&self) -> String {
        format!("{}/idp", self.origin)
    }

    /// The issuer of a connector's authorization server.
    pub fn as_issuer(&self, connector_id: &str) -> String {
        format!("{}/connectors/{connector_id}/as", self.origin)
    }

    /// The MCP server URL of a connector (its RFC 9728 `resource`).
    pub fn mcp_url(&self, connector_id: &str) -> String {
        format!("{}/connectors/{connector_id}/mcp", self.origin)
    }

    /// Where the protected resource metadata of a connector lives (RFC 9728 §3.1).
    pub fn resource_metadata_url(&self, connector_id: &str) -> String {
        format!("{}/.well-known/oauth-protected-resource/connectors/{connector_id}/mcp", self.origin)
    }

    /// The connector whose AS issuer is `issuer`.
    pub fn connector_by_issuer(&self, issuer: &str) -> Option<&ConnectorState> {
        let issuer = issuer.trim_end_matches('/');
        self.connectors.values().find(|c| self.as_issuer(&c.def.id) == issuer)
    }
}
