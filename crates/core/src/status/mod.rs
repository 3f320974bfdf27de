//! The status model: one state machine per connector plus the IdP session, published to
//! subscribers and serialised to a documented, versioned JSON schema
//! (`docs/status-schema.md`).
//!
//! Why a snapshot type: the CLI prints it, the tray rebuilds its menu from it, diagnostics
//! export it. Every enum that reaches JSON has explicit string values (tailscale: never iota
//! for what goes to disk). Time-driven states ("expiring soon", "expired") are derived from
//! the expiry at the moment of the snapshot, and [`StatusSnapshot::next_transition`] tells a
//! shell when to look again, so nobody polls.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod code;
pub use code::{DiscoveryCode, ErrorCode, FailedLeg, IDP_UNREACHABLE, KeyringCode, Leg, ResponseKind, TransportCode};

/// Bumped on any incompatible change to the JSON below.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// Who is signed in.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// OIDC `sub` (OIDC Core §2).
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// The IdP session: the refresh token's life, as far as we can tell.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpSessionState {
    /// Never signed in, or signed out.
    SignedOut,
    /// A usable refresh token (or a still-valid ID token) is stored.
    Active,
    /// The IdP rejected the session (refresh token expired or revoked): sign in again.
    Expired,
    /// The IdP did not answer at the last renewal; stored tokens stay usable until expiry.
    Unreachable,
    /// The IdP asked for a fresher or stronger sign-in (step-up).
    StepUpRequired,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpStatus {
    pub issuer: String,
    pub state: IdpSessionState,
    pub identity: Option<Identity>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(test, ts(type = "string | null"))]
    pub id_token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(test, ts(type = "string | null"))]
    pub signed_in_at: Option<OffsetDateTime>,
    /// Why the last renewal at the IdP failed, if it did.
    #[cfg_attr(test, ts(as = "Option<StatusErrorJson>"))]
    pub last_error: Option<StatusError>,
    /// Whether the IdP gave a refresh token: without one, the session cannot be renewed
    /// silently and ends when the ID token expires.
    pub renewable: bool,
}

/// A connector's state (see `docs/status-schema.md` for the transitions).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// No IdP session: sign in first.
    NeedsSignIn,
    /// Exchange or grant in flight.
    Connecting,
    /// A valid access token, checked against the MCP server.
    Active,
    /// Valid, but expires within the warning window and the last renewal failed.
    ExpiringSoon,
    /// The token expired and could not be renewed.
    Expired,
    /// The IdP says this user is not assigned to the connector.
    NotEntitled,
    /// The IdP wants a fresher or stronger sign-in before it lets this connector through
    /// (RFC 9470 step-up), and no valid token remains: the user signs in again, once.
    StepUpRequired,
    /// Something failed; see `error`.
    Error,
}

impl ConnectorState {
    /// True when the user has to do something (sign in, fix, ask IT).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            ConnectorState::NeedsSignIn
                | ConnectorState::StepUpRequired
                | ConnectorState::Expired
                | ConnectorState::Error
                | ConnectorState::ExpiringSoon
        )
    }
}

/// A failure with a stable code, a plain message and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StatusErrorJson", from = "StatusErrorJson")]
pub struct StatusError {
    /// Written as a stable kebab-case string (e.g. `connector-grant-oauth-invalid-grant`).
    pub code: ErrorCode,
    /// The server's OAuth `error` (RFC 6749 §5.2) when the code is an OAuth refusal.
    pub oauth_error: Option<String>,
    pub message: String,
    /// What to do, in words that name no face of the product ("sign in again").
    pub fix: String,
    /// The face's own remedy for it, when it has one: the CLI names its command, the tray its
    /// menu item or button.
    pub fix_action: Option<FixAction>,
    pub at: OffsetDateTime,
}

/// A remedy each face offers in its own words and controls.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixAction {
    /// Sign in at the IdP again (`ema login`; the tray's "Sign in").
    SignIn,
    /// Connect again now (`ema refresh`; the tray's "Refresh now").
    Refresh,
}

/// `fix` with `control`, the face's own way to do `action` (`` `ema login` ``, "Sign in..."),
/// right after the action it does: before the first `; `, where a follow-up note starts ("sign in
/// again (`ema login`); ask IT to allow offline_access for this app").
pub fn word_fix(fix: &str, action: Option<FixAction>, control: impl FnOnce(FixAction) -> String) -> String {
    let Some(action) = action else { return fix.to_string() };
    let control = control(action);
    match fix.split_once("; ") {
        Some((act, note)) => format!("{act} ({control}); {note}"),
        None => format!("{fix} ({control})"),
    }
}

impl StatusError {
    /// The same error, offering `action` as its remedy.
    pub fn offering(self, action: FixAction) -> Self {
        StatusError { fix_action: Some(action), ..self }
    }

    /// The code as the schema writes it.
    pub fn code_str(&self) -> String {
        self.code.wire(self.oauth_error.as_deref())
    }
}

/// [`StatusError`] as JSON and as stored with the tokens (the UI's `StatusError`).
#[derive(Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "StatusError"))]
struct StatusErrorJson {
    code: String,
    /// Absent from records written before it existed: read from `code` then.
    #[serde(default)]
    oauth_error: Option<String>,
    message: String,
    fix: String,
    /// Absent from records written before it existed.
    #[serde(default)]
    fix_action: Option<FixAction>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(test, ts(type = "string"))]
    at: OffsetDateTime,
}

impl From<StatusError> for StatusErrorJson {
    fn from(e: StatusError) -> Self {
        StatusErrorJson {
            code: e.code_str(),
            oauth_error: e.oauth_error,
            message: e.message,
            fix: e.fix,
            fix_action: e.fix_action,
            at: e.at,
        }
    }
}

impl From<StatusErrorJson> for StatusError {
    fn from(j: StatusErrorJson) -> Self {
        let (code, from_code) = ErrorCode::parse(&j.code);
        StatusError {
            code,
            oauth_error: j.oauth_error.or(from_code),
            message: j.message,
            fix: j.fix,
            fix_action: j.fix_action,
            at: j.at,
        }
    }
}

/// One connector's status.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorStatus {
    pub id: String,
    pub display_name: String,
    pub mcp_url: String,
    pub state: ConnectorState,
    /// Whose account the token is for.
    pub identity: Option<Identity>,
    /// The authorization server issuer that issued the token.
    pub authorization_server: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(test, ts(type = "string | null"))]
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(test, ts(type = "string | null"))]
    pub last_renewal: Option<OffsetDateTime>,
    /// SHA-256 fingerprint of the access token, never the token.
    pub token_fingerprint: Option<String>,
    /// Why the connector is in `error`, `not_entitled` or `expired`.
    #[cfg_attr(test, ts(as = "Option<StatusErrorJson>"))]
    pub error: Option<StatusError>,
    /// Why the last renewal failed while the current token is still valid.
    #[cfg_attr(test, ts(as = "Option<StatusErrorJson>"))]
    pub renewal_error: Option<StatusError>,
}

/// Everything a face of the product shows.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(test, ts(type = "string"))]
    pub generated_at: OffsetDateTime,
    pub organization: String,
    /// Where the policy came from.
    pub policy_source: String,
    pub idp: IdpStatus,
    pub connectors: Vec<ConnectorStatus>,
}

impl StatusSnapshot {
    /// True when signing in again is what the user should be offered: no session, an ended one, a
    /// step-up, or a failure whose remedy is to sign in (`fix_action`), whatever the IdP's state.
    pub fn offers_sign_in(&self) -> bool {
        let asks = |e: &Option<StatusError>| e.as_ref().is_some_and(|e| e.fix_action == Some(FixAction::SignIn));
        matches!(
            self.idp.state,
            IdpSessionState::SignedOut | IdpSessionState::Expired | IdpSessionState::StepUpRequired
        ) || asks(&self.idp.last_error)
            || self.connectors.iter().any(|c| asks(&c.error) || asks(&c.renewal_error))
    }

    /// True when anything needs the user (the CLI's non-zero exit, the tray's attention icon).
    pub fn needs_attention(&self) -> bool {
        matches!(
            self.idp.state,
            IdpSessionState::SignedOut | IdpSessionState::Expired | IdpSessionState::StepUpRequired
        ) || self.connectors.iter().any(|c| c.state.needs_attention())
    }

    /// Re-derives the time-driven states at `now`: an active token past its expiry is expired;
    /// one inside the warning window whose renewal failed is expiring soon.
    pub fn derive_at(&mut self, now: OffsetDateTime, warning: time::Duration) {
        self.generated_at = now;
        for c in &mut self.connectors {
            c.state = derived_state(c, now, warning);
        }
    }

    /// The next moment a derived state changes (a shell sets one timer for it).
    pub fn next_transition(&self, warning: time::Duration) -> Option<OffsetDateTime> {
        self.connectors
            .iter()
            .filter(|c| matches!(c.state, ConnectorState::Active | ConnectorState::ExpiringSoon))
            .filter_map(|c| {
                c.expires_at.map(|e| {
                    if c.renewal_error.is_some() && c.state == ConnectorState::Active { e - warning } else { e }
                })
            })
            .filter(|t| *t > self.generated_at)
            .min()
    }
}

/// "in 52 min", "in 3 h 10 min", "2 min ago": the CLI and the tray say it the same way.
/// Time to or since `t`, for people.
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (t - now).whole_seconds();
    let (future, s) = (secs >= 0, secs.unsigned_abs());
    let text = if s < 90 {
        format!("{s} s")
    } else if s < 90 * 60 {
        format!("{} min", (s + 30) / 60)
    } else if s < 48 * 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} days", s / 86400)
    };
    if future { format!("in {text}") } else { format!("{text} ago") }
}

fn derived_state(c: &ConnectorStatus, now: OffsetDateTime, warning: time::Duration) -> ConnectorState {
    match (c.state, c.expires_at) {
        (ConnectorState::Active | ConnectorState::ExpiringSoon, Some(exp)) if exp <= now => ConnectorState::Expired,
        (ConnectorState::Active, Some(exp)) if c.renewal_error.is_some() && exp - now <= warning => {
            ConnectorState::ExpiringSoon
        }
        (s, _) => s,
    }
}

/// Now, in RFC 3339 UTC to the second (journals and reports).
pub(crate) fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(
        state: ConnectorState,
        expires_in_secs: i64,
        renewal_failed: bool,
        now: OffsetDateTime,
    ) -> ConnectorStatus {
        ConnectorStatus {
            id: "linear".into(),
            display_name: "Linear".into(),
            mcp_url: "https://mcp".into(),
            state,
            identity: None,
            authorization_server: None,
            expires_at: Some(now + time::Duration::seconds(expires_in_secs)),
            scopes: vec![],
            last_renewal: None,
            token_fingerprint: None,
            error: None,
            renewal_error: renewal_failed.then(|| StatusError {
                code: ErrorCode::InternalError,
                oauth_error: None,
                message: "m".into(),
                fix: "f".into(),
                fix_action: None,
                at: now,
            }),
        }
    }

    #[test]
    fn time_driven_states() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let w = time::Duration::minutes(10);
        assert_eq!(derived_state(&connector(ConnectorState::Active, 3600, false, now), now, w), ConnectorState::Active);
        assert_eq!(
            derived_state(&connector(ConnectorState::Active, 300, false, now), now, w),
            ConnectorState::Active,
            "renewal will handle it"
        );
        assert_eq!(
            derived_state(&connector(ConnectorState::Active, 300, true, now), now, w),
            ConnectorState::ExpiringSoon
        );
        assert_eq!(derived_state(&connector(ConnectorState::Active, -1, false, now), now, w), ConnectorState::Expired);
        assert_eq!(
            derived_state(&connector(ConnectorState::NotEntitled, -1, false, now), now, w),
            ConnectorState::NotEntitled
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let at = |s: i64| now + time::Duration::seconds(s);
        assert_eq!(relative(at(30), now), "in 30 s");
        assert_eq!(relative(at(52 * 60), now), "in 52 min");
        assert_eq!(relative(at(3 * 3600 + 600), now), "in 3 h 10 min");
        assert_eq!(relative(at(-120), now), "2 min ago");
        assert_eq!(relative(at(5 * 86400), now), "in 5 days");
    }

    #[test]
    fn a_face_names_its_control_right_after_the_action_not_after_the_note() {
        let cli = |a: FixAction| match a {
            FixAction::SignIn => "`ema login`".to_string(),
            FixAction::Refresh => "`ema refresh`".to_string(),
        };
        assert_eq!(
            word_fix("sign in again; ask IT to allow offline_access for this app", Some(FixAction::SignIn), cli),
            "sign in again (`ema login`); ask IT to allow offline_access for this app"
        );
        assert_eq!(
            word_fix("your sign-in has ended: sign in again", Some(FixAction::SignIn), cli),
            "your sign-in has ended: sign in again (`ema login`)"
        );
        assert_eq!(
            word_fix("try again; if it persists, export diagnostics for IT", Some(FixAction::Refresh), cli),
            "try again (`ema refresh`); if it persists, export diagnostics for IT"
        );
        assert_eq!(word_fix("ask IT", None, cli), "ask IT");
    }

    #[test]
    fn an_error_is_written_with_its_code_string_and_read_back_from_old_records() {
        let at = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let e = StatusError {
            code: ErrorCode::Response(Leg::ConnectorGrant, ResponseKind::OAuth),
            oauth_error: Some("invalid_grant".into()),
            message: "m".into(),
            fix: "f".into(),
            fix_action: Some(FixAction::Refresh),
            at,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "connector-grant-oauth-invalid-grant");
        assert_eq!(json["oauth_error"], "invalid_grant");
        assert_eq!(json["fix_action"], "refresh");
        assert_eq!(serde_json::from_value::<StatusError>(json.clone()).unwrap(), e);
        // A record stored before `oauth_error` existed.
        let mut old = json;
        old.as_object_mut().unwrap().remove("oauth_error");
        old.as_object_mut().unwrap().remove("fix_action");
        assert_eq!(serde_json::from_value::<StatusError>(old).unwrap(), StatusError { fix_action: None, ..e });
    }

    /// The TypeScript declarations of the snapshot, against which tsc checks the status window's
    /// script (tests/ui-types/run.sh): renaming a field here fails that check, not a user's
    /// window. `EMA_UPDATE_UI_TYPES=1 cargo test -p ema-core status_types` rewrites the file.
    #[test]
    fn status_types_for_the_ui_are_current() {
        use ts_rs::TS;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ui-types/status.d.ts");
        let declarations = [
            StatusSnapshot::decl(),
            IdpStatus::decl(),
            Identity::decl(),
            IdpSessionState::decl(),
            ConnectorStatus::decl(),
            ConnectorState::decl(),
            StatusErrorJson::decl(),
            FixAction::decl(),
        ];
        let generated = format!(
            "// Written by crates/core/src/status/mod.rs (status_types_for_the_ui_are_current); do not edit.\n\n{}\n",
            declarations.join("\n\n")
        );
        if std::env::var_os("EMA_UPDATE_UI_TYPES").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            current,
            generated,
            "{} is out of date: run `EMA_UPDATE_UI_TYPES=1 cargo test -p ema-core status_types` and fix the UI where tsc says",
            path.display()
        );
    }

    #[test]
    fn enums_serialise_to_explicit_strings() {
        assert_eq!(serde_json::to_string(&ConnectorState::NotEntitled).unwrap(), "\"not_entitled\"");
        assert_eq!(serde_json::to_string(&ConnectorState::ExpiringSoon).unwrap(), "\"expiring_soon\"");
        assert_eq!(serde_json::to_string(&IdpSessionState::StepUpRequired).unwrap(), "\"step_up_required\"");
    }
}
