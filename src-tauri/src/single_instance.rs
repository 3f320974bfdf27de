//! One tray per desktop session on Linux, the way D-Bus-activatable desktop apps do it.
//!
//! The first instance owns the bus name `dev.ema.desktop` (the app id) and serves
//! `org.freedesktop.Application.Activate` at `/dev/ema/desktop` (Desktop Entry Specification,
//! "D-Bus Activation"). A second launch finds the name taken, calls `Activate` on its owner (which
//! opens its status window) and exits. The bus makes the claim atomic: of two launches at the same
//! moment exactly one gets the name, and a crashed instance's name is freed with its connection,
//! so there is nothing stale to clean up. Scoped to the session bus, as Tauri's single-instance
//! plugin (used on macOS and Windows) is on Linux; `gapplication launch dev.ema.desktop` also
//! activates the running app.

use std::time::Duration;

use dbus::Message;
use dbus::arg::PropMap;
use dbus::channel::{MatchingReceiver, Sender};
use dbus::message::MatchRule;
use dbus::nonblock::stdintf::org_freedesktop_dbus::RequestNameReply;
use dbus::nonblock::{Proxy, SyncConnection};
use dbus::strings::Path;
use tokio::sync::mpsc::UnboundedReceiver;

/// The interface of D-Bus-activatable applications (Desktop Entry Specification).
const APPLICATION_INTERFACE: &str = "org.freedesktop.Application";

/// How long a second launch waits for the running instance to answer.
pub const ACTIVATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of claiming the app's name.
#[derive(Debug)]
pub enum Claim {
    /// This process is the app: each later launch's activation arrives on the receiver.
    First(UnboundedReceiver<()>),
    /// Another instance is the app; it has been asked to show itself.
    AlreadyRunning,
}

/// Why the name could not be claimed.
#[derive(Debug)]
pub enum ClaimError {
    /// The bus refused the request: the app can still run, without the check.
    Bus(dbus::Error),
    /// Another instance holds the name and did not answer `Activate`.
    NotAnswering(dbus::Error),
}

/// The object path the Desktop Entry Specification derives from an app id: `/` and the id with
/// `.` as `/` and `-` as `_`.
pub fn object_path(app_id: &str) -> String {
    format!("/{}", app_id.replace('.', "/").replace('-', "_"))
}

/// Claims `app_id` on `bus`, or activates the instance that holds it.
pub async fn claim(bus: &SyncConnection, app_id: &str, timeout: Duration) -> Result<Claim, ClaimError> {
    let path = Path::new(object_path(app_id)).map_err(|e| ClaimError::Bus(dbus::Error::new_failed(&e)))?;
    // Serve `Activate` before asking for the name: a call that arrives between the two would
    // otherwise be answered "unknown method".
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let rule = MatchRule::new_method_call().with_path(path.clone()).with_interface(APPLICATION_INTERFACE);
    let token = bus.start_receive(
        rule,
        Box::new(move |call: Message, conn: &SyncConnection| {
            let reply = if call.member().as_deref() == Some("Activate") {
                let _ = tx.send(());
                Some(call.method_return())
            } else {
                dbus::channel::default_reply(&call)
            };
            if let Some(reply) = reply {
                let _ = conn.send(reply);
            }
            true
        }),
    );
    // Not queued: a second instance must not wait to inherit the name, it hands over and exits.
    match bus.request_name(app_id, false, false, true).await.map_err(ClaimError::Bus)? {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => Ok(Claim::First(rx)),
        RequestNameReply::Exists | RequestNameReply::InQueue => {
            bus.stop_receive(token);
            let owner = Proxy::new(app_id, path, timeout, bus);
            owner
                .method_call::<(), _, _, _>(APPLICATION_INTERFACE, "Activate", (PropMap::new(),))
                .await
                .map_err(ClaimError::NotAnswering)?;
            Ok(Claim::AlreadyRunning)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the session bus of the test session (scripts/with-desktop-session.sh), each test
    //! with a name of its own.
    use super::*;

    fn unique_app_id(test: &str) -> String {
        format!("dev.ema.test.single_instance.{test}.p{}", std::process::id())
    }

    use crate::session_bus::connect_in_test as connect_with_handle;

    fn connect() -> std::sync::Arc<SyncConnection> {
        connect_with_handle().0
    }

    async fn has_owner(bus: &std::sync::Arc<SyncConnection>, name: &str) -> bool {
        let daemon = Proxy::new("org.freedesktop.DBus", "/org/freedesktop/DBus", ACTIVATE_TIMEOUT, bus.clone());
        let (owned,): (bool,) = daemon.method_call("org.freedesktop.DBus", "NameHasOwner", (name,)).await.unwrap();
        owned
    }

    #[test]
    fn the_object_path_follows_the_desktop_entry_spec() {
        assert_eq!(object_path("dev.ema.desktop"), "/dev/ema/desktop");
        assert_eq!(object_path("org.example.my-app"), "/org/example/my_app");
    }

    #[tokio::test]
    async fn a_second_launch_activates_the_first_and_is_told_so() {
        let app_id = unique_app_id("activate");
        let first = connect();
        let Claim::First(mut activations) = claim(&first, &app_id, ACTIVATE_TIMEOUT).await.unwrap() else {
            panic!("the first claim must own the name")
        };
        assert!(activations.try_recv().is_err(), "no activation before a second launch");

        let second = connect();
        let outcome = claim(&second, &app_id, ACTIVATE_TIMEOUT).await.unwrap();
        assert!(matches!(outcome, Claim::AlreadyRunning), "{outcome:?}");
        tokio::time::timeout(Duration::from_secs(5), activations.recv())
            .await
            .expect("the first instance is activated")
            .expect("its channel is open");

        // A third launch, once more: one activation each.
        let third = connect();
        assert!(matches!(claim(&third, &app_id, ACTIVATE_TIMEOUT).await.unwrap(), Claim::AlreadyRunning));
        tokio::time::timeout(Duration::from_secs(5), activations.recv()).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_name_is_free_again_when_the_first_instance_is_gone() {
        let app_id = unique_app_id("gone");
        let (first, reader) = connect_with_handle();
        assert!(matches!(claim(&first, &app_id, ACTIVATE_TIMEOUT).await.unwrap(), Claim::First(_)));
        let next = connect();
        assert!(has_owner(&next, &app_id).await);
        // The first instance ends without a word, as a crash would: its connection closes.
        reader.abort();
        let _ = reader.await;
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while has_owner(&next, &app_id).await {
            assert!(tokio::time::Instant::now() < deadline, "the bus must free the name of a closed connection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(claim(&next, &app_id, ACTIVATE_TIMEOUT).await.unwrap(), Claim::First(_)));
    }

    #[tokio::test]
    async fn a_first_instance_that_does_not_answer_is_reported_as_such() {
        let app_id = unique_app_id("stuck");
        let (first, reader) = connect_with_handle();
        assert!(matches!(claim(&first, &app_id, ACTIVATE_TIMEOUT).await.unwrap(), Claim::First(_)));
        // Its connection stays open but nothing reads it any more: a hung app.
        reader.abort();
        let _ = reader.await;
        let second = connect();
        let outcome = claim(&second, &app_id, Duration::from_millis(500)).await;
        assert!(matches!(outcome, Err(ClaimError::NotAnswering(_))), "{outcome:?}");
        drop(first);
    }

    #[tokio::test]
    async fn other_methods_on_the_app_path_are_refused_as_unknown() {
        let app_id = unique_app_id("unknown");
        let first = connect();
        let Claim::First(mut activations) = claim(&first, &app_id, ACTIVATE_TIMEOUT).await.unwrap() else {
            panic!("the first claim must own the name")
        };
        let caller = connect();
        let proxy = Proxy::new(app_id.as_str(), object_path(&app_id), ACTIVATE_TIMEOUT, caller.clone());
        let err = proxy
            .method_call::<(), _, _, _>(APPLICATION_INTERFACE, "Open", (Vec::<String>::new(), PropMap::new()))
            .await
            .unwrap_err();
        assert_eq!(err.name(), Some("org.freedesktop.DBus.Error.UnknownMethod"), "{err:?}");
        assert!(activations.try_recv().is_err(), "only Activate activates");
    }
}
