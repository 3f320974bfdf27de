//! OAuth building blocks shared by the IdP and the connector authorization servers:
//! the error response, client authentication, and opaque token handling.
//!
//! Both kinds of server must answer errors the same standard way (RFC 6749 §5.2) and
//! authenticate clients the same strict way (RFC 6749 §2.3.1; RFC 7523 §3 and OIDC Core §9 for
//! `private_key_jwt`), so it lives once here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::knobs::KnobsHandle;
use crate::state::LEEWAY_SECS;

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
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OIDC Core §9); the sandbox
    /// generates a P-256 key per client and start, and keeps only its public half for checking.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registered metadata value (`client_secret_basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
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
    /// `acr_values` for `insufficient_user_authentication` (RFC 9470 §3).
    pub acr_values: Option<String>,
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
            acr_values: None,
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
        if let Some(acr_values) = self.acr_values {
            body["acr_values"] = acr_values.into();
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
    /// The secret (for `client_secret_basic` and `client_secret_post` only).
    pub secret: Option<String>,
    /// The key pair (for `private_key_jwt` only); the server side uses only its public half.
    pub key: Option<Arc<ClientKey>>,
    /// Where the private key was written for the policy's `key_file` (`private_key_jwt`).
    pub key_file: Option<PathBuf>,
    /// How client assertions are checked (`private_key_jwt`; see [`Self::with_assertion_check`]).
    pub assertion: Option<Arc<AssertionCheck>>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// Registers `client_id` with `method` and a fresh credential: a random secret for the
    /// secret methods, a P-256 key pair for `private_key_jwt` (`key` stays `None` in the
    /// practically impossible case that none could be made; every assertion is then refused).
    pub fn new(client_id: impl Into<String>, method: ClientAuthMethod) -> Self {
        let secret = matches!(method, ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost)
            .then(|| hex(&rand::random::<[u8; 32]>()));
        let key =
            (method == ClientAuthMethod::PrivateKeyJwt).then(ClientKey::generate).and_then(Result::ok).map(Arc::new);
        Self { client_id: client_id.into(), method, secret, key, key_file: None, assertion: None }
    }

    /// Checks this client's assertions as an AS with `issuer` and `token_endpoint` does, on the
    /// sandbox clock, accepting the audiences `audience` allows.
    pub fn with_assertion_check(
        mut self,
        issuer: String,
        token_endpoint: String,
        audience: ClientAssertionAudience,
        clock: KnobsHandle,
    ) -> Self {
        self.assertion = Some(Arc::new(AssertionCheck {
            issuer,
            token_endpoint,
            audience,
            clock,
            used_jtis: Mutex::new(HashMap::new()),
        }));
        self
    }

    /// [`Self::authenticate_at`] for a request to the token endpoint.
    pub fn authenticate(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), OAuthError> {
        self.authenticate_at(headers, form, None)
    }

    /// Authenticates the request strictly with the registered method
    /// (RFC 6749 §2.3.1; `none` per RFC 7591 §2; `private_key_jwt` per RFC 7523 §3 and OIDC Core
    /// §9): any other method, or a second method on top of it, is `invalid_client`. `endpoint` is
    /// the URL the request was sent to (`None`: the token endpoint), for the audience rules that
    /// name it.
    pub fn authenticate_at(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
        endpoint: Option<&str>,
    ) -> Result<(), OAuthError> {
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
            ClientAuthMethod::PrivateKeyJwt => {
                if basic.is_some() || body_secret.is_some() {
                    return Err(OAuthError::invalid_client(
                        "client secret sent, but this client is registered for private_key_jwt",
                    ));
                }
                let (Some(key), Some(check)) = (&self.key, &self.assertion) else {
                    return Err(OAuthError::invalid_client("no public key is registered for this client"));
                };
                check.verify(&self.client_id, key, form, endpoint)?;
            }
        }
        Ok(())
    }

    fn secret_matches(&self, given: &str) -> bool {
        self.secret.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), given.as_bytes()))
    }
}

/// RFC 7523 §2.2 `client_assertion_type`.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The explicit type of a client assertion that follows draft-ietf-oauth-rfc7523bis (§4).
pub const TYP_CLIENT_AUTHENTICATION: &str = "client-authentication+jwt";

/// The longest a client assertion may live (`exp` from now), as strict servers cap it (Auth0:
/// five minutes; Okta an hour): an assertion is for one request.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// A client's P-256 key pair for `private_key_jwt`, with its key id and public JWK.
pub struct ClientKey {
    kid: String,
    private_pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl ClientKey {
    /// A fresh P-256 key pair (ES256).
    pub fn generate() -> Result<Self, String> {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let crate::jwt::P256Key { signing, kid, jwk, public_sec1 } = crate::jwt::P256Key::generate("ema-client")?;
        let private_pem = signing.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
        let encoding = EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Self { kid, private_pem, encoding, decoding: DecodingKey::from_ec_der(&public_sec1), jwk })
    }

    /// The key id (`kid`) the public JWK and the policy carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 PEM: what the policy's `key_file` holds.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The public key as a JWK (RFC 7517 §4) with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` with `{alg: ES256, kid}` and `typ` (if any): for tests that need an
    /// assertion a correct client would not send.
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// Which `aud` an authorization server takes in a client assertion: the rules real servers
/// enforce (crates/core/src/oauth/client_auth.rs has the survey). Always a single value (a string
/// or a one-element array): several values are refused, as audience injection exploits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAssertionAudience {
    /// The issuer, the token endpoint URL or the URL of the endpoint invoked (Keycloak, Spring
    /// Authorization Server, oidc-provider).
    #[default]
    IssuerOrEndpoint,
    /// Exactly the URL of the endpoint invoked (Okta; Entra ID's token endpoint).
    EndpointInvoked,
    /// Exactly the issuer identifier (draft-ietf-oauth-rfc7523bis §4; OpenIddict 7).
    IssuerOnly,
}

/// How a `private_key_jwt` registration checks client assertions (RFC 7523 §3, OIDC Core §9).
#[derive(Debug)]
pub struct AssertionCheck {
    /// The AS's issuer identifier.
    pub issuer: String,
    /// The AS's token endpoint URL.
    pub token_endpoint: String,
    /// Which `aud` values pass.
    pub audience: ClientAssertionAudience,
    clock: KnobsHandle,
    /// `jti` → `exp` of assertions already accepted.
    used_jtis: Mutex<HashMap<String, i64>>,
}

impl AssertionCheck {
    /// Checks the assertion of a request by `client_id` to `endpoint` (`None`: the token
    /// endpoint); each failure is `invalid_client` naming the check.
    fn verify(
        &self,
        client_id: &str,
        key: &ClientKey,
        form: &HashMap<String, String>,
        endpoint: Option<&str>,
    ) -> Result<(), OAuthError> {
        let refuse = |why: String| OAuthError::invalid_client(format!("client assertion refused: {why}"));
        match form.get("client_assertion_type").map(String::as_str) {
            None => {
                return Err(OAuthError::invalid_client(
                    "missing client_assertion_type (this client is registered for private_key_jwt)",
                ));
            }
            Some(CLIENT_ASSERTION_TYPE) => {}
            Some(other) => {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}, not `{}`",
                    shown(other)
                )));
            }
        }
        let Some(assertion) = form.get("client_assertion") else {
            return Err(OAuthError::invalid_client(
                "missing client_assertion (this client is registered for private_key_jwt)",
            ));
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| refuse("it is not a JWT".into()))?;
        if header.alg != Algorithm::ES256 {
            return Err(refuse(format!("alg {:?} is not allowed: this client's registered key is ES256", header.alg)));
        }
        match header.typ.as_deref() {
            None | Some("JWT") | Some(TYP_CLIENT_AUTHENTICATION) => {}
            Some(t) if t.eq_ignore_ascii_case("application/client-authentication+jwt") => {}
            Some(other) => {
                return Err(refuse(format!(
                    "typ `{}` is not a client assertion's (JWT or {TYP_CLIENT_AUTHENTICATION})",
                    shown(other)
                )));
            }
        }
        if let Some(kid) = &header.kid
            && *kid != key.kid
        {
            return Err(refuse(format!("kid `{}` is not this client's registered key `{}`", shown(kid), key.kid)));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(assertion, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    refuse("the signature does not verify with the client's registered public key".into())
                }
                _ => refuse("it is not a well-formed JWT".into()),
            })?
            .claims;
        let Value::Object(claims) = claims else {
            return Err(refuse("its claims are not a JSON object".into()));
        };
        let string = |name: &str| claims.get(name).and_then(Value::as_str);
        if string("iss") != Some(client_id) {
            return Err(refuse(format!("iss must be the client_id `{client_id}`")));
        }
        if string("sub") != Some(client_id) {
            return Err(refuse(format!("sub must be the client_id `{client_id}`")));
        }
        // RFC 7521 §4.2: a `client_id` parameter must name the client the assertion names.
        if form.get("client_id").is_some_and(|id| id != client_id) {
            return Err(refuse("the client_id parameter is not the assertion's sub".into()));
        }
        self.check_audience(&claims, endpoint).map_err(refuse)?;
        let now = self.clock.now();
        let number = |name: &str| -> Result<Option<i64>, OAuthError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| refuse(format!("{name} is not a number of seconds"))),
            }
        };
        let exp = number("exp")?.ok_or_else(|| refuse("exp is missing".into()))?;
        if exp + LEEWAY_SECS <= now {
            return Err(refuse(format!("it expired {}s ago (leeway {LEEWAY_SECS}s)", now - exp)));
        }
        if exp - now > MAX_ASSERTION_LIFETIME_SECS {
            return Err(refuse(format!(
                "exp is {}s ahead; a client assertion may live at most {MAX_ASSERTION_LIFETIME_SECS}s",
                exp - now
            )));
        }
        if let Some(iat) = number("iat")?
            && iat > now + LEEWAY_SECS
        {
            return Err(refuse(format!(
                "iat is {}s in the future (leeway {LEEWAY_SECS}s): check the clock",
                iat - now
            )));
        }
        if let Some(nbf) = number("nbf")?
            && nbf > now + LEEWAY_SECS
        {
            return Err(refuse(format!("it is not valid for another {}s (nbf)", nbf - now)));
        }
        let Some(jti) = string("jti").filter(|j| !j.is_empty()) else {
            return Err(refuse("jti is missing (OIDC Core §9 requires one)".into()));
        };
        let mut used = self.used_jtis.lock().unwrap_or_else(PoisonError::into_inner);
        // A jti must be remembered while its assertion could still pass the exp check.
        used.retain(|_, exp| *exp + LEEWAY_SECS >= now);
        if used.contains_key(jti) {
            return Err(refuse(format!(
                "jti `{}` was already used: an assertion is good for one request (RFC 7523 §3, OIDC Core §9)",
                shown(jti)
            )));
        }
        used.insert(jti.to_owned(), exp);
        Ok(())
    }

    fn check_audience(&self, claims: &serde_json::Map<String, Value>, endpoint: Option<&str>) -> Result<(), String> {
        let values: Vec<Option<&str>> = match claims.get("aud") {
            None => return Err("aud is missing".into()),
            Some(Value::String(aud)) => vec![Some(aud.as_str())],
            Some(Value::Array(auds)) => auds.iter().map(Value::as_str).collect(),
            Some(_) => return Err("aud is neither a string nor an array".into()),
        };
        let aud = match values.as_slice() {
            [Some(aud)] => *aud,
            [None] => return Err("aud is not a string".into()),
            many => {
                return Err(format!(
                    "aud has {} values; a client assertion must name this authorization server alone (audience \
                     injection, draft-ietf-oauth-rfc7523bis §4)",
                    many.len()
                ));
            }
        };
        let invoked = endpoint.unwrap_or(&self.token_endpoint);
        let (issuer, token) = (self.issuer.as_str(), self.token_endpoint.as_str());
        match self.audience {
            ClientAssertionAudience::IssuerOrEndpoint if [issuer, token, invoked].contains(&aud) => Ok(()),
            ClientAssertionAudience::IssuerOrEndpoint => Err(format!(
                "aud `{}` is neither this authorization server's issuer `{issuer}` nor its token endpoint `{token}`",
                shown(aud)
            )),
            ClientAssertionAudience::EndpointInvoked if aud == invoked => Ok(()),
            ClientAssertionAudience::EndpointInvoked => {
                Err(format!("aud must be the URL of the endpoint invoked, `{invoked}`, not `{}`", shown(aud)))
            }
            ClientAssertionAudience::IssuerOnly if aud == issuer => Ok(()),
            ClientAssertionAudience::IssuerOnly => Err(format!(
                "aud must be this authorization server's issuer identifier `{issuer}` as its sole value \
                 (draft-ietf-oauth-rfc7523bis §4), not `{}`",
                shown(aud)
            )),
        }
    }
}

/// A value the client sent, cut short for an error description.
fn shown(value: &str) -> String {
    const MAX: usize = 120;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
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

    const ISSUER: &str = "http://127.0.0.1:1/connectors/linear/as";
    const TOKEN: &str = "http://127.0.0.1:1/connectors/linear/as/token";
    const REVOKE: &str = "http://127.0.0.1:1/connectors/linear/as/revoke";

    fn key_client(audience: ClientAssertionAudience) -> (RegisteredClient, KnobsHandle) {
        let clock = KnobsHandle::default();
        let client = RegisteredClient::new("ema-linear", ClientAuthMethod::PrivateKeyJwt).with_assertion_check(
            ISSUER.into(),
            TOKEN.into(),
            audience,
            clock.clone(),
        );
        assert!(client.secret.is_none());
        (client, clock)
    }

    /// The claims a correct client sends (RFC 7523 §3, OIDC Core §9), `aud` the token endpoint.
    fn claims(now: i64) -> Value {
        serde_json::json!({
            "iss": "ema-linear", "sub": "ema-linear", "aud": TOKEN,
            "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60,
        })
    }

    fn assertion_form(jwt: &str) -> HashMap<String, String> {
        form(&[
            ("client_id", "ema-linear"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", jwt),
        ])
    }

    /// The `error_description` of the refusal of `claims` signed by the client's key.
    fn refusal(client: &RegisteredClient, typ: Option<&str>, claims: &Value) -> String {
        let jwt = client.key.as_ref().expect("key").sign(typ, claims).expect("sign");
        let err = client.authenticate(&HeaderMap::new(), &assertion_form(&jwt)).expect_err("refused");
        assert_eq!((err.status, err.error), (StatusCode::UNAUTHORIZED, "invalid_client"), "{}", err.description);
        err.description
    }

    #[test]
    fn a_correct_assertion_passes_once() {
        let (client, clock) = key_client(ClientAssertionAudience::default());
        let now = clock.now();
        let jwt = client.key.as_ref().expect("key").sign(Some("JWT"), &claims(now)).expect("sign");
        assert!(client.authenticate(&HeaderMap::new(), &assertion_form(&jwt)).is_ok());
        let replay = client.authenticate(&HeaderMap::new(), &assertion_form(&jwt)).expect_err("replay");
        assert!(replay.description.contains("was already used"), "{}", replay.description);
        // Without `client_id` in the body (RFC 7521 §4.2 makes it optional), with the rfc7523bis type.
        let fresh =
            client.key.as_ref().expect("key").sign(Some(TYP_CLIENT_AUTHENTICATION), &claims(now)).expect("sign");
        let mut without_id = assertion_form(&fresh);
        without_id.remove("client_id");
        assert!(client.authenticate(&HeaderMap::new(), &without_id).is_ok());
    }

    #[test]
    fn each_wrong_claim_is_refused_with_its_own_reason() {
        let (client, clock) = key_client(ClientAssertionAudience::default());
        let now = clock.now();
        let with = |name: &str, value: Value| {
            let mut c = claims(now);
            c[name] = value;
            c
        };
        let without = |name: &str| {
            let mut c = claims(now);
            c.as_object_mut().expect("object").remove(name);
            c
        };
        let cases = [
            (with("iss", "other".into()), "iss must be the client_id `ema-linear`"),
            (with("sub", "other".into()), "sub must be the client_id `ema-linear`"),
            (
                with("aud", "http://127.0.0.1:1/connectors/linear/mcp".into()),
                "is neither this authorization server's issuer",
            ),
            (with("aud", serde_json::json!([ISSUER, TOKEN])), "aud has 2 values"),
            (without("aud"), "aud is missing"),
            (with("exp", (now - 120).into()), "expired 120s ago"),
            (with("exp", (now + 3600).into()), "may live at most 300s"),
            (without("exp"), "exp is missing"),
            (with("iat", (now + 600).into()), "iat is 600s in the future"),
            (with("nbf", (now + 600).into()), "not valid for another 600s"),
            (without("jti"), "jti is missing"),
            (with("jti", "".into()), "jti is missing"),
        ];
        for (claims, expected) in cases {
            let why = refusal(&client, None, &claims);
            assert!(why.starts_with("client assertion refused: ") && why.contains(expected), "{expected}: {why}");
        }
        assert!(refusal(&client, Some("oauth-id-jag+jwt"), &claims(now)).contains("typ `oauth-id-jag+jwt` is not"));
        // A one-element array is one audience.
        let jwt =
            client.key.as_ref().expect("key").sign(None, &with("aud", serde_json::json!([ISSUER]))).expect("sign");
        assert!(client.authenticate(&HeaderMap::new(), &assertion_form(&jwt)).is_ok());
    }

    #[test]
    fn wrong_key_alg_kid_type_or_extra_secret_is_refused() {
        let (client, clock) = key_client(ClientAssertionAudience::default());
        let now = clock.now();
        let description =
            |f: &HashMap<String, String>| client.authenticate(&HeaderMap::new(), f).expect_err("refused").description;
        // Another key, even under this client's kid.
        let other = ClientKey::generate().expect("key");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(client.key.as_ref().expect("key").kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &claims(now), &other.encoding).expect("sign");
        assert!(description(&assertion_form(&forged)).contains("signature does not verify"));
        let foreign_kid = other.sign(None, &claims(now)).expect("sign");
        assert!(description(&assertion_form(&foreign_kid)).contains("is not this client's registered key"));
        // An HMAC assertion keyed with something public (alg confusion).
        let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(now), &EncodingKey::from_secret(b"k"))
            .expect("sign");
        assert!(description(&assertion_form(&hs)).contains("alg HS256 is not allowed"));
        assert!(description(&assertion_form("not-a-jwt")).contains("it is not a JWT"));
        let good = client.key.as_ref().expect("key").sign(None, &claims(now)).expect("sign");
        let mut wrong_type = assertion_form(&good);
        wrong_type
            .insert("client_assertion_type".into(), "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into());
        assert!(description(&wrong_type).contains("client_assertion_type must be"));
        let mut with_secret = assertion_form(&good);
        with_secret.insert("client_secret".into(), "s".into());
        assert!(description(&with_secret).contains("registered for private_key_jwt"));
        assert!(description(&form(&[("client_id", "ema-linear")])).contains("missing client_assertion_type"));
        let mut other_id = assertion_form(&good);
        other_id.insert("client_id".into(), "ema-figma".into());
        assert!(description(&other_id).contains("client_id parameter is not the assertion's sub"));
    }

    #[test]
    fn each_audience_rule_takes_what_its_servers_take() {
        let now = KnobsHandle::default().now();
        let passes = |rule: ClientAssertionAudience, aud: &str, endpoint: Option<&str>| {
            let (client, _) = key_client(rule);
            let mut c = claims(now);
            c["aud"] = aud.into();
            let jwt = client.key.as_ref().expect("key").sign(None, &c).expect("sign");
            client.authenticate_at(&HeaderMap::new(), &assertion_form(&jwt), endpoint).map_err(|e| e.description)
        };
        use ClientAssertionAudience::*;
        assert!(passes(IssuerOrEndpoint, ISSUER, None).is_ok());
        assert!(passes(IssuerOrEndpoint, TOKEN, None).is_ok());
        assert!(passes(IssuerOrEndpoint, TOKEN, Some(REVOKE)).is_ok());
        assert!(passes(IssuerOrEndpoint, REVOKE, Some(REVOKE)).is_ok());
        assert!(passes(IssuerOrEndpoint, REVOKE, None).is_err());
        assert!(passes(EndpointInvoked, TOKEN, None).is_ok());
        assert!(passes(EndpointInvoked, REVOKE, Some(REVOKE)).is_ok());
        let okta = passes(EndpointInvoked, ISSUER, None).unwrap_err();
        assert!(okta.contains("aud must be the URL of the endpoint invoked"), "{okta}");
        assert!(passes(EndpointInvoked, TOKEN, Some(REVOKE)).is_err());
        assert!(passes(IssuerOnly, ISSUER, None).is_ok());
        let bis = passes(IssuerOnly, TOKEN, None).unwrap_err();
        assert!(bis.contains("issuer identifier") && bis.contains("rfc7523bis"), "{bis}");
    }
}
