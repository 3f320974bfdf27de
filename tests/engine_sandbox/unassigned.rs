//! A connector the IdP stops assigning (offboarding, a group change): at the next renewal it is
//! "not assigned", its token is gone from the store at once (nothing hands it out), and the
//! connector's authorization server is asked to revoke it (RFC 7009), so that a copy a client
//! took earlier stops working at the MCP server too.

use super::*;
use ema_core::engine::TokenUnavailable;
use ema_core::mcp_check::{HttpProbe, McpCheckError, McpProbe};

#[tokio::test]
async fn an_unassigned_connector_loses_its_token_here_and_at_its_server() {
    let org = Org::start("unassigned").await;
    let engine = signed_in(&org, "unassigned", "alice").await;
    let minute = Duration::from_secs(60);
    let token = engine.fresh_access_token("linear", minute).await.unwrap();
    let linear = org.policy().connector("linear").unwrap().mcp_url.clone();
    let probe =
        HttpProbe::new(&ema_core::http::HttpTransport::new(Duration::from_secs(10)).unwrap(), Duration::from_secs(10));
    probe.check(&linear, &token).await.expect("the token works before");

    org.sandbox.knobs().update(|k| {
        k.unassigned.entry("alice".into()).or_default().insert("linear".into());
    });
    engine.connect_all(true).await;
    let s = engine.snapshot();
    let c = s.connectors.iter().find(|c| c.id == "linear").unwrap();
    assert_eq!(c.state, ConnectorState::NotEntitled);
    assert!(c.token_fingerprint.is_none() && c.expires_at.is_none(), "{c:?}");
    assert_eq!(states(&s)["atlassian"], ConnectorState::Active, "the others are untouched");
    assert!(
        matches!(engine.fresh_access_token("linear", minute).await, Err(TokenUnavailable::NotEntitled(_))),
        "nothing hands the token out any more"
    );
    // Another process (ema headers) reads the store: no token there either.
    let again = org.engine(&service("unassigned"));
    again.load().await.unwrap();
    assert!(again.fresh_access_token("linear", minute).await.is_err());
    assert_eq!(org.sandbox.count("connector-revoke"), 1, "revoked at the connector's AS");
    assert!(
        matches!(probe.check(&linear, &token).await, Err(McpCheckError::Unauthorized)),
        "a copy taken earlier no longer works"
    );

    // A connector that was never assigned has nothing to revoke.
    engine.connect_all(true).await;
    assert_eq!(org.sandbox.count("connector-revoke"), 1);
}
