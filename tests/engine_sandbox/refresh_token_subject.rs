//! The IdP refresh token as the token exchange's subject (ID-JAG draft -02 and later, Okta):
//! learned from the sandbox IdP's answers, with the policy able to force either way. The
//! sandbox counts each kind of exchange, so the tests see which subject went on the wire.

use super::*;

/// Rewrites the org's policy with `idp.exchange_subject`.
fn force_subject(org: &Org, subject: &str) {
    let text = std::fs::read_to_string(&org.policy_path).unwrap();
    let mut policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    policy["idp"]["exchange_subject"] = subject.into();
    std::fs::write(&org.policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
}

/// ID tokens that are never fresh enough for an exchange (the engine wants a minute left).
fn short_id_tokens() -> SandboxOptions {
    let mut opts = SandboxOptions::default();
    opts.knobs.id_token_ttl_secs = 30;
    opts
}

#[tokio::test]
async fn an_idp_that_takes_the_refresh_token_needs_no_id_token_refresh() {
    let org = Org::start_with("rt-subject", short_id_tokens()).await;
    let engine = signed_in(&org, "rt-subject", "alice").await;
    let s = engine.snapshot();
    assert_eq!(states(&s)["linear"], ConnectorState::Active, "{:?}", s.connectors);
    assert_eq!(states(&s)["figma"], ConnectorState::NotEntitled, "a refusal is still a refusal");
    assert!(org.sandbox.count("exchange-with-refresh-token") >= 1);

    // Learned: the next rounds, and another process, send the refresh token straight away.
    let refreshes = org.sandbox.count("refresh");
    engine.connect_all(true).await;
    let again = org.engine(&service("rt-subject"));
    again.load().await.unwrap();
    again.connect_all(true).await;
    let s = again.snapshot();
    assert_eq!(states(&s)["linear"], ConnectorState::Active);
    assert_eq!(states(&s)["figma"], ConnectorState::NotEntitled);
    assert!(s.connectors.iter().all(|c| c.renewal_error.is_none()), "{:?}", s.connectors);
    assert_eq!(org.sandbox.count("refresh"), refreshes, "no ID-token refresh once the IdP took the refresh token");
}

#[tokio::test]
async fn an_idp_that_refuses_the_refresh_token_is_asked_once_then_the_id_token_is_refreshed() {
    let mut opts = short_id_tokens();
    opts.knobs.refresh_token_subject = false;
    let org = Org::start_with("rt-refused", opts).await;
    let engine = signed_in(&org, "rt-refused", "alice").await;
    let s = engine.snapshot();
    assert_eq!(states(&s)["linear"], ConnectorState::Active, "{:?}", s.connectors);
    assert_eq!(states(&s)["figma"], ConnectorState::NotEntitled);
    let refused = org.sandbox.count("exchange-refresh-token-refused");
    assert!(refused >= 1, "tried once");
    assert!(org.sandbox.count("refresh") >= 1, "then the ID token was refreshed");

    let refreshes = org.sandbox.count("refresh");
    engine.connect_all(true).await;
    let s = engine.snapshot();
    assert_eq!(states(&s)["linear"], ConnectorState::Active);
    assert_eq!(org.sandbox.count("exchange-refresh-token-refused"), refused, "the refusal was remembered");
    assert!(org.sandbox.count("refresh") > refreshes);
    assert_eq!(org.sandbox.count("exchange-with-refresh-token"), 0);
}

/// Okta's case: the IdP renews the session without a new ID token. The refresh token is then
/// the way on, even with an IdP that refused it before (it may have been upgraded since).
#[tokio::test]
async fn a_refresh_without_an_id_token_goes_on_with_the_refresh_token() {
    let mut opts = short_id_tokens();
    opts.knobs.refresh_token_subject = false;
    let org = Org::start_with("rt-last-resort", opts).await;
    let engine = signed_in(&org, "rt-last-resort", "alice").await;
    assert_eq!(states(&engine.snapshot())["linear"], ConnectorState::Active);

    org.sandbox.knobs().update(|k| {
        k.refresh_token_subject = true;
        k.refresh_omits_id_token = true;
    });
    engine.connect_all(true).await;
    let s = engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Active, "{:?}", s.idp.last_error);
    let linear = s.connectors.iter().find(|c| c.id == "linear").unwrap();
    assert_eq!(linear.state, ConnectorState::Active);
    assert!(linear.renewal_error.is_none(), "{:?}", linear.renewal_error);
    assert_eq!(states(&s)["figma"], ConnectorState::NotEntitled);
    assert!(org.sandbox.count("exchange-with-refresh-token") >= 1);

    // Now learned: no more refreshes that bring nothing.
    let refreshes = org.sandbox.count("refresh");
    engine.connect_all(true).await;
    assert_eq!(org.sandbox.count("refresh"), refreshes);
    assert_eq!(states(&engine.snapshot())["linear"], ConnectorState::Active);
}

/// Neither way works: the refresh brings no ID token and the IdP refuses the refresh token.
/// The connectors keep their tokens and say why, and entitlement is not judged.
#[tokio::test]
async fn no_id_token_and_no_refresh_token_subject_is_id_token_not_renewed() {
    let mut opts = short_id_tokens();
    opts.knobs.refresh_token_subject = false;
    let org = Org::start_with("rt-neither", opts).await;
    let engine = signed_in(&org, "rt-neither", "alice").await;
    org.sandbox.knobs().update(|k| k.refresh_omits_id_token = true);
    engine.connect_all(true).await;
    let s = engine.snapshot();
    let linear = s.connectors.iter().find(|c| c.id == "linear").unwrap();
    assert_eq!(linear.state, ConnectorState::Active, "the current token still works");
    assert_eq!(linear.renewal_error.as_ref().unwrap().code, "id-token-not-renewed");
    assert_eq!(states(&s)["figma"], ConnectorState::NotEntitled);
}

#[tokio::test]
async fn the_policy_can_force_the_refresh_token() {
    let org = Org::start("rt-forced").await; // ID tokens live an hour: auto would send them
    force_subject(&org, "refresh_token");
    let engine = signed_in(&org, "rt-forced", "alice").await;
    let s = engine.snapshot();
    assert_eq!(states(&s)["linear"], ConnectorState::Active);
    assert_eq!(
        org.sandbox.count("exchange-with-refresh-token"),
        org.sandbox.count("exchange"),
        "every issued ID-JAG came from a refresh-token exchange"
    );

    // Forced, the IdP's refusal is its verdict: no quiet fallback to the ID token.
    org.sandbox.knobs().update(|k| k.refresh_token_subject = false);
    engine.connect_all(true).await;
    let linear = engine.snapshot().connectors.into_iter().find(|c| c.id == "linear").unwrap();
    assert_eq!(linear.renewal_error.as_ref().unwrap().code_str(), "token-exchange-oauth-invalid-request");
}

#[tokio::test]
async fn the_policy_can_forbid_the_refresh_token() {
    let org = Org::start_with("rt-forbidden", short_id_tokens()).await;
    force_subject(&org, "id_token");
    let engine = signed_in(&org, "rt-forbidden", "alice").await;
    assert_eq!(states(&engine.snapshot())["linear"], ConnectorState::Active);
    assert_eq!(org.sandbox.count("exchange-with-refresh-token"), 0);
    assert_eq!(org.sandbox.count("exchange-refresh-token-refused"), 0);
    assert!(org.sandbox.count("refresh") >= 1);

    org.sandbox.knobs().update(|k| k.refresh_omits_id_token = true);
    engine.connect_all(true).await;
    let linear = engine.snapshot().connectors.into_iter().find(|c| c.id == "linear").unwrap();
    assert_eq!(linear.renewal_error.as_ref().unwrap().code, "id-token-not-renewed");
    assert_eq!(org.sandbox.count("exchange-with-refresh-token"), 0);
}
