//! End-to-end through the `ema` binary, as a user runs it: `ema login` signs a demo user in
//! against the sandbox org through the real loopback redirect (the scripted browser is
//! `$BROWSER`), tokens go to the real OS keyring, and `ema status --json` in a new process
//! shows exactly that user's connectors.
//!
//! The canary test then proves no token left the keyring: every token value stored is searched
//! for in all output (with trace logging on) and in every file under the test's HOME.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use crate::util::{secrets_in, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ema_core::store::{KeyringStore, SERVICE, SecretStore};
use ema_e2e::{Org, require_keyring_session};
use serde_json::Value;

fn ema(org: &Org, user: &str, args: &[&str]) -> Output {
    Ema::on(org, user).run(args)
}

fn status_json(org: &Org) -> (Value, i32) {
    let out = ema(org, "-", &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", text(&out)));
    (v, out.status.code().unwrap())
}

fn assert_user_view(org: &Org, user: &str, status: &Value) {
    let entitled = org.sandbox.entitled_connectors(user);
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(status["schema_version"], 1);
    assert_eq!(status["idp"]["state"], "active");
    assert_eq!(status["idp"]["identity"]["email"], format!("{user}@example.com"));
    let connectors = status["connectors"].as_array().unwrap();
    assert_eq!(connectors.len(), 7);
    for c in connectors {
        let id = c["id"].as_str().unwrap();
        if entitled.iter().any(|e| e == id) {
            assert_eq!(c["state"], "active", "{user}/{id}: {c}");
            let exp = time::OffsetDateTime::parse(
                c["expires_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert!(exp > now, "{user}/{id} expires in the future");
        } else {
            assert_eq!(c["state"], "not_entitled", "{user}/{id}: {c}");
            assert!(c["expires_at"].is_null());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_status_shows_exactly_the_users_connectors() {
    require_keyring_session();
    let org = Org::start("cli").await;
    let (_, code) = status_json(&org);
    assert_eq!(code, 1, "signed out needs the user: exit 1 like `gh auth status`");

    let login = ema(&org, "alice", &["login"]);
    assert!(login.status.success(), "{}", text(&login));
    assert!(text(&login).contains("Signed in as alice@example.com"), "{}", text(&login));
    let (alice, code) = status_json(&org);
    assert_eq!(code, 0);
    assert_user_view(&org, "alice", &alice);

    // A second user in other groups sees a different set (and alice's tokens are gone).
    let login = ema(&org, "bob", &["login"]);
    assert!(login.status.success(), "{}", text(&login));
    let (bob, _) = status_json(&org);
    assert_user_view(&org, "bob", &bob);
    assert_ne!(
        alice["connectors"].as_array().unwrap().iter().map(|c| c["state"].clone()).collect::<Vec<_>>(),
        bob["connectors"].as_array().unwrap().iter().map(|c| c["state"].clone()).collect::<Vec<_>>()
    );

    // Human output, then logout: exit status follows what needs the user.
    let human = ema(&org, "-", &["status"]);
    assert!(text(&human).contains("✓ Figma"), "{}", text(&human));
    let out = ema(&org, "-", &["logout"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revoked at the IdP"), "{}", text(&out));
    let out = ema(&org, "-", &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Run `ema login`"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_is_reported_with_its_fix_while_the_token_still_works() {
    require_keyring_session();
    let org = Org::start("cli-renewal").await;
    assert!(ema(&org, "alice", &["login"]).status.success());
    org.sandbox.knobs().update(|k| {
        k.failing_connectors.insert("linear".into(), ema_sandbox::ConnectorFailure::InvalidGrant);
    });
    let out = ema(&org, "-", &["refresh"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "the token still works for an hour: nothing needs the user yet\n{t}");
    assert!(t.contains("connector-grant-oauth-invalid-grant"), "{t}");
    assert!(t.contains("Linear works until"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_without_a_token_makes_status_exit_non_zero_and_names_the_fix() {
    require_keyring_session();
    let org = Org::start("cli-fail").await;
    org.sandbox.knobs().update(|k| {
        k.failing_connectors.insert("linear".into(), ema_sandbox::ConnectorFailure::InvalidGrant);
    });
    let login = ema(&org, "alice", &["login"]);
    assert_eq!(login.status.code(), Some(1), "{}", text(&login));
    let out = ema(&org, "-", &["status"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("X Linear"), "{t}");
    assert!(t.contains("connector-grant-oauth-invalid-grant"), "{t}");
    assert!(t.contains("Sandbox Help Desk"), "{t}");
}

#[test]
fn no_policy_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ema"))
        .args(["--config", "/nonexistent/policy.json", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("/nonexistent/policy.json") && t.contains("cannot be read"), "{t}");
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_no_token_outside_the_keyring() {
    require_keyring_session();
    let org = Org::start("canary").await;
    let mut outputs = String::new();
    for args in [&["login"][..], &["status"], &["status", "--json"], &["refresh"], &["refresh", "--json"]] {
        let o = ema(&org, "dave", args);
        outputs.push_str(&text(&o));
    }
    // The stored tokens: the positive control that there is something to find.
    let store = KeyringStore::new();
    let issuer = org.sandbox.idp_issuer();
    let mut secrets = Vec::new();
    let session = store.get(&format!("session:{issuer}#ema-desktop")).unwrap().expect("session in the keyring");
    secrets_in(&serde_json::from_str(&session).unwrap(), &mut secrets);
    let connectors =
        store.get(&format!("connectors:{issuer}#ema-desktop")).unwrap().expect("connectors in the keyring");
    secrets_in(&serde_json::from_str(&connectors).unwrap(), &mut secrets);
    assert!(secrets.len() >= 2 + 5, "refresh + id token + dave's five connectors: {}", secrets.len());
    assert_eq!(SERVICE, "dev.ema.desktop");
    for s in &secrets {
        assert!(s.len() >= 16);
        assert!(!outputs.contains(s.as_str()), "a token appeared in CLI output");
    }
    // Every file in the session's HOME except the (encrypted) keyring itself.
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let mut files = Vec::new();
    files_under(&home, &mut files);
    files_under(&org.dir, &mut files);
    let scanned = files.iter().filter(|p| !p.components().any(|c| c.as_os_str() == "keyrings")).count();
    assert!(scanned > 0);
    for f in files.iter().filter(|p| !p.components().any(|c| c.as_os_str() == "keyrings")) {
        let bytes = std::fs::read(f).unwrap_or_default();
        let content = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(!content.contains(s.as_str()), "a token was written to {}", f.display());
        }
    }
}
