//! First-run onboarding, shared by the tray's welcome window and `ema login`: whether this is
//! the first run, the live list of connectors being connected with its one-line summary, and
//! which old connections to offer to migrate.
//!
//! Why in the core: the window and the terminal must tell the same story ("6 connectors ready",
//! the same migration offers), so the decisions live here and the two front ends only render.
//!
//! "First run" means no onboarding marker in the app's data directory
//! (`~/.local/share/ema/onboarded.json` on Linux): it is written when the user finishes or
//! leaves onboarding after signing in, so a second start skips it and deleting the app's stored
//! state brings it back.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::atomic_file::write_atomically;
use crate::personal::remedy::{Action, Remedy, client_name};
use crate::personal::scan::{Catalog, CredentialClass, Finding};
use crate::status::{ConnectorState, ConnectorStatus, ErrorCode, FailedLeg, Leg, ResponseKind, StatusSnapshot};

/// Where the onboarding marker lives for this user.
pub fn marker_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("ema").join("onboarded.json"))
}

/// What the marker records (for the help desk; its presence is what counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// RFC 3339, UTC.
    pub completed_at: String,
    pub organization: String,
    /// `window` or `cli`.
    pub via: String,
}

/// Whether onboarding is still to do (no marker at `path`).
pub fn is_first_run(path: &Path) -> bool {
    !path.exists()
}

/// Records that onboarding is done, atomically (a crash leaves no half-written marker).
pub fn mark_done(path: &Path, organization: &str, via: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let marker = Marker {
        completed_at: crate::status::now_rfc3339(),
        organization: organization.to_string(),
        via: via.to_string(),
    };
    write_atomically(path, &serde_json::to_vec_pretty(&marker).map_err(io::Error::other)?)
}

/// Where a connector is in the first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for sign-in, or the exchange and grant are in flight.
    Connecting,
    /// A working token.
    Ready,
    /// The IdP does not assign it to this user (not an error).
    NotEntitled,
    /// It failed; `reason` says why in plain words.
    Failed,
}

/// One connector in the live list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressRow {
    pub id: String,
    pub display_name: String,
    pub phase: Phase,
    /// Why it failed, in plain words ("Linear's authorization server refused access").
    pub reason: Option<String>,
    /// The engine's own message, for whoever helps.
    pub detail: Option<String>,
    pub fix: Option<String>,
}

/// The live list and whether every connector has settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub rows: Vec<ProgressRow>,
    /// No connector is still connecting.
    pub settled: bool,
    pub ready: usize,
    pub failed: usize,
    pub not_entitled: usize,
    /// "6 connectors ready", "5 connectors ready, 1 needs help", "Connecting 3 of 7...".
    pub summary: String,
}

fn phase(c: &ConnectorStatus) -> Phase {
    match c.state {
        ConnectorState::NeedsSignIn | ConnectorState::Connecting => Phase::Connecting,
        ConnectorState::Active | ConnectorState::ExpiringSoon => Phase::Ready,
        ConnectorState::NotEntitled => Phase::NotEntitled,
        ConnectorState::Expired | ConnectorState::Error | ConnectorState::StepUpRequired => Phase::Failed,
    }
}

/// A failure in the words of someone who just signed in, from its stable code
/// (docs/status-schema.md); the engine's message stays beside it as the detail.
pub fn plain_reason(name: &str, code: &ErrorCode, oauth_error: Option<&str>) -> String {
    let refused = |words: String| match oauth_error {
        Some(e) => format!("{words} ({e})"),
        None => words,
    };
    match code {
        // The exchange happens at the IdP too: the company's sign-in is what could not be reached.
        ErrorCode::Response(Leg::Idp | Leg::IdpDiscovery | Leg::TokenExchange, _) if code.is_unreachable() => {
            "your company sign-in could not be reached (network, VPN or an outage)".to_string()
        }
        _ if code.is_unreachable() => format!("{name} could not be reached (network, VPN or an outage)"),
        ErrorCode::Response(Leg::ConnectorGrant, ResponseKind::OAuth) => {
            refused(format!("{name}'s authorization server refused access"))
        }
        ErrorCode::Response(Leg::ConnectorGrant, _)
        | ErrorCode::GrantTokenType
        | ErrorCode::GrantLifetimeTooShort
        | ErrorCode::ClientAuthKey => format!("{name}'s authorization server did not give a usable token"),
        ErrorCode::Response(Leg::TokenExchange, ResponseKind::OAuth) => {
            refused(format!("your IdP did not give access to {name}"))
        }
        ErrorCode::Response(Leg::TokenExchange, _) => {
            format!("your IdP did not answer the request for {name} as expected")
        }
        ErrorCode::StepUpRequired => format!("{name} needs you to sign in again to confirm it's you"),
        ErrorCode::Discovery(_) | ErrorCode::AsPinMismatch => {
            format!("{name}'s sign-in settings could not be read or are not the expected ones")
        }
        ErrorCode::McpUnauthorized => format!("{name}'s server did not accept the company sign-in"),
        ErrorCode::McpTimeout | ErrorCode::McpFailed => format!("{name}'s server did not answer as expected"),
        _ if code.leg() == Some(FailedLeg::SignIn) => "the sign-in at your IdP did not go through".to_string(),
        _ => format!("{name} could not be set up"),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The live list for `snapshot`.
pub fn progress(snapshot: &StatusSnapshot) -> Progress {
    let rows: Vec<ProgressRow> = snapshot
        .connectors
        .iter()
        .map(|c| {
            let phase = phase(c);
            let error = c.error.as_ref().filter(|_| phase == Phase::Failed);
            ProgressRow {
                id: c.id.clone(),
                display_name: c.display_name.clone(),
                phase,
                reason: error.map(|e| plain_reason(&c.display_name, &e.code, e.oauth_error.as_deref())),
                detail: error.map(|e| e.message.clone()),
                fix: error.map(|e| e.fix.clone()),
            }
        })
        .collect();
    let count = |p: Phase| rows.iter().filter(|r| r.phase == p).count();
    let (ready, failed, not_entitled, connecting) =
        (count(Phase::Ready), count(Phase::Failed), count(Phase::NotEntitled), count(Phase::Connecting));
    let settled = connecting == 0;
    let summary = if !settled {
        format!("Connecting {} of {}...", ready + failed + not_entitled, rows.len())
    } else if failed == 0 {
        format!("{} ready", plural(ready, "connector", "connectors"))
    } else {
        format!("{} ready, {} help", plural(ready, "connector", "connectors"), plural(failed, "needs", "need"))
    };
    Progress { rows, settled, ready, failed, not_entitled, summary }
}

/// An old connection the IdP now provides, and what to do with it.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationOffer {
    pub finding: Finding,
    /// Replace when the client has a managed form (Claude Code, VS Code), else remove.
    pub action: Action,
    pub connector_name: String,
    pub client_name: String,
    /// "Replace your personal Linear token in Claude Code by the company connection".
    pub description: String,
}

/// The findings to offer to migrate: a per-user credential (a static token or a personal OAuth
/// grant) for a connector that the IdP now provides to this user (it is ready), with the remedy
/// the client allows. Company-managed entries, helpers the scan cannot see into and connectors
/// not provided are left alone.
pub fn migration_offers(
    findings: &[Finding],
    snapshot: &StatusSnapshot,
    remedy: &Remedy,
    catalog: &Catalog,
) -> Vec<MigrationOffer> {
    findings
        .iter()
        .filter(|f| matches!(f.class, CredentialClass::StaticToken { .. } | CredentialClass::PersonalOAuth { .. }))
        .filter_map(|f| {
            let id = f.connector.as_deref()?;
            let connector = snapshot.connectors.iter().find(|c| c.id == id && phase(c) == Phase::Ready)?;
            let (can_remove, can_replace) = remedy.options(f, catalog);
            let action = if can_replace {
                Action::Replace
            } else if can_remove {
                Action::Remove
            } else {
                return None;
            };
            let what = match f.class {
                CredentialClass::PersonalOAuth { .. } => "personal sign-in",
                _ => "personal token",
            };
            let client = client_name(f.client);
            let name = &connector.display_name;
            let description = match action {
                Action::Replace => format!("Replace your {what} for {name} in {client} by the company connection"),
                Action::Remove => {
                    format!("Remove your {what} for {name} from {client} (the company connection replaces it)")
                }
            };
            Some(MigrationOffer {
                finding: f.clone(),
                action,
                connector_name: name.clone(),
                client_name: client.to_string(),
                description,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{IdpSessionState, IdpStatus, StatusError};

    fn connector(id: &str, state: ConnectorState) -> ConnectorStatus {
        let error = matches!(state, ConnectorState::Error).then(|| StatusError {
            code: ErrorCode::Response(Leg::ConnectorGrant, ResponseKind::OAuth),
            oauth_error: Some("invalid_grant".into()),
            message: "the authorization server refused the grant".into(),
            fix: "export diagnostics for the help desk".into(),
            fix_action: None,
            at: time::OffsetDateTime::now_utc(),
        });
        ConnectorStatus {
            id: id.into(),
            display_name: id.to_uppercase(),
            mcp_url: format!("https://{id}.example/mcp"),
            state,
            identity: None,
            authorization_server: None,
            expires_at: None,
            scopes: Vec::new(),
            last_renewal: None,
            token_fingerprint: None,
            error,
            renewal_error: None,
        }
    }

    fn snapshot(connectors: Vec<ConnectorStatus>) -> StatusSnapshot {
        StatusSnapshot {
            schema_version: 1,
            generated_at: time::OffsetDateTime::now_utc(),
            organization: "Acme".into(),
            policy_source: "test".into(),
            idp: IdpStatus {
                issuer: "https://idp.example".into(),
                state: IdpSessionState::Active,
                identity: None,
                id_token_expires_at: None,
                signed_in_at: None,
                last_error: None,
                renewable: true,
            },
            connectors,
        }
    }

    #[test]
    fn the_summary_follows_the_connectors_until_they_settle() {
        use ConnectorState::*;
        let p =
            progress(&snapshot(vec![connector("a", Active), connector("b", Connecting), connector("c", NotEntitled)]));
        assert!(!p.settled);
        assert_eq!(p.summary, "Connecting 2 of 3...");
        let p = progress(&snapshot(vec![
            connector("a", Active),
            connector("b", ExpiringSoon),
            connector("c", NotEntitled),
        ]));
        assert!(p.settled);
        assert_eq!((p.ready, p.not_entitled, p.summary.as_str()), (2, 1, "2 connectors ready"));
        let p = progress(&snapshot(vec![connector("a", Active), connector("b", Error)]));
        assert_eq!(p.summary, "1 connector ready, 1 needs help");
        let failed = &p.rows[1];
        assert_eq!(failed.phase, Phase::Failed);
        assert_eq!(failed.reason.as_deref(), Some("B's authorization server refused access (invalid_grant)"));
        assert_eq!(failed.detail.as_deref(), Some("the authorization server refused the grant"));
        assert!(failed.fix.as_deref().unwrap().contains("diagnostics"));
        assert_eq!(progress(&snapshot(vec![connector("a", NeedsSignIn)])).summary, "Connecting 0 of 1...");
    }

    #[test]
    fn the_marker_makes_the_next_run_skip_onboarding_and_its_removal_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ema").join("onboarded.json");
        assert!(is_first_run(&path));
        mark_done(&path, "Acme", "cli").unwrap();
        assert!(!is_first_run(&path));
        let m: Marker = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((m.organization.as_str(), m.via.as_str()), ("Acme", "cli"));
        std::fs::remove_file(&path).unwrap();
        assert!(is_first_run(&path));
    }

    #[test]
    fn failures_are_said_in_plain_words_by_leg() {
        let said = |code: &str| {
            let (code, oauth) = ErrorCode::parse(code);
            plain_reason("Linear", &code, oauth.as_deref())
        };
        assert_eq!(
            said("token-exchange-oauth-invalid-target"),
            "your IdP did not give access to Linear (invalid_target)"
        );
        assert_eq!(said("mcp-unauthorized"), "Linear's server did not accept the company sign-in");
        assert_eq!(said("discovery-timeout"), "Linear could not be reached (network, VPN or an outage)");
        assert_eq!(said("connector-grant-unreachable"), "Linear could not be reached (network, VPN or an outage)");
        assert_eq!(
            said("token-exchange-timeout"),
            "your company sign-in could not be reached (network, VPN or an outage)"
        );
        assert_eq!(said("idp-unreachable"), "your company sign-in could not be reached (network, VPN or an outage)");
        assert_eq!(said("idp-session-expired"), "the sign-in at your IdP did not go through");
        assert_eq!(said("something-new"), "Linear could not be set up");
    }
}
