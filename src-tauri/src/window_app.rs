//! The status-window process (`ema-tray --window`): one WebKit window showing what the tray
//! process sends on stdin, and passing the user's commands back on stdout (see
//! `window_protocol`). It holds no token and no engine; it exits when its window closes or when
//! the tray goes away (stdin closes).

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, State, WebviewUrl, WebviewWindowBuilder};
use tokio::sync::{oneshot, watch};

use crate::views::{Extras, OnboardingView, PersonalView};
use crate::window_protocol::{AppSettings, Command, CommandError, FromWindow, MAX_LINE, ToWindow, encode};

const WINDOW: &str = "status";
/// How long the window waits for the tray's first snapshot before saying so.
const FIRST_STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// What the window knows: the latest messages from the tray and the requests awaiting replies.
struct Link {
    status: watch::Sender<Option<serde_json::Value>>,
    settings: watch::Sender<Option<AppSettings>>,
    personal: watch::Sender<Option<PersonalView>>,
    /// The welcome screens' view while onboarding lasts (`null` otherwise).
    onboarding: watch::Sender<Option<OnboardingView>>,
    /// The help desk and whether the tray asked for an export before the page was ready.
    extras: watch::Sender<Extras>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Option<CommandError>>>>,
    next_id: AtomicU64,
    out: Mutex<std::io::Stdout>,
}

fn gone() -> CommandError {
    CommandError { code: "tray-gone".into(), message: "The EMA tray app is no longer running; start it again.".into() }
}

impl Link {
    async fn request(&self, command: Command) -> Result<(), CommandError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        {
            let mut out = self.out.lock().expect("stdout lock");
            let sent = out.write_all(encode(&FromWindow::Request { id, command }).as_bytes()).and_then(|_| out.flush());
            if sent.is_err() {
                return Err(gone());
            }
        }
        match rx.await {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(gone()),
        }
    }
}

async fn first<T: Clone>(rx: &watch::Sender<Option<T>>) -> Result<T, CommandError> {
    let mut rx = rx.subscribe();
    let got = tokio::time::timeout(FIRST_STATUS_TIMEOUT, rx.wait_for(Option::is_some)).await;
    match got {
        Ok(Ok(v)) => Ok(v.clone().expect("waited for Some")),
        _ => Err(gone()),
    }
}

#[tauri::command]
async fn get_status(link: State<'_, Link>) -> Result<serde_json::Value, CommandError> {
    first(&link.status).await
}

#[tauri::command]
async fn get_settings(link: State<'_, Link>) -> Result<AppSettings, CommandError> {
    first(&link.settings).await
}

#[tauri::command]
async fn get_personal(link: State<'_, Link>) -> Result<PersonalView, CommandError> {
    first(&link.personal).await
}

/// The onboarding view, or `null` when the window is the plain status window. The tray sends
/// it before the settings, so once the settings are here the answer is known.
#[tauri::command]
async fn get_onboarding(link: State<'_, Link>) -> Result<Option<OnboardingView>, CommandError> {
    first(&link.settings).await?;
    Ok(link.onboarding.borrow().clone())
}

/// Every user command, relayed to the tray and carried out by `commands::perform` there. Adding
/// a command is a variant of `Command` and its arm in `perform`; the UI's type for it is written
/// from the enum (`window_protocol`).
#[tauri::command]
async fn request(link: State<'_, Link>, command: Command) -> Result<(), CommandError> {
    link.request(command).await
}

/// The help desk, and `start_export` once when the tray menu asked for an export.
#[tauri::command]
fn get_extras(link: State<'_, Link>) -> Extras {
    let extras = link.extras.borrow().clone();
    link.extras.send_modify(|e| e.start_export = false);
    extras
}

/// Applies one message from the tray.
fn apply(app: &AppHandle, msg: ToWindow) {
    let link = app.state::<Link>();
    match msg {
        ToWindow::Status { snapshot } => {
            let _ = app.emit("status", &snapshot);
            link.status.send_replace(Some(snapshot));
        }
        ToWindow::Settings { settings } => {
            let _ = app.emit("settings", settings);
            link.settings.send_replace(Some(settings));
        }
        ToWindow::Personal { view } => {
            let _ = app.emit("personal", &view);
            link.personal.send_replace(Some(view));
        }
        ToWindow::Onboarding { view } => {
            let _ = app.emit("onboarding", &view);
            link.onboarding.send_replace(view.map(|v| *v));
        }
        ToWindow::HelpDesk { desk } => {
            let _ = app.emit("help-desk", &desk);
            link.extras.send_modify(|e| e.help_desk = Some(desk));
        }
        ToWindow::StartExport => {
            // The page may not be loaded yet: it also asks through `get_extras`.
            link.extras.send_modify(|e| e.start_export = true);
            let _ = app.emit("start-export", ());
        }
        ToWindow::ExportPreview { preview } => {
            let _ = app.emit("export-preview", &preview);
        }
        ToWindow::ExportSaved { path } => {
            let _ = app.emit("export-saved", &path);
        }
        ToWindow::Focus => {
            if let Some(w) = app.get_webview_window(WINDOW) {
                let _ = w.unminimize();
                let _ = w.show();
                let _ = w.set_focus();
            }
        }
        ToWindow::Reply { id, error } => {
            if let Some(tx) = link.pending.lock().expect("pending lock").remove(&id) {
                let _ = tx.send(error);
            }
        }
    }
}

/// Reads the tray's messages until stdin closes, then ends the window process.
fn read_tray(app: AppHandle) {
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut stdin).take(MAX_LINE as u64 + 1).read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) if n > MAX_LINE => {
                tracing::warn!("oversized message from the tray; closing the window");
                break;
            }
            Ok(_) => match serde_json::from_str::<ToWindow>(&line) {
                Ok(msg) => apply(&app, msg),
                Err(e) => tracing::warn!("ignoring a malformed message from the tray: {e}"),
            },
        }
    }
    app.exit(0);
}

/// Runs the window process until its window closes.
pub fn run() {
    let link = Link {
        status: watch::Sender::new(None),
        settings: watch::Sender::new(None),
        personal: watch::Sender::new(None),
        onboarding: watch::Sender::new(None),
        extras: watch::Sender::new(Extras::default()),
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        out: Mutex::new(std::io::stdout()),
    };
    let built = tauri::Builder::default()
        .manage(link)
        .invoke_handler(tauri::generate_handler![
            get_status,
            get_settings,
            get_personal,
            get_extras,
            get_onboarding,
            request
        ])
        .setup(|app| {
            WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App("index.html".into()))
                .title("EMA - your connectors")
                .inner_size(860.0, 560.0)
                .min_inner_size(520.0, 320.0)
                .build()?;
            let handle = app.handle().clone();
            std::thread::spawn(move || read_tray(handle));
            Ok(())
        })
        .build(crate::context());
    match built {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("EMA cannot open its status window: {e}");
            std::process::exit(2);
        }
    }
}
