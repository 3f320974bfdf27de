//! Proof that a connector really works: one authenticated exchange with its MCP server over
//! Streamable HTTP with the access token.
//!
//! - MCP 2026-07-28 first ([`discover`]): the stateless `server/discover` request, with the
//!   `MCP-Protocol-Version` header and the version and capabilities in `_meta`.
//! - A server of an earlier revision gets the lifecycle's initialization (MCP 2025-11-25,
//!   basic/lifecycle "Initialization" and basic/transports "Streamable HTTP"): `initialize`,
//!   then `notifications/initialized` with the `MCP-Protocol-Version` header, then the session
//!   closed.
//!
//! Either way the client declares the extension `io.modelcontextprotocol/enterprise-managed-
//! authorization` in its capabilities' `extensions`.
//!
//! Written here rather than through the MCP SDK (rmcp, which the sandbox's servers and the
//! conformance adapter use): the check is three requests, and the SDK with its dependencies was
//! 0.9 MiB of the idle tray's memory (docs/tray.md). Interop is tested against rmcp's server
//! (the sandbox org) and the TypeScript SDK's (the MCP conformance suite, whose adapter runs this
//! check); hostile answers in tests/hostile_servers/.
//!
//! The check sits behind the [`McpProbe`] trait so engine unit tests can inject an answer.

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use crate::http::{NetworkFailure, display_url};
use crate::redact::scrub;
use crate::secret::AccessToken;
use crate::status::ErrorCode;

mod answer;
mod discover;

use answer::read_answer;

/// The revision we ask for first (the client offers the latest it supports).
pub const PROTOCOL_VERSION: &str = "2026-07-28";
/// The revisions with the `initialize` handshake whose answer we accept, latest first: those
/// with the Streamable HTTP transport, and the first revision, which servers on this transport
/// still negotiate down to.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Every revision EMA speaks, latest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The extension EMA implements, declared in the client's capabilities (`extensions`).
pub const EMA_EXTENSION: &str = "io.modelcontextprotocol/enterprise-managed-authorization";
/// The session header (basic/transports, "Session Management").
const SESSION_HEADER: &str = "mcp-session-id";
/// The version header on requests after initialization (basic/transports, "Protocol Version Header").
const VERSION_HEADER: &str = "mcp-protocol-version";

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
    /// No HTTP answer: the transport's words and the kind of network failure it classified
    /// (`ema doctor` gives its advice from the kind). The same code as `Failed`.
    #[error("the MCP server failed the `initialize` handshake: {reason}")]
    Unreachable { reason: String, network: Option<NetworkFailure> },
}

impl McpCheckError {
    pub fn code(&self) -> ErrorCode {
        match self {
            McpCheckError::Unauthorized => ErrorCode::McpUnauthorized,
            McpCheckError::Timeout(_) => ErrorCode::McpTimeout,
            McpCheckError::Failed(_) | McpCheckError::Unreachable { .. } => ErrorCode::McpFailed,
        }
    }

    /// The network failure behind this error, when it is one.
    pub fn network_failure(&self) -> Option<NetworkFailure> {
        match self {
            McpCheckError::Unreachable { network, .. } => *network,
            _ => None,
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

/// The product's probe, on our reqwest client (its redirect, timeout and TLS rules).
#[derive(Debug, Clone)]
pub struct HttpProbe {
    http: crate::http::HttpTransport,
    timeout: Duration,
}

impl HttpProbe {
    pub fn new(http: &crate::http::HttpTransport, timeout: Duration) -> Self {
        HttpProbe { http: http.clone(), timeout }
    }

    async fn run(&self, mcp_url: &Url, token: &AccessToken) -> Result<McpServerInfo, McpCheckError> {
        crate::url_policy::check_endpoint_url(mcp_url).map_err(|e| McpCheckError::Failed(e.to_string()))?;
        let (info, session) = tokio::time::timeout(self.timeout, self.handshake(mcp_url, token))
            .await
            .map_err(|_| McpCheckError::Timeout(self.timeout.as_secs()))??;
        // The session is only for this check: end it (basic/transports, "Session Management";
        // a server may answer 405, and nothing depends on the answer).
        if let Some(session) = session {
            let end = self
                .http
                .client_for(mcp_url)
                .delete(mcp_url.as_str())
                .bearer_auth(token.secret())
                .header(SESSION_HEADER, session)
                .header(VERSION_HEADER, &info.protocol_version)
                .send();
            let _ = tokio::time::timeout(self.timeout, end).await;
        }
        Ok(info)
    }

    /// The latest revision's request, else the handshake of the revision the server speaks
    /// (with the session it opened, if any).
    async fn handshake(
        &self,
        mcp_url: &Url,
        token: &AccessToken,
    ) -> Result<(McpServerInfo, Option<HeaderValue>), McpCheckError> {
        match self.discover(mcp_url, token).await? {
            discover::Discovered::Stateless(info) => Ok((info, None)),
            discover::Discovered::Handshake(version) => self.initialize(mcp_url, token, version).await,
        }
    }

    /// `initialize`, then `notifications/initialized`: the server's information and its session id.
    async fn initialize(
        &self,
        mcp_url: &Url,
        token: &AccessToken,
        version: &str,
    ) -> Result<(McpServerInfo, Option<HeaderValue>), McpCheckError> {
        let request = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": discover::client_capabilities(),
                "clientInfo": { "name": "ema", "title": "EMA", "version": env!("CARGO_PKG_VERSION") },
            },
        });
        let response = self.post(mcp_url, token, &request, None).await?;
        // Visible ASCII only (basic/transports, "Session Management"); anything else is not echoed.
        let session = match response.headers().get(SESSION_HEADER) {
            Some(v) if !v.is_empty() && v.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)) => Some(v.clone()),
            Some(_) => return Err(failed("sent an Mcp-Session-Id that is not visible ASCII")),
            None => None,
        };
        let answer = read_answer(response, 1, "initialize", |e| transport_failure(mcp_url, self.timeout, e)).await?;
        let info = server_info(&answer)?;

        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let mut headers =
            vec![(VERSION_HEADER, HeaderValue::from_str(&info.protocol_version).expect("checked version"))];
        if let Some(session) = &session {
            headers.push((SESSION_HEADER, session.clone()));
        }
        let response = self.post(mcp_url, token, &initialized, Some(headers)).await?;
        // A notification the server accepts gets 202 Accepted and no body (basic/transports,
        // "Sending Messages to the Server").
        if !response.status().is_success() {
            return Err(failed(&format!("refused notifications/initialized with HTTP {}", response.status())));
        }
        Ok((info, session))
    }

    async fn post(
        &self,
        mcp_url: &Url,
        token: &AccessToken,
        body: &Value,
        headers: Option<Vec<(&'static str, HeaderValue)>>,
    ) -> Result<reqwest::Response, McpCheckError> {
        let mut request = self
            .http
            .client_for(mcp_url)
            .post(mcp_url.as_str())
            .bearer_auth(token.secret())
            // Both, as a client must (basic/transports, "Sending Messages to the Server").
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        for (name, value) in headers.into_iter().flatten() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| transport_failure(mcp_url, self.timeout, &e))?;
        match response.status().as_u16() {
            401 | 403 => Err(McpCheckError::Unauthorized),
            _ => Ok(response),
        }
    }
}

impl McpProbe for HttpProbe {
    fn check<'a>(
        &'a self,
        mcp_url: &'a Url,
        token: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(self.run(mcp_url, token))
    }
}

fn failed(what: &str) -> McpCheckError {
    McpCheckError::Failed(format!("the server {what}"))
}

/// A transport error in the transport's own words (timeouts, TLS and connection failures told
/// apart), with the URL shown without its query or user info.
fn transport_failure(mcp_url: &Url, timeout: Duration, e: &reqwest::Error) -> McpCheckError {
    let e = crate::http::classify(&display_url(mcp_url), timeout, e);
    McpCheckError::Unreachable { reason: e.to_string(), network: e.network_failure() }
}

/// The server's information from its `InitializeResult` (basic/lifecycle, "Initialization").
fn server_info(answer: &Value) -> Result<McpServerInfo, McpCheckError> {
    if let Some(error) = answer.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
        let code = error.get("code").and_then(Value::as_i64).unwrap_or_default();
        return Err(failed(&format!("refused initialize: {} (JSON-RPC error {code})", scrub(message, 200))));
    }
    let result = &answer["result"];
    let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
    if !LEGACY_VERSIONS.contains(&version) {
        return Err(failed(&format!(
            "answered initialize with MCP version `{}`, which EMA does not speak (it speaks {})",
            scrub(version, 40),
            SUPPORTED_VERSIONS.join(", ")
        )));
    }
    let Some(name) = result.pointer("/serverInfo/name").and_then(Value::as_str) else {
        return Err(failed("answered initialize without serverInfo"));
    };
    Ok(McpServerInfo {
        name: scrub(name, 80),
        version: scrub(result.pointer("/serverInfo/version").and_then(Value::as_str).unwrap_or_default(), 40),
        protocol_version: version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_info_needs_a_version_we_speak_and_a_name() {
        let ok = json!({"id": 1, "result": {"protocolVersion": "2025-06-18", "serverInfo": {"name": "linear", "version": "1.2"}}});
        assert_eq!(
            server_info(&ok).unwrap(),
            McpServerInfo { name: "linear".into(), version: "1.2".into(), protocol_version: "2025-06-18".into() }
        );
        let future = json!({"id": 1, "result": {"protocolVersion": "2031-01-01", "serverInfo": {"name": "x"}}});
        let e = server_info(&future).unwrap_err().to_string();
        assert!(e.contains("`2031-01-01`") && e.contains("2025-11-25"), "{e}");
        let nameless = json!({"id": 1, "result": {"protocolVersion": "2025-11-25"}});
        assert!(server_info(&nameless).unwrap_err().to_string().contains("serverInfo"));
        let refused = json!({"id": 1, "error": {"code": -32602, "message": "Unsupported protocol version"}});
        let e = server_info(&refused).unwrap_err().to_string();
        assert!(e.contains("Unsupported protocol version") && e.contains("-32602"), "{e}");
    }
}
