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

/// Shows `alert`; `on_click` runs when the user clicks it.
///
/// On Linux this is async end to end (notify-rust's zbus API on the app's tokio runtime): waiting
/// for the click holds no thread, and zbus needs no thread pool of its own (see `Cargo.toml`).
pub async fn show(alert: Alert, on_click: impl FnOnce() + Send + 'static) {
    let mut n = notify_rust::Notification::new();
    n.summary(&alert.summary).body(&alert.body).appname(APP_NAME);
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        n.action("default", "Open EMA").icon("dialog-warning").hint(notify_rust::Hint::DesktopEntry(APP_ID.into()));
        match n.show_async().await {
            // Resolves when the notification is clicked or closed.
            Ok(handle) => {
                handle
                    .wait_for_action_async(|response| {
                        if matches!(response, notify_rust::ActionResponse::Custom("default")) {
                            on_click();
                        }
                    })
                    .await
            }
            Err(e) => tracing::warn!("cannot show a notification: {e}"),
        }
    }
    #[cfg(target_os = "macos")]
    {
        let _ = on_click;
        let shown = tokio::task::spawn_blocking(move || {
            let _ = notify_rust::set_application(APP_ID);
            n.show().map(drop)
        });
        if let Ok(Err(e)) = shown.await {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
    #[cfg(target_os = "windows")]
    {
        let _ = on_click;
        n.app_id(APP_ID);
        let shown = tokio::task::spawn_blocking(move || n.show());
        if let Ok(Err(e)) = shown.await {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
}
