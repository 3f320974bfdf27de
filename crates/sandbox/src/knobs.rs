//! Runtime knobs: lifetimes, latency, clock skew and injected failures.
//!
//! Tests and demos need to provoke the states the product must explain (expired
//! tokens, skewed clocks, an IdP outage, a connector that rejects grants) without
//! sleeping or editing code. The knobs live in shared state read on every request,
//! are changed from Rust through [`KnobsHandle`] and from another process through
//! `GET/POST /_sandbox/knobs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// A failure injected into one connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorFailure {
    /// The connector's AS token endpoint answers 400 `invalid_grant`.
    InvalidGrant,
    /// The connector's AS token endpoint answers 500 `server_error`.
    ServerError,
    /// The MCP endpoint answers 401 `invalid_token` even to a good token.
    McpUnauthorized,
    /// The MCP endpoint answers 503.
    McpDown,
    /// The connector's AS token endpoint answers 400 `invalid_grant` with an error description
    /// and an extra `echo` member repeating the request's assertion and client secret, as a
    /// careless server does: the product must keep neither (diagnostics canary tests).
    EchoSecrets,
    /// The connector's AS token endpoint answers 400 `invalid_grant` with an error description
    /// in notification markup: a link and bold text, as a hostile server sends to dress its words
    /// as the app's (issue 14 item 7).
    Markup,
}

/// A fault injected into the ID tokens the IdP issues at sign-in and refresh, so that client
/// tests can prove each OIDC Core §3.1.3.7 check really rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenFault {
    /// Signed with a key that is not in the JWKS.
    BadSignature,
    /// `nonce` differs from the one in the authorization request.
    WrongNonce,
    /// `aud` is another client.
    WrongAudience,
    /// `exp` is in the past.
    Expired,
}

/// All knobs. Every field has a default, so a JSON patch may name any subset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Lifetime of IdP ID tokens (OIDC Core §2 `exp`).
    pub id_token_ttl_secs: u64,
    /// Lifetime of IdP access tokens (`expires_in` of the IdP token response).
    pub idp_access_token_ttl_secs: u64,
    /// Lifetime of IdP refresh tokens (the "IdP session").
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of ID-JAGs (`expires_in` of the token exchange response).
    pub id_jag_ttl_secs: u64,
    /// Lifetime of connector access tokens (RFC 7523 grant response `expires_in`).
    pub connector_token_ttl_secs: u64,
    /// Delay added to every request except `/_sandbox/*`.
    pub latency_ms: u64,
    /// The sandbox clock is real time plus this, for everything it issues and validates
    /// (and for its `Date` header).
    pub clock_offset_secs: i64,
    /// Every `/idp/*` route answers 503.
    pub idp_down: bool,
    /// Connector id → injected failure.
    pub failing_connectors: BTreeMap<String, ConnectorFailure>,
    /// Connector ids for which token exchange demands step-up authentication.
    pub step_up_required: BTreeSet<String>,
    /// A fault in the ID tokens of the authorization-code and refresh grants.
    pub id_token_fault: Option<IdTokenFault>,
    /// Whether `offline_access` yields a refresh token (some IdPs withhold it by policy).
    pub issue_refresh_tokens: bool,
    /// Connector id → the `expires_in` its AS announces in grant responses, whatever the
    /// token's real lifetime (hostile or careless servers: `0`, `1000000000000000`).
    pub announced_expires_in: BTreeMap<String, u64>,
    /// Refresh-token grants answer without an `id_token` (OIDC Core §12.2 allows it; Okta
    /// does so for some configurations); the refresh token is still rotated.
    pub refresh_omits_id_token: bool,
    /// The token exchange accepts the IdP refresh token as its subject
    /// (`subject_token_type=urn:ietf:params:oauth:token-type:refresh_token`, ID-JAG -02 and
    /// later, Okta). Off: such requests get `invalid_request`, as an IdP of the -01 era answers.
    pub refresh_token_subject: bool,
    /// Username → connector ids the directory no longer assigns to that user (offboarding, a
    /// group change): the token exchange answers `access_denied` for them from now on.
    pub unassigned: BTreeMap<String, BTreeSet<String>>,
    /// Connector id → another connector id whose authorization server its protected-resource
    /// metadata names instead of its own (a spoofed or compromised MCP server).
    pub resource_metadata_names_as_of: BTreeMap<String, String>,
    /// The authorization response leaves out `iss` although the metadata still advertises
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §2.4: the client must refuse).
    pub authorization_response_omits_iss: bool,
    /// Keep every credential issued from now on (codes, ID, access and refresh tokens, ID-JAGs)
    /// for [`crate::Sandbox::issued_secrets`], so canary tests can search for each one. Off by
    /// default: the sandbox otherwise keeps only hashes.
    pub record_issued_secrets: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            id_token_ttl_secs: 3600,
            idp_access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            id_jag_ttl_secs: 300,
            connector_token_ttl_secs: 3600,
            latency_ms: 0,
            clock_offset_secs: 0,
            idp_down: false,
            failing_connectors: BTreeMap::new(),
            step_up_required: BTreeSet::new(),
            id_token_fault: None,
            issue_refresh_tokens: true,
            announced_expires_in: BTreeMap::new(),
            refresh_omits_id_token: false,
            refresh_token_subject: true,
            unassigned: BTreeMap::new(),
            resource_metadata_names_as_of: BTreeMap::new(),
            authorization_response_omits_iss: false,
            record_issued_secrets: false,
        }
    }
}

impl Knobs {
    /// Returns these knobs with the top-level fields of `patch` (a JSON object) replaced.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Knobs, String> {
        let serde_json::Value::Object(patch) = patch else {
            return Err("knobs patch must be a JSON object".to_owned());
        };
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let serde_json::Value::Object(fields) = &mut current {
            for (key, value) in patch {
                fields.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(current).map_err(|e| e.to_string())
    }
}

/// A cheap, cloneable handle to the live knobs of one sandbox.
#[derive(Debug, Clone, Default)]
pub struct KnobsHandle(Arc<RwLock<Knobs>>);

impl KnobsHandle {
    pub(crate) fn new(knobs: Knobs) -> Self {
        Self(Arc::new(RwLock::new(knobs)))
    }

    /// A snapshot of the current knobs.
    pub fn get(&self) -> Knobs {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces all knobs.
    pub fn set(&self, knobs: Knobs) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = knobs;
    }

    /// Changes knobs in place, e.g. `handle.update(|k| k.idp_down = true)`.
    pub fn update(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.0.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// Restores every knob to its default.
    pub fn reset(&self) {
        self.set(Knobs::default());
    }

    /// The sandbox clock: Unix seconds, real time plus `clock_offset_secs`.
    pub fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + self.get().clock_offset_secs
    }

    pub(crate) fn failure(&self, connector_id: &str) -> Option<ConnectorFailure> {
        self.get().failing_connectors.get(connector_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_named_fields_only() {
        let knobs = Knobs::default();
        let merged = knobs
            .merged(&serde_json::json!({"idp_down": true, "failing_connectors": {"linear": "mcp_down"}}))
            .expect("valid patch");
        assert!(merged.idp_down);
        assert_eq!(merged.failing_connectors["linear"], ConnectorFailure::McpDown);
        assert_eq!(merged.id_jag_ttl_secs, 300);
        assert!(knobs.merged(&serde_json::json!({"nope": 1})).is_err());
        assert!(knobs.merged(&serde_json::json!({"failing_connectors": {"x": "bad"}})).is_err());
    }
}
