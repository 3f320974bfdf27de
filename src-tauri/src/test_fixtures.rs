//! Status snapshots for the tray's unit tests (presenter, alerts): one connector or snapshot
//! builder, so each test names only what it varies.

use ema_core::status::{
    ConnectorState, ConnectorStatus, Identity, IdpSessionState, IdpStatus, STATUS_SCHEMA_VERSION, StatusSnapshot,
};
use time::{Duration, OffsetDateTime};

/// A fixed instant: Friday 2027-01-15 08:00 UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A connector named `id` (its id lower-cased) whose token expires `minutes_left` after [`now`].
pub fn connector(id: &str, state: ConnectorState, minutes_left: i64) -> ConnectorStatus {
    ConnectorStatus {
        id: id.to_lowercase(),
        display_name: id.into(),
        mcp_url: format!("https://{id}.example/mcp"),
        state,
        identity: None,
        authorization_server: None,
        expires_at: Some(now() + Duration::minutes(minutes_left)),
        scopes: vec![],
        last_renewal: None,
        token_fingerprint: None,
        error: None,
        renewal_error: None,
    }
}

/// A snapshot at [`now`] with alice signed in (as far as `idp` says) and these connectors.
pub fn snapshot(idp: IdpSessionState, connectors: Vec<ConnectorStatus>) -> StatusSnapshot {
    StatusSnapshot {
        schema_version: STATUS_SCHEMA_VERSION,
        generated_at: now(),
        organization: "Example".into(),
        policy_source: "/etc/ema/policy.json".into(),
        idp: IdpStatus {
            issuer: "https://idp.example".into(),
            state: idp,
            identity: Some(Identity { sub: "s".into(), email: Some("alice@example.com".into()), name: None }),
            id_token_expires_at: None,
            signed_in_at: None,
            last_error: None,
            renewable: true,
        },
        connectors,
    }
}

/// A flagged personal-account finding: a static token for `connector` in `client`'s file.
pub fn flagged_finding(
    id: &str,
    connector: &str,
    client: ema_core::personal::scan::Client,
    secret: &str,
) -> ema_core::personal::scan::Finding {
    use ema_core::personal::scan::{CredentialClass, Finding, Scope, SecretLocation, Verdict};
    Finding {
        id: id.into(),
        client,
        scope: Scope::User,
        path: "/home/alice/.config/Claude/claude_desktop_config.json".into(),
        key_path: format!("/mcpServers/{connector}"),
        server_name: Some(connector.into()),
        connector: Some(connector.into()),
        matched_by: None,
        class: CredentialClass::StaticToken {
            location: SecretLocation::Env,
            name: "LINEAR_API_KEY".into(),
            value_in_file: true,
        },
        verdict: Verdict::Flagged,
        why: "A secret is written in the environment variable `LINEAR_API_KEY`.".into(),
        what_to_do: "Remove it.".into(),
        fingerprint: Some(ema_core::secret::Fingerprint::of(secret)),
        file_sha256: Some("0".repeat(64)),
    }
}
