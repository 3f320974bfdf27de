//! The OpenID Connect client for the company IdP, on the `openidconnect` crate.
//!
//! The crate does what is easy to get subtly wrong: PKCE S256 (RFC 7636 §4.2), `state` and
//! `nonce` generation, and full ID-token verification (OIDC Core §3.1.3.7: signature against
//! the JWKS, `iss`, `aud`, `exp`, `nonce`), with our algorithm allow-list (RFC 8725 §3.1: never
//! `none`, never an HMAC keyed by a client secret). All HTTP goes through our [`Transport`],
//! so redirects, timeouts and size caps are the same as everywhere else.

use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AuthType, ClientId, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::config::{ClientAuth, IdpConfig};
use crate::http::{Transport, TransportError, display_url};
use crate::oauth::client_auth::ClientAuthError;
use crate::oauth::{OAuthErrorResponse, ResponseError, TokenRequest};
use crate::redact::scrub;
use crate::secret::{IdToken, RefreshToken};
use crate::status::Identity;
use crate::url_policy::same_uri;

use super::loopback::CallbackError;

/// ID-token signature algorithms we accept (RFC 8725 §3.1 allow-list).
pub const ALLOWED_ID_TOKEN_ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Why sign-in (or a silent renewal at the IdP) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    #[error("IdP discovery failed: {0}")]
    Discovery(ResponseError),
    #[error("{0}")]
    Browser(String),
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error("the IdP refused: {}", .0.summary())]
    Refused(OAuthErrorResponse),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the IdP's token response is invalid: {0}")]
    InvalidResponse(String),
    #[error("the ID token failed verification: {0}")]
    IdToken(String),
    #[error(transparent)]
    ClientAuth(#[from] ClientAuthError),
}

impl SignInError {
    pub fn code(&self) -> String {
        match self {
            SignInError::Discovery(r) => format!("idp-discovery-{}", r.code()),
            SignInError::Browser(_) => "browser".into(),
            SignInError::Callback(c) => c.code().into(),
            SignInError::Refused(e) => format!("idp-oauth-{}", e.error.replace('_', "-")),
            SignInError::Transport(t) => format!("idp-{}", t.code()),
            SignInError::InvalidResponse(_) => "idp-invalid-response".into(),
            SignInError::IdToken(_) => "id-token-invalid".into(),
            SignInError::ClientAuth(_) => "client-auth-key".into(),
        }
    }

    /// True when the IdP could not be reached at all (tokens stay usable meanwhile).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SignInError::Transport(_) | SignInError::Discovery(ResponseError::Transport(_)))
            || matches!(self, SignInError::Discovery(ResponseError::Http { status, .. }) if *status >= 500)
            || matches!(self, SignInError::Discovery(ResponseError::OAuth { status, .. }) if *status >= 500)
    }

    /// True when the IdP session is over (refresh token rejected): the user must sign in again.
    pub fn is_session_expired(&self) -> bool {
        matches!(self, SignInError::Refused(e) if e.error == "invalid_grant")
    }
}

/// The per-attempt secrets of one browser sign-in.
pub struct PendingSignIn {
    pub state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
    redirect_uri: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSignIn([redacted])")
    }
}

/// What a sign-in or refresh yields.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    pub id_token: Option<IdToken>,
    pub id_token_expires_at: Option<OffsetDateTime>,
    pub identity: Option<Identity>,
    pub refresh_token: Option<RefreshToken>,
}

/// The discovered IdP.
#[derive(Debug, Clone)]
pub struct IdpClient {
    config: IdpConfig,
    metadata: CoreProviderMetadata,
    token_endpoint: Url,
    revocation_endpoint: Option<Url>,
    /// RFC 9207 §3: the IdP sends `iss` on every authorization response.
    issuer_in_response: bool,
}

impl IdpClient {
    /// OIDC Discovery §4: fetches `<issuer>/.well-known/openid-configuration` and the JWKS.
    pub async fn discover(transport: &dyn Transport, config: &IdpConfig) -> Result<Self, SignInError> {
        let issuer = config.issuer.as_str().trim_end_matches('/');
        let url = Url::parse(&format!("{issuer}/.well-known/openid-configuration"))
            .map_err(|e| SignInError::InvalidResponse(e.to_string()))?;
        let shown = display_url(&url);
        let invalid =
            |problem: String| SignInError::Discovery(ResponseError::Invalid { endpoint: shown.clone(), problem });
        let body = get_json(transport, &url).await.map_err(SignInError::Discovery)?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| invalid("the body is not JSON".into()))?;
        let de = value.clone();
        let mut metadata: CoreProviderMetadata =
            serde_path_to_error::deserialize(de).map_err(|e| invalid(format!("`{}` is invalid", e.path())))?;
        // OIDC Discovery §4.3: the issuer in the document must be the one we asked.
        if !same_uri(metadata.issuer().as_str(), config.issuer.as_str()) {
            return Err(invalid(format!(
                "it names issuer `{}`, not `{}`",
                scrub(metadata.issuer().as_str(), 200),
                config.issuer
            )));
        }
        let token_endpoint = metadata
            .token_endpoint()
            .map(|t| t.url().clone())
            .ok_or_else(|| invalid("`token_endpoint` is missing".into()))?;
        let endpoints =
            [Some(metadata.authorization_endpoint().url()), Some(&token_endpoint), Some(metadata.jwks_uri().url())];
        for e in endpoints.into_iter().flatten() {
            crate::url_policy::check_endpoint_url(e).map_err(TransportError::UrlRefused)?;
        }
        let revocation_endpoint =
            value.get("revocation_endpoint").and_then(Value::as_str).and_then(|s| Url::parse(s).ok());
        let issuer_in_response =
            value.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool) == Some(true);
        let jwks_body = get_json(transport, metadata.jwks_uri().url()).await.map_err(SignInError::Discovery)?;
        let jwks: CoreJsonWebKeySet = serde_json::from_slice(&jwks_body).map_err(|_| {
            SignInError::Discovery(ResponseError::Invalid {
                endpoint: display_url(metadata.jwks_uri().url()),
                problem: "not a JSON Web Key Set".into(),
            })
        })?;
        metadata = metadata.set_jwks(jwks);
        Ok(IdpClient { config: config.clone(), metadata, token_endpoint, revocation_endpoint, issuer_in_response })
    }

    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The IdP token endpoint (also the token-exchange endpoint).
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    fn client(&self) -> Client {
        let secret = match &self.config.client_auth {
            ClientAuth::ClientSecretBasic(s) | ClientAuth::ClientSecretPost(s) => {
                Some(openidconnect::ClientSecret::new(s.secret().to_string()))
            }
            _ => None,
        };
        let auth_type = match &self.config.client_auth {
            ClientAuth::ClientSecretBasic(_) => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        CoreClient::from_provider_metadata(self.metadata.clone(), ClientId::new(self.config.client_id.clone()), secret)
            .set_auth_type(auth_type)
    }

    /// The authorization request (OIDC Core §3.1.2.1) with PKCE S256, `state` and `nonce`.
    pub fn authorization_request(&self, redirect_uri: &str) -> Result<(Url, PendingSignIn), SignInError> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| SignInError::InvalidResponse(e.to_string()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client().set_redirect_uri(redirect);
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in self.config.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        for p in &self.config.prompt {
            req = req.add_prompt(match p.as_str() {
                "login" => CoreAuthPrompt::Login,
                "consent" => CoreAuthPrompt::Consent,
                "select_account" => CoreAuthPrompt::SelectAccount,
                other => CoreAuthPrompt::Extension(other.to_string()),
            });
        }
        let (url, state, nonce) = req.url();
        Ok((url, PendingSignIn { state, nonce, pkce_verifier: verifier, redirect_uri: redirect_uri.to_string() }))
    }

    /// Sends a token request with the policy's client authentication (the same code path as
    /// every other leg) and parses the OIDC token response (OIDC Core §3.1.3.3).
    async fn token_request(
        &self,
        transport: &dyn Transport,
        params: Vec<(&'static str, String)>,
    ) -> Result<CoreTokenResponse, SignInError> {
        let req = TokenRequest {
            token_endpoint: &self.token_endpoint,
            client_id: &self.config.client_id,
            client_auth: &self.config.client_auth,
            params,
        }
        .build(OffsetDateTime::now_utc().unix_timestamp())?;
        let resp = unavailable_as_transport_error(transport, req).await?;
        if resp.status().as_u16() != 200 {
            return Err(
                match ResponseError::from_response(
                    &display_url(&self.token_endpoint),
                    resp.status().as_u16(),
                    resp.body(),
                ) {
                    ResponseError::OAuth { error, .. } => SignInError::Refused(*error),
                    other => SignInError::InvalidResponse(other.to_string()),
                },
            );
        }
        let de = &mut serde_json::Deserializer::from_slice(resp.body());
        // The body holds tokens: a parse error names the field, never the content.
        serde_path_to_error::deserialize(de)
            .map_err(|e| SignInError::InvalidResponse(format!("`{}` could not be parsed", e.path())))
    }

    fn verify_id_token(
        &self,
        id_token: &CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<(IdToken, Option<OffsetDateTime>, Identity), SignInError> {
        let client = self.client();
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ID_TOKEN_ALGS.to_vec());
        let claims = match nonce {
            Some(n) => id_token.claims(&verifier, n),
            // OIDC Core §12.2: a refreshed ID token carries no nonce.
            None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        }
        .map_err(|e| SignInError::IdToken(scrub(&e.to_string(), 200)))?;
        Ok((
            IdToken::new(id_token.to_string()),
            OffsetDateTime::from_unix_timestamp(claims.expiration().timestamp()).ok(),
            identity_of(claims),
        ))
    }

    /// Exchanges the authorization code (RFC 6749 §4.1.3 with the PKCE verifier, RFC 7636 §4.5)
    /// and verifies the ID token, including its `nonce`.
    pub async fn exchange_code(
        &self,
        transport: &dyn Transport,
        code: String,
        pending: PendingSignIn,
    ) -> Result<SessionTokens, SignInError> {
        let params = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", pending.redirect_uri.clone()),
            ("code_verifier", pending.pkce_verifier.secret().clone()),
        ];
        let resp = self.token_request(transport, params).await?;
        let id_token = resp.id_token().ok_or_else(|| {
            SignInError::InvalidResponse("no `id_token` in the response (is `openid` in the requested scopes?)".into())
        })?;
        let (id_token, exp, mut identity) = self.verify_id_token(id_token, Some(&pending.nonce))?;
        self.complete_identity(transport, &mut identity, resp.access_token().secret()).await;
        Ok(SessionTokens {
            id_token: Some(id_token),
            id_token_expires_at: exp,
            identity: Some(identity),
            refresh_token: resp.refresh_token().map(|r| RefreshToken::new(r.secret().clone())),
        })
    }

    /// Renews the session with the refresh token (RFC 6749 §6, OIDC Core §12). The new ID
    /// token, if any, is verified.
    pub async fn refresh(
        &self,
        transport: &dyn Transport,
        refresh_token: &RefreshToken,
    ) -> Result<SessionTokens, SignInError> {
        let params = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.secret().to_string()),
            ("scope", self.config.scopes.join(" ")),
        ];
        let resp = self.token_request(transport, params).await?;
        let mut out = SessionTokens {
            id_token: None,
            id_token_expires_at: None,
            identity: None,
            refresh_token: resp.refresh_token().map(|r| RefreshToken::new(r.secret().clone())),
        };
        if let Some(id_token) = resp.id_token() {
            let (id_token, exp, mut identity) = self.verify_id_token(id_token, None)?;
            self.complete_identity(transport, &mut identity, resp.access_token().secret()).await;
            out.id_token = Some(id_token);
            out.id_token_expires_at = exp;
            out.identity = Some(identity);
        }
        Ok(out)
    }

    /// Fills the email and name the ID token lacks from the UserInfo endpoint (OIDC Core §5.3).
    ///
    /// OIDC Core §5.4: when an access token is issued (the code flow), the claims of the
    /// `email` and `profile` scopes are returned from UserInfo; an OP may leave them out of the
    /// ID token, and oidc-provider does by default (`conformIdTokenClaims`). UserInfo values
    /// are used only when its `sub` is the ID token's (§5.3.2). Best effort: the identity is
    /// for display, so a failing or unusable UserInfo answer leaves it as it was.
    async fn complete_identity(&self, transport: &dyn Transport, identity: &mut Identity, access_token: &str) {
        if identity.email.is_some() && identity.name.is_some() {
            return;
        }
        let Some(endpoint) = self.metadata.userinfo_endpoint().map(|u| u.url()) else { return };
        if access_token.is_empty() || crate::url_policy::check_endpoint_url(endpoint).is_err() {
            return;
        }
        let Ok(req) = http::Request::builder()
            .uri(endpoint.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {access_token}"))
            .body(Vec::new())
        else {
            return;
        };
        let resp = match transport.send(req).await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::debug!(
                    status = r.status().as_u16(),
                    "UserInfo refused; the identity stays as the ID token has it"
                );
                return;
            }
            Err(e) => {
                tracing::debug!("UserInfo unreachable ({e}); the identity stays as the ID token has it");
                return;
            }
        };
        // A signed or encrypted UserInfo (`application/jwt`) is not JSON: ignored.
        let Ok(info) = serde_json::from_slice::<Value>(resp.body()) else { return };
        if info.get("sub").and_then(Value::as_str) != Some(identity.sub.as_str()) {
            tracing::warn!("UserInfo names another subject than the ID token; its claims are not used");
            return;
        }
        let text = |k: &str| info.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_string);
        if identity.email.is_none() {
            identity.email = text("email");
        }
        if identity.name.is_none() {
            identity.name = text("name");
        }
    }

    /// Revokes the refresh token (RFC 7009 §2.1) when the IdP has a revocation endpoint.
    /// Returns whether a revocation was sent and accepted.
    pub async fn revoke(&self, transport: &dyn Transport, refresh_token: &RefreshToken) -> Result<bool, ResponseError> {
        let Some(endpoint) = &self.revocation_endpoint else { return Ok(false) };
        let req = crate::oauth::TokenRequest {
            token_endpoint: endpoint,
            client_id: &self.config.client_id,
            client_auth: &self.config.client_auth,
            params: vec![("token", refresh_token.secret().to_string()), ("token_type_hint", "refresh_token".into())],
        }
        // A client assertion names the token endpoint as its audience here too: IdPs check
        // client authentication at revocation as at the token endpoint (OIDC Core §9; Okta
        // answers `invalid_client` to an assertion addressed to the revocation URL).
        .build_for_audience(OffsetDateTime::now_utc().unix_timestamp(), self.token_endpoint())
        .map_err(|e| ResponseError::Invalid { endpoint: display_url(endpoint), problem: e.to_string() })?;
        let resp = transport.send(req).await?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            Err(ResponseError::from_response(&display_url(endpoint), resp.status().as_u16(), resp.body()))
        }
    }

    /// Completes a browser sign-in: waits for the callback on `listener`, then exchanges the code.
    pub async fn complete(
        &self,
        transport: &dyn Transport,
        listener: super::loopback::LoopbackListener,
        pending: PendingSignIn,
        timeout: std::time::Duration,
    ) -> Result<SessionTokens, SignInError> {
        let expected = super::loopback::ExpectedCallback {
            state: pending.state.secret().clone(),
            issuer: self.issuer().to_string(),
            issuer_required: self.issuer_in_response,
        };
        let callback = listener.wait(expected, timeout).await?;
        self.exchange_code(transport, callback.code, pending).await
    }
}

fn identity_of(claims: &openidconnect::core::CoreIdTokenClaims) -> Identity {
    Identity {
        sub: claims.subject().as_str().to_string(),
        email: claims.email().map(|e| e.as_str().to_string()),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
    }
}

/// For the IdP's token calls: a 5xx that is not OAuth JSON becomes a transport error,
/// so "the IdP is down" is told apart from "the IdP sent nonsense".
async fn unavailable_as_transport_error(
    transport: &dyn Transport,
    req: crate::http::HttpRequest,
) -> Result<crate::http::HttpResponse, TransportError> {
    let url = req.uri().to_string();
    let resp = transport.send(req).await?;
    let status = resp.status().as_u16();
    if status >= 500 && OAuthErrorResponse::parse(resp.body()).is_none() {
        let url = Url::parse(&url).map(|u| display_url(&u)).unwrap_or_default();
        return Err(TransportError::ServerUnavailable { url, status });
    }
    Ok(resp)
}

async fn get_json(transport: &dyn Transport, url: &Url) -> Result<Vec<u8>, ResponseError> {
    let req = http::Request::builder()
        .uri(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| ResponseError::Invalid { endpoint: display_url(url), problem: e.to_string() })?;
    let resp = transport.send(req).await?;
    if !resp.status().is_success() {
        return Err(ResponseError::from_response(&display_url(url), resp.status().as_u16(), resp.body()));
    }
    Ok(resp.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, Policy};
    use crate::http::HttpRequest;
    use crate::testing::{FakeTransport, form};
    use base64::Engine as _;

    const ISSUER: &str = "https://idp.example.com";
    const TOKEN: &str = "https://idp.example.com/oauth2/v1/token";

    fn idp_config(client_auth: &str) -> IdpConfig {
        let text = format!(
            r#"{{"schema_version":1,"organization":{{"name":"Example"}},
                "idp":{{"issuer":"{ISSUER}","client_id":"ema-desktop","client_auth":{client_auth}}}}}"#
        );
        Policy::parse(&text, ConfigSource::Explicit("test.json".into())).unwrap().idp
    }

    fn fake_idp() -> FakeTransport {
        let t = FakeTransport::new();
        t.json(
            "https://idp.example.com/.well-known/openid-configuration",
            200,
            &serde_json::json!({
                "issuer": ISSUER,
                "authorization_endpoint": "https://idp.example.com/oauth2/v1/authorize",
                "token_endpoint": TOKEN,
                "revocation_endpoint": "https://idp.example.com/oauth2/v1/revoke",
                "jwks_uri": "https://idp.example.com/oauth2/v1/keys",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]
            })
            .to_string(),
        );
        t.json("https://idp.example.com/oauth2/v1/keys", 200, r#"{"keys":[]}"#);
        t.json(TOKEN, 400, r#"{"error":"invalid_grant","error_description":"test stops here"}"#);
        t.json("https://idp.example.com/oauth2/v1/revoke", 200, "");
        t
    }

    #[tokio::test]
    async fn authorization_request_has_pkce_s256_state_nonce_and_offline_access() {
        let t = fake_idp();
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
        let (url, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
        assert_eq!(url.origin().ascii_serialization(), ISSUER);
        assert_eq!(url.path(), "/oauth2/v1/authorize");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "ema-desktop");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5555/callback");
        let scopes: Vec<&str> = q["scope"].split(' ').collect();
        for s in ["openid", "email", "profile", "offline_access"] {
            assert!(scopes.contains(&s), "{s} in {scopes:?}");
        }
        assert_eq!(q["code_challenge_method"], "S256");
        // RFC 7636 §4.2: challenge = BASE64URL(SHA256(verifier)).
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(pending.pkce_verifier.secret().as_bytes()));
        assert_eq!(q["code_challenge"], expected);
        assert_eq!(&q["state"], pending.state.secret());
        assert_eq!(&q["nonce"], pending.nonce.secret());
        assert!(q["state"].len() >= 20 && q["nonce"].len() >= 20);
        let (_, again) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
        assert_ne!(again.state.secret(), pending.state.secret(), "a fresh state per attempt");
    }

    use sha2::Digest as _;
    use std::collections::HashMap;

    #[tokio::test]
    async fn oidc_provider_needs_prompt_consent_for_offline_access_and_the_policy_can_send_it() {
        // oidc-provider drops `offline_access` (so issues no refresh token) unless the request
        // has prompt=consent (OIDC Core §11); `idp.prompt` sends it. Nothing is sent by default.
        let t = fake_idp();
        let query = |idp: &IdpClient| -> HashMap<String, String> {
            idp.authorization_request("http://127.0.0.1:5555/callback").unwrap().0.query_pairs().into_owned().collect()
        };
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
        assert!(!query(&idp).contains_key("prompt"));
        let text = format!(
            r#"{{"schema_version":1,"organization":{{"name":"Example"}},
                "idp":{{"issuer":"{ISSUER}","client_id":"ema-desktop","client_auth":{{"method":"none"}},"prompt":["consent"]}}}}"#
        );
        let config = Policy::parse(&text, ConfigSource::Explicit("test.json".into())).unwrap().idp;
        let idp = IdpClient::discover(&t, &config).await.unwrap();
        let q = query(&idp);
        assert_eq!(q["prompt"], "consent");
        assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
        let bad = text.replace(r#"["consent"]"#, r#"["none"]"#);
        let err = Policy::parse(&bad, ConfigSource::Explicit("test.json".into())).unwrap_err();
        assert!(err.to_string().contains("idp.prompt[0]"), "{err}");
    }

    async fn code_exchange_request(client_auth: &str) -> HttpRequest {
        let t = fake_idp();
        let idp = IdpClient::discover(&t, &idp_config(client_auth)).await.unwrap();
        let (_, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
        let verifier = pending.pkce_verifier.secret().clone();
        let err = idp.exchange_code(&t, "the-code".into(), pending).await.unwrap_err();
        assert_eq!(err.code(), "idp-oauth-invalid-grant");
        let reqs = t.requests_to(TOKEN);
        assert_eq!(reqs.len(), 1);
        let req = reqs.into_iter().next().unwrap();
        let f = form(&req);
        assert!(f.contains(&("grant_type".into(), "authorization_code".into())));
        assert!(f.contains(&("code".into(), "the-code".into())));
        assert!(f.contains(&("redirect_uri".into(), "http://127.0.0.1:5555/callback".into())));
        assert!(f.contains(&("code_verifier".into(), verifier)));
        req
    }

    #[tokio::test]
    async fn code_exchange_with_client_secret_basic() {
        let req = code_exchange_request(r#"{"method":"client_secret_basic","client_secret":"s e/cret"}"#).await;
        // Form-urlencoded with a space as `%20` (see `oauth::client_auth::form_encode`).
        let expected = base64::engine::general_purpose::STANDARD.encode("ema-desktop:s%20e%2Fcret");
        assert_eq!(req.headers()["authorization"], format!("Basic {expected}"));
        assert!(form(&req).iter().all(|(k, _)| k != "client_secret"));
    }

    #[tokio::test]
    async fn code_exchange_with_client_secret_post() {
        let req = code_exchange_request(r#"{"method":"client_secret_post","client_secret":"sec"}"#).await;
        assert!(req.headers().get("authorization").is_none());
        let f = form(&req);
        assert!(f.contains(&("client_id".into(), "ema-desktop".into())));
        assert!(f.contains(&("client_secret".into(), "sec".into())));
    }

    #[tokio::test]
    async fn code_exchange_as_a_public_client() {
        let req = code_exchange_request(r#"{"method":"none"}"#).await;
        assert!(req.headers().get("authorization").is_none());
        let f = form(&req);
        assert!(f.contains(&("client_id".into(), "ema-desktop".into())));
        assert!(f.iter().all(|(k, _)| k != "client_secret" && k != "client_assertion"));
    }

    #[tokio::test]
    async fn code_exchange_with_private_key_jwt() {
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
        let req = code_exchange_request(&format!(
            r#"{{"method":"private_key_jwt","key_file":"{key}","key_id":"k1","alg":"ES256"}}"#
        ))
        .await;
        assert!(req.headers().get("authorization").is_none());
        let f: HashMap<String, String> = form(&req).into_iter().collect();
        assert_eq!(f["client_assertion_type"], crate::oauth::client_auth::CLIENT_ASSERTION_TYPE_JWT_BEARER);
        let claims = crate::jwt::decode_claims_unverified(&f["client_assertion"]).unwrap();
        assert_eq!(claims["iss"], "ema-desktop");
        assert_eq!(claims["sub"], "ema-desktop");
        assert_eq!(claims["aud"], TOKEN);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    }

    #[tokio::test]
    async fn refresh_and_revoke_requests() {
        let t = fake_idp();
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"client_secret_post","client_secret":"sec"}"#))
            .await
            .unwrap();
        let err = idp.refresh(&t, &RefreshToken::new("rt-1")).await.unwrap_err();
        assert!(err.is_session_expired(), "invalid_grant on refresh means the session ended");
        let f = form(&t.requests_to(TOKEN)[0]);
        assert!(f.contains(&("grant_type".into(), "refresh_token".into())));
        assert!(f.contains(&("refresh_token".into(), "rt-1".into())));
        assert!(f.contains(&("client_secret".into(), "sec".into())));
        assert!(idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap());
        let f = form(&t.requests_to("https://idp.example.com/oauth2/v1/revoke")[0]);
        assert_eq!(
            f,
            vec![
                ("token".into(), "rt-1".into()),
                ("token_type_hint".into(), "refresh_token".into()),
                ("client_id".into(), "ema-desktop".into()),
                ("client_secret".into(), "sec".into()),
            ]
        );
    }

    /// Regression (issue 14, item 2): with `private_key_jwt`, `ema logout`'s revocation carried a
    /// client assertion addressed to the revocation URL; Okta (and OIDC Core §9) want the token
    /// endpoint, answered 401 `invalid_client`, and the refresh token stayed valid.
    #[tokio::test]
    async fn revocation_with_private_key_jwt_addresses_the_assertion_to_the_token_endpoint() {
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
        let t = fake_idp();
        let config = format!(r#"{{"method":"private_key_jwt","key_file":"{key}","key_id":"k1","alg":"ES256"}}"#);
        let idp = IdpClient::discover(&t, &idp_config(&config)).await.unwrap();
        assert!(idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap());
        let f: HashMap<String, String> =
            form(&t.requests_to("https://idp.example.com/oauth2/v1/revoke")[0]).into_iter().collect();
        assert_eq!(f["token"], "rt-1");
        let claims = crate::jwt::decode_claims_unverified(&f["client_assertion"]).unwrap();
        assert_eq!(claims["aud"], TOKEN, "the IdP checks the assertion as at its token endpoint");
        assert_eq!(claims["iss"], "ema-desktop");
        // An IdP that refuses the client: the caller learns it did not revoke (never a silent "ok").
        t.json("https://idp.example.com/oauth2/v1/revoke", 401, r#"{"error":"invalid_client"}"#);
        let err = idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap_err();
        assert_eq!(err.code(), "oauth-invalid-client");
    }

    /// The public JWK of `tests/data/test-client-key.pem` (P-256), as an IdP's JWKS would hold it.
    const TEST_KEY_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
        "x":"BkumKbOYbAMEIPcO3VJZ0sgEb71iEzal-U1nDBpk8sI","y":"Dfs-XUgoZuy2Y5wI2ce8tXBG5dKlHXUhFt0YPXJF-40"}"#;
    const USERINFO: &str = "https://idp.example.com/me";

    /// An IdP like oidc-provider with its default `conformIdTokenClaims`: the ID token of the
    /// code flow has no `email`/`name` (OIDC Core §5.4), UserInfo has them.
    fn thin_id_token_idp(nonce: &str, userinfo: &serde_json::Value) -> FakeTransport {
        let t = fake_idp();
        t.json(
            "https://idp.example.com/.well-known/openid-configuration",
            200,
            &serde_json::json!({
                "issuer": ISSUER,
                "authorization_endpoint": "https://idp.example.com/auth",
                "token_endpoint": TOKEN,
                "userinfo_endpoint": USERINFO,
                "jwks_uri": "https://idp.example.com/oauth2/v1/keys",
                "response_types_supported": ["code", "code id_token", "id_token", "none"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256", "Ed25519", "EdDSA"],
                "authorization_response_iss_parameter_supported": true
            })
            .to_string(),
        );
        t.json("https://idp.example.com/oauth2/v1/keys", 200, &format!(r#"{{"keys":[{TEST_KEY_JWK}]}}"#));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": "ema-desktop", "exp": now + 3600,
            "iat": now, "nonce": nonce, "auth_time": now});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem")).unwrap();
        let id_token =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap()).unwrap();
        t.json(
            TOKEN,
            200,
            &serde_json::json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
                "id_token": id_token, "refresh_token": "rt-1", "scope": "openid email profile offline_access"})
            .to_string(),
        );
        t.json(USERINFO, 200, &userinfo.to_string());
        t
    }

    async fn sign_in_at_thin_id_token_idp(userinfo: serde_json::Value) -> (SessionTokens, FakeTransport) {
        let t = fake_idp();
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
        let (_, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
        let t = thin_id_token_idp(pending.nonce.secret(), &userinfo);
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
        let tokens = idp.exchange_code(&t, "the-code".into(), pending).await.unwrap();
        (tokens, t)
    }

    #[tokio::test]
    async fn oidc_provider_id_token_without_email_takes_email_and_name_from_userinfo() {
        let (tokens, t) = sign_in_at_thin_id_token_idp(
            serde_json::json!({"sub": "alice", "email": "alice@example.com", "name": "Alice Anders"}),
        )
        .await;
        let identity = tokens.identity.unwrap();
        assert_eq!(identity.sub, "alice");
        assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
        assert_eq!(identity.name.as_deref(), Some("Alice Anders"));
        let reqs = t.requests_to(USERINFO);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].headers()["authorization"], "Bearer at-1");
        assert!(tokens.refresh_token.is_some());
    }

    #[tokio::test]
    async fn oidc_provider_userinfo_for_another_subject_is_not_used() {
        let (tokens, _) =
            sign_in_at_thin_id_token_idp(serde_json::json!({"sub": "mallory", "email": "mallory@example.com"})).await;
        let identity = tokens.identity.unwrap();
        assert_eq!(identity.sub, "alice");
        assert_eq!(identity.email, None, "UserInfo of another subject must not be used (OIDC Core §5.3.2)");
    }

    #[tokio::test]
    async fn discovery_refuses_a_mismatched_issuer_and_errors_never_echo_secrets() {
        let t = fake_idp();
        t.json(
            "https://idp.example.com/.well-known/openid-configuration",
            200,
            &serde_json::json!({"issuer": "https://evil.example.com", "authorization_endpoint": "https://evil.example.com/a",
                "token_endpoint": "https://evil.example.com/t", "jwks_uri": "https://evil.example.com/k",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]})
            .to_string(),
        );
        let err =
            IdpClient::discover(&t, &idp_config(r#"{"method":"client_secret_post","client_secret":"canary-sec"}"#))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("evil.example.com"), "{err}");
        assert!(!format!("{err} {err:?}").contains("canary-sec"));
    }
}
