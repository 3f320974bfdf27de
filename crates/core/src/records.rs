//! What the engine keeps in the [`SecretStore`](crate::store::SecretStore) between runs.
//!
//! One JSON document per entry, versioned (`v`), so a later release can read or discard an
//! older layout instead of misreading it. Only the store ever sees these: they hold tokens.

use serde::{Deserialize, Serialize};

use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::status::{Identity, StatusError};

/// Layout version of both records.
pub const RECORD_VERSION: u32 = 1;

/// The store account of the IdP session for a policy's IdP and client.
pub fn session_account(issuer: &str, client_id: &str) -> String {
    format!("session:{issuer}#{client_id}")
}

/// The store account naming the IdP (issuer and client) of the last sign-in under the policy
/// at `policy_source`, whatever that policy says now: when it moves to another IdP, the app can
/// say why the user must sign in again and clear the other IdP's tokens (MCP SEP-2352:
/// credentials are keyed by issuer, and another issuer's are never used). Keyed by the policy's
/// place, so that two policies in use side by side (two orgs, or tests) never clear each other's.
/// No secret in it.
pub fn idp_in_use_account(policy_source: &str) -> String {
    format!("idp-in-use:{policy_source}")
}

/// What [`idp_in_use_account`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpInUse {
    pub issuer: String,
    pub client_id: String,
}

/// The store account of all connector records for a policy's IdP and client: one entry, so a
/// round of renewals costs one or two keyring writes instead of one per connector (the Secret
/// Service serialises writes and rewrites its keyring file on each).
pub fn connectors_account(issuer: &str, client_id: &str) -> String {
    format!("connectors:{issuer}#{client_id}")
}

/// Every connector's record, by connector id.
///
/// Fields added after layout 1 shipped are `#[serde(default)]`, so a record written by an
/// older release still loads (and an older release ignores them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredConnectors {
    pub v: u32,
    /// The IdP issuer whose session these records belong to (SEP-2352).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_issuer: Option<String>,
    pub records: std::collections::BTreeMap<String, StoredConnector>,
    /// The IdP session's last renewal problem, until a renewal or sign-in succeeds.
    #[serde(default)]
    pub idp_problem: Option<StoredIdpProblem>,
    /// Per connector id, the authorization server of its first successful connection (trust
    /// on first use). Not a secret, and kept across sign-out and a change of user: a later
    /// change is refused unless the policy pins the new one.
    #[serde(default)]
    pub trusted_authorization_servers: std::collections::BTreeMap<String, TrustedAuthorizationServer>,
    /// What the IdP asked of the next sign-in (RFC 9470 §3 step-up), merged over the connectors
    /// that asked, until a sign-in succeeds: kept apart from `idp_problem`, which other answers
    /// of the IdP replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<crate::oauth::StepUp>,
}

/// Why the IdP session could not be renewed last time (no secrets: codes, messages, times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdpProblem {
    /// `unreachable`, `expired` or `step_up_required`.
    pub state: crate::status::IdpSessionState,
    pub error: StatusError,
}

/// The authorization server a connector was first connected through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedAuthorizationServer {
    /// The MCP URL it was seen for: a policy that moves the connector starts afresh.
    pub mcp_url: String,
    /// The AS issuer (RFC 8414 §2 `issuer`).
    pub issuer: String,
    /// Unix seconds.
    pub first_seen: i64,
}

/// The IdP session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    pub v: u32,
    pub identity: Option<Identity>,
    pub id_token: Option<IdToken>,
    /// Unix seconds.
    pub id_token_expires_at: Option<i64>,
    pub refresh_token: Option<RefreshToken>,
    pub signed_in_at: i64,
    /// The IdP issuer that issued these tokens (SEP-2352); absent in records of earlier
    /// versions, which the account's name keys by issuer all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_issuer: Option<String>,
    /// Whether this IdP took the refresh token as the token exchange's subject when EMA last
    /// tried (ID-JAG -02 and later); absent until tried. Kept with the session, which belongs
    /// to one IdP issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_subject: Option<LearnedSubject>,
}

/// What an IdP answered to a refresh token sent as the exchange's subject, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedSubject {
    pub accepted: bool,
    /// Unix seconds.
    pub at: i64,
}

/// How a connector's last attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredOutcome {
    Active,
    NotEntitled,
    Error,
}

/// One connector's token and last outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredConnector {
    pub v: u32,
    /// The MCP URL the token is for: a policy that moves the connector invalidates it.
    pub mcp_url: String,
    /// The `sub` it was obtained for: another user's sign-in invalidates it.
    pub sub: String,
    pub outcome: StoredOutcome,
    pub authorization_server: Option<String>,
    pub access_token: Option<AccessToken>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub last_renewal: Option<i64>,
    pub error: Option<StatusError>,
    /// Why the last renewal failed while the token above stayed (cleared by a renewal that works).
    #[serde(default)]
    pub renewal_error: Option<StatusError>,
}
