//! Tests for policy loading and validation: the documented example, every error an admin can
//! hit (with the key path and the fix), secret hygiene in errors, file handling and location.
//!
//! Longer than our ~500-line habit on purpose: it is mostly tables (one row per key an admin
//! can get wrong, with the error's key path and fix), read and extended row by row; its
//! numbered sections follow docs/policy.md, and splitting it would part the tables from the
//! helpers every section uses.

#![allow(clippy::unwrap_used)]

use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// The documented policy format.
const EXAMPLE: &str = include_str!("../../../../examples/policy.example.json");
/// An EC P-256 PKCS#8 private key that exists in the repository.
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
/// Fixtures for these tests.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/config");
/// The path errors are expected to name when a policy is parsed from text.
const FILE: &str = "/policies/ema/policy.json";
/// The fix offered for every JSON-shape (serde) error.
const SHAPE_FIX: &str = "compare with examples/policy.example.json (the complete, documented format)";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The smallest valid policy: one IdP, one connector, no settings. Tests mutate it.
fn minimal() -> Value {
    json!({
        "schema_version": 1,
        "organization": { "name": "Acme" },
        "idp": {
            "issuer": "https://idp.acme.example",
            "client_id": "ema-desktop",
            "client_auth": { "method": "none" }
        },
        "connectors": [
            {
                "id": "alpha",
                "display_name": "Alpha",
                "mcp_url": "https://mcp.alpha.example/mcp",
                "client_id": "ema-alpha",
                "client_auth": { "method": "none" }
            }
        ]
    })
}

/// A second connector with a distinct id, to append to `minimal()["connectors"]`.
fn beta() -> Value {
    json!({
        "id": "beta",
        "display_name": "Beta",
        "mcp_url": "https://mcp.beta.example/mcp",
        "client_id": "ema-beta",
        "client_auth": { "method": "none" }
    })
}

/// A change applied to `minimal()` in table-driven tests.
type Mutate = fn(&mut Value);

fn source() -> ConfigSource {
    ConfigSource::Explicit(PathBuf::from(FILE))
}

fn parse(v: &Value) -> Result<Policy, ConfigError> {
    Policy::parse(&v.to_string(), source())
}

#[track_caller]
fn parse_ok(v: &Value) -> Policy {
    match parse(v) {
        Ok(p) => p,
        Err(e) => panic!("expected the policy to be accepted, got: {e}\npolicy: {v}"),
    }
}

/// Asserts `v` is refused at `key` with exactly `fix`, naming [`FILE`], and returns the error.
#[track_caller]
fn expect_err(v: &Value, key: &str, fix: &str) -> ConfigError {
    let err = match parse(v) {
        Ok(_) => panic!("expected an error at `{key}`, but the policy was accepted: {v}"),
        Err(e) => e,
    };
    check_err(&err, Path::new(FILE), key, fix);
    err
}

#[track_caller]
fn check_err(err: &ConfigError, file: &Path, key: &str, fix: &str) {
    assert_eq!(err.key, key, "wrong key in: {err}");
    assert_eq!(err.file, file, "wrong file in: {err}");
    assert_eq!(err.fix, fix, "wrong fix in: {err}");
    assert_eq!(err.code(), "config-invalid");
    let shown = err.to_string();
    assert!(shown.contains(fix), "{shown}");
    assert!(shown.starts_with(&format!("{}: {key}: ", file.display())), "{shown}");
}

/// The example policy with the `private_key_jwt` connector's key pointed at `key_file`.
fn example_with_key_file(key_file: &str) -> Value {
    let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
    let auth = &mut v["connectors"][2]["client_auth"];
    assert_eq!(auth["method"], "private_key_jwt", "the example's third connector changed");
    auth["key_file"] = json!(key_file);
    v
}

/// A directory under the system temp dir, unique to this test, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ema-config-test-{name}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(path: &Path) -> Result<Policy, ConfigError> {
    Policy::load(ConfigSource::Explicit(path.to_path_buf()))
}

// ---------------------------------------------------------------------------------------------
// 1. The documented example
// ---------------------------------------------------------------------------------------------

#[test]
fn example_as_shipped_fails_only_on_its_placeholder_key_file() {
    let missing = "/etc/ema/keys/supabase-client.pem";
    assert!(!Path::new(missing).exists(), "this test assumes {missing} does not exist");
    let err = Policy::parse(EXAMPLE, source()).unwrap_err();
    check_err(
        &err,
        Path::new(FILE),
        "connectors[2].client_auth.key_file",
        "deploy the client key file or fix the path",
    );
    assert!(err.problem.starts_with(&format!("{missing} cannot be read: ")), "{err}");
}

#[test]
fn example_with_a_real_key_parses_fully() {
    let v = example_with_key_file(TEST_KEY);
    let p = parse_ok(&v);

    assert_eq!(p.source, source());

    assert_eq!(p.organization.name, "Example Corp");
    assert_eq!(p.organization.email_domains, ["example.com"]);
    let help = p.organization.help_desk.as_ref().unwrap();
    assert_eq!(help.name, "Example Corp IT Help Desk");
    assert_eq!(help.url.as_str(), "https://help.example.com/ai-connectors");

    assert_eq!(p.idp.issuer.as_str(), "https://example.okta.com/");
    assert_eq!(p.idp.client_id, "0oa1ema-desktop");
    assert_eq!(p.idp.client_auth.method_name(), "client_secret_post");
    match &p.idp.client_auth {
        ClientAuth::ClientSecretPost(s) => assert_eq!(s.secret(), "delivered-by-mdm-not-a-real-secret"),
        other => panic!("unexpected idp client_auth {other:?}"),
    }
    assert_eq!(p.idp.scopes, ["openid", "email", "profile", "offline_access"]);
    assert!(p.idp.scopes.iter().any(|s| s == "openid"));
    assert!(p.idp.scopes.iter().any(|s| s == "offline_access"));

    let ids: Vec<&str> = p.connectors.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["linear", "figma", "supabase"]);

    let linear = p.connector("linear").unwrap();
    assert_eq!(linear.display_name, "Linear");
    assert_eq!(linear.mcp_url.as_str(), "https://mcp.linear.app/mcp");
    assert_eq!(linear.authorization_server.as_ref().map(Url::as_str), Some("https://auth.linear.app/"));
    assert_eq!(linear.scopes, ["read", "write"]);
    assert_eq!(linear.client_id, "ema-desktop-example-corp");
    assert!(linear.idp_only);
    assert_eq!(linear.client_auth.method_name(), "client_secret_basic");
    match &linear.client_auth {
        ClientAuth::ClientSecretBasic(s) => assert_eq!(s.secret(), "per-connector-secret-from-mdm"),
        other => panic!("unexpected linear client_auth {other:?}"),
    }

    let figma = p.connector("figma").unwrap();
    assert_eq!(figma.display_name, "Figma");
    assert_eq!(figma.mcp_url.as_str(), "https://mcp.figma.com/mcp");
    assert!(figma.authorization_server.is_none());
    assert_eq!(figma.scopes, ["files:read"]);
    assert!(!figma.idp_only);
    assert_eq!(figma.client_auth.method_name(), "none");
    assert!(matches!(figma.client_auth, ClientAuth::None));

    let supabase = p.connector("supabase").unwrap();
    assert_eq!(supabase.display_name, "Supabase");
    assert_eq!(supabase.mcp_url.as_str(), "https://mcp.supabase.com/mcp");
    assert!(supabase.authorization_server.is_none());
    assert!(supabase.scopes.is_empty());
    assert!(supabase.idp_only);
    assert_eq!(supabase.client_auth.method_name(), "private_key_jwt");
    match &supabase.client_auth {
        ClientAuth::PrivateKeyJwt { key, key_id, alg } => {
            assert_eq!(key.secret(), std::fs::read_to_string(TEST_KEY).unwrap());
            assert_eq!(key_id.as_deref(), Some("ema-2026"));
            assert_eq!(*alg, jsonwebtoken::Algorithm::ES256);
        }
        other => panic!("unexpected supabase client_auth {other:?}"),
    }
    assert!(p.connector("github").is_none());

    assert_eq!(p.settings.expiry_warning, Duration::from_secs(10 * 60));
    assert_eq!(p.settings.renew_before_expiry, Duration::from_secs(120));
    assert_eq!(p.settings.max_parallel_connectors, 64);
    assert_eq!(p.settings.request_timeout, Duration::from_secs(15));
}

#[test]
fn email_domains_are_trimmed_and_lower_cased() {
    let mut v = example_with_key_file(TEST_KEY);
    v["organization"]["email_domains"] = json!(["Example.COM", " @Sub.Example.Org ", "EXAMPLE.co.uk"]);
    let p = parse_ok(&v);
    assert_eq!(p.organization.email_domains, ["example.com", "sub.example.org", "example.co.uk"]);
}

#[test]
fn fixture_policy_with_relative_key_loads() {
    // tests/data/config/policy-relative-key.json names `../test-client-key.pem`.
    let path = Path::new(FIXTURES).join("policy-relative-key.json");
    let p = load(&path).unwrap();
    assert_eq!(p.source, ConfigSource::Explicit(path.clone()));
    let c = p.connector("keyed").unwrap();
    assert_eq!(c.client_auth.method_name(), "private_key_jwt");
    match &c.client_auth {
        ClientAuth::PrivateKeyJwt { key_id, alg, .. } => {
            assert_eq!(key_id, &None);
            assert_eq!(*alg, jsonwebtoken::Algorithm::ES256, "alg defaults to ES256");
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Relative key_file paths
// ---------------------------------------------------------------------------------------------

fn policy_with_key_file(key_file: &str) -> Value {
    let mut v = minimal();
    v["connectors"][0]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": key_file, "key_id": "k1" });
    v
}

#[test]
fn relative_key_file_resolves_against_the_policy_directory() {
    let dir = TempDir::new("relative-key");
    dir.write("keys/client.pem", std::fs::read(TEST_KEY).unwrap());
    let policy = dir.write("policy.json", policy_with_key_file("keys/client.pem").to_string());

    let p = load(&policy).unwrap();
    assert_eq!(p.source, ConfigSource::Explicit(policy.clone()));
    match &p.connectors[0].client_auth {
        ClientAuth::PrivateKeyJwt { key, key_id, alg } => {
            assert_eq!(key.secret(), std::fs::read_to_string(TEST_KEY).unwrap());
            assert_eq!(key_id.as_deref(), Some("k1"));
            assert_eq!(*alg, jsonwebtoken::Algorithm::ES256);
        }
        other => panic!("unexpected {other:?}"),
    }

    // `./` and `..` are relative too.
    let nested = dir.write("nested/policy.json", policy_with_key_file("../keys/client.pem").to_string());
    assert!(load(&nested).is_ok());
    let dotted = dir.write("dotted.json", policy_with_key_file("./keys/client.pem").to_string());
    assert!(load(&dotted).is_ok());
}

#[test]
fn relative_key_file_is_not_resolved_against_the_working_directory() {
    let dir = TempDir::new("relative-missing");
    // The key exists relative to CARGO_MANIFEST_DIR (the test's working directory), not
    // relative to the policy's directory: the policy directory must win.
    let policy = dir.write("policy.json", policy_with_key_file("tests/data/test-client-key.pem").to_string());
    let err = load(&policy).unwrap_err();
    check_err(&err, &policy, "connectors[0].client_auth.key_file", "deploy the client key file or fix the path");
    let expected = dir.path().join("tests/data/test-client-key.pem");
    assert!(err.problem.starts_with(&format!("{} cannot be read: ", expected.display())), "{err}");
}

#[test]
fn absolute_key_file_is_used_as_is() {
    let dir = TempDir::new("absolute-key");
    let policy = dir.write("policy.json", policy_with_key_file(TEST_KEY).to_string());
    assert!(load(&policy).is_ok());
}

// ---------------------------------------------------------------------------------------------
// 3. Validation errors
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_policy_is_valid() {
    let p = parse_ok(&minimal());
    assert_eq!(p.organization.name, "Acme");
    assert_eq!(p.connectors.len(), 1);
    assert_eq!(p.idp.client_auth.method_name(), "none");
}

#[test]
fn error_display_is_file_key_problem_fix() {
    let mut v = minimal();
    v["schema_version"] = json!(2);
    let err = expect_err(&v, "schema_version", "use a policy written for this version of the app, or update the app");
    assert_eq!(err.problem, "is 2, this app understands 1");
    assert_eq!(
        err.to_string(),
        format!(
            "{FILE}: schema_version: is 2, this app understands 1. \
             Fix: use a policy written for this version of the app, or update the app"
        )
    );
}

#[test]
fn wrong_schema_version() {
    for version in [0, 2, 99] {
        let mut v = minimal();
        v["schema_version"] = json!(version);
        let err =
            expect_err(&v, "schema_version", "use a policy written for this version of the app, or update the app");
        assert_eq!(err.problem, format!("is {version}, this app understands {POLICY_SCHEMA_VERSION}"));
    }
    assert_eq!(POLICY_SCHEMA_VERSION, 1);
}

#[test]
fn unknown_keys_are_reported_with_their_path() {
    let cases: [(&str, Mutate); 7] = [
        ("connector", |v| v["connector"] = json!([])),
        ("organisation", |v| v["organisation"] = json!({ "name": "x" })),
        ("organization.emaildomains", |v| v["organization"]["emaildomains"] = json!([])),
        ("organization.help_desk.ulr", |v| v["organization"]["help_desk"] = json!({ "name": "IT", "ulr": "x" })),
        ("idp.client_auht", |v| v["idp"]["client_auht"] = json!({ "method": "none" })),
        ("connectors[0].scoeps", |v| v["connectors"][0]["scoeps"] = json!(["read"])),
        ("settings.max_parallel_connector", |v| v["settings"] = json!({ "max_parallel_connector": 4 })),
    ];
    for (key, mutate) in cases {
        let mut v = minimal();
        mutate(&mut v);
        let err = expect_err(&v, key, SHAPE_FIX);
        let typo = key.rsplit('.').next().unwrap();
        assert!(err.problem.starts_with(&format!("unknown field `{typo}`, expected ")), "{err}");
    }
}

#[test]
fn unknown_keys_in_a_second_connector_name_its_index() {
    let mut v = minimal();
    let mut b = beta();
    b["display-name"] = json!("Beta");
    v["connectors"].as_array_mut().unwrap().push(b);
    let err = expect_err(&v, "connectors[1].display-name", SHAPE_FIX);
    assert!(err.problem.contains("unknown field `display-name`"), "{err}");
}

#[test]
fn unknown_keys_inside_client_auth_are_reported_at_client_auth() {
    // client_auth is an internally tagged enum: serde buffers it, so the path stops at the
    // object and the message names the unknown field.
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": "client_secret_post", "client_secret": "s", "client_secert": "s" });
    let err = expect_err(&v, "idp.client_auth", SHAPE_FIX);
    assert!(err.problem.starts_with("unknown field `client_secert`, expected `client_secret`"), "{err}");

    let mut v = minimal();
    v["connectors"][0]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": TEST_KEY, "kid": "x" });
    let err = expect_err(&v, "connectors[0].client_auth", SHAPE_FIX);
    assert!(err.problem.starts_with("unknown field `kid`, expected one of "), "{err}");
}

#[test]
fn method_none_rejects_extra_keys() {
    // A secret next to `"method": "none"` is a mistake (the admin meant another method):
    // it must not be silently dropped.
    let mut v = minimal();
    v["connectors"][0]["client_auth"] = json!({ "method": "none", "client_secret": "s3cret-value" });
    let err = expect_err(&v, "connectors[0].client_auth", SHAPE_FIX);
    assert!(err.problem.starts_with("unknown field `client_secret`, there are no fields"), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cret-value"));
}

#[test]
fn missing_required_fields() {
    let cases: [(&str, &str, Mutate); 10] = [
        ("(file)", "schema_version", |v| drop(v.as_object_mut().unwrap().remove("schema_version"))),
        ("(file)", "organization", |v| drop(v.as_object_mut().unwrap().remove("organization"))),
        ("(file)", "idp", |v| drop(v.as_object_mut().unwrap().remove("idp"))),
        ("organization", "name", |v| drop(v["organization"].as_object_mut().unwrap().remove("name"))),
        ("organization.help_desk", "url", |v| v["organization"]["help_desk"] = json!({ "name": "IT" })),
        ("idp", "issuer", |v| drop(v["idp"].as_object_mut().unwrap().remove("issuer"))),
        ("idp", "client_auth", |v| drop(v["idp"].as_object_mut().unwrap().remove("client_auth"))),
        ("connectors[0]", "mcp_url", |v| drop(v["connectors"][0].as_object_mut().unwrap().remove("mcp_url"))),
        ("idp.client_auth", "client_secret", |v| v["idp"]["client_auth"] = json!({ "method": "client_secret_basic" })),
        ("connectors[0].client_auth", "key_file", |v| {
            v["connectors"][0]["client_auth"] = json!({ "method": "private_key_jwt" })
        }),
    ];
    for (key, field, mutate) in cases {
        let mut v = minimal();
        mutate(&mut v);
        let err = expect_err(&v, key, SHAPE_FIX);
        assert!(err.problem.starts_with(&format!("missing field `{field}`")), "{err}");
    }
}

#[test]
fn missing_method_tag() {
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "client_secret": "s" });
    let err = expect_err(&v, "idp.client_auth", SHAPE_FIX);
    assert!(err.problem.starts_with("missing field `method`"), "{err}");
}

#[test]
fn wrong_types() {
    let cases: [(&str, &str, Mutate); 10] = [
        ("schema_version", "expected u32", |v| v["schema_version"] = json!("1")),
        ("schema_version", "expected u32", |v| v["schema_version"] = json!(-1)),
        ("organization.name", "expected a string", |v| v["organization"]["name"] = json!(42)),
        ("organization.email_domains", "expected a sequence", |v| {
            v["organization"]["email_domains"] = json!("example.com")
        }),
        ("idp.scopes", "expected a sequence", |v| v["idp"]["scopes"] = json!("openid email")),
        ("connectors", "expected a sequence", |v| v["connectors"] = json!({ "alpha": {} })),
        ("connectors[0].idp_only", "expected a boolean", |v| v["connectors"][0]["idp_only"] = json!("yes")),
        ("connectors[0].scopes[0]", "expected a string", |v| v["connectors"][0]["scopes"] = json!([1])),
        ("settings.max_parallel_connectors", "expected usize", |v| {
            v["settings"] = json!({ "max_parallel_connectors": -1 })
        }),
        ("settings.request_timeout_seconds", "expected u64", |v| {
            v["settings"] = json!({ "request_timeout_seconds": 1.5 })
        }),
    ];
    for (key, expected, mutate) in cases {
        let mut v = minimal();
        mutate(&mut v);
        let err = expect_err(&v, key, SHAPE_FIX);
        assert!(err.problem.starts_with("invalid "), "{err}");
        assert!(err.problem.contains(expected), "{err}");
    }
}

#[test]
fn wrong_type_inside_client_auth() {
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": "client_secret_post", "client_secret": 5 });
    let err = expect_err(&v, "idp.client_auth", SHAPE_FIX);
    assert!(err.problem.starts_with("invalid type: integer `5`, expected a string"), "{err}");
}

#[test]
fn empty_organization_name() {
    for name in ["", "   ", "\t\n"] {
        let mut v = minimal();
        v["organization"]["name"] = json!(name);
        let err = expect_err(&v, "organization.name", "fill it in");
        assert_eq!(err.problem, "is empty");
    }
}

#[test]
fn bad_email_domains() {
    for bad in ["", "   ", "@", "localhost", "example", "ex ample.com", "user@example.com", "a@@b.com"] {
        let mut v = minimal();
        v["organization"]["email_domains"] = json!(["good.example", bad]);
        let err = expect_err(&v, "organization.email_domains[1]", "write a bare domain such as \"example.com\"");
        assert_eq!(err.problem, "is not a domain name", "{bad:?}");
    }
}

#[test]
fn help_desk_url_must_be_web_or_mailto() {
    for bad in ["ftp://help.acme.example", "file:///etc/passwd", "javascript:alert(1)", "tel:+15551234"] {
        let mut v = minimal();
        v["organization"]["help_desk"] = json!({ "name": "IT", "url": bad });
        let err = expect_err(&v, "organization.help_desk.url", "use the help-desk web page or a mailto: address");
        assert_eq!(err.problem, "must be an https, http or mailto URL", "{bad}");
    }
    let mut v = minimal();
    v["organization"]["help_desk"] = json!({ "name": "IT", "url": "help.acme.example" });
    let err = expect_err(&v, "organization.help_desk.url", "write an absolute URL such as https://example.com/path");
    assert!(err.problem.starts_with("is not a URL ("), "{err}");

    let mut v = minimal();
    v["organization"]["help_desk"] = json!({ "name": " ", "url": "https://help.acme.example" });
    expect_err(&v, "organization.help_desk.name", "fill it in");
}

#[test]
fn help_desk_accepts_https_mailto_and_http() {
    // http is accepted for the help desk (it is a page shown to the user, not an OAuth
    // endpoint), although the error message only mentions https and mailto.
    for ok in ["https://help.acme.example/it", "mailto:it@acme.example", "http://intranet.acme.example/help"] {
        let mut v = minimal();
        v["organization"]["help_desk"] = json!({ "name": "IT", "url": ok });
        let p = parse_ok(&v);
        assert_eq!(p.organization.help_desk.unwrap().url.as_str(), ok);
    }
}

#[test]
fn idp_issuer_must_be_https_unless_loopback() {
    for bad in ["http://idp.acme.example", "http://10.0.0.1/idp", "ftp://idp.acme.example"] {
        let mut v = minimal();
        v["idp"]["issuer"] = json!(bad);
        let err = expect_err(&v, "idp.issuer", "use the https:// URL of the server");
        assert!(err.problem.ends_with("is not https (only loopback addresses may use http)"), "{err}");
        assert!(err.to_string().contains("Fix: use the https:// URL of the server"));
    }
    for ok in ["http://127.0.0.1:8080/idp", "http://localhost:9000", "http://[::1]:9000/"] {
        let mut v = minimal();
        v["idp"]["issuer"] = json!(ok);
        parse_ok(&v);
    }
}

#[test]
fn issuer_userinfo_is_refused_without_echoing_the_password() {
    let mut v = minimal();
    v["idp"]["issuer"] = json!("https://user:hunter2@idp.acme.example/");
    let err = expect_err(&v, "idp.issuer", "remove the user:password@ part; credentials belong in client_auth");
    assert_eq!(err.problem, "`https://idp.acme.example/` carries a user name or password");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("user:hunter2"), "{shown}");

    // A user name alone is refused too.
    let mut v = minimal();
    v["idp"]["issuer"] = json!("https://admin@idp.acme.example/");
    let err = expect_err(&v, "idp.issuer", "remove the user:password@ part; credentials belong in client_auth");
    assert!(!format!("{err} {err:?}").contains("admin@"), "{err}");
}

#[test]
fn issuer_fragment_and_non_url() {
    let mut v = minimal();
    v["idp"]["issuer"] = json!("https://idp.acme.example/#x");
    let err = expect_err(&v, "idp.issuer", "remove the #fragment");
    assert!(err.problem.ends_with("has a #fragment"), "{err}");

    for bad in ["idp.acme.example", "", "https://"] {
        let mut v = minimal();
        v["idp"]["issuer"] = json!(bad);
        let err = expect_err(&v, "idp.issuer", "write an absolute URL such as https://example.com/path");
        assert!(err.problem.starts_with("is not a URL ("), "{err}");
    }
}

#[test]
fn empty_client_ids() {
    let mut v = minimal();
    v["idp"]["client_id"] = json!("");
    expect_err(&v, "idp.client_id", "fill it in");

    let mut v = minimal();
    v["connectors"][0]["client_id"] = json!("  ");
    expect_err(&v, "connectors[0].client_id", "fill it in");

    let mut v = minimal();
    v["connectors"][0]["display_name"] = json!("");
    expect_err(&v, "connectors[0].display_name", "fill it in");
}

#[test]
fn connector_id_must_be_a_short_slug() {
    let too_long = "a".repeat(65);
    for bad in ["Linear", "LINEAR", "", "my_connector", "my connector", "lineär", "a.b", too_long.as_str()] {
        let mut v = minimal();
        v["connectors"][0]["id"] = json!(bad);
        let err = expect_err(&v, "connectors[0].id", "use a short slug such as \"linear\"");
        assert_eq!(err.problem, "must be 1-64 characters of a-z, 0-9 and -", "{bad:?}");
    }
    let longest = "a".repeat(64);
    for ok in ["a", "0", "google-drive", "m365-2", longest.as_str()] {
        let mut v = minimal();
        v["connectors"][0]["id"] = json!(ok);
        assert_eq!(parse_ok(&v).connectors[0].id, ok);
    }
}

#[test]
fn second_connector_errors_name_index_one() {
    let mut v = minimal();
    let mut b = beta();
    b["id"] = json!("Beta");
    v["connectors"].as_array_mut().unwrap().push(b);
    expect_err(&v, "connectors[1].id", "use a short slug such as \"linear\"");
}

#[test]
fn duplicate_connector_ids() {
    let mut v = minimal();
    let mut b = beta();
    b["id"] = json!("alpha");
    v["connectors"].as_array_mut().unwrap().push(b);
    let err = expect_err(&v, "connectors[1].id", "give every connector a unique id");
    assert_eq!(err.problem, "`alpha` is used twice");

    // The key names the first repeat, not a later one.
    let mut v = minimal();
    let list = v["connectors"].as_array_mut().unwrap();
    list.push(beta());
    list.push(beta());
    expect_err(&v, "connectors[2].id", "give every connector a unique id");
}

#[test]
fn connector_urls_are_endpoint_checked() {
    let cases = [
        ("mcp_url", "not a url", "write an absolute URL such as https://example.com/path"),
        ("mcp_url", "/mcp", "write an absolute URL such as https://example.com/path"),
        ("mcp_url", "http://mcp.alpha.example/mcp", "use the https:// URL of the server"),
        ("mcp_url", "https://mcp.alpha.example/mcp#top", "remove the #fragment"),
        (
            "mcp_url",
            "https://u:p@mcp.alpha.example/mcp",
            "remove the user:password@ part; credentials belong in client_auth",
        ),
        ("authorization_server", "http://auth.alpha.example", "use the https:// URL of the server"),
        ("authorization_server", "auth.alpha.example", "write an absolute URL such as https://example.com/path"),
    ];
    for (field, url, fix) in cases {
        let mut v = minimal();
        v["connectors"][0][field] = json!(url);
        expect_err(&v, &format!("connectors[0].{field}"), fix);
    }
    let mut v = minimal();
    v["connectors"][0]["mcp_url"] = json!("http://127.0.0.1:3000/mcp");
    v["connectors"][0]["authorization_server"] = json!("http://localhost:3001");
    let p = parse_ok(&v);
    assert_eq!(p.connectors[0].mcp_url.as_str(), "http://127.0.0.1:3000/mcp");
    assert_eq!(p.connectors[0].authorization_server.as_ref().unwrap().as_str(), "http://localhost:3001/");
}

#[test]
fn scopes_must_be_single_tokens() {
    for bad in ["read write", "", "quote\"d", "back\\slash", "tab\t", "naïve"] {
        let mut v = minimal();
        v["connectors"][0]["scopes"] = json!(["read", bad]);
        let err = expect_err(&v, "connectors[0].scopes[1]", "one scope per array item, no spaces or quotes");
        assert_eq!(err.problem, "is not a valid scope token (RFC 6749 §3.3)", "{bad:?}");

        let mut v = minimal();
        v["idp"]["scopes"] = json!([bad, "openid"]);
        expect_err(&v, "idp.scopes[0]", "one scope per array item, no spaces or quotes");
    }
    let mut v = minimal();
    v["connectors"][0]["scopes"] = json!(["files:read", "https://graph.example/.default", "a!#$%&'()*+,-./[]^_`{|}~"]);
    assert_eq!(parse_ok(&v).connectors[0].scopes.len(), 3);
}

#[test]
fn empty_client_secrets() {
    for method in ["client_secret_basic", "client_secret_post"] {
        for secret in ["", "   "] {
            let mut v = minimal();
            v["idp"]["client_auth"] = json!({ "method": method, "client_secret": secret });
            let err = expect_err(&v, "idp.client_auth.client_secret", "fill it in");
            assert_eq!(err.problem, "is empty");

            let mut v = minimal();
            v["connectors"][0]["client_auth"] = json!({ "method": method, "client_secret": secret });
            expect_err(&v, "connectors[0].client_auth.client_secret", "fill it in");
        }
    }
}

#[test]
fn private_key_jwt_algorithms() {
    for bad in ["HS256", "none", "es256", "RS512", ""] {
        let mut v = minimal();
        v["connectors"][0]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": TEST_KEY, "alg": bad });
        let err = expect_err(&v, "connectors[0].client_auth.alg", "use one of ES256, ES384, RS256, PS256, EdDSA");
        assert_eq!(err.problem, format!("`{bad}` is not an allowed signing algorithm"));
    }
    // On the IdP too.
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": TEST_KEY, "alg": "HS512" });
    expect_err(&v, "idp.client_auth.alg", "use one of ES256, ES384, RS256, PS256, EdDSA");

    // An allowed algorithm that does not match the EC P-256 key is a key_file error.
    for alg in ["RS256", "PS256", "EdDSA"] {
        let mut v = minimal();
        v["connectors"][0]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": TEST_KEY, "alg": alg });
        let err =
            expect_err(&v, "connectors[0].client_auth.key_file", "provide a PKCS#8 PEM private key matching `alg`");
        assert!(err.problem.starts_with(&format!("{TEST_KEY}: ")), "{err}");
    }
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": "private_key_jwt", "key_file": TEST_KEY, "alg": "ES256" });
    let p = parse_ok(&v);
    assert_eq!(p.idp.client_auth.method_name(), "private_key_jwt");
}

#[test]
fn unusable_key_file_is_refused_without_echoing_it() {
    let dir = TempDir::new("bad-key");
    let body = "-----BEGIN PRIVATE KEY-----\ncanary-key-material-789\n-----END PRIVATE KEY-----\n";
    dir.write("bad.pem", body);
    let policy = dir.write("policy.json", policy_with_key_file("bad.pem").to_string());
    let err = load(&policy).unwrap_err();
    check_err(&err, &policy, "connectors[0].client_auth.key_file", "provide a PKCS#8 PEM private key matching `alg`");
    assert!(err.problem.starts_with(&format!("{}: ", dir.path().join("bad.pem").display())), "{err}");
    assert!(!format!("{err} {err:?}").contains("canary-key-material-789"), "{err}");

    // The real key's body never appears in a valid policy's Debug either.
    let key_body = std::fs::read_to_string(TEST_KEY).unwrap();
    let secret_line = key_body.lines().nth(1).unwrap();
    let policy = dir.write("good.json", policy_with_key_file(TEST_KEY).to_string());
    let p = load(&policy).unwrap();
    assert!(!format!("{p:?}").contains(secret_line));
}

#[test]
fn max_parallel_connectors_bounds() {
    for bad in [0, 129, 1000] {
        let mut v = minimal();
        v["settings"] = json!({ "max_parallel_connectors": bad });
        let err = expect_err(&v, "settings.max_parallel_connectors", "use 64 unless you have measured otherwise");
        assert_eq!(err.problem, "must be between 1 and 128");
    }
    for ok in [1, 64, 128] {
        let mut v = minimal();
        v["settings"] = json!({ "max_parallel_connectors": ok });
        assert_eq!(parse_ok(&v).settings.max_parallel_connectors, ok);
    }
}

#[test]
fn request_timeout_bounds() {
    for bad in [0, 301] {
        let mut v = minimal();
        v["settings"] = json!({ "request_timeout_seconds": bad });
        let err = expect_err(&v, "settings.request_timeout_seconds", "use 15");
        assert_eq!(err.problem, "must be between 1 and 300");
    }
    for ok in [1, 300] {
        let mut v = minimal();
        v["settings"] = json!({ "request_timeout_seconds": ok });
        assert_eq!(parse_ok(&v).settings.request_timeout, Duration::from_secs(ok));
    }
}

#[test]
fn huge_or_zero_timing_settings_are_refused_not_panicked_on() {
    // Regression: `minutes * 60` overflowed (a panic in debug builds) on a policy value.
    for bad in [0, 10_081, u64::MAX] {
        let mut v = minimal();
        v["settings"] = json!({ "expiry_warning_minutes": bad });
        let err = expect_err(&v, "settings.expiry_warning_minutes", "use 10");
        assert_eq!(err.problem, "must be between 1 and 10080 (a week)");
    }
    for bad in [0, 9, 86_401, u64::MAX] {
        let mut v = minimal();
        v["settings"] = json!({ "renew_before_expiry_seconds": bad });
        expect_err(&v, "settings.renew_before_expiry_seconds", "use 120");
    }
    let mut v = minimal();
    v["settings"] = json!({ "expiry_warning_minutes": 10_080, "renew_before_expiry_seconds": 86_400 });
    let s = parse_ok(&v).settings;
    assert_eq!(s.expiry_warning, Duration::from_secs(10_080 * 60));
    assert_eq!(s.renew_before_expiry, Duration::from_secs(86_400));
    assert_eq!(s.locked, vec!["expiry_warning_minutes"]);
}

#[test]
fn first_error_wins_in_document_order() {
    // Organization is validated before the IdP, the IdP before connectors, connectors before settings.
    let mut v = minimal();
    v["organization"]["name"] = json!("");
    v["idp"]["issuer"] = json!("http://idp.acme.example");
    v["settings"] = json!({ "max_parallel_connectors": 0 });
    expect_err(&v, "organization.name", "fill it in");
    v["organization"]["name"] = json!("Acme");
    expect_err(&v, "idp.issuer", "use the https:// URL of the server");
    v["idp"]["issuer"] = json!("https://idp.acme.example");
    expect_err(&v, "settings.max_parallel_connectors", "use 64 unless you have measured otherwise");
}

// ---------------------------------------------------------------------------------------------
// 4. Secret hygiene
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn assert_not_leaked(err: &ConfigError, canary: &str) {
    let shown = err.to_string();
    let debug = format!("{err:?}");
    let pretty = format!("{err:#?}");
    for out in [&shown, &debug, &pretty] {
        assert!(!out.contains(canary), "{out}");
    }
}

#[test]
fn secret_in_a_number_field_is_not_echoed() {
    let canary = "canary-secret-123";
    let mut v = minimal();
    v["settings"] = json!({ "max_parallel_connectors": canary });
    let err = expect_err(&v, "settings.max_parallel_connectors", SHAPE_FIX);
    assert!(err.problem.starts_with("invalid type: string \"…\", expected usize"), "{err}");
    assert_not_leaked(&err, canary);

    let mut v = minimal();
    v["schema_version"] = json!(canary);
    let err = expect_err(&v, "schema_version", SHAPE_FIX);
    assert_not_leaked(&err, canary);

    let mut v = minimal();
    v["connectors"][0]["idp_only"] = json!(canary);
    let err = expect_err(&v, "connectors[0].idp_only", SHAPE_FIX);
    assert_not_leaked(&err, canary);
}

#[test]
fn secret_as_an_unknown_method_is_not_echoed() {
    let canary = "canary-secret-123";
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": canary, "client_secret": canary });
    let err = expect_err(&v, "idp.client_auth.method", SHAPE_FIX);
    assert!(
        err.problem.starts_with(
            "unknown variant `…`, expected one of `none`, `client_secret_basic`, `client_secret_post`, `private_key_jwt`"
        ),
        "{err}"
    );
    assert_not_leaked(&err, canary);

    // A whole client_auth that is just the secret string.
    let mut v = minimal();
    v["connectors"][0]["client_auth"] = json!(canary);
    let err = expect_err(&v, "connectors[0].client_auth", SHAPE_FIX);
    assert_not_leaked(&err, canary);
}

#[test]
fn secrets_with_quotes_or_backticks_are_not_echoed() {
    // serde Debug-escapes quoted values and prints variants raw: embedded `"` or `` ` `` must
    // not end the redaction early.
    let canary = "canary-secret-123";
    let tricky =
        [format!("x\"{canary}"), format!("x\\\"{canary}"), format!("a`{canary}`b"), format!("`, expected {canary}")];
    for value in &tricky {
        let mut v = minimal();
        v["settings"] = json!({ "max_parallel_connectors": value });
        let err = expect_err(&v, "settings.max_parallel_connectors", SHAPE_FIX);
        assert_not_leaked(&err, canary);

        let mut v = minimal();
        v["idp"]["client_auth"] = json!({ "method": value });
        let err = expect_err(&v, "idp.client_auth.method", SHAPE_FIX);
        assert_not_leaked(&err, canary);
    }
}

#[test]
fn secret_in_a_url_field_is_not_echoed() {
    let canary = "canary-secret-123";
    let mut v = minimal();
    v["idp"]["issuer"] = json!(canary);
    let err = expect_err(&v, "idp.issuer", "write an absolute URL such as https://example.com/path");
    assert_not_leaked(&err, canary);
}

#[test]
fn debug_of_a_valid_policy_redacts_client_secrets() {
    let canary = "canary-secret-456";
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({ "method": "client_secret_post", "client_secret": canary });
    v["connectors"][0]["client_auth"] = json!({ "method": "client_secret_basic", "client_secret": canary });
    let p = parse_ok(&v);
    for out in [format!("{p:?}"), format!("{p:#?}"), format!("{:?}", p.idp), format!("{:?}", p.connectors)] {
        assert!(!out.contains(canary), "{out}");
        assert!(out.contains("ClientSecret([redacted])"), "{out}");
    }
    // The secret is still there for the token endpoint.
    match &p.idp.client_auth {
        ClientAuth::ClientSecretPost(s) => assert_eq!(s.secret(), canary),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn redact_serde_message_cases() {
    assert_eq!(
        redact_serde_message("invalid type: string \"hunter2\", expected usize"),
        "invalid type: string \"…\", expected usize"
    );
    assert_eq!(
        redact_serde_message(r#"invalid type: string "a\"hunter2\\", expected u32"#),
        "invalid type: string \"…\", expected u32"
    );
    assert_eq!(
        redact_serde_message("invalid value: string \"x`hunter2`y\", expected a URL"),
        "invalid value: string \"…\", expected a URL"
    );
    assert_eq!(
        redact_serde_message("unknown field `client_auht`, expected one of `issuer`, `client_id`"),
        "unknown field `client_auht`, expected one of `issuer`, `client_id`"
    );
    assert_eq!(
        redact_serde_message("unknown variant `hunter2`, expected one of `none`, `client_secret_basic`"),
        "unknown variant `…`, expected one of `none`, `client_secret_basic`"
    );
    assert_eq!(
        redact_serde_message("unknown variant `hun`ter2`, expected `none`"),
        "unknown variant `…`, expected `none`"
    );
    assert_eq!(
        redact_serde_message("unknown variant `hunter2`, there are no variants"),
        "unknown variant `…`, there are no variants"
    );
    assert_eq!(redact_serde_message("unknown variant `hunter2"), "unknown variant `…`");
    assert_eq!(redact_serde_message("missing field `idp`"), "missing field `idp`");
}

// ---------------------------------------------------------------------------------------------
// 5. Reading the file
// ---------------------------------------------------------------------------------------------

#[test]
fn load_reads_a_valid_file_and_keeps_its_source() {
    let dir = TempDir::new("valid");
    let path = dir.write("policy.json", serde_json::to_string_pretty(&minimal()).unwrap());
    let p = load(&path).unwrap();
    assert_eq!(p.source, ConfigSource::Explicit(path.clone()));

    let managed = Policy::load(ConfigSource::Managed(path.clone())).unwrap();
    assert_eq!(managed.source, ConfigSource::Managed(path.clone()));
    let user = Policy::load(ConfigSource::User(path.clone())).unwrap();
    assert_eq!(user.source, ConfigSource::User(path));
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let dir = TempDir::new("oversized");
    let size = MAX_POLICY_BYTES + 1;
    let path = dir.write("policy.json", vec![b' '; usize::try_from(size).unwrap()]);
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "(file)", "point to the policy JSON itself, not another file");
    assert_eq!(err.problem, format!("is {size} bytes, more than the {MAX_POLICY_BYTES}-byte limit for a policy"));
    assert!(err.problem.contains("1048576-byte limit"), "{err}");
    assert_eq!(MAX_POLICY_BYTES, 1024 * 1024);
}

#[test]
fn file_of_exactly_the_limit_is_read() {
    // A valid policy padded with whitespace to exactly MAX_POLICY_BYTES is accepted.
    let dir = TempDir::new("at-limit");
    let mut text = minimal().to_string().into_bytes();
    text.resize(usize::try_from(MAX_POLICY_BYTES).unwrap(), b' ');
    let path = dir.write("policy.json", text);
    assert!(load(&path).is_ok());
}

#[test]
fn missing_file() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nope.json");
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "(file)", "check the path and its permissions, or pass --config");
    assert!(err.problem.starts_with("cannot be read: "), "{err}");
}

#[test]
fn directory_instead_of_file() {
    let dir = TempDir::new("is-dir");
    let err = load(dir.path()).unwrap_err();
    check_err(&err, dir.path(), "(file)", "point to the policy JSON file inside it (usually policy.json)");
    assert_eq!(err.problem, "is a directory");
}

#[test]
fn non_utf8_file() {
    let dir = TempDir::new("non-utf8");
    let path = dir.write("policy.json", b"{\"schema_version\": 1, \"organization\": {\"name\": \"Acme \xff\xfe\"}}");
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "(file)", "save the policy as UTF-8 JSON");
    assert!(err.problem.starts_with("cannot be read as UTF-8 text: "), "{err}");

    // UTF-16 (what some Windows editors write) is not UTF-8 either.
    let utf16: Vec<u8> = "\u{feff}{}".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let path = dir.write("utf16.json", utf16);
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "(file)", "save the policy as UTF-8 JSON");
}

#[test]
fn not_json_file() {
    let dir = TempDir::new("not-json");
    for (name, text) in [
        ("plain.json", "this is not json"),
        ("empty.json", ""),
        ("toml.json", "schema_version = 1\n"),
        ("array.json", "[]"),
        ("null.json", "null"),
        ("trailing.json", "{\"schema_version\": 1} {}"),
    ] {
        let path = dir.write(name, text);
        let err = load(&path).unwrap_err();
        check_err(&err, &path, "(file)", SHAPE_FIX);
    }
}

#[test]
fn truncated_json_reports_the_path_serde_reports() {
    // A syntax error part-way through is reported at the innermost path serde_path_to_error
    // knows; a key not yet read (serde's `?`) is reported as the file itself.
    let dir = TempDir::new("truncated");
    let path = dir.write("policy.json", "{\"schema_version\": 1, ");
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "(file)", SHAPE_FIX);
    assert!(err.problem.starts_with("EOF while parsing"), "{err}");

    let path = dir.write("cut.json", "{\"schema_version\": 1, \"idp\": {\"client_auth\": {\"method\": \"no");
    let err = load(&path).unwrap_err();
    check_err(&err, &path, "idp.client_auth.method", SHAPE_FIX);
    assert!(err.problem.starts_with("EOF while parsing"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 6. Locating the policy
// ---------------------------------------------------------------------------------------------

#[test]
fn explicit_path_is_used_even_if_missing() {
    let path = PathBuf::from("/definitely/not/here/policy.json");
    assert_eq!(locate_policy(Some(path.clone())), Ok(ConfigSource::Explicit(path)));
}

#[test]
fn locate_without_explicit_path() {
    let managed = managed_policy_path();
    let user = user_policy_path();
    match locate_policy(None) {
        Ok(ConfigSource::Managed(p)) => {
            assert_eq!(p, managed);
            assert!(p.exists());
        }
        Ok(ConfigSource::User(p)) => {
            assert!(!managed.exists(), "a managed policy must win over the user's");
            assert_eq!(Some(p.clone()), user);
            assert!(p.exists());
        }
        Ok(other) => panic!("locate_policy(None) returned {other:?}"),
        Err(tried) => {
            assert!(!managed.exists());
            assert_eq!(tried.first(), Some(&managed));
            let mut expected = vec![managed];
            expected.extend(user);
            assert_eq!(tried, expected);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn linux_locations() {
    assert_eq!(managed_policy_path(), PathBuf::from("/etc/ema/policy.json"));
    if !managed_policy_path().exists() {
        let tried = locate_policy(None).map(|s| s.path().to_path_buf());
        match tried {
            Err(tried) => assert_eq!(tried[0], PathBuf::from("/etc/ema/policy.json")),
            // Only possible when the user has their own copy.
            Ok(p) => assert_eq!(Some(p), user_policy_path()),
        }
    }
}

#[test]
fn user_policy_path_is_in_the_config_dir() {
    if let Some(p) = user_policy_path() {
        assert!(p.ends_with(Path::new("ema").join("policy.json")), "{}", p.display());
        assert_eq!(Some(p.parent().unwrap().parent().unwrap().to_path_buf()), dirs::config_dir());
    }
}

#[test]
fn config_source_path_and_json_shape() {
    let p = PathBuf::from("/x/policy.json");
    for (s, kind) in [
        (ConfigSource::Explicit(p.clone()), "explicit"),
        (ConfigSource::Managed(p.clone()), "managed"),
        (ConfigSource::User(p.clone()), "user"),
    ] {
        assert_eq!(s.path(), p.as_path());
        assert_eq!(serde_json::to_value(&s).unwrap(), json!({ "kind": kind, "path": "/x/policy.json" }));
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Defaults
// ---------------------------------------------------------------------------------------------

#[test]
fn settings_default_when_absent() {
    let v = minimal();
    assert!(v.get("settings").is_none());
    let s = parse_ok(&v).settings;
    assert_eq!(s.expiry_warning, Duration::from_secs(600));
    assert_eq!(s.renew_before_expiry, Duration::from_secs(120));
    assert_eq!(s.max_parallel_connectors, 64);
    assert_eq!(s.request_timeout, Duration::from_secs(15));

    let d = Settings::default();
    assert_eq!(
        (d.expiry_warning, d.renew_before_expiry, d.max_parallel_connectors, d.request_timeout),
        (s.expiry_warning, s.renew_before_expiry, s.max_parallel_connectors, s.request_timeout)
    );
}

#[test]
fn settings_default_per_key() {
    let mut v = minimal();
    v["settings"] = json!({});
    let s = parse_ok(&v).settings;
    assert_eq!(s.max_parallel_connectors, 64);
    assert_eq!(s.request_timeout, Duration::from_secs(15));

    let mut v = minimal();
    v["settings"] = json!({ "expiry_warning_minutes": 30, "request_timeout_seconds": 60 });
    let s = parse_ok(&v).settings;
    assert_eq!(s.expiry_warning, Duration::from_secs(30 * 60));
    assert_eq!(s.renew_before_expiry, Duration::from_secs(120));
    assert_eq!(s.max_parallel_connectors, 64);
    assert_eq!(s.request_timeout, Duration::from_secs(60));

    assert!(s.notifications && !s.start_at_login);
}

#[test]
fn idp_scopes_default_when_absent() {
    let v = minimal();
    assert!(v["idp"].get("scopes").is_none());
    assert_eq!(parse_ok(&v).idp.scopes, ["openid", "email", "profile", "offline_access"]);
}

#[test]
fn required_idp_scopes_are_appended() {
    let cases: [(Value, &[&str]); 5] = [
        (json!(["openid", "email"]), &["openid", "email", "offline_access"]),
        (json!(["email"]), &["email", "openid", "offline_access"]),
        (json!([]), &["openid", "offline_access"]),
        (json!(["offline_access", "openid"]), &["offline_access", "openid"]),
        (json!(["groups", "openid", "offline_access"]), &["groups", "openid", "offline_access"]),
    ];
    for (given, expected) in cases {
        let mut v = minimal();
        v["idp"]["scopes"] = given.clone();
        assert_eq!(parse_ok(&v).idp.scopes, expected, "{given}");
    }
}

#[test]
fn optional_fields_default() {
    let p = parse_ok(&minimal());
    assert!(p.organization.email_domains.is_empty());
    assert!(p.organization.help_desk.is_none());
    let c = &p.connectors[0];
    assert!(c.scopes.is_empty());
    assert!(c.authorization_server.is_none());
    assert!(!c.idp_only);

    let mut v = minimal();
    v.as_object_mut().unwrap().remove("connectors");
    assert!(parse_ok(&v).connectors.is_empty());
}

#[test]
fn byte_order_mark_is_accepted() {
    let text = format!("\u{feff}{}", minimal());
    assert!(Policy::parse(&text, ConfigSource::Explicit("bom.json".into())).is_ok());
}

#[test]
fn oversized_key_file_is_refused_before_reading() {
    let dir = TempDir::new("bigkey");
    let key = dir.write("key.pem", "A".repeat(65 * 1024));
    let mut v = minimal();
    v["idp"]["client_auth"] = json!({"method": "private_key_jwt", "key_file": key.to_str().unwrap()});
    let path = dir.write("policy.json", v.to_string());
    let err = load(&path).unwrap_err();
    assert_eq!(err.key, "idp.client_auth.key_file");
    assert!(err.problem.contains("larger than 64 KiB"), "{err}");
}

#[test]
fn the_idp_is_named_by_the_policy_else_told_from_its_host() {
    let mut v = minimal();
    assert_eq!(parse_ok(&v).idp.name(), "idp.acme.example");
    v["idp"]["issuer"] = json!("https://acme.okta.com");
    assert_eq!(parse_ok(&v).idp.name(), "Okta");
    v["idp"]["issuer"] = json!("https://login.microsoftonline.com/tenant/v2.0");
    assert_eq!(parse_ok(&v).idp.name(), "Microsoft Entra ID");
    v["idp"]["display_name"] = json!("  Acme SSO ");
    assert_eq!(parse_ok(&v).idp.name(), "Acme SSO");
    v["idp"]["display_name"] = json!("two\nlines");
    expect_err(&v, "idp.display_name", "use the name your users know the IdP by, such as \"Okta\"");
}

#[test]
fn the_exchange_subject_is_learned_unless_the_policy_says() {
    assert_eq!(parse_ok(&minimal()).idp.exchange_subject, ExchangeSubject::Auto);
    for (word, expected) in [
        ("auto", ExchangeSubject::Auto),
        ("id_token", ExchangeSubject::IdToken),
        ("refresh_token", ExchangeSubject::RefreshToken),
    ] {
        let mut v = minimal();
        v["idp"]["exchange_subject"] = json!(word);
        assert_eq!(parse_ok(&v).idp.exchange_subject, expected);
        assert_eq!(expected.as_str(), word);
    }
    let mut v = minimal();
    v["idp"]["exchange_subject"] = json!("access_token");
    expect_err(&v, "idp.exchange_subject", "use \"auto\" (the default), \"id_token\" or \"refresh_token\"");
}
