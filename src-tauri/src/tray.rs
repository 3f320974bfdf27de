//! The tray icon and its menu: drawn from each status snapshot (`presenter::tray_view`), with
//! the window, the notifications and the personal-account view updated from the same snapshot.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ema_core::engine::Engine;
use ema_core::status::StatusSnapshot;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::{AppHandle, Manager, Runtime};

use crate::alerts::Alerts;
use crate::app_state::{NotificationsOn, local_offset, settings};
use crate::commands::perform;
use crate::onboarding::Onboarding;
use crate::personal::Personal;
use crate::presenter::{TrayIcon, TrayView, tray_view};
use crate::window_host::{WindowHost, onboarding_view, open_window, show_notification};
use crate::window_protocol::{AppSettings, Command, ToWindow};

pub(crate) const TRAY_ID: &str = "ema";

/// The tray icon for a state: coloured discs, and on macOS template images (black shapes the
/// menu bar tints for light and dark mode, `icon_as_template`).
pub(crate) fn tray_image(icon: TrayIcon) -> Image<'static> {
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

pub(crate) fn menu<R: Runtime>(app: &AppHandle<R>, view: &TrayView, autostart: AppSettings) -> tauri::Result<Menu<R>> {
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
    // "Sign in..." whenever a fix names it (`presenter::fix_in_tray`), signed in or not.
    if view.offer_sign_in {
        menu.append(&MenuItem::with_id(app, "sign-in", "Sign in...", true, None::<&str>)?)?;
    }
    if view.signed_in {
        menu.append(&MenuItem::with_id(app, "refresh", "Refresh now", true, None::<&str>)?)?;
        menu.append(&MenuItem::with_id(app, "sign-out", "Sign out", true, None::<&str>)?)?;
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
pub(crate) fn render<R: Runtime>(app: &AppHandle<R>, snapshot: &StatusSnapshot) {
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
        app.state::<WindowHost>()
            .send(ToWindow::Onboarding { view: Some(Box::new(onboarding_view(app, Some(snapshot)))) });
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
pub(crate) async fn follow_status<R: Runtime>(app: AppHandle<R>, engine: Arc<Engine>) {
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

pub(crate) fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
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

/// The menu of an app with no policy yet.
pub(crate) fn setup_menu<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(app, "identity", "EMA is not set up", false, None::<&str>)?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, "set-up", "Set up EMA...", true, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit EMA", true, None::<&str>)?)?;
    Ok(menu)
}
