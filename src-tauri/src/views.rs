//! What the window renders besides the status snapshot: the welcome screens, the personal
//! connections section and the help desk, as types.
//!
//! Why types and not `json!`: a field renamed here must fail a build, not a user's window. These
//! derive `ts_rs::TS` in tests, and `protocol_types_for_the_ui_are_current` writes them into
//! tests/ui-types/protocol.d.ts, against which tsc checks ui/main.js (tests/ui-types/run.sh). They
//! carry only what the window shows, taken from the core's types here, in one place.

use ema_core::onboarding::{MigrationOffer, Phase, Progress, ProgressRow};
use ema_core::personal::remedy::Action;
use serde::{Deserialize, Serialize};

/// Where a policy is looked for, shown before there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PolicyPlaces {
    /// The managed policy IT deploys (`/etc/ema/policy.json` and its kin).
    pub managed_path: String,
    /// Where a policy the user loads is kept.
    pub user_path: Option<String>,
}

/// The welcome screens (`ToWindow::Onboarding`). Without a policy only `configured` (false) and
/// `places` mean anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct OnboardingView {
    pub configured: bool,
    pub places: PolicyPlaces,
    pub organization: Option<String>,
    /// "Okta": for "Sign in with Okta".
    pub idp_name: Option<String>,
    pub issuer: Option<String>,
    pub policy_source: Option<String>,
    pub signed_in: bool,
    /// The signed-in person's e-mail (else their `sub`).
    pub identity: Option<String>,
    pub progress: Option<ProgressView>,
    /// Whether the personal-connection scan has run (offers are meaningful).
    pub scanned: bool,
    pub offers: Vec<OfferView>,
    pub help_desk: Option<HelpDeskView>,
}

/// The live connector list while the engine connects (`ema_core::onboarding::Progress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProgressView {
    pub rows: Vec<ProgressRowView>,
    /// No connector is still connecting.
    pub settled: bool,
    /// "6 connectors ready", "5 connectors ready, 1 needs help".
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProgressRowView {
    pub id: String,
    pub display_name: String,
    /// `ema_core::onboarding::Phase` as serde writes it (checked by a test below).
    #[cfg_attr(test, ts(type = r#""connecting" | "ready" | "not-entitled" | "failed""#))]
    pub phase: Phase,
    /// Why it failed, in plain words.
    pub reason: Option<String>,
    /// The engine's own message, for whoever helps.
    pub detail: Option<String>,
}

/// A personal connection the user can move to the company one on the welcome screens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct OfferView {
    /// The finding's id, for `fix-personal`.
    pub id: String,
    #[cfg_attr(test, ts(type = r#""remove" | "replace""#))]
    pub action: Action,
    /// "Replace your personal Linear token in Claude Code by the company connection".
    pub description: String,
    pub connector_name: String,
    pub client_name: String,
    pub path: String,
    pub key_path: String,
}

/// The organisation's help desk, from the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct HelpDeskView {
    pub name: String,
    pub url: String,
}

/// What the window keeps beside the views: the help desk, and whether the tray asked for an
/// export before the page was ready (`get_extras` answers it once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Extras {
    pub help_desk: Option<HelpDeskView>,
    pub start_export: bool,
}

/// The personal connections section (`ToWindow::Personal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PersonalView {
    /// Whether a scan has finished.
    pub scanned: bool,
    /// The findings that need the user (flagged or to review).
    pub findings: Vec<PersonalFindingView>,
    /// The last change that can be undone, in words ("Removed linear in ~/.claude.json").
    pub undo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PersonalFindingView {
    pub id: String,
    /// `ema_core::personal::scan::Verdict` as serde writes it (checked by a test below).
    #[cfg_attr(test, ts(type = r#""flagged" | "review" | "ok""#))]
    pub verdict: String,
    /// The catalog connector it is for, if matched.
    pub connector: Option<String>,
    /// The entry's name in the client's configuration.
    pub server_name: Option<String>,
    /// "Claude Code".
    pub client_name: String,
    pub path: String,
    /// RFC 6901 pointer of the entry in the file; empty for a whole file.
    pub key_path: String,
    pub why: String,
    pub what_to_do: String,
    pub can_remove: bool,
    pub can_replace: bool,
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        ProgressView {
            rows: p.rows.iter().map(ProgressRowView::from).collect(),
            settled: p.settled,
            summary: p.summary.clone(),
        }
    }
}

impl From<&ProgressRow> for ProgressRowView {
    fn from(r: &ProgressRow) -> Self {
        ProgressRowView {
            id: r.id.clone(),
            display_name: r.display_name.clone(),
            phase: r.phase,
            reason: r.reason.clone(),
            detail: r.detail.clone(),
        }
    }
}

impl From<&MigrationOffer> for OfferView {
    fn from(o: &MigrationOffer) -> Self {
        OfferView {
            id: o.finding.id.clone(),
            action: o.action,
            description: o.description.clone(),
            connector_name: o.connector_name.clone(),
            client_name: o.client_name.clone(),
            path: o.finding.path.display().to_string(),
            key_path: o.finding.key_path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ema_core::personal::scan::Verdict;

    /// The hand-written TypeScript unions above say what serde writes for the core's enums.
    #[test]
    fn the_unions_written_by_hand_match_serde() {
        let words = |values: Vec<serde_json::Value>| -> Vec<String> {
            values.into_iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        let phases = [Phase::Connecting, Phase::Ready, Phase::NotEntitled, Phase::Failed]
            .map(|p| serde_json::to_value(p).unwrap())
            .to_vec();
        assert_eq!(words(phases), ["connecting", "ready", "not-entitled", "failed"]);
        let verdicts =
            [Verdict::Flagged, Verdict::Review, Verdict::Ok].map(|v| serde_json::to_value(v).unwrap()).to_vec();
        assert_eq!(words(verdicts), ["flagged", "review", "ok"]);
    }
}
