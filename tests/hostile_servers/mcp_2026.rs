//! The MCP check against servers of MCP 2026-07-28 (stateless requests: `server/discover`, the
//! `MCP-Protocol-Version` header and the same version in `_meta` on every request), strict ones
//! that refuse anything else as the revision says (HTTP 400, JSON-RPC -32020 / -32022), and
//! servers that answer the new request badly. Servers of earlier revisions are in
//! `idp_discovery` (the `mcp_*` tests).

use super::idp_discovery::{MCP_TOKEN, McpCheckError, McpServerInfo, json_response, mcp_server, probe};
use super::*;

/// A strict 2026-07-28 server: `server/discover` with the header and `_meta` agreeing is
/// answered; anything else is refused as the revision says.
fn strict(rpc: &str) -> Response {
    match rpc {
        "server/discover" => json_response(
            StatusCode::OK,
            &[],
            &json!({"jsonrpc": "2.0", "id": 0, "result": {
                "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "resultType": "complete",
                "ttlMs": 0, "cacheScope": "private",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "strict-2026", "version": "0.4"}}}}),
        ),
        _ => json_response(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32020, "message": "Missing MCP-Protocol-Version header"}}),
        ),
    }
}

#[tokio::test]
async fn a_strict_2026_server_is_checked_with_one_stateless_request_carrying_the_version_twice() {
    let (server, log) = mcp_server(strict).await;
    let info = probe(&server, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        info,
        McpServerInfo { name: "strict-2026".into(), version: "0.4".into(), protocol_version: "2026-07-28".into() }
    );
    let calls = log.calls();
    assert_eq!(calls.len(), 1, "no initialize, no session, no DELETE: {calls:?}");
    let [method, rpc, session, version, _, auth, body, _] = &calls[0];
    assert_eq!((method.as_str(), rpc.as_str(), session.as_str()), ("POST", "server/discover", ""));
    assert_eq!(version, "2026-07-28");
    assert_eq!(auth, &format!("Bearer {MCP_TOKEN}"));
    assert_eq!(calls[0][7], "server/discover", "the Mcp-Method header names the method");
    let body: Value = serde_json::from_str(body).unwrap();
    let meta = &body["params"]["_meta"];
    assert_eq!(meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28", "header and _meta agree");
    assert!(
        meta["io.modelcontextprotocol/clientCapabilities"]["extensions"]
            ["io.modelcontextprotocol/enterprise-managed-authorization"]
            .is_object(),
        "the extension is declared: {body}"
    );
}

#[tokio::test]
async fn a_server_that_speaks_only_earlier_revisions_is_initialized_with_the_best_one() {
    let (server, log) = mcp_server(|rpc| match rpc {
        "server/discover" => json_response(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"jsonrpc": "2.0", "id": 0, "error": {"code": -32022, "message": "Unsupported protocol version",
                "data": {"supported": ["2025-06-18", "2024-11-05"], "requested": "2026-07-28"}}}),
        ),
        "initialize" => json_response(StatusCode::OK, &[], &super::idp_discovery::initialize_result("2025-06-18")),
        _ => StatusCode::ACCEPTED.into_response(),
    })
    .await;
    let info = probe(&server, Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.protocol_version, "2025-06-18");
    let calls = log.calls();
    let rpcs: Vec<_> = calls.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(rpcs, ["server/discover", "initialize", "notifications/initialized"]);
    let init: Value = serde_json::from_str(&calls[1][6]).unwrap();
    assert_eq!(init["params"]["protocolVersion"], "2025-06-18", "the version the server named");
    assert!(
        init["params"]["capabilities"]["extensions"]["io.modelcontextprotocol/enterprise-managed-authorization"]
            .is_object()
    );
    assert_eq!(calls[2][3], "2025-06-18", "the negotiated version on the request after initialize");
}

#[tokio::test]
async fn a_server_of_only_future_revisions_is_named_and_the_token_is_not() {
    let (server, _) = mcp_server(|_| {
        json_response(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"jsonrpc": "2.0", "id": 0, "error": {"code": -32022, "message": "Unsupported protocol version",
                "data": {"supported": ["2031-01-01"]}}}),
        )
    })
    .await;
    let e = probe(&server, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, McpCheckError::Failed(_)), "{e:?}");
    assert!(e.to_string().contains("speaks only MCP 2031-01-01"), "{e}");
    assert!(!format!("{e:?}").contains(MCP_TOKEN));
}

#[tokio::test]
async fn a_discover_answer_that_is_not_json_rpc_falls_back_to_the_handshake() {
    for bad in ["<html>teapot</html>", "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"not an object\"}", "[]"] {
        let (server, log) = mcp_server(move |rpc| match rpc {
            "server/discover" => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bad).into_response(),
            "initialize" => json_response(StatusCode::OK, &[], &super::idp_discovery::initialize_result("2025-11-25")),
            _ => StatusCode::ACCEPTED.into_response(),
        })
        .await;
        let info = probe(&server, Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{bad}: {e}"));
        assert_eq!(info.protocol_version, "2025-11-25", "{bad}");
        assert_eq!(log.calls().len(), 3, "{bad}");
    }
}

#[tokio::test]
async fn a_rejected_token_at_discover_is_unauthorized_without_a_handshake() {
    let (server, log) =
        mcp_server(|_| (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()).await;
    let e = probe(&server, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, McpCheckError::Unauthorized), "{e:?}");
    assert_eq!(log.calls().len(), 1);
}
