//! The engine on fakes: a scripted transport (an IdP and one authorization server and MCP
//! server per connector), the in-memory store, a probe that accepts every token, and a clock
//! that follows tokio's paused time. Time-driven behaviour (renewal, backoff, the renewal
//! floor, the IdP budget) is tested here without sleeping; the sandbox e2e tests cover the
//! same flows over real HTTP.
//!
//! Over 500 lines because each scenario is short but needs its org spelled out; the fakes are
//! shared by all of them, and splitting by topic would spread the harness over several files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use time::OffsetDateTime;

use super::*;
use crate::clock::{Clock, ManualClock, TokioClock};
use crate::config::ConfigSource;
use crate::mcp_check::{McpCheckError, McpServerInfo};
use crate::records::RECORD_VERSION;
use crate::secret::RefreshToken;
use crate::secret::{AccessToken, IdToken};
use crate::status::{ConnectorState, Identity, IdpSessionState};
use crate::store::MemoryStore;
use crate::testing::FakeTransport;
use url::Url;

const IDP: &str = "https://idp.example.com";
const IDP_TOKEN: &str = "https://idp.example.com/token";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap()
}

fn mcp(id: &str) -> String {
    format!("https://mcp.{id}.example/mcp")
}

fn as_issuer(id: &str) -> String {
    format!("https://as.{id}.example")
}

fn as_token(id: &str) -> String {
    format!("https://as.{id}.example/token")
}

/// A policy with one connector per id; `pins` pins a connector's AS.
fn policy(ids: &[&str], pins: &[(&str, &str)]) -> Policy {
    let connectors: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let mut c = serde_json::json!({
                "id": id, "display_name": id.to_uppercase(), "mcp_url": mcp(id),
                "client_id": format!("ema-{id}"), "client_auth": {"method": "none"}, "scopes": ["read"]
            });
            if let Some((_, pin)) = pins.iter().find(|(p, _)| p == id) {
                c["authorization_server"] = serde_json::json!(pin);
            }
            c
        })
        .collect();
    let text = serde_json::json!({
        "schema_version": 1,
        "organization": {"name": "Acme"},
        "idp": {"issuer": IDP, "client_id": "ema-desktop", "client_auth": {"method": "none"}},
        "connectors": connectors,
    })
    .to_string();
    Policy::parse(&text, ConfigSource::Explicit("test-policy.json".into())).unwrap()
}

/// The IdP and each connector's servers, every connector's AS issuing tokens for `lifetime` s.
fn fake_org(ids: &[&str], lifetime: u64) -> Arc<FakeTransport> {
    let t = Arc::new(FakeTransport::new());
    t.json(
        &format!("{IDP}/.well-known/openid-configuration"),
        200,
        &serde_json::json!({
            "issuer": IDP,
            "authorization_endpoint": format!("{IDP}/authorize"),
            "token_endpoint": IDP_TOKEN,
            "jwks_uri": format!("{IDP}/keys"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]
        })
        .to_string(),
    );
    t.json(&format!("{IDP}/keys"), 200, r#"{"keys":[]}"#);
    exchange_answers(&t, 200, &id_jag_response());
    for id in ids {
        connector_names_as(&t, id, id);
        grant_answers(&t, id, 200, &access_token_response(id, lifetime));
    }
    t
}

fn id_jag_response() -> String {
    r#"{"access_token":"jag","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A","expires_in":300}"#.into()
}

fn access_token_response(id: &str, lifetime: u64) -> String {
    format!(r#"{{"access_token":"at-{id}","token_type":"Bearer","expires_in":{lifetime}}}"#)
}

fn exchange_answers(t: &FakeTransport, status: u16, body: &str) {
    t.json(IDP_TOKEN, status, body);
}

fn grant_answers(t: &FakeTransport, id: &str, status: u16, body: &str) {
    t.json(&as_token(id), status, body);
}

/// Connector `id`'s MCP server names the authorization server of connector `as_of`.
fn connector_names_as(t: &FakeTransport, id: &str, as_of: &str) {
    t.json(&mcp(id), 401, "{}");
    t.json(
        &format!("https://mcp.{id}.example/.well-known/oauth-protected-resource/mcp"),
        200,
        &serde_json::json!({"resource": mcp(id), "authorization_servers": [as_issuer(as_of)]}).to_string(),
    );
    t.json(
        &format!("https://as.{as_of}.example/.well-known/oauth-authorization-server"),
        200,
        &serde_json::json!({"issuer": as_issuer(as_of), "token_endpoint": as_token(as_of)}).to_string(),
    );
}

/// Accepts every token, except that it panics for the MCP URLs it is told to.
#[derive(Debug, Default)]
struct Probe {
    panics_for: std::sync::Mutex<Vec<String>>,
}

impl McpProbe for Probe {
    fn check<'a>(
        &'a self,
        mcp_url: &'a Url,
        _: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        let panics = self.panics_for.lock().unwrap().iter().any(|u| u == mcp_url.as_str());
        Box::pin(async move {
            assert!(!panics, "a bug in one connector's leg");
            Ok(McpServerInfo { name: "fake".into(), version: "1".into(), protocol_version: "2025-11-25".into() })
        })
    }
}

/// A signed-in session in `store`, as `ema login` leaves it.
fn signed_in_store() -> Arc<MemoryStore> {
    store_with_id_token_until(t0() + time::Duration::days(30))
}

/// A signed-in session whose ID token expires at `expires`.
fn store_with_id_token_until(expires: OffsetDateTime) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let session = StoredSession {
        v: RECORD_VERSION,
        identity: Some(Identity { sub: "u1".into(), email: Some("alice@example.com".into()), name: None }),
        id_token: Some(IdToken::new("id-token")),
        id_token_expires_at: Some(expires.unix_timestamp()),
        refresh_token: Some(RefreshToken::new("rt")),
        signed_in_at: t0().unix_timestamp(),
        refresh_token_subject: None,
        idp_issuer: None,
    };
    store.set(&session_key(), &serde_json::to_string(&session).unwrap()).unwrap();
    store
}

/// The store account of the session, as the engine names it (the issuer as a parsed URL).
fn session_key() -> String {
    session_account(Url::parse(IDP).unwrap().as_str(), "ema-desktop")
}

struct Harness {
    engine: Arc<Engine>,
    transport: Arc<FakeTransport>,
    store: Arc<MemoryStore>,
    probe: Arc<Probe>,
}

async fn engine_on(policy: Policy, transport: Arc<FakeTransport>, store: Arc<MemoryStore>) -> Harness {
    engine_with_clock(policy, transport, store, Arc::new(TokioClock::starting_at(t0()))).await
}

async fn engine_with_clock(
    policy: Policy,
    transport: Arc<FakeTransport>,
    store: Arc<MemoryStore>,
    clock: Arc<dyn Clock>,
) -> Harness {
    let probe = Arc::new(Probe::default());
    let parts = EngineParts { transport: transport.clone(), store: store.clone(), mcp: probe.clone(), clock };
    let engine = Engine::new(policy, parts);
    engine.load().await.unwrap();
    Harness { engine, transport, store, probe }
}

async fn signed_in(ids: &[&str], lifetime: u64) -> Harness {
    engine_on(policy(ids, &[]), fake_org(ids, lifetime), signed_in_store()).await
}

fn connector(engine: &Engine, id: &str) -> ConnectorStatus {
    engine.snapshot().connectors.into_iter().find(|c| c.id == id).unwrap()
}

fn count(t: &FakeTransport, url: &str) -> usize {
    t.requests_to(url).len()
}

#[tokio::test(start_paused = true)]
async fn connects_every_connector_on_fakes() {
    let h = signed_in(&["alpha", "beta"], 3600).await;
    h.engine.connect_all(true).await;
    for id in ["alpha", "beta"] {
        let c = connector(&h.engine, id);
        assert_eq!(c.state, ConnectorState::Active, "{id}: {:?}", c.error);
        assert_eq!(c.expires_at, Some(t0() + time::Duration::hours(1)));
        assert_eq!(c.authorization_server.as_deref(), Some(as_issuer(id).as_str()));
    }
    assert_eq!(count(&h.transport, IDP_TOKEN), 2, "one exchange per connector");
}

/// Regression (issue 14, item 5): `"expires_in": 1000000000000000` panicked in the grant's
/// response processor (`resulting value is out of range`), killing `ema refresh`/`ema headers`
/// and, in the tray, the renewal task.
#[tokio::test(start_paused = true)]
async fn an_absurd_lifetime_fails_that_connector_with_a_clear_error_and_no_panic() {
    let h = signed_in(&["alpha", "beta"], 3600).await;
    grant_answers(&h.transport, "alpha", 200, &access_token_response("alpha", 1_000_000_000_000_000));
    h.engine.connect_all(true).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Error);
    let err = alpha.error.unwrap();
    assert_eq!(err.code, "connector-grant-invalid-response");
    assert!(err.message.contains("more than a year"), "{}", err.message);
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
    assert!(h.engine.fresh_access_token("alpha", Duration::from_secs(60)).await.is_err());
}

/// Regression (issue 14, item 6): `"expires_in": 0` made the tray renew in a loop (804 grants
/// in 20 s, each with a token exchange at the company IdP). Acceptance: the renewal task keeps
/// renewing the other connectors whatever one connector's server answers.
#[tokio::test(start_paused = true)]
async fn a_zero_lifetime_is_refused_and_never_renews_in_a_loop_while_others_keep_renewing() {
    let h = signed_in(&["alpha", "beta"], 300).await;
    grant_answers(&h.transport, "alpha", 200, &access_token_response("alpha", 0));
    h.engine.connect_all(true).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Error);
    assert_eq!(alpha.error.unwrap().code, "connector-grant-lifetime-too-short");
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    // One virtual hour in 10 s steps; a loop shows at once as a request count out of bounds.
    for step in 1..=360 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let grants = count(&h.transport, &as_token("alpha"));
        assert!(grants <= 2 + step / 3, "alpha's AS asked {grants} times after {} s", step * 10);
    }
    renewals.abort();
    let alpha_grants = count(&h.transport, &as_token("alpha"));
    let beta_grants = count(&h.transport, &as_token("beta"));
    // beta (300 s tokens, renewed 120 s before expiry) is renewed every 180 s: ~20 times an hour.
    assert!(beta_grants >= 18, "beta was renewed {beta_grants} times in an hour");
    // alpha is retried at each of beta's renewals and on the backoff (30 s doubling to 15 min).
    assert!(alpha_grants <= beta_grants + 10, "alpha was asked {alpha_grants} times, beta {beta_grants}");
    let exchanges = count(&h.transport, IDP_TOKEN);
    assert!(exchanges <= alpha_grants + beta_grants, "{exchanges} exchanges at the IdP");
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
}

/// Found by the tray e2e: during an IdP outage, a token that expired was past due for renewal
/// for good, and the renewal task retried it in a loop instead of backing off.
#[tokio::test(start_paused = true)]
async fn an_expired_token_during_an_idp_outage_is_retried_on_the_backoff_not_in_a_loop() {
    let h = signed_in(&["alpha"], 60).await;
    h.engine.connect_all(true).await;
    exchange_answers(&h.transport, 503, "down");
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    tokio::time::sleep(Duration::from_secs(600)).await;
    renewals.abort();
    let attempts = count(&h.transport, IDP_TOKEN);
    // Due at 30 s, then backoff 30 s, 1, 2, 4 min: a handful in ten minutes.
    assert!(attempts <= 8, "{attempts} exchanges in 10 min of outage");
    assert_eq!(connector(&h.engine, "alpha").state, ConnectorState::Expired);
}

/// The renewal task replaces a token before it expires, without anyone asking (the sandbox e2e
/// test waited for it in real time).
#[tokio::test(start_paused = true)]
async fn background_renewal_replaces_tokens_before_they_expire() {
    let h = signed_in(&["alpha"], 31).await;
    h.engine.connect_all(true).await;
    let first = connector(&h.engine, "alpha");
    let due = h.engine.next_renewal_at().unwrap();
    assert!(due > first.last_renewal.unwrap() && due < first.expires_at.unwrap(), "{due} for {first:?}");
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    tokio::time::sleep(Duration::try_from(first.expires_at.unwrap() - t0()).unwrap()).await;
    renewals.abort();
    let now = connector(&h.engine, "alpha");
    assert_eq!(now.state, ConnectorState::Active);
    assert!(now.last_renewal > first.last_renewal, "renewed: {now:?}");
    assert!(now.expires_at > first.expires_at);
    assert!(now.last_renewal.unwrap() < first.expires_at.unwrap(), "before the old token expired");
    assert_eq!(count(&h.transport, &as_token("alpha")), 2);
}

/// Issue 14 acceptance, on the virtual clock: the renewal task keeps renewing the other
/// connectors while one connector's AS announces an absurd lifetime (it once panicked the task).
#[tokio::test(start_paused = true)]
async fn an_absurd_lifetime_does_not_stop_the_renewal_task_renewing_the_others() {
    let h = signed_in(&["alpha", "beta"], 300).await;
    h.engine.connect_all(true).await;
    grant_answers(&h.transport, "alpha", 200, &access_token_response("alpha", 1_000_000_000_000_000));
    let before = count(&h.transport, &as_token("beta"));
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!renewals.is_finished(), "the renewal task is still running");
    renewals.abort();
    let beta_grants = count(&h.transport, &as_token("beta")) - before;
    assert!(beta_grants >= 18, "beta was renewed {beta_grants} times in an hour");
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
    let alpha = connector(&h.engine, "alpha");
    let why = alpha.renewal_error.or(alpha.error).unwrap();
    assert_eq!(why.code, "connector-grant-invalid-response");
}

/// An IdP outage through a token's expiry, on the virtual clock (the sandbox e2e test waited 31 s
/// of real time for it): usable and expiring soon with the reason, then expired (not failed) with
/// the reason, still expired when retried during the outage, and back without a browser.
#[tokio::test(start_paused = true)]
async fn an_idp_outage_through_expiry_is_expiring_then_expired_with_its_reason_then_recovers() {
    let h = signed_in(&["alpha"], 300).await;
    h.engine.connect_all(true).await;
    exchange_answers(&h.transport, 503, "down");
    h.engine.connect_all(true).await;
    let s = h.engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Unreachable);
    let alpha = connector(&h.engine, "alpha");
    // 300 s left, inside the 10-minute warning window, and the renewal failed.
    assert_eq!(alpha.state, ConnectorState::ExpiringSoon);
    let why = alpha.renewal_error.unwrap();
    assert_eq!(why.code, crate::status::IDP_UNREACHABLE);
    assert!(why.fix.contains("keep working until their tokens expire"), "{}", why.fix);
    tokio::time::advance(Duration::from_secs(301)).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Expired);
    assert_eq!(alpha.renewal_error.unwrap().code, crate::status::IDP_UNREACHABLE);
    // Retried with the IdP still down: still expired, with the reason, and the advice to wait.
    h.engine.connect_all(true).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Expired);
    let why = alpha.renewal_error.unwrap();
    assert_eq!(why.code, crate::status::IDP_UNREACHABLE);
    assert!(why.fix.contains("reconnects by itself"), "{}", why.fix);
    // The IdP is back: renewed, no browser needed.
    exchange_answers(&h.transport, 200, &id_jag_response());
    h.engine.connect_all(false).await;
    assert_eq!(h.engine.snapshot().idp.state, IdpSessionState::Active);
    assert_eq!(connector(&h.engine, "alpha").state, ConnectorState::Active);
}

/// A panic in one connector's leg (a bug) fails that connector; the others connect, and the
/// renewal task goes on renewing them.
#[tokio::test(start_paused = true)]
async fn a_panic_in_one_connector_leaves_the_others_and_the_renewal_task_running() {
    let h = signed_in(&["alpha", "beta"], 300).await;
    h.probe.panics_for.lock().unwrap().push(mcp("alpha"));
    h.engine.connect_all(true).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Error);
    assert_eq!(alpha.error.unwrap().code, "internal-error");
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    let before = count(&h.transport, &as_token("beta"));
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert!(!renewals.is_finished(), "the renewal task survived");
    renewals.abort();
    assert!(count(&h.transport, &as_token("beta")) >= before + 8, "beta kept being renewed");
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
}

#[tokio::test(start_paused = true)]
async fn renewal_waits_at_least_the_floor_between_renewals_of_a_short_lived_token() {
    let h = signed_in(&["alpha"], 31).await;
    h.engine.connect_all(true).await;
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Active);
    assert_eq!(h.engine.next_renewal_at(), Some(alpha.last_renewal.unwrap() + MIN_RENEWAL_INTERVAL));
}

/// Regression (issue 14, item 4): after a failed renewal (IdP down), another process's
/// `ema status --json` showed `idp=active`, connectors `active`, no `renewal_error`; after
/// expiry `expired` with no reason.
#[tokio::test(start_paused = true)]
async fn renewal_errors_are_stored_so_another_process_tells_the_same_story() {
    let h = signed_in(&["alpha"], 3600).await;
    h.engine.connect_all(true).await;
    exchange_answers(&h.transport, 503, "down for maintenance");
    h.engine.connect_all(true).await;
    let first = h.engine.snapshot();
    assert_eq!(first.idp.state, IdpSessionState::Unreachable);
    // Another process (a fresh engine on the same store) tells the same story.
    let other = engine_on(policy(&["alpha"], &[]), h.transport.clone(), h.store.clone()).await;
    let s = other.engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Unreachable);
    assert_eq!(s.idp.last_error.as_ref().unwrap().code, "idp-unreachable");
    let alpha = s.connectors.iter().find(|c| c.id == "alpha").unwrap();
    assert_eq!(alpha.state, ConnectorState::Active, "the token still works");
    assert_eq!(alpha.renewal_error.as_ref().unwrap().code, "idp-unreachable");
    // After expiry: expired, with the reason.
    tokio::time::advance(Duration::from_secs(3700)).await;
    let alpha = connector(&other.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Expired);
    assert_eq!(alpha.renewal_error.unwrap().code, "idp-unreachable");
    // A renewal that works clears it, for every process.
    exchange_answers(&h.transport, 200, &id_jag_response());
    other.engine.connect_all(false).await;
    let third = engine_on(policy(&["alpha"], &[]), h.transport.clone(), h.store.clone()).await;
    let s = third.engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Active);
    assert!(s.idp.last_error.is_none());
    assert!(s.connectors[0].renewal_error.is_none());
}

/// Regression (issue 14, item 3): a clock 5 min off made grants fail with the server's words
/// ("Assertion iat is in the future") and the fix "export diagnostics"; only `ema doctor`
/// named the clock.
#[tokio::test(start_paused = true)]
async fn a_failure_explained_by_clock_skew_names_the_clock() {
    let h = signed_in(&["alpha", "beta"], 3600).await;
    let refusal = r#"{"error":"invalid_grant","error_description":"Assertion iat is in the future"}"#;
    // The AS's clock says five minutes later than ours.
    let ahead = (t0() + time::Duration::minutes(5)).format(&time::format_description::well_known::Rfc2822).unwrap();
    let date = ahead.replace("+0000", "GMT");
    h.transport.with_headers(&as_token("alpha"), 400, &[("date", &date)], refusal);
    h.engine.connect_all(true).await;
    let err = connector(&h.engine, "alpha").error.unwrap();
    assert_eq!(err.code, "clock-skew");
    assert!(
        err.message.contains("your computer's clock is 5 min behind the time at as.alpha.example"),
        "{}",
        err.message
    );
    assert!(err.message.contains("Assertion iat is in the future"), "the server's words are kept: {}", err.message);
    assert!(err.fix.contains("automatic time"), "{}", err.fix);
    assert_eq!(connector(&h.engine, "beta").state, ConnectorState::Active);
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_the_clock_right_keeps_its_own_code() {
    let h = signed_in(&["alpha"], 3600).await;
    let now = t0().format(&time::format_description::well_known::Rfc2822).unwrap().replace("+0000", "GMT");
    let refusal = r#"{"error":"invalid_grant","error_description":"nope"}"#;
    h.transport.with_headers(&as_token("alpha"), 400, &[("date", &now)], refusal);
    h.engine.connect_all(true).await;
    assert_eq!(connector(&h.engine, "alpha").error.unwrap().code_str(), "connector-grant-oauth-invalid-grant");
}

/// Regression (issue 14, item 14): without a policy pin, a compromised or spoofed MCP server
/// could name any authorization server, and the client asked the IdP for an ID-JAG for it.
#[tokio::test(start_paused = true)]
async fn a_changed_authorization_server_is_refused_unless_the_policy_pins_it() {
    let h = signed_in(&["alpha", "evil"], 3600).await;
    h.engine.connect_all(true).await;
    assert_eq!(connector(&h.engine, "alpha").state, ConnectorState::Active);
    let exchanges = count(&h.transport, IDP_TOKEN);
    // alpha's MCP server now names another AS; the next process discovers it.
    connector_names_as(&h.transport, "alpha", "evil");
    let next = engine_on(policy(&["alpha", "evil"], &[]), h.transport.clone(), h.store.clone()).await;
    next.engine.connect_all(true).await;
    let alpha = connector(&next.engine, "alpha");
    let err = alpha.renewal_error.expect("the current token is kept, the renewal refused");
    assert_eq!(err.code, "authorization-server-changed");
    assert!(err.message.contains("https://as.evil.example") && err.message.contains("https://as.alpha.example"));
    assert_eq!(count(&h.transport, IDP_TOKEN), exchanges + 1, "only evil's own renewal reached the IdP");
    let audiences: Vec<String> = h
        .transport
        .requests_to(IDP_TOKEN)
        .iter()
        .filter_map(|r| crate::testing::form(r).into_iter().find(|(k, _)| k == "audience").map(|(_, v)| v))
        .collect();
    assert_eq!(audiences.iter().filter(|a| a.as_str() == "https://as.evil.example").count(), 2, "{audiences:?}");
    // A sign-out and the next sign-in keep it: trust is not a token.
    assert_eq!(next.engine.sign_out().await.unwrap(), Revocation::NotOffered);
    let session = signed_in_store().get(&session_key()).unwrap().unwrap();
    h.store.set(&session_key(), &session).unwrap();
    let after = engine_on(policy(&["alpha", "evil"], &[]), h.transport.clone(), h.store.clone()).await;
    after.engine.connect_all(true).await;
    let alpha = connector(&after.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Error);
    assert_eq!(alpha.error.unwrap().code, "authorization-server-changed");
    // An admin pin overrides trust on first use.
    let pinned = engine_on(
        policy(&["alpha", "evil"], &[("alpha", "https://as.evil.example")]),
        h.transport.clone(),
        h.store.clone(),
    )
    .await;
    pinned.engine.connect_all(true).await;
    let alpha = connector(&pinned.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Active, "{:?}", alpha.error);
    assert_eq!(alpha.authorization_server.as_deref(), Some("https://as.evil.example"));
}

/// Regression (issue 14, item 6): no server may make the engine hammer the company IdP.
#[tokio::test(start_paused = true)]
async fn requests_to_the_idp_are_capped_whatever_is_asked() {
    let h = signed_in(&["alpha"], 3600).await;
    for _ in 0..40 {
        h.engine.connect_all(true).await;
    }
    let exchanges = count(&h.transport, IDP_TOKEN);
    assert_eq!(exchanges, 16, "a burst of 10 + 6 per connector, then held back");
    let alpha = connector(&h.engine, "alpha");
    assert_eq!(alpha.state, ConnectorState::Active, "the current token is kept");
    assert_eq!(alpha.renewal_error.unwrap().code, "idp-request-budget");
    tokio::time::advance(Duration::from_secs(60)).await;
    h.engine.connect_all(true).await;
    assert!(connector(&h.engine, "alpha").renewal_error.is_none(), "the budget refills");
}

/// Found by bench/fleet: during an IdP outage each connector sent its own refresh, seven per
/// renewal round with seven connectors. One refused refresh now serves every connector waiting.
#[tokio::test(start_paused = true)]
async fn during_an_idp_outage_one_refused_refresh_serves_every_connector() {
    let ids = ["a", "b", "c", "d", "e", "f", "g"];
    let store = store_with_id_token_until(t0() - time::Duration::hours(1));
    let h = engine_on(policy(&ids, &[]), fake_org(&ids, 3600), store).await;
    h.transport.unroute(IDP_TOKEN);
    h.engine.connect_all(true).await;
    assert_eq!(count(&h.transport, IDP_TOKEN), 1, "one refresh for seven connectors");
    for id in ids {
        let c = connector(&h.engine, id);
        assert_eq!(c.error.map(|e| e.code), Some(crate::status::IDP_UNREACHABLE), "{id}");
    }
    // The next round (a renewal, the user's "Refresh now", at once) tries again, once.
    h.engine.connect_all(true).await;
    assert_eq!(count(&h.transport, IDP_TOKEN), 2);
}

/// Found by bench/fleet: a renewal that failed a few seconds before its due time was tried
/// again and again in the last milliseconds before it (each wait jittered shorter), instead of
/// waiting for the backoff.
#[tokio::test(start_paused = true)]
async fn a_failed_renewal_waits_for_the_backoff_not_for_its_own_due_time() {
    let h = signed_in(&["alpha"], 300).await;
    h.engine.connect_all(true).await;
    let before = count(&h.transport, IDP_TOKEN);
    exchange_answers(&h.transport, 503, "down");
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    // Due at 180 s (300 s tokens, renewed 120 s before expiry); the backoff is at least 15 s.
    tokio::time::sleep(Duration::from_secs(190)).await;
    renewals.abort();
    assert_eq!(count(&h.transport, IDP_TOKEN) - before, 1, "one failed round, then the backoff");
}

/// Monotonic timers stop while a laptop sleeps: a tray that went to sleep with its renewal an
/// hour away woke with expired tokens and waited out the rest of that hour. It now looks at the
/// wall clock at least every `MAX_SLEEP`.
#[tokio::test(start_paused = true)]
async fn a_laptop_that_slept_through_its_renewal_renews_soon_after_waking() {
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let h =
        engine_with_clock(policy(&["alpha"], &[]), fake_org(&["alpha"], 3600), signed_in_store(), clock.clone()).await;
    h.engine.connect_all(true).await;
    let renewals = tokio::spawn(h.engine.clone().run_renewals());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = count(&h.transport, &as_token("alpha"));
    // Ten hours asleep: the wall clock moves on, tokio's (monotonic) time does not.
    clock.advance(time::Duration::hours(10));
    tokio::time::sleep(super::renewal::MAX_SLEEP + super::renewal::OVERDUE_SPREAD + Duration::from_secs(5)).await;
    renewals.abort();
    assert_eq!(count(&h.transport, &as_token("alpha")), before + 1, "renewed within minutes of waking");
    assert_eq!(connector(&h.engine, "alpha").state, ConnectorState::Active);
}

/// Found by bench/fleet: trays that start or wake with overdue renewals all renewed in the same
/// second. They now wait a random moment within `OVERDUE_SPREAD`.
#[tokio::test(start_paused = true)]
async fn overdue_renewals_are_spread_over_a_window_not_sent_at_once() {
    let transport = fake_org(&["alpha"], 3600);
    let mut trays = Vec::new();
    for _ in 0..20 {
        let h = engine_on(policy(&["alpha"], &[]), transport.clone(), signed_in_store()).await;
        h.engine.connect_all(true).await;
        trays.push(h);
    }
    // Every token expires while no renewal task runs (the laptops are asleep).
    tokio::time::sleep(Duration::from_secs(3700)).await;
    let before = count(&transport, IDP_TOKEN);
    let tasks: Vec<_> = trays.iter().map(|h| tokio::spawn(h.engine.clone().run_renewals())).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_second = count(&transport, IDP_TOKEN) - before;
    tokio::time::sleep(super::renewal::OVERDUE_SPREAD).await;
    let all = count(&transport, IDP_TOKEN) - before;
    tasks.iter().for_each(|t| t.abort());
    assert!(first_second < 10, "{first_second} of 20 trays renewed in the first second");
    assert_eq!(all, 20, "every tray renewed within the window");
}

/// Item 3 of issue 16: the exact revocation request (RFC 7009 §2.1) when the IdP stops assigning
/// a connector whose AS advertises a revocation endpoint: the last token, its type hint, and the
/// connector's client authentication; the stored token is gone before it is sent.
#[tokio::test(start_paused = true)]
async fn an_unassigned_connector_s_token_is_deleted_then_revoked_with_the_connector_s_client() {
    let h = signed_in(&["alpha"], 3600).await;
    let revoke = "https://as.alpha.example/revoke";
    h.transport.json(
        "https://as.alpha.example/.well-known/oauth-authorization-server",
        200,
        &serde_json::json!({"issuer": as_issuer("alpha"), "token_endpoint": as_token("alpha"), "revocation_endpoint": revoke})
            .to_string(),
    );
    h.transport.json(revoke, 200, "");
    h.engine.connect_all(true).await;
    assert_eq!(connector(&h.engine, "alpha").state, ConnectorState::Active);
    assert_eq!(count(&h.transport, revoke), 0, "nothing revoked while assigned");

    exchange_answers(&h.transport, 400, r#"{"error":"access_denied","error_description":"not assigned"}"#);
    h.engine.connect_all(true).await;
    let c = connector(&h.engine, "alpha");
    assert_eq!(c.state, ConnectorState::NotEntitled);
    assert!(c.token_fingerprint.is_none());
    let stored = h.store.get(&h.engine.connectors_account()).unwrap().unwrap_or_default();
    assert!(!stored.contains("at-alpha"), "the token left the store: {stored}");
    let sent = h.transport.requests_to(revoke);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        crate::testing::form(&sent[0]),
        [("token", "at-alpha"), ("token_type_hint", "access_token"), ("client_id", "ema-alpha")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );

    h.engine.connect_all(true).await;
    assert_eq!(count(&h.transport, revoke), 1, "revoked once");
}
