//! The three legs of one connection: a fresh ID token (refreshed at the IdP when needed), the
//! token exchange at the IdP (RFC 8693, ID-JAG -04 §4.3) and the JWT-bearer grant at the
//! connector's authorization server (RFC 7523, ID-JAG -04 §4.4), then the MCP check.

use time::OffsetDateTime;
use url::Url;

use crate::config::{ClientAuth, ConnectorConfig};
use crate::discovery::ConnectorEndpoints;
use crate::grants::jwt_bearer::{self, ConnectorGrant, JwtBearerGrant};
use crate::grants::token_exchange::{self, ExchangeError, TokenExchange};
use crate::secret::IdToken;
use crate::signin::SignInError;
use crate::status::{ErrorCode, FixAction, IdpSessionState, StatusError};

use super::{Engine, Failure, from_unix};

/// What one successful connect produced.
pub(super) struct Obtained {
    pub(super) endpoints: ConnectorEndpoints,
    pub(super) grant: ConnectorGrant,
}

impl Engine {
    /// The three legs for one connector: fresh ID token, token exchange, jwt-bearer grant,
    /// then the MCP check.
    pub(super) async fn obtain(&self, cfg: &ConnectorConfig) -> Result<Obtained, Failure> {
        let transport = self.parts.transport.as_ref();
        let endpoints = self
            .discovery
            .endpoints(transport, &cfg.id, &cfg.mcp_url, cfg.authorization_server.as_ref())
            .await
            .map_err(|e| Failure::Other(self.error(e.code(), &e.to_string(), e.fix())))?;
        if cfg.authorization_server.is_none()
            && let Some(trusted) = self.trusted_authorization_server(cfg)
            && !crate::url_policy::same_uri(&trusted, &endpoints.issuer)
        {
            // Trust on first use: without a policy pin, the MCP server names the AS, and a
            // spoofed or compromised one could send our ID-JAG request to an AS of its choosing.
            self.discovery.invalidate(&cfg.id);
            return Err(Failure::Other(self.error(
                ErrorCode::AuthorizationServerChanged,
                &format!(
                    "{}'s MCP server now names the authorization server {}, but it was first connected through {}; \
                     EMA refused the change, since a spoofed or compromised MCP server could send your sign-in elsewhere",
                    cfg.display_name, endpoints.issuer, trusted
                ),
                &format!(
                    "if {} really moved, ask {} to pin its authorization server in the policy \
                     (`authorization_server` of the connector); otherwise report it to them",
                    cfg.display_name,
                    self.help_desk()
                ),
            )));
        }
        let mut retried_session = false;
        let issued = loop {
            let id_token = self.fresh_id_token(retried_session).await?;
            let idp = self.idp_client().await.map_err(|e| self.idp_failure(&e))?;
            self.spend_idp_budget()?;
            let exchange = TokenExchange {
                token_endpoint: idp.token_endpoint(),
                client_id: &self.policy.idp.client_id,
                client_auth: &self.policy.idp.client_auth,
                audience: &endpoints.issuer,
                resource: &endpoints.resource,
                scopes: &cfg.scopes,
                subject_token: &id_token,
            };
            let req =
                exchange.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
            let resp = transport.send(req).await.map_err(|e| self.idp_failure(&SignInError::Transport(e)))?;
            match token_exchange::process_response(idp.token_endpoint(), &resp, &cfg.scopes) {
                Ok(issued) => {
                    self.idp_answered();
                    break issued;
                }
                Err(ExchangeError::SessionInvalid(_)) if !retried_session => retried_session = true,
                Err(e) => return Err(self.exchange_failure(cfg, e)),
            }
        };
        let grant = JwtBearerGrant {
            token_endpoint: &endpoints.token_endpoint,
            client_id: &cfg.client_id,
            client_auth: &client_auth_for(&cfg.client_auth, &endpoints.token_endpoint_auth_methods),
            assertion: issued.id_jag,
            scopes: &issued.scopes,
            resource: &endpoints.resource,
        };
        let req = grant.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
        let grant = match transport.send(req).await {
            Ok(resp) => jwt_bearer::process_response(&endpoints.token_endpoint, &resp, &issued.scopes, self.now()),
            Err(e) => Err(jwt_bearer::GrantError::Response(e.into())),
        };
        let grant = grant.map_err(|e| {
            self.discovery.invalidate(&cfg.id);
            let fix = match e.oauth_error() {
                Some("invalid_grant") => format!(
                    "{} refused the identity assertion; if it persists, export diagnostics for {}",
                    cfg.display_name,
                    self.help_desk()
                ),
                Some("invalid_client") => {
                    format!("ask {}: our client registration at {} is wrong", self.help_desk(), cfg.display_name)
                }
                _ => format!("try again later; if it persists, contact {}", self.help_desk()),
            };
            Failure::Other(self.oauth_error(e.code(), e.oauth_error(), &e.to_string(), &fix))
        })?;
        let url = Url::parse(&endpoints.resource).unwrap_or_else(|_| cfg.mcp_url.clone());
        self.parts.mcp.check(&url, &grant.access_token).await.map_err(|e| {
            Failure::Other(self.error(
                e.code(),
                &e.to_string(),
                &format!("the sign-in worked but {} did not; contact {}", cfg.display_name, self.help_desk()),
            ))
        })?;
        Ok(Obtained { endpoints, grant })
    }

    /// An ID token with at least a minute left, refreshed with the refresh token if needed.
    /// One refresh serves all connectors waiting on the session lock.
    pub(super) async fn fresh_id_token(&self, force_refresh: bool) -> Result<IdToken, Failure> {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_mut() else {
            return Err(Failure::SignInNeeded(
                self.error(ErrorCode::SignedOut, "not signed in", "sign in").offering(FixAction::SignIn),
            ));
        };
        if !force_refresh
            && let (Some(t), Some(exp)) = (&session.id_token, session.id_token_expires_at.and_then(from_unix))
            && exp - ID_TOKEN_MIN_LIFETIME > self.now()
        {
            return Ok(t.clone());
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            let err = self
                .error(
                    ErrorCode::IdpSessionExpired,
                    "the ID token expired and the IdP gave no refresh token",
                    "sign in again; ask IT to allow offline_access for this app",
                )
                .offering(FixAction::SignIn);
            self.publish(|s| s.idp.state = IdpSessionState::Expired);
            return Err(Failure::SignInNeeded(err));
        };
        if let Some(recent) = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && recent.kind == RecentIdpFailureKind::RefreshWithoutIdToken
            && self.now() - recent.at < REFRESH_WITHOUT_ID_TOKEN_QUIET
        {
            // The IdP just answered a refresh without an ID token: asking again for every
            // waiting connector would only spend the IdP's time (and, with rotation, tokens).
            return Err(Failure::IdpFailed(recent.error));
        }
        let idp = self.idp_client().await.map_err(|e| self.idp_failure(&e))?;
        self.spend_idp_budget()?;
        let tokens =
            idp.refresh(self.parts.transport.as_ref(), &refresh_token).await.map_err(|e| self.idp_failure(&e))?;
        if let Some(rt) = tokens.refresh_token {
            // Refresh-token rotation (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1): the old one is now
            // spent. Stored before anything else can fail, or the next renewal sends a spent
            // token and the IdP ends the session (`invalid_grant`).
            session.refresh_token = Some(rt);
            if let Err(e) = self.save_session(session) {
                tracing::warn!(code = e.code().wire(None), "could not store the rotated refresh token");
            }
        }
        let Some(id_token) = tokens.id_token else {
            let err = self.error(
                ErrorCode::IdTokenNotRenewed,
                "the IdP renewed the session but sent no new ID token (OIDC Core §12.2 lets it), and the old one has \
                 expired",
                "sign in again; your connectors keep working until their tokens expire",
            )
            .offering(FixAction::SignIn);
            *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(RecentIdpFailure {
                at: self.now(),
                kind: RecentIdpFailureKind::RefreshWithoutIdToken,
                error: err.clone(),
            });
            self.idp_problem_now(None, &err);
            return Err(Failure::IdpFailed(err));
        };
        *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        session.id_token = Some(id_token.clone());
        session.id_token_expires_at = tokens.id_token_expires_at.map(|t| t.unix_timestamp());
        if tokens.identity.is_some() {
            session.identity = tokens.identity;
        }
        let saved = self.save_session(session);
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let (exp, identity) = (session.id_token_expires_at.and_then(from_unix), session.identity.clone());
        self.publish(|s| {
            s.idp.state = IdpSessionState::Active;
            s.idp.id_token_expires_at = exp;
            s.idp.identity = identity;
            s.idp.last_error = saved.err().map(|e| self.error(e.code(), &e.to_string(), e.fix()));
        });
        Ok(id_token)
    }

    /// Takes one request from the IdP budget, or fails the renewal (it goes through backoff).
    /// When the IdP could not be reached a moment ago, fails at once with that answer.
    pub(super) fn spend_idp_budget(&self) -> Result<(), Failure> {
        if let Some(recent) = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && recent.kind == RecentIdpFailureKind::Unreachable
            && self.now() - recent.at < UNREACHABLE_QUIET
        {
            // The IdP could not be reached a moment ago: the other connectors of this round take
            // that answer (during an outage, seven connectors sent seven requests per round;
            // bench/fleet).
            return Err(Failure::IdpUnreachable(recent.error));
        }
        if self.idp_budget.take(self.now()) {
            return Ok(());
        }
        tracing::warn!("IdP request budget spent: a renewal was held back");
        Err(Failure::IdpFailed(self.error(
            ErrorCode::IdpRequestBudget,
            &format!(
                "EMA held back a request to your company's IdP: it already sent {} in the last minute",
                self.idp_budget.capacity()
            ),
            &format!(
                "EMA retries by itself in a few minutes; if this keeps happening, export diagnostics for {}",
                self.help_desk()
            ),
        )))
    }
}

/// An ID token this close to expiry is refreshed before it is used as a subject token.
pub(super) const ID_TOKEN_MIN_LIFETIME: time::Duration = time::Duration::seconds(60);

/// After a refresh answered without an ID token, how long other connectors take that answer
/// instead of refreshing again.
pub(super) const REFRESH_WITHOUT_ID_TOKEN_QUIET: time::Duration = time::Duration::seconds(60);

/// After the IdP could not be reached, how long the other connectors of the same round take
/// that answer instead of trying again (a round's connectors come within moments; a new round
/// always tries again: `Engine::start_round`).
pub(super) const UNREACHABLE_QUIET: time::Duration = time::Duration::seconds(10);

/// A failure at the IdP a moment ago that makes the next request pointless, so that the
/// connectors of one round do not each spend a request on it (cleared by a working refresh,
/// an answer from the IdP, or a sign-in).
#[derive(Debug, Clone)]
pub(super) struct RecentIdpFailure {
    pub(super) at: OffsetDateTime,
    pub(super) kind: RecentIdpFailureKind,
    pub(super) error: StatusError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecentIdpFailureKind {
    /// The IdP could not be reached (any request).
    Unreachable,
    /// A refresh came back without an ID token (refreshes only).
    RefreshWithoutIdToken,
}

/// Client authentication at a connector's AS "per its metadata or policy": the policy's
/// method, except that a client secret is sent the way the AS says it accepts
/// (`token_endpoint_auth_methods_supported`, RFC 8414 §2) when it lists only the other of
/// `client_secret_basic` / `client_secret_post`. Other methods are used as the policy says.
pub(super) fn client_auth_for(policy: &ClientAuth, supported: &[String]) -> ClientAuth {
    let supports = |m: &str| supported.iter().any(|s| s == m);
    match policy {
        ClientAuth::ClientSecretBasic(s) if !supports("client_secret_basic") && supports("client_secret_post") => {
            ClientAuth::ClientSecretPost(s.clone())
        }
        ClientAuth::ClientSecretPost(s) if !supports("client_secret_post") && supports("client_secret_basic") => {
            ClientAuth::ClientSecretBasic(s.clone())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secret_goes_the_way_the_as_accepts_it() {
        let secret = crate::secret::ClientSecret::new("s");
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let basic = ClientAuth::ClientSecretBasic(secret.clone());
        let post = ClientAuth::ClientSecretPost(secret);
        let name = |a: ClientAuth| a.method_name();
        assert_eq!(name(client_auth_for(&basic, &methods(&["client_secret_post"]))), "client_secret_post");
        assert_eq!(name(client_auth_for(&post, &methods(&["client_secret_basic"]))), "client_secret_basic");
        assert_eq!(
            name(client_auth_for(&basic, &methods(&["client_secret_basic", "client_secret_post"]))),
            "client_secret_basic"
        );
        assert_eq!(
            name(client_auth_for(&post, &methods(&["private_key_jwt"]))),
            "client_secret_post",
            "no better choice"
        );
        assert_eq!(name(client_auth_for(&ClientAuth::None, &methods(&["client_secret_basic"]))), "none");
    }
}
