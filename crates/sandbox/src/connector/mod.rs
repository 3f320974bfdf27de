//! The connectors: for each, an MCP server and the authorization server that guards it.
//!
//! Each connector stands in for a SaaS vendor (Linear, Figma, ...) that trusts the
//! enterprise IdP: its AS accepts ID-JAGs in an RFC 7523 JWT bearer grant (leg 3 of
//! the flow) and issues access tokens for its MCP server. Discovery follows MCP
//! authorization: RFC 9728 protected resource metadata points at the AS, whose
//! RFC 8414 metadata names the token endpoint.

mod mcp;
mod metadata;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::SandboxState;

pub(crate) use mcp::McpServers;

/// Grant type of the JWT bearer grant (RFC 7523 §2.1).
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Metadata and token routes of every connector (MCP routes come from [`McpServers`]).
pub fn router() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/.well-known/oauth-protected-resource/connectors/{id}/mcp", get(metadata::protected_resource))
        .route("/.well-known/oauth-authorization-server/connectors/{id}/as", get(metadata::authorization_server))
        // OIDC-style fallback location some clients try (issuer + /.well-known/...).
        .route("/connectors/{id}/as/.well-known/openid-configuration", get(metadata::authorization_server))
        .route("/connectors/{id}/as/token", post(token::jwt_bearer))
        .route("/connectors/{id}/as/revoke", post(token::revoke))
}
