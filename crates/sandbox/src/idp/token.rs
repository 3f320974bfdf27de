//! The IdP token endpoint: authorization code (with PKCE), refresh token, and the
//! dispatch to token exchange.
//!
//! Every grant first authenticates the client strictly with its registered method;
//! errors are RFC 6749 §5.2 JSON.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{GRANT_TOKEN_EXCHANGE, exchange};
use crate::jwt::TYP_JWT;
use crate::oauth::{OAuthError, no_store, parse_form, random_token, split_scope, token_hash};
use crate::state::{RefreshGrant, SandboxState};
use crate::users::DemoUser;

/// Claims of an ID token (OpenID Connect Core 1.0 §2, §5.1) plus `groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// OIDC Core §2: the authentication context class met, when the sign-in asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub preferred_username: String,
    pub groups: Vec<String>,
}

/// `POST /idp/token`.
pub(super) async fn token(
    State(state): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let form = parse_form(&headers, &body)?;
    state.idp_client.authenticate(&headers, &form)?;
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    let response = match grant_type {
        "authorization_code" => authorization_code(&state, &form)?,
        "refresh_token" => refresh_token(&state, &form)?,
        GRANT_TOKEN_EXCHANGE => exchange::token_exchange(&state, &form)?,
        "" => return Err(OAuthError::invalid_request("missing grant_type")),
        _ => {
            return Err(OAuthError::new("unsupported_grant_type", format!("grant_type {grant_type} is not supported")));
        }
    };
    Ok((no_store(), axum::Json(response)).into_response())
}

/// Whether `verifier` matches an S256 `challenge` (RFC 7636 §4.6).
fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// Whether `verifier` has the RFC 7636 §4.1 shape: 43–128 unreserved characters.
fn pkce_verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Authorization code grant (RFC 6749 §4.1.3) with PKCE verification (RFC 7636 §4.5–4.6).
/// The code is consumed by the first attempt, successful or not.
fn authorization_code(state: &SandboxState, form: &HashMap<String, String>) -> Result<serde_json::Value, OAuthError> {
    let code = form.get("code").ok_or_else(|| OAuthError::invalid_request("missing code"))?;
    let grant = state
        .stores()
        .codes
        .remove(&token_hash(code))
        .ok_or_else(|| OAuthError::invalid_grant("unknown, expired or already used code"))?;
    if grant.client_id != state.idp_client.client_id {
        return Err(OAuthError::invalid_grant("code was issued to another client"));
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    let verifier =
        form.get("code_verifier").ok_or_else(|| OAuthError::invalid_grant("missing code_verifier (PKCE)"))?;
    if !pkce_verifier_well_formed(verifier) {
        return Err(OAuthError::invalid_grant("code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1)"));
    }
    if !pkce_s256_matches(verifier, &grant.code_challenge) {
        return Err(OAuthError::invalid_grant("code_verifier does not match code_challenge (PKCE S256)"));
    }
    tracing::info!(user = grant.user.username, "idp: code redeemed");
    issue_tokens(state, grant.user, &grant.scopes, grant.auth_time, grant.nonce, grant.acr)
}

/// Refresh token grant (RFC 6749 §6): a new ID token (without `nonce`, OIDC Core
/// §12.2) and access token; the refresh token is rotated (RFC 9700 §4.14.2).
fn refresh_token(state: &SandboxState, form: &HashMap<String, String>) -> Result<serde_json::Value, OAuthError> {
    let token = form.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("missing refresh_token"))?;
    let grant = state
        .stores()
        .refresh_tokens
        .remove(&token_hash(token))
        .ok_or_else(|| OAuthError::invalid_grant("unknown, expired or revoked refresh token"))?;
    if grant.client_id != state.idp_client.client_id {
        return Err(OAuthError::invalid_grant("refresh token was issued to another client"));
    }
    let mut scopes = grant.scopes.clone();
    if let Some(requested) = form.get("scope") {
        let requested = split_scope(requested);
        if let Some(extra) = requested.iter().find(|s| !grant.scopes.contains(s)) {
            return Err(OAuthError::new("invalid_scope", format!("scope {extra} was not part of the original grant")));
        }
        scopes = requested;
        // Keep offline_access so the rotated refresh token is still issued.
        if grant.scopes.iter().any(|s| s == "offline_access") && !scopes.iter().any(|s| s == "offline_access") {
            scopes.push("offline_access".to_owned());
        }
    }
    tracing::info!(user = grant.user.username, "idp: refresh token rotated");
    state.stores().count("refresh");
    let mut response = issue_tokens(state, grant.user, &scopes, grant.auth_time, None, grant.acr)?;
    if state.knobs.get().refresh_omits_id_token
        && let Some(fields) = response.as_object_mut()
    {
        fields.remove("id_token");
    }
    Ok(response)
}

/// Signs an ID token for `user` addressed to the IdP's client (OIDC Core §2).
pub(crate) fn id_token_for(
    state: &SandboxState,
    user: &DemoUser,
    auth_time: i64,
    nonce: Option<String>,
    acr: Option<String>,
) -> Result<String, String> {
    state.key.sign(TYP_JWT, &id_token_claims(state, user, auth_time, nonce, acr))
}

/// The claims of an ID token for `user` (OIDC Core §2), issued now.
fn id_token_claims(
    state: &SandboxState,
    user: &DemoUser,
    auth_time: i64,
    nonce: Option<String>,
    acr: Option<String>,
) -> IdTokenClaims {
    let now = state.now();
    IdTokenClaims {
        iss: state.idp_issuer(),
        sub: user.subject(),
        aud: state.idp_client.client_id.clone(),
        exp: now + state.knobs.get().id_token_ttl_secs as i64,
        iat: now,
        auth_time,
        nonce,
        acr,
        email: user.email.to_owned(),
        email_verified: true,
        name: user.name.to_owned(),
        preferred_username: user.username.to_owned(),
        groups: user.groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// An ID token with one injected fault (see [`crate::IdTokenFault`]).
fn faulty_id_token(
    state: &SandboxState,
    user: &DemoUser,
    auth_time: i64,
    nonce: Option<String>,
    fault: crate::IdTokenFault,
) -> Result<String, String> {
    use crate::IdTokenFault::*;
    let now = state.now();
    let mut claims = id_token_claims(state, user, auth_time, nonce, None);
    match fault {
        BadSignature => return crate::jwt::SigningKeyPair::generate()?.sign(TYP_JWT, &claims),
        WrongNonce => claims.nonce = Some("not-the-nonce-you-sent".to_owned()),
        WrongAudience => claims.aud = "some-other-client".to_owned(),
        Expired => {
            claims.iat = now - 7200;
            claims.exp = now - 3600;
        }
    }
    state.key.sign(TYP_JWT, &claims)
}

/// Mints the OIDC token response (OIDC Core §3.1.3.3).
fn issue_tokens(
    state: &SandboxState,
    user: &'static DemoUser,
    scopes: &[String],
    auth_time: i64,
    nonce: Option<String>,
    acr: Option<String>,
) -> Result<serde_json::Value, OAuthError> {
    let knobs = state.knobs.get();
    let now = state.now();
    let id_token = match knobs.id_token_fault {
        None => id_token_for(state, user, auth_time, nonce, acr.clone()),
        Some(fault) => faulty_id_token(state, user, auth_time, nonce, fault),
    }
    .map_err(OAuthError::server_error)?;
    let access_token = random_token();
    state.issued(&id_token);
    state.issued(&access_token);
    let mut response = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": knobs.idp_access_token_ttl_secs,
        "id_token": id_token,
        "scope": scopes.join(" "),
    });
    if knobs.issue_refresh_tokens && scopes.iter().any(|s| s == "offline_access") {
        let refresh = random_token();
        state.issued(&refresh);
        state.stores().refresh_tokens.insert(
            token_hash(&refresh),
            RefreshGrant {
                client_id: state.idp_client.client_id.clone(),
                scopes: scopes.to_vec(),
                user,
                auth_time,
                acr,
                expires_at: now + knobs.refresh_token_ttl_secs as i64,
            },
        );
        response["refresh_token"] = refresh.into();
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_verifier_well_formed(verifier));
        assert!(pkce_s256_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_s256_matches("x", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_verifier_well_formed("short"));
    }
}
