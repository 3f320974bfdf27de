//! Hostile answers met by the engine's own connect path (`Engine::connect_all`), not by the
//! legs called one by one: what the connector's status says (the tray, `ema status` and the
//! diagnostics all show it), that nothing we sent is echoed into it or into what is stored, and
//! that the stored session survives.
//!
//! One server plays the whole org: the IdP (OpenID configuration, JWKS, a token exchange that
//! issues an ID-JAG), the connector's MCP server (401 and RFC 9728 metadata) and its
//! authorization server (RFC 8414 metadata); each test picks the AS's token endpoint.

use super::*;
use ema_core::engine::Engine;
use ema_core::status::{ConnectorState, ConnectorStatus};
use ema_core::store::MemoryStore;

/// The ID token we hold and the ID-JAG the IdP issues: JWT-shaped, with a canary signature.
const OUR_JWT: &str =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6Im9hdXRoLWlkLWphZytqd3QifQ.eyJzdWIiOiJhbGljZSJ9.ZW5naW5lLWNhbmFyeS1kby1ub3QtbGVhaw";
const OUR_SIGNATURE: &str = "ZW5naW5lLWNhbmFyeS1kby1ub3QtbGVhaw";
const CONNECTOR: &str = "hostile";

async fn org(grant: MethodRouter) -> Server {
    start(move |base| {
        let id_jag = json!({
            "access_token": OUR_JWT,
            "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
            "token_type": "N_A",
            "expires_in": 300,
        })
        .to_string();
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                json_get(json!({
                    "issuer": base,
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/idp/token"),
                    "jwks_uri": format!("{base}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                })),
            )
            .route("/jwks", json_get(json!({ "keys": [] })))
            .route(
                "/idp/token",
                post(move || {
                    let body = id_jag.clone();
                    async move { (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body) }
                }),
            )
            .route("/mcp", any(|| async { StatusCode::UNAUTHORIZED }))
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/as")] })),
            )
            .route(
                "/.well-known/oauth-authorization-server/as",
                json_get(json!({ "issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token") })),
            )
            .route("/as/token", grant)
    })
    .await
}

/// The engine for `server`'s org, signed in as `ema login` leaves it, with its store.
async fn engine(server: &Server) -> (Arc<Engine>, Arc<MemoryStore>) {
    let policy = json!({
        "schema_version": 1,
        "organization": { "name": "Hostile Test Corp" },
        "idp": { "issuer": server.base, "client_id": "ema-desktop", "client_auth": { "method": "none" } },
        "connectors": [{
            "id": CONNECTOR,
            "display_name": "Hostile",
            "mcp_url": format!("{}/mcp", server.base),
            "client_id": "ema-test",
            "client_auth": { "method": "none" },
        }],
    });
    let policy = Policy::parse(&policy.to_string(), ConfigSource::Explicit("hostile.json".into())).unwrap();
    let expires = (OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp();
    ema_e2e::engine_with_id_token(policy, IdToken::new(OUR_JWT), Some(expires), TIMEOUT).await.unwrap()
}

/// Connects, and returns the connector's status after checking what no outcome may do: show
/// or store what we sent, or lose the session.
async fn connect(server: &Server) -> ConnectorStatus {
    let (engine, store) = engine(server).await;
    engine.connect_all(true).await;
    let snapshot = engine.snapshot();
    let shown = serde_json::to_string(&snapshot).unwrap();
    assert!(!shown.contains(OUR_SIGNATURE), "the status shows what we sent: {shown}");
    let stored = store.snapshot();
    for (account, value) in &stored {
        if !account.starts_with("session:") {
            assert!(!value.contains(OUR_SIGNATURE), "{account} stores what the server echoed: {value}");
        }
    }
    assert!(stored.keys().any(|a| a.starts_with("session:")), "the session was lost: {:?}", stored.keys());
    snapshot.connectors.into_iter().find(|c| c.id == CONNECTOR).unwrap()
}

fn failure(c: &ConnectorStatus) -> (ConnectorState, String, String) {
    let e = c.error.as_ref().unwrap_or_else(|| panic!("no error: {c:?}"));
    (c.state, e.code_str(), e.message.clone())
}

#[tokio::test]
async fn engine_an_authorization_server_echoing_our_assertion_is_shown_scrubbed() {
    let s = org(post(|body: String| async move {
        let answer = json!({ "error": "invalid_grant", "error_description": format!("cannot use {body}") });
        (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], answer.to_string())
    }))
    .await;
    let c = connect(&s).await;
    let (state, code, message) = failure(&c);
    assert_eq!((state, code.as_str()), (ConnectorState::Error, "connector-grant-oauth-invalid-grant"), "{message}");
    assert_eq!(c.error.as_ref().unwrap().oauth_error.as_deref(), Some("invalid_grant"));
    assert!(message.contains("cannot use"), "the server's words are kept, scrubbed: {message}");
    assert_eq!(s.log.hits("/as/token"), 1);
}

#[tokio::test]
async fn engine_a_redirecting_token_endpoint_is_not_followed() {
    let s = org(any(|| async { (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]) })).await;
    let c = connect(&s).await;
    let (state, code, message) = failure(&c);
    assert_eq!((state, code.as_str()), (ConnectorState::Error, "connector-grant-invalid-response"), "{message}");
    assert!(message.contains("redirect (HTTP 302)") && message.contains("never followed"), "{message}");
    assert_eq!(s.log.hits("/elsewhere"), 0, "the redirect was followed with our assertion");
}

#[tokio::test]
async fn engine_a_flooding_token_endpoint_is_cut_off() {
    let s = org(post(|| async { chunked_json(2 * MAX_RESPONSE_BYTES) })).await;
    let c = connect(&s).await;
    let (state, code, message) = failure(&c);
    assert_eq!((state, code.as_str()), (ConnectorState::Error, "connector-grant-response-too-large"), "{message}");
}

#[tokio::test]
async fn engine_control_a_well_behaved_org_connects_up_to_the_mcp_check() {
    // The AS issues a token; the MCP server (401 to anything) then refuses it: the engine got
    // through discovery, exchange and grant, and names the MCP server as what failed.
    let s = org(post(|| async {
        let answer = json!({ "access_token": "at-hostile", "token_type": "Bearer", "expires_in": 3600 });
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answer.to_string())
    }))
    .await;
    let c = connect(&s).await;
    let (state, code, message) = failure(&c);
    assert_eq!((state, code.as_str()), (ConnectorState::Error, "mcp-unauthorized"), "{message}");
    assert_eq!(s.log.hits("/idp/token"), 1, "one token exchange");
    assert_eq!(s.log.hits("/as/token"), 1, "one grant");
}
