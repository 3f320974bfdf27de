//! The three legs of one connection: the exchange's subject (an ID token or the refresh token,
//! [`super::subject`]), the token exchange at the IdP (RFC 8693, ID-JAG -04 §4.3) and the
//! JWT-bearer grant at the connector's authorization server (RFC 7523, ID-JAG -04 §4.4), then
//! the MCP check.

use crate::config::{ClientAuth, ConnectorConfig};
use crate::discovery::ConnectorEndpoints;
use crate::grants::jwt_bearer::{self, ConnectorGrant, JwtBearerGrant};
use crate::grants::token_exchange::{self, ExchangeError, IssuedIdJag, SubjectToken, TokenExchange};
use crate::oauth::client_auth;
use crate::signin::SignInError;
use crate::status::ErrorCode;

use super::subject::{Attempt, RefreshSubjectWhy, Subject};
use super::{Engine, Failure};

/// What one successful connect produced.
pub(super) struct Obtained {
    pub(super) endpoints: ConnectorEndpoints,
    pub(super) grant: ConnectorGrant,
}

impl Engine {
    /// The three legs for one connector: fresh ID token, token exchange, jwt-bearer grant,
    /// then the MCP check.
    pub(super) async fn obtain(&self, cfg: &ConnectorConfig) -> Result<Obtained, Failure> {
        let endpoints = self
            .discovery
            .endpoints(self.parts.transport.as_ref(), &cfg.id, &cfg.mcp_url, cfg.authorization_server.as_ref())
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
        let issued = self.exchange(cfg, &endpoints).await?;
        let auth = client_auth_for(&cfg.client_auth, &endpoints.token_endpoint_auth_methods);
        let rule = self.assertion_audience_rule(&endpoints.issuer);
        let grant = match self.grant(cfg, &endpoints, &auth, issued, rule).await? {
            Ok(grant) => grant,
            Err(first) => match client_auth::audience_retry(&auth, rule, first.oauth_error()) {
                // A `private_key_jwt` client refused as `invalid_client`: the AS may want the
                // other `aud` (rfc7523bis servers take only the issuer). One retry, with a fresh
                // ID-JAG (one is never sent twice); what works is remembered for the AS.
                Some(other) => {
                    let issued = self.exchange(cfg, &endpoints).await?;
                    let second = self.grant(cfg, &endpoints, &auth, issued, other).await?;
                    // Past client authentication (a grant, or a refusal of something else): the
                    // AS takes this audience.
                    if second.as_ref().err().and_then(|e| e.oauth_error()) != Some("invalid_client") {
                        tracing::info!(connector = %cfg.id, rule = other.name(), "client assertions name the AS this way");
                        self.assertion_audiences
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(endpoints.issuer.clone(), other);
                    }
                    match second {
                        Ok(grant) => grant,
                        Err(e) if e.oauth_error() != Some("invalid_client") => return Err(self.grant_failure(cfg, e)),
                        Err(_) => return Err(self.grant_failure(cfg, first)),
                    }
                }
                None => return Err(self.grant_failure(cfg, first)),
            },
        };
        // The MCP URL itself: the metadata's `resource` may be the server's origin (published at
        // the root location, MCP 2025-11-25), which is no MCP endpoint.
        self.parts.mcp.check(&cfg.mcp_url, &grant.access_token).await.map_err(|e| {
            Failure::Other(self.error(
                e.code(),
                &e.to_string(),
                &format!("the sign-in worked but {} did not; contact {}", cfg.display_name, self.help_desk()),
            ))
        })?;
        Ok(Obtained { endpoints, grant })
    }

    /// The token exchange at the IdP (RFC 8693, ID-JAG -04 §4.3), with the subject of
    /// [`super::subject`] and its fallbacks.
    async fn exchange(&self, cfg: &ConnectorConfig, endpoints: &ConnectorEndpoints) -> Result<IssuedIdJag, Failure> {
        let transport = self.parts.transport.as_ref();
        let mut attempt = Attempt::First;
        let mut retried_rotated = false;
        loop {
            let subject = self.exchange_subject(attempt).await?;
            let idp = self.idp_client().await.map_err(|e| self.idp_failure(&e))?;
            self.spend_idp_budget()?;
            let exchange = TokenExchange {
                token_endpoint: idp.token_endpoint(),
                client_id: &self.policy.idp.client_id,
                client_auth: &self.policy.idp.client_auth,
                audience: &endpoints.issuer,
                resource: &endpoints.resource,
                scopes: &cfg.scopes,
                subject_token: match &subject {
                    Subject::IdToken(t) => SubjectToken::IdToken(t),
                    Subject::RefreshToken { token, .. } => SubjectToken::RefreshToken(token),
                },
            };
            let req =
                exchange.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
            let resp = transport.send(req).await.map_err(|e| self.idp_failure(&SignInError::Transport(e)))?;
            match (token_exchange::process_response(idp.token_endpoint(), &resp, &cfg.scopes), &subject) {
                (Ok(issued), _) => {
                    self.idp_answered();
                    if let Subject::RefreshToken { why, .. } = subject
                        && why != RefreshSubjectWhy::Policy
                    {
                        self.learn_refresh_subject(true).await;
                    }
                    return Ok(issued);
                }
                (Err(ExchangeError::SessionInvalid(_)), Subject::IdToken(_)) if attempt == Attempt::First => {
                    attempt = Attempt::IdTokenRejected;
                }
                (Err(ExchangeError::SessionInvalid(_)), Subject::RefreshToken { token, .. })
                    if !retried_rotated && self.refresh_token_rotated_since(token).await =>
                {
                    // Another connector's refresh rotated the token while this exchange carried
                    // the old one: once more with the current one (same attempt).
                    retried_rotated = true;
                }
                (Err(e), Subject::RefreshToken { why, .. })
                    if e.is_refusal() && refusal_means_unsupported(*why, &e) =>
                {
                    tracing::info!(
                        oauth_error = e.oauth_error().map(|s| crate::redact::scrub(s, 40)),
                        "the IdP refused the refresh token as the exchange's subject; using the ID token"
                    );
                    if teaches_unsupported(&e) {
                        // `invalid_request` and the like (RFC 8693 §2.2.2) are about the
                        // request: this IdP does not take the token type. `access_denied`,
                        // step-up and `invalid_grant` (also what a refresh token spent by a
                        // concurrent rotation gets) are about the user, so they teach nothing.
                        self.learn_refresh_subject(false).await;
                    }
                    if *why == RefreshSubjectWhy::LastResort {
                        return Err(self.id_token_not_renewed());
                    }
                    attempt = Attempt::RefreshSubjectRefused;
                }
                (Err(e), _) => return Err(self.exchange_failure(cfg, e)),
            }
        }
    }

    /// The jwt-bearer grant at the connector's AS (RFC 7523, ID-JAG -04 §4.4). The outer error
    /// is one to report as is (the client key); the inner one, the AS's answer.
    async fn grant(
        &self,
        cfg: &ConnectorConfig,
        endpoints: &ConnectorEndpoints,
        auth: &ClientAuth,
        issued: IssuedIdJag,
        rule: client_auth::AudienceRule,
    ) -> Result<Result<ConnectorGrant, jwt_bearer::GrantError>, Failure> {
        let grant = JwtBearerGrant {
            token_endpoint: &endpoints.token_endpoint,
            client_id: &cfg.client_id,
            client_auth: auth,
            assertion: issued.id_jag,
            scopes: &issued.scopes,
            resource: &endpoints.resource,
            assertion_audience: (&endpoints.issuer, rule),
        };
        let req = grant.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
        Ok(match self.parts.transport.send(req).await {
            Ok(resp) => jwt_bearer::process_response(&endpoints.token_endpoint, &resp, &issued.scopes, self.now()),
            Err(e) => Err(jwt_bearer::GrantError::Response(e.into())),
        })
    }

    /// A refused or failed grant, worded for the user; the AS is discovered afresh next time.
    fn grant_failure(&self, cfg: &ConnectorConfig, e: jwt_bearer::GrantError) -> Failure {
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
    }

    /// How client assertions name this AS, as learned (the token endpoint until then).
    fn assertion_audience_rule(&self, issuer: &str) -> client_auth::AudienceRule {
        self.assertion_audiences.lock().unwrap_or_else(|p| p.into_inner()).get(issuer).copied().unwrap_or_default()
    }
}

/// Whether the IdP's refusal of a refresh token as the subject only says that it does not take
/// that token type, so EMA goes back to the ID token, rather than judging the user or the
/// connector (a verdict of "not assigned" deletes and revokes the connector's token):
/// - a subject the policy forces: every refusal is a verdict;
/// - a trial, or the last resort of an IdP never seen taking it: no refusal is a verdict (an IdP
///   that does not know the type may answer `access_denied`); the ID-token path gives it, or
///   the failure is `id-token-not-renewed`;
/// - an IdP that took it before: `access_denied`, `invalid_target` and step-up are verdicts on
///   the connector; `unauthorized_client` (RFC 6749 §5.2: the client may not use this grant,
///   say the grant variant was switched off for the app) and `invalid_grant` go to the ID-token
///   path, whose refresh grant tells a spent session from a refused token type.
fn refusal_means_unsupported(why: RefreshSubjectWhy, e: &ExchangeError) -> bool {
    match why {
        RefreshSubjectWhy::Policy => false,
        RefreshSubjectWhy::Trial | RefreshSubjectWhy::LastResort => true,
        RefreshSubjectWhy::Learned => match e {
            ExchangeError::NotEntitled(r) => r.error == "unauthorized_client",
            ExchangeError::StepUp(_) => false,
            _ => true,
        },
    }
}

/// A refusal that teaches "this IdP does not take refresh tokens as subjects": one about the
/// request or the client's grant, not about the user, the session or one connector's scopes.
fn teaches_unsupported(e: &ExchangeError) -> bool {
    match e {
        ExchangeError::NotEntitled(r) => r.error == "unauthorized_client",
        ExchangeError::Response(r) => !matches!(r.oauth_error(), Some("invalid_scope")),
        _ => false,
    }
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

    #[test]
    fn only_a_forced_or_proven_refresh_token_subject_can_mark_a_connector_not_assigned() {
        use crate::grants::token_exchange::process_response;
        let endpoint = url::Url::parse("https://idp.example.com/token").unwrap();
        let refused = |body: &str| {
            let resp = http::Response::builder().status(400).body(body.as_bytes().to_vec()).unwrap();
            process_response(&endpoint, &resp, &[]).unwrap_err()
        };
        let denied = refused(r#"{"error":"access_denied"}"#);
        let client = refused(r#"{"error":"unauthorized_client"}"#);
        let request = refused(r#"{"error":"invalid_request"}"#);
        let scope = refused(r#"{"error":"invalid_scope"}"#);
        use RefreshSubjectWhy::*;
        // A verdict (false) only when forced, or from an IdP that took it before.
        assert!(!refusal_means_unsupported(Policy, &denied));
        assert!(!refusal_means_unsupported(Learned, &denied));
        assert!(refusal_means_unsupported(Trial, &denied), "a trial's access_denied is not a verdict");
        assert!(refusal_means_unsupported(LastResort, &denied), "nor the last resort's of an unproven IdP");
        assert!(refusal_means_unsupported(Learned, &client), "unauthorized_client is about the grant, not the user");
        // What teaches "this IdP does not take refresh tokens as subjects".
        assert!(teaches_unsupported(&request) && teaches_unsupported(&client));
        assert!(!teaches_unsupported(&denied) && !teaches_unsupported(&scope), "one connector's answers teach nothing");
    }
}
