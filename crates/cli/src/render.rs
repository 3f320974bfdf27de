//! Human output: the status table and live progress, in plain words with fix hints.

use std::fmt::Write as _;

use ema_core::config::Policy;
use ema_core::status::{
    ConnectorState, ConnectorStatus, FixAction, IdpSessionState, StatusError, StatusSnapshot, relative, word_fix,
};
use time::OffsetDateTime;
use tokio::sync::watch;

/// The local UTC offset, read once at start-up while the process is still single-threaded
/// (the `time` crate refuses to read it later on Unix, for soundness).
static LOCAL_OFFSET: std::sync::OnceLock<Option<time::UtcOffset>> = std::sync::OnceLock::new();

/// Call first thing in `main`.
pub fn init_local_offset() {
    let _ = LOCAL_OFFSET.set(time::UtcOffset::current_local_offset().ok());
}

/// The local UTC offset read at start-up, when known.
pub fn local_offset() -> Option<time::UtcOffset> {
    LOCAL_OFFSET.get().copied().flatten()
}

/// Wall-clock time, local when known, else marked UTC.
fn hhmm(t: OffsetDateTime) -> String {
    match LOCAL_OFFSET.get().copied().flatten() {
        Some(o) => {
            let l = t.to_offset(o);
            format!("{:02}:{:02}", l.hour(), l.minute())
        }
        None => format!("{:02}:{:02} UTC", t.hour(), t.minute()),
    }
}

fn state_word(c: &ConnectorStatus) -> &'static str {
    match c.state {
        ConnectorState::NeedsSignIn => "needs sign-in",
        ConnectorState::Connecting => "connecting",
        ConnectorState::Active => "active",
        ConnectorState::ExpiringSoon => "expiring soon",
        ConnectorState::Expired => "expired",
        ConnectorState::NotEntitled => "not assigned to you",
        ConnectorState::StepUpRequired => "sign in again to confirm it's you",
        ConnectorState::Error => "error",
    }
}

fn mark(c: &ConnectorStatus) -> &'static str {
    match c.state {
        ConnectorState::Active => "✓",
        ConnectorState::NotEntitled | ConnectorState::Connecting => "-",
        ConnectorState::ExpiringSoon => "!",
        _ => "X",
    }
}

/// The command that does a fix the engine offers.
fn cli_command(action: FixAction) -> String {
    match action {
        FixAction::SignIn => "`ema login`".into(),
        FixAction::Refresh => "`ema refresh`".into(),
    }
}

/// What to do, with the command that does it.
fn fix_in_cli(e: &StatusError) -> String {
    word_fix(&e.fix, e.fix_action, cli_command)
}

/// The `ema status` table.
pub fn status_table(s: &StatusSnapshot, policy: &Policy) -> String {
    let now = s.generated_at;
    let mut out = String::new();
    let _ = writeln!(out, "{} (policy: {})", s.organization, s.policy_source);
    let who = s.idp.identity.as_ref().map(|i| i.email.clone().unwrap_or_else(|| i.sub.clone()));
    let _ = match (s.idp.state, who) {
        (IdpSessionState::SignedOut, _) => {
            writeln!(out, "  X Not signed in to {}\n    - Run `ema login`", s.idp.issuer)
        }
        (IdpSessionState::Active, Some(w)) => writeln!(out, "  ✓ Signed in to {} as {w}", s.idp.issuer),
        (IdpSessionState::Unreachable, Some(w)) => writeln!(
            out,
            "  ! Signed in to {} as {w}, but the IdP is unreachable: connectors work until their tokens expire",
            s.idp.issuer
        ),
        (IdpSessionState::Expired, w) => writeln!(
            out,
            "  X Sign-in at {} has ended{}\n    - Run `ema login`",
            s.idp.issuer,
            w.map(|w| format!(" for {w}")).unwrap_or_default()
        ),
        (IdpSessionState::StepUpRequired, _) => {
            writeln!(out, "  X {} asks you to sign in again (step-up)\n    - Run `ema login`", s.idp.issuer)
        }
        (_, None) => writeln!(out, "  ✓ Signed in to {}", s.idp.issuer),
    };
    if let Some(e) = &s.idp.last_error
        && s.idp.state != IdpSessionState::Active
    {
        let _ = writeln!(out, "    {} [{}]", e.message, e.code_str());
    }
    if s.idp.state == IdpSessionState::Active && !s.idp.renewable {
        let until = s.idp.id_token_expires_at.map(|t| format!(" at {}", hhmm(t))).unwrap_or_default();
        let _ = writeln!(
            out,
            "    ! The IdP gave no refresh token: you will have to sign in again when this sign-in ends{until}.\n    - Ask IT to allow offline_access (refresh tokens) for this app"
        );
    }
    let width = s.connectors.iter().map(|c| c.display_name.chars().count()).max().unwrap_or(0);
    let _ = writeln!(out, "\nConnectors");
    for c in &s.connectors {
        let mut line = format!("  {} {:width$}  {}", mark(c), c.display_name, state_word(c));
        if let Some(exp) = c.expires_at
            && matches!(c.state, ConnectorState::Active | ConnectorState::ExpiringSoon)
        {
            let _ = write!(line, ", expires {} ({})", relative(exp, now), hhmm(exp));
        }
        if !c.scopes.is_empty() && c.state == ConnectorState::Active {
            let _ = write!(line, "  [{}]", c.scopes.join(" "));
        }
        let _ = writeln!(out, "{line}");
        // Not being entitled is normal: one summary line below, not a problem per row.
        let problem = c
            .error
            .as_ref()
            .filter(|_| !matches!(c.state, ConnectorState::Active | ConnectorState::NotEntitled))
            .or(c.renewal_error.as_ref());
        if let Some(e) = problem {
            let works_until = match (c.renewal_error.is_some(), c.expires_at) {
                (true, Some(exp)) => format!(" - {} works until {}", c.display_name, hhmm(exp)),
                _ => String::new(),
            };
            let _ = writeln!(out, "    {} [{}]{works_until}", e.message, e.code_str());
            let _ = writeln!(out, "    - {}", fix_in_cli(e));
        }
    }
    let not_entitled: Vec<&str> = s
        .connectors
        .iter()
        .filter(|c| c.state == ConnectorState::NotEntitled)
        .map(|c| c.display_name.as_str())
        .collect();
    if !not_entitled.is_empty() {
        let help = policy.organization.help_desk.as_ref().map(|h| h.name.as_str()).unwrap_or("your IT help desk");
        let _ = writeln!(
            out,
            "\n{} not assigned to you by your organisation ({}); ask {help} if you need one.",
            if not_entitled.len() == 1 { "1 connector is" } else { "Some connectors are" },
            not_entitled.join(", ")
        );
    }
    if let Some(h) = &policy.organization.help_desk
        && s.needs_attention()
    {
        let _ = writeln!(out, "\nHelp: {} - {}", h.name, h.url);
    }
    out
}

/// The last state printed per connector, shared by [`follow_progress`] and [`catch_up`].
pub type Printed = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, ConnectorState>>>;

/// Prints each connector's transitions while a long step runs.
pub async fn follow_progress(mut rx: watch::Receiver<StatusSnapshot>, printed: Printed) {
    {
        let mut seen = printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.extend(rx.borrow().connectors.iter().map(|c| (c.id.clone(), c.state)));
    }
    while rx.changed().await.is_ok() {
        let snapshot = rx.borrow_and_update().clone();
        catch_up(&printed, &snapshot);
    }
}

/// Prints the connectors whose state changed since last printed: the watch channel keeps only
/// the latest snapshot, so a step can end before the follower saw its last change.
pub fn catch_up(printed: &Printed, snapshot: &StatusSnapshot) {
    let mut seen = printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for c in &snapshot.connectors {
        if seen.get(&c.id) != Some(&c.state) {
            seen.insert(c.id.clone(), c.state);
            if c.state != ConnectorState::NeedsSignIn {
                eprintln!("  {} {}: {}", mark(c), c.display_name, state_word(c));
            }
        }
    }
}

/// The `ema doctor` report: one line per check with its fix, like `gh auth status`.
pub fn doctor_text(d: &ema_core::diagnostics::doctor::Diagnosis) -> String {
    use ema_core::diagnostics::doctor::Outcome;
    let mut out = String::new();
    let _ = writeln!(out, "{} - diagnostics {} ({})", d.organization, d.support_id, d.generated_at);
    for c in &d.checks {
        let mark = match c.outcome {
            Outcome::Pass => "✓",
            Outcome::Warn => "!",
            Outcome::Fail => "X",
            Outcome::Skip => "-",
        };
        let _ = writeln!(out, "  {mark} {}: {} ({} ms)", c.name, c.summary, c.duration_ms);
        if let Some(fix) = &c.fix
            && c.outcome != Outcome::Pass
        {
            let _ = writeln!(out, "    - {}", word_fix(fix, c.fix_action, cli_command));
        }
        for hint in &c.hints {
            let _ = writeln!(out, "    hint: {hint}");
        }
    }
    if d.needs_attention() {
        let desk = d.help_desk.as_ref().map_or_else(|| "your help desk".to_string(), |h| h.name.clone());
        let _ = writeln!(out, "\nIf this does not help, contact {desk} and give them the support ID {}.", d.support_id);
    }
    out
}
