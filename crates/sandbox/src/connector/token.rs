//! A connector AS token endpoint: the JWT bearer grant with an ID-JAG (leg 3).
//!
//! RFC 7523 §2.1 (request) and §3 (assertion processing), profiled by
//! draft-ietf-oauth-identity-assertion-authz-grant-04 §4.4.1 (processing rules) and the MCP
//! enterprise-managed-authorization extension, which makes `jti` replay rejection
//! mandatory. Validation is deliberately strict and each failure names the check
//! that failed, so the product's diagnostics can be tested against it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::GRANT_JWT_BEARER;
use crate::jwt::{TYP_ID_JAG, VerifyError};
use crate::knobs::ConnectorFailure;
use crate::oauth::{OAuthError, no_store, parse_form, random_token, split_scope, token_hash};
use crate::state::{ConnectorState, ConnectorToken, LEEWAY_SECS, SandboxState};

/// `POST /connectors/{id}/as/revoke`: RFC 7009 §2.1 revocation of an access token this AS
/// issued, with the client authenticated as at the token endpoint. 200 whether or not the token
/// was known (§2.2); counted as `connector-revoke` when one was revoked.
pub(super) async fn revoke(
    State(state): State<Arc<SandboxState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let Some(connector) = state.connectors.get(&id) else {
        return Err(OAuthError::invalid_request(format!("no connector {id}")));
    };
    let form = parse_form(&headers, &body)?;
    connector.client.authenticate_at(&headers, &form, Some(&format!("{}/revoke", state.as_issuer(&id))))?;
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("missing token"))?;
    let mut stores = state.stores();
    let hash = token_hash(token);
    if stores.connector_tokens.get(&hash).is_some_and(|t| t.connector_id == id) {
        stores.connector_tokens.remove(&hash);
        stores.count("connector-revoke");
        tracing::info!(connector = id, "connector: access token revoked");
    }
    Ok(axum::http::StatusCode::OK.into_response())
}

/// `POST /connectors/{id}/as/token`.
pub(super) async fn jwt_bearer(
    State(state): State<Arc<SandboxState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let Some(connector) = state.connectors.get(&id) else {
        return Err(OAuthError::invalid_request(format!("no connector {id}")));
    };
    match state.knobs.failure(&id) {
        Some(ConnectorFailure::InvalidGrant) => {
            return Err(OAuthError::invalid_grant("grant refused (sandbox knob failing_connectors: invalid_grant)"));
        }
        Some(ConnectorFailure::ServerError) => {
            return Err(OAuthError::server_error(
                "authorization server failure (sandbox knob failing_connectors: server_error)",
            ));
        }
        Some(ConnectorFailure::EchoSecrets) => return Ok(echo_secrets(&headers, &body)),
        Some(ConnectorFailure::Markup) => {
            return Err(OAuthError::invalid_grant(
                "<a href=\"https://evil.example/login\">Your token was revoked - click here</a> <b>urgent</b> & <i>now</i>",
            ));
        }
        _ => {}
    }
    let form = parse_form(&headers, &body)?;
    connector.client.authenticate(&headers, &form)?;
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type != GRANT_JWT_BEARER {
        return Err(OAuthError::new("unsupported_grant_type", format!("only {GRANT_JWT_BEARER} is supported")));
    }
    let assertion = form.get("assertion").ok_or_else(|| OAuthError::invalid_request("missing assertion"))?;
    let claims = validate_id_jag(&state, connector, assertion, form.get("resource"))?;
    let granted = grant_scopes(&claims, form.get("scope"))?;

    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    let exp = claims["exp"].as_i64().unwrap_or_default();
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let email = claims["email"].as_str().unwrap_or_default().to_owned();
    let ttl = state.knobs.get().connector_token_ttl_secs;
    let access_token = random_token();
    state.issued(&access_token);
    {
        let mut stores = state.stores();
        // RFC 7523 §3 item 7 / MCP profile: an ID-JAG is redeemable once.
        if stores.used_jtis.contains_key(&(id.clone(), jti.clone())) {
            return Err(OAuthError::invalid_grant("jti already used (replayed assertion)"));
        }
        stores.used_jtis.insert((id.clone(), jti), exp);
        stores.count(&format!("grant:{id}"));
        stores.connector_tokens.insert(
            token_hash(&access_token),
            ConnectorToken {
                connector_id: id.clone(),
                sub,
                email,
                scopes: granted.clone(),
                expires_at: state.now() + ttl as i64,
            },
        );
    }
    tracing::info!(connector = %id, "connector: access token issued");
    let announced = state.knobs.get().announced_expires_in.get(id.as_str()).copied().unwrap_or(ttl);
    Ok((
        no_store(),
        axum::Json(serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": announced,
            "scope": granted.join(" "),
        })),
    )
        .into_response())
}

/// A careless server's refusal that repeats what it was sent: the assertion and client secret
/// in `error_description` (RFC 6749 §5.2 says it is human-readable text, so clients show it),
/// and the whole request in an extra member.
fn echo_secrets(headers: &HeaderMap, body: &[u8]) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let description = format!(
        "assertion {} refused for client_secret={} (Authorization: {authorization})",
        field("assertion"),
        field("client_secret")
    );
    let echo = String::from_utf8_lossy(body).into_owned();
    (
        axum::http::StatusCode::BAD_REQUEST,
        no_store(),
        axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": description, "echo": echo})),
    )
        .into_response()
}

/// Checks the ID-JAG (RFC 7523 §3; ID-JAG draft §5.1) and returns its claims.
/// Every failure is `invalid_grant` naming the check.
fn validate_id_jag(
    state: &SandboxState,
    connector: &ConnectorState,
    assertion: &str,
    requested_resource: Option<&String>,
) -> Result<serde_json::Map<String, Value>, OAuthError> {
    let verified = match &state.trusted_idp {
        Some(idp) => crate::jwt::verify_with_jwks(&idp.jwks, assertion),
        None => state.key.verify(assertion),
    };
    let trusted_issuer = state.trusted_idp.as_ref().map(|i| i.issuer.clone()).unwrap_or_else(|| state.idp_issuer());
    let (header, claims): (_, Value) = verified.map_err(|e| match e {
        VerifyError::Signature => {
            OAuthError::invalid_grant("signature verification failed (not signed by the trusted IdP)")
        }
        e => OAuthError::invalid_grant(format!("assertion rejected: {e}")),
    })?;
    if header.typ.as_deref() != Some(TYP_ID_JAG) {
        return Err(OAuthError::invalid_grant(format!(
            "typ must be {TYP_ID_JAG}, got {}",
            header.typ.as_deref().unwrap_or("none")
        )));
    }
    let Value::Object(claims) = claims else {
        return Err(OAuthError::invalid_grant("claims are not a JSON object"));
    };
    let string = |name: &str| claims.get(name).and_then(Value::as_str);
    let id = connector.def.id.as_str();

    if string("iss") != Some(trusted_issuer.as_str()) {
        return Err(OAuthError::invalid_grant("iss is not the trusted IdP"));
    }
    let issuer = state.as_issuer(id);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == issuer,
        Some(Value::Array(auds)) => auds.len() == 1 && auds[0].as_str() == Some(&issuer),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::invalid_grant("aud is not this authorization server's issuer"));
    }
    if string("client_id") != Some(connector.client.client_id.as_str()) {
        return Err(OAuthError::invalid_grant("client_id claim does not match the authenticated client"));
    }
    if string("sub").is_none_or(str::is_empty) {
        return Err(OAuthError::invalid_grant("missing sub"));
    }
    let mcp_url = state.mcp_url(id);
    for resource in [string("resource"), requested_resource.map(String::as_str)].into_iter().flatten() {
        if resource.trim_end_matches('/') != mcp_url {
            return Err(OAuthError::invalid_grant("resource is not this connector's MCP server"));
        }
    }
    let now = state.now();
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err(OAuthError::invalid_grant("missing exp"));
    };
    if exp + LEEWAY_SECS <= now {
        return Err(OAuthError::invalid_grant(format!(
            "assertion expired (exp is {}s in the past, leeway {LEEWAY_SECS}s)",
            now - exp
        )));
    }
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Err(OAuthError::invalid_grant("missing iat"));
    };
    if iat > now + LEEWAY_SECS {
        return Err(OAuthError::invalid_grant(format!(
            "iat is {}s in the future (leeway {LEEWAY_SECS}s): check clock skew",
            iat - now
        )));
    }
    if string("jti").is_none_or(str::is_empty) {
        return Err(OAuthError::invalid_grant("missing jti"));
    }
    Ok(claims)
}

/// The granted scopes: the intersection of the request with the ID-JAG's `scope`,
/// or the ID-JAG's scopes when the request names none (ID-JAG draft §5.1).
fn grant_scopes(
    claims: &serde_json::Map<String, Value>,
    requested: Option<&String>,
) -> Result<Vec<String>, OAuthError> {
    let asserted = split_scope(claims.get("scope").and_then(Value::as_str).unwrap_or(""));
    let Some(requested) = requested else {
        return Ok(asserted);
    };
    let granted: Vec<String> = split_scope(requested).into_iter().filter(|s| asserted.contains(s)).collect();
    if granted.is_empty() && !asserted.is_empty() {
        return Err(OAuthError::new("invalid_scope", "none of the requested scopes is in the assertion's scope"));
    }
    Ok(granted)
}
