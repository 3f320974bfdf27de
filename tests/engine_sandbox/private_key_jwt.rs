//! `private_key_jwt` at a connector's authorization server (issue 16 item 7): the policy's
//! `client_auth` for the connector names a key file, and the engine signs a fresh client
//! assertion (RFC 7523 §2.2, OIDC Core §9) for every request to that AS. The sandbox registers
//! the app's client at `supabase` with a P-256 key made for this start and checks each assertion
//! strictly (signature, iss = sub = client_id, aud, exp/iat, one use per jti).

use super::*;
use ema_sandbox::{ClientAssertionAudience, ClientAuthMethod};

const CONNECTOR: &str = "supabase";

async fn org_with_key(tag: &str, audience: ClientAssertionAudience) -> Org {
    let opts = SandboxOptions {
        client_auth_by_connector: BTreeMap::from([(CONNECTOR.to_owned(), ClientAuthMethod::PrivateKeyJwt)]),
        client_assertion_audience: audience,
        ..Default::default()
    };
    let org = Org::start_with(tag, opts).await;
    let policy = org.policy();
    assert_eq!(policy.connector(CONNECTOR).unwrap().client_auth.method_name(), "private_key_jwt");
    org
}

fn connector_error(s: &StatusSnapshot) -> ema_core::status::StatusError {
    let c = s.connectors.iter().find(|c| c.id == CONNECTOR).unwrap();
    assert_eq!(c.state, ConnectorState::Error, "{c:?}");
    c.error.clone().unwrap()
}

/// Points the policy's key for the connector at another key than the registered one (a rotated
/// or wrong file), keeping the registered key id.
fn sign_with_another_key(org: &Org) {
    let mut policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap();
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/core/tests/data/test-client-key.pem");
    for c in policy["connectors"].as_array_mut().unwrap() {
        if c["id"] == CONNECTOR {
            c["client_auth"]["key_file"] = serde_json::json!(other);
        }
    }
    std::fs::write(&org.policy_path, policy.to_string()).unwrap();
}

#[tokio::test]
async fn a_connector_on_private_key_jwt_becomes_active_and_renews_with_fresh_assertions() {
    let org = org_with_key("pkjwt", ClientAssertionAudience::default()).await;
    let engine = signed_in(&org, "pkjwt", "alice").await;
    let s = engine.snapshot();
    let entitled = org.sandbox.entitled_connectors("alice");
    assert!(entitled.iter().any(|c| c == CONNECTOR));
    for c in &s.connectors {
        let expected = if entitled.contains(&c.id) { ConnectorState::Active } else { ConnectorState::NotEntitled };
        assert_eq!(c.state, expected, "{}: {:?}", c.id, c.error);
    }
    assert_eq!(org.sandbox.count("grant:supabase"), 1);
    // A renewal signs a new assertion: the AS, which takes each jti once, takes it.
    engine.connect_all(true).await;
    assert_eq!(states(&engine.snapshot())[CONNECTOR], ConnectorState::Active);
    assert_eq!(org.sandbox.count("grant:supabase"), 2);
    // The revocation of an unassigned connector's token authenticates the same way (RFC 7009 §2.1).
    org.sandbox.knobs().update(|k| {
        k.unassigned.entry("alice".into()).or_default().insert(CONNECTOR.into());
    });
    engine.connect_all(true).await;
    assert_eq!(states(&engine.snapshot())[CONNECTOR], ConnectorState::NotEntitled);
    assert_eq!(org.sandbox.count("connector-revoke"), 1, "the AS took the assertion at its revocation endpoint");
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused_as_invalid_client() {
    let org = org_with_key("pkjwt-key", ClientAssertionAudience::default()).await;
    sign_with_another_key(&org);
    let s = signed_in(&org, "pkjwt-key", "alice").await.snapshot();
    let e = connector_error(&s);
    assert_eq!(e.code_str(), "connector-grant-oauth-invalid-client");
    assert!(e.message.contains("signature does not verify with the client's registered public key"), "{}", e.message);
    assert!(e.fix.contains("Sandbox Help Desk"), "{}", e.fix);
    assert_eq!(states(&s)["linear"], ConnectorState::Active, "the other connectors are not affected");
    assert_eq!(org.sandbox.count("grant:supabase"), 0);
}

/// An AS that follows draft-ietf-oauth-rfc7523bis takes only its issuer as the audience; the
/// engine names the token endpoint first (RFC 7523 §3, OIDC Core §9, what Okta and Entra ID
/// require), is refused with `invalid_client`, retries once with the issuer (and a fresh ID-JAG),
/// and from then on addresses that AS by its issuer.
#[tokio::test]
async fn an_issuer_only_server_is_learned_after_one_refusal() {
    let org = org_with_key("pkjwt-aud", ClientAssertionAudience::IssuerOnly).await;
    let engine = signed_in(&org, "pkjwt-aud", "alice").await;
    let s = engine.snapshot();
    assert_eq!(states(&s)[CONNECTOR], ConnectorState::Active, "{:?}", s.connectors);
    assert_eq!(states(&s)["atlassian"], ConnectorState::Active);
    let exchanges = org.sandbox.count("exchange");
    engine.connect_all(true).await;
    assert_eq!(states(&engine.snapshot())[CONNECTOR], ConnectorState::Active);
    let entitled = org.sandbox.entitled_connectors("alice").len() as u64;
    assert_eq!(
        org.sandbox.count("exchange") - exchanges,
        entitled,
        "learned: one exchange per entitled connector, no second try"
    );
}

/// An AS that takes neither audience (a wrong key, say) is refused after the one retry, with
/// the first refusal's words.
#[tokio::test]
async fn a_refusal_under_both_audiences_reports_the_first() {
    let org = org_with_key("pkjwt-aud-none", ClientAssertionAudience::EndpointInvoked).await;
    sign_with_another_key(&org);
    let s = signed_in(&org, "pkjwt-aud-none", "alice").await.snapshot();
    let e = connector_error(&s);
    assert_eq!(e.code_str(), "connector-grant-oauth-invalid-client");
    assert!(e.message.contains("signature does not verify"), "{}", e.message);
}
