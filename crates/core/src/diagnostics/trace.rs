//! A step-by-step trace of the protocol legs, for the help desk (MCP Inspector's auth debugger
//! is the model): each request's leg, endpoint, HTTP status, OAuth error, duration, the server's
//! `Date` and the decoded, allow-listed claims of the tokens that went by.
//!
//! How: [`TracingTransport`] wraps the [`Transport`] every leg already goes through, so the
//! engine runs unchanged and the trace shows what really went over the wire. What it keeps is
//! chosen field by field (allow-list): no body, no header, no raw token, no signature. Claims
//! come from [`crate::jwt::displayable_claims`]; every kept string is scrubbed
//! ([`crate::redact::scrub`]) in case a hostile server put a secret in one.

use std::sync::Mutex;
use std::time::Instant;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::http::{HttpRequest, HttpResponse, NetworkFailure, Transport, TransportError, display_url};
use crate::jwt::{decode_claims_unverified, decode_header_unverified, displayable_claims};
use crate::mcp_check::{McpCheckError, McpProbe, McpServerInfo};
use crate::redact::scrub;
use crate::secret::AccessToken;

/// The grant types of the legs (RFC 8693 §2.1, RFC 7523 §2.1, RFC 6749 §4.1.3 and §6).
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Which protocol leg a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leg {
    /// OpenID / RFC 8414 / RFC 9728 metadata.
    Discovery,
    /// The IdP's signing keys.
    Jwks,
    /// Sign-in at the IdP: the authorization code or a refresh token for tokens.
    SignIn,
    /// RFC 8693 token exchange at the IdP: the ID token for an ID-JAG.
    TokenExchange,
    /// RFC 7523 JWT-bearer grant at the connector's authorization server: the ID-JAG for an
    /// access token.
    JwtBearerGrant,
    /// RFC 7009 revocation.
    Revocation,
    /// The MCP `initialize` handshake with the access token (MCP 2025-11-25 basic/lifecycle).
    McpInitialize,
    /// Anything else (an MCP server's 401 for its metadata hint).
    Other,
}

/// The decoded, allow-listed view of one token that went by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    /// Where it was: `subject_token`, `assertion`, `access_token`, `id_token`, ...
    pub field: String,
    /// The JOSE `typ` (`oauth-id-jag+jwt`) and `alg`.
    pub typ: Option<String>,
    pub alg: Option<String>,
    /// iss, sub, aud, client_id, scope, resource, exp, iat, nbf, jti, email, auth_time.
    pub claims: serde_json::Map<String, Value>,
}

/// One request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub leg: Leg,
    pub method: String,
    /// Scheme, host and path: no query, no fragment.
    pub endpoint: String,
    pub http_status: Option<u16>,
    /// RFC 6749 §5.2 `error`.
    pub oauth_error: Option<String>,
    /// `error_description`, scrubbed and cut to 300 characters.
    pub oauth_error_description: Option<String>,
    /// When no response came: the transport's code (`timeout`, `unreachable`) and message.
    pub transport_error: Option<String>,
    /// When no response came for a network reason: which (`dns`, `tls`, `refused`, `timeout`,
    /// `other`), as the transport classified it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_failure: Option<NetworkFailure>,
    pub duration_ms: u64,
    /// The response's `Date` header (RFC 9110 §6.6.1), for clock-skew checks.
    pub server_date: Option<String>,
    /// Tokens sent (`subject_token`, `assertion`) and received (`access_token`, `id_token`).
    pub tokens: Vec<TokenView>,
    /// The request's RFC 8707 `resource` and RFC 8693 `audience` (which connector it is for).
    pub resource: Option<String>,
    pub audience: Option<String>,
    /// This computer's clock when the response came (Unix seconds), against `server_date`.
    pub at_unix: i64,
    /// What the step established beyond its status: the MCP server's name, version and protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A [`Transport`] that records a [`Step`] per request.
#[derive(Debug)]
pub struct TracingTransport<T> {
    inner: T,
    steps: Mutex<Vec<Step>>,
}

impl<T: Transport> TracingTransport<T> {
    pub fn new(inner: T) -> Self {
        TracingTransport { inner, steps: Mutex::new(Vec::new()) }
    }

    /// The steps so far, in order; the trace is emptied.
    pub fn take(&self) -> Vec<Step> {
        std::mem::take(&mut *self.steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn push(&self, step: Step) {
        self.steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(step);
    }
}

/// An [`McpProbe`] that adds a [`Leg::McpInitialize`] step to a [`TracingTransport`]'s trace, so
/// the MCP check sits in the same timeline as the legs before it. The MCP SDK has its own HTTP
/// stack, so the step records the outcome (status, server, duration), never the exchange.
#[derive(Debug)]
pub struct TracingProbe<P, T> {
    inner: P,
    trace: std::sync::Arc<TracingTransport<T>>,
}

impl<P: McpProbe, T: Transport> TracingProbe<P, T> {
    pub fn new(inner: P, trace: std::sync::Arc<TracingTransport<T>>) -> Self {
        TracingProbe { inner, trace }
    }
}

impl<P: McpProbe, T: Transport> McpProbe for TracingProbe<P, T> {
    fn check<'a>(
        &'a self,
        mcp_url: &'a Url,
        token: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.check(mcp_url, token).await;
            let network_failure = result.as_ref().err().and_then(McpCheckError::network_failure);
            let (http_status, transport_error, detail) = match &result {
                Ok(info) => (
                    Some(200),
                    None,
                    Some(scrub(&format!("{} {} (MCP {})", info.name, info.version, info.protocol_version), 200)),
                ),
                Err(McpCheckError::Unauthorized) => (Some(401), None, None),
                Err(e) => (None, Some(format!("{}: {}", e.code().wire(None), scrub(&e.to_string(), 300))), None),
            };
            self.trace.push(Step {
                leg: Leg::McpInitialize,
                method: "POST".into(),
                endpoint: display_url(mcp_url),
                http_status,
                oauth_error: None,
                oauth_error_description: None,
                transport_error,
                network_failure,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                server_date: None,
                tokens: Vec::new(),
                resource: None,
                audience: None,
                at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
                detail,
            });
            result
        })
    }
}

impl<T: Transport> Transport for TracingTransport<T> {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = request.method().to_string();
            let url = Url::parse(&request.uri().to_string()).ok();
            let endpoint = url.as_ref().map_or_else(|| "(not a URL)".to_string(), display_url);
            let form = form_fields(request.body());
            let leg = leg_of(&method, url.as_ref(), &form);
            let mut tokens = sent_tokens(&form);
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| scrub(v, 300));
            let (resource, audience) = (field("resource"), field("audience"));
            let started = Instant::now();
            let result = self.inner.send(request).await;
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut step = Step {
                leg,
                method,
                endpoint,
                http_status: None,
                oauth_error: None,
                oauth_error_description: None,
                transport_error: None,
                network_failure: None,
                duration_ms,
                server_date: None,
                tokens: Vec::new(),
                resource,
                audience,
                at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
                detail: None,
            };
            match &result {
                Ok(response) => {
                    step.http_status = Some(response.status().as_u16());
                    step.server_date =
                        response.headers().get(http::header::DATE).and_then(|v| v.to_str().ok()).map(|d| scrub(d, 64));
                    let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
                    step.oauth_error = body.get("error").and_then(Value::as_str).map(|e| scrub(e, 80));
                    step.oauth_error_description =
                        body.get("error_description").and_then(Value::as_str).map(|d| scrub(d, 300));
                    tokens.extend(received_tokens(&body));
                }
                Err(e) => {
                    step.transport_error = Some(format!("{}: {}", e.code(), scrub(&e.to_string(), 300)));
                    step.network_failure = e.network_failure();
                }
            }
            step.tokens = tokens;
            tracing::debug!(
                leg = ?step.leg,
                endpoint = %step.endpoint,
                status = ?step.http_status,
                error = ?step.oauth_error,
                ms = step.duration_ms,
                "request"
            );
            self.steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(step);
            result
        })
    }
}

/// The form fields of a token request body (`application/x-www-form-urlencoded`).
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn leg_of(method: &str, url: Option<&Url>, form: &[(String, String)]) -> Leg {
    let grant = form.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str());
    let path = url.map(Url::path).unwrap_or_default();
    match grant {
        Some(TOKEN_EXCHANGE) => Leg::TokenExchange,
        Some(JWT_BEARER) => Leg::JwtBearerGrant,
        Some(_) => Leg::SignIn,
        None if form.iter().any(|(k, _)| k == "token") && method == "POST" => Leg::Revocation,
        None if path.contains("/.well-known/") => Leg::Discovery,
        None if path.contains("jwks") => Leg::Jwks,
        None => Leg::Other,
    }
}

/// Tokens in a request: the exchange's `subject_token` (the ID token), the grant's `assertion`
/// (the ID-JAG), a `client_assertion` (private_key_jwt).
fn sent_tokens(form: &[(String, String)]) -> Vec<TokenView> {
    form.iter()
        .filter(|(k, _)| matches!(k.as_str(), "subject_token" | "assertion" | "client_assertion"))
        .filter_map(|(k, v)| view(k, v))
        .collect()
}

/// Tokens in a token response that are JWTs (opaque ones say nothing and are not kept).
fn received_tokens(body: &Value) -> Vec<TokenView> {
    ["access_token", "id_token"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_str).and_then(|v| view(k, v)))
        .collect()
}

fn view(field: &str, token: &str) -> Option<TokenView> {
    let claims = decode_claims_unverified(token).ok()?;
    let header = decode_header_unverified(token).ok();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| scrub(s, 80));
    Some(TokenView {
        field: field.to_string(),
        typ: text(header.as_ref().and_then(|h| h.get("typ"))),
        alg: text(header.as_ref().and_then(|h| h.get("alg"))),
        claims: displayable_claims(&claims).into_iter().map(|(k, v)| (k, scrub_value(v))).collect(),
    })
}

/// Scrubs every string inside a claim value (a hostile token may carry a secret in `sub`).
fn scrub_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(&s, 200)),
        Value::Array(a) => Value::Array(a.into_iter().map(scrub_value).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, scrub_value(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[derive(Debug)]
    struct Canned(u16, String);

    impl Transport for Canned {
        fn send(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
            let r = http::Response::builder()
                .status(self.0)
                .header("date", "Tue, 24 Nov 2026 02:00:00 GMT")
                .body(self.1.clone().into_bytes())
                .unwrap();
            Box::pin(async move { Ok(r) })
        }
    }

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2lnbmF0dXJlLWNhbmFyeQ", enc(header), enc(claims))
    }

    fn post(url: &str, form: &[(&str, &str)]) -> HttpRequest {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        http::Request::builder().method("POST").uri(url).body(body.into_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_grant_refusal_is_traced_with_its_leg_error_and_the_assertion_claims_but_no_secret() {
        let id_jag = jwt(
            serde_json::json!({"typ": "oauth-id-jag+jwt", "alg": "RS256"}),
            serde_json::json!({"iss": "https://idp.example", "sub": "alice", "aud": "https://as.linear.example",
                "client_id": "ema", "resource": "https://mcp.linear.example/mcp", "scope": "read", "jti": "j1",
                "exp": 1800000300, "iat": 1800000000, "secret_custom_claim": "CANARY-custom"}),
        );
        let body = format!(r#"{{"error":"invalid_grant","error_description":"assertion {id_jag} was replayed"}}"#);
        let t = TracingTransport::new(Canned(400, body));
        let request = post(
            "https://as.linear.example/token?x=1",
            &[("grant_type", JWT_BEARER), ("assertion", &id_jag), ("client_secret", "CANARY-secret")],
        );
        let _ = t.send(request).await.unwrap();
        let steps = t.take();
        assert_eq!(steps.len(), 1);
        let s = &steps[0];
        assert_eq!(
            (s.leg, s.endpoint.as_str(), s.http_status),
            (Leg::JwtBearerGrant, "https://as.linear.example/token", Some(400))
        );
        assert_eq!(s.oauth_error.as_deref(), Some("invalid_grant"));
        assert_eq!(s.oauth_error_description.as_deref(), Some("assertion [redacted] was replayed"));
        assert_eq!(s.server_date.as_deref(), Some("Tue, 24 Nov 2026 02:00:00 GMT"));
        let a = &s.tokens[0];
        assert_eq!(
            (a.field.as_str(), a.typ.as_deref(), a.alg.as_deref()),
            ("assertion", Some("oauth-id-jag+jwt"), Some("RS256"))
        );
        assert_eq!(a.claims["aud"], "https://as.linear.example");
        assert_eq!(a.claims["jti"], "j1");
        let all = serde_json::to_string(&steps).unwrap();
        for secret in [id_jag.as_str(), "c2lnbmF0dXJlLWNhbmFyeQ", "CANARY-secret", "CANARY-custom"] {
            assert!(!all.contains(secret), "{secret} in the trace: {all}");
        }
        assert!(t.take().is_empty(), "take empties the trace");
    }

    #[tokio::test]
    async fn legs_are_told_apart_and_opaque_tokens_are_not_kept() {
        let t = TracingTransport::new(Canned(
            200,
            r#"{"access_token":"opaque-CANARY-value","token_type":"Bearer"}"#.into(),
        ));
        let get = |u: &str| http::Request::builder().uri(u).body(Vec::new()).unwrap();
        let _ = t.send(get("https://idp.example/.well-known/openid-configuration")).await;
        let _ = t.send(get("https://idp.example/keys/jwks.json")).await;
        let _ =
            t.send(post("https://idp.example/token", &[("grant_type", TOKEN_EXCHANGE), ("subject_token", "x")])).await;
        let _ = t.send(post("https://idp.example/token", &[("grant_type", "refresh_token")])).await;
        let _ = t.send(post("https://idp.example/revoke", &[("token", "CANARY-rt")])).await;
        let legs: Vec<Leg> = t.take().iter().map(|s| s.leg).collect();
        assert_eq!(legs, [Leg::Discovery, Leg::Jwks, Leg::TokenExchange, Leg::SignIn, Leg::Revocation]);
        let _ = t.send(post("https://idp.example/token", &[("grant_type", "refresh_token")])).await;
        let json = serde_json::to_string(&t.take()).unwrap();
        assert!(!json.contains("CANARY"), "{json}");
    }
}
