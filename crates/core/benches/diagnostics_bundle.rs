//! How long the diagnostics export takes and how big it gets, for a session with 50 connectors
//! (each with a full four-step trace and a failure on every fifth) and a full log ring (2000
//! lines of 200 characters), plus the fixture home's personal-account findings.
//!
//! This measures the export itself (building and writing the zip); the checks it follows run
//! live against the network and are timed by `ema diagnostics` itself. Plain std timing: 3
//! warm-up runs, 21 measured runs, the median printed. `cargo bench -p ema-core --bench
//! diagnostics_bundle`.

use std::time::{Duration, Instant};

use ema_core::config::{ConfigSource, Policy};
use ema_core::diagnostics::bundle::{self, BundleInput};
use ema_core::diagnostics::doctor::{Check, ConnectorDiagnosis, Diagnosis, FailedLeg, HelpDesk, Outcome};
use ema_core::diagnostics::log_ring::{DEFAULT_LINES, LogRing};
use ema_core::diagnostics::trace::{Leg, Step, TokenView};
use ema_core::personal::scan::{Catalog, CompanyIdentity, ScanLimits, ScanRoots, scan};
use ema_core::status::ConnectorState;
use serde_json::json;

const CONNECTORS: usize = 50;
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scan");

fn step(leg: Leg, i: usize, failed: bool) -> Step {
    let claims = json!({"iss": "https://idp.example.com", "sub": "00u1alice", "aud": format!("https://as{i}.example.com"),
        "client_id": "ema-desktop", "scope": "read write", "resource": format!("https://mcp{i}.example.com/mcp"),
        "exp": 1_800_000_300, "iat": 1_800_000_000, "jti": format!("jti-{i}-{leg:?}")});
    Step {
        leg,
        method: "POST".into(),
        endpoint: format!("https://as{i}.example.com/oauth2/v1/token"),
        http_status: Some(if failed { 400 } else { 200 }),
        oauth_error: failed.then(|| "invalid_grant".to_string()),
        oauth_error_description: failed.then(|| "the assertion was refused by policy".to_string()),
        transport_error: None,
        network_failure: None,
        duration_ms: 40,
        server_date: Some("Tue, 24 Nov 2026 02:00:00 GMT".into()),
        tokens: vec![TokenView {
            field: "assertion".into(),
            typ: Some("oauth-id-jag+jwt".into()),
            alg: Some("RS256".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }],
        resource: Some(format!("https://mcp{i}.example.com/mcp")),
        audience: Some(format!("https://as{i}.example.com")),
        at_unix: 1_800_000_000,
        detail: None,
    }
}

fn main() {
    let policy = Policy::load(ConfigSource::Explicit(format!("{FIXTURES}/policy.json").into())).expect("policy");
    let report = scan(
        &ScanRoots::under_home(format!("{FIXTURES}/home")),
        &Catalog::from_policy(&policy),
        &CompanyIdentity::from_policy(&policy),
        &ScanLimits::default(),
    );
    let connectors: Vec<ConnectorDiagnosis> = (0..CONNECTORS)
        .map(|i| {
            let failed = i % 5 == 0;
            ConnectorDiagnosis {
                id: format!("connector-{i}"),
                display_name: format!("Connector {i}"),
                state: if failed { ConnectorState::Error } else { ConnectorState::Active },
                failed_leg: failed.then_some(FailedLeg::Grant),
                code: failed.then(|| "connector-grant-oauth-invalid-grant".to_string()),
                cause: failed.then(|| "the authorization server refused the identity assertion".to_string()),
                fix: failed.then(|| "export diagnostics for the help desk".to_string()),
                fix_action: None,
                trace: vec![
                    step(Leg::Other, i, false),
                    step(Leg::Discovery, i, false),
                    step(Leg::TokenExchange, i, false),
                    step(Leg::JwtBearerGrant, i, failed),
                    step(Leg::McpInitialize, i, false),
                ],
                trusted_authorization_server: None,
                hints: vec![format!("Connector {i}'s authorization server lists the ID-JAG grant profile")],
            }
        })
        .collect();
    let mut checks: Vec<Check> = ["policy-valid", "keyring-available", "idp-discovery", "idp-jwks", "clock-skew"]
        .iter()
        .map(|n| Check {
            name: (*n).into(),
            outcome: Outcome::Pass,
            summary: "fine".into(),
            fix: None,
            fix_action: None,
            duration_ms: 3,
            hints: Vec::new(),
        })
        .collect();
    // Two origins per connector (its AS and its MCP server), each a `reach-*` check.
    checks.extend((0..CONNECTORS * 2).map(|i| {
        Check {
            name: format!("reach-https-host{i}.example.com-443"),
            outcome: Outcome::Pass,
            summary: "DNS: 192.0.2.10 (3 ms); TCP: connected to 192.0.2.10:443 (12 ms); TLS: handshake done and the \
                  server answered HTTP 404 (40 ms)"
                .into(),
            fix: None,
            fix_action: None,
            duration_ms: 55,
            hints: Vec::new(),
        }
    }));
    checks.extend(connectors.iter().map(|c| Check {
        name: format!("connector-{}", c.id),
        outcome: if c.failed_leg.is_some() { Outcome::Fail } else { Outcome::Pass },
        summary: "works".into(),
        fix: c.fix.clone(),
        fix_action: c.fix_action,
        duration_ms: 160,
        hints: Vec::new(),
    }));
    let diagnosis = Diagnosis {
        version: 1,
        support_id: "EMA-7K3Q-9XWD".into(),
        generated_at: "2026-11-24T02:00:00Z".into(),
        organization: "Example".into(),
        help_desk: Some(HelpDesk { name: "Example IT".into(), url: Some("https://it.example.com".into()) }),
        checks,
        connectors,
    };
    let ring = LogRing::new(DEFAULT_LINES);
    for i in 0..DEFAULT_LINES * 2 {
        ring.push(&format!(
            "02:00:00.000Z DEBUG ema_core::engine: renewal of connector-{} done in 120 ms {}",
            i % 50,
            "x".repeat(120)
        ));
    }
    let input = BundleInput {
        diagnosis: &diagnosis,
        policy: &policy,
        personal: &report.findings,
        log: ring.lines(),
        app: "ema 0.1.0".into(),
        utc_offset: None,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bundle.zip");
    let mut times: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    for run in 0..24 {
        let started = Instant::now();
        let written = bundle::write(&input, &path).expect("write the bundle");
        if run >= 3 {
            times.push(started.elapsed());
        }
        bytes = written.bytes;
    }
    times.sort();
    let uncompressed: usize = bundle::contents(&input).iter().map(|(_, c)| c.len()).sum();
    println!(
        "diagnostics bundle: median {:?} (min {:?}, max {:?}) over {} runs; {} connectors, {} log lines; zip {} KiB ({} KiB uncompressed)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len(),
        CONNECTORS,
        ring.lines().len(),
        bytes.div_ceil(1024),
        uncompressed.div_ceil(1024)
    );
}
