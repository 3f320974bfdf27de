//! Shows an [`Alert`] as a desktop notification with the app's identity on each platform: the
//! freedesktop notification service (`org.freedesktop.Notifications`, Desktop Notifications
//! Specification 1.2) on Linux, the notification centre on macOS, toasts on Windows. A click on
//! the notification (its default action) opens the status window.
//!
//! On Linux the app speaks the specification itself over its session-bus connection
//! (`session_bus`: one `Notify` call, and the `ActionInvoked` and `NotificationClosed` signals,
//! heard through one pair of matches for all notifications): waiting for a click holds no thread
//! and no timer. notify-rust, the ecosystem's crate, does the same on macOS and Windows; on Linux
//! its default backend brings zbus, a second D-Bus implementation (0.8 MiB of idle PSS), and its
//! libdbus backend waits for each click on a thread that wakes every second. Tauri's notification
//! plugin does not surface the click on Linux.

use crate::alerts::Alert;

/// `text` as literal text for a notification service that reads markup.
///
/// Alerts quote servers' words (scrubbed, but otherwise theirs). The Desktop Notifications
/// Specification ("Markup") lets a service that advertises `body-markup` render `<b>`, `<i>`,
/// `<u>`, `<a href>` and `<img>` in the body, and some (dunst) apply markup to the summary too; a
/// hostile server's `<a href=...>click here</a>` became a link inside an EMA notification (issue
/// 14 item 7). Escaping `&`, `<` and `>` as the specification's XML-based markup says shows the
/// text as sent.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` for a toast on Windows, which is built as XML by the toast library: the characters that
/// could open markup are replaced by look-alikes, so the text shows as sent whether or not the
/// library escapes it (escaping here would show `&lt;` if it does).
#[cfg(any(target_os = "windows", test))]
pub fn defuse_markup(text: &str) -> String {
    text.replace('&', "\u{FF06}").replace('<', "\u{2039}").replace('>', "\u{203A}")
}

/// The identity notifications carry: the desktop entry on Linux, the bundle identifier on macOS
/// and Windows.
pub const APP_ID: &str = "dev.ema.desktop";
const APP_NAME: &str = "EMA";

#[cfg(target_os = "linux")]
pub use freedesktop::Notifier;

#[cfg(target_os = "linux")]
mod freedesktop {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use dbus::arg::{PropMap, RefArg, Variant};
    use dbus::message::MatchRule;
    use dbus::nonblock::{MsgMatch, Proxy};

    use super::{APP_ID, APP_NAME, Alert};
    use crate::session_bus::Bus;

    /// The well-known name, object path and interface of the notification service.
    pub const SERVICE: &str = "org.freedesktop.Notifications";
    const PATH: &str = "/org/freedesktop/Notifications";
    const INTERFACE: &str = "org.freedesktop.Notifications";
    /// The action a click on the notification's body invokes (the specification's "default").
    const DEFAULT_ACTION: &str = "default";
    const CALL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Click handlers kept at most: a service that never reports closed notifications (some keep
    /// them in a notification centre) must not make the list grow for the app's life; the lowest id
    /// (services number them upward) goes first.
    pub const MAX_WAITING: usize = 64;

    type OnClick = Box<dyn FnOnce() + Send>;

    /// Shows notifications and runs each one's click handler; cheap to clone.
    #[derive(Clone)]
    pub struct Notifier {
        bus: Option<Bus>,
        service: String,
        /// The click handler of each notification on screen, by its id.
        waiting: Arc<Mutex<HashMap<u32, OnClick>>>,
        /// The signal matches, added with the first notification, kept for the app's life.
        heard: Arc<tokio::sync::OnceCell<(MsgMatch, MsgMatch)>>,
    }

    impl Notifier {
        /// A notifier on the session bus, or one that only logs when there is none.
        pub fn new(bus: Option<Bus>) -> Self {
            Self::with_service(bus, SERVICE.into())
        }

        /// A notifier that talks to `service` (tests run their own).
        pub fn with_service(bus: Option<Bus>, service: String) -> Self {
            Notifier { bus, service, waiting: Arc::default(), heard: Arc::default() }
        }

        /// Shows `alert`; `on_click` runs if the user clicks it.
        pub async fn show(&self, alert: Alert, on_click: impl FnOnce() + Send + 'static) {
            if let Err(e) = self.try_show(&alert, Box::new(on_click)).await {
                tracing::warn!("cannot show a notification: {e}");
            }
        }

        async fn try_show(&self, alert: &Alert, on_click: OnClick) -> Result<u32, dbus::Error> {
            let Some(bus) = &self.bus else {
                return Err(dbus::Error::new_failed("no D-Bus session bus"));
            };
            // Listening first, so no click can come before its handler is known.
            if let Err(e) = self.heard.get_or_try_init(|| self.listen(bus)).await {
                tracing::warn!("notifications will not open the window when clicked: {e}");
            }
            let mut hints = PropMap::new();
            hints.insert("desktop-entry".into(), Variant(Box::new(APP_ID.to_string()) as Box<dyn RefArg>));
            let service = Proxy::new(self.service.as_str(), PATH, CALL_TIMEOUT, bus.clone());
            // Notify(app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout)
            let (id,): (u32,) = service
                .method_call(
                    INTERFACE,
                    "Notify",
                    (
                        APP_NAME,
                        0u32,
                        "dialog-warning",
                        super::escape_markup(&alert.summary),
                        super::escape_markup(&alert.body),
                        vec![DEFAULT_ACTION, "Open EMA"],
                        hints,
                        -1i32,
                    ),
                )
                .await?;
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            if waiting.len() >= MAX_WAITING
                && let Some(oldest) = waiting.keys().min().copied()
            {
                waiting.remove(&oldest);
            }
            waiting.insert(id, on_click);
            Ok(id)
        }

        /// Matches `ActionInvoked(id, action)` and `NotificationClosed(id, reason)` from the service.
        async fn listen(&self, bus: &Bus) -> Result<(MsgMatch, MsgMatch), dbus::Error> {
            let rule = |member: &'static str| {
                MatchRule::new_signal(INTERFACE, member).with_path(PATH).with_sender(self.service.clone())
            };
            let waiting = self.waiting.clone();
            let invoked = bus.add_match(rule("ActionInvoked")).await?.cb(move |_, (id, action): (u32, String)| {
                if action == DEFAULT_ACTION {
                    let clicked = waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    if let Some(on_click) = clicked {
                        on_click();
                    }
                }
                true
            });
            let waiting = self.waiting.clone();
            let closed = bus.add_match(rule("NotificationClosed")).await?.cb(move |_, (id, _reason): (u32, u32)| {
                waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                true
            });
            Ok((invoked, closed))
        }

        #[cfg(test)]
        pub fn waiting(&self) -> usize {
            self.waiting.lock().unwrap().len()
        }
    }

    #[cfg(test)]
    mod tests {
        //! Against a notification service of the test's own on the test session's bus
        //! (scripts/with-desktop-session.sh): what `Notify` carries, and which signals count.
        use std::sync::Mutex;

        use dbus::Message;
        use dbus::channel::{MatchingReceiver, Sender};
        use dbus::nonblock::SyncConnection;
        use tokio::sync::mpsc;

        use super::*;

        /// What a `Notify` call carried: app name, summary, body, actions, desktop entry.
        type Call = (String, String, String, Vec<String>, String);

        struct Service {
            name: String,
            conn: Arc<SyncConnection>,
            calls: Arc<Mutex<Vec<Call>>>,
        }

        fn connect() -> Bus {
            crate::session_bus::connect_in_test().0
        }

        /// A notification service that records each `Notify` and answers ids 1, 2, ...
        async fn service(test: &str) -> Service {
            let name = format!("dev.ema.test.notifications.{test}.p{}", std::process::id());
            let conn = connect();
            let calls: Arc<Mutex<Vec<_>>> = Arc::default();
            let recorded = calls.clone();
            conn.start_receive(
                MatchRule::new_method_call().with_path(PATH).with_interface(INTERFACE).with_member("Notify"),
                Box::new(move |call: Message, conn: &SyncConnection| {
                    type Notify = (String, u32, String, String, String, Vec<String>, PropMap, i32);
                    let (app, _, _, summary, body, actions, hints, _): Notify = call.read_all().unwrap();
                    let entry = hints.get("desktop-entry").and_then(|v| v.0.as_str()).unwrap_or("").to_string();
                    let mut calls = recorded.lock().unwrap();
                    calls.push((app, summary, body, actions, entry));
                    let _ = conn.send(call.method_return().append1(calls.len() as u32));
                    true
                }),
            );
            conn.request_name(name.as_str(), false, false, true).await.unwrap();
            Service { name, conn, calls }
        }

        fn signal(member: &str, id: u32, second: impl dbus::arg::Append) -> Message {
            Message::new_signal(PATH, INTERFACE, member).unwrap().append2(id, second)
        }

        fn alert(summary: &str) -> Alert {
            Alert { summary: summary.into(), body: "Renewal failed; sign in again.".into() }
        }

        #[tokio::test]
        async fn notify_carries_the_alert_the_identity_and_a_default_action() {
            let service = service("carries").await;
            let notifier = Notifier::with_service(Some(connect()), service.name.clone());
            notifier.show(alert("Linear needs you"), || {}).await;
            let calls = service.calls.lock().unwrap().clone();
            assert_eq!(calls.len(), 1, "{calls:?}");
            let (app, summary, body, actions, entry) = &calls[0];
            assert_eq!((app.as_str(), summary.as_str()), ("EMA", "Linear needs you"));
            assert_eq!(body, "Renewal failed; sign in again.");
            assert_eq!(actions, &["default", "Open EMA"]);
            assert_eq!(entry, APP_ID);
        }

        /// Issue 14 item 7: a hostile server's words became a clickable link in an EMA notification.
        #[tokio::test]
        async fn server_text_reaches_the_service_as_text_not_markup() {
            let service = service("markup").await;
            let notifier = Notifier::with_service(Some(connect()), service.name.clone());
            let hostile = Alert {
                summary: "Linear <b>needs</b> you".into(),
                body: "<a href=\"https://evil.example\">Your token was revoked - click here</a> & more".into(),
            };
            notifier.show(hostile, || {}).await;
            let calls = service.calls.lock().unwrap().clone();
            let (_, summary, body, _, _) = &calls[0];
            assert_eq!(summary, "Linear &lt;b&gt;needs&lt;/b&gt; you");
            assert_eq!(
                body,
                "&lt;a href=\"https://evil.example\"&gt;Your token was revoked - click here&lt;/a&gt; &amp; more"
            );
        }

        #[tokio::test]
        async fn a_click_runs_that_notifications_handler_once_and_closing_forgets_it() {
            let service = service("click").await;
            let notifier = Notifier::with_service(Some(connect()), service.name.clone());
            let (clicked, mut clicks) = mpsc::unbounded_channel();
            for which in ["first", "second"] {
                let clicked = clicked.clone();
                notifier.show(alert(which), move || clicked.send(which).unwrap()).await;
            }
            assert_eq!(notifier.waiting(), 2);

            // Another action than the default one, and the default one on the second notification.
            service.conn.send(signal("ActionInvoked", 2, "snooze")).unwrap();
            service.conn.send(signal("ActionInvoked", 2, "default")).unwrap();
            let first = tokio::time::timeout(Duration::from_secs(5), clicks.recv()).await.unwrap();
            assert_eq!(first, Some("second"));
            // The service closes the first one: its handler is dropped, never run.
            service.conn.send(signal("NotificationClosed", 1, 2u32)).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while notifier.waiting() > 0 {
                assert!(tokio::time::Instant::now() < deadline, "both notifications are settled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            service.conn.send(signal("ActionInvoked", 2, "default")).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(clicks.try_recv().is_err(), "a handler runs once");
        }

        #[tokio::test]
        async fn handlers_of_notifications_never_closed_are_capped_oldest_first() {
            let service = service("capped").await;
            let notifier = Notifier::with_service(Some(connect()), service.name.clone());
            let (clicked, mut clicks) = mpsc::unbounded_channel();
            for n in 1..=MAX_WAITING + 3 {
                let clicked = clicked.clone();
                notifier.show(alert(&format!("cause {n}")), move || clicked.send(n).unwrap()).await;
            }
            assert_eq!(notifier.waiting(), MAX_WAITING);
            for id in [1u32, (MAX_WAITING + 3) as u32] {
                service.conn.send(signal("ActionInvoked", id, "default")).unwrap();
            }
            let newest = tokio::time::timeout(Duration::from_secs(5), clicks.recv()).await.unwrap();
            assert_eq!(newest, Some(MAX_WAITING + 3), "the oldest handler went, the newest is kept");
        }

        #[tokio::test]
        async fn a_click_signal_from_anyone_but_the_service_is_ignored() {
            let service = service("impostor").await;
            let notifier = Notifier::with_service(Some(connect()), service.name.clone());
            let (clicked, mut clicks) = mpsc::unbounded_channel();
            notifier.show(alert("only"), move || clicked.send(()).unwrap()).await;
            let impostor = connect();
            impostor.send(signal("ActionInvoked", 1, "default")).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(clicks.try_recv().is_err(), "another client's signal must not count as a click");
            service.conn.send(signal("ActionInvoked", 1, "default")).unwrap();
            tokio::time::timeout(Duration::from_secs(5), clicks.recv()).await.unwrap().unwrap();
        }

        #[tokio::test]
        async fn without_a_service_showing_fails_quietly_and_keeps_nothing() {
            let notifier = Notifier::with_service(Some(connect()), "dev.ema.test.nobody.here".into());
            notifier.show(alert("lost"), || panic!("never clicked")).await;
            assert_eq!(notifier.waiting(), 0);
            Notifier::new(None).show(alert("no bus"), || panic!("never clicked")).await;
        }
    }
}

/// Shows notifications through notify-rust; cheap to clone.
#[cfg(not(target_os = "linux"))]
#[derive(Clone, Default)]
pub struct Notifier;

#[cfg(not(target_os = "linux"))]
impl Notifier {
    /// Shows `alert`. A click brings the app forward (the system's behaviour); `on_click` is
    /// kept for the Linux signature.
    pub async fn show(&self, alert: Alert, on_click: impl FnOnce() + Send + 'static) {
        let _ = on_click;
        let mut n = notify_rust::Notification::new();
        // macOS shows notification text as plain text; Windows builds the toast as XML.
        #[cfg(target_os = "windows")]
        let (summary, body) = (defuse_markup(&alert.summary), defuse_markup(&alert.body));
        #[cfg(not(target_os = "windows"))]
        let (summary, body) = (alert.summary.clone(), alert.body.clone());
        n.summary(&summary).body(&body).appname(APP_NAME);
        #[cfg(target_os = "windows")]
        n.app_id(APP_ID);
        let shown = tokio::task::spawn_blocking(move || {
            #[cfg(target_os = "macos")]
            let _ = notify_rust::set_application(APP_ID);
            n.show().map(drop)
        });
        if let Ok(Err(e)) = shown.await {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
}

#[cfg(test)]
mod markup_tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped_or_defused_and_nothing_else_changes() {
        assert_eq!(escape_markup("a <b>&</b> c"), "a &lt;b&gt;&amp;&lt;/b&gt; c");
        assert_eq!(escape_markup("&amp;"), "&amp;amp;", "already-escaped text is shown as sent");
        assert_eq!(escape_markup("Linear: sign in again (2 min)"), "Linear: sign in again (2 min)");
        let defused = defuse_markup("<a href=\"x\">y</a> & z");
        assert!(!defused.contains(['<', '>', '&']), "{defused}");
        assert_eq!(defuse_markup("plain text"), "plain text");
    }
}
