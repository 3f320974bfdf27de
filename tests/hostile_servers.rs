//! The client against hostile or broken servers, over real HTTP on 127.0.0.1.
//!
//! Why these tests exist: every document the engine reads (MCP protected-resource metadata,
//! authorization-server metadata, the IdP's OpenID configuration and JWKS, token responses)
//! comes from a server we do not control. Unit tests check the parsers with canned responses
//! through a fake transport; these check the whole path, real `HttpTransport` included, so that
//! the guarantees of `ema_core::http` (no redirects, a timeout, a 1 MiB body cap, https only
//! except loopback) and of the discovery and grant code (exact error codes, messages naming
//! the document at fault, no token echoed back) hold on the wire. Each test spins up a tiny
//! axum server on port 0 whose request log proves what was (and was not) fetched.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use ema_core::config::{ClientAuth, ConfigSource, IdpConfig, Policy};
use ema_core::discovery::{self, ConnectorEndpoints, DiscoveryError};
use ema_core::grants::jwt_bearer::{self, ConnectorGrant, GrantError, JwtBearerGrant};
use ema_core::grants::token_exchange::{self, ExchangeError, IssuedIdJag, TokenExchange};
use ema_core::http::{HttpRequest, HttpResponse, HttpTransport, MAX_RESPONSE_BYTES, Transport, TransportError};
use ema_core::oauth::ResponseError;
use ema_core::secret::{IdJag, IdToken};
use ema_core::signin::oidc::{IdpClient, SignInError};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use time::OffsetDateTime;
use url::Url;

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// Every request a test server received, as `METHOD /path`.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn requests(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many requests hit `path` (any method).
    fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.split_once(' ').is_some_and(|(_, p)| p == path)).count()
    }
}

async fn record(State(log): State<Log>, req: Request, next: Next) -> Response {
    log.0.lock().unwrap().push(format!("{} {}", req.method(), req.uri().path()));
    next.run(req).await
}

#[derive(Debug)]
struct Server {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    base: String,
    log: Log,
}

impl Server {
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base)).unwrap()
    }
}

/// Starts a server whose routes are built from its own base URL; unknown paths answer 404.
async fn start(app: impl FnOnce(&str) -> Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Log::default();
    let router = app(&base).fallback(|| async { StatusCode::NOT_FOUND }).layer(from_fn_with_state(log.clone(), record));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server { base, log }
}

/// GET answering `status` with a body of the given content type.
fn body_get(status: StatusCode, content_type: &'static str, body: impl Into<String>) -> MethodRouter {
    let body: String = body.into();
    get(move || {
        let body = body.clone();
        async move { (status, [(header::CONTENT_TYPE, content_type)], body) }
    })
}

fn json_get(value: Value) -> MethodRouter {
    body_get(StatusCode::OK, "application/json", value.to_string())
}

/// Any method answering 302 to `target`.
fn redirect_to(target: String) -> MethodRouter {
    any(move || {
        let target = target.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
    })
}

/// A 200 JSON response of `total` bytes sent chunked (no Content-Length).
fn chunked_json(total: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let mut chunks = vec![Bytes::from_static(b"{\"pad\":\"")];
    let mut sent = 8;
    while sent < total {
        let n = CHUNK.min(total - sent);
        chunks.push(Bytes::from(vec![b'a'; n]));
        sent += n;
    }
    chunks.push(Bytes::from_static(b"\"}"));
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

const TIMEOUT: Duration = Duration::from_secs(5);

fn transport() -> HttpTransport {
    HttpTransport::new(TIMEOUT).unwrap()
}

/// The real transport, remembering every request it was asked to send: proves that a refused
/// URL was never even attempted (the real transport would refuse it too, with the same code).
#[derive(Debug)]
struct Recording {
    inner: HttpTransport,
    sent: Mutex<Vec<String>>,
}

impl Recording {
    fn new() -> Self {
        Recording { inner: transport(), sent: Mutex::new(Vec::new()) }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl Transport for Recording {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        self.sent.lock().unwrap().push(format!("{} {}", request.method(), request.uri()));
        self.inner.send(request)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Connector discovery
// ---------------------------------------------------------------------------------------------

const PRM_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const AS_PATH: &str = "/.well-known/oauth-authorization-server";

/// The MCP endpoint's answer to an unauthenticated probe: 401 without a metadata hint.
fn mcp_401() -> MethodRouter {
    post(|| async { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, r#"Bearer realm="mcp""#)]) })
}

/// Valid RFC 9728 metadata for `<base>/mcp`, naming `<base>` as its AS.
fn good_prm(base: &str) -> Value {
    json!({ "resource": format!("{base}/mcp"), "authorization_servers": [base] })
}

/// Valid RFC 8414 metadata for `issuer`, with its token endpoint on `base`.
fn good_as(issuer: &str, base: &str) -> Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}/token"),
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
    })
}

/// An MCP server whose protected-resource metadata is `prm` and whose AS metadata is valid.
async fn with_prm(prm: impl FnOnce(&str) -> MethodRouter) -> Server {
    start(|base| {
        Router::new().route("/mcp", mcp_401()).route(PRM_PATH, prm(base)).route(AS_PATH, json_get(good_as(base, base)))
    })
    .await
}

/// An MCP server with valid protected-resource metadata and AS metadata `as_meta` at `AS_PATH`.
async fn with_as(as_meta: impl FnOnce(&str) -> MethodRouter) -> Server {
    start(|base| {
        Router::new().route("/mcp", mcp_401()).route(PRM_PATH, json_get(good_prm(base))).route(AS_PATH, as_meta(base))
    })
    .await
}

async fn discover(server: &Server) -> Result<ConnectorEndpoints, DiscoveryError> {
    discovery::discover(&transport(), &server.url("/mcp"), None).await
}

async fn discover_err(server: &Server) -> DiscoveryError {
    let err = discover(server).await.unwrap_err();
    eprintln!("{}: {err}", err.code().wire(None));
    err
}

#[tokio::test]
async fn discovery_control_a_well_behaved_server_is_discovered() {
    let s = with_prm(|base| json_get(good_prm(base))).await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.resource, format!("{}/mcp", s.base));
    assert!(same(&e.issuer, &s.base), "{e:?}");
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.requests(), vec!["POST /mcp".to_string(), format!("GET {PRM_PATH}"), format!("GET {AS_PATH}")]);
}

fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[tokio::test]
async fn discovery_protected_resource_metadata_that_is_not_json_is_invalid() {
    let s = with_prm(|_| body_get(StatusCode::OK, "text/html", "<html><body>Welcome!</body></html>")).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(matches!(&err, DiscoveryError::Invalid { what: "protected-resource metadata", .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("protected-resource metadata") && msg.contains(PRM_PATH), "{msg}");
    assert!(msg.contains("not JSON"), "{msg}");
    assert!(!msg.contains("Welcome"), "the body must not be echoed: {msg}");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_that_is_a_json_array_is_invalid() {
    let s = with_prm(|base| json_get(json!([good_prm(base)]))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    assert_eq!(s.log.hits(AS_PATH), 0, "nothing may be fetched after invalid metadata");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_without_resource_is_invalid() {
    let s = with_prm(|base| json_get(json!({ "authorization_servers": [base] }))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(err.to_string().contains("`resource` is missing"), "{err}");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_for_another_resource_is_refused() {
    let s =
        with_prm(|base| json_get(json!({ "resource": format!("{base}/other-mcp"), "authorization_servers": [base] })))
            .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-resource-mismatch");
    let DiscoveryError::ResourceMismatch { expected, found, .. } = &err else { panic!("{err:?}") };
    assert_eq!(expected, &format!("{}/mcp", s.base));
    assert_eq!(found, &format!("{}/other-mcp", s.base));
    let msg = err.to_string();
    assert!(msg.contains("/other-mcp") && msg.contains("RFC 9728"), "{msg}");
    assert_eq!(s.log.hits(AS_PATH), 0, "a mismatched resource must stop discovery");
}

#[tokio::test]
async fn discovery_empty_authorization_servers_is_invalid() {
    for servers in [json!([]), json!(null), json!([42])] {
        let s =
            with_prm(|base| json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": servers })))
                .await;
        let err = discover_err(&s).await;
        assert_eq!(err.code(), "discovery-invalid-metadata", "{servers}");
        assert!(err.to_string().contains("`authorization_servers` is missing or empty"), "{err}");
    }
}

#[tokio::test]
async fn discovery_oversized_metadata_with_content_length_is_refused() {
    let big = format!(r#"{{"resource":"x","pad":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let s = with_prm(|_| body_get(StatusCode::OK, "application/json", big)).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-response-too-large");
    let DiscoveryError::Transport(TransportError::TooLarge { url, limit }) = &err else { panic!("{err:?}") };
    assert_eq!(*limit, MAX_RESPONSE_BYTES);
    assert!(url.ends_with(PRM_PATH), "{url}");
    assert_eq!(s.log.hits(PRM_PATH), 1);
}

#[tokio::test]
async fn discovery_oversized_metadata_streamed_without_content_length_is_refused() {
    let s = with_prm(|_| get(|| async { chunked_json(2 * 1024 * 1024) })).await;
    // The fixture really is chunked: the cap must come from counting, not from the header.
    ema_core::http::install_tls_provider();
    let probe = reqwest::get(s.url(PRM_PATH)).await.unwrap();
    assert!(probe.headers().get("content-length").is_none(), "{:?}", probe.headers());
    assert_eq!(probe.headers()["transfer-encoding"], "chunked");
    assert_eq!(probe.bytes().await.unwrap().len(), 2 * 1024 * 1024 + 2);

    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-response-too-large");
    assert!(err.to_string().contains(PRM_PATH) && err.to_string().contains("larger than 1048576 bytes"), "{err}");
}

#[tokio::test]
async fn discovery_control_large_but_allowed_metadata_is_accepted() {
    // 900 KiB of padding in an otherwise valid document: the cap is 1 MiB, not less.
    let s = with_prm(|base| {
        let mut v = good_prm(base);
        v["padding"] = json!("a".repeat(900 * 1024));
        json_get(v)
    })
    .await;
    discover(&s).await.unwrap();
}

#[tokio::test]
async fn discovery_slow_server_times_out_promptly() {
    let s = start(|_| {
        Router::new().route(
            "/mcp",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                StatusCode::UNAUTHORIZED
            }),
        )
    })
    .await;
    let transport = HttpTransport::new(Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "discovery-timeout", "{err:?}");
    assert!(took < Duration::from_millis(1500), "returned after {took:?}");
    assert!(took >= Duration::from_millis(400), "returned after {took:?}: did the request happen?");
    let DiscoveryError::Transport(TransportError::Timeout { url, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(url, &format!("{}/mcp", s.base));
    assert_eq!(s.log.hits("/mcp"), 1);
}

#[tokio::test]
async fn discovery_server_dripping_its_body_times_out() {
    // Headers at once, then a byte every 100 ms forever: the timeout covers the whole body.
    let s = with_prm(|_| {
        get(|| async {
            let drip = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
            });
            ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(drip))
        })
    })
    .await;
    let transport = HttpTransport::new(Duration::from_millis(700)).unwrap();
    let started = Instant::now();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-timeout", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(err.to_string().contains(PRM_PATH), "{err}");
}

#[tokio::test]
async fn discovery_follows_the_www_authenticate_resource_metadata_hint() {
    const HIDDEN: &str = "/vendor/metadata/prm-v2.json";
    let s = start(|base| {
        let hint = format!(r#"Bearer error="invalid_token", resource_metadata="{base}{HIDDEN}""#);
        Router::new()
            .route(
                "/mcp",
                post(move || {
                    let hint = hint.clone();
                    async move { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, hint)]) }
                }),
            )
            .route(HIDDEN, json_get(good_prm(base)))
            .route(AS_PATH, json_get(good_as(base, base)))
    })
    .await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.hits(HIDDEN), 1);
    assert_eq!(s.log.hits(PRM_PATH), 0, "the well-known path must not be needed");
}

#[tokio::test]
async fn discovery_refuses_a_hint_to_plain_http_elsewhere_without_fetching_it() {
    let s = start(|_| {
        Router::new().route(
            "/mcp",
            post(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, r#"Bearer resource_metadata="http://example.com/x""#)],
                )
            }),
        )
    })
    .await;
    let transport = Recording::new();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-url-refused", "{err:?}");
    assert!(err.to_string().contains("http://example.com/x") && err.to_string().contains("not https"), "{err}");
    assert_eq!(transport.sent(), vec![format!("POST {}/mcp", s.base)], "only the probe may be sent");
    assert_eq!(s.log.requests(), vec!["POST /mcp".to_string()]);
}

#[tokio::test]
async fn discovery_as_metadata_with_another_issuer_is_refused() {
    let s = with_as(|base| json_get(good_as("https://evil.example.com", base))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-issuer-mismatch");
    let DiscoveryError::IssuerMismatch { expected, found, .. } = &err else { panic!("{err:?}") };
    assert!(same(expected, &s.base), "{expected}");
    assert_eq!(found, "https://evil.example.com");
    assert!(err.to_string().contains("evil.example.com") && err.to_string().contains("RFC 8414"), "{err}");
}

#[tokio::test]
async fn discovery_finds_as_metadata_at_the_openid_fallback_path() {
    const OIDC_PATH: &str = "/.well-known/openid-configuration/tenant1";
    let s = start(|base| {
        let issuer = format!("{base}/tenant1");
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": [issuer] })))
            .route(OIDC_PATH, json_get(good_as(&issuer, base)))
    })
    .await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.issuer, format!("{}/tenant1", s.base));
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.hits("/.well-known/oauth-authorization-server/tenant1"), 1, "RFC 8414 first");
    assert_eq!(s.log.hits(OIDC_PATH), 1);
    assert_eq!(s.log.hits("/tenant1/.well-known/openid-configuration"), 0, "stop at the first found");
}

#[tokio::test]
async fn discovery_without_any_as_metadata_says_so() {
    let s = start(|base| {
        let issuer = format!("{base}/tenant1");
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": [issuer] })))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-no-as-metadata");
    let DiscoveryError::NoAsMetadata { issuer, tried } = &err else { panic!("{err:?}") };
    assert_eq!(issuer, &format!("{}/tenant1", s.base));
    let expected_paths = [
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
    ];
    assert_eq!(tried, &expected_paths.map(|p| format!("{}{p}", s.base)).to_vec());
    for p in expected_paths {
        assert_eq!(s.log.hits(p), 1, "{p}");
    }
    assert!(err.to_string().contains("/tenant1"), "{err}");
}

#[tokio::test]
async fn discovery_does_not_follow_a_redirect_on_protected_resource_metadata() {
    let s = start(|base| {
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, redirect_to(format!("{base}/moved/prm")))
            .route("/moved/prm", json_get(good_prm(base)))
            .route(AS_PATH, json_get(good_as(base, base)))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-http-error");
    assert!(matches!(&err, DiscoveryError::Status { status: 302, what: "protected-resource metadata", .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 302") && err.to_string().contains(PRM_PATH), "{err}");
    assert_eq!(s.log.hits(PRM_PATH), 1);
    assert_eq!(s.log.hits("/moved/prm"), 0, "the redirect must not be followed");
}

#[tokio::test]
async fn discovery_does_not_follow_a_redirect_on_as_metadata() {
    let s = start(|base| {
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(good_prm(base)))
            .route(AS_PATH, redirect_to(format!("{base}/moved/as")))
            .route("/moved/as", json_get(good_as(base, base)))
            .route("/.well-known/openid-configuration", json_get(good_as(base, base)))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-http-error");
    assert!(
        matches!(&err, DiscoveryError::Status { status: 302, what: "authorization-server metadata", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 302") && err.to_string().contains(AS_PATH), "{err}");
    assert_eq!(s.log.hits("/moved/as"), 0, "the redirect must not be followed");
    assert_eq!(s.log.hits("/.well-known/openid-configuration"), 0, "a redirect is not a 404: no fallback");
}

#[tokio::test]
async fn discovery_refuses_a_plain_http_token_endpoint_elsewhere() {
    let s = with_as(|base| {
        let mut v = good_as(base, base);
        v["token_endpoint"] = json!("http://as.example.com/oauth/token");
        json_get(v)
    })
    .await;
    let transport = Recording::new();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-url-refused", "{err:?}");
    assert!(err.to_string().contains("http://as.example.com/oauth/token"), "{err}");
    assert!(transport.sent().iter().all(|r| !r.contains("as.example.com")), "{:?}", transport.sent());
}

// ---------------------------------------------------------------------------------------------
// 2. Token endpoints
// ---------------------------------------------------------------------------------------------

/// Shaped like a JWT: `scrub` must recognise and redact it wherever it is echoed.
const CANARY_JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
/// What we send as the ID-JAG / ID token in echo tests; its signature part is the canary.
const SENT_JWT: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6Im9hdXRoLWlkLWphZytqd3QifQ.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJlLWNhbmFyeS1kby1ub3QtbGVhaw";
const SENT_JWT_SIGNATURE: &str = "c2lnbmF0dXJlLWNhbmFyeS1kby1ub3QtbGVhaw";
const SENT_JWT_PAYLOAD: &str = "eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9";

async fn jwt_bearer_call(endpoint: &Url, assertion: &str) -> Result<ConnectorGrant, GrantError> {
    let scopes = vec!["read".to_string()];
    let req = JwtBearerGrant {
        token_endpoint: endpoint,
        client_id: "ema-test",
        client_auth: &ClientAuth::None,
        assertion: IdJag::new(assertion),
        scopes: &scopes,
        resource: "https://mcp.example.com/mcp",
    }
    .build(OffsetDateTime::now_utc().unix_timestamp())
    .unwrap();
    let resp = transport().send(req).await.map_err(|e| GrantError::Response(ResponseError::Transport(e)))?;
    jwt_bearer::process_response(endpoint, &resp, &scopes, OffsetDateTime::now_utc())
}

async fn token_exchange_call(endpoint: &Url, id_token: &str) -> Result<IssuedIdJag, ExchangeError> {
    let scopes = vec!["read".to_string()];
    let subject = IdToken::new(id_token);
    let req = TokenExchange {
        token_endpoint: endpoint,
        client_id: "ema-test",
        client_auth: &ClientAuth::None,
        audience: "https://as.example.com",
        resource: "https://mcp.example.com/mcp",
        scopes: &scopes,
        subject_token: &subject,
    }
    .build(OffsetDateTime::now_utc().unix_timestamp())
    .unwrap();
    let resp = transport().send(req).await.map_err(|e| ExchangeError::Response(ResponseError::Transport(e)))?;
    token_exchange::process_response(endpoint, &resp, &scopes)
}

/// POST answering `status` with `body` as JSON.
fn token_reply(status: StatusCode, body: String) -> MethodRouter {
    post(move || {
        let body = body.clone();
        async move { (status, [(header::CONTENT_TYPE, "application/json")], body) }
    })
}

#[tokio::test]
async fn token_control_well_formed_responses_are_accepted() {
    let s = start(|_| {
        Router::new()
            .route(
                "/as/token",
                token_reply(StatusCode::OK, json!({"access_token":"at","token_type":"Bearer","expires_in":60}).to_string()),
            )
            .route(
                "/idp/token",
                token_reply(
                    StatusCode::OK,
                    json!({"access_token":"jag","token_type":"N_A","issued_token_type":token_exchange::TOKEN_TYPE_ID_JAG})
                        .to_string(),
                ),
            )
    })
    .await;
    let g = jwt_bearer_call(&s.url("/as/token"), SENT_JWT).await.unwrap();
    assert_eq!(g.access_token.secret(), "at");
    let j = token_exchange_call(&s.url("/idp/token"), SENT_JWT).await.unwrap();
    assert_eq!(j.id_jag.secret(), "jag");
}

#[tokio::test]
async fn token_oauth_errors_are_parsed_whatever_the_status() {
    let s = start(|_| {
        let mut r = Router::new();
        for status in [400u16, 401, 403] {
            let body = json!({
                "error": "invalid_client",
                "error_description": format!("client authentication failed (sent with {status})"),
            });
            r = r.route(
                &format!("/token/{status}"),
                token_reply(StatusCode::from_u16(status).unwrap(), body.to_string()),
            );
        }
        r
    })
    .await;
    for status in [400u16, 401, 403] {
        let endpoint = s.url(&format!("/token/{status}"));
        let description = format!("client authentication failed (sent with {status})");

        let err = jwt_bearer_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-client", "{status}: {err:?}");
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        let GrantError::Response(ResponseError::OAuth { status: got, error, .. }) = &err else { panic!("{err:?}") };
        assert_eq!(*got, status);
        assert_eq!(error.error_description.as_deref(), Some(description.as_str()));
        let msg = err.to_string();
        assert!(msg.contains(&description) && msg.contains(&format!("HTTP {status}")), "{msg}");
        assert!(msg.contains(&format!("/token/{status}")), "the endpoint is named: {msg}");

        let err = token_exchange_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "token-exchange-oauth-invalid-client", "{status}: {err:?}");
        assert!(err.to_string().contains(&description), "{err}");
    }
}

#[tokio::test]
async fn token_endpoint_redirect_is_not_followed() {
    let s = start(|base| {
        Router::new().route("/token", redirect_to(format!("{base}/stolen"))).route(
            "/stolen",
            token_reply(StatusCode::OK, json!({"access_token":"at","token_type":"Bearer"}).to_string()),
        )
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "connector-grant-invalid-response", "{err:?}");
    assert!(err.to_string().contains("redirect") && err.to_string().contains("302"), "{err}");
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "token-exchange-invalid-response", "{err:?}");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert_eq!(s.log.hits("/token"), 2);
    assert_eq!(s.log.hits("/stolen"), 0, "the assertion must never reach the redirect target");
}

#[tokio::test]
async fn token_endpoint_html_error_page_is_reported_by_status_and_not_echoed() {
    const PAGE: &str = "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>\
        <body><h1>Whoops</h1><pre>NullPointerException at com.vendor.TokenServlet</pre></body></html>";
    let s = start(|_| {
        Router::new().route(
            "/token",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/html")], PAGE) }),
        )
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "connector-grant-http-500", "{err:?}");
    assert!(matches!(&err, GrantError::Response(ResponseError::Http { status: 500, detail: None, .. })), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(err.to_string().contains("HTTP 500") && err.to_string().contains("/token"), "{err}");
    for fragment in ["<html", "Whoops", "NullPointerException", "DOCTYPE"] {
        assert!(!shown.contains(fragment), "{fragment} echoed: {shown}");
    }
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "token-exchange-http-500", "{err:?}");
    assert!(!format!("{err} {err:?}").contains("Whoops"));
}

#[tokio::test]
async fn token_error_description_with_a_jwt_is_redacted() {
    let s = start(|_| {
        let body = format!(r#"{{"error":"invalid_grant","error_description":"bad assertion {CANARY_JWT}"}}"#);
        Router::new().route("/token", token_reply(StatusCode::BAD_REQUEST, body))
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-grant", "{err:?}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(CANARY_JWT), "{shown}");
        assert!(!shown.contains("c2lnbmF0dXJlc2lnbmF0dXJl"), "{shown}");
        assert!(shown.contains("bad assertion [redacted]"), "the rest of the description stays: {shown}");
    }
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "idp-session-invalid", "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(CANARY_JWT) && shown.contains("[redacted]"), "{shown}");
}

/// Builds an echoed `error_description` from the request body; `{JWT}` is our token.
type Shape = fn(&str) -> String;

/// Echoes the request body back in `error_description`, in the shape `shape` gives it.
fn echoing(shape: Shape) -> MethodRouter {
    post(move |body: String| async move {
        let assertion = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "assertion" || k == "subject_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let description = shape(&body).replace("{JWT}", &assertion);
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_request", "error_description": description })))
    })
}

#[tokio::test]
async fn token_endpoint_echoing_our_assertion_back_never_leaks_it() {
    // Servers that echo what they received: the whole form, JSON, on a new line, in prose.
    let shapes: &[(&str, Shape)] = &[
        ("form", |body| format!("could not parse {body}")),
        ("json", |_| r#"bad request {"assertion":"{JWT}"}"#.to_string()),
        ("newline", |_| "the assertion was rejected:\n{JWT}".to_string()),
        ("tab", |_| "assertion\t{JWT}".to_string()),
        ("sentence", |_| "Invalid assertion {JWT}.".to_string()),
        ("colon", |_| "assertion:{JWT}".to_string()),
        ("plain", |_| "rejected {JWT}".to_string()),
        // Issue 14 item 8: the rest of a URL after `//` was kept whole.
        ("url-path", |_| "details at https://evil.example/{JWT}".to_string()),
        ("url-path-no-scheme", |_| "details at evil.example/errors/{JWT}".to_string()),
        ("url-query", |_| "see https://evil.example/e?ctx={JWT}&x=1".to_string()),
        ("json-space", |_| r#"bad request {"assertion": "{JWT}"}"#.to_string()),
    ];
    let s = start(|_| {
        let mut r = Router::new();
        for (name, shape) in shapes {
            r = r.route(&format!("/token/{name}"), echoing(*shape));
        }
        r
    })
    .await;
    let mut leaks = Vec::new();
    for (name, _) in shapes {
        let endpoint = s.url(&format!("/token/{name}"));
        let err = jwt_bearer_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-request", "{name}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("[redacted]"), "{name}: the echo must arrive, redacted: {shown}");
        if shown.contains(SENT_JWT_SIGNATURE) || shown.contains(SENT_JWT_PAYLOAD) {
            leaks.push(format!("jwt-bearer/{name}: {err}"));
        }
        let err = token_exchange_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "token-exchange-oauth-invalid-request", "{name}: {err:?}");
        let shown = format!("{err} {err:?}");
        if shown.contains(SENT_JWT_SIGNATURE) || shown.contains(SENT_JWT_PAYLOAD) {
            leaks.push(format!("token-exchange/{name}: {err}"));
        }
    }
    assert!(leaks.is_empty(), "the sent token leaked through error_description:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn token_response_over_one_mebibyte_is_refused() {
    let s = start(|_| {
        let big =
            format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{}"}}"#, "a".repeat(MAX_RESPONSE_BYTES));
        Router::new()
            .route("/token/sized", token_reply(StatusCode::OK, big))
            .route("/token/chunked", post(|| async { chunked_json(MAX_RESPONSE_BYTES + 1) }))
    })
    .await;
    for path in ["/token/sized", "/token/chunked"] {
        let err = jwt_bearer_call(&s.url(path), SENT_JWT).await.unwrap_err();
        assert_eq!(err.code(), "connector-grant-response-too-large", "{path}: {err:?}");
        assert!(matches!(&err, GrantError::Response(ResponseError::Transport(TransportError::TooLarge { .. }))));
        assert!(err.to_string().contains(path), "{err}");
        let err = token_exchange_call(&s.url(path), SENT_JWT).await.unwrap_err();
        assert_eq!(err.code(), "token-exchange-response-too-large", "{path}: {err:?}");
        assert_eq!(s.log.hits(path), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. IdP discovery
// ---------------------------------------------------------------------------------------------

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

use ema_core::mcp_check::{HttpProbe, McpCheckError, McpProbe, McpServerInfo};
use ema_core::secret::AccessToken;

/// A token whose every occurrence in an error would be a leak.
const MCP_TOKEN: &str = "at-canary-7b1e0c9d4f2a48e6b3c5d7e9f1a3b5c7";

/// Every request an MCP test server received: method, JSON-RPC method (or ""), and the
/// `mcp-session-id`, `mcp-protocol-version`, `accept` and `authorization` headers.
#[derive(Debug, Clone, Default)]
struct McpLog(Arc<Mutex<Vec<[String; 6]>>>);

impl McpLog {
    fn calls(&self) -> Vec<[String; 6]> {
        self.0.lock().unwrap().clone()
    }
}

/// An MCP endpoint at `/mcp`: `answer(jsonrpc_method)` makes each response; every request is logged.
async fn mcp_server(answer: impl Fn(&str) -> Response + Clone + Send + Sync + 'static) -> (Server, McpLog) {
    let log = McpLog::default();
    let recorded = log.clone();
    let server = start(move |_| {
        Router::new().route(
            "/mcp",
            any(move |req: Request| {
                let (answer, recorded) = (answer.clone(), recorded.clone());
                async move {
                    let (method, session, version, accept, auth) = {
                        let header = |name: &str| {
                            req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                        };
                        (
                            req.method().to_string(),
                            header("mcp-session-id"),
                            header("mcp-protocol-version"),
                            header("accept"),
                            header("authorization"),
                        )
                    };
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                    let rpc = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["method"].as_str().map(String::from))
                        .unwrap_or_default();
                    recorded.0.lock().unwrap().push([method, rpc.clone(), session, version, accept, auth]);
                    answer(&rpc)
                }
            }),
        )
    })
    .await;
    (server, log)
}

fn initialize_result(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": version, "capabilities": {"tools": {}},
        "serverInfo": {"name": "hostile-linear", "version": "9.1"}}})
}

fn json_response(status: StatusCode, headers: &[(&'static str, &'static str)], body: &Value) -> Response {
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
fn sse_response(bytes: String, open: bool) -> Response {
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    let body = if open { Body::from_stream(first.chain(futures::stream::pending())) } else { Body::from_stream(first) };
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn probe(server: &Server, timeout: Duration) -> Result<McpServerInfo, McpCheckError> {
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
            ("POST", "initialize", "", ""),
            ("POST", "notifications/initialized", "s-123", "2025-06-18"),
            ("DELETE", "", "s-123", "2025-06-18"),
        ]
    );
    for call in &calls {
        assert_eq!(call[5], format!("Bearer {MCP_TOKEN}"), "every request carries the token");
    }
    assert!(calls[0][4].contains("application/json") && calls[0][4].contains("text/event-stream"), "{:?}", calls[0]);
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
    assert_eq!(methods, vec![("POST".into(), String::new()), ("POST".into(), String::new())]);
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
