//! The simulated company: one IdP and, per connector, an MCP server and its authorization
//! server, answering every tray of the fleet in memory, on the virtual clock.
//!
//! Every request to the IdP's token endpoint is logged (when, which employee, which grant), and
//! the IdP can be taken down for a while (requests then fail to connect, as during an outage).
//! Answers are what the engine needs to run its real code: discovery documents, an ID token
//! signed with ES256 on each refresh (the engine verifies it), an ID-JAG per exchange, an
//! access token per grant.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use ema_core::http::{HttpRequest, HttpResponse, Transport, TransportError};
use ema_core::mcp_check::{McpCheckError, McpProbe, McpServerInfo};
use ema_core::secret::AccessToken;
use futures::future::BoxFuture;
use time::OffsetDateTime;
use url::Url;

pub const IDP: &str = "https://idp.example.com";
pub const CLIENT_ID: &str = "ema-desktop";

/// The public half of `crates/core/tests/data/test-client-key.pem` (P-256), which signs the
/// simulated IdP's ID tokens.
const JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
    "x":"BkumKbOYbAMEIPcO3VJZ0sgEb71iEzal-U1nDBpk8sI","y":"Dfs-XUgoZuy2Y5wI2ce8tXBG5dKlHXUhFt0YPXJF-40"}"#;

/// Lifetimes the simulated servers give (Okta's defaults: ID tokens and access tokens of one
/// hour, ID-JAGs of five minutes).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub id_token: i64,
    pub id_jag: i64,
    pub access_token: i64,
}

/// What the IdP's token endpoint was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `refresh_token` (the IdP session, OIDC Core §12).
    Refresh,
    /// RFC 8693 token exchange for an ID-JAG.
    Exchange,
}

/// One request to the IdP's token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct IdpRequest {
    /// Virtual milliseconds since the start of the simulation.
    pub at_ms: u64,
    pub employee: u32,
    pub grant: Grant,
    /// Whether the IdP was down (the request failed to connect).
    pub refused: bool,
}

/// The servers, shared by every tray.
#[derive(Debug)]
pub struct Org {
    pub lifetimes: Lifetimes,
    start: tokio::time::Instant,
    wall_start: OffsetDateTime,
    /// Virtual milliseconds until which the IdP is down.
    down_until_ms: AtomicI64,
    down_from_ms: AtomicI64,
    pub log: Mutex<Vec<IdpRequest>>,
    key: jsonwebtoken::EncodingKey,
    /// Requests to the connectors' servers (discovery and grants), counted.
    pub connector_requests: std::sync::atomic::AtomicU64,
}

impl Org {
    pub fn new(lifetimes: Lifetimes, wall_start: OffsetDateTime) -> Arc<Self> {
        let pem = include_bytes!("../../../crates/core/tests/data/test-client-key.pem");
        Arc::new(Org {
            lifetimes,
            start: tokio::time::Instant::now(),
            wall_start,
            down_until_ms: AtomicI64::new(-1),
            down_from_ms: AtomicI64::new(-1),
            log: Mutex::new(Vec::new()),
            key: jsonwebtoken::EncodingKey::from_ec_pem(pem).expect("the test key is a P-256 key"),
            connector_requests: 0.into(),
        })
    }

    /// Virtual milliseconds since the start.
    pub fn elapsed_ms(&self) -> u64 {
        tokio::time::Instant::now().saturating_duration_since(self.start).as_millis() as u64
    }

    pub fn now(&self) -> OffsetDateTime {
        self.wall_start + tokio::time::Instant::now().saturating_duration_since(self.start)
    }

    /// The IdP is down between these virtual times (milliseconds since the start).
    pub fn idp_outage(&self, from_ms: u64, until_ms: u64) {
        self.down_from_ms.store(from_ms as i64, Ordering::SeqCst);
        self.down_until_ms.store(until_ms as i64, Ordering::SeqCst);
    }

    fn idp_down(&self) -> bool {
        let now = self.elapsed_ms() as i64;
        now >= self.down_from_ms.load(Ordering::SeqCst) && now < self.down_until_ms.load(Ordering::SeqCst)
    }

    fn answer(&self, employee: u32, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = req.uri().to_string();
        let json = |status: u16, body: String| {
            Ok(http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.into_bytes())
                .expect("a response"))
        };
        if url.starts_with(IDP) {
            if self.idp_down() {
                if url == format!("{IDP}/token") {
                    self.log_idp(employee, grant_of(req), true);
                }
                return Err(TransportError::Connect {
                    url,
                    kind: ema_core::http::NetworkFailure::Refused,
                    reason: "connection refused (simulated outage)".into(),
                });
            }
            return match url.strip_prefix(IDP).unwrap_or_default() {
                "/.well-known/openid-configuration" => json(200, idp_metadata()),
                "/keys" => json(200, format!(r#"{{"keys":[{JWK}]}}"#)),
                "/token" => {
                    let grant = grant_of(req);
                    self.log_idp(employee, grant, false);
                    json(200, self.idp_token_response(employee, grant))
                }
                _ => json(404, "{}".into()),
            };
        }
        self.connector_requests.fetch_add(1, Ordering::Relaxed);
        let host = req.uri().host().unwrap_or_default();
        let id = host.split('.').nth(1).unwrap_or_default();
        match req.uri().path() {
            "/mcp" => json(401, "{}".into()),
            "/.well-known/oauth-protected-resource/mcp" => json(
                200,
                serde_json::json!({"resource": mcp_url(id), "authorization_servers": [as_issuer(id)]}).to_string(),
            ),
            "/.well-known/oauth-authorization-server" => json(
                200,
                serde_json::json!({"issuer": as_issuer(id), "token_endpoint": format!("{}/token", as_issuer(id))})
                    .to_string(),
            ),
            "/token" => json(
                200,
                format!(
                    r#"{{"access_token":"at-{id}-{employee}","token_type":"Bearer","expires_in":{}}}"#,
                    self.lifetimes.access_token
                ),
            ),
            _ => json(404, "{}".into()),
        }
    }

    fn log_idp(&self, employee: u32, grant: Grant, refused: bool) {
        let at_ms = self.elapsed_ms();
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(IdpRequest { at_ms, employee, grant, refused });
    }

    fn idp_token_response(&self, employee: u32, grant: Grant) -> String {
        match grant {
            Grant::Exchange => format!(
                r#"{{"access_token":"jag-{employee}","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A","expires_in":{}}}"#,
                self.lifetimes.id_jag
            ),
            Grant::Refresh => {
                let now = self.now().unix_timestamp();
                let claims = serde_json::json!({
                    "iss": IDP, "sub": format!("u{employee}"), "aud": CLIENT_ID,
                    "iat": now, "exp": now + self.lifetimes.id_token,
                });
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                header.kid = Some("k1".into());
                let id_token = jsonwebtoken::encode(&header, &claims, &self.key).expect("ES256 signs");
                serde_json::json!({
                    "access_token": format!("idp-at-{employee}"), "token_type": "Bearer", "expires_in": 3600,
                    "id_token": id_token, "refresh_token": format!("rt-{employee}"),
                })
                .to_string()
            }
        }
    }
}

fn grant_of(req: &HttpRequest) -> Grant {
    let body = String::from_utf8_lossy(req.body());
    if body.contains("grant_type=refresh_token") { Grant::Refresh } else { Grant::Exchange }
}

fn idp_metadata() -> String {
    serde_json::json!({
        "issuer": IDP,
        "authorization_endpoint": format!("{IDP}/authorize"),
        "token_endpoint": format!("{IDP}/token"),
        "jwks_uri": format!("{IDP}/keys"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"]
    })
    .to_string()
}

pub fn mcp_url(id: &str) -> String {
    format!("https://mcp.{id}.example/mcp")
}

fn as_issuer(id: &str) -> String {
    format!("https://as.{id}.example")
}

/// One employee's view of the network: their requests, tagged with who sent them.
#[derive(Debug)]
pub struct EmployeeTransport {
    pub employee: u32,
    pub org: Arc<Org>,
}

impl Transport for EmployeeTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let answer = self.org.answer(self.employee, &request);
        Box::pin(async move { answer })
    }
}

/// Every MCP server accepts every token (the check is not what is measured).
#[derive(Debug)]
pub struct AcceptingProbe;

impl McpProbe for AcceptingProbe {
    fn check<'a>(&'a self, _: &'a Url, _: &'a AccessToken) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(async {
            Ok(McpServerInfo { name: "sim".into(), version: "1".into(), protocol_version: "2025-11-25".into() })
        })
    }
}
