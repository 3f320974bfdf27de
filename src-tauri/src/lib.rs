//! The tray app: a thin Tauri 2 shell over the EMA engine, split as tauri's `examples/api` is:
//! this file only wires the parts together.
//!
//! The engine owns the state; this shell subscribes to its status and copies it into the tray
//! (`tray`: icon, tooltip, menu rebuilt on every change), into the status window (`window_host`)
//! and into desktop notifications (each cause said once, `alerts`). Menu items and the window's
//! requests go through one dispatcher (`commands`). The status window is a separate process
//! started when the user opens it and gone when they close it (`window_protocol` says why), so
//! the idle app holds no browser engine. `--sandbox` starts the embedded sandbox org in-process
//! and points the app at it (builds with the `sandbox` feature, the default; the packaged app has
//! none); `--window` is the window process itself (started by the tray).
//!
//! On the first run (`onboarding`) the window opens by itself with the welcome screens. Without
//! any policy the app still starts, "not set up", and the window lets the user load the
//! configuration IT sent; the engine and its services then start in the running app
//! (`services`).
//!
//! Everything but [`run`] is generic over Tauri's `Runtime`, so the dispatcher and the menu are
//! unit-tested on `tauri::test`'s mock runtime (`app_tests`).

mod alerts;
mod app_state;
#[cfg(test)]
mod app_tests;
mod args;
mod commands;
mod dir_watch;
mod export;
mod notify;
mod onboarding;
mod personal;
mod presenter;
mod services;
#[cfg(target_os = "linux")]
mod session_bus;
#[cfg(target_os = "linux")]
mod single_instance;
#[cfg(test)]
mod test_fixtures;
mod tray;
mod views;
mod window_app;
mod window_host;
mod window_protocol;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use alerts::Alerts;
use app_state::{LOG, NotificationsOn, local_offset, settings};
use args::{Invocation, USAGE, parse_args};
use ema_core::diagnostics::log_ring::{DEFAULT_LINES, LogRing};
use ema_core::engine::Engine;
use export::Export;
use onboarding::Onboarding;
use presenter::{PersonalCounts, TrayIcon, tray_view};
use services::{Sandbox, SandboxGuard, start_engine, start_services};
use tauri::tray::TrayIconBuilder;
use tauri::{App, Manager, RunEvent, Runtime, Wry};
use window_host::{WindowHost, open_window};

pub(crate) use app_state::local_offset_opt;

/// The Tauri context (config, embedded `ui/`, icons), built once for both processes.
fn context() -> tauri::Context<Wry> {
    tauri::generate_context!()
}

/// Runs the tray app until the user quits (or, with `--window`, the status window process).
pub fn run() {
    init_logging();
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
    let (bus, activations) =
        services::claim_single_instance(if opts.sandbox { services::SANDBOX_APP_ID } else { notify::APP_ID });
    #[cfg(not(target_os = "linux"))]
    let activations = None;
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
    let open_at_start = opts.open_window;
    let app = with_state(builder, sandbox)
        .setup(move |app| {
            start(app, engine, activations, open_at_start)?;
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
    services::exit_on_termination_signals(app.handle());
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

/// Logs go to stderr (the window process's stdout is its line protocol with the tray) and to
/// the ring the diagnostics bundle reads.
fn init_logging() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ring = LOG.get_or_init(|| LogRing::new(DEFAULT_LINES));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(ema_core::log_filter::from_env()),
        )
        .with(ring.layer().with_filter(ema_core::log_filter::ring("ema_tray_lib")))
        .try_init();
}

/// The app's plugins and managed state, on any runtime (the mock one in `app_tests`).
fn with_state<R: Runtime>(builder: tauri::Builder<R>, sandbox: Option<Sandbox>) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_autostart::Builder::new().app_name("EMA").build())
        .manage(SandboxGuard(Mutex::new(sandbox)))
        .manage(Onboarding::at_start())
        .manage(NotificationsOn(AtomicBool::new(true)))
        .manage(WindowHost::default())
        .manage(Mutex::new(Alerts::default()))
        .manage(Export::default())
}

/// Starts the running app: the engine into the state, the tray icon, the services, and the
/// window when asked for, on the first run, or when there is no policy yet.
fn start<R: Runtime>(
    app: &App<R>,
    engine: Option<Arc<Engine>>,
    activations: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
    open_at_start: bool,
) -> tauri::Result<()> {
    let handle = app.handle();
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
            (view.icon, view.tooltip.clone(), tray::menu(handle, &view, settings(handle))?)
        }
        None => (TrayIcon::SignedOut, "EMA - not set up".to_string(), tray::setup_menu(handle)?),
    };
    let tray = TrayIconBuilder::with_id(tray::TRAY_ID)
        .icon(tray::tray_image(icon))
        .tooltip(&tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| tray::on_menu(app, event.id().as_ref()));
    #[cfg(target_os = "macos")]
    let tray = tray.icon_as_template(true);
    tray.build(app)?;
    if let Some(engine) = &engine {
        start_services(handle, engine);
    }
    if open_at_start || engine.is_none() || app.state::<Onboarding>().active() {
        open_window(handle);
    }
    Ok(())
}
