//! Personal-account connections through the `ema` binary, as a user meets them: a home
//! directory laid out like a real one (the scan fixture of ema-core) next to the sandbox org.
//! `ema scan` flags the old Claude Code entry, `ema fix --replace` switches it to the company
//! connection, the `headersHelper` it wrote prints a bearer token the sandbox's MCP server
//! accepts, and `ema undo` gives the old file back byte for byte. No planted secret appears
//! in any output.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use crate::util::text;
use std::path::Path;
use std::process::{Command, Output};

use ema_core::store::{KeyringStore, SecretStore};
use ema_e2e::{Org, fixture_canaries, fixture_home, require_keyring_session};
use serde_json::Value;

/// Runs `ema` with `home` as the user's home directory (and working directory).
fn ema(org: &Org, home: &Path, user: &str, args: &[&str]) -> Output {
    Ema::on(org, user).home(home).run(args)
}

/// The access token the keyring holds for `connector`.
fn stored_token(org: &Org, connector: &str) -> String {
    let issuer = org.sandbox.idp_issuer();
    let doc = KeyringStore::new().get(&format!("connectors:{issuer}#ema-desktop")).unwrap().unwrap();
    let v: Value = serde_json::from_str(&doc).unwrap();
    v["records"][connector]["access_token"].as_str().unwrap().to_string()
}

/// The HTTP status of an MCP `initialize` at `url` with these headers.
async fn mcp_initialize(url: &str, headers: &[(String, String)]) -> u16 {
    ema_core::http::install_tls_provider();
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "claude-code-stand-in", "version": "1"}}}));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_flags_an_old_entry_fix_replaces_it_by_a_working_helper_and_undo_restores_it() {
    require_keyring_session();
    let org = Org::start("personal").await;
    let home = fixture_home(&org);
    let mut outputs = String::new();
    let login = ema(&org, &home, "alice", &["login"]);
    assert!(login.status.success() || login.status.code() == Some(1), "{}", text(&login));
    outputs.push_str(&text(&login));

    // `ema scan --json`: the stdio Supabase server with a token in its arguments is flagged
    // (matched by its npm package, the sandbox's Supabase being IdP-only).
    let scan = ema(&org, &home, "-", &["scan", "--json"]);
    outputs.push_str(&text(&scan));
    assert_eq!(scan.status.code(), Some(1), "flagged findings make the exit status 1: {}", text(&scan));
    let report: Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(report["version"], 1);
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key_path"] == "/mcpServers/supabase" && f["client"] == "claude_code")
        .expect("the old Supabase entry")
        .clone();
    assert_eq!(finding["verdict"], "flagged");
    assert_eq!(finding["connector"], "supabase");
    let id = finding["id"].as_str().unwrap();

    // `ema status` says the same, and exits 1 for it.
    let status = ema(&org, &home, "-", &["status", "--json"]);
    outputs.push_str(&text(&status));
    let status_v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status_v["personal_connections"]["flagged"].as_u64().unwrap() >= 1, "{status_v}");
    assert_eq!(status.status.code(), Some(1));
    let human = ema(&org, &home, "-", &["status"]);
    outputs.push_str(&text(&human));
    assert!(text(&human).contains(&format!("ema fix {id} --replace")), "{}", text(&human));

    // `ema fix ID --replace`.
    let claude_json = home.join(".claude.json");
    let before = std::fs::read(&claude_json).unwrap();
    let fix = ema(&org, &home, "-", &["fix", id, "--replace"]);
    outputs.push_str(&text(&fix));
    assert!(fix.status.success(), "{}", text(&fix));
    assert!(text(&fix).contains("ema undo"), "{}", text(&fix));
    let after: Value = serde_json::from_slice(&std::fs::read(&claude_json).unwrap()).unwrap();
    let entry = &after["mcpServers"]["supabase"];
    assert_eq!(entry["type"], "http");
    assert_eq!(entry["url"], org.sandbox.mcp_url("supabase"));
    let helper = entry["headersHelper"].as_str().unwrap();
    assert!(helper.ends_with(" headers supabase"), "{helper}");
    assert_eq!(after["mcpServers"]["linear"]["headersHelper"], "ema headers linear", "other entries kept");

    // What Claude Code does with it: run the helper through the shell, send the headers.
    let run = Command::new("sh")
        .args(["-c", helper])
        .current_dir(&home)
        .env("HOME", &home)
        .env("EMA_CONFIG", &org.policy_path)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let headers: Value = serde_json::from_slice(&run.stdout).unwrap();
    let token = stored_token(&org, "supabase");
    assert_eq!(headers, serde_json::json!({"Authorization": format!("Bearer {token}")}));
    assert!(!String::from_utf8_lossy(&run.stderr).contains(&token), "the token only on stdout");
    let url = entry["url"].as_str().unwrap();
    assert_eq!(mcp_initialize(url, &[]).await, 401, "the MCP server wants a token");
    let auth = ("authorization".to_string(), format!("Bearer {token}"));
    assert_eq!(mcp_initialize(url, &[auth]).await, 200, "and takes the helper's");

    // `ema undo`: the file exactly as before.
    let undo = ema(&org, &home, "-", &["undo"]);
    outputs.push_str(&text(&undo));
    assert!(undo.status.success(), "{}", text(&undo));
    assert_eq!(std::fs::read(&claude_json).unwrap(), before);

    for canary in fixture_canaries() {
        assert!(!outputs.contains(&canary), "planted secret {canary} appeared in ema's output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_renews_a_token_about_to_expire_and_explains_refusals() {
    require_keyring_session();
    let org = Org::start("headers").await;
    let home = org.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Tokens that live 30 s: always "within a minute" of expiry.
    org.sandbox.knobs().update(|k| k.connector_token_ttl_secs = 30);
    let login = ema(&org, &home, "alice", &["login"]);
    assert!(login.status.code().is_some_and(|c| c <= 1), "{}", text(&login));
    let old = stored_token(&org, "linear");

    let out = ema(&org, &home, "-", &["headers", "linear"]);
    assert!(out.status.success(), "{}", text(&out));
    let new = stored_token(&org, "linear");
    assert_ne!(new, old, "renewed before it was handed out");
    let headers: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(headers["Authorization"], format!("Bearer {new}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&new) && !stderr.contains(&old), "no token in the trace log");

    // Alice is not entitled to Figma; an unknown connector is named.
    let figma = ema(&org, &home, "-", &["headers", "figma"]);
    assert!(!figma.status.success());
    assert!(figma.stdout.is_empty());
    assert!(text(&figma).contains("not given you access to Figma"), "{}", text(&figma));
    let unknown = ema(&org, &home, "-", &["headers", "nope"]);
    assert!(text(&unknown).contains("no connector \"nope\""), "{}", text(&unknown));
}
