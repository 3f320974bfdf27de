//! The line protocol between the tray process and its status-window process.
//!
//! A WebKit window costs two browser-engine processes and over 100 MB PSS, and destroying the
//! window is not enough to get them back: the shared web context keeps WebKitNetworkProcess alive
//! for the life of the process (measured, see docs/tray.md). So the window lives in a process of
//! its own (`ema-tray --window`), started when the user opens it and gone when they close it; the
//! idle tray never loads the browser engine.
//!
//! The two processes talk over the child's stdin and stdout, one JSON object per line: the tray
//! sends status snapshots (docs/status-schema.md) and settings as they change, the window sends
//! the user's commands and gets one reply per command. The pipe is private to the two processes
//! (no socket another user could reach) and closes when either ends: the window exits when the
//! tray does.

use serde::{Deserialize, Serialize};

use crate::views::{HelpDeskView, OnboardingView, PersonalView};

/// A command's failure as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

/// The app settings the window shows and changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AppSettings {
    /// The app starts at login (tauri-plugin-autostart).
    pub autostart: bool,
    /// The organisation's policy sets `start_at_login`: the user cannot change it.
    pub autostart_locked: bool,
    /// Desktop notifications are on.
    pub notifications: bool,
    /// The organisation's policy sets `notifications`.
    pub notifications_locked: bool,
}

/// Tray → window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ToWindow {
    /// The engine's current status snapshot.
    Status { snapshot: serde_json::Value },
    /// The current app settings.
    Settings { settings: AppSettings },
    /// The personal-account findings that need the user, with their remedies, and the change
    /// an undo would restore (`personal::Personal::window_view`).
    Personal { view: PersonalView },
    /// The organisation's help desk, from the policy.
    HelpDesk { desk: HelpDeskView },
    /// The user chose "Export diagnostics..." in the tray menu: start preparing it.
    StartExport,
    /// The prepared bundle, file by file: exactly what "Save" will write.
    ExportPreview { preview: serde_json::Value },
    /// The bundle was written here.
    ExportSaved { path: String },
    /// First-run onboarding is on: what the welcome screens show (`onboarding::view`). Sent on
    /// every change while onboarding lasts.
    Onboarding { view: Option<Box<OnboardingView>> },
    /// Raise and focus the window (the user opened it again from the tray).
    Focus,
    /// The outcome of the window's request `id`.
    Reply { id: u64, error: Option<CommandError> },
}

/// What the user asked for in the window or the tray menu; carried out by `commands::perform`.
/// Adding one is a variant here and its arm there: the window sends every command through its
/// one `request` command, and the UI's type for it (tests/ui-types/protocol.d.ts) is written
/// from this enum by `protocol_types_for_the_ui_are_current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    SignIn,
    Refresh,
    SignOut,
    SetAutostart {
        enabled: bool,
    },
    /// Remove or replace the personal connection `id` of the last scan.
    FixPersonal {
        id: String,
        #[cfg_attr(test, ts(type = r#""remove" | "replace""#))]
        action: ema_core::personal::remedy::Action,
    },
    /// Restore the file of the last fix.
    UndoPersonal,
    /// Scan the other clients' files again now.
    ScanPersonal,
    /// Run the checks and prepare the diagnostics bundle; the preview follows.
    PrepareExport,
    /// Write the prepared bundle.
    SaveExport,
    /// Load the configuration IT sent (a file path or an https URL), when there is no policy.
    LoadPolicy {
        source: String,
    },
    /// Turn desktop notifications on or off (the user's setting, unless the policy locks it).
    SetNotifications {
        enabled: bool,
    },
    /// The user finished onboarding (or left it after signing in): do not show it again.
    FinishOnboarding,
    /// Open the help desk the policy names, in the system browser (or mail client). The window
    /// names no URL: it cannot make the tray open anything else.
    OpenHelpDesk,
}

/// Window → tray.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FromWindow {
    Request { id: u64, command: Command },
}

/// One message as one line (no embedded newline: JSON escapes them).
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut line = serde_json::to_string(msg).expect("protocol messages serialise");
    line.push('\n');
    line
}

/// Longest line accepted from the other side (a status snapshot of hundreds of connectors fits).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_single_lines_that_round_trip() {
        let msgs = vec![
            ToWindow::Status { snapshot: serde_json::json!({"organization": "Acme\nCorp"}) },
            ToWindow::Settings {
                settings: AppSettings {
                    autostart: true,
                    autostart_locked: false,
                    notifications: true,
                    notifications_locked: false,
                },
            },
            ToWindow::Focus,
            ToWindow::Reply { id: 7, error: Some(CommandError { code: "c".into(), message: "m".into() }) },
        ];
        for m in msgs {
            let line = encode(&m);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(serde_json::from_str::<ToWindow>(&line).unwrap(), m);
        }
        let req = FromWindow::Request { id: 3, command: Command::SetAutostart { enabled: true } };
        let line = encode(&req);
        assert_eq!(
            line,
            "{\"type\":\"request\",\"id\":3,\"command\":{\"command\":\"set-autostart\",\"enabled\":true}}\n"
        );
        assert_eq!(serde_json::from_str::<FromWindow>(&line).unwrap(), req);
    }

    /// The TypeScript declarations the window's script is checked against (tsc, in
    /// tests/ui-types/run.sh): written from the Rust types, so renaming a field or a command here
    /// fails the UI's type check. `EMA_UPDATE_UI_TYPES=1 cargo test -p ema-tray protocol_types`
    /// rewrites the file.
    #[test]
    fn protocol_types_for_the_ui_are_current() {
        use ts_rs::TS;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui-types/protocol.d.ts");
        use crate::views::*;
        let declarations = [
            Command::decl(),
            CommandError::decl(),
            AppSettings::decl(),
            OnboardingView::decl(),
            PolicyPlaces::decl(),
            ProgressView::decl(),
            ProgressRowView::decl(),
            OfferView::decl(),
            HelpDeskView::decl(),
            Extras::decl(),
            PersonalView::decl(),
            PersonalFindingView::decl(),
        ];
        let generated = format!(
            "// Written by src-tauri/src/window_protocol.rs (protocol_types_for_the_ui_are_current); do not edit.\n\n{}\n",
            declarations.join("\n\n")
        );
        if std::env::var_os("EMA_UPDATE_UI_TYPES").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            current,
            generated,
            "{} is out of date: run `EMA_UPDATE_UI_TYPES=1 cargo test -p ema-tray protocol_types` and fix the UI where tsc says",
            path.display()
        );
        // The hand-written type of `action` says what serde writes for ema_core's `Action`.
        use ema_core::personal::remedy::Action;
        let words: Vec<String> =
            [Action::Remove, Action::Replace].iter().map(|a| serde_json::to_string(a).unwrap()).collect();
        assert_eq!(words, [r#""remove""#, r#""replace""#]);
    }

    #[test]
    fn unknown_commands_are_rejected() {
        assert!(
            serde_json::from_str::<FromWindow>(r#"{"type":"request","id":1,"command":{"command":"rm-rf"}}"#).is_err()
        );
    }
}
