//! The tray app: a thin Tauri 2 shell over the EMA engine (tauri's `examples/api` shape).
//!
//! The engine owns the state; this shell subscribes to its status and copies it into the tray
//! (icon, tooltip, menu rebuilt on every change) and into the status window through the
//! `status` event. Commands are one-line delegations. The window is created when the user opens
//! it and destroyed when they close it, so the idle app holds no browser engine; closing it
//! leaves the app in the tray. `--sandbox` starts the embedded sandbox org in-process and points
//! the app at it.

mod presenter;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ema_core::config::{ConfigSource, Policy, UserSettings, locate_policy, user_settings_path};
use ema_core::engine::{Engine, EngineParts};
use ema_core::signin::SystemBrowser;
use ema_core::status::StatusSnapshot;
use ema_sandbox::{Sandbox, SandboxOptions};
use presenter::{TrayIcon, TrayView, tray_view};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, RunEvent, State, WebviewUrl, WebviewWindowBuilder, Wry};

const TRAY_ID: &str = "ema";
const WINDOW: &str = "status";
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// A command's failure as the window shows it.
#[derive(Debug, serde::Serialize)]
struct CommandError {
    code: String,
    message: String,
}

#[tauri::command]
fn get_status(engine: State<'_, Arc<Engine>>) -> StatusSnapshot {
    engine.snapshot()
}

#[tauri::command]
async fn refresh(engine: State<'_, Arc<Engine>>) -> Result<(), CommandError> {
    engine.connect_all(true).await;
    Ok(())
}

#[tauri::command]
async fn sign_in(engine: State<'_, Arc<Engine>>) -> Result<(), CommandError> {
    engine
        .sign_in(&SystemBrowser, SIGN_IN_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| CommandError { code: e.code(), message: e.to_string() })
}

#[tauri::command]
async fn sign_out(engine: State<'_, Arc<Engine>>) -> Result<(), CommandError> {
    engine.sign_out().await.map(|_| ()).map_err(|e| CommandError { code: e.code().into(), message: e.to_string() })
}

/// The sandbox org, kept alive for the app's life when `--sandbox` is given.
struct SandboxGuard(#[allow(dead_code)] Mutex<Option<Sandbox>>);

/// Command-line options of the tray app.
#[derive(Debug, Default)]
struct Options {
    sandbox: bool,
    open_window: bool,
}

fn options() -> Options {
    let mut o = Options::default();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--sandbox" => o.sandbox = true,
            "--open" => o.open_window = true,
            _ => {}
        }
    }
    o
}

fn tray_image(icon: TrayIcon) -> Image<'static> {
    let bytes: &'static [u8] = match icon {
        TrayIcon::SignedOut => include_bytes!("../../icons/tray-signed-out@2x.png"),
        TrayIcon::Active => include_bytes!("../../icons/tray-active@2x.png"),
        TrayIcon::Attention => include_bytes!("../../icons/tray-attention@2x.png"),
        TrayIcon::Error => include_bytes!("../../icons/tray-error@2x.png"),
    };
    Image::from_bytes(bytes).expect("the tray icons are valid RGBA PNGs")
}

fn menu(app: &AppHandle, view: &TrayView) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(app, "identity", &view.identity, false, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    for (i, row) in view.rows.iter().enumerate() {
        menu.append(&MenuItem::with_id(app, format!("connector-{i}"), row, false, None::<&str>)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    if view.signed_in {
        menu.append(&MenuItem::with_id(app, "refresh", "Refresh now", true, None::<&str>)?)?;
        menu.append(&MenuItem::with_id(app, "sign-out", "Sign out", true, None::<&str>)?)?;
    } else {
        menu.append(&MenuItem::with_id(app, "sign-in", "Sign in...", true, None::<&str>)?)?;
    }
    menu.append(&MenuItem::with_id(app, "open", "Open status window", true, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit EMA", true, None::<&str>)?)?;
    Ok(menu)
}

/// Copies a snapshot into the tray and the window.
fn render(app: &AppHandle, snapshot: &StatusSnapshot) {
    let view = tray_view(snapshot, time::OffsetDateTime::now_utc());
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_icon(Some(tray_image(view.icon)));
        let _ = tray.set_tooltip(Some(&view.tooltip));
        if let Ok(m) = menu(app, &view) {
            let _ = tray.set_menu(Some(m));
        }
    }
    let _ = app.emit("status", snapshot);
}

/// Follows the engine: re-renders on every status change, at the next time-driven state change
/// (a token entering the warning window or expiring, `StatusSnapshot::next_transition`), and
/// once a minute so "52 min" stays true (a display clock, not a poll of the engine).
async fn follow_status(app: AppHandle, engine: Arc<Engine>) {
    let mut rx = engine.subscribe();
    let warning = time::Duration::try_from(engine.policy().settings.expiry_warning).unwrap_or(time::Duration::ZERO);
    loop {
        let snapshot = engine.snapshot();
        render(&app, &snapshot);
        let now = time::OffsetDateTime::now_utc();
        let next_minute = Duration::from_secs(60 - (now.second() as u64).min(59));
        let next_transition = snapshot
            .next_transition(warning)
            .and_then(|t| Duration::try_from(t - now).ok())
            .map(|d| d + Duration::from_millis(50));
        let tick = tokio::time::sleep(next_transition.map_or(next_minute, |t| t.min(next_minute)));
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick => {}
        }
        rx.borrow_and_update();
    }
}

fn open_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(WINDOW) {
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App("index.html".into()))
        .title("EMA - your connectors")
        .inner_size(860.0, 560.0)
        .min_inner_size(520.0, 320.0)
        .build();
    if let Err(e) = built {
        tracing::error!("cannot open the status window: {e}");
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    let engine = app.state::<Arc<Engine>>().inner().clone();
    match id {
        "quit" => app.exit(0),
        "open" => open_window(app),
        "refresh" => {
            tauri::async_runtime::spawn(async move { engine.connect_all(true).await });
        }
        "sign-in" => {
            tauri::async_runtime::spawn(async move {
                if let Err(e) = engine.sign_in(&SystemBrowser, SIGN_IN_TIMEOUT).await {
                    tracing::warn!(code = %e.code(), "sign-in failed: {e}");
                }
            });
        }
        "sign-out" => {
            tauri::async_runtime::spawn(async move {
                let _ = engine.sign_out().await;
            });
        }
        _ => {}
    }
}

/// Loads the policy (or starts the sandbox and writes its policy) and builds the engine.
fn start_engine(opts: &Options) -> anyhow::Result<(Arc<Engine>, Option<Sandbox>)> {
    let (source, sandbox) = if opts.sandbox {
        let sandbox = tauri::async_runtime::block_on(Sandbox::start(SandboxOptions::default()))?;
        let dir = std::env::temp_dir().join(format!("ema-tray-sandbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("policy.json");
        std::fs::write(&path, serde_json::to_string_pretty(&sandbox.policy())?)?;
        (ConfigSource::Explicit(path), Some(sandbox))
    } else {
        let explicit = std::env::var_os("EMA_CONFIG").map(Into::into);
        let source = locate_policy(explicit)
            .map_err(|tried| anyhow::anyhow!("no policy found (looked for {tried:?}); ask IT for the EMA policy"))?;
        (source, None)
    };
    let mut policy = Policy::load(source)?;
    if let Some(path) = user_settings_path()
        && let Ok(user) = UserSettings::load(&path)
    {
        policy.apply_user_settings(&user);
    }
    let parts = EngineParts::production(&policy)?;
    let engine = Engine::new(policy, parts);
    tauri::async_runtime::block_on(engine.load())?;
    Ok((engine, sandbox))
}

/// Runs the tray app until the user quits.
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EMA_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let opts = options();
    let (engine, sandbox) = match start_engine(&opts) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("EMA cannot start: {e:#}");
            std::process::exit(2);
        }
    };
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| open_window(app)))
        .manage(engine.clone())
        .manage(SandboxGuard(Mutex::new(sandbox)))
        .invoke_handler(tauri::generate_handler![get_status, refresh, sign_in, sign_out])
        .setup(move |app| {
            let view = tray_view(&engine.snapshot(), time::OffsetDateTime::now_utc());
            TrayIconBuilder::with_id(TRAY_ID)
                .icon(tray_image(view.icon))
                .tooltip(&view.tooltip)
                .menu(&menu(app.handle(), &view)?)
                .show_menu_on_left_click(true)
                .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
                .build(app)?;
            tauri::async_runtime::spawn(follow_status(app.handle().clone(), engine.clone()));
            tauri::async_runtime::spawn(engine.clone().run_renewals());
            if opts.open_window {
                open_window(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("EMA cannot start its window system: {e}");
            std::process::exit(2);
        }
    };
    app.run(|_app, event| {
        // Closing the status window must not quit: the app lives in the tray.
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            api.prevent_exit();
        }
    });
}
