//! The tray's one connection to the D-Bus session bus on Linux, shared by the single-instance
//! name (`single_instance`) and desktop notifications (`notify`).
//!
//! Why dbus-rs driven by dbus-tokio, and not zbus (which Tauri's single-instance plugin and
//! notify-rust's default backend use): the app already loads libdbus through dbus-rs (the OS
//! keyring's Secret Service client and tao both use it), and a second D-Bus implementation in
//! the executable cost 0.8 MiB of the idle tray's PSS (docs/tray.md). dbus-tokio reads the
//! connection's socket on the app's tokio runtime: no thread and no timer of its own, so the idle
//! tray does not wake for it (notify-rust's own libdbus backend polls every second while a
//! notification is on screen).

use std::sync::Arc;

use dbus::nonblock::SyncConnection;

/// A connection to the session bus, read on the app's tokio runtime for as long as the app runs.
pub type Bus = Arc<SyncConnection>;

/// Connects to the session bus (`DBUS_SESSION_BUS_ADDRESS`) and starts reading it on Tauri's
/// tokio runtime.
pub fn connect() -> Result<Bus, dbus::Error> {
    let (resource, conn) = dbus_tokio::connection::new_session_sync()?;
    tauri::async_runtime::spawn(async move {
        // Resolves only when the connection is lost (the session is ending).
        let e = resource.await;
        tracing::warn!("lost the D-Bus session bus: {e}");
    });
    Ok(conn)
}

/// For tests (on `#[tokio::test]`'s runtime): a connection of its own, and the task reading it,
/// which a test aborts to play an app that stopped answering or ended.
#[cfg(test)]
pub fn connect_in_test() -> (Bus, tokio::task::JoinHandle<dbus_tokio::connection::IOResourceError>) {
    let (resource, conn) = dbus_tokio::connection::new_session_sync().expect("a D-Bus session bus");
    (conn, tokio::spawn(resource))
}
