//! Tokens keyed by issuer (MCP SEP-2352): after a policy change of IdP or of a connector's
//! authorization server, the old tokens are never sent, the user is told why, and nothing else is
//! lost.

use super::*;
use ema_core::status::ErrorCode;

/// Rewrites the org's policy file with `change` applied to its JSON.
fn rewrite_policy(path: &std::path::Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut policy: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut policy);
    std::fs::write(path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
}

#[tokio::test]
async fn a_policy_that_moves_to_another_idp_never_uses_the_old_idp_s_tokens() {
    let old = Org::start("idp-move-old").await;
    let tag = "idp-move";
    let engine = signed_in(&old, tag, "alice").await;
    assert_eq!(states(&engine.snapshot())["linear"], ConnectorState::Active);

    // IT moves the policy (the same file) to another IdP: another sandbox org, its own issuer.
    let new = Org::start("idp-move-new").await;
    let old_policy = std::fs::read_to_string(&old.policy_path).unwrap();
    std::fs::copy(&new.policy_path, &old.policy_path).unwrap();
    let moved = old.engine(&service(tag));
    moved.load().await.unwrap();
    let s = moved.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::SignedOut);
    let why = s.idp.last_error.clone().expect("the user is told why");
    assert_eq!(why.code, ErrorCode::IdpChanged);
    assert_eq!(why.fix_action, Some(ema_core::status::FixAction::SignIn));
    assert!(why.message.contains("instead of 127.0.0.1"), "{}", why.message);
    assert!(s.connectors.iter().all(|c| c.token_fingerprint.is_none()), "no token of the old IdP is shown");
    assert!(moved.fresh_access_token("linear", Duration::from_secs(60)).await.is_err());
    // The old IdP's tokens are gone from the store: going back to it finds no session either.
    std::fs::write(&old.policy_path, &old_policy).unwrap();
    let back = old.engine(&service(tag));
    back.load().await.unwrap();
    assert_eq!(back.snapshot().idp.state, IdpSessionState::SignedOut);
    // Another policy in use beside it (another file) is never touched by the move.
    assert_eq!(new.engine(&service(tag)).snapshot().idp.state, IdpSessionState::SignedOut);

    // Signing in at the new IdP works and the explanation goes.
    std::fs::copy(&new.policy_path, &old.policy_path).unwrap();
    let moved = old.engine(&service(tag));
    moved.load().await.unwrap();
    let browser = ScriptedBrowser::new("alice", new.dir.join("browser.log"));
    moved.sign_in(&browser, SIGN_IN_TIMEOUT).await.unwrap();
    assert_eq!(states(&moved.snapshot())["linear"], ConnectorState::Active);
    let again = old.engine(&service(tag));
    again.load().await.unwrap();
    assert!(again.snapshot().idp.last_error.is_none());
    assert_eq!(again.snapshot().idp.state, IdpSessionState::Active);
}

#[tokio::test]
async fn a_connector_moved_to_another_authorization_server_does_not_send_its_old_token() {
    let org = Org::start("as-move").await;
    let tag = "as-move";
    let engine = signed_in(&org, tag, "alice").await;
    let minute = Duration::from_secs(60);
    let old_token = engine.fresh_access_token("linear", minute).await.unwrap();

    // The policy now pins Linear to another authorization server.
    let other_as = org.sandbox.as_issuer("atlassian");
    rewrite_policy(&org.policy_path, |p| {
        let linear = p["connectors"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "linear").unwrap();
        linear["authorization_server"] = other_as.clone().into();
    });
    let moved = org.engine(&service(tag));
    moved.load().await.unwrap();
    let s = moved.snapshot();
    let linear = s.connectors.iter().find(|c| c.id == "linear").unwrap();
    assert!(linear.token_fingerprint.is_none(), "{linear:?}");
    let error = linear.error.clone().unwrap();
    assert_eq!(error.code, ErrorCode::NotConnected);
    assert!(error.message.contains("another authorization server"), "{}", error.message);
    assert_eq!(states(&s)["atlassian"], ConnectorState::Active, "the other connectors keep their tokens");
    assert_eq!(s.idp.state, IdpSessionState::Active, "no new sign-in is needed for this");
    match moved.fresh_access_token("linear", minute).await {
        Ok(t) => assert_ne!(t.secret(), old_token.secret(), "never the old token"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
