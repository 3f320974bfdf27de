//! Token exchange of an ID token for an ID-JAG (leg 2 of the flow).
//!
//! RFC 8693 §2.1 request / §2.2 response, profiled by
//! draft-ietf-oauth-identity-assertion-authz-grant-04 §4.3 (§4.3.3 processing rules): `requested_token_type` is
//! the ID-JAG type, `audience` is the resource AS issuer (REQUIRED), `resource` the
//! MCP server. This is where the enterprise decides entitlement: a user whose groups
//! are not assigned to the connector gets `access_denied`.

use std::collections::HashMap;

use serde::Serialize;

use super::token::IdTokenClaims;
use super::{STEP_UP_ACR, STEP_UP_MAX_AGE_SECS, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_REFRESH_TOKEN};
use crate::jwt::{TYP_ID_JAG, VerifyError};
use crate::oauth::{OAuthError, split_scope, token_hash};
use crate::state::{LEEWAY_SECS, SandboxState};
use crate::users::{DemoUser, find_by_subject, is_entitled};

/// Claims of an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant-04 §3.1).
#[derive(Debug, Serialize)]
struct IdJagClaims {
    iss: String,
    sub: String,
    aud: String,
    client_id: String,
    jti: String,
    exp: i64,
    iat: i64,
    resource: String,
    scope: String,
    email: String,
    auth_time: i64,
}

/// Verifies a `subject_token` as an ID token this IdP issued to the requesting client.
/// Failures are `invalid_request` (RFC 8693 §2.2.2).
fn verify_subject_token(state: &SandboxState, token: &str) -> Result<IdTokenClaims, OAuthError> {
    let bad = |why: String| OAuthError::invalid_request(format!("subject_token rejected: {why}"));
    let (header, claims): (_, IdTokenClaims) = state.key.verify(token).map_err(|e| match e {
        VerifyError::Claims(_) => bad("not an ID token".to_owned()),
        e => bad(e.to_string()),
    })?;
    if header.typ.as_deref() == Some(TYP_ID_JAG) {
        return Err(bad("an ID-JAG is not an ID token".to_owned()));
    }
    if claims.iss != state.idp_issuer() {
        return Err(bad("iss is not this IdP".to_owned()));
    }
    if claims.aud != state.idp_client.client_id {
        return Err(bad("aud is not the requesting client".to_owned()));
    }
    if claims.exp + LEEWAY_SECS <= state.now() {
        return Err(bad("expired".to_owned()));
    }
    Ok(claims)
}

/// Verifies a `subject_token` as a live refresh token this IdP issued to the requesting
/// client, as a refresh grant would (RFC 6749 §6) but without spending it: the refresh token
/// stays valid and is not rotated (the ID-JAG draft says the exchange SHOULD NOT return a
/// `refresh_token`). Gives the user and the time they signed in.
fn verify_refresh_subject(state: &SandboxState, token: &str) -> Result<Subject, OAuthError> {
    if !state.knobs.get().refresh_token_subject {
        state.stores().count("exchange-refresh-token-refused");
        return Err(OAuthError::invalid_request(format!(
            "subject_token_type must be {TOKEN_TYPE_ID_TOKEN} (sandbox knob refresh_token_subject is off)"
        )));
    }
    let now = state.now();
    let stores = state.stores();
    let grant = stores
        .refresh_tokens
        .get(&token_hash(token))
        .ok_or_else(|| OAuthError::invalid_grant("subject_token: unknown, expired or revoked refresh token"))?;
    if grant.client_id != state.idp_client.client_id {
        return Err(OAuthError::invalid_grant("subject_token: refresh token was issued to another client"));
    }
    if grant.expires_at <= now {
        return Err(OAuthError::invalid_grant("subject_token: refresh token expired"));
    }
    Ok(Subject { user: grant.user, auth_time: grant.auth_time, acr: grant.acr.clone() })
}

/// Who the subject token stands for, and how they signed in.
struct Subject {
    user: &'static DemoUser,
    auth_time: i64,
    acr: Option<String>,
}

/// Whether the sign-in behind the subject meets a connector's step-up demand: the stronger
/// class ([`STEP_UP_ACR`]) within [`STEP_UP_MAX_AGE_SECS`] (RFC 9470 §3's two demands).
fn meets_step_up(state: &SandboxState, subject: &Subject) -> bool {
    subject.acr.as_deref() == Some(STEP_UP_ACR) && state.now() - subject.auth_time <= STEP_UP_MAX_AGE_SECS as i64
}

/// Token exchange (RFC 8693 §2.1) issuing an ID-JAG; the client is already authenticated.
pub(super) fn token_exchange(
    state: &SandboxState,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let param = |k: &str| form.get(k).map(String::as_str);
    if param("requested_token_type") != Some(TOKEN_TYPE_ID_JAG) {
        return Err(OAuthError::invalid_request(format!("requested_token_type must be {TOKEN_TYPE_ID_JAG}")));
    }
    let subject_token = param("subject_token").ok_or_else(|| OAuthError::invalid_request("missing subject_token"))?;
    let subject = match param("subject_token_type") {
        Some(TOKEN_TYPE_ID_TOKEN) => {
            let id_token = verify_subject_token(state, subject_token)?;
            let user = find_by_subject(&id_token.sub)
                .ok_or_else(|| OAuthError::invalid_request("subject_token names an unknown user"))?;
            Subject { user, auth_time: id_token.auth_time, acr: id_token.acr }
        }
        Some(TOKEN_TYPE_REFRESH_TOKEN) => verify_refresh_subject(state, subject_token)?,
        _ => {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type must be {TOKEN_TYPE_ID_TOKEN} or {TOKEN_TYPE_REFRESH_TOKEN}"
            )));
        }
    };

    let audience = param("audience")
        .ok_or_else(|| OAuthError::invalid_request("audience (the authorization server issuer) is required"))?;
    let target = Target::find(state, audience)
        .ok_or_else(|| OAuthError::new("invalid_target", "audience is not a known authorization server"))?;
    let id = target.id.as_str();
    if let Some(resource) = param("resource")
        && resource.trim_end_matches('/') != target.mcp_url.trim_end_matches('/')
    {
        return Err(OAuthError::new("invalid_target", format!("resource is not the MCP server of {id}")));
    }
    if state.knobs.get().step_up_required.contains(id) && !meets_step_up(state, &subject) {
        return Err(OAuthError {
            max_age: Some(STEP_UP_MAX_AGE_SECS),
            acr_values: Some(STEP_UP_ACR.to_owned()),
            ..OAuthError::new(
                "insufficient_user_authentication",
                format!("{id} requires a recent sign-in with {STEP_UP_ACR} (sandbox knob step_up_required)"),
            )
        });
    }
    let (user, auth_time) = (subject.user, subject.auth_time);
    let unassigned = state.knobs.get().unassigned.get(user.username).is_some_and(|ids| ids.contains(id));
    if unassigned || !is_entitled(user, id, target.everyone) {
        tracing::info!(user = user.username, connector = id, "idp: not entitled");
        return Err(OAuthError::new("access_denied", format!("user is not assigned to {id}")));
    }
    let scopes: Vec<String> = match param("scope") {
        None => target.scopes.clone(),
        Some(requested) => {
            let granted: Vec<String> =
                split_scope(requested).into_iter().filter(|s| target.scopes.contains(s)).collect();
            if granted.is_empty() && !target.scopes.is_empty() {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("none of the requested scopes is available for {id}"),
                ));
            }
            granted
        }
    };

    let ttl = state.knobs.get().id_jag_ttl_secs;
    let now = state.now();
    let claims = IdJagClaims {
        iss: state.idp_issuer(),
        sub: user.subject(),
        aud: target.as_issuer.clone(),
        client_id: target.client_id.clone(),
        jti: uuid::Uuid::new_v4().to_string(),
        exp: now + ttl as i64,
        iat: now,
        resource: target.mcp_url.clone(),
        scope: scopes.join(" "),
        email: user.email.to_owned(),
        auth_time,
    };
    let id_jag = state.key.sign(TYP_ID_JAG, &claims).map_err(OAuthError::server_error)?;
    state.issued(&id_jag);
    tracing::info!(user = user.username, connector = id, "idp: ID-JAG issued");
    let mut stores = state.stores();
    stores.count("exchange");
    if param("subject_token_type") == Some(TOKEN_TYPE_REFRESH_TOKEN) {
        stores.count("exchange-with-refresh-token");
    }
    Ok(serde_json::json!({
        "access_token": id_jag,
        "issued_token_type": TOKEN_TYPE_ID_JAG,
        "token_type": "N_A",
        "expires_in": ttl,
        "scope": claims.scope,
    }))
}

/// What an ID-JAG is for: a hosted connector or an interop peer's.
struct Target {
    id: String,
    mcp_url: String,
    as_issuer: String,
    client_id: String,
    scopes: Vec<String>,
    /// Entitled to every user (synthetic and external connectors).
    everyone: bool,
}

impl Target {
    fn find(state: &SandboxState, audience: &str) -> Option<Target> {
        if let Some(c) = state.connector_by_issuer(audience) {
            let id = c.def.id.clone();
            return Some(Target {
                mcp_url: state.mcp_url(&id),
                as_issuer: state.as_issuer(&id),
                client_id: c.client.client_id.clone(),
                scopes: c.def.scopes.clone(),
                everyone: c.def.synthetic,
                id,
            });
        }
        let audience = audience.trim_end_matches('/');
        state.external.iter().find(|e| e.as_issuer.trim_end_matches('/') == audience).map(|e| Target {
            id: e.id.clone(),
            mcp_url: e.mcp_url.clone(),
            as_issuer: e.as_issuer.clone(),
            client_id: e.client_id.clone(),
            scopes: e.scopes.clone(),
            everyone: true,
        })
    }
}
