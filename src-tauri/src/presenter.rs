//! What the tray shows for a status snapshot and the personal-account scan: which icon, the
//! tooltip, the identity line, one row per connector and a row for personal connections. Pure functions of the snapshot, so they are unit-tested without a
//! display; the shell only copies the result into the tray.

use ema_core::status::{
    ConnectorState, ConnectorStatus, FixAction, IdpSessionState, StatusError, StatusSnapshot, word_fix,
};
use time::{OffsetDateTime, UtcOffset};

/// What to do about `e`, with where the tray offers it (the menu has "Sign in..." whenever a
/// fix offers it: `StatusSnapshot::offers_sign_in`).
pub fn fix_in_tray(e: &StatusError) -> String {
    word_fix(&e.fix, e.fix_action, |action| match action {
        FixAction::SignIn => r#"choose "Sign in..." in the EMA menu"#.into(),
        FixAction::Refresh => r#"choose "Refresh now" in the EMA menu"#.into(),
    })
}

/// The four tray icons (files `icons/tray-<name>.png`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayIcon {
    SignedOut,
    Active,
    Attention,
    Error,
}

/// Everything the tray displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub icon: TrayIcon,
    pub tooltip: String,
    /// "Signed in as alice@example.com" or "Not signed in".
    pub identity: String,
    /// One line per connector: "Linear - active until 14:32".
    pub rows: Vec<String>,
    /// "2 personal connections to remove..." when the scan flagged (or wants a look at) some.
    pub personal: Option<String>,
    pub signed_in: bool,
    /// The menu offers "Sign in...": signed out, the session ended, or a fix asks for it.
    pub offer_sign_in: bool,
}

/// How many personal-account findings need the user, from the last scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersonalCounts {
    /// Personal credentials for connectors that must go through the IdP.
    pub flagged: usize,
    /// Entries a person should look at.
    pub review: usize,
}

/// A wall-clock time for the tray, in the user's time zone: "14:32", or "Tue 14:32" when not today.
/// The tray says *when* rather than "in 52 min": a relative label would need a timer to stay true
/// (tray hosts cannot ask before showing a menu), and the idle app wakes only for renewals.
pub fn clock(t: OffsetDateTime, now: OffsetDateTime, offset: UtcOffset) -> String {
    let (t, now) = (t.to_offset(offset), now.to_offset(offset));
    if t.date() == now.date() {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        let day = t.weekday().to_string();
        format!("{} {:02}:{:02}", &day[..3], t.hour(), t.minute())
    }
}

fn state_words(c: &ConnectorStatus, now: OffsetDateTime, offset: UtcOffset) -> String {
    let at = || c.expires_at.map(|e| clock(e, now, offset)).unwrap_or_default();
    match c.state {
        ConnectorState::Active if c.renewal_error.is_some() => format!("active until {} (renewal failing)", at()),
        ConnectorState::Active => format!("active until {}", at()),
        ConnectorState::ExpiringSoon => format!("expires at {}", at()),
        ConnectorState::Expired => "expired".into(),
        ConnectorState::NotEntitled => "not assigned to you".into(),
        ConnectorState::NeedsSignIn => "sign-in needed".into(),
        ConnectorState::StepUpRequired => "sign in again to confirm it's you".into(),
        ConnectorState::Connecting => "connecting...".into(),
        ConnectorState::Error => "error".into(),
    }
}

/// The tray's view of `s` at `now`, with times in the time zone `offset`.
pub fn tray_view(s: &StatusSnapshot, personal: PersonalCounts, now: OffsetDateTime, offset: UtcOffset) -> TrayView {
    let signed_in = !matches!(s.idp.state, IdpSessionState::SignedOut);
    let entitled: Vec<&ConnectorStatus> =
        s.connectors.iter().filter(|c| c.state != ConnectorState::NotEntitled).collect();
    let active =
        entitled.iter().filter(|c| matches!(c.state, ConnectorState::Active | ConnectorState::ExpiringSoon)).count();
    let failing = entitled.iter().find(|c| matches!(c.state, ConnectorState::Error | ConnectorState::Expired));
    let expiring = entitled
        .iter()
        .filter(|c| c.state == ConnectorState::ExpiringSoon || c.renewal_error.is_some())
        .filter_map(|c| c.expires_at.map(|e| (e, c)))
        .min_by_key(|(e, _)| *e);
    let icon = if !signed_in {
        TrayIcon::SignedOut
    } else if failing.is_some() {
        TrayIcon::Error
    } else if s.needs_attention() || expiring.is_some() || !s.idp.renewable || personal.flagged > 0 {
        TrayIcon::Attention
    } else {
        TrayIcon::Active
    };
    let mut tooltip = if signed_in {
        format!("{active} of {} connectors active", entitled.len())
    } else {
        "EMA - not signed in".to_string()
    };
    if let Some(c) = failing {
        tooltip.push_str(&format!(" - {} failed", c.display_name));
    } else if let Some((e, c)) = expiring {
        tooltip.push_str(&format!(" - {} expires at {}", c.display_name, clock(e, now, offset)));
    } else if s.idp.state == IdpSessionState::Unreachable {
        tooltip.push_str(" - IdP unreachable");
    } else if personal.flagged > 0 {
        tooltip.push_str(&format!(" - {}", plural(personal.flagged, "personal connection", "to remove")));
    }
    let identity = match (&s.idp.identity, signed_in) {
        (Some(i), true) => format!("Signed in as {}", i.email.as_deref().unwrap_or(&i.sub)),
        (None, true) => "Signed in".to_string(),
        _ => "Not signed in".to_string(),
    };
    let rows = s.connectors.iter().map(|c| format!("{} - {}", c.display_name, state_words(c, now, offset))).collect();
    let personal = match personal {
        PersonalCounts { flagged: 0, review: 0 } => None,
        PersonalCounts { flagged: 0, review } => Some(format!("{}...", plural(review, "connection", "to review"))),
        PersonalCounts { flagged, .. } => Some(format!("{}...", plural(flagged, "personal connection", "to remove"))),
    };
    TrayView { icon, tooltip, identity, rows, personal, signed_in, offer_sign_in: s.offers_sign_in() }
}

/// "1 personal connection to remove", "2 personal connections to remove".
fn plural(n: usize, noun: &str, rest: &str) -> String {
    format!("{n} {noun}{} {rest}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{connector, now, snapshot};
    use ema_core::status::StatusError;

    #[test]
    fn a_flagged_personal_connection_turns_green_to_attention_with_a_menu_row() {
        let s = snapshot(IdpSessionState::Active, vec![connector("Linear", ConnectorState::Active, 52)]);
        let v = tray_view(&s, PersonalCounts { flagged: 2, review: 1 }, now(), UtcOffset::UTC);
        assert_eq!(v.icon, TrayIcon::Attention);
        assert_eq!(v.tooltip, "1 of 1 connectors active - 2 personal connections to remove");
        assert_eq!(v.personal.as_deref(), Some("2 personal connections to remove..."));
        let review_only = tray_view(&s, PersonalCounts { flagged: 0, review: 1 }, now(), UtcOffset::UTC);
        assert_eq!(review_only.icon, TrayIcon::Active, "an entry to review is not an alarm");
        assert_eq!(review_only.personal.as_deref(), Some("1 connection to review..."));
        assert_eq!(tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC).personal, None);
    }

    #[test]
    fn all_active_is_green_with_a_count() {
        let s = snapshot(
            IdpSessionState::Active,
            vec![connector("Linear", ConnectorState::Active, 52), connector("Figma", ConnectorState::NotEntitled, 0)],
        );
        let v = tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC);
        assert_eq!(v.icon, TrayIcon::Active);
        assert_eq!(v.tooltip, "1 of 1 connectors active");
        assert_eq!(v.identity, "Signed in as alice@example.com");
        assert_eq!(v.rows, vec!["Linear - active until 08:52", "Figma - not assigned to you"]);
    }

    #[test]
    fn expiring_without_renewal_is_attention_and_named_in_the_tooltip() {
        let mut figma = connector("Figma", ConnectorState::ExpiringSoon, 4);
        figma.renewal_error = Some(StatusError {
            code: ema_core::status::IDP_UNREACHABLE,
            oauth_error: None,
            message: "m".into(),
            fix: "f".into(),
            fix_action: None,
            at: now(),
        });
        let s = snapshot(IdpSessionState::Unreachable, vec![connector("Linear", ConnectorState::Active, 52), figma]);
        let v = tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC);
        assert_eq!(v.icon, TrayIcon::Attention);
        assert_eq!(v.tooltip, "2 of 2 connectors active - Figma expires at 08:04");
        assert_eq!(v.rows[1], "Figma - expires at 08:04");
    }

    #[test]
    fn a_failed_connector_is_an_error_and_signed_out_is_its_own_icon() {
        let s = snapshot(
            IdpSessionState::Active,
            vec![connector("Linear", ConnectorState::Error, 0), connector("Asana", ConnectorState::Active, 30)],
        );
        let v = tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC);
        assert_eq!(v.icon, TrayIcon::Error);
        assert_eq!(v.tooltip, "1 of 2 connectors active - Linear failed");
        let s = snapshot(IdpSessionState::SignedOut, vec![connector("Linear", ConnectorState::NeedsSignIn, 0)]);
        let v = tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC);
        assert_eq!(v.icon, TrayIcon::SignedOut);
        assert_eq!(v.identity, "Not signed in");
        assert!(!v.signed_in);
        assert_eq!(v.rows, vec!["Linear - sign-in needed"]);
    }

    #[test]
    fn times_are_local_and_name_the_day_when_not_today() {
        let paris = UtcOffset::from_hms(1, 0, 0).unwrap();
        let s = snapshot(IdpSessionState::Active, vec![connector("Linear", ConnectorState::Active, 52)]);
        assert_eq!(tray_view(&s, PersonalCounts::default(), now(), paris).rows, vec!["Linear - active until 09:52"]);
        // 08:00 UTC Friday + 20 h = 04:00 UTC Saturday.
        let s = snapshot(IdpSessionState::Active, vec![connector("Linear", ConnectorState::Active, 20 * 60)]);
        assert_eq!(
            tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC).rows,
            vec!["Linear - active until Sat 04:00"]
        );
        assert_eq!(clock(now(), now(), UtcOffset::from_hms(-5, 0, 0).unwrap()), "03:00");
    }

    #[test]
    fn a_fix_names_where_the_tray_offers_it() {
        let (code, oauth_error) = ema_core::status::ErrorCode::parse("idp-oauth-invalid-grant");
        let e = StatusError {
            code,
            oauth_error,
            message: "the IdP ended the session".into(),
            fix: "sign in again".into(),
            fix_action: Some(FixAction::SignIn),
            at: now(),
        };
        assert_eq!(fix_in_tray(&e), r#"sign in again (choose "Sign in..." in the EMA menu)"#);
        let e = StatusError {
            fix_action: Some(FixAction::Refresh),
            fix: "try again; if it persists, export diagnostics".into(),
            ..e
        };
        assert_eq!(
            fix_in_tray(&e),
            r#"try again (choose "Refresh now" in the EMA menu); if it persists, export diagnostics"#
        );
        assert_eq!(
            fix_in_tray(&StatusError { fix_action: None, ..e }),
            "try again; if it persists, export diagnostics"
        );
    }

    #[test]
    fn the_menu_offers_sign_in_when_a_fix_asks_for_it_even_while_signed_in() {
        let healthy = snapshot(IdpSessionState::Active, vec![connector("Linear", ConnectorState::Active, 52)]);
        assert!(!tray_view(&healthy, PersonalCounts::default(), now(), UtcOffset::UTC).offer_sign_in);
        let ended = snapshot(IdpSessionState::Expired, vec![connector("Linear", ConnectorState::Active, 52)]);
        let v = tray_view(&ended, PersonalCounts::default(), now(), UtcOffset::UTC);
        assert!(v.signed_in && v.offer_sign_in);
        // The IdP renewed without an ID token: its state stays active, the fix says to sign in.
        let mut linear = connector("Linear", ConnectorState::Active, 52);
        linear.renewal_error = Some(StatusError {
            code: ema_core::status::ErrorCode::IdTokenNotRenewed,
            oauth_error: None,
            message: "m".into(),
            fix: "sign in again".into(),
            fix_action: Some(FixAction::SignIn),
            at: now(),
        });
        let s = snapshot(IdpSessionState::Active, vec![linear]);
        assert!(tray_view(&s, PersonalCounts::default(), now(), UtcOffset::UTC).offer_sign_in);
    }
}
