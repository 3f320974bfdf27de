//! Interop: the product's MCP check ([`HttpProbe`]) against MCP servers built with the MCP Python
//! SDK (PyPI `mcp`), an implementation we did not write.
//!
//! `tests/interop/mcp-python/server.py` is the peer: Streamable HTTP on 127.0.0.1, one tool, the
//! SDK's own bearer middleware with a `TokenVerifier` that accepts only `$EMA_MCP_TOKEN`, and
//! otherwise the SDK's defaults. Each test starts its own server as a child process, reads the
//! port it prints, and kills it when the test ends. Two SDK lines, one venv each:
//!
//! - **newest**, mcp 2.x: serves MCP 2026-07-28 on its per-request entry — `server/discover`, the
//!   `_meta` envelope (`io.modelcontextprotocol/protocolVersion`,
//!   `io.modelcontextprotocol/clientCapabilities`), the `MCP-Protocol-Version` and `Mcp-Method`
//!   headers checked against the body (-32020), unknown revisions refused (-32022) — and still
//!   the `initialize` handshake (up to 2025-11-25) to requests without the version header.
//! - **older**, mcp 1.x: the 2025 line, `initialize` only (up to 2025-11-25).
//!
//! What passing proves: the check negotiates 2026-07-28 with a 2026 server someone else wrote,
//! satisfying its header enforcement; it still negotiates 2025-11-25 with a 2025-only server,
//! stateful or stateless (whose refusals of a 2026 request differ: "Missing session ID" and
//! "Unsupported protocol version", both HTTP 400 / -32600); a refused token is `Unauthorized`.
//! The raw-request test pins down what the newest SDK really answers when the headers are
//! missing or wrong, so a check that "works" only because the peer is lax cannot pass.
//!
//! Run with `tests/interop/mcp-python/run.sh` (it builds both venvs and sets `EMA_MCP_PYTHON`,
//! `EMA_MCP_PYTHON_OLDER` and `EMA_MCP_SERVER_PY`). No keyring or desktop session needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ema_core::http::HttpTransport;
use ema_core::mcp_check::{HttpProbe, McpCheckError, McpProbe, McpServerInfo};
use ema_core::secret::AccessToken;
use ema_e2e::temp_dir;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(10);
/// The name server.py gives its server (`serverInfo.name`, or the 2026 `serverInfo` stamp).
const SERVER_NAME: &str = "ema-interop-mcp-python";
/// The newest revision mcp 2.x speaks (`mcp_types.version.LATEST_MODERN_VERSION`).
const NEWEST_REVISION: &str = "2026-07-28";
/// The newest revision mcp 1.x speaks (`mcp.types.LATEST_PROTOCOL_VERSION`), which it answers
/// `initialize` with.
const OLDER_REVISION: &str = "2025-11-25";

/// A random hex string (std's `RandomState` is seeded from the OS).
fn random_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    (0..2).map(|i| format!("{:016x}", RandomState::new().hash_one(i))).collect()
}

#[derive(Clone, Copy, Debug)]
enum Sdk {
    /// mcp 2.x: 2026-07-28 and the handshake revisions.
    Newest,
    /// mcp 1.x: the handshake revisions only.
    Older,
}

/// The running server.py; killed when dropped.
struct Peer {
    _child: tokio::process::Child,
    url: Url,
    token: String,
    log: PathBuf,
}

impl Peer {
    /// server.py in `sdk`'s venv with `flags` (`--stateless`, `--json-response`).
    async fn start(sdk: Sdk, flags: &[&str]) -> Peer {
        let (python_var, mode) = match sdk {
            Sdk::Newest => ("EMA_MCP_PYTHON", "newest"),
            Sdk::Older => ("EMA_MCP_PYTHON_OLDER", "older"),
        };
        let python = std::env::var_os(python_var).unwrap_or_else(|| {
            panic!(
                "{python_var} is not set: run these tests with `tests/interop/mcp-python/run.sh` \
                 (it creates the MCP Python SDK venvs and sets EMA_MCP_PYTHON, EMA_MCP_PYTHON_OLDER \
                 and EMA_MCP_SERVER_PY)"
            )
        });
        let script = std::env::var_os("EMA_MCP_SERVER_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/mcp-python/server.py"));
        let token = random_token();
        let log = temp_dir(&format!("mcp-python-{mode}")).join("server.log");
        let mut child = tokio::process::Command::new(python)
            .arg(&script)
            .arg(mode)
            .args(flags)
            .env("EMA_MCP_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ${python_var}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let port: u16 = match first {
            Ok(Ok(Some(line))) if line.trim().parse::<u16>().is_ok() => line.trim().parse().unwrap(),
            other => panic!(
                "server.py {mode} did not print its port ({other:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
        Peer { _child: child, url, token, log }
    }

    /// The product's check, with `token`.
    async fn check_with(&self, token: &str) -> Result<McpServerInfo, McpCheckError> {
        let probe = HttpProbe::new(&HttpTransport::new(TIMEOUT).unwrap(), TIMEOUT);
        probe.check(&self.url, &AccessToken::new(token)).await
    }

    /// The product's check with the token the peer accepts; panics with the peer's log on failure.
    async fn check(&self) -> McpServerInfo {
        match self.check_with(&self.token).await {
            Ok(info) => info,
            Err(e) => panic!("the MCP check failed against {}: {e} ({e:?})\n{}", self.url, self.log()),
        }
    }

    /// One raw POST with the accepted token and `headers`: the HTTP status and the JSON-RPC
    /// message (a JSON body, or the first `data:` of an event stream).
    async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        ema_core::http::install_tls_provider();
        let client = reqwest::Client::builder().no_proxy().timeout(TIMEOUT).build().unwrap();
        let mut request = client
            .post(self.url.as_str())
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json_text = match text.lines().find_map(|l| l.strip_prefix("data:")) {
            Some(data) => data.trim().to_owned(),
            None => text.clone(),
        };
        let message = serde_json::from_str(&json_text)
            .unwrap_or_else(|e| panic!("HTTP {status} with a body that is not JSON-RPC ({e}): {text}\n{}", self.log()));
        (status, message)
    }

    fn log(&self) -> String {
        format!(
            "--- server.py log ({}) ---\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

/// A 2026-07-28 request: `method` with the per-request `_meta` envelope naming `revision`.
fn enveloped(method: &str, revision: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": { "_meta": {
            "io.modelcontextprotocol/protocolVersion": revision,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "ema-interop-test", "version": "0" },
        } },
    })
}

/// The JSON-RPC error code of `message`, or a panic naming what came instead.
fn error_code(message: &Value) -> i64 {
    message.pointer("/error/code").and_then(Value::as_i64).unwrap_or_else(|| panic!("not an error: {message}"))
}

fn assert_newest(info: &McpServerInfo, peer: &Peer) {
    assert_eq!(info.protocol_version, NEWEST_REVISION, "{info:?}\n{}", peer.log());
    assert_eq!(info.name, SERVER_NAME, "{info:?}");
    assert!(info.version.starts_with("2."), "serverInfo.version is mcp's 2.x version: {info:?}");
}

fn assert_older(info: &McpServerInfo, peer: &Peer) {
    assert_eq!(info.protocol_version, OLDER_REVISION, "{info:?}\n{}", peer.log());
    assert_eq!(info.name, SERVER_NAME, "{info:?}");
    assert!(info.version.starts_with("1."), "serverInfo.version is mcp's 1.x version: {info:?}");
}

#[tokio::test]
async fn the_check_negotiates_the_newest_revision_with_mcp_2() {
    let peer = Peer::start(Sdk::Newest, &[]).await;
    assert_newest(&peer.check().await, &peer);
}

#[tokio::test]
async fn the_check_negotiates_the_newest_revision_with_a_stateless_json_mcp_2() {
    let peer = Peer::start(Sdk::Newest, &["--stateless", "--json-response"]).await;
    assert_newest(&peer.check().await, &peer);
}

#[tokio::test]
async fn a_refused_token_is_unauthorized() {
    let peer = Peer::start(Sdk::Newest, &[]).await;
    match peer.check_with("not-the-token").await {
        Err(McpCheckError::Unauthorized) => {}
        other => panic!("expected Unauthorized, got {other:?}\n{}", peer.log()),
    }
    let older = Peer::start(Sdk::Older, &[]).await;
    match older.check_with("not-the-token").await {
        Err(McpCheckError::Unauthorized) => {}
        other => panic!("expected Unauthorized from mcp 1.x, got {other:?}\n{}", older.log()),
    }
}

#[tokio::test]
async fn the_check_negotiates_2025_11_25_with_stateful_mcp_1() {
    let peer = Peer::start(Sdk::Older, &[]).await;
    // What it answers a 2026 request with, which the check has to take as "speak 2025 instead":
    // the session check comes before the version check.
    let (status, message) = peer
        .post(
            &enveloped("server/discover", NEWEST_REVISION),
            &[("mcp-protocol-version", NEWEST_REVISION), ("mcp-method", "server/discover")],
        )
        .await;
    assert_eq!((status, error_code(&message)), (400, -32600), "{message}");
    assert_eq!(message.pointer("/error/message"), Some(&json!("Bad Request: Missing session ID")));
    assert_older(&peer.check().await, &peer);
}

#[tokio::test]
async fn the_check_negotiates_2025_11_25_with_stateless_mcp_1() {
    let peer = Peer::start(Sdk::Older, &["--stateless"]).await;
    let (status, message) = peer
        .post(
            &enveloped("server/discover", NEWEST_REVISION),
            &[("mcp-protocol-version", NEWEST_REVISION), ("mcp-method", "server/discover")],
        )
        .await;
    assert_eq!((status, error_code(&message)), (400, -32600), "{message}");
    let text = message.pointer("/error/message").and_then(Value::as_str).unwrap();
    assert!(text.starts_with("Bad Request: Unsupported protocol version: 2026-07-28."), "{text}");
    assert_older(&peer.check().await, &peer);
}

/// The newest peer serves a 2026 request only with its headers right: this is the SDK's own
/// enforcement (`mcp.shared.inbound.classify_inbound_request` and the session manager's routing
/// on `MCP-Protocol-Version`), pinned to what it really answers.
#[tokio::test]
async fn mcp_2_enforces_the_2026_headers() {
    let peer = Peer::start(Sdk::Newest, &[]).await;
    let discover = enveloped("server/discover", NEWEST_REVISION);
    let version = ("mcp-protocol-version", NEWEST_REVISION);
    let method = ("mcp-method", "server/discover");

    // Right: the discover result, the server's identity in the `_meta` stamp.
    let (status, ok) = peer.post(&discover, &[version, method]).await;
    assert_eq!(status, 200, "{ok}\n{}", peer.log());
    assert_eq!(ok.pointer("/result/supportedVersions"), Some(&json!([NEWEST_REVISION])), "{ok}");
    assert_eq!(ok.pointer("/result/_meta/io.modelcontextprotocol~1serverInfo/name"), Some(&json!(SERVER_NAME)));
    assert_eq!(ok.pointer("/result/resultType"), Some(&json!("complete")), "{ok}");

    // No MCP-Protocol-Version: routed to the handshake era, where a request other than
    // `initialize` without a session is refused (stateful, the SDK's default).
    let (status, refused) = peer.post(&discover, &[method]).await;
    assert_eq!((status, error_code(&refused)), (400, -32600), "{refused}");
    assert_eq!(refused.pointer("/error/message"), Some(&json!("Bad Request: Missing session ID")));

    // The header without Mcp-Method: HEADER_MISMATCH.
    let (status, refused) = peer.post(&discover, &[version]).await;
    assert_eq!((status, error_code(&refused)), (400, -32020), "{refused}");
    assert_eq!(
        refused.pointer("/error/message"),
        Some(&json!("mcp-method header does not match the request body's method"))
    );

    // The header disagreeing with the envelope: HEADER_MISMATCH.
    let (status, refused) = peer.post(&enveloped("server/discover", OLDER_REVISION), &[version, method]).await;
    assert_eq!((status, error_code(&refused)), (400, -32020), "{refused}");
    assert_eq!(
        refused.pointer("/error/message"),
        Some(&json!("mcp-protocol-version header does not match the request envelope's protocol version"))
    );

    // A revision it does not speak, header and envelope agreeing: UNSUPPORTED_PROTOCOL_VERSION,
    // naming what it does speak.
    let (status, refused) =
        peer.post(&enveloped("server/discover", "2099-01-01"), &[("mcp-protocol-version", "2099-01-01"), method]).await;
    assert_eq!((status, error_code(&refused)), (400, -32022), "{refused}");
    assert_eq!(
        refused.pointer("/error/data"),
        Some(&json!({ "supported": [NEWEST_REVISION], "requested": "2099-01-01" }))
    );

    // The header with a body lacking the envelope: INVALID_PARAMS.
    let bare = json!({ "jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {} });
    let (status, refused) = peer.post(&bare, &[version, method]).await;
    assert_eq!((status, error_code(&refused)), (400, -32602), "{refused}");

    // `initialize` does not exist at 2026-07-28: METHOD_NOT_FOUND, HTTP 404.
    let mut initialize = enveloped("initialize", NEWEST_REVISION);
    initialize["params"]["protocolVersion"] = json!(NEWEST_REVISION);
    initialize["params"]["capabilities"] = json!({});
    initialize["params"]["clientInfo"] = json!({ "name": "ema-interop-test", "version": "0" });
    let (status, refused) = peer.post(&initialize, &[version, ("mcp-method", "initialize")]).await;
    assert_eq!((status, error_code(&refused)), (404, -32601), "{refused}");
}

/// Without the version header the stateless newest peer does not refuse: it serves the request
/// in the handshake era at 2025-03-26 (the transport's default), where `server/discover` does not
/// exist. A 2026 client that forgot the header gets "Method not found", not a 400.
#[tokio::test]
async fn stateless_mcp_2_serves_a_request_without_the_version_header_as_2025() {
    let peer = Peer::start(Sdk::Newest, &["--stateless"]).await;
    let (status, answer) =
        peer.post(&enveloped("server/discover", NEWEST_REVISION), &[("mcp-method", "server/discover")]).await;
    assert_eq!((status, error_code(&answer)), (200, -32601), "{answer}");
    assert_eq!(answer.pointer("/error/data"), Some(&json!("server/discover")), "{answer}");
}
