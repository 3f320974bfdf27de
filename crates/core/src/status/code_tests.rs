//! The codes' strings: each reads back as itself, none is shared, every one is documented.

use super::*;

#[test]
fn every_code_reads_back_as_itself() {
    for code in ErrorCode::every() {
        let oauth = matches!(code, ErrorCode::Response(_, ResponseKind::OAuth)).then_some("invalid_grant");
        let wire = code.wire(oauth);
        assert_eq!(ErrorCode::parse(&wire), (code.clone(), oauth.map(String::from)), "{wire}");
    }
}

#[test]
fn every_code_has_its_own_string() {
    let mut seen = std::collections::HashMap::new();
    for code in ErrorCode::every() {
        if let Some(other) = seen.insert(code.wire(Some("x")), code.clone()) {
            panic!("{code:?} and {other:?} print the same");
        }
    }
}

/// The interface: `docs/status-schema.md` lists every code EMA produces, with `<error>` for
/// the server's OAuth error and `<status>` for an HTTP status.
#[test]
fn every_code_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/status-schema.md")).unwrap();
    let missing: Vec<String> = ErrorCode::every()
        .iter()
        .map(|c| c.wire(Some("<error>")).replace("http-400", "http-<status>"))
        .filter(|w| !doc.contains(&format!("`{w}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/status-schema.md: {missing:?}");
}

#[test]
fn the_codes_the_schema_has_always_shown_keep_their_strings() {
    let grant = ErrorCode::Response(Leg::ConnectorGrant, ResponseKind::OAuth);
    assert_eq!(grant.wire(Some("invalid_grant")), "connector-grant-oauth-invalid-grant");
    assert_eq!(IDP_UNREACHABLE.wire(None), "idp-unreachable");
    assert_eq!(ErrorCode::Response(Leg::TokenExchange, ResponseKind::Http(502)).wire(None), "token-exchange-http-502");
    assert_eq!(
        ErrorCode::parse("idp-discovery-http-404").0,
        ErrorCode::Response(Leg::IdpDiscovery, ResponseKind::Http(404))
    );
    assert_eq!(ErrorCode::parse("something-new"), (ErrorCode::Unknown("something-new".into()), None));
    assert_eq!(ErrorCode::parse("timeout").0.wire(None), "discovery-timeout", "as stored by earlier versions");
}
