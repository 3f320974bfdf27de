//! Unit tests of `entry.rs` (in a file of their own to keep the module short): how one MCP
//! server entry of a client's config is judged.

use super::*;
use serde_json::json;

fn catalog() -> Catalog {
    let c = |id: &str, url: &str| super::super::CatalogConnector {
        id: id.into(),
        display_name: id.to_uppercase(),
        mcp_url: Url::parse(url).unwrap(),
        idp_only: true,
    };
    Catalog::new(vec![
        c("linear", "https://mcp.linear.app/mcp"),
        c("supabase", "https://mcp.supabase.com/mcp"),
        c("internal", "https://mcp.corp.example/internal/mcp"),
        c("internal2", "https://mcp.corp.example/other/mcp"),
    ])
}

fn run(entry: Value) -> Analysis {
    analyse("x", entry.as_object().unwrap(), &catalog())
}

#[test]
fn shell_words_and_program_names() {
    assert_eq!(shell_words(r#""C:\Program Files\EMA\ema.exe" headers linear"#)[0], r"C:\Program Files\EMA\ema.exe");
    assert_eq!(program_name(r"C:\Program Files\EMA\ema.exe"), "ema");
    assert_eq!(shell_words("a 'b c' d"), ["a", "b c", "d"]);
}

#[test]
fn a_windows_ema_helper_is_managed() {
    let a = run(
        json!({"url": "https://mcp.linear.app/mcp", "headersHelper": r#""C:\Program Files\EMA\ema.exe" headers linear"#}),
    );
    assert_eq!(a.class, CredentialClass::Managed);
}

#[test]
fn path_prefix_picks_among_connectors_on_one_host() {
    let a = run(json!({"url": "https://mcp.corp.example/other/mcp"}));
    assert_eq!(a.connector, Some(("internal2".into(), MatchBasis::McpUrl)));
}

#[test]
fn referenced_secrets_have_no_fingerprint_and_placeholders_are_ignored() {
    let a = run(json!({"url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer ${env:LINEAR}"}}));
    assert!(matches!(a.class, CredentialClass::StaticToken { value_in_file: false, .. }));
    assert!(a.fingerprint.is_none());
    let a = run(
        json!({"command": "npx", "args": ["mcp-remote", "https://mcp.linear.app/mcp"], "env": {"DEBUG_TOKEN_LOG": "true"}}),
    );
    assert_eq!(a.class, CredentialClass::NoCredential);
    assert_eq!(a.urls, ["https://mcp.linear.app/mcp"]);
}

#[test]
fn header_arguments_and_prefixes_are_secrets() {
    let a = run(
        json!({"command": "npx", "args": ["mcp-remote", "https://h.example/sse", "--header", "Authorization: Bearer sbp_0123456789"]}),
    );
    assert!(matches!(a.class, CredentialClass::StaticToken { location: SecretLocation::Argument, .. }));
    assert_eq!(a.fingerprint, Some(Fingerprint::of("sbp_0123456789")));
    assert_eq!(a.connector, Some(("supabase".into(), MatchBasis::SecretPrefix)));
}
