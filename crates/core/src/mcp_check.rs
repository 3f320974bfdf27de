//! Proof that a connector really works: the MCP lifecycle's initialization over Streamable HTTP
//! with the access token (MCP 2025-11-25, basic/lifecycle "Initialization" and basic/transports
//! "Streamable HTTP"): `initialize`, then `notifications/initialized`, then the session closed.
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

use crate::http::{MAX_RESPONSE_BYTES, NetworkFailure, display_url};
use crate::redact::scrub;
use crate::secret::AccessToken;
use crate::status::ErrorCode;

/// The revision we ask for (basic/lifecycle, "Version Negotiation": the client sends the latest
/// it supports).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The revisions whose answer we accept: those with the Streamable HTTP transport, and the
/// first revision, which servers on this transport still negotiate down to.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
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
        let (info, session) = tokio::time::timeout(self.timeout, self.initialize(mcp_url, token))
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

    /// `initialize`, then `notifications/initialized`: the server's information and its session id.
    async fn initialize(
        &self,
        mcp_url: &Url,
        token: &AccessToken,
    ) -> Result<(McpServerInfo, Option<HeaderValue>), McpCheckError> {
        let request = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
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
        let answer = read_answer(response, 1, |e| transport_failure(mcp_url, self.timeout, e)).await?;
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

/// The JSON-RPC response with `id` in the answer to a POST: a JSON body or, on an event stream,
/// the first event carrying it (notifications and requests before it are skipped; the stream
/// need not end). At most [`MAX_RESPONSE_BYTES`] are read; `broke_off` words a transport error
/// while reading.
async fn read_answer(
    mut response: reqwest::Response,
    id: u64,
    broke_off: impl Fn(&reqwest::Error) -> McpCheckError,
) -> Result<Value, McpCheckError> {
    let status = response.status();
    if !status.is_success() {
        return Err(failed(&format!("answered initialize with HTTP {status}")));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let stream = match content_type.as_str() {
        "application/json" => false,
        "text/event-stream" => true,
        other => {
            return Err(failed(&format!(
                "answered initialize with content type `{}`, not JSON or an event stream",
                scrub(other, 60)
            )));
        }
    };
    let too_large = || failed(&format!("answered initialize with more than {} KiB", MAX_RESPONSE_BYTES / 1024));
    let (mut body, mut read) = (Vec::new(), 0);
    let mut events = sse::Parser::default();
    while let Some(chunk) = response.chunk().await.map_err(|e| broke_off(&e))? {
        read += chunk.len();
        if read > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        if !stream {
            body.extend_from_slice(&chunk);
            continue;
        }
        for data in events.feed(&chunk) {
            if let Some(found) = serde_json::from_str::<Value>(&data).ok().and_then(|m| response_with_id(m, id)) {
                return Ok(found);
            }
        }
    }
    if stream {
        return Err(failed("ended its event stream without answering initialize"));
    }
    let message: Value =
        serde_json::from_slice(&body).map_err(|_| failed("answered initialize with malformed JSON"))?;
    response_with_id(message, id).ok_or_else(|| failed("answered initialize with no JSON-RPC response to it"))
}

/// `message` if it is the JSON-RPC response (result or error) to request `id`.
fn response_with_id(message: Value, id: u64) -> Option<Value> {
    let is_it = |m: &Value| {
        m.get("id").and_then(Value::as_u64) == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
    };
    match message {
        Value::Array(batch) => batch.into_iter().find(is_it),
        m if is_it(&m) => Some(m),
        _ => None,
    }
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
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(failed(&format!(
            "answered with MCP version `{}`, which EMA does not speak (it speaks {})",
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

/// Server-sent events, as far as MCP needs them: the data of each event (WHATWG HTML,
/// "Server-sent events", the event stream interpretation; `event`, `id` and `retry` fields are
/// not needed to find a response and are ignored).
mod sse {
    #[derive(Debug, Default)]
    pub struct Parser {
        /// Bytes of a line not yet terminated.
        line: Vec<u8>,
        /// The data of the event being read, and whether it has any `data` field.
        data: String,
        has_data: bool,
        /// A CR ended the last chunk: an LF starting the next one belongs to it.
        after_cr: bool,
        started: bool,
    }

    impl Parser {
        /// Feeds bytes; returns the data of each event they complete.
        pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
            let mut events = Vec::new();
            for &b in bytes {
                if std::mem::take(&mut self.after_cr) && b == b'\n' {
                    continue;
                }
                match b {
                    b'\r' | b'\n' => {
                        self.after_cr = b == b'\r';
                        let line = std::mem::take(&mut self.line);
                        if let Some(data) = self.line_done(&line) {
                            events.push(data);
                        }
                    }
                    _ => self.line.push(b),
                }
            }
            events
        }

        fn line_done(&mut self, line: &[u8]) -> Option<String> {
            let mut line = String::from_utf8_lossy(line).into_owned();
            if !std::mem::replace(&mut self.started, true) && line.starts_with('\u{feff}') {
                line.remove(0);
            }
            if line.is_empty() {
                // The blank line dispatches the event.
                let data = std::mem::take(&mut self.data);
                return std::mem::take(&mut self.has_data)
                    .then(|| data.strip_suffix('\n').unwrap_or(&data).to_string());
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            if field == "data" {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            None
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Parser;

        #[test]
        fn events_are_split_on_blank_lines_across_chunks_and_line_endings() {
            let mut p = Parser::default();
            assert!(p.feed(b"\xef\xbb\xbf: a comment\r\nevent: message\r\ndata: {\"a\"").is_empty());
            assert_eq!(p.feed(b":1}\r"), Vec::<String>::new());
            assert_eq!(p.feed(b"\n\r\n"), vec!["{\"a\":1}".to_string()]);
            assert_eq!(p.feed(b"data:x\ndata: y\n\nid: 7\n\n"), vec!["x\ny".to_string()]);
            assert_eq!(p.feed(b"data\r\rdata: z"), vec![String::new()]);
            assert_eq!(p.feed(b"\n\n"), vec!["z".to_string()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_response_with_our_id() {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}});
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert_eq!(response_with_id(note.clone(), 1), None);
        assert_eq!(response_with_id(ping, 1), None, "a request from the server with the same id is not the answer");
        assert_eq!(response_with_id(answer.clone(), 2), None);
        assert_eq!(response_with_id(json!([note, answer.clone()]), 1), Some(answer));
    }

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
