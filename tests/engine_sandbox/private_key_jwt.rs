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
    // The policy keeps the registered key id but points at another key (a rotated or wrong file).
    let mut policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap();
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/core/tests/data/test-client-key.pem");
    for c in policy["connectors"].as_array_mut().unwrap() {
        if c["id"] == CONNECTOR {
            c["client_auth"]["key_file"] = serde_json::json!(other);
        }
    }
    std::fs::write(&org.policy_path, policy.to_string()).unwrap();
    let s = signed_in(&org, "pkjwt-key", "alice").await.snapshot();
    let e = connector_error(&s);
    assert_eq!(e.code_str(), "connector-grant-oauth-invalid-client");
    assert!(e.message.contains("signature does not verify with the client's registered public key"), "{}", e.message);
    assert!(e.fix.contains("Sandbox Help Desk"), "{}", e.fix);
    assert_eq!(states(&s)["linear"], ConnectorState::Active, "the other connectors are not affected");
    assert_eq!(org.sandbox.count("grant:supabase"), 0);
}

/// An AS that follows draft-ietf-oauth-rfc7523bis takes only its issuer as the audience; the
/// engine names the token endpoint (RFC 7523 §3, OIDC Core §9, what Okta and Entra ID require),
/// so the refusal is `invalid_client` with the AS's reason. (When the engine learns the issuer
/// rule from such a refusal, `client_auth::audience_retry`, this connector becomes active.)
#[tokio::test]
async fn the_wrong_audience_for_the_server_is_refused_as_invalid_client() {
    let org = org_with_key("pkjwt-aud", ClientAssertionAudience::IssuerOnly).await;
    let s = signed_in(&org, "pkjwt-aud", "alice").await.snapshot();
    let e = connector_error(&s);
    assert_eq!(e.code_str(), "connector-grant-oauth-invalid-client");
    assert!(e.message.contains("aud must be this authorization server's issuer identifier"), "{}", e.message);
    assert!(e.message.contains("draft-ietf-oauth-rfc7523bis"), "{}", e.message);
    assert_eq!(states(&s)["atlassian"], ConnectorState::Active);
}
