//! The tray app: a thin Tauri 2 shell over the EMA engine (tauri's `examples/api` shape).
//!
//! The engine owns the state; this shell subscribes to its status and copies it into the tray
//! (icon, tooltip, menu rebuilt on every change), into the status window and into desktop
//! notifications (each cause said once, `alerts`). The status window is a separate process
//! started when the user opens it and gone when they close it (`window_protocol` says why), so
//! the idle app holds no browser engine. `--sandbox` starts the embedded sandbox org in-process
//! and points the app at it (builds with the `sandbox` feature, the default; the packaged app has
//! none); `--window` is the window process itself (started by the tray).
//!
//! On the first run (`onboarding`) the window opens by itself with the welcome screens. Without
//! any policy the app still starts, "not set up", and the window lets the user load the
//! configuration IT sent; the engine and its services then start in the running app.

mod alerts;
mod dir_watch;
mod export;
mod notify;
mod onboarding;
mod personal;
mod presenter;
#[cfg(target_os = "linux")]
mod session_bus;
#[cfg(target_os = "linux")]
mod single_instance;
#[cfg(test)]
mod test_fixtures;
mod window_app;
mod window_host;
mod window_protocol;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts::Alerts;
use ema_core::config::{ConfigSource, Policy, UserSettings, locate_policy, user_settings_path};
use ema_core::diagnostics::log_ring::{DEFAULT_LINES, LogRing};
use ema_core::engine::Engine;
use ema_core::scan::{Catalog, CompanyIdentity};
use ema_core::signin::SystemBrowser;
use ema_core::status::StatusSnapshot;
use export::Export;
use onboarding::Onboarding;
use personal::Personal;
use presenter::{PersonalCounts, TrayIcon, TrayView, tray_view};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, RunEvent, Wry};
use tauri_plugin_autostart::ManagerExt;
use window_host::WindowHost;
use window_protocol::{AppSettings, Command, CommandError, ToWindow};

const TRAY_ID: &str = "ema";
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// The Tauri context (config, embedded `ui/`, icons), built once for both processes.
fn context() -> tauri::Context<Wry> {
    tauri::generate_context!()
}

/// Whether desktop notifications are on: the policy's value at start, then the user's choice.
struct NotificationsOn(AtomicBool);

/// The engine, once there is a policy (`None` while the app is not set up).
fn engine_of(app: &AppHandle) -> Option<Arc<Engine>> {
    app.try_state::<Arc<Engine>>().map(|e| e.inner().clone())
}

fn not_set_up() -> CommandError {
    CommandError {
        code: "not-set-up".into(),
        message: "EMA is not set up yet: load the configuration IT sent first.".into(),
    }
}

fn settings(app: &AppHandle) -> AppSettings {
    let locked = |key: &str| engine_of(app).is_some_and(|e| e.policy().settings.locked.contains(&key));
    AppSettings {
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
        autostart_locked: locked("start_at_login"),
        notifications: app.state::<NotificationsOn>().0.load(Ordering::Relaxed),
        notifications_locked: locked("notifications"),
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
fn set_autostart(app: &AppHandle, enabled: bool) -> Result<(), CommandError> {
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
async fn perform(app: &AppHandle, command: Command) -> Result<(), CommandError> {
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
            .map_err(|e| CommandError { code: e.code(), message: e.to_string() }),
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
            Err(e) => Err(CommandError { code: e.code().into(), message: e.to_string() }),
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
        Command::ScanPersonal => {
            engine()?;
            app.state::<Personal>().rescan();
            Ok(())
        }
    }
}

fn set_notifications(app: &AppHandle, enabled: bool) -> Result<(), CommandError> {
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

fn change_autostart(app: &AppHandle, enabled: bool) -> Result<(), CommandError> {
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
async fn load_policy(app: &AppHandle, source: &str) -> Result<(), CommandError> {
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
        app.state::<WindowHost>().send(ToWindow::Onboarding { view: serde_json::Value::Null });
    }
    Ok(())
}

/// "a managed policy..." as a sentence for the window.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Ends onboarding: recorded so the next start skips it, and a hint of where the app lives.
fn finish_onboarding(app: &AppHandle, engine: &Engine) {
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
fn window_closed(app: &AppHandle) {
    if let Some(engine) = engine_of(app)
        && app.state::<Onboarding>().active()
        && engine.snapshot().idp.state != ema_core::status::IdpSessionState::SignedOut
    {
        finish_onboarding(app, &engine);
    }
}

/// The embedded sandbox org (`--sandbox`) and the private directory holding its policy (which
/// carries the org's client secrets); a build without the `sandbox` feature has none.
#[cfg(feature = "sandbox")]
struct Sandbox {
    _org: ema_sandbox::Sandbox,
    /// Removed, with the policy, when dropped: at exit (`RunEvent::Exit`, SIGTERM, SIGINT).
    _policy_dir: ema_core::private_file::PrivateDir,
}
#[cfg(not(feature = "sandbox"))]
type Sandbox = std::convert::Infallible;

/// The sandbox org, kept alive for the app's life when `--sandbox` is given.
struct SandboxGuard(#[allow(dead_code)] Mutex<Option<Sandbox>>);

/// Starts the embedded sandbox org and writes its policy for the engine, with the writer `ema
/// sandbox --write-policy` uses: a fresh directory of random name (mode 0700), the file 0600
/// through a temporary file and a rename, so nothing planted beforehand (a symlink at a
/// predictable path, issue 14 item 12) is followed, and no other user reads the secrets.
#[cfg(feature = "sandbox")]
fn start_sandbox() -> anyhow::Result<(ConfigSource, Sandbox)> {
    let org = tauri::async_runtime::block_on(ema_sandbox::Sandbox::start(ema_sandbox::SandboxOptions::default()))?;
    let policy_dir = ema_core::private_file::PrivateDir::new("ema-tray-sandbox-")?;
    let path = policy_dir.write("policy.json", serde_json::to_string_pretty(&org.policy())?.as_bytes())?;
    Ok((ConfigSource::Explicit(path), Sandbox { _org: org, _policy_dir: policy_dir }))
}

/// `--sandbox` in a build without the org: said, not ignored.
#[cfg(not(feature = "sandbox"))]
fn start_sandbox() -> anyhow::Result<(ConfigSource, Sandbox)> {
    anyhow::bail!(
        "this build has no embedded sandbox org (built without the `sandbox` feature); use `ema sandbox \
         --write-policy FILE` and start the tray with `--config FILE`"
    )
}

/// Command-line options of the tray app.
#[derive(Debug, Default)]
struct Options {
    /// `--sandbox`: start the embedded sandbox org and use it.
    sandbox: bool,
    /// `--open`: open the status window at start.
    open_window: bool,
    /// `--config PATH` (or `--config=PATH`): the policy file, as `ema --config`; else `EMA_CONFIG`,
    /// then the managed and user locations.
    config: Option<std::path::PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
enum Invocation {
    Run(Options),
    Help,
    Version,
}

const USAGE: &str = "\
EMA: your company's MCP connectors, signed in through your identity provider, from the tray.

Usage: ema-tray [--open] [--config PATH] [--sandbox]

  --open           open the status window at start
  --config PATH    the policy file (default: EMA_CONFIG, then the managed and user locations)
  --sandbox        run on the embedded sandbox org (a local IdP and connectors; development builds)
  -h, --help       print this help
  -V, --version    print the version

Launching it again while it runs opens its window. The `ema` command has the same engine for the
terminal: `ema status`, `ema login`, `ema doctor`.
";

/// Parses the app's few flags; unknown arguments (a WebDriver's, say) are ignored.
fn parse_args(args: impl IntoIterator<Item = String>) -> Invocation {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Invocation::Help,
            "-V" | "--version" => return Invocation::Version,
            "--sandbox" => o.sandbox = true,
            "--open" => o.open_window = true,
            "--config" => o.config = args.next().map(Into::into),
            _ => {
                if let Some(path) = a.strip_prefix("--config=") {
                    o.config = Some(path.into());
                }
            }
        }
    }
    Invocation::Run(o)
}

/// The tray icon for a state: coloured discs, and on macOS template images (black shapes the
/// menu bar tints for light and dark mode, `icon_as_template`).
fn tray_image(icon: TrayIcon) -> Image<'static> {
    #[cfg(not(target_os = "macos"))]
    let bytes: &'static [u8] = match icon {
        TrayIcon::SignedOut => include_bytes!("../../icons/tray-signed-out@2x.png"),
        TrayIcon::Active => include_bytes!("../../icons/tray-active@2x.png"),
        TrayIcon::Attention => include_bytes!("../../icons/tray-attention@2x.png"),
        TrayIcon::Error => include_bytes!("../../icons/tray-error@2x.png"),
    };
    #[cfg(target_os = "macos")]
    let bytes: &'static [u8] = match icon {
        TrayIcon::SignedOut => include_bytes!("../../icons/tray-signed-out-template@2x.png"),
        TrayIcon::Active => include_bytes!("../../icons/tray-active-template@2x.png"),
        TrayIcon::Attention => include_bytes!("../../icons/tray-attention-template@2x.png"),
        TrayIcon::Error => include_bytes!("../../icons/tray-error-template@2x.png"),
    };
    Image::from_bytes(bytes).expect("the tray icons are valid RGBA PNGs")
}

fn menu(app: &AppHandle, view: &TrayView, autostart: AppSettings) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(app, "identity", &view.identity, false, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    for (i, row) in view.rows.iter().enumerate() {
        menu.append(&MenuItem::with_id(app, format!("connector-{i}"), row, false, None::<&str>)?)?;
    }
    if let Some(personal) = &view.personal {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        menu.append(&MenuItem::with_id(app, "personal", personal, true, None::<&str>)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    if view.signed_in {
        menu.append(&MenuItem::with_id(app, "refresh", "Refresh now", true, None::<&str>)?)?;
        menu.append(&MenuItem::with_id(app, "sign-out", "Sign out", true, None::<&str>)?)?;
    } else {
        menu.append(&MenuItem::with_id(app, "sign-in", "Sign in...", true, None::<&str>)?)?;
    }
    menu.append(&MenuItem::with_id(app, "open", "Open status window", true, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, "export", "Export diagnostics...", true, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    let (autostart, locked) = (autostart.autostart, autostart.autostart_locked);
    menu.append(&CheckMenuItem::with_id(app, "autostart", "Start at login", !locked, autostart, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit EMA", true, None::<&str>)?)?;
    Ok(menu)
}

/// Copies a snapshot into the tray, the window (when open) and the notifications it deserves.
fn render(app: &AppHandle, snapshot: &StatusSnapshot) {
    let now = time::OffsetDateTime::now_utc();
    // Before the first scan (or if the scan is not managed yet) there is nothing to show.
    let personal = app.try_state::<Personal>();
    let counts = personal.as_ref().map(|p| p.counts()).unwrap_or_default();
    let flagged = personal.as_ref().map(|p| p.flagged()).unwrap_or_default();
    let view = tray_view(snapshot, counts, now, local_offset());
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_icon(Some(tray_image(view.icon)));
        let _ = tray.set_tooltip(Some(&view.tooltip));
        if let Ok(m) = menu(app, &view, settings(app)) {
            let _ = tray.set_menu(Some(m));
        }
    }
    if let Ok(json) = serde_json::to_value(snapshot) {
        app.state::<WindowHost>().send(ToWindow::Status { snapshot: json });
    }
    if let Some(p) = &personal {
        app.state::<WindowHost>().send(ToWindow::Personal { view: p.window_view() });
    }
    if app.state::<Onboarding>().active() {
        app.state::<WindowHost>().send(ToWindow::Onboarding { view: onboarding_view(app, Some(snapshot)) });
    }
    let alerts = app.state::<Mutex<Alerts>>().lock().unwrap_or_else(std::sync::PoisonError::into_inner).update(
        snapshot,
        &flagged,
        now,
        local_offset(),
    );
    // The policy (or the user) can turn notifications off; the causes are still tracked, so
    // turning them on later does not replay old news.
    let notify = app.state::<NotificationsOn>().0.load(Ordering::Relaxed);
    for alert in alerts.into_iter().filter(|_| notify) {
        show_notification(app, alert);
    }
}

/// Follows the engine: re-renders on every status change and at the next time-driven state
/// change (a token entering the warning window or expiring, `StatusSnapshot::next_transition`).
/// Nothing else wakes the idle app: the tray shows wall-clock times, which stay true.
async fn follow_status(app: AppHandle, engine: Arc<Engine>) {
    let mut rx = engine.subscribe();
    let warning = time::Duration::try_from(engine.policy().settings.expiry_warning).unwrap_or(time::Duration::ZERO);
    loop {
        let snapshot = engine.snapshot();
        render(&app, &snapshot);
        let now = time::OffsetDateTime::now_utc();
        let next_transition = snapshot
            .next_transition(warning)
            .map(|t| Duration::try_from(t - now).unwrap_or_default() + Duration::from_millis(50));
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep_or_forever(next_transition) => {}
        }
        rx.borrow_and_update();
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The user's current UTC offset (chrono reads the system time zone; `time` refuses to in a
/// multi-threaded process on Linux). Asked on every render, so a DST change is picked up.
/// [`local_offset`] for the diagnostics bundle.
pub(crate) fn local_offset_opt() -> Option<time::UtcOffset> {
    Some(local_offset())
}

/// The recent log of the tray process, for "Export diagnostics...".
static LOG: std::sync::OnceLock<LogRing> = std::sync::OnceLock::new();

fn local_offset() -> time::UtcOffset {
    let secs = chrono::Local::now().offset().local_minus_utc();
    time::UtcOffset::from_whole_seconds(secs).unwrap_or(time::UtcOffset::UTC)
}

/// The welcome screens' view for `snapshot`, with the app's policy and last personal scan.
fn onboarding_view(app: &AppHandle, snapshot: Option<&StatusSnapshot>) -> serde_json::Value {
    let engine = engine_of(app);
    let personal = app.try_state::<Personal>();
    onboarding::view(engine.as_ref().map(|e| e.policy()), snapshot, personal.as_deref())
}

/// Shows `alert` as a desktop notification; a click on it opens the status window.
fn show_notification(app: &AppHandle, alert: alerts::Alert) {
    let notifier = app.state::<notify::Notifier>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move { notifier.show(alert, move || open_window(&app)).await });
}

/// Opens the status window (a process of its own), or raises it when it is open.
fn open_window(app: &AppHandle) {
    let engine = engine_of(app);
    let mut initial = Vec::new();
    // The onboarding view before the settings (which the window waits for), so the window
    // starts on the right screen.
    if app.state::<Onboarding>().active() || engine.is_none() {
        let snapshot = engine.as_ref().map(|e| e.snapshot());
        initial.push(ToWindow::Onboarding { view: onboarding_view(app, snapshot.as_ref()) });
    }
    initial.push(ToWindow::Settings { settings: settings(app) });
    if let Some(engine) = &engine {
        if let Some(h) = &engine.policy().organization.help_desk {
            initial.push(ToWindow::HelpDesk { name: h.name.clone(), url: h.url.to_string() });
        }
        if let Ok(json) = serde_json::to_value(engine.snapshot()) {
            initial.push(ToWindow::Status { snapshot: json });
        }
    }
    if let Some(p) = app.try_state::<Personal>() {
        initial.push(ToWindow::Personal { view: p.window_view() });
    }
    app.state::<WindowHost>().open(app, initial);
}

fn on_menu(app: &AppHandle, id: &str) {
    let command = match id {
        "quit" => return app.exit(0),
        "open" | "personal" | "set-up" => return open_window(app),
        "export" => {
            open_window(app);
            return app.state::<WindowHost>().send(ToWindow::StartExport);
        }
        "refresh" => Command::Refresh,
        "sign-in" => Command::SignIn,
        "sign-out" => Command::SignOut,
        "autostart" => Command::SetAutostart { enabled: !settings(app).autostart },
        _ => return,
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = perform(&app, command).await {
            tracing::warn!(code = %e.code, "{}", e.message);
        }
    });
}

/// Loads the policy (or starts the sandbox and writes its policy) and builds the engine; `None`
/// when no policy exists anywhere: the app then starts "not set up" and offers to load one.
fn start_engine(opts: &Options) -> anyhow::Result<Option<(Arc<Engine>, Option<Sandbox>)>> {
    if opts.sandbox {
        let (source, sandbox) = start_sandbox()?;
        let engine = tauri::async_runtime::block_on(build_engine(source))?;
        return Ok(Some((engine, Some(sandbox))));
    }
    let explicit = opts.config.clone().or_else(|| std::env::var_os("EMA_CONFIG").map(Into::into));
    match locate_policy(explicit) {
        Ok(source) => Ok(Some((tauri::async_runtime::block_on(build_engine(source))?, None))),
        Err(tried) => {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            tracing::info!("no EMA policy found (looked in {}): starting not set up", tried.join(", "));
            Ok(None)
        }
    }
}

/// The engine for the policy at `source`, with the user's settings and its stored tokens.
async fn build_engine(source: ConfigSource) -> anyhow::Result<Arc<Engine>> {
    let (policy, settings_warning) = Policy::load_with_user_settings(source)?;
    if let Some(e) = settings_warning {
        // The defaults are used and the file is kept; changing a setting in the window reports
        // the same error to the user (`Your settings file is broken: ...`).
        tracing::warn!("your settings are ignored: {e}");
    }
    Ok(Engine::open(policy).await?)
}

/// Starts what runs beside the engine: the policy's start-at-login, the personal-account scan,
/// the status follower and the renewal timers.
fn start_services(app: &AppHandle, engine: &Arc<Engine>) {
    let policy = &engine.policy().settings;
    app.state::<NotificationsOn>().0.store(policy.notifications, Ordering::Relaxed);
    // A policy that sets start-at-login is applied, not just shown.
    if policy.locked.contains(&"start_at_login")
        && settings(app).autostart != policy.start_at_login
        && let Err(e) = set_autostart(app, policy.start_at_login)
    {
        tracing::warn!("{}", e.message);
    }
    // The personal-account scan: at start and when the files it read change.
    let handle = app.clone();
    let personal = Personal::start(
        Catalog::from_policy(engine.policy()),
        CompanyIdentity::from_policy(engine.policy()),
        move || {
            if let Some(engine) = engine_of(&handle) {
                render(&handle, &engine.snapshot());
            }
        },
    );
    app.manage(personal);
    tauri::async_runtime::spawn(follow_status(app.clone(), engine.clone()));
    tauri::async_runtime::spawn(engine.clone().run_renewals());
}

/// The menu of an app with no policy yet.
fn setup_menu(app: &AppHandle) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(app, "identity", "EMA is not set up", false, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, "set-up", "Set up EMA...", true, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit EMA", true, None::<&str>)?)?;
    Ok(menu)
}

/// The bus name of a tray on the embedded sandbox org: one of each can run, so the demo works beside
/// an installed EMA instead of opening its window.
#[cfg(target_os = "linux")]
const SANDBOX_APP_ID: &str = "dev.ema.desktop.Sandbox";

/// Connects to the session bus and claims `app_id` there (`single_instance`). A second launch
/// activates the first and exits here; without a session bus the app runs on its own.
#[cfg(target_os = "linux")]
fn claim_single_instance(app_id: &str) -> (Option<session_bus::Bus>, Option<tokio::sync::mpsc::UnboundedReceiver<()>>) {
    use single_instance::{ACTIVATE_TIMEOUT, Claim, ClaimError};
    let bus = match session_bus::connect() {
        Ok(bus) => bus,
        Err(e) => {
            tracing::warn!("no D-Bus session bus ({e}): no single-instance check and no notifications");
            return (None, None);
        }
    };
    match tauri::async_runtime::block_on(single_instance::claim(&bus, app_id, ACTIVATE_TIMEOUT)) {
        Ok(Claim::First(activations)) => (Some(bus), Some(activations)),
        Ok(Claim::AlreadyRunning) => {
            eprintln!("EMA is already running: its status window is open.");
            std::process::exit(0);
        }
        Err(ClaimError::Bus(e)) => {
            tracing::warn!("cannot claim the app's name on the session bus ({e}): no single-instance check");
            (Some(bus), None)
        }
        Err(ClaimError::NotAnswering(e)) => {
            eprintln!(
                "EMA is already running but did not answer within {} s ({e}). If it is stuck, quit it \
                 (`pkill -x ema-tray`) and start it again.",
                ACTIVATE_TIMEOUT.as_secs()
            );
            std::process::exit(1);
        }
    }
}

/// Runs the tray app until the user quits (or, with `--window`, the status window process).
pub fn run() {
    // Logs go to stderr: the window process's stdout is its line protocol with the tray.
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let ring = LOG.get_or_init(|| LogRing::new(DEFAULT_LINES));
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(ema_core::log_filter::from_env()),
            )
            .with(ring.layer().with_filter(ema_core::log_filter::ring("ema_tray_lib")))
            .try_init();
    }
    if std::env::args().skip(1).any(|a| a == "--window") {
        return window_app::run();
    }
    let opts = match parse_args(std::env::args().skip(1)) {
        Invocation::Run(opts) => opts,
        Invocation::Help => {
            print!("{USAGE}");
            return;
        }
        Invocation::Version => {
            println!("ema-tray {}", env!("CARGO_PKG_VERSION"));
            return;
        }
    };
    // One app per session (and one on the sandbox org): a second launch shows the running one's
    // window and ends here.
    #[cfg(target_os = "linux")]
    let (bus, activations) = claim_single_instance(if opts.sandbox { SANDBOX_APP_ID } else { notify::APP_ID });
    let (engine, sandbox) = match start_engine(&opts) {
        Ok(Some((engine, sandbox))) => (Some(engine), sandbox),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("EMA cannot start: {e:#}");
            std::process::exit(2);
        }
    };
    let builder = tauri::Builder::default();
    #[cfg(not(target_os = "linux"))]
    let builder = builder
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| open_window(app)))
        .manage(notify::Notifier);
    #[cfg(target_os = "linux")]
    let builder = builder.manage(notify::Notifier::new(bus));
    let app = builder
        .plugin(tauri_plugin_autostart::Builder::new().app_name("EMA").build())
        .manage(SandboxGuard(Mutex::new(sandbox)))
        .manage(Onboarding::at_start())
        .manage(NotificationsOn(AtomicBool::new(true)))
        .manage(WindowHost::default())
        .manage(Mutex::new(Alerts::default()))
        .manage(Export::default())
        .setup(move |app| {
            let handle = app.handle();
            #[cfg(target_os = "linux")]
            if let Some(mut activations) = activations {
                let handle = handle.clone();
                tauri::async_runtime::spawn(async move {
                    while activations.recv().await.is_some() {
                        open_window(&handle);
                    }
                });
            }
            if let Some(engine) = &engine {
                app.manage(engine.clone());
            }
            let (icon, tooltip, menu) = match &engine {
                Some(engine) => {
                    let view = tray_view(
                        &engine.snapshot(),
                        PersonalCounts::default(),
                        time::OffsetDateTime::now_utc(),
                        local_offset(),
                    );
                    (view.icon, view.tooltip.clone(), menu(handle, &view, settings(handle))?)
                }
                None => (TrayIcon::SignedOut, "EMA - not set up".to_string(), setup_menu(handle)?),
            };
            let tray = TrayIconBuilder::with_id(TRAY_ID)
                .icon(tray_image(icon))
                .tooltip(&tooltip)
                .menu(&menu)
                .show_menu_on_left_click(true)
                .on_menu_event(|app, event| on_menu(app, event.id().as_ref()));
            #[cfg(target_os = "macos")]
            let tray = tray.icon_as_template(true);
            tray.build(app)?;
            if let Some(engine) = &engine {
                start_services(handle, engine);
            }
            // The first run (or no policy at all) opens the welcome screens by itself.
            if opts.open_window || engine.is_none() || app.state::<Onboarding>().active() {
                open_window(handle);
            }
            Ok(())
        })
        .build(context());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("EMA cannot start its window system: {e}");
            std::process::exit(2);
        }
    };
    #[cfg(unix)]
    exit_on_termination_signals(app.handle());
    app.run(|app, event| match event {
        // The tray app has no window of its own: it runs until the user quits from the menu.
        RunEvent::ExitRequested { code: None, api, .. } => api.prevent_exit(),
        // Tauri ends the process without dropping managed state: stop the sandbox org and remove
        // its policy directory here.
        RunEvent::Exit => {
            if let Ok(mut sandbox) = app.state::<SandboxGuard>().0.lock() {
                let _ = sandbox.take(); // dropped here: the org stops, its policy directory goes
            }
        }
        _ => {}
    });
}

/// SIGTERM (a logout, `systemctl --user stop`, `kill`) and SIGINT end the app as "Quit" does, so
/// the exit clean-up runs.
#[cfg(unix)]
fn exit_on_termination_signals(app: &AppHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT: the exit clean-up runs only on Quit");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("terminated by a signal: exiting");
        app.exit(0);
    });
}

#[cfg(all(test, not(feature = "sandbox")))]
mod without_sandbox {
    use super::*;

    #[test]
    fn the_sandbox_flag_is_refused_in_words() {
        let opts = Options { sandbox: true, ..Options::default() };
        let Err(e) = start_engine(&opts) else {
            panic!("--sandbox started an engine in a build without the sandbox org")
        };
        let message = format!("{e:#}");
        assert!(message.contains("no embedded sandbox org") && message.contains("ema sandbox"), "{message}");
    }
}

#[cfg(test)]
mod command_line {
    use super::*;

    fn parse(args: &[&str]) -> Invocation {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags_are_read_in_both_config_forms_and_unknown_ones_ignored() {
        let Invocation::Run(o) = parse(&["--open", "--config", "/etc/ema/policy.json", "--webdriver-port=1"]) else {
            panic!("a run")
        };
        assert!(o.open_window && !o.sandbox);
        assert_eq!(o.config.as_deref(), Some(std::path::Path::new("/etc/ema/policy.json")));
        let Invocation::Run(o) = parse(&["--sandbox", "--config=p.json"]) else { panic!("a run") };
        assert!(o.sandbox && !o.open_window);
        assert_eq!(o.config.as_deref(), Some(std::path::Path::new("p.json")));
    }

    #[test]
    fn help_and_version_win_over_everything_else() {
        assert!(matches!(parse(&["--sandbox", "--help"]), Invocation::Help));
        assert!(matches!(parse(&["-h"]), Invocation::Help));
        assert!(matches!(parse(&["-V", "--open"]), Invocation::Version));
        for flag in ["--open", "--config PATH", "--sandbox", "--help", "--version"] {
            assert!(USAGE.contains(flag), "the usage names {flag}");
        }
    }
}
