//! Issue 14 item 10: with `HTTP_PROXY` set, requests to 127.0.0.1 (the sandbox org, a local IdP:
//! plain http carrying client secrets, ID tokens, ID-JAGs and access tokens) went through the
//! proxy. Loopback destinations must never be proxied; other destinations still are.
//!
//! The proxy settings are read when the client is built, from the process's environment, which a
//! test cannot set soundly; so the product's transport and MCP probe run in a child process (this
//! test binary again, selected by an environment variable read here, in the test), with every
//! proxy variable pointing at a fake proxy that the parent runs and counts.

#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ema_core::http::{HttpTransport, Transport};
use ema_core::mcp_check::{HttpProbe, McpProbe};
use ema_core::secret::AccessToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The child's role: the loopback server's base URL.
const CHILD_BASE: &str = "EMA_TEST_PROXY_CHILD_BASE";
const RESULT: &str = "proxy-bypass-result ";
const SECRET_CANARY: &str = "proxy-canary-client-secret-0b3c";

/// A tiny HTTP server: answers every request with `answer`, and records each request head.
async fn serve(answer: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&got).into_owned());
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, seen)
}

async fn child(base: &str) {
    let http = HttpTransport::new(Duration::from_secs(5)).unwrap();
    let mut result = serde_json::Map::new();
    // A token request to loopback, with a secret in its body, as the sandbox org gets them.
    let token = Url::parse(&format!("{base}/token")).unwrap();
    let req = http::Request::post(token.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_secret={SECRET_CANARY}").into_bytes())
        .unwrap();
    let loopback = http.send(req).await.map(|r| r.status().as_u16()).map_err(|e| e.to_string());
    result.insert("loopback".into(), format!("{loopback:?}").into());
    // The MCP probe (its own client) to loopback: answered by the server, not the proxy.
    let mcp = Url::parse(&format!("{base}/mcp")).unwrap();
    let _ = HttpProbe::new(&http, Duration::from_secs(5)).check(&mcp, &AccessToken::new("at-probe")).await;
    // Elsewhere: the proxy is asked (and refuses), as the system's settings say.
    let elsewhere = http.send(http::Request::get("https://proxied.example/x").body(Vec::new()).unwrap()).await;
    result.insert("elsewhere_ok".into(), elsewhere.is_ok().into());
    println!("{RESULT}{}", serde_json::Value::Object(result));
}

#[tokio::test]
async fn loopback_requests_never_go_through_the_proxy() {
    if let Ok(base) = std::env::var(CHILD_BASE) {
        return child(&base).await;
    }
    let (server, server_seen) =
        serve("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .await;
    let (proxy, proxy_seen) = serve("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    let proxy_url = format!("http://127.0.0.1:{proxy}");
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "loopback_requests_never_go_through_the_proxy", "--nocapture", "--test-threads=1"])
        .env(CHILD_BASE, format!("http://127.0.0.1:{server}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .kill_on_drop(true);
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env(var, &proxy_url);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find_map(|l| l.split_once(RESULT).map(|(_, j)| j)).expect("a result line");
    let result: serde_json::Value = serde_json::from_str(line).unwrap();

    let proxied = proxy_seen.lock().unwrap().clone();
    let served = server_seen.lock().unwrap().clone();
    assert_eq!(result["loopback"], "Ok(200)", "{result}");
    assert!(served.iter().any(|r| r.starts_with("POST /token")), "the token request reached the server: {served:?}");
    assert!(served.iter().any(|r| r.starts_with("POST /mcp")), "the MCP probe reached the server: {served:?}");
    assert!(
        proxied.iter().all(|r| !r.contains("127.0.0.1") && !r.contains(SECRET_CANARY) && !r.contains("at-probe")),
        "a loopback request went to the proxy: {proxied:?}"
    );
    // The control: the proxy settings were read, and apply elsewhere.
    assert_eq!(result["elsewhere_ok"], false, "{result}");
    assert!(proxied.iter().any(|r| r.starts_with("CONNECT proxied.example:443")), "{proxied:?}");
}
