//! The MCP server of each connector, behind bearer-token protection.
//!
//! The server itself is the official Rust SDK's Streamable HTTP service (rmcp), in
//! stateless mode with JSON responses: each POST is answered on its own, which is all
//! a sign-in test needs. In front of it sits the resource-server check of MCP
//! authorization: no or bad token → 401 with an RFC 9728 §5.1 `WWW-Authenticate`
//! challenge (RFC 6750 §3) pointing at the protected resource metadata.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any_service;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::knobs::ConnectorFailure;
use crate::oauth::{bearer_token, token_hash};
use crate::state::SandboxState;

/// Who called the MCP server: put in the request extensions by the bearer check and
/// read back by tools through the HTTP request parts rmcp forwards.
#[derive(Debug, Clone)]
struct McpCaller {
    sub: String,
    email: String,
    scopes: Vec<String>,
}

/// The MCP server of one connector: one tool, `whoami`.
#[derive(Debug, Clone)]
struct SandboxMcp {
    connector_id: String,
    display_name: String,
}

impl SandboxMcp {
    fn whoami_tool() -> Tool {
        let schema = serde_json::json!({"type": "object", "properties": {}});
        let serde_json::Value::Object(schema) = schema else { unreachable!("literal object") };
        Tool::new("whoami", "Tells which user the access token belongs to and which connector answered.", schema)
    }
}

impl ServerHandler for SandboxMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(format!("sandbox-{}", self.connector_id), env!("CARGO_PKG_VERSION"))
                    .with_title(format!("{} (sandbox)", self.display_name)),
            )
            .with_instructions("Sandbox connector: call whoami to see who you are signed in as.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![Self::whoami_tool()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "whoami" {
            return Err(ErrorData::invalid_params(format!("unknown tool {}", request.name), None));
        }
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<McpCaller>())
            .ok_or_else(|| ErrorData::internal_error("no authenticated caller", None))?;
        let answer = serde_json::json!({
            "email": caller.email,
            "sub": caller.sub,
            "connector": self.connector_id,
            "scopes": caller.scopes,
        });
        let mut result = CallToolResult::success(vec![ContentBlock::text(answer.to_string())]);
        result.structured_content = Some(answer);
        Ok(result.into())
    }
}

/// The `WWW-Authenticate` challenge of a connector (RFC 9728 §5.1, RFC 6750 §3).
fn challenge(state: &SandboxState, id: &str, invalid_token: bool) -> Response {
    let mut value = format!("Bearer resource_metadata=\"{}\"", state.resource_metadata_url(id));
    if invalid_token {
        value.push_str(", error=\"invalid_token\"");
    }
    let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The resource-server check in front of one connector's MCP server.
async fn require_bearer(
    State((state, id)): State<(Arc<SandboxState>, String)>,
    mut request: Request,
    next: Next,
) -> Response {
    let failure = state.knobs.failure(&id);
    if failure == Some(ConnectorFailure::McpDown) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "MCP server unavailable (sandbox knob failing_connectors: mcp_down)\n",
        )
            .into_response();
    }
    let Some(token) = bearer_token(request.headers()) else {
        return challenge(&state, &id, false);
    };
    let record = state
        .stores()
        .connector_tokens
        .get(&token_hash(token))
        .filter(|t| t.connector_id == id && t.expires_at > state.now())
        .cloned();
    let Some(record) = record else {
        return challenge(&state, &id, true);
    };
    if failure == Some(ConnectorFailure::McpUnauthorized) {
        return challenge(&state, &id, true);
    }
    request.extensions_mut().insert(McpCaller { sub: record.sub, email: record.email, scopes: record.scopes });
    next.run(request).await
}

/// Cancels one rmcp service (its cancellation token type is not re-exported by rmcp).
type Canceller = Box<dyn Fn() + Send + Sync>;

/// The MCP services of all connectors; cancelled on shutdown.
#[derive(Default)]
pub(crate) struct McpServers {
    cancellation: Vec<Canceller>,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServers").field("services", &self.cancellation.len()).finish()
    }
}

impl McpServers {
    /// Adds `/connectors/{id}/mcp` for every connector to `router`.
    pub fn mount(
        &mut self,
        state: &Arc<SandboxState>,
        mut router: Router<Arc<SandboxState>>,
    ) -> Router<Arc<SandboxState>> {
        for id in &state.connector_order {
            let Some(connector) = state.connectors.get(id) else {
                continue;
            };
            let config = StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_sse_keep_alive(None);
            let token = config.cancellation_token.clone();
            self.cancellation.push(Box::new(move || token.cancel()));
            let server = SandboxMcp { connector_id: id.clone(), display_name: connector.def.display_name.clone() };
            let service = StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(NeverSessionManager::default()),
                config,
            );
            router = router.route(
                &format!("/connectors/{id}/mcp"),
                any_service(service).layer(middleware::from_fn_with_state((state.clone(), id.clone()), require_bearer)),
            );
        }
        router
    }

    /// Ends any open MCP streams.
    pub fn cancel(&self) {
        for cancel in &self.cancellation {
            cancel();
        }
    }
}
