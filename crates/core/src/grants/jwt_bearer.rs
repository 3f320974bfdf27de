//! RFC 7523 jwt-bearer grant at a connector's authorization server: the ID-JAG for an access
//! token (draft-ietf-oauth-identity-assertion-authz-grant-04 §4.4).
//!
//! Every call needs a freshly minted ID-JAG: the MCP profile makes `jti` replay rejection
//! mandatory, so the [`IdJag`] is taken by value and consumed.

use time::OffsetDateTime;
use url::Url;

use super::split_scopes;
use crate::config::ClientAuth;
use crate::http::{HttpRequest, HttpResponse, display_url};
use crate::oauth::client_auth::ClientAuthError;
use crate::oauth::{ResponseError, TokenRequest, parse_token_response};
use crate::secret::{AccessToken, IdJag};
use crate::status::{ErrorCode, Leg};

/// RFC 7523 §2.1 `grant_type`.
pub const GRANT_TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// One grant's inputs.
#[derive(Debug)]
pub struct JwtBearerGrant<'a> {
    pub token_endpoint: &'a Url,
    pub client_id: &'a str,
    pub client_auth: &'a ClientAuth,
    /// Consumed: an ID-JAG is never sent twice.
    pub assertion: IdJag,
    /// Sent always when non-empty: some servers grant an empty set when it is omitted.
    pub scopes: &'a [String],
    /// The MCP server (RFC 8707 `resource`).
    pub resource: &'a str,
    /// The AS's issuer and which identifier a `private_key_jwt` assertion names as its `aud`
    /// (the token endpoint by default; `client_auth::AudienceRule`).
    pub assertion_audience: (&'a str, crate::oauth::client_auth::AudienceRule),
}

impl JwtBearerGrant<'_> {
    /// The request of RFC 7523 §2.1 with the draft's parameters.
    pub fn build(self, now_unix: i64) -> Result<HttpRequest, ClientAuthError> {
        let mut params =
            vec![("grant_type", GRANT_TYPE_JWT_BEARER.to_string()), ("assertion", self.assertion.secret().to_string())];
        if !self.scopes.is_empty() {
            params.push(("scope", self.scopes.join(" ")));
        }
        params.push(("resource", self.resource.to_string()));
        let (issuer, rule) = self.assertion_audience;
        let audience =
            crate::oauth::client_auth::AssertionAudience::by_rule(rule, issuer, self.token_endpoint.as_str());
        TokenRequest {
            token_endpoint: self.token_endpoint,
            client_id: self.client_id,
            client_auth: self.client_auth,
            params,
        }
        .build_with(now_unix, audience)
    }
}

/// A connector access token with what we know about it.
#[derive(Debug, Clone)]
pub struct ConnectorGrant {
    pub access_token: AccessToken,
    /// `None` when the server sent no `expires_in`.
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
    /// Present when the server issued one against the profile's advice; kept out of storage.
    pub had_refresh_token: bool,
}

/// Why no access token was issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    #[error(transparent)]
    Response(ResponseError),
    #[error("{endpoint} issued a `{token_type}` token; only Bearer tokens (RFC 6750) are supported")]
    UnsupportedTokenType { endpoint: String, token_type: String },
    #[error(transparent)]
    ClientAuth(#[from] ClientAuthError),
    /// The token lives too short to be kept fresh without renewing in a loop.
    #[error(
        "{endpoint} issued a token that lasts {seconds} s; EMA needs at least {min} s between renewals, so it is not used"
    )]
    LifetimeTooShort { endpoint: String, seconds: u64, min: i64 },
}

impl GrantError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GrantError::Response(r) => ErrorCode::Response(Leg::ConnectorGrant, r.kind()),
            GrantError::UnsupportedTokenType { .. } => ErrorCode::GrantTokenType,
            GrantError::ClientAuth(_) => ErrorCode::ClientAuthKey,
            GrantError::LifetimeTooShort { .. } => ErrorCode::GrantLifetimeTooShort,
        }
    }

    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            GrantError::Response(r) => r.oauth_error(),
            _ => None,
        }
    }
}

/// The shortest access-token lifetime the client accepts (`expires_in`, RFC 6749 §5.1). Shorter
/// ones cannot be kept fresh without renewing every few seconds (each renewal is also a token
/// exchange at the company IdP): refused as a failure, which the renewal task retries with
/// backoff. A server that omits `expires_in` is not affected.
pub const MIN_TOKEN_LIFETIME: time::Duration = time::Duration::seconds(30);

/// The response processor of RFC 7523 §3.1 / RFC 6749 §5.1.
pub fn process_response(
    endpoint: &Url,
    resp: &HttpResponse,
    requested_scopes: &[String],
    now: OffsetDateTime,
) -> Result<ConnectorGrant, GrantError> {
    let token = parse_token_response(endpoint, resp).map_err(GrantError::Response)?;
    if !token.token_type.eq_ignore_ascii_case("bearer") {
        return Err(GrantError::UnsupportedTokenType {
            endpoint: display_url(endpoint),
            token_type: crate::redact::scrub(&token.token_type, 40),
        });
    }
    let scopes = token.scope.as_deref().map(split_scopes).unwrap_or_else(|| requested_scopes.to_vec());
    let expires_at = match token.expires_in {
        None => None,
        Some(secs) if (secs as i128) < MIN_TOKEN_LIFETIME.whole_seconds() as i128 => {
            return Err(GrantError::LifetimeTooShort {
                endpoint: display_url(endpoint),
                seconds: secs,
                min: MIN_TOKEN_LIFETIME.whole_seconds(),
            });
        }
        // `parse_token_response` caps `expires_in` at a year; checked all the same, since an
        // expiry out of range must be an error and never a panic.
        Some(secs) => Some(
            i64::try_from(secs).ok().and_then(|s| now.checked_add(time::Duration::seconds(s))).ok_or_else(|| {
                GrantError::Response(ResponseError::Invalid {
                    endpoint: display_url(endpoint),
                    problem: format!("`expires_in` of {secs} s gives an expiry out of range"),
                })
            })?,
        ),
    };
    Ok(ConnectorGrant {
        access_token: AccessToken::new(token.access_token),
        expires_at,
        scopes,
        had_refresh_token: token.refresh_token.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;
    use base64::Engine as _;

    fn response(status: u16, body: &str) -> HttpResponse {
        http::Response::builder().status(status).body(body.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn request_has_grant_assertion_scope_resource_and_basic_auth() {
        let endpoint = Url::parse("https://as.example.com/token").unwrap();
        let auth = ClientAuth::ClientSecretBasic(ClientSecret::new("p@ss word"));
        let scopes = vec!["read".to_string()];
        let req = JwtBearerGrant {
            token_endpoint: &endpoint,
            client_id: "ema client",
            client_auth: &auth,
            assertion: IdJag::new("a.b.c"),
            scopes: &scopes,
            resource: "https://mcp.example.com/mcp",
            assertion_audience: ("", crate::oauth::client_auth::AudienceRule::Endpoint),
        }
        .build(0)
        .unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body()).into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("grant_type".into(), GRANT_TYPE_JWT_BEARER.into()),
                ("assertion".into(), "a.b.c".into()),
                ("scope".into(), "read".into()),
                ("resource".into(), "https://mcp.example.com/mcp".into()),
            ]
        );
        // RFC 6749 §2.3.1: form-urlencode id and secret before base64 (a space as `%20`, which
        // percent-decoders such as Authlib's read correctly too).
        let expected = base64::engine::general_purpose::STANDARD.encode("ema%20client:p%40ss%20word");
        assert_eq!(req.headers()["authorization"], format!("Basic {expected}"));
    }

    #[test]
    fn private_key_jwt_assertion_is_fresh_and_well_formed() {
        let pem = include_str!("../../tests/data/test-client-key.pem");
        let auth = ClientAuth::PrivateKeyJwt {
            key: crate::secret::PrivateKeyPem::new(pem),
            key_id: Some("k1".into()),
            alg: jsonwebtoken::Algorithm::ES256,
        };
        let endpoint = Url::parse("https://as.example.com/token").unwrap();
        let build = || {
            JwtBearerGrant {
                token_endpoint: &endpoint,
                client_id: "cid",
                client_auth: &auth,
                assertion: IdJag::new("j"),
                scopes: &[],
                resource: "https://mcp",
                assertion_audience: ("", crate::oauth::client_auth::AudienceRule::Endpoint),
            }
            .build(1_000)
            .unwrap()
        };
        let (a, b) = (build(), build());
        let field = |req: &HttpRequest, name: &str| {
            url::form_urlencoded::parse(req.body()).into_owned().find(|(k, _)| k == name).map(|(_, v)| v)
        };
        assert_eq!(
            field(&a, "client_assertion_type").as_deref(),
            Some(crate::oauth::client_auth::CLIENT_ASSERTION_TYPE_JWT_BEARER)
        );
        let (ja, jb) = (field(&a, "client_assertion").unwrap(), field(&b, "client_assertion").unwrap());
        let header = jsonwebtoken::decode_header(&ja).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let (ca, cb) =
            (crate::jwt::decode_claims_unverified(&ja).unwrap(), crate::jwt::decode_claims_unverified(&jb).unwrap());
        assert_eq!(ca["iss"], "cid");
        assert_eq!(ca["sub"], "cid");
        assert_eq!(ca["aud"], "https://as.example.com/token");
        assert_eq!(ca["exp"], 1_060);
        assert_ne!(ca["jti"], cb["jti"], "each assertion needs its own jti");
        assert!(req_has_no_basic(&a));
    }

    /// The whole request of a connector grant with `private_key_jwt` (RFC 7523 §2.1 grant, §2.2
    /// client authentication), as an AS sees it: the form in order, and the assertion's header and
    /// claims, its signature checked with the key's public half.
    #[test]
    fn connector_grant_with_private_key_jwt_is_exactly_this_request() {
        use crate::oauth::client_auth::tests::{test_key_auth, verified};
        let auth = test_key_auth(Some("ema-2026"));
        let endpoint = Url::parse("https://as.example.com/tenant/oauth2/token").unwrap();
        let scopes = vec!["read".to_string(), "write".to_string()];
        let req = JwtBearerGrant {
            token_endpoint: &endpoint,
            client_id: "ema-linear",
            client_auth: &auth,
            assertion: IdJag::new("id.jag.jwt"),
            scopes: &scopes,
            resource: "https://mcp.example.com/mcp",
            assertion_audience: ("", crate::oauth::client_auth::AudienceRule::Endpoint),
        }
        .build(1_700_000_000)
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri(), "https://as.example.com/tenant/oauth2/token");
        assert_eq!(req.headers()["content-type"], "application/x-www-form-urlencoded");
        assert!(req_has_no_basic(&req), "the assertion is the only client authentication");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body()).into_owned().collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["grant_type", "assertion", "scope", "resource", "client_id", "client_assertion_type", "client_assertion"]
        );
        let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(value("grant_type"), GRANT_TYPE_JWT_BEARER);
        assert_eq!(value("assertion"), "id.jag.jwt");
        assert_eq!(value("scope"), "read write");
        assert_eq!(value("resource"), "https://mcp.example.com/mcp");
        assert_eq!(value("client_id"), "ema-linear");
        assert_eq!(value("client_assertion_type"), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        let (header, claims) = verified(value("client_assertion"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ema-2026"));
        assert_eq!(header.typ.as_deref(), Some("JWT"), "RFC 7523 / OIDC Core §9 audience: not the rfc7523bis type");
        assert_eq!(claims["iss"], "ema-linear");
        assert_eq!(claims["sub"], "ema-linear");
        assert_eq!(claims["aud"], "https://as.example.com/tenant/oauth2/token", "the token endpoint, one string");
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);
    }

    fn req_has_no_basic(req: &HttpRequest) -> bool {
        req.headers().get("authorization").is_none()
    }

    #[test]
    fn response_gives_expiry_and_granted_scopes() {
        let endpoint = Url::parse("https://as.example.com/token").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let g = process_response(
            &endpoint,
            &response(200, r#"{"access_token":"at","token_type":"bearer","expires_in":3600}"#),
            &["read".into()],
            now,
        )
        .unwrap();
        assert_eq!(g.expires_at.unwrap().unix_timestamp(), 4_600);
        assert_eq!(g.scopes, vec!["read"]);
        let err = process_response(&endpoint, &response(200, r#"{"access_token":"at","token_type":"DPoP"}"#), &[], now)
            .unwrap_err();
        assert_eq!(err.code(), "connector-grant-token-type");
    }

    #[test]
    fn invalid_grant_is_reported_with_the_servers_reason() {
        let endpoint = Url::parse("https://as.example.com/token").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let err = process_response(
            &endpoint,
            &response(400, r#"{"error":"invalid_grant","error_description":"jti already used"}"#),
            &[],
            now,
        )
        .unwrap_err();
        assert_eq!(err.oauth_error(), Some("invalid_grant"));
        assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-grant");
        assert!(err.to_string().contains("jti already used"));
    }
}
