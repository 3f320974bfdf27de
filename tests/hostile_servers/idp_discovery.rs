//! IdP discovery: the OpenID configuration and JWKS of an IdP that misbehaves, and what the
//! sign-in and refresh make of it.

use super::*;

const OIDC_CONFIG: &str = "/.well-known/openid-configuration";

fn idp_config(issuer: &str) -> IdpConfig {
    let policy = json!({
        "schema_version": 1,
        "organization": { "name": "Hostile Test Corp" },
        "idp": { "issuer": issuer, "client_id": "ema-desktop", "client_auth": { "method": "none" } },
    });
    Policy::parse(&policy.to_string(), ConfigSource::Explicit("test.json".into())).unwrap().idp
}

fn good_oidc(issuer: &str, base: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    })
}

/// An IdP at `base` with the given OpenID configuration and JWKS.
async fn idp(config: impl FnOnce(&str) -> Value, jwks: MethodRouter) -> Server {
    start(|base| Router::new().route(OIDC_CONFIG, json_get(config(base))).route("/jwks", jwks)).await
}

async fn idp_discover(s: &Server) -> Result<IdpClient, SignInError> {
    IdpClient::discover(&transport(), &idp_config(&s.base)).await
}

#[tokio::test]
async fn idp_control_a_well_behaved_idp_is_discovered() {
    let s = idp(|base| good_oidc(base, base), json_get(json!({ "keys": [] }))).await;
    let c = idp_discover(&s).await.unwrap();
    assert_eq!(c.token_endpoint(), &s.url("/token"));
    assert_eq!(s.log.requests(), vec![format!("GET {OIDC_CONFIG}"), "GET /jwks".to_string()]);
}

/// Found by the conformance suite's IdP, whose configuration lacks the OIDC Discovery §3 fields:
/// the error said "`.` is invalid" instead of naming the missing field.
#[tokio::test]
async fn idp_openid_configuration_missing_a_required_field_names_it() {
    let s = idp(
        |base| {
            let mut c = good_oidc(base, base);
            c.as_object_mut().unwrap().remove("subject_types_supported");
            c
        },
        json_get(json!({ "keys": [] })),
    )
    .await;
    let err = idp_discover(&s).await.unwrap_err();
    assert_eq!(err.code(), "idp-discovery-invalid-response");
    let msg = err.to_string();
    assert!(msg.contains("missing field `subject_types_supported`"), "{msg}");
    let s = idp(
        |base| {
            let mut c = good_oidc(base, base);
            c["response_types_supported"] = json!("code");
            c
        },
        json_get(json!({ "keys": [] })),
    )
    .await;
    let msg = idp_discover(&s).await.unwrap_err().to_string();
    assert!(msg.contains("`response_types_supported` is invalid: invalid type"), "{msg}");
}

#[tokio::test]
async fn idp_openid_configuration_with_another_issuer_is_refused() {
    let s = idp(|base| good_oidc("https://evil.example.com", base), json_get(json!({ "keys": [] }))).await;
    let err = idp_discover(&s).await.unwrap_err();
    eprintln!("{}: {err}", err.code().wire(err.oauth_error()));
    assert_eq!(err.code(), "idp-discovery-invalid-response");
    let msg = err.to_string();
    assert!(msg.contains("issuer `https://evil.example.com"), "{msg}");
    assert!(msg.contains(&s.base), "names the issuer we asked: {msg}");
    assert_eq!(s.log.hits("/jwks"), 0, "nothing more is fetched from a wrong issuer");
}

#[tokio::test]
async fn idp_jwks_that_is_not_a_key_set_is_refused() {
    for (label, body) in [
        ("html", "<html>sign in</html>".to_string()),
        ("array", json!([{ "kty": "RSA" }]).to_string()),
        ("keys-not-a-list", json!({ "keys": "none" }).to_string()),
        ("no-keys", json!({ "jwks": [] }).to_string()),
    ] {
        let s = idp(|base| good_oidc(base, base), body_get(StatusCode::OK, "application/json", body)).await;
        let err = idp_discover(&s).await.unwrap_err();
        eprintln!("{label}: {}: {err}", err.code().wire(err.oauth_error()));
        assert_eq!(err.code(), "idp-discovery-invalid-response", "{label}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("not a JSON Web Key Set") && msg.contains("/jwks"), "{label}: {msg}");
        assert_eq!(s.log.hits("/jwks"), 1, "{label}");
    }
}

#[tokio::test]
async fn idp_plain_http_endpoints_elsewhere_are_refused() {
    for field in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        let s = idp(
            |base| {
                let mut v = good_oidc(base, base);
                v[field] = json!("http://idp.example.com/oauth2/v1/endpoint");
                v
            },
            json_get(json!({ "keys": [] })),
        )
        .await;
        let transport = Recording::new();
        let err = IdpClient::discover(&transport, &idp_config(&s.base)).await.unwrap_err();
        assert_eq!(err.code(), "idp-url-refused", "{field}: {err:?}");
        assert!(matches!(&err, SignInError::Transport(TransportError::UrlRefused(_))), "{field}: {err:?}");
        assert!(err.to_string().contains("http://idp.example.com/oauth2/v1/endpoint"), "{field}: {err}");
        assert_eq!(transport.sent(), vec![format!("GET {}{OIDC_CONFIG}", s.base)], "{field}");
    }
}

// ---------------------------------------------------------------------------------------------
// MCP initialize (ema_core::mcp_check): the connector check after each grant
// ---------------------------------------------------------------------------------------------

pub(crate) use ema_core::mcp_check::{HttpProbe, McpCheckError, McpProbe, McpServerInfo};
use ema_core::secret::AccessToken;

/// A token whose every occurrence in an error would be a leak.
pub(crate) const MCP_TOKEN: &str = "at-canary-7b1e0c9d4f2a48e6b3c5d7e9f1a3b5c7";

/// Every request an MCP test server received: method, JSON-RPC method (or ""), the
/// `mcp-session-id`, `mcp-protocol-version`, `accept` and `authorization` headers, the body, and
/// the `mcp-method` header.
#[derive(Debug, Clone, Default)]
pub(crate) struct McpLog(Arc<Mutex<Vec<[String; 8]>>>);

impl McpLog {
    pub(crate) fn calls(&self) -> Vec<[String; 8]> {
        self.0.lock().unwrap().clone()
    }
}

/// An MCP endpoint at `/mcp`: `answer(jsonrpc_method)` makes each response; every request is logged.
pub(crate) async fn mcp_server(answer: impl Fn(&str) -> Response + Clone + Send + Sync + 'static) -> (Server, McpLog) {
    let log = McpLog::default();
    let recorded = log.clone();
    let server = start(move |_| {
        Router::new().route(
            "/mcp",
            any(move |req: Request| {
                let (answer, recorded) = (answer.clone(), recorded.clone());
                async move {
                    let (method, session, version, accept, auth, mcp_method) = {
                        let header = |name: &str| {
                            req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                        };
                        (
                            req.method().to_string(),
                            header("mcp-session-id"),
                            header("mcp-protocol-version"),
                            header("accept"),
                            header("authorization"),
                            header("mcp-method"),
                        )
                    };
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                    let rpc = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["method"].as_str().map(String::from))
                        .unwrap_or_default();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    recorded.0.lock().unwrap().push([
                        method,
                        rpc.clone(),
                        session,
                        version,
                        accept,
                        auth,
                        body,
                        mcp_method,
                    ]);
                    answer(&rpc)
                }
            }),
        )
    })
    .await;
    (server, log)
}

pub(crate) fn initialize_result(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": version, "capabilities": {"tools": {}},
        "serverInfo": {"name": "hostile-linear", "version": "9.1"}}})
}

pub(crate) fn json_response(status: StatusCode, headers: &[(&'static str, &'static str)], body: &Value) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    for (k, v) in headers {
        r.headers_mut().insert(*k, v.parse().unwrap());
    }
    r
}

/// A well-behaved answer: JSON with a session, 202 to the notification, 200 to DELETE.
fn mcp_json(rpc: &str) -> Response {
    match rpc {
        "initialize" => json_response(StatusCode::OK, &[("mcp-session-id", "s-123")], &initialize_result("2025-06-18")),
        "" => StatusCode::OK.into_response(), // DELETE
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

/// An event-stream answer with these raw bytes, then (if `open`) a stream that never ends.
pub(crate) fn sse_response(bytes: String, open: bool) -> Response {
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    let body = if open { Body::from_stream(first.chain(futures::stream::pending())) } else { Body::from_stream(first) };
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

pub(crate) async fn probe(server: &Server, timeout: Duration) -> Result<McpServerInfo, McpCheckError> {
    ema_core::http::install_tls_provider();
    let probe = HttpProbe::new(&transport(), timeout);
    probe.check(&server.url("/mcp"), &AccessToken::new(MCP_TOKEN)).await
}

/// How a test MCP server answers a request, by its JSON-RPC method.
type Answer = dyn Fn(&str) -> Response + Send + Sync;

fn assert_no_token(e: &McpCheckError) {
    assert!(!format!("{e} {e:?}").contains(MCP_TOKEN), "the token leaked into the error: {e}");
}

use futures::StreamExt as _;

#[tokio::test]
async fn mcp_control_initialize_notifies_initialized_with_the_session_and_version_then_ends_the_session() {
    let (server, log) = mcp_server(mcp_json).await;
    let info = probe(&server, TIMEOUT).await.unwrap();
    assert_eq!(
        info,
        McpServerInfo { name: "hostile-linear".into(), version: "9.1".into(), protocol_version: "2025-06-18".into() }
    );
    let calls = log.calls();
    let summary: Vec<_> = calls.iter().map(|c| (c[0].as_str(), c[1].as_str(), c[2].as_str(), c[3].as_str())).collect();
    assert_eq!(
        summary,
        vec![
            // MCP 2026-07-28 first; this server answers it as a notification (202, no body).
            ("POST", "server/discover", "", "2026-07-28"),
            ("POST", "initialize", "", ""),
            ("POST", "notifications/initialized", "s-123", "2025-06-18"),
            ("DELETE", "", "s-123", "2025-06-18"),
        ]
    );
    for call in &calls {
        assert_eq!(call[5], format!("Bearer {MCP_TOKEN}"), "every request carries the token");
    }
    for call in calls.iter().filter(|c| c[0] == "POST") {
        assert!(call[4].contains("application/json") && call[4].contains("text/event-stream"), "{call:?}");
    }
}

#[tokio::test]
async fn mcp_event_stream_answer_after_a_notification_on_a_stream_that_stays_open_is_read() {
    let (server, log) = mcp_server(|rpc| match rpc {
        "initialize" => sse_response(
            format!(
                ": keep-alive\r\n\r\nevent: message\r\ndata: {}\r\n\r\nid: 2\r\ndata: {}\r\n\r\n",
                json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}}),
                initialize_result("2025-11-25")
            ),
            true,
        ),
        _ => StatusCode::ACCEPTED.into_response(),
    })
    .await;
    let started = Instant::now();
    let info = probe(&server, Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.protocol_version, "2025-11-25");
    assert!(started.elapsed() < Duration::from_secs(5), "the answer is taken without waiting for the stream's end");
    // No session id given: none sent back, and no DELETE.
    let methods: Vec<_> = log.calls().iter().map(|c| (c[0].clone(), c[2].clone())).collect();
    assert_eq!(methods, vec![("POST".into(), String::new()); 3], "discover, initialize, initialized");
}

#[tokio::test]
async fn mcp_rejected_token_is_unauthorized_at_either_request() {
    for status in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN] {
        let (server, _) = mcp_server(move |_| (status, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()).await;
        assert!(matches!(probe(&server, TIMEOUT).await, Err(McpCheckError::Unauthorized)), "{status}");
    }
    let (server, _) = mcp_server(|rpc| match rpc {
        "initialize" => mcp_json(rpc),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    })
    .await;
    assert!(matches!(probe(&server, TIMEOUT).await, Err(McpCheckError::Unauthorized)));
}

#[tokio::test]
async fn mcp_hostile_answers_get_errors_that_name_them_without_the_token() {
    let echo = format!("bad token {MCP_TOKEN}");
    let cases: Vec<(&str, Box<Answer>)> = vec![
        (
            "content type `text/html`",
            Box::new(|_| ([(header::CONTENT_TYPE, "text/html")], "<html>login</html>").into_response()),
        ),
        (
            "malformed JSON",
            Box::new(|_| ([(header::CONTENT_TYPE, "application/json")], "{\"jsonrpc\":").into_response()),
        ),
        (
            "no JSON-RPC response",
            Box::new(|_| json_response(StatusCode::OK, &[], &json!({"jsonrpc": "2.0", "id": 7, "result": {}}))),
        ),
        (
            "ended its event stream",
            Box::new(|_| sse_response("data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n".into(), false)),
        ),
        (
            "more than 1024 KiB",
            Box::new(|_| sse_response(format!("data: {}\n\n", "x".repeat(MAX_RESPONSE_BYTES + 10)), true)),
        ),
        ("HTTP 500", Box::new(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())),
        ("`1999-01-01`", Box::new(|_| json_response(StatusCode::OK, &[], &initialize_result("1999-01-01")))),
        (
            "not visible ASCII",
            Box::new(|_| json_response(StatusCode::OK, &[("mcp-session-id", "a b")], &initialize_result("2025-11-25"))),
        ),
        ("JSON-RPC error -32600", {
            let echo = echo.clone();
            Box::new(move |_| {
                json_response(
                    StatusCode::OK,
                    &[],
                    &json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": echo}}),
                )
            })
        }),
        (
            "notifications/initialized with HTTP 400",
            Box::new(|rpc| match rpc {
                "initialize" => json_response(StatusCode::OK, &[], &initialize_result("2025-11-25")),
                _ => StatusCode::BAD_REQUEST.into_response(),
            }),
        ),
    ];
    for (expected, answer) in cases {
        let answer: Arc<Answer> = Arc::from(answer);
        let (server, _) = mcp_server(move |rpc| answer(rpc)).await;
        let e = probe(&server, TIMEOUT).await.unwrap_err();
        assert_eq!(e.code(), "mcp-failed", "{expected}: {e:?}");
        assert!(e.to_string().contains(expected), "expected {expected:?} in: {e}");
        assert_no_token(&e);
    }
}

#[tokio::test]
async fn mcp_server_that_never_answers_times_out_promptly() {
    let (server, _) = mcp_server(|_| sse_response(": still thinking\n\n".into(), true)).await;
    let started = Instant::now();
    let e = probe(&server, Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(e, McpCheckError::Timeout(1)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn mcp_server_that_is_not_listening_is_named_as_unreachable() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server { base: format!("http://127.0.0.1:{port}"), log: Log::default() };
    let e = probe(&server, TIMEOUT).await.unwrap_err();
    assert_eq!(e.code(), "mcp-failed", "{e:?}");
    // Classified where it failed, so `ema doctor` can say "nothing answers" without reading words.
    assert_eq!(e.network_failure(), Some(ema_core::http::NetworkFailure::Refused), "{e:?}");
    assert!(e.to_string().contains(&format!("cannot connect to http://127.0.0.1:{port}/mcp")), "{e}");
    assert_no_token(&e);
}
