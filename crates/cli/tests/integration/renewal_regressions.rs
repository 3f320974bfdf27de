//! Regressions found when the app met servers we did not write (issue 14), through the `ema`
//! binary as a user runs it: the sandbox org plays an IdP with Okta's habits or a careless
//! connector, tokens live in the real OS keyring, and each command is a new process.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use std::process::Output;

use ema_e2e::{Org, output_text, require_keyring_session};
use ema_sandbox::SandboxOptions;
use serde_json::Value;

fn ema(org: &Org, user: &str, args: &[&str]) -> Output {
    Ema::on(org, user).run(args)
}

fn status_json(org: &Org) -> Value {
    let out = ema(org, "-", &["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", output_text(&out)))
}

fn connector<'v>(status: &'v Value, id: &str) -> &'v Value {
    status["connectors"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()
}

/// Item 1: an IdP that answers a refresh with a rotated refresh token and no new ID token (as
/// Okta may) made the engine throw the rotated token away; the next renewal sent the spent one,
/// the IdP answered `invalid_grant`, and the session was lost. A connector that was not
/// entitled turned into "error" on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_without_an_id_token_keeps_the_rotated_refresh_token() {
    require_keyring_session();
    let mut opts = SandboxOptions::default();
    opts.knobs.id_token_ttl_secs = 30; // under the engine's 60 s minimum: every renewal refreshes
    // An IdP that does not take the refresh token as the exchange's subject either (one that
    // does is covered in the engine's sandbox tests, `refresh_token_subject`).
    opts.knobs.refresh_token_subject = false;
    let org = Org::start_with("rotated-refresh", opts).await;
    let login = ema(&org, "alice", &["login"]);
    assert!(login.status.success(), "{}", output_text(&login));
    let refreshes = org.sandbox.count("refresh");

    org.sandbox.knobs().update(|k| k.refresh_omits_id_token = true);
    let out = ema(&org, "-", &["refresh"]);
    let t = output_text(&out);
    assert!(t.contains("id-token-not-renewed"), "{t}");
    assert_eq!(org.sandbox.count("refresh"), refreshes + 1, "one refresh serves every connector\n{t}");
    let status = status_json(&org);
    assert_eq!(connector(&status, "figma")["state"], "not_entitled", "an IdP-side failure says nothing of entitlement");
    assert_eq!(connector(&status, "linear")["state"], "active", "the current token still works");
    assert_eq!(connector(&status, "linear")["renewal_error"]["code"], "id-token-not-renewed");

    // The IdP sends ID tokens again: the next renewal works with the rotated refresh token.
    org.sandbox.knobs().update(|k| k.refresh_omits_id_token = false);
    let out = ema(&org, "-", &["refresh"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let status = status_json(&org);
    assert_eq!(status["idp"]["state"], "active", "{status}");
    assert_eq!(connector(&status, "linear")["state"], "active");
    assert!(connector(&status, "linear")["renewal_error"].is_null(), "{status}");
}

/// Item 2: `ema logout` said "Signed out: tokens removed" and exited 0 when the IdP did not
/// revoke the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_says_plainly_when_the_idp_did_not_confirm_revocation() {
    require_keyring_session();
    let org = Org::start("logout-unconfirmed").await;
    assert!(ema(&org, "alice", &["login"]).status.success());
    org.sandbox.knobs().update(|k| k.idp_down = true);
    let out = ema(&org, "-", &["logout"]);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("Tokens removed here; the IdP did not confirm revocation"), "{t}");
    assert!(!t.contains("Signed out: tokens removed"), "{t}");
    let status = status_json(&org);
    assert_eq!(status["idp"]["state"], "signed_out", "the tokens are gone here all the same");
}

/// Item 4: after a failed `ema refresh` (IdP down), a later `ema status --json` showed the IdP
/// active and no renewal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_remembered_by_the_next_process() {
    require_keyring_session();
    let org = Org::start("remembered-failure").await;
    assert!(ema(&org, "alice", &["login"]).status.success());
    org.sandbox.knobs().update(|k| k.idp_down = true);
    let out = ema(&org, "-", &["refresh"]);
    assert!(output_text(&out).contains("idp-unreachable"), "{}", output_text(&out));
    let status = status_json(&org);
    assert_eq!(status["idp"]["state"], "unreachable", "{status}");
    assert_eq!(status["idp"]["last_error"]["code"], "idp-unreachable");
    assert_eq!(connector(&status, "linear")["state"], "active");
    assert_eq!(connector(&status, "linear")["renewal_error"]["code"], "idp-unreachable");
    // The IdP is back: one renewal clears the story for every process.
    org.sandbox.knobs().update(|k| k.idp_down = false);
    assert!(ema(&org, "-", &["refresh"]).status.success());
    let status = status_json(&org);
    assert_eq!(status["idp"]["state"], "active", "{status}");
    assert!(status["idp"]["last_error"].is_null(), "{status}");
    assert!(connector(&status, "linear")["renewal_error"].is_null(), "{status}");
}

/// Item 5: `"expires_in": 1000000000000000` from a connector's AS made `ema refresh` panic
/// (exit 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_lifetime_is_an_error_not_a_crash() {
    require_keyring_session();
    let org = Org::start("absurd-lifetime").await;
    assert!(ema(&org, "alice", &["login"]).status.success());
    org.sandbox.knobs().update(|k| {
        k.announced_expires_in.insert("linear".into(), 1_000_000_000_000_000);
    });
    let out = ema(&org, "-", &["refresh"]);
    let t = output_text(&out);
    assert_ne!(out.status.code(), Some(101), "a panic: {t}");
    assert!(t.contains("more than a year"), "{t}");
    let out = ema(&org, "-", &["headers", "linear"]);
    assert!(out.status.success(), "the token from before still works: {}", output_text(&out));
    let status = status_json(&org);
    assert_eq!(connector(&status, "linear")["renewal_error"]["code"], "connector-grant-invalid-response");
    assert_eq!(connector(&status, "figma")["state"], "not_entitled");
}
