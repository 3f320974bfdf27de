//! `ema doctor` against the sandbox org with injected faults, through the binary: each check's
//! outcome, the failing leg named per connector, the likely cause (the clock), the support ID
//! and the trace, and no token anywhere in the output.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use crate::util::{secrets_in, text};
use std::process::Output;

use ema_core::store::SecretStore;
use ema_e2e::{Org, ema_command, fixture_canaries, fixture_home, require_keyring_session};
use serde_json::Value;

/// `ema` as `user`, with an empty home of the org's own (so no real personal connection is read).
fn ema(org: &Org, user: &str, args: &[&str]) -> Output {
    Ema::on(org, user).home(&org.dir.join("empty-home")).run(args)
}

fn doctor(org: &Org) -> (Value, Output) {
    let out = ema(org, "-", &["doctor", "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}\n{}", text(&out)));
    (v, out)
}

fn check<'v>(d: &'v Value, name: &str) -> &'v Value {
    d["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}: {d}"))
}

fn connector<'v>(d: &'v Value, id: &str) -> &'v Value {
    d["connectors"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_failing_leg_and_the_likely_cause_for_each_fault() {
    require_keyring_session();
    let org = Org::start("doctor").await;
    let login = ema(&org, "alice", &["login"]);
    assert!(login.status.code().is_some_and(|c| c <= 1), "{}", text(&login));
    let mut outputs = String::new();

    // Healthy: every check passes; Figma is not assigned to alice, which is not an error.
    let (d, out) = doctor(&org);
    outputs.push_str(&text(&out));
    assert_eq!(out.status.code(), Some(0), "{d:#}");
    assert_eq!(d["version"], 1);
    let id = d["support_id"].as_str().unwrap();
    assert!(id.starts_with("EMA-") && id.len() == 13, "{id}");
    for name in [
        "policy-valid",
        "keyring-available",
        "idp-discovery",
        "idp-jwks",
        "clock-skew",
        "connector-linear",
        "personal-connections",
    ] {
        assert_eq!(check(&d, name)["outcome"], "pass", "{name}: {d:#}");
    }
    assert!(check(&d, "connector-figma")["summary"].as_str().unwrap().contains("not assigned"), "{d:#}");
    let legs: Vec<&str> =
        connector(&d, "linear")["trace"].as_array().unwrap().iter().map(|s| s["leg"].as_str().unwrap()).collect();
    assert!(
        legs.contains(&"token-exchange") && legs.contains(&"jwt-bearer-grant"),
        "the trace shows both legs: {legs:?}"
    );
    let grant =
        connector(&d, "linear")["trace"].as_array().unwrap().iter().find(|s| s["leg"] == "jwt-bearer-grant").unwrap();
    assert_eq!(grant["tokens"][0]["typ"], "oauth-id-jag+jwt", "the ID-JAG's header and claims: {grant}");
    assert!(grant["tokens"][0]["claims"]["jti"].is_string());
    // The MCP check is the last step, with the server it reached.
    let last = connector(&d, "linear")["trace"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["leg"].as_str(), last["http_status"].as_u64()), (Some("mcp-initialize"), Some(200)), "{last}");
    assert!(last["detail"].as_str().unwrap().contains("(MCP 20"), "{last}");
    let summary = check(&d, "connector-linear")["summary"].as_str().unwrap();
    assert!(summary.contains("token exchange") && summary.contains("ms, MCP initialize"), "timings per leg: {summary}");
    // Hints from the metadata (ID-JAG -04 §7): the sandbox advertises ID-JAG at both ends.
    let hints = |name: &str, d: &Value| check(d, name)["hints"].to_string();
    assert!(hints("idp-discovery", &d).contains("lists ID-JAG in identity_chaining_requested_token_types_supported"));
    assert!(hints("connector-linear", &d).contains("lists the ID-JAG grant profile"), "{d:#}");
    assert_eq!(connector(&d, "linear")["hints"], check(&d, "connector-linear")["hints"]);

    // The AS refuses Linear's grant: the leg, the code and the fix.
    org.sandbox.knobs().update(|k| {
        k.failing_connectors.insert("linear".into(), ema_sandbox::ConnectorFailure::InvalidGrant);
    });
    let (d, out) = doctor(&org);
    outputs.push_str(&text(&out));
    assert_eq!(out.status.code(), Some(1));
    let linear = connector(&d, "linear");
    assert_eq!(linear["failed_leg"], "grant", "{linear:#}");
    assert_eq!(linear["code"], "connector-grant-oauth-invalid-grant");
    assert_ne!(check(&d, "connector-linear")["outcome"], "pass");
    assert!(hints("connector-linear", &d).contains("grant profile"), "a failed grant keeps its hints: {d:#}");
    let human = ema(&org, "-", &["doctor"]);
    outputs.push_str(&text(&human));
    let t = text(&human);
    assert!(t.contains("    hint: the IdP lists ID-JAG"), "{t}");
    assert!(t.contains("the grant at the connector's authorization server"), "{t}");
    assert!(t.contains("Sandbox Help Desk") && t.contains("support ID EMA-"), "{t}");
    org.sandbox.knobs().update(|k| k.failing_connectors.clear());

    // The IdP is down: discovery fails and renewals fail at sign-in or the exchange.
    org.sandbox.knobs().update(|k| k.idp_down = true);
    let (d, out) = doctor(&org);
    outputs.push_str(&text(&out));
    assert_eq!(check(&d, "idp-discovery")["outcome"], "fail", "{d:#}");
    assert_eq!(check(&d, "idp-jwks")["outcome"], "skip");
    let linear = connector(&d, "linear");
    assert!(matches!(linear["failed_leg"].as_str(), Some("sign-in" | "token-exchange")), "{linear:#}");
    org.sandbox.knobs().update(|k| k.idp_down = false);

    // The servers' clocks are 5 minutes ahead: the clock is named.
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 300);
    let (d, out) = doctor(&org);
    outputs.push_str(&text(&out));
    let skew = check(&d, "clock-skew");
    assert_eq!(skew["outcome"], "fail", "{skew}");
    let summary = skew["summary"].as_str().unwrap();
    assert!(summary.contains("ahead of this computer's clock"), "{summary}");
    let secs: i64 = summary.split(" s ahead").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((298..=302).contains(&secs), "{summary}");
    assert!(skew["fix"].as_str().unwrap().contains("automatic time"), "{skew}");
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 0);

    // No token in any output (trace logging on).
    let issuer = org.sandbox.idp_issuer();
    let doc = ema_core::store::KeyringStore::new().get(&format!("connectors:{issuer}#ema-desktop")).unwrap().unwrap();
    let records: Value = serde_json::from_str(&doc).unwrap();
    let mut tokens = 0;
    for (_, r) in records["records"].as_object().unwrap() {
        if let Some(t) = r["access_token"].as_str() {
            tokens += 1;
            assert!(!outputs.contains(t), "an access token in doctor's output");
        }
    }
    assert!(tokens >= 3, "alice's tokens are the positive control");
}

/// Each form a secret could take in a file: raw, base64 (standard and URL-safe, padded or not)
/// and URL-encoded.
fn encodings(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = vec![secret.to_string(), url::form_urlencoded::byte_serialize(secret.as_bytes()).collect()];
    for e in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(e.encode(secret));
    }
    out
}

/// A fresh P-256 private key in PKCS#8 PEM, for a `private_key_jwt` connector.
fn private_key_pem() -> String {
    use p256::pkcs8::EncodePrivateKey;
    let key = loop {
        if let Ok(k) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break k;
        }
    };
    key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_bundle_holds_no_planted_secret_in_any_encoding() {
    require_keyring_session();
    let org = Org::start("bundle").await;
    // Every credential the sandbox issues from now on is kept for the search below: codes, ID,
    // access and refresh tokens, ID-JAGs.
    org.sandbox.knobs().update(|k| k.record_issued_secrets = true);
    // A connector authenticating with private_key_jwt: its key file is an input too.
    let key_pem = private_key_pem();
    let key_file = org.dir.join("keyed-client.pem");
    std::fs::write(&key_file, &key_pem).unwrap();
    let mut policy: Value = serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap();
    policy["connectors"].as_array_mut().unwrap().push(serde_json::json!({
        "id": "keyed", "display_name": "Keyed", "mcp_url": org.sandbox.mcp_url("linear"), "scopes": ["read"],
        "client_id": "ema-keyed", "client_auth": {"method": "private_key_jwt", "key_file": key_file, "key_id": "k1", "alg": "ES256"},
        "idp_only": true,
    }));
    std::fs::write(&org.policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    let login = ema(&org, "dave", &["login"]);
    assert!(login.status.code().is_some_and(|c| c <= 2), "{}", text(&login));
    // Linear's AS refuses by echoing the assertion and the client credentials in its error, and a
    // skewed clock, so that errors and traces are in the bundle.
    org.sandbox.knobs().update(|k| {
        k.failing_connectors.insert("linear".into(), ema_sandbox::ConnectorFailure::EchoSecrets);
        k.clock_offset_secs = 90;
    });
    // Personal connections with planted secrets in the home the export scans.
    let home = fixture_home(&org);
    let zip_path = org.dir.join("bundle.zip");
    let out = ema_command(env!("CARGO_BIN_EXE_ema"), &org, "-")
        .args(["diagnostics", "--out", zip_path.to_str().unwrap()])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("Support ID: EMA-") && said.contains("Sandbox Help Desk"), "{said}");

    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        files.insert(f.name().to_string(), s);
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["diagnostics.json", "log.txt", "policy.json", "summary.html", "summary.txt"]);
    let summary = &files["summary.txt"];
    assert!(summary.contains("Linear (works for now; its renewal fails): fails at the grant"), "{summary}");
    assert!(summary.contains("clock-skew"), "{summary}");
    assert!(summary.contains("Not assigned to you (not an error): Asana, Granola"), "{summary}");
    assert!(!summary.contains("- Asana"), "not being assigned is not a failure: {summary}");
    assert!(files["summary.html"].contains("<h1>EMA diagnostics - Sandbox Org</h1>"));
    let json: Value = serde_json::from_str(&files["diagnostics.json"]).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["support_id"], json["diagnosis"]["support_id"]);
    let personal = json["diagnosis"]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "personal-connections");
    let personal = personal.unwrap();
    assert_eq!(personal["outcome"], "fail", "{personal}");
    assert!(personal["summary"].as_str().unwrap().contains("in Claude Code ("), "{personal}");
    assert!(summary.contains("personal-connections"), "{summary}");
    let findings = json["personal_connections"].as_array().map_or(0, Vec::len);
    assert!(findings >= 3, "the fixture home's personal connections are in the bundle: {findings}");
    let grant =
        json["diagnosis"]["connectors"].as_array().unwrap().iter().find(|c| c["id"] == "linear").unwrap()["trace"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|s| s["leg"] == "jwt-bearer-grant")
            .unwrap()
            .clone();
    let echoed = grant["oauth_error_description"].as_str().unwrap();
    assert!(echoed.starts_with("assertion [redacted] refused"), "the echoing error is kept, scrubbed: {echoed}");
    let log = &files["log.txt"];
    assert!(log.contains("/idp/.well-known/openid-configuration"), "this run's log, endpoints readable: {log}");
    let policy: Value = serde_json::from_str(&files["policy.json"]).unwrap();
    assert!(policy["connectors"][0]["client_auth"].is_string(), "auth methods by name: {policy}");

    // The secrets: the policy's client secrets, the private key, every token in the keyring,
    // every credential the sandbox issued, and the fixture home's planted tokens.
    let mut secrets = Vec::new();
    secrets_in(&serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap(), &mut secrets);
    let issuer = org.sandbox.idp_issuer();
    let store = ema_core::store::KeyringStore::new();
    for account in [format!("session:{issuer}#ema-desktop"), format!("connectors:{issuer}#ema-desktop")] {
        secrets_in(&serde_json::from_str(&store.get(&account).unwrap().unwrap()).unwrap(), &mut secrets);
    }
    let issued = org.sandbox.issued_secrets();
    let id_jags = issued.iter().filter(|s| s.starts_with("ey") && s.matches('.').count() == 2).count();
    assert!(id_jags >= 5 && issued.len() >= 12, "ID tokens, ID-JAGs, codes: {} ({id_jags} JWTs)", issued.len());
    secrets.extend(issued);
    secrets.push(key_pem.clone());
    secrets.extend(key_pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string));
    secrets.extend(fixture_canaries());
    assert!(secrets.len() >= 40, "the positive control: {}", secrets.len());
    for secret in &secrets {
        assert!(secret.len() >= 16, "a secret too short to search for: {}", secret.len());
        for form in encodings(secret) {
            for (name, content) in &files {
                assert!(!content.contains(&form), "a secret appears in {name} (as {}…)", &form[..6]);
            }
        }
        // A JWT's signature alone is a secret-shaped run too.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() >= 40 && secret.contains('.')) {
            for (name, content) in &files {
                assert!(!content.contains(signature), "a JWT signature appears in {name}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_dns_and_tls_failures_in_plain_words() {
    require_keyring_session();
    let org = Org::start("doctor-net").await;
    // Two more connectors: one whose host does not resolve, one whose server speaks plain HTTP
    // where the policy says https (the TLS handshake fails).
    let mut policy: Value = serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap();
    let port = org.sandbox.base_url().port().unwrap();
    for (id, name, url) in [
        ("dnsfail", "Broken DNS", "https://mcp.does-not-exist.invalid/mcp".to_string()),
        ("tlsfail", "Broken TLS", format!("https://127.0.0.1:{port}/connectors/linear/mcp")),
    ] {
        policy["connectors"].as_array_mut().unwrap().push(serde_json::json!({
            "id": id, "display_name": name, "mcp_url": url, "scopes": ["read"],
            "client_id": "ema-desktop", "client_auth": {"method": "none"}, "idp_only": true,
        }));
    }
    std::fs::write(&org.policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    let login = ema(&org, "alice", &["login"]);
    assert!(login.status.code().is_some_and(|c| c <= 2), "{}", text(&login));
    let (d, out) = doctor(&org);
    assert_eq!(out.status.code(), Some(1), "{d:#}");
    let dns = connector(&d, "dnsfail");
    assert_eq!(dns["failed_leg"], "discovery", "{dns:#}");
    let cause = dns["cause"].as_str().unwrap();
    assert!(cause.contains("could not be resolved (DNS)") && cause.contains("mcp.does-not-exist.invalid"), "{cause}");
    let tls = connector(&d, "tlsfail");
    assert_eq!(tls["failed_leg"], "discovery", "{tls:#}");
    let cause = tls["cause"].as_str().unwrap();
    assert!(cause.contains("TLS"), "{cause}");
    // The working connectors are unaffected.
    assert_eq!(check(&d, "connector-linear")["outcome"], "pass");
    // Reachability, layer by layer: the sandbox over plain http on loopback passes; the name that
    // does not resolve fails at DNS; the https URL on the plain-http port fails at TLS after TCP.
    let sandbox = check(&d, &format!("reach-http-127.0.0.1-{port}"));
    assert_eq!(sandbox["outcome"], "pass", "{sandbox}");
    let dns = check(&d, "reach-https-mcp.does-not-exist.invalid-443");
    assert_eq!(dns["outcome"], "fail", "{dns}");
    assert!(dns["summary"].as_str().unwrap().starts_with("DNS: mcp.does-not-exist.invalid could not be resolved"));
    let tls = check(&d, &format!("reach-https-127.0.0.1-{port}"));
    assert_eq!(tls["outcome"], "fail", "{tls}");
    let said = tls["summary"].as_str().unwrap();
    assert!(
        said.contains("TCP: connected to 127.0.0.1") && said.contains("TLS: the secure connection failed"),
        "{said}"
    );
    // `ema doctor` prints them too, with the fix.
    let human = text(&ema(&org, "-", &["doctor"]));
    assert!(human.contains("reach-https-mcp.does-not-exist.invalid-443") && human.contains("getent hosts"), "{human}");
}
