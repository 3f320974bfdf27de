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
use crate::status::{ErrorCode, Leg, ResponseKind};
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
    pub fn code(&self) -> ErrorCode {
        match self {
            SignInError::Discovery(r) => ErrorCode::Response(Leg::IdpDiscovery, r.kind()),
            SignInError::Browser(_) => ErrorCode::Browser,
            SignInError::Callback(c) => c.code(),
            SignInError::Refused(_) => ErrorCode::Response(Leg::Idp, ResponseKind::OAuth),
            SignInError::Transport(t) => ErrorCode::Response(Leg::Idp, ResponseKind::Transport(t.code())),
            SignInError::InvalidResponse(_) => ErrorCode::Response(Leg::Idp, ResponseKind::InvalidResponse),
            SignInError::IdToken(_) => ErrorCode::IdTokenInvalid,
            SignInError::ClientAuth(_) => ErrorCode::ClientAuthKey,
        }
    }

    /// The IdP's OAuth `error`, kept beside the code.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            SignInError::Refused(e) => Some(&e.error),
            SignInError::Discovery(r) => r.oauth_error(),
            _ => None,
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
    /// The `max_age` sent (a step-up): the ID token's `auth_time` must meet it.
    max_age: Option<u64>,
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

/// Clock difference allowed when checking `auth_time` against `max_age`: generous, since this
/// computer's clock is compared with the IdP's, and a check that fails on a skewed clock would
/// refuse every sign-in while the step-up is pending (the IdP's exchange judges again anyway).
const AUTH_TIME_LEEWAY_SECS: i64 = 300;

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
        let mut metadata: CoreProviderMetadata = serde_path_to_error::deserialize(de).map_err(|e| {
            // A missing field has the document itself as its path: the parser's words name it
            // ("missing field `jwks_uri`"), scrubbed since a wrong value may be quoted in them.
            let why = scrub(&e.inner().to_string(), 160);
            match e.path().to_string().as_str() {
                "." => invalid(format!("the document is incomplete: {why}")),
                path => invalid(format!("`{path}` is invalid: {why}")),
            }
        })?;
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
        self.authorization_request_with(redirect_uri, None)
    }

    /// The authorization request, with what a step-up asks (RFC 9470 §3 through OIDC Core
    /// §3.1.2.1 `max_age` and `acr_values`) when there is one.
    pub fn authorization_request_with(
        &self,
        redirect_uri: &str,
        step_up: Option<&crate::oauth::StepUp>,
    ) -> Result<(Url, PendingSignIn), SignInError> {
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
        let max_age = step_up.and_then(|s| s.max_age);
        if let Some(seconds) = max_age {
            req = req.set_max_age(std::time::Duration::from_secs(seconds));
        }
        for class in step_up.and_then(|s| s.acr_values.as_deref()).unwrap_or_default().split_ascii_whitespace() {
            req = req.add_auth_context_value(openidconnect::AuthenticationContextClass::new(class.to_string()));
        }
        let (url, state, nonce) = req.url();
        Ok((
            url,
            PendingSignIn { state, nonce, pkce_verifier: verifier, redirect_uri: redirect_uri.to_string(), max_age },
        ))
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
        max_age: Option<u64>,
    ) -> Result<(IdToken, Option<OffsetDateTime>, Identity), SignInError> {
        let client = self.client();
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ID_TOKEN_ALGS.to_vec());
        let claims = match nonce {
            Some(n) => id_token.claims(&verifier, n),
            // OIDC Core §12.2: a refreshed ID token carries no nonce.
            None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        }
        .map_err(|e| SignInError::IdToken(scrub(&e.to_string(), 200)))?;
        if let Some(max_age) = max_age {
            // OIDC Core §3.1.2.1: with `max_age` the ID token MUST carry `auth_time`, and
            // §3.1.3.7 (13) has the client check it: a step-up that did not re-authenticate is
            // refused here rather than looping through the exchange's refusal again.
            // An IdP that leaves `auth_time` out (some do by default) is not refused for it: the
            // exchange, at the same IdP, says whether the sign-in was fresh enough.
            let Some(auth_time) = claims.auth_time() else {
                tracing::warn!("the ID token has no auth_time although max_age was sent (OIDC Core §3.1.2.1)");
                let exp = OffsetDateTime::from_unix_timestamp(claims.expiration().timestamp()).ok();
                return Ok((IdToken::new(id_token.to_string()), exp, identity_of(claims)));
            };
            let age = OffsetDateTime::now_utc().unix_timestamp() - auth_time.timestamp();
            if age > i64::try_from(max_age).unwrap_or(i64::MAX).saturating_add(AUTH_TIME_LEEWAY_SECS) {
                return Err(SignInError::IdToken(format!(
                    "the IdP did not sign you in again: the sign-in is {age} s old, and at most {max_age} s was asked"
                )));
            }
        }
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
        let (id_token, exp, mut identity) = self.verify_id_token(id_token, Some(&pending.nonce), pending.max_age)?;
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
            let (id_token, exp, mut identity) = self.verify_id_token(id_token, None, None)?;
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
#[path = "oidc_tests.rs"]
mod tests;
