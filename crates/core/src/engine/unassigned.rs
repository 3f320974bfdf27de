//! When the IdP stops assigning a connector to the user (offboarding, a group change), the
//! connector's access token goes at once: the record that replaces it holds none, so neither
//! `ema headers` nor a bridge hands it out again, and where the connector's authorization
//! server has a revocation endpoint (RFC 8414 §2 `revocation_endpoint`), the token is revoked
//! there too (RFC 7009 §2.1), so that a copy a client already took stops working.

use crate::config::ConnectorConfig;
use crate::oauth::TokenRequest;
use crate::secret::AccessToken;

use super::Engine;
use super::legs::client_auth_for;

impl Engine {
    /// Revokes `token`, the connector's last access token, at its authorization server, if it
    /// has a revocation endpoint. Best effort: the token is already gone here, and an AS that
    /// refuses or cannot be reached only leaves it to expire; said in the log, never an error.
    pub(super) async fn revoke_unassigned(&self, cfg: &ConnectorConfig, token: &AccessToken, issued_by: Option<&str>) {
        let Some(endpoints) = self.discovery.last_discovered(&cfg.id) else { return };
        // Only to the AS that issued it (SEP-2352): never to another the metadata names now.
        if !issued_by.is_some_and(|i| crate::url_policy::same_uri(i, &endpoints.issuer)) {
            tracing::info!(connector = %cfg.id, "no longer assigned: token deleted; its AS changed, nothing revoked");
            return;
        }
        let Some(endpoint) = &endpoints.revocation_endpoint else {
            tracing::info!(connector = %cfg.id, "no longer assigned: token deleted; its AS offers no revocation");
            return;
        };
        let request = TokenRequest {
            token_endpoint: endpoint,
            client_id: &cfg.client_id,
            client_auth: &client_auth_for(&cfg.client_auth, &endpoints.token_endpoint_auth_methods),
            params: vec![("token", token.secret().to_string()), ("token_type_hint", "access_token".into())],
        }
        // A client assertion is addressed as at the token endpoint (OIDC Core §9; RFC 7009 §2.1
        // authenticates "as described in RFC 6749 §2.3").
        .build_for_audience(self.now().unix_timestamp(), &endpoints.token_endpoint);
        let outcome = match request {
            Ok(req) => match self.parts.transport.send(req).await {
                Ok(resp) if resp.status().is_success() => "revoked at its authorization server",
                Ok(_) => "its authorization server refused the revocation; the token expires on its own",
                Err(_) => "its authorization server could not be reached; the token expires on its own",
            },
            Err(_) => "the client key could not sign the revocation; the token expires on its own",
        };
        tracing::info!(connector = %cfg.id, "no longer assigned: token deleted; {outcome}");
    }
}
