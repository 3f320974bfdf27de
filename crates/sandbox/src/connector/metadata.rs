//! Discovery documents of a connector: RFC 9728 protected resource metadata for the
//! MCP server and RFC 8414 metadata for its authorization server.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::GRANT_JWT_BEARER;
use crate::oauth::ClientAuthMethod;
use crate::state::SandboxState;

/// Profile identifier advertised for ID-JAG support
/// (draft-ietf-oauth-identity-assertion-authz-grant-04 §7.2, `authorization_grant_profiles_supported`).
pub const ID_JAG_GRANT_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not_found",
            "error_description": format!("no connector {id} in this sandbox"),
        })),
    )
        .into_response()
}

/// `GET /.well-known/oauth-protected-resource/connectors/{id}/mcp`
/// (RFC 9728 §3, path-inserted form of §3.1).
pub(super) async fn protected_resource(State(state): State<Arc<SandboxState>>, Path(id): Path<String>) -> Response {
    let Some(connector) = state.connectors.get(&id) else {
        return not_found(&id);
    };
    axum::Json(serde_json::json!({
        "resource": state.mcp_url(&id),
        "authorization_servers": [state.as_issuer(
            state.knobs.get().resource_metadata_names_as_of.get(id.as_str()).map(String::as_str).unwrap_or(&id)
        )],
        "scopes_supported": connector.def.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": connector.def.display_name,
    }))
    .into_response()
}

/// `GET /.well-known/oauth-authorization-server/connectors/{id}/as` (RFC 8414 §3).
pub(super) async fn authorization_server(State(state): State<Arc<SandboxState>>, Path(id): Path<String>) -> Response {
    let Some(connector) = state.connectors.get(&id) else {
        return not_found(&id);
    };
    let issuer = state.as_issuer(&id);
    let method = connector.client.method;
    let mut metadata = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "grant_types_supported": [GRANT_JWT_BEARER],
        "token_endpoint_auth_methods_supported": [method.as_str()],
        "authorization_grant_profiles_supported": [ID_JAG_GRANT_PROFILE],
        "scopes_supported": connector.def.scopes,
    });
    if method == ClientAuthMethod::PrivateKeyJwt {
        // RFC 8414 §2: required when `private_key_jwt` is listed; the revocation endpoint
        // authenticates the client the same way (RFC 7009 §2.1).
        metadata["token_endpoint_auth_signing_alg_values_supported"] = serde_json::json!(["ES256"]);
        metadata["revocation_endpoint_auth_methods_supported"] = serde_json::json!([method.as_str()]);
        metadata["revocation_endpoint_auth_signing_alg_values_supported"] = serde_json::json!(["ES256"]);
    }
    axum::Json(metadata).into_response()
}
