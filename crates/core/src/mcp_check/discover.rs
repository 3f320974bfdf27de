//! MCP 2026-07-28: stateless requests. There is no `initialize` handshake; every request carries
//! the `MCP-Protocol-Version` header and the `Mcp-Method` header (the JSON-RPC method) and, in
//! `params._meta`, the same version (`io.modelcontextprotocol/protocolVersion`) and the
//! client's capabilities (`io.modelcontextprotocol/clientCapabilities`). `server/discover`
//! (which servers MUST implement) answers with the versions the server speaks, its capabilities
//! and, in `_meta`, its information. A server refuses headers that disagree with the body (HTTP
//! 400, JSON-RPC -32020; the conformance suite's server also refuses a missing version header
//! so, while the MCP Python SDK serves such a request as an earlier revision), `_meta` without
//! those keys (-32602), and a version it does not speak (HTTP 400, -32022, with
//! `data.supported`).
//!
//! The check asks the server this way first, as a client offers its latest revision; a server
//! of an earlier revision (which answers with an error, a 404 or anything but a discover result)
//! gets the `initialize` handshake of the revision it names, or of 2025-11-25.

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use url::Url;

use super::answer::read_message;
use super::{
    EMA_EXTENSION, HttpProbe, LEGACY_VERSIONS, McpCheckError, McpServerInfo, PROTOCOL_VERSION, VERSION_HEADER, failed,
    transport_failure,
};
use crate::redact::scrub;
use crate::secret::AccessToken;

/// `_meta` key of the request's protocol version.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities.
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the server's information in a discover result.
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// JSON-RPC error: the server does not speak the requested version.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// JSON-RPC error: the request's headers disagree with its body.
const HEADER_MISMATCH: i64 = -32020;
/// The header naming the request's JSON-RPC method (MCP 2026-07-28).
pub(super) const METHOD_HEADER: &str = "mcp-method";
/// The id of the discover request.
const DISCOVER_ID: u64 = 0;

/// What `server/discover` found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Discovered {
    /// The server speaks [`PROTOCOL_VERSION`] and accepted the token.
    Stateless(McpServerInfo),
    /// A server of an earlier revision: the handshake of this one.
    Handshake(&'static str),
}

/// The capabilities EMA declares: only the enterprise-managed-authorization extension.
pub(super) fn client_capabilities() -> Value {
    json!({ "extensions": { EMA_EXTENSION: {} } })
}

/// The `server/discover` request of MCP 2026-07-28.
pub(super) fn discover_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": DISCOVER_ID,
        "method": "server/discover",
        "params": {
            "_meta": {
                META_PROTOCOL_VERSION: PROTOCOL_VERSION,
                META_CLIENT_CAPABILITIES: client_capabilities(),
            }
        },
    })
}

impl HttpProbe {
    /// `server/discover` with the token; what the answer says of the server's revision.
    pub(super) async fn discover(&self, mcp_url: &Url, token: &AccessToken) -> Result<Discovered, McpCheckError> {
        let header = vec![
            (VERSION_HEADER, HeaderValue::from_static(PROTOCOL_VERSION)),
            (METHOD_HEADER, HeaderValue::from_static("server/discover")),
        ];
        let response = self.post(mcp_url, token, &discover_request(), Some(header)).await?;
        let status = response.status();
        if !(status.is_success() || status.as_u16() == 400) {
            // 404 or 405 for a method or endpoint it does not know, 5xx: the handshake says more.
            return Ok(Discovered::Handshake(LEGACY_VERSIONS[0]));
        }
        match read_message(response, DISCOVER_ID, "server/discover", |e| transport_failure(mcp_url, self.timeout, e))
            .await
        {
            Ok(answer) => judge(&answer),
            Err(McpCheckError::Unreachable { reason, network }) => Err(McpCheckError::Unreachable { reason, network }),
            // Not a JSON-RPC answer to it: a server of an earlier revision.
            Err(_) => Ok(Discovered::Handshake(LEGACY_VERSIONS[0])),
        }
    }
}

/// What a JSON-RPC answer to `server/discover` says.
pub(super) fn judge(answer: &Value) -> Result<Discovered, McpCheckError> {
    if let Some(error) = answer.get("error") {
        if error.get("code").and_then(Value::as_i64) == Some(HEADER_MISMATCH) {
            // Only a 2026-07-28 server says this, about headers EMA sent: going on with the
            // handshake works, but the mismatch is ours to fix, so it is said in the log.
            let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
            tracing::warn!(
                server_said = %scrub(message, 200),
                "an MCP 2026-07-28 server refused our request's headers; falling back to initialize"
            );
        }
        if error.get("code").and_then(Value::as_i64) != Some(UNSUPPORTED_PROTOCOL_VERSION) {
            // -32601 (no such method), -32600, a missing session: a server of an earlier revision.
            return Ok(Discovered::Handshake(LEGACY_VERSIONS[0]));
        }
        let supported = versions(error.pointer("/data/supported"));
        return match LEGACY_VERSIONS.iter().find(|v| supported.iter().any(|s| s == *v)) {
            Some(v) => Ok(Discovered::Handshake(v)),
            // Nothing named, or only the version we asked for (then it was our request it did
            // not like): the handshake of the latest earlier revision.
            None if supported.is_empty() || supported.iter().any(|s| s == PROTOCOL_VERSION) => {
                Ok(Discovered::Handshake(LEGACY_VERSIONS[0]))
            }
            None => Err(failed(&format!(
                "speaks only MCP {}, which EMA does not (it speaks {PROTOCOL_VERSION}, {})",
                supported.iter().take(5).map(|s| scrub(s, 40)).collect::<Vec<_>>().join(", "),
                LEGACY_VERSIONS.join(", ")
            ))),
        };
    }
    let result = &answer["result"];
    let supported = versions(result.get("supportedVersions"));
    if !supported.iter().any(|v| v == PROTOCOL_VERSION) {
        return Ok(match LEGACY_VERSIONS.iter().find(|v| supported.iter().any(|s| s == *v)) {
            Some(v) => Discovered::Handshake(v),
            None => Discovered::Handshake(LEGACY_VERSIONS[0]),
        });
    }
    let info = result.pointer(&format!("/_meta/{}", META_SERVER_INFO.replace('/', "~1")));
    let field =
        |name: &str, max: usize| scrub(info.and_then(|i| i.get(name)).and_then(Value::as_str).unwrap_or_default(), max);
    Ok(Discovered::Stateless(McpServerInfo {
        name: field("name", 80),
        version: field("version", 40),
        protocol_version: PROTOCOL_VERSION.to_string(),
    }))
}

/// The version strings of a JSON array (anything else is left out).
fn versions(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).take(32).map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_version_and_the_extension_in_meta() {
        let r = discover_request();
        assert_eq!(r["method"], "server/discover");
        assert_eq!(r["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
        assert_eq!(
            r["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]["extensions"],
            json!({"io.modelcontextprotocol/enterprise-managed-authorization": {}})
        );
    }

    #[test]
    fn a_discover_result_with_our_version_is_the_answer() {
        let answer = json!({"jsonrpc": "2.0", "id": 0, "result": {
            "supportedVersions": ["2026-07-28"], "capabilities": {},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "linear", "version": "3.1"}}
        }});
        assert_eq!(
            judge(&answer).unwrap(),
            Discovered::Stateless(McpServerInfo {
                name: "linear".into(),
                version: "3.1".into(),
                protocol_version: "2026-07-28".into()
            })
        );
    }

    #[test]
    fn earlier_servers_get_the_handshake_of_the_best_version_both_speak() {
        let no_method = json!({"id": 0, "error": {"code": -32601, "message": "Method not found"}});
        assert_eq!(judge(&no_method).unwrap(), Discovered::Handshake("2025-11-25"));
        let unsupported = json!({"id": 0, "error": {"code": -32022, "message": "Unsupported protocol version",
            "data": {"supported": ["2025-06-18", "2025-03-26"], "requested": "2026-07-28"}}});
        assert_eq!(judge(&unsupported).unwrap(), Discovered::Handshake("2025-06-18"));
        let older_list = json!({"id": 0, "result": {"supportedVersions": ["2025-03-26"]}});
        assert_eq!(judge(&older_list).unwrap(), Discovered::Handshake("2025-03-26"));
    }

    #[test]
    fn a_server_of_only_unknown_versions_is_named_without_echoing_much() {
        let future = json!({"id": 0, "error": {"code": -32022, "message": "x",
            "data": {"supported": ["2031-01-01", "x".repeat(500)]}}});
        let e = judge(&future).unwrap_err().to_string();
        assert!(e.contains("2031-01-01") && e.contains("2026-07-28"), "{e}");
        assert!(e.len() < 400, "{e}");
    }
}
