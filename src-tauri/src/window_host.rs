//! The tray side of the status window: starts the window process on demand, feeds it status and
//! settings, and carries out the commands it sends (see `window_protocol` for why the window is a
//! process of its own).

use std::process::Stdio;
use std::sync::{Mutex, PoisonError};

use ema_core::status::StatusSnapshot;
use tauri::{AppHandle, Manager, Runtime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::alerts::Alert;
use crate::app_state::{engine_of, settings};
use crate::onboarding::{self, Onboarding};
use crate::personal::Personal;
use crate::views::{HelpDeskView, OnboardingView};
use crate::window_protocol::{FromWindow, MAX_LINE, ToWindow, encode};

/// The running window process, if any.
#[derive(Default)]
pub struct WindowHost {
    link: Mutex<Option<Link>>,
}

struct Link {
    generation: u64,
    to_window: mpsc::UnboundedSender<ToWindow>,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl WindowHost {
    /// Sends `msg` to the window, if it is open.
    pub fn send(&self, msg: ToWindow) {
        if let Some(link) = self.link.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            let _ = link.to_window.send(msg);
        }
    }

    /// Opens the window: raises it when its process runs, else starts the process and sends it the
    /// current state (`initial`).
    pub fn open<R: Runtime>(&self, app: &AppHandle<R>, initial: Vec<ToWindow>) {
        let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = link.as_ref()
            && l.to_window.send(ToWindow::Focus).is_ok()
        {
            return;
        }
        match spawn(app, initial) {
            Ok(l) => *link = Some(l),
            Err(e) => tracing::error!("cannot open the status window: {e}"),
        }
    }

    fn closed(&self, generation: u64) {
        let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        if link.as_ref().is_some_and(|l| l.generation == generation) {
            *link = None;
        }
    }
}

fn spawn<R: Runtime>(app: &AppHandle<R>, initial: Vec<ToWindow>) -> std::io::Result<Link> {
    let exe = std::env::current_exe()?;
    // Called from menu and setup callbacks on the GUI thread: tokio's child reaper needs the runtime.
    let runtime = tauri::async_runtime::handle();
    let _entered = runtime.inner().enter();
    let mut child = tokio::process::Command::new(exe)
        .arg("--window")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false)
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<ToWindow>();
    for msg in initial {
        let _ = tx.send(msg);
    }
    // Writer: one line per message, in order; ends when the window's stdin closes.
    tauri::async_runtime::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if stdin.write_all(encode(&msg).as_bytes()).await.is_err() {
                break;
            }
        }
    });
    // Reader: the window's requests, each carried out concurrently and answered by id.
    let reply = tx.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) if line.len() <= MAX_LINE => line,
                Ok(Some(_)) => {
                    tracing::warn!("the status window sent an oversized line; closing it");
                    let _ = child.start_kill();
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            match serde_json::from_str::<FromWindow>(&line) {
                Ok(FromWindow::Request { id, command }) => {
                    let app = app.clone();
                    let reply = reply.clone();
                    tauri::async_runtime::spawn(async move {
                        let error = crate::commands::perform(&app, command).await.err();
                        let _ = reply.send(ToWindow::Reply { id, error });
                    });
                }
                Err(e) => tracing::warn!("ignoring a malformed message from the status window: {e}"),
            }
        }
        let _ = child.wait().await;
        app.state::<WindowHost>().closed(generation);
        crate::commands::window_closed(&app);
        tracing::debug!("the status window process has exited");
    });
    Ok(Link { generation, to_window: tx })
}

/// The welcome screens' view for `snapshot`, with the app's policy and last personal scan.
pub(crate) fn onboarding_view<R: Runtime>(app: &AppHandle<R>, snapshot: Option<&StatusSnapshot>) -> OnboardingView {
    let engine = engine_of(app);
    let personal = app.try_state::<Personal>();
    onboarding::view(engine.as_ref().map(|e| e.policy()), snapshot, personal.as_deref())
}

/// Shows `alert` as a desktop notification; a click on it opens the status window.
pub(crate) fn show_notification<R: Runtime>(app: &AppHandle<R>, alert: Alert) {
    let notifier = app.state::<crate::notify::Notifier>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move { notifier.show(alert, move || open_window(&app)).await });
}

/// Opens the status window (a process of its own), or raises it when it is open.
pub(crate) fn open_window<R: Runtime>(app: &AppHandle<R>) {
    let engine = engine_of(app);
    let mut initial = Vec::new();
    // The onboarding view before the settings (which the window waits for), so the window
    // starts on the right screen.
    if app.state::<Onboarding>().active() || engine.is_none() {
        let snapshot = engine.as_ref().map(|e| e.snapshot());
        initial.push(ToWindow::Onboarding { view: Some(Box::new(onboarding_view(app, snapshot.as_ref()))) });
    }
    initial.push(ToWindow::Settings { settings: settings(app) });
    if let Some(engine) = &engine {
        if let Some(h) = &engine.policy().organization.help_desk {
            initial.push(ToWindow::HelpDesk { desk: HelpDeskView { name: h.name.clone(), url: h.url.to_string() } });
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
