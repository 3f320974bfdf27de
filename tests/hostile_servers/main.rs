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
//!
//! One module per document family; the servers and the client side they share are here.

#![allow(clippy::unwrap_used)]

mod connector_discovery;
mod idp_discovery;
mod mcp_2026;
mod through_the_engine;
mod token_endpoints;

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
