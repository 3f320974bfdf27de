//! RFC 8693 token exchange at the IdP: the user's ID token for an ID-JAG aimed at one
//! connector's authorization server (draft-ietf-oauth-identity-assertion-authz-grant-04 §4.3).
//!
//! A refusal because the user is not assigned to the connector is an outcome, not a failure:
//! [`ExchangeError::NotEntitled`]. `insufficient_user_authentication` (RFC 9470 §3) means the
//! user must go through the browser again: [`ExchangeError::StepUp`].

use url::Url;

use super::split_scopes;
use crate::config::ClientAuth;
use crate::http::{HttpRequest, HttpResponse};
use crate::oauth::client_auth::ClientAuthError;
use crate::oauth::{OAuthErrorResponse, ResponseError, TokenRequest, parse_token_response};
use crate::secret::{IdJag, IdToken, RefreshToken};
use crate::status::{ErrorCode, Leg};

/// RFC 8693 §2.1 `grant_type`.
pub const GRANT_TYPE_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// draft-ietf-oauth-identity-assertion-authz-grant-04 §4.3 `requested_token_type`.
pub const TOKEN_TYPE_ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// RFC 8693 §3 token type of an OIDC ID token.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3 token type of a refresh token: the IdP session itself as the subject
/// (draft-ietf-oauth-identity-assertion-authz-grant-02 and later; Okta).
pub const TOKEN_TYPE_REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The user's token the IdP exchanges (RFC 8693 §2.1 `subject_token`).
#[derive(Debug, Clone, Copy)]
pub enum SubjectToken<'a> {
    IdToken(&'a IdToken),
    /// The IdP validates it as it would a `refresh_token` grant.
    RefreshToken(&'a RefreshToken),
}

impl SubjectToken<'_> {
    /// RFC 8693 §2.1 `subject_token_type`.
    pub fn token_type(&self) -> &'static str {
        match self {
            SubjectToken::IdToken(_) => TOKEN_TYPE_ID_TOKEN,
            SubjectToken::RefreshToken(_) => TOKEN_TYPE_REFRESH_TOKEN,
        }
    }

    fn secret(&self) -> &str {
        match self {
            SubjectToken::IdToken(t) => t.secret(),
            SubjectToken::RefreshToken(t) => t.secret(),
        }
    }
}

/// OAuth errors that mean "this user is not assigned to this connector" rather than a fault:
/// RFC 6749 §5.2 `access_denied`/`unauthorized_client`, RFC 8707 §2 `invalid_target`, and
/// Okta's `no_matching_policy`.
pub const NOT_ENTITLED_ERRORS: &[&str] =
    &["access_denied", "invalid_target", "unauthorized_client", "no_matching_policy"];

/// One exchange's inputs.
#[derive(Debug)]
pub struct TokenExchange<'a> {
    pub token_endpoint: &'a Url,
    pub client_id: &'a str,
    pub client_auth: &'a ClientAuth,
    /// The connector AS issuer: the ID-JAG's `aud` (draft §4.3 `audience`, REQUIRED).
    pub audience: &'a str,
    /// The MCP server's canonical URI (RFC 8707 `resource`).
    pub resource: &'a str,
    pub scopes: &'a [String],
    pub subject_token: SubjectToken<'a>,
}

impl TokenExchange<'_> {
    /// The request of draft §4.3 / RFC 8693 §2.1.
    pub fn build(&self, now_unix: i64) -> Result<HttpRequest, ClientAuthError> {
        let mut params = vec![
            ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE.to_string()),
            ("requested_token_type", TOKEN_TYPE_ID_JAG.to_string()),
            ("audience", self.audience.to_string()),
            ("resource", self.resource.to_string()),
        ];
        if !self.scopes.is_empty() {
            params.push(("scope", self.scopes.join(" ")));
        }
        params.push(("subject_token", self.subject_token.secret().to_string()));
        params.push(("subject_token_type", self.subject_token.token_type().to_string()));
        TokenRequest {
            token_endpoint: self.token_endpoint,
            client_id: self.client_id,
            client_auth: self.client_auth,
            params,
        }
        .build(now_unix)
    }
}

/// What the IdP issued.
pub struct IssuedIdJag {
    pub id_jag: IdJag,
    /// RFC 8693 §2.2.1 says `N_A`; Okta documents `Bearer` in one place. Recorded for diagnostics.
    pub token_type: String,
    pub expires_in: Option<u64>,
    /// The scopes the IdP granted (it may narrow them), or the requested ones if it did not say.
    pub scopes: Vec<String>,
}

/// The ID-JAG is never shown; the server's other words are scrubbed (found by fuzzing: a
/// token-shaped `token_type` was shown as it was).
impl std::fmt::Debug for IssuedIdJag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &str| crate::redact::scrub(s, 200);
        f.debug_struct("IssuedIdJag")
            .field("id_jag", &self.id_jag)
            .field("token_type", &shown(&self.token_type))
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes.iter().map(|s| shown(s)).collect::<Vec<_>>())
            .finish()
    }
}

/// Why no ID-JAG was issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The IdP says the user is not entitled to this connector. A state, not a failure.
    #[error("not entitled: {}", .0.summary())]
    NotEntitled(OAuthErrorResponse),
    /// The IdP wants a fresher or stronger sign-in (RFC 9470 §3).
    #[error("the IdP asks you to sign in again: {}", .0.summary())]
    StepUp(OAuthErrorResponse),
    /// The IdP rejected the ID token itself (expired or revoked session).
    #[error("the IdP session is no longer valid: {}", .0.summary())]
    SessionInvalid(OAuthErrorResponse),
    #[error(transparent)]
    Response(ResponseError),
    #[error(transparent)]
    ClientAuth(#[from] ClientAuthError),
}

impl ExchangeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ExchangeError::NotEntitled(_) => ErrorCode::NotEntitled,
            ExchangeError::StepUp(_) => ErrorCode::StepUpRequired,
            ExchangeError::SessionInvalid(_) => ErrorCode::IdpSessionInvalid,
            ExchangeError::Response(r) => ErrorCode::Response(Leg::TokenExchange, r.kind()),
            ExchangeError::ClientAuth(_) => ErrorCode::ClientAuthKey,
        }
    }

    /// The IdP said no to this request (an OAuth error, or a 4xx without one), as opposed to
    /// not answering (transport, 5xx) or answering badly.
    pub fn is_refusal(&self) -> bool {
        match self {
            ExchangeError::NotEntitled(_) | ExchangeError::StepUp(_) | ExchangeError::SessionInvalid(_) => true,
            ExchangeError::Response(ResponseError::OAuth { .. }) => true,
            // 408 and 429 say "not now" (RFC 9110 §15.5.9, RFC 6585 §4), not "no".
            ExchangeError::Response(ResponseError::Http { status, .. }) => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            _ => false,
        }
    }

    /// The IdP's OAuth `error`, kept beside the code.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            ExchangeError::NotEntitled(e) | ExchangeError::StepUp(e) | ExchangeError::SessionInvalid(e) => {
                Some(&e.error)
            }
            ExchangeError::Response(r) => r.oauth_error(),
            ExchangeError::ClientAuth(_) => None,
        }
    }
}

/// The response processor of draft §4.3.2 / RFC 8693 §2.2.
pub fn process_response(
    endpoint: &Url,
    resp: &HttpResponse,
    requested_scopes: &[String],
) -> Result<IssuedIdJag, ExchangeError> {
    let token = match parse_token_response(endpoint, resp) {
        Ok(t) => t,
        Err(ResponseError::OAuth { error, endpoint, status }) => {
            return Err(match error.error.as_str() {
                e if NOT_ENTITLED_ERRORS.contains(&e) => ExchangeError::NotEntitled(*error),
                "insufficient_user_authentication" | "interaction_required" | "login_required" => {
                    ExchangeError::StepUp(*error)
                }
                "invalid_grant" => ExchangeError::SessionInvalid(*error),
                _ => ExchangeError::Response(ResponseError::OAuth { endpoint, status, error }),
            });
        }
        Err(e) => return Err(ExchangeError::Response(e)),
    };
    if let Some(t) = &token.issued_token_type
        && t != TOKEN_TYPE_ID_JAG
    {
        return Err(ExchangeError::Response(ResponseError::Invalid {
            endpoint: crate::http::display_url(endpoint),
            problem: format!("`issued_token_type` is `{}`, expected {TOKEN_TYPE_ID_JAG}", crate::redact::scrub(t, 80)),
        }));
    }
    let scopes = token.scope.as_deref().map(split_scopes).unwrap_or_else(|| requested_scopes.to_vec());
    Ok(IssuedIdJag {
        id_jag: IdJag::new(token.access_token),
        token_type: token.token_type,
        expires_in: token.expires_in,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn form(req: &HttpRequest) -> Vec<(String, String)> {
        url::form_urlencoded::parse(req.body()).into_owned().collect()
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn request_carries_exactly_the_draft_parameters() {
        let endpoint = Url::parse("https://idp.example.com/oauth2/v1/token").unwrap();
        let auth = ClientAuth::ClientSecretPost(ClientSecret::new("s3cret"));
        let scopes = vec!["read".to_string(), "write".to_string()];
        let id_token = IdToken::new("the.id.token");
        let req = TokenExchange {
            token_endpoint: &endpoint,
            client_id: "ema-desktop",
            client_auth: &auth,
            audience: "https://as.linear.example",
            resource: "https://mcp.linear.example/mcp",
            scopes: &scopes,
            subject_token: SubjectToken::IdToken(&id_token),
        }
        .build(1_700_000_000)
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri(), "https://idp.example.com/oauth2/v1/token");
        assert_eq!(req.headers()["content-type"], "application/x-www-form-urlencoded");
        assert!(req.headers().get("authorization").is_none());
        let pairs: Vec<(String, String)> = [
            ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
            ("requested_token_type", TOKEN_TYPE_ID_JAG),
            ("audience", "https://as.linear.example"),
            ("resource", "https://mcp.linear.example/mcp"),
            ("scope", "read write"),
            ("subject_token", "the.id.token"),
            ("subject_token_type", TOKEN_TYPE_ID_TOKEN),
            ("client_id", "ema-desktop"),
            ("client_secret", "s3cret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(form(&req), pairs);
    }

    #[test]
    fn a_refresh_token_subject_says_so_and_carries_the_same_client_authentication() {
        let endpoint = Url::parse("https://idp.example.com/oauth2/v1/token").unwrap();
        let auth = ClientAuth::ClientSecretBasic(ClientSecret::new("s3cret"));
        let refresh_token = RefreshToken::new("the-refresh-token");
        let req = TokenExchange {
            token_endpoint: &endpoint,
            client_id: "ema-desktop",
            client_auth: &auth,
            audience: "https://as.linear.example",
            resource: "https://mcp.linear.example/mcp",
            scopes: &[],
            subject_token: SubjectToken::RefreshToken(&refresh_token),
        }
        .build(1_700_000_000)
        .unwrap();
        let pairs: Vec<(String, String)> = [
            ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
            ("requested_token_type", TOKEN_TYPE_ID_JAG),
            ("audience", "https://as.linear.example"),
            ("resource", "https://mcp.linear.example/mcp"),
            ("subject_token", "the-refresh-token"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(form(&req), pairs, "client_secret_basic puts nothing of the client in the body");
        let basic = req.headers()["authorization"].to_str().unwrap();
        assert!(basic.starts_with("Basic "), "{basic}");
    }

    #[test]
    fn refusals_are_told_from_failures_to_answer() {
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        let refusal = |status, body: &str| process_response(&endpoint, &response(status, body), &[]).unwrap_err();
        assert!(refusal(400, r#"{"error":"invalid_request"}"#).is_refusal());
        assert!(refusal(400, r#"{"error":"access_denied"}"#).is_refusal());
        assert!(refusal(400, r#"{"error":"invalid_grant"}"#).is_refusal());
        assert!(refusal(403, "forbidden").is_refusal());
        assert!(!refusal(429, "slow down").is_refusal(), "a rate limit is not a refusal");
        assert!(!refusal(408, "timeout").is_refusal());
        assert!(!refusal(503, "down").is_refusal(), "a 5xx is not an answer");
        assert!(!refusal(200, r#"{"token_type":"N_A"}"#).is_refusal(), "a broken success is not a refusal");
    }

    #[test]
    fn no_scope_parameter_when_none_configured() {
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        let id_token = IdToken::new("t");
        let req = TokenExchange {
            token_endpoint: &endpoint,
            client_id: "c",
            client_auth: &ClientAuth::None,
            audience: "https://as",
            resource: "https://mcp",
            scopes: &[],
            subject_token: SubjectToken::IdToken(&id_token),
        }
        .build(0)
        .unwrap();
        assert!(form(&req).iter().all(|(k, _)| k != "scope"));
        assert!(form(&req).contains(&("client_id".into(), "c".into())));
    }

    #[test]
    fn success_accepts_n_a_and_bearer_token_types_and_narrowed_scope() {
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        let requested = vec!["read".to_string(), "write".to_string()];
        for tt in ["N_A", "Bearer"] {
            let body = format!(
                r#"{{"access_token":"jag","issued_token_type":"{TOKEN_TYPE_ID_JAG}","token_type":"{tt}","expires_in":300,"scope":"read"}}"#
            );
            let issued = process_response(&endpoint, &response(200, &body), &requested).unwrap();
            assert_eq!(issued.id_jag.secret(), "jag");
            assert_eq!(issued.token_type, tt);
            assert_eq!(issued.expires_in, Some(300));
            assert_eq!(issued.scopes, vec!["read"]);
        }
    }

    #[test]
    fn refusals_are_classified() {
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        for (status, code) in
            [(400, "access_denied"), (403, "invalid_target"), (400, "no_matching_policy"), (401, "unauthorized_client")]
        {
            let err =
                process_response(&endpoint, &response(status, &format!(r#"{{"error":"{code}"}}"#)), &[]).unwrap_err();
            assert!(matches!(err, ExchangeError::NotEntitled(_)), "{code}: {err:?}");
            assert_eq!(err.code(), "not-entitled");
        }
        let err = process_response(
            &endpoint,
            &response(400, r#"{"error":"insufficient_user_authentication","max_age":0}"#),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::StepUp(ref e) if e.max_age == Some(0)));
        let err = process_response(
            &endpoint,
            &response(401, r#"{"error":"invalid_client","error_description":"bad secret"}"#),
            &[],
        )
        .unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "token-exchange-oauth-invalid-client");
        assert!(err.to_string().contains("bad secret"));
        let err = process_response(&endpoint, &response(502, "<html>bad gateway</html>"), &[]).unwrap_err();
        assert_eq!(err.code(), "token-exchange-http-502");
    }

    #[test]
    fn wrong_issued_token_type_and_malformed_bodies_are_refused_without_echoing_tokens() {
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        let body = r#"{"access_token":"canary-token-value","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A"}"#;
        let err = process_response(&endpoint, &response(200, body), &[]).unwrap_err();
        assert!(err.to_string().contains("issued_token_type"));
        assert!(!err.to_string().contains("canary-token-value"));
        for body in [
            "not json canary-token-value",
            "[1,2]",
            r#"{"token_type":"N_A"}"#,
            r#"{"access_token":"canary-token-value"}"#,
            r#"{"access_token":"canary-token-value","token_type":"N_A","expires_in":"soon"}"#,
        ] {
            let err = process_response(&endpoint, &response(200, body), &[]).unwrap_err();
            assert_eq!(err.code(), "token-exchange-invalid-response", "{body}");
            assert!(!format!("{err} {err:?}").contains("canary-token-value"));
        }
        let redirect =
            http::Response::builder().status(302).header("location", "https://evil.example").body(Vec::new()).unwrap();
        let err = process_response(&endpoint, &redirect, &[]).unwrap_err();
        assert!(err.to_string().contains("redirect"));
    }
}
