//! The dispatcher and the tray menu on tauri's mock runtime (`tauri::test`): the app's real
//! state and plugins (`with_state`), an engine on an in-memory store whose network answers
//! nothing, and no window system.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ema_core::config::{ConfigSource, Policy};
use ema_core::engine::{Engine, EngineParts};
use ema_core::http::{HttpRequest, HttpResponse, Transport, TransportError};
use ema_core::mcp_check::{McpCheckError, McpProbe, McpServerInfo};
use ema_core::secret::AccessToken;
use ema_core::store::MemoryStore;
use futures::future::BoxFuture;
use tauri::menu::MenuItemKind;
use tauri::test::{MockRuntime, mock_builder, mock_context, noop_assets};
use tauri::{App, Manager};
use url::Url;

use crate::app_state::{NotificationsOn, settings};
use crate::commands::perform;
use crate::presenter::{PersonalCounts, tray_view};
use crate::window_protocol::Command;

/// No network: every request fails to connect.
#[derive(Debug)]
struct Offline;

impl Transport for Offline {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let url = request.uri().to_string();
        Box::pin(async move {
            Err(TransportError::Connect {
                url,
                kind: ema_core::http::NetworkFailure::Other,
                reason: "offline (test)".into(),
            })
        })
    }
}

impl McpProbe for Offline {
    fn check<'a>(&'a self, url: &'a Url, _: &'a AccessToken) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(async move { Err(McpCheckError::Failed(format!("{url} is offline (test)"))) })
    }
}

/// The app's state on the mock runtime; `settings` is the policy's `settings` object.
fn app(settings: Option<serde_json::Value>) -> App<MockRuntime> {
    let app = crate::with_state(mock_builder(), None).build(mock_context(noop_assets())).expect("a mock app");
    if let Some(settings) = settings {
        app.manage(engine(settings));
    }
    app
}

fn engine(settings: serde_json::Value) -> Arc<Engine> {
    let text = serde_json::json!({
        "schema_version": 1,
        "organization": {"name": "Acme"},
        "idp": {"issuer": "https://idp.acme.example", "client_id": "ema-desktop", "client_auth": {"method": "none"}},
        "connectors": [{"id": "linear", "display_name": "Linear", "mcp_url": "https://mcp.linear.example/mcp",
                        "client_id": "ema-linear", "client_auth": {"method": "none"}, "scopes": ["read"]}],
        "settings": settings,
    })
    .to_string();
    let policy = Policy::parse(&text, ConfigSource::Explicit("test-policy.json".into())).expect("a valid policy");
    let parts = EngineParts {
        transport: Arc::new(Offline),
        store: Arc::new(MemoryStore::new()),
        mcp: Arc::new(Offline),
        clock: Arc::new(ema_core::clock::SystemClock),
    };
    Engine::new(policy, parts)
}

/// `(id, text, enabled)` of every item of the tray menu drawn for the app's engine.
fn menu_items(app: &App<MockRuntime>) -> Vec<(String, String, bool)> {
    let handle = app.handle();
    let menu = match app.try_state::<Arc<Engine>>() {
        Some(engine) => {
            let view = tray_view(
                &engine.snapshot(),
                PersonalCounts::default(),
                time::OffsetDateTime::now_utc(),
                time::UtcOffset::UTC,
            );
            crate::tray::menu(handle, &view, settings(handle)).expect("a menu")
        }
        None => crate::tray::setup_menu(handle).expect("a menu"),
    };
    menu.items()
        .expect("menu items")
        .into_iter()
        .filter_map(|item| match item {
            MenuItemKind::MenuItem(i) => Some((i.id().0.clone(), i.text().unwrap(), i.is_enabled().unwrap())),
            MenuItemKind::Check(i) => Some((i.id().0.clone(), i.text().unwrap(), i.is_enabled().unwrap())),
            _ => None,
        })
        .collect()
}

fn ids(items: &[(String, String, bool)]) -> Vec<&str> {
    items.iter().map(|(id, _, _)| id.as_str()).collect()
}

#[test]
fn a_signed_out_user_is_offered_sign_in_and_nothing_that_needs_a_session() {
    let app = app(Some(serde_json::json!({})));
    let items = menu_items(&app);
    let ids = ids(&items);
    assert!(ids.contains(&"sign-in") && !ids.contains(&"sign-out") && !ids.contains(&"refresh"), "{items:?}");
    assert!(ids.contains(&"open") && ids.contains(&"export") && ids.contains(&"quit"), "{items:?}");
    // Connector rows are information, not actions.
    assert!(
        items.iter().filter(|(id, _, _)| id.starts_with("connector-")).all(|(_, _, enabled)| !enabled),
        "{items:?}"
    );
    let autostart = items.iter().find(|(id, _, _)| id == "autostart").expect("Start at login");
    assert!(autostart.2, "the user may change start at login when the policy does not set it");
}

#[test]
fn a_policy_that_sets_start_at_login_greys_the_menu_item_out() {
    let app = app(Some(serde_json::json!({"start_at_login": false})));
    let items = menu_items(&app);
    let autostart = items.iter().find(|(id, _, _)| id == "autostart").expect("Start at login");
    assert!(!autostart.2, "{items:?}");
}

#[test]
fn before_set_up_the_menu_offers_set_up_and_quit_only() {
    let app = app(None);
    let items = menu_items(&app);
    assert_eq!(ids(&items), ["identity", "set-up", "quit"], "{items:?}");
}

#[test]
fn before_set_up_engine_commands_answer_not_set_up() {
    let app = app(None);
    for command in [Command::Refresh, Command::SignIn, Command::SignOut, Command::ScanPersonal, Command::PrepareExport]
    {
        let name = format!("{command:?}");
        let e = tauri::async_runtime::block_on(perform(app.handle(), command)).expect_err(&name);
        assert_eq!(e.code, "not-set-up", "{name}: {}", e.message);
    }
}

#[test]
fn a_setting_the_policy_locks_is_refused_and_left_as_it_is() {
    let app = app(Some(serde_json::json!({"notifications": true})));
    app.state::<NotificationsOn>().0.store(true, Ordering::Relaxed);
    let e = tauri::async_runtime::block_on(perform(app.handle(), Command::SetNotifications { enabled: false }))
        .expect_err("a locked setting");
    assert_eq!(e.code, "setting-locked", "{}", e.message);
    assert!(app.state::<NotificationsOn>().0.load(Ordering::Relaxed), "the setting stays on");
}

#[test]
fn refresh_when_signed_out_asks_for_sign_in_without_touching_the_network() {
    let app = app(Some(serde_json::json!({})));
    tauri::async_runtime::block_on(perform(app.handle(), Command::Refresh)).expect("refresh is carried out");
    let engine = app.state::<Arc<Engine>>();
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.idp.state, ema_core::status::IdpSessionState::SignedOut);
    assert!(
        snapshot.connectors.iter().all(|c| c.state != ema_core::status::ConnectorState::Active),
        "{:?}",
        snapshot.connectors
    );
}

#[test]
fn the_help_desk_opens_only_when_the_policy_names_one() {
    let app = app(Some(serde_json::json!({})));
    let e = tauri::async_runtime::block_on(perform(app.handle(), Command::OpenHelpDesk)).expect_err("no help desk");
    assert_eq!(e.code, "no-help-desk", "{}", e.message);
    let app = crate::with_state(mock_builder(), None).build(mock_context(noop_assets())).expect("a mock app");
    let e = tauri::async_runtime::block_on(perform(app.handle(), Command::OpenHelpDesk)).expect_err("not set up");
    assert_eq!(e.code, "not-set-up", "{}", e.message);
}
