//! The sandbox's OpenID Provider, issuer `http://127.0.0.1:PORT/idp`.
//!
//! It plays the enterprise IdP of the Enterprise-Managed Authorization flow: users sign
//! in with Authorization Code + PKCE (leg 1), and the app exchanges their ID token for
//! ID-JAGs, one per connector the user is entitled to (leg 2, RFC 8693 + the ID-JAG
//! draft). The `idp_down` knob takes all of it offline at once.

mod authorize;
mod exchange;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub(crate) use token::id_token_for;

use crate::oauth::{OAuthError, parse_form, token_hash};
use crate::state::SandboxState;

/// Grant type of RFC 8693 token exchange.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Token type of an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant-04 §4.3).
pub const TOKEN_TYPE_ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// Token type of an OIDC ID token (RFC 8693 §3).
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Token type of a refresh token (RFC 8693 §3), accepted as a subject token since
/// draft-ietf-oauth-identity-assertion-authz-grant-02 (as Okta does).
pub const TOKEN_TYPE_REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The authentication context class a step-up asks for (OIDC Core §2 `acr`; RFC 9470 §3
/// `acr_values`): a sign-in whose authorization request names it meets it.
pub const STEP_UP_ACR: &str = "urn:ema:sandbox:acr:mfa";
/// How recent (in seconds) a sign-in must be to meet a step-up (RFC 9470 §3 `max_age`).
pub const STEP_UP_MAX_AGE_SECS: u64 = 300;

/// Scopes the IdP knows; others in an authorization request are dropped.
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access", "groups"];

/// All IdP routes (each answers 503 while the `idp_down` knob is set).
pub fn router(state: Arc<SandboxState>) -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/idp/.well-known/openid-configuration", get(discovery))
        // RFC 8414 §3.1 path-inserted forms of the same document.
        .route("/.well-known/openid-configuration/idp", get(discovery))
        .route("/.well-known/oauth-authorization-server/idp", get(discovery))
        .route("/idp/jwks", get(jwks))
        .route("/idp/authorize", get(authorize::authorize))
        .route("/idp/login", post(authorize::login))
        .route("/idp/token", post(token::token))
        .route("/idp/revoke", post(revoke))
        .layer(middleware::from_fn_with_state(state, idp_down_guard))
}

/// Answers 503 for every IdP route while `idp_down` is set.
async fn idp_down_guard(State(state): State<Arc<SandboxState>>, request: Request, next: Next) -> Response {
    if state.knobs.get().idp_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "identity provider unavailable (sandbox knob idp_down)\n")
            .into_response();
    }
    next.run(request).await
}

/// OpenID Provider metadata (OpenID Connect Discovery 1.0 §3; RFC 8414 §2 fields).
async fn discovery(State(state): State<Arc<SandboxState>>) -> Response {
    let issuer = state.idp_issuer();
    axum::Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            GRANT_TOKEN_EXCHANGE,
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": SUPPORTED_SCOPES,
        "subject_types_supported": ["public"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
            "email", "email_verified", "name", "preferred_username", "groups",
        ],
        "authorization_response_iss_parameter_supported": true,
        "identity_chaining_requested_token_types_supported": [TOKEN_TYPE_ID_JAG],
    }))
    .into_response()
}

/// The IdP's public keys (RFC 7517 §5).
async fn jwks(State(state): State<Arc<SandboxState>>) -> Response {
    axum::Json(serde_json::json!({ "keys": [state.key.public_jwk()] })).into_response()
}

/// Token revocation (RFC 7009 §2.1). Revokes a refresh token of the authenticated
/// client; answers 200 whatever the token was (RFC 7009 §2.2).
async fn revoke(
    State(state): State<Arc<SandboxState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, OAuthError> {
    let form = parse_form(&headers, &body)?;
    state.idp_client.authenticate(&headers, &form)?;
    let Some(token) = form.get("token") else {
        return Err(OAuthError::invalid_request("missing token"));
    };
    let mut stores = state.stores();
    let hash = token_hash(token);
    if stores.refresh_tokens.get(&hash).is_some_and(|g| g.client_id == state.idp_client.client_id) {
        stores.refresh_tokens.remove(&hash);
        tracing::info!("idp: refresh token revoked");
    }
    Ok(StatusCode::OK)
}
