//! What the tray app keeps in Tauri's managed state besides its services, and the small
//! readers every part uses: the engine (once there is a policy), the settings the window and menu
//! show, the user's time zone, and the recent log for the diagnostics bundle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ema_core::diagnostics::log_ring::LogRing;
use ema_core::engine::Engine;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt;

use crate::window_protocol::AppSettings;

/// Whether desktop notifications are on: the policy's value at start, then the user's choice.
pub(crate) struct NotificationsOn(pub AtomicBool);

/// The engine, once there is a policy (`None` while the app is not set up).
pub(crate) fn engine_of<R: Runtime>(app: &AppHandle<R>) -> Option<Arc<Engine>> {
    app.try_state::<Arc<Engine>>().map(|e| e.inner().clone())
}

pub(crate) fn settings<R: Runtime>(app: &AppHandle<R>) -> AppSettings {
    let locked = |key: &str| engine_of(app).is_some_and(|e| e.policy().settings.locked.contains(&key));
    AppSettings {
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
        autostart_locked: locked("start_at_login"),
        notifications: app.state::<NotificationsOn>().0.load(Ordering::Relaxed),
        notifications_locked: locked("notifications"),
    }
}

/// The user's current UTC offset (chrono reads the system time zone; `time` refuses to in a
/// multi-threaded process on Linux). Asked on every render, so a DST change is picked up.
/// [`local_offset`] for the diagnostics bundle.
pub(crate) fn local_offset_opt() -> Option<time::UtcOffset> {
    Some(local_offset())
}

/// The recent log of the tray process, for "Export diagnostics...".
pub(crate) static LOG: std::sync::OnceLock<LogRing> = std::sync::OnceLock::new();

pub(crate) fn local_offset() -> time::UtcOffset {
    let secs = chrono::Local::now().offset().local_minus_utc();
    time::UtcOffset::from_whole_seconds(secs).unwrap_or(time::UtcOffset::UTC)
}
