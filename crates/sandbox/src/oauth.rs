//! OAuth building blocks shared by the IdP and the connector authorization servers:
//! the error response, client authentication, and opaque token handling.
//!
//! Both kinds of server must answer errors the same standard way (RFC 6749 §5.2) and
//! authenticate clients the same strict way (RFC 6749 §2.3.1), so it lives once here.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a client authenticates at a token endpoint (RFC 6749 §2.3.1, RFC 7591 §2
/// `token_endpoint_auth_method` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// Public client: `client_id` in the body, no secret.
    None,
}

impl ClientAuthMethod {
    /// The registered metadata value (`client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2), plus the fields some extensions add
/// (`max_age` for step-up, OAuth 2.0 Step-Up Authentication Challenge, RFC 9470 §3).
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// HTTP status: 400, or 401 for `invalid_client`, 500 for `server_error`.
    pub status: StatusCode,
    /// The `error` code.
    pub error: &'static str,
    /// Human-readable `error_description` (never contains a token or secret).
    pub description: String,
    /// `max_age` for `insufficient_user_authentication`.
    pub max_age: Option<u64>,
    /// Add `WWW-Authenticate: Basic` (the client tried HTTP Basic and failed).
    pub basic_challenge: bool,
}

impl OAuthError {
    /// A 400 error with `code` and `description`.
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: code,
            description: description.into(),
            max_age: None,
            basic_challenge: false,
        }
    }

    /// `invalid_request` (RFC 6749 §5.2).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    /// `invalid_grant` (RFC 6749 §5.2).
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// `invalid_client` with status 401 (RFC 6749 §5.2).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, ..Self::new("invalid_client", description) }
    }

    /// `server_error` with status 500.
    pub fn server_error(description: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, ..Self::new("server_error", description) }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        });
        if let Some(max_age) = self.max_age {
            body["max_age"] = max_age.into();
        }
        let mut response = (self.status, no_store(), axum::Json(body)).into_response();
        if self.basic_challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sandbox\""));
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, required on token responses
/// (RFC 6749 §5.1).
pub fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

/// A client registered at one token endpoint.
#[derive(Clone)]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// The only authentication method accepted.
    pub method: ClientAuthMethod,
    /// The secret (absent for `none`).
    pub secret: Option<String>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// Registers `client_id` with `method` and, for secret methods, a fresh random secret.
    pub fn new(client_id: impl Into<String>, method: ClientAuthMethod) -> Self {
        let secret = (method != ClientAuthMethod::None).then(|| hex(&rand::random::<[u8; 32]>()));
        Self { client_id: client_id.into(), method, secret }
    }

    /// Authenticates the request strictly with the registered method
    /// (RFC 6749 §2.3.1; `none` per RFC 7591 §2): any other method, or a second
    /// method on top of it, is `invalid_client`.
    pub fn authenticate(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), OAuthError> {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
        let body_id = form.get("client_id");
        let body_secret = form.get("client_secret");
        let expected = self.method.as_str();
        match self.method {
            ClientAuthMethod::ClientSecretBasic => {
                let fail = |why: &str| OAuthError {
                    basic_challenge: true,
                    ..OAuthError::invalid_client(format!("{why} (this client is registered for {expected})"))
                };
                if body_secret.is_some() {
                    return Err(fail("client_secret in the request body"));
                }
                let Some(basic) = basic else {
                    return Err(fail("missing HTTP Basic client authentication"));
                };
                let (id, secret) = decode_basic(&basic[6..]).ok_or_else(|| fail("malformed HTTP Basic header"))?;
                if body_id.is_some_and(|b| *b != id) {
                    return Err(fail("client_id in body differs from HTTP Basic"));
                }
                if id != self.client_id || !self.secret_matches(&secret) {
                    return Err(fail("unknown client or wrong secret"));
                }
            }
            ClientAuthMethod::ClientSecretPost => {
                if basic.is_some() {
                    return Err(OAuthError::invalid_client(format!(
                        "HTTP Basic used (this client is registered for {expected})"
                    )));
                }
                let (Some(id), Some(secret)) = (body_id, body_secret) else {
                    return Err(OAuthError::invalid_client(
                        "missing client_id or client_secret in the request body (client_secret_post)",
                    ));
                };
                if *id != self.client_id || !self.secret_matches(secret) {
                    return Err(OAuthError::invalid_client("unknown client or wrong secret"));
                }
            }
            ClientAuthMethod::None => {
                if basic.is_some() || body_secret.is_some() {
                    return Err(OAuthError::invalid_client(
                        "client secret sent, but this client is registered as public (none)",
                    ));
                }
                if body_id.is_none_or(|id| *id != self.client_id) {
                    return Err(OAuthError::invalid_client("missing or unknown client_id"));
                }
            }
        }
        Ok(())
    }

    fn secret_matches(&self, given: &str) -> bool {
        self.secret.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), given.as_bytes()))
    }
}

/// Decodes `base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(encoded.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses an `application/x-www-form-urlencoded` token request body (RFC 6749 §3.2).
/// A parameter sent twice is `invalid_request` (RFC 6749 §3.1).
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("content type must be application/x-www-form-urlencoded"));
    }
    let mut form = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        if form.insert(key.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {key} repeated")));
        }
    }
    form.retain(|_, v: &mut String| !v.is_empty());
    Ok(form)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new opaque token value (256 random bits, base64url).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The storage key of an opaque token: tokens are kept only as SHA-256 hashes.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Splits a space-delimited scope string (RFC 6749 §3.3).
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

/// The `Bearer` token of an `Authorization` header (RFC 6750 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    (value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ")).then(|| value[7..].trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn strict_client_authentication() {
        let client = RegisteredClient::new("app", ClientAuthMethod::ClientSecretBasic);
        let secret = client.secret.clone().expect("secret");
        let mut headers = HeaderMap::new();
        let basic = format!("Basic {}", STANDARD.encode(format!("app:{secret}")));
        headers.insert(header::AUTHORIZATION, basic.parse().expect("header"));
        assert!(client.authenticate(&headers, &form(&[])).is_ok());
        let post = form(&[("client_id", "app"), ("client_secret", &secret)]);
        assert!(client.authenticate(&HeaderMap::new(), &post).is_err());

        let client = RegisteredClient { method: ClientAuthMethod::ClientSecretPost, ..client };
        assert!(client.authenticate(&HeaderMap::new(), &post).is_ok());
        assert!(client.authenticate(&headers, &form(&[])).is_err());

        let public = RegisteredClient::new("pub", ClientAuthMethod::None);
        assert!(public.authenticate(&HeaderMap::new(), &form(&[("client_id", "pub")])).is_ok());
        assert!(public.authenticate(&HeaderMap::new(), &form(&[])).is_err());
    }
}
