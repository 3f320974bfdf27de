//! Carrying out a command from the menu or the window (`window_protocol::Command`): one place
//! for both, so the menu and the window cannot drift apart.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ema_core::config::{ConfigSource, UserSettings, user_settings_path};
use ema_core::diagnostics::log_ring::{DEFAULT_LINES, LogRing};
use ema_core::engine::Engine;
use ema_core::signin::{BrowserOpener, SystemBrowser};
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt;

use crate::alerts;
use crate::app_state::{LOG, NotificationsOn, engine_of, settings};
use crate::export::Export;
use crate::onboarding::Onboarding;
use crate::personal::Personal;
use crate::services::{build_engine, start_services};
use crate::tray::render;
use crate::window_host::{WindowHost, show_notification};
use crate::window_protocol::{Command, CommandError, ToWindow};

/// How long an interactive sign-in may take in the browser.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

fn not_set_up() -> CommandError {
    CommandError {
        code: "not-set-up".into(),
        message: "EMA is not set up yet: load the configuration IT sent first.".into(),
    }
}

/// Saves one of the user's settings (atomically; a broken file is not overwritten).
fn save_user_setting(change: impl FnOnce(&mut UserSettings)) -> Result<(), CommandError> {
    let failed = |message: String| CommandError { code: "settings-not-saved".into(), message };
    let path = user_settings_path().ok_or_else(|| failed("There is no configuration directory.".into()))?;
    let mut user = UserSettings::load(&path).map_err(|e| failed(format!("Your settings file is broken: {e}")))?;
    change(&mut user);
    user.save(&path).map_err(|e| failed(format!("Cannot save {}: {e}", path.display())))
}

/// Writes or removes the autostart entry (tauri-plugin-autostart: an XDG autostart file, a macOS
/// launch agent, the Windows Run key).
pub(crate) fn set_autostart<R: Runtime>(app: &AppHandle<R>, enabled: bool) -> Result<(), CommandError> {
    // auto-launch (under the plugin) creates ~/.config/autostart but not ~/.config, which a
    // fresh account may not have yet.
    #[cfg(target_os = "linux")]
    if let Some(home) = std::env::var_os("HOME") {
        let _ = std::fs::create_dir_all(std::path::Path::new(&home).join(".config"));
    }
    let autolaunch = app.autolaunch();
    let done = if enabled { autolaunch.enable() } else { autolaunch.disable() };
    done.map_err(|e| CommandError {
        code: "autostart-failed".into(),
        message: format!("Cannot change the start-at-login setting: {e}"),
    })
}

/// Carries out a command from the menu or the window: one-line delegations to the engine, the
/// personal-account remedies and the settings. Before a policy is loaded only the settings and
/// loading one work; the rest answer "not set up".
pub(crate) async fn perform<R: Runtime>(app: &AppHandle<R>, command: Command) -> Result<(), CommandError> {
    let engine = || engine_of(app).ok_or_else(not_set_up);
    match command {
        Command::LoadPolicy { source } => load_policy(app, &source).await,
        Command::SetNotifications { enabled } => set_notifications(app, enabled),
        Command::SetAutostart { enabled } => change_autostart(app, enabled),
        Command::FinishOnboarding => {
            finish_onboarding(app, &*engine()?);
            Ok(())
        }
        Command::SignIn => engine()?
            .sign_in(&SystemBrowser, SIGN_IN_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| CommandError { code: e.code_str(), message: e.to_string() }),
        Command::Refresh => {
            engine()?.connect_all(true).await;
            Ok(())
        }
        Command::SignOut => match engine()?.sign_out().await {
            Ok(ema_core::engine::Revocation::Failed(why)) => Err(CommandError {
                code: "revocation-unconfirmed".into(),
                message: format!("Tokens removed here; the IdP did not confirm revocation: {why}"),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(CommandError { code: e.code().wire(None), message: e.to_string() }),
        },
        Command::FixPersonal { id, action } => {
            engine()?;
            let personal = app.state::<Personal>();
            personal
                .fix(&id, action)
                .await
                .map(drop)
                .map_err(|message| CommandError { code: "personal-fix-refused".into(), message })
        }
        Command::UndoPersonal => {
            engine()?;
            let personal = app.state::<Personal>();
            personal
                .undo()
                .await
                .map(drop)
                .map_err(|message| CommandError { code: "personal-undo-refused".into(), message })
        }
        Command::PrepareExport => {
            let engine = engine()?;
            let personal = app.try_state::<Personal>().and_then(|p| p.report()).map(|r| r.findings.clone());
            let log = LOG.get_or_init(|| LogRing::new(DEFAULT_LINES));
            let preview = app
                .state::<Export>()
                .prepare(engine.policy().clone(), personal.unwrap_or_default(), log)
                .await
                .map_err(|message| CommandError { code: "export-failed".into(), message })?;
            let preview = serde_json::to_value(preview).unwrap_or_default();
            app.state::<WindowHost>().send(ToWindow::ExportPreview { preview });
            Ok(())
        }
        Command::SaveExport => {
            let path = app
                .state::<Export>()
                .save()
                .await
                .map_err(|message| CommandError { code: "export-failed".into(), message })?;
            app.state::<WindowHost>().send(ToWindow::ExportSaved { path: path.display().to_string() });
            Ok(())
        }
        Command::OpenHelpDesk => {
            let engine = engine()?;
            let Some(desk) = &engine.policy().organization.help_desk else {
                return Err(CommandError {
                    code: "no-help-desk".into(),
                    message: "Your organisation's configuration names no help desk.".into(),
                });
            };
            SystemBrowser.open(desk.url.as_str()).map_err(|why| {
                tracing::warn!("cannot open the help desk: {why}");
                CommandError {
                    code: "browser-failed".into(),
                    message: format!("Your browser did not open. {} is at {}", desk.name, desk.url),
                }
            })
        }
        Command::ScanPersonal => {
            engine()?;
            app.state::<Personal>().rescan();
            Ok(())
        }
    }
}

fn set_notifications<R: Runtime>(app: &AppHandle<R>, enabled: bool) -> Result<(), CommandError> {
    if settings(app).notifications_locked {
        return Err(CommandError {
            code: "setting-locked".into(),
            message: "Your organisation's policy sets whether EMA shows notifications.".into(),
        });
    }
    save_user_setting(|u| u.notifications = Some(enabled))?;
    app.state::<NotificationsOn>().0.store(enabled, Ordering::Relaxed);
    app.state::<WindowHost>().send(ToWindow::Settings { settings: settings(app) });
    Ok(())
}

fn change_autostart<R: Runtime>(app: &AppHandle<R>, enabled: bool) -> Result<(), CommandError> {
    if settings(app).autostart_locked {
        return Err(CommandError {
            code: "setting-locked".into(),
            message: "Your organisation's policy sets whether EMA starts at login.".into(),
        });
    }
    let done = set_autostart(app, enabled);
    app.state::<WindowHost>().send(ToWindow::Settings { settings: settings(app) });
    if let Some(engine) = engine_of(app) {
        render(app, &engine.snapshot());
    }
    done
}

/// Loads the configuration IT sent (`ema_core::config::import`), then starts the engine and its
/// services in the running app: the welcome screen follows without a restart.
async fn load_policy<R: Runtime>(app: &AppHandle<R>, source: &str) -> Result<(), CommandError> {
    if let Some(engine) = engine_of(app) {
        return Err(CommandError {
            code: "already-set-up".into(),
            message: format!("EMA is already set up for {}.", engine.policy().organization.name),
        });
    }
    let failed = |code: &str, message: String| CommandError { code: code.into(), message };
    let transport = ema_core::http::HttpTransport::new(ema_core::config::import::FETCH_TIMEOUT)
        .map_err(|e| failed("policy-fetch-failed", e.to_string()))?;
    let (_, path) = ema_core::config::import::import_user_policy(source, &transport)
        .await
        .map_err(|e| failed(e.code(), sentence(&e.to_string())))?;
    let engine = build_engine(ConfigSource::User(path)).await.map_err(|e| failed("engine-failed", format!("{e:#}")))?;
    app.manage(engine.clone());
    start_services(app, &engine);
    if !app.state::<Onboarding>().active() {
        // Onboarded before (the policy was removed since): straight to the status window.
        app.state::<WindowHost>().send(ToWindow::Onboarding { view: None });
    }
    Ok(())
}

/// "a managed policy..." as a sentence for the window.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Ends onboarding: recorded so the next start skips it, and a hint of where the app lives.
fn finish_onboarding<R: Runtime>(app: &AppHandle<R>, engine: &Engine) {
    if !app.state::<Onboarding>().finish(&engine.policy().organization.name) {
        return;
    }
    tracing::info!("onboarding done");
    render(app, &engine.snapshot());
    if app.state::<NotificationsOn>().0.load(Ordering::Relaxed) {
        let hint = alerts::Alert {
            summary: "EMA lives in your tray".into(),
            body: "Its icon shows whether your connectors work; it renews them in the background. Click it for \
                   the details."
                .into(),
        };
        show_notification(app, hint);
    }
}

/// The window process has exited. Leaving onboarding after signing in counts as done: the
/// connectors are set up, and the welcome screens would only be in the way next time.
pub(crate) fn window_closed<R: Runtime>(app: &AppHandle<R>) {
    if let Some(engine) = engine_of(app)
        && app.state::<Onboarding>().active()
        && engine.snapshot().idp.state != ema_core::status::IdpSessionState::SignedOut
    {
        finish_onboarding(app, &engine);
    }
}
