//! Which desktop notifications a status change deserves: each cause is said once, never a storm.
//!
//! A *cause* is one thing the user must know about (the IdP session ended, Linear failed with
//! `invalid_grant`, Figma expires without a way to renew, a personal Linear token found in Claude
//! Desktop). Each snapshot yields the set of causes
//! present; only causes not already announced produce an alert, and a cause that clears and comes
//! back within [`QUIET_PERIOD`] stays quiet (a flapping server must not flap the desktop). When
//! several causes appear at once they become one alert naming them all. Pure logic over the
//! snapshot, unit-tested here; `notify.rs` shows the alerts.

use std::collections::BTreeMap;

use ema_core::personal::remedy::client_name;
use ema_core::personal::scan::{CredentialClass, Finding};
use ema_core::status::{ConnectorState, IdpSessionState, StatusSnapshot};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::presenter::{clock, fix_in_tray};

/// A cause that cleared and came back within this period is not announced again.
pub const QUIET_PERIOD: Duration = Duration::hours(1);
/// More new causes than this in one snapshot are merged into a single alert.
const MAX_SEPARATE: usize = 2;

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub summary: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cause {
    key: String,
    summary: String,
    body: String,
}

/// The causes present in `s`, in connector order, with times in the time zone `offset`.
fn causes(s: &StatusSnapshot, now: OffsetDateTime, offset: UtcOffset) -> Vec<Cause> {
    let mut out = Vec::new();
    match s.idp.state {
        IdpSessionState::Expired | IdpSessionState::StepUpRequired => out.push(Cause {
            key: "sign-in-needed".into(),
            summary: if s.idp.state == IdpSessionState::StepUpRequired {
                "Sign in again to confirm it's you".into()
            } else {
                "Sign in to keep your connectors".into()
            },
            body: match &s.idp.last_error {
                Some(e) => format!("{} {}", e.message, fix_in_tray(e)),
                None => format!("Your sign-in at {} has ended. Open EMA and sign in again.", s.idp.issuer),
            },
        }),
        _ => {}
    }
    for c in &s.connectors {
        let cause = match c.state {
            ConnectorState::Error => c.error.as_ref().map(|e| Cause {
                key: format!("failed:{}:{}", c.id, e.code_str()),
                summary: format!("{} is not connected", c.display_name),
                body: format!("{} {}", e.message, fix_in_tray(e)),
            }),
            ConnectorState::Expired if s.idp.state != IdpSessionState::SignedOut => Some(Cause {
                key: format!("expired:{}", c.id),
                summary: format!("{} has expired", c.display_name),
                body: c
                    .renewal_error
                    .as_ref()
                    .map(|e| format!("Renewal failed: {} {}", e.message, fix_in_tray(e)))
                    .unwrap_or_else(|| "Open EMA and refresh, or sign in again.".into()),
            }),
            ConnectorState::ExpiringSoon if c.renewal_error.is_some() || !s.idp.renewable => {
                let until = c.expires_at.map(|e| clock(e, now, offset)).unwrap_or_default();
                Some(Cause {
                    key: format!("expiring:{}", c.id),
                    summary: format!("{} stops working at {until}", c.display_name),
                    body: match &c.renewal_error {
                        Some(e) => format!("It cannot be renewed: {} {}", e.message, fix_in_tray(e)),
                        None => "Your IdP gave no way to renew it: sign in again before then.".into(),
                    },
                })
            }
            _ => None,
        };
        out.extend(cause);
    }
    out
}

/// One cause per flagged personal connection: a new finding is news, the same one on every
/// rescan is not (its key is the entry and the credential's fingerprint).
fn personal_causes(s: &StatusSnapshot, flagged: &[Finding]) -> Vec<Cause> {
    flagged
        .iter()
        .map(|f| {
            let id = f.connector.as_deref().unwrap_or("");
            let name = s.connectors.iter().find(|c| c.id == id).map_or(id, |c| c.display_name.as_str());
            let what = match f.class {
                CredentialClass::PersonalOAuth { .. } => "sign-in",
                _ => "token",
            };
            let credential =
                f.fingerprint.as_ref().map_or_else(|| f.class.code().to_string(), |fp| fp.as_str().to_string());
            Cause {
                key: format!("personal:{}:{credential}", f.id),
                summary: format!("Personal {name} {what} in {}", client_name(f.client)),
                body: format!(
                    "Your company requires {name} to go through its sign-in. Open EMA to replace or remove this \
                     connection."
                ),
            }
        })
        .collect()
}

/// Remembers which causes were announced and when.
#[derive(Debug, Default)]
pub struct Alerts {
    /// Cause key → when it was last announced.
    announced: BTreeMap<String, OffsetDateTime>,
}

impl Alerts {
    /// The alerts that `s` (seen at `now`) deserves, given everything announced before; times in
    /// the alerts are in the time zone `offset`.
    /// `flagged` are the personal-account findings flagged by the last scan.
    pub fn update(
        &mut self,
        s: &StatusSnapshot,
        flagged: &[Finding],
        now: OffsetDateTime,
        offset: UtcOffset,
    ) -> Vec<Alert> {
        let mut present = causes(s, now, offset);
        present.extend(personal_causes(s, flagged));
        // Forget causes that cleared long enough ago to be news again if they come back.
        self.announced.retain(|k, at| present.iter().any(|c| &c.key == k) || now - *at < QUIET_PERIOD);
        let fresh: Vec<Cause> = present.into_iter().filter(|c| !self.announced.contains_key(&c.key)).collect();
        for c in &fresh {
            self.announced.insert(c.key.clone(), now);
        }
        if fresh.len() > MAX_SEPARATE {
            let names: Vec<&str> = fresh.iter().map(|c| c.summary.as_str()).collect();
            return vec![Alert {
                summary: format!("{} problems need your attention", fresh.len()),
                body: format!("{}. Open EMA for the details and the fix.", names.join("; ")),
            }];
        }
        fresh.into_iter().map(|c| Alert { summary: c.summary, body: c.body }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{self as fixtures, now, snapshot};
    use ema_core::status::{ConnectorStatus, StatusError};

    fn error(code: &str) -> StatusError {
        let (parsed, oauth_error) = ema_core::status::ErrorCode::parse(code);
        StatusError {
            code: parsed,
            oauth_error,
            message: format!("{code} happened."),
            fix: "Do the fix.".into(),
            fix_action: None,
            at: now(),
        }
    }

    /// A connector whose token expires in 4 minutes.
    fn connector(name: &str, state: ConnectorState) -> ConnectorStatus {
        fixtures::connector(name, state, 4)
    }

    fn failed(name: &str, code: &str) -> ConnectorStatus {
        let mut c = connector(name, ConnectorState::Error);
        c.error = Some(error(code));
        c
    }

    #[test]
    fn a_failure_is_announced_once_with_its_message_and_fix() {
        let mut alerts = Alerts::default();
        let s = snapshot(IdpSessionState::Active, vec![failed("Linear", "invalid-grant")]);
        assert_eq!(
            alerts.update(&s, &[], now(), UtcOffset::UTC),
            vec![Alert {
                summary: "Linear is not connected".into(),
                body: "invalid-grant happened. Do the fix.".into()
            }]
        );
        // The same cause in every later snapshot: silence.
        for minute in 1..10 {
            assert!(alerts.update(&s, &[], now() + Duration::minutes(minute), UtcOffset::UTC).is_empty());
        }
        // A different cause for the same connector is news.
        let s = snapshot(IdpSessionState::Active, vec![failed("Linear", "mcp-unauthorized")]);
        assert_eq!(alerts.update(&s, &[], now() + Duration::minutes(11), UtcOffset::UTC).len(), 1);
    }

    #[test]
    fn each_new_personal_connection_is_announced_once() {
        use ema_core::personal::scan::Client;
        let s = snapshot(IdpSessionState::Active, vec![fixtures::connector("Linear", ConnectorState::Active, 52)]);
        let first = fixtures::flagged_finding("aaaa1111", "linear", Client::ClaudeDesktop, "lin_api_CANARY1");
        let mut alerts = Alerts::default();
        let out = alerts.update(&s, std::slice::from_ref(&first), now(), UtcOffset::UTC);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "Personal Linear token in Claude Desktop");
        assert!(out[0].body.contains("replace or remove"), "{}", out[0].body);
        assert!(!format!("{out:?}").contains("CANARY"), "no secret in an alert");
        // The same finding on every rescan: quiet. A second one: news.
        assert!(alerts.update(&s, std::slice::from_ref(&first), now(), UtcOffset::UTC).is_empty());
        let second = fixtures::flagged_finding("bbbb2222", "linear", Client::Cursor, "lin_api_CANARY2");
        let out = alerts.update(&s, &[first, second], now(), UtcOffset::UTC);
        assert_eq!(out.iter().map(|a| a.summary.as_str()).collect::<Vec<_>>(), ["Personal Linear token in Cursor"]);
    }

    /// Every flagged finding of the scan fixture home (ema-core's), as notifications: none of
    /// the secrets planted there may be in one.
    #[test]
    fn notifications_about_the_fixture_home_carry_no_planted_secret() {
        use ema_core::config::{ConfigSource, Policy};
        use ema_core::personal::scan::{Catalog, CompanyIdentity, ScanLimits, ScanRoots, scan};
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core/tests/fixtures/scan");
        let policy = Policy::load(ConfigSource::Explicit(fixtures.join("policy.json"))).unwrap();
        let report = scan(
            &ScanRoots::under_home(fixtures.join("home")),
            &Catalog::from_policy(&policy),
            &CompanyIdentity::from_policy(&policy),
            &ScanLimits::default(),
        );
        let flagged: Vec<Finding> = report.flagged().cloned().collect();
        assert!(flagged.len() >= 5, "the fixture's personal connections: {}", flagged.len());
        let s = snapshot(IdpSessionState::Active, vec![fixtures::connector("Linear", ConnectorState::Active, 52)]);
        // One at a time (not merged), so that every finding's own text is checked.
        let mut texts = String::new();
        for f in &flagged {
            for a in Alerts::default().update(&s, std::slice::from_ref(f), now(), UtcOffset::UTC) {
                texts.push_str(&format!("{}\n{}\n", a.summary, a.body));
            }
        }
        assert!(texts.matches("Personal ").count() >= flagged.len(), "{texts}");
        let canaries = std::fs::read_to_string(fixtures.join("canaries.txt")).unwrap();
        for canary in canaries.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(!texts.contains(canary), "planted secret {canary} in a notification");
        }
    }

    #[test]
    fn a_flapping_cause_stays_quiet_for_the_quiet_period() {
        let mut alerts = Alerts::default();
        let bad = snapshot(IdpSessionState::Active, vec![failed("Linear", "server-error")]);
        let good = snapshot(IdpSessionState::Active, vec![connector("Linear", ConnectorState::Active)]);
        assert_eq!(alerts.update(&bad, &[], now(), UtcOffset::UTC).len(), 1);
        assert!(alerts.update(&good, &[], now() + Duration::minutes(1), UtcOffset::UTC).is_empty());
        assert!(alerts.update(&bad, &[], now() + Duration::minutes(2), UtcOffset::UTC).is_empty());
        assert!(alerts.update(&good, &[], now() + Duration::minutes(3), UtcOffset::UTC).is_empty());
        let later = now() + QUIET_PERIOD + Duration::minutes(5);
        assert!(alerts.update(&good, &[], later, UtcOffset::UTC).is_empty());
        assert_eq!(alerts.update(&bad, &[], later + Duration::seconds(1), UtcOffset::UTC).len(), 1);
    }

    #[test]
    fn many_new_causes_become_one_alert() {
        let mut alerts = Alerts::default();
        let s = snapshot(
            IdpSessionState::Active,
            vec![failed("Linear", "x"), failed("Asana", "x"), failed("Figma", "x"), failed("Canva", "x")],
        );
        let out = alerts.update(&s, &[], now(), UtcOffset::UTC);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "4 problems need your attention");
        assert!(out[0].body.contains("Linear is not connected; Asana is not connected"), "{}", out[0].body);
        assert!(alerts.update(&s, &[], now(), UtcOffset::UTC).is_empty());
    }

    #[test]
    fn expiring_without_renewal_is_announced_but_expiring_with_renewal_is_not() {
        let mut alerts = Alerts::default();
        let renewing = snapshot(IdpSessionState::Active, vec![connector("Figma", ConnectorState::ExpiringSoon)]);
        assert!(alerts.update(&renewing, &[], now(), UtcOffset::UTC).is_empty());
        let mut figma = connector("Figma", ConnectorState::ExpiringSoon);
        figma.renewal_error = Some(error("idp-unreachable"));
        let stuck = snapshot(IdpSessionState::Unreachable, vec![figma]);
        let out = alerts.update(&stuck, &[], now(), UtcOffset::UTC);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "Figma stops working at 08:04");
        assert!(out[0].body.contains("idp-unreachable happened."), "{}", out[0].body);
        // The IdP gave no refresh token: the same warning, with the reason.
        let mut alerts = Alerts::default();
        let mut s = snapshot(IdpSessionState::Active, vec![connector("Figma", ConnectorState::ExpiringSoon)]);
        s.idp.renewable = false;
        assert!(alerts.update(&s, &[], now(), UtcOffset::UTC)[0].body.contains("no way to renew"));
    }

    #[test]
    fn an_ended_sign_in_is_one_alert_and_a_signed_out_app_says_nothing() {
        let mut alerts = Alerts::default();
        let signed_out = snapshot(IdpSessionState::SignedOut, vec![connector("Linear", ConnectorState::Expired)]);
        assert!(alerts.update(&signed_out, &[], now(), UtcOffset::UTC).is_empty());
        let ended = snapshot(IdpSessionState::Expired, vec![connector("Linear", ConnectorState::NeedsSignIn)]);
        let out = alerts.update(&ended, &[], now(), UtcOffset::UTC);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "Sign in to keep your connectors");
    }

    #[test]
    fn a_step_up_asks_the_user_to_confirm_it_is_them_once() {
        let mut alerts = Alerts::default();
        let s = snapshot(IdpSessionState::StepUpRequired, vec![connector("Linear", ConnectorState::StepUpRequired)]);
        let out = alerts.update(&s, &[], now(), UtcOffset::UTC);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].summary, "Sign in again to confirm it's you");
        assert!(alerts.update(&s, &[], now(), UtcOffset::UTC).is_empty(), "told once, not on every update");
    }
}
