//! Proof that a connector really works: an MCP `initialize` over Streamable HTTP with the
//! access token (MCP 2025-11-25 basic/lifecycle and transports), through the official Rust SDK
//! `rmcp` rather than hand-written JSON-RPC.
//!
//! The check sits behind the [`McpProbe`] trait so engine unit tests can inject an answer.

use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use url::Url;

use crate::redact::scrub;
use crate::secret::AccessToken;

/// What the MCP server said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerInfo {
    pub name: String,
    pub version: String,
    pub protocol_version: String,
}

/// Why the MCP server did not accept us.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpCheckError {
    #[error("the MCP server rejected the access token (HTTP 401/403)")]
    Unauthorized,
    #[error("the MCP server did not answer `initialize` within {0} s")]
    Timeout(u64),
    #[error("the MCP server failed the `initialize` handshake: {0}")]
    Failed(String),
}

impl McpCheckError {
    pub fn code(&self) -> &'static str {
        match self {
            McpCheckError::Unauthorized => "mcp-unauthorized",
            McpCheckError::Timeout(_) => "mcp-timeout",
            McpCheckError::Failed(_) => "mcp-failed",
        }
    }
}

/// Checks one connector's MCP server with a token.
pub trait McpProbe: Send + Sync + std::fmt::Debug {
    fn check<'a>(
        &'a self,
        mcp_url: &'a Url,
        token: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>>;
}

/// The product's probe: rmcp's Streamable HTTP client on our reqwest client.
#[derive(Debug, Clone)]
pub struct RmcpProbe {
    client: reqwest::Client,
    timeout: Duration,
}

impl RmcpProbe {
    pub fn new(client: reqwest::Client, timeout: Duration) -> Self {
        RmcpProbe { client, timeout }
    }

    async fn run(&self, mcp_url: &Url, token: &AccessToken) -> Result<McpServerInfo, McpCheckError> {
        crate::url_policy::check_endpoint_url(mcp_url).map_err(|e| McpCheckError::Failed(e.to_string()))?;
        let config = StreamableHttpClientTransportConfig::with_uri(mcp_url.as_str()).auth_header(token.secret());
        let transport = StreamableHttpClientTransport::with_client(self.client.clone(), config);
        let service = match tokio::time::timeout(self.timeout, ().serve(transport)).await {
            Err(_) => return Err(McpCheckError::Timeout(self.timeout.as_secs())),
            Ok(Err(e)) => {
                if e.auth_challenge().is_some() {
                    return Err(McpCheckError::Unauthorized);
                }
                let msg = e.to_string();
                if msg.contains("401") || msg.contains("403") || msg.to_ascii_lowercase().contains("auth required") {
                    return Err(McpCheckError::Unauthorized);
                }
                return Err(McpCheckError::Failed(scrub(&msg, 200)));
            }
            Ok(Ok(s)) => s,
        };
        let info = service.peer_info().map(|i| McpServerInfo {
            name: i.server_info.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            version: i.server_info.as_ref().map(|s| s.version.clone()).unwrap_or_default(),
            protocol_version: i.protocol_version.to_string(),
        });
        let _ = service.cancel().await;
        info.ok_or_else(|| McpCheckError::Failed("no server information after initialize".into()))
    }
}

impl McpProbe for RmcpProbe {
    fn check<'a>(
        &'a self,
        mcp_url: &'a Url,
        token: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(self.run(mcp_url, token))
    }
}
