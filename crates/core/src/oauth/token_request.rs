//! A generic token-endpoint request (RFC 6749 §3.2) and its response (§5.1).
//!
//! The response is parsed field by field from a JSON value rather than with a derived struct,
//! so that a malformed response is reported by the name of the field at fault and never by a
//! parser message that could quote a token.

use http::header;
use serde_json::Value;
use url::Url;

use super::client_auth::{self, ClientAuthError};
use super::error::ResponseError;
use crate::http::{HttpRequest, HttpResponse, display_url};
use crate::oauth::client_auth::ClientAuth;

/// A form POST to a token endpoint, with client authentication.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    pub token_endpoint: &'a Url,
    pub client_id: &'a str,
    pub client_auth: &'a ClientAuth,
    /// Grant parameters in the order they are sent.
    pub params: Vec<(&'static str, String)>,
}

impl TokenRequest<'_> {
    /// Builds the HTTP request (RFC 6749 §3.2: POST, `application/x-www-form-urlencoded`).
    /// A `private_key_jwt` assertion names the endpoint itself as its audience.
    pub fn build(&self, now_unix: i64) -> Result<HttpRequest, ClientAuthError> {
        self.build_for_audience(now_unix, self.token_endpoint)
    }

    /// Builds the request with a client assertion whose `aud` is `assertion_audience`: for
    /// requests to other endpoints of the same server (revocation, RFC 7009 §2.1), whose client
    /// authentication an IdP checks as at its token endpoint (OIDC Core §9: "the `aud` SHOULD be
    /// the URL of the Authorization Server's Token Endpoint"; Okta requires it).
    pub fn build_for_audience(&self, now_unix: i64, assertion_audience: &Url) -> Result<HttpRequest, ClientAuthError> {
        self.build_with(now_unix, client_auth::AssertionAudience::endpoint(assertion_audience.as_str()))
    }

    /// Builds the request with a client assertion naming `audience` (by either rule of
    /// [`client_auth::AudienceRule`]).
    pub fn build_with(
        &self,
        now_unix: i64,
        audience: client_auth::AssertionAudience<'_>,
    ) -> Result<HttpRequest, ClientAuthError> {
        let auth = client_auth::authenticate_with(self.client_id, self.client_auth, audience, now_unix)?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.params.iter().chain(auth.form.iter()) {
            form.append_pair(k, v);
        }
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.token_endpoint.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(a) = auth.authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        req.body(form.finish().into_bytes()).map_err(|e| ClientAuthError(e.to_string()))
    }
}

/// The longest `expires_in` a token response may carry: a year (and a day). Anything longer
/// is refused as an invalid response, so no server can make the client compute an expiry out of
/// range or keep a token "valid" for ever.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 366 * 24 * 3600;

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The issued token (an access token, or an ID-JAG for token exchange). Secret.
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
    pub issued_token_type: Option<String>,
}

/// The tokens are never shown; the other fields are the server's words and are scrubbed, since
/// a hostile server may put a token anywhere (found by fuzzing: a token-shaped `token_type`).
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &str| crate::redact::scrub(s, 200);
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &shown(&self.token_type))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope.as_deref().map(shown))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("issued_token_type", &self.issued_token_type.as_deref().map(shown))
            .finish()
    }
}

/// Processes a token-endpoint response: a 200 with the RFC 6749 §5.1 fields, or an error.
/// A redirect is an error (we never follow one on a token endpoint, RFC 9700 §4.11).
pub fn parse_token_response(endpoint: &Url, resp: &HttpResponse) -> Result<TokenResponse, ResponseError> {
    let shown = display_url(endpoint);
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        return Err(ResponseError::Invalid {
            endpoint: shown,
            problem: format!("answered with a redirect (HTTP {status}), which is never followed on a token endpoint"),
        });
    }
    if status != 200 {
        return Err(ResponseError::from_response(&shown, status, resp.body()));
    }
    let invalid = |problem: &str| ResponseError::Invalid { endpoint: shown.clone(), problem: problem.to_string() };
    let value: Value = serde_json::from_slice(resp.body()).map_err(|_| invalid("the body is not JSON"))?;
    let obj = value.as_object().ok_or_else(|| invalid("the body is not a JSON object"))?;
    let string = |name: &str| -> Result<Option<String>, ResponseError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("`{name}` is not a string"))),
        }
    };
    let access_token =
        string("access_token")?.filter(|s| !s.is_empty()).ok_or_else(|| invalid("`access_token` is missing"))?;
    let token_type =
        string("token_type")?.ok_or_else(|| invalid("`token_type` is missing (RFC 6749 §5.1 requires it)"))?;
    // RFC 6749 §5.1 says a number; some servers send a numeric string. Accept both, nothing else.
    let expires_in = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_u64().ok_or_else(|| invalid("`expires_in` is not a non-negative integer"))?)
        }
        Some(Value::String(s)) => {
            Some(s.trim().parse::<u64>().map_err(|_| invalid("`expires_in` is not a non-negative integer"))?)
        }
        Some(_) => return Err(invalid("`expires_in` is not a number")),
    };
    if let Some(secs) = expires_in
        && secs > MAX_TOKEN_LIFETIME_SECS
    {
        return Err(invalid(&format!(
            "`expires_in` is {secs} s, more than a year: no token endpoint issues such a lifetime, so the answer is \
             refused"
        )));
    }
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        scope: string("scope")?,
        refresh_token: string("refresh_token")?,
        issued_token_type: string("issued_token_type")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a hostile server put a token-shaped value in `token_type`, which the
    /// response's `Debug` showed as it was.
    #[test]
    fn debug_shows_neither_the_tokens_nor_a_token_the_server_hid_in_another_field() {
        let hidden = format!("B{}zt-1", "c".repeat(40));
        let response = TokenResponse {
            access_token: "at-secret-value".into(),
            token_type: hidden.clone(),
            expires_in: Some(60),
            scope: Some(format!("read {hidden}")),
            refresh_token: Some("rt-secret-value".into()),
            issued_token_type: Some(hidden.clone()),
        };
        let shown = format!("{response:?}");
        for secret in [hidden.as_str(), "at-secret-value", "rt-secret-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("expires_in: Some(60)") && shown.contains("read [redacted]"), "{shown}");
    }
}
