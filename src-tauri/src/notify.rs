//! Shows an [`Alert`] as a desktop notification through notify-rust (the freedesktop
//! `org.freedesktop.Notifications` service on Linux, the notification centre on macOS, toasts on
//! Windows), with the app's identity on each platform. A click on the notification (its default
//! action) opens the status window.
//!
//! notify-rust is the crate the Rust desktop ecosystem uses for this (and the one Tauri's own
//! notification plugin builds on); we call it directly because we need the click, which the
//! plugin does not surface on Linux.

use crate::alerts::Alert;

/// The identity notifications carry (the app's bundle identifier on macOS and Windows).
const APP_ID: &str = "dev.ema.desktop";
const APP_NAME: &str = "EMA";

/// Shows `alert`; `on_click` runs (on a background thread) when the user clicks it.
pub fn show(alert: &Alert, on_click: impl FnOnce() + Send + 'static) {
    let mut n = notify_rust::Notification::new();
    n.summary(&alert.summary).body(&alert.body).appname(APP_NAME);
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        n.action("default", "Open EMA").icon("dialog-warning").hint(notify_rust::Hint::DesktopEntry(APP_ID.into()));
        match n.show() {
            Ok(handle) => {
                // Blocks until the notification is clicked or closed, so it gets its own thread.
                std::thread::spawn(move || {
                    handle.wait_for_action(|action| {
                        if action == "default" {
                            on_click();
                        }
                    })
                });
            }
            Err(e) => tracing::warn!("cannot show a notification: {e}"),
        }
    }
    #[cfg(target_os = "macos")]
    {
        let _ = notify_rust::set_application(APP_ID);
        let _ = on_click;
        if let Err(e) = n.show() {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
    #[cfg(target_os = "windows")]
    {
        n.app_id(APP_ID);
        let _ = on_click;
        if let Err(e) = n.show() {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
}
