//! Fleet simulation: the engine's real scheduler and renewal code (`Engine::connect_all`,
//! `Engine::run_renewals`) for thousands of simulated trays, on tokio's paused clock, against
//! in-memory servers that log every request to the IdP (`org.rs`).
//!
//! Why: the company's IdP sees every employee's tray at once, and we cannot run a fleet here.
//! The clock is injected (`EngineParts::clock`, a `TokioClock`), so a working day of 10,000
//! trays runs in minutes, and what the IdP would see can be counted:
//! - requests per employee-hour in steady state, against the protocol's minimum (one exchange
//!   per connector per access-token lifetime; the simulated IdP, like Okta, takes the refresh
//!   token as the exchange's subject, so no ID-token refresh is needed);
//! - the peak rate (per second, per minute, and per employee per second) after an IdP outage
//!   ends, and after a fleet of laptops wakes at 9:00 with every token expired.
//!
//! Usage: `cargo run --release -p ema-fleet-bench -- [--employees N] [--connectors N]`
//! (10,000 and 7 by default). A benchmark, not a test: it reports figures (docs/fleet.md).

mod org;

use std::sync::Arc;
use std::time::Duration;

use ema_core::clock::TokioClock;
use ema_core::config::{ConfigSource, Policy};
use ema_core::engine::{Engine, EngineParts};
use ema_core::records::{
    RECORD_VERSION, StoredConnector, StoredConnectors, StoredOutcome, StoredSession, connectors_account,
    session_account,
};
use ema_core::secret::{AccessToken, IdToken, RefreshToken};
use ema_core::status::Identity;
use ema_core::store::{MemoryStore, SecretStore};
use org::{AcceptingProbe, CLIENT_ID, EmployeeTransport, Grant, IDP, IdpRequest, Lifetimes, Org, mcp_url};
use rand::{Rng, SeedableRng};

const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// One simulated day. Times are virtual milliseconds after 08:00.
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    /// Trays start at `start_ms` plus a uniform spread of `spread_ms`.
    start_ms: u64,
    spread_ms: u64,
    /// The IdP refuses connections between these times.
    outage: Option<(u64, u64)>,
    /// How long the day lasts.
    until_ms: u64,
}

fn policy(connectors: &[String]) -> Policy {
    let connectors: Vec<serde_json::Value> = connectors
        .iter()
        .map(|id| {
            serde_json::json!({
                "id": id, "display_name": id, "mcp_url": mcp_url(id),
                "client_id": format!("ema-{id}"), "client_auth": {"method": "none"}, "scopes": ["read"]
            })
        })
        .collect();
    let text = serde_json::json!({
        "schema_version": 1,
        "organization": {"name": "Fleet"},
        "idp": {"issuer": IDP, "client_id": CLIENT_ID, "client_auth": {"method": "none"}},
        "connectors": connectors,
    })
    .to_string();
    Policy::parse(&text, ConfigSource::Explicit("fleet-policy.json".into())).expect("the simulated policy is valid")
}

/// One employee's tray, as the tray app runs it: signed in yesterday (the ID token and every
/// connector's access token have expired; the refresh token works), started at `start`, then
/// left to its renewal task (`Engine::run_renewals`) for the rest of the day.
async fn tray(employee: u32, start: Duration, org: Arc<Org>, policy: Policy) {
    tokio::time::sleep(start).await;
    let store = Arc::new(MemoryStore::new());
    let yesterday = org.now() - time::Duration::hours(14);
    let session = StoredSession {
        v: RECORD_VERSION,
        identity: Some(Identity { sub: format!("u{employee}"), email: None, name: None }),
        id_token: Some(IdToken::new("expired-id-token")),
        id_token_expires_at: Some((yesterday + time::Duration::hours(1)).unix_timestamp()),
        refresh_token: Some(RefreshToken::new(format!("rt-{employee}"))),
        signed_in_at: yesterday.unix_timestamp(),
        refresh_token_subject: None,
        idp_issuer: None,
    };
    let account = session_account(url::Url::parse(IDP).expect("a URL").as_str(), CLIENT_ID);
    store.set(&account, &serde_json::to_string(&session).expect("serialises")).expect("memory store");
    let records = policy
        .connectors
        .iter()
        .map(|c| {
            let record = StoredConnector {
                v: RECORD_VERSION,
                mcp_url: c.mcp_url.to_string(),
                sub: format!("u{employee}"),
                outcome: StoredOutcome::Active,
                authorization_server: None,
                access_token: Some(AccessToken::new("yesterday")),
                expires_at: Some((yesterday + time::Duration::hours(1)).unix_timestamp()),
                scopes: vec!["read".into()],
                last_renewal: Some(yesterday.unix_timestamp()),
                error: None,
                renewal_error: None,
            };
            (c.id.clone(), record)
        })
        .collect();
    let connectors = StoredConnectors { v: RECORD_VERSION, records, ..Default::default() };
    let account = connectors_account(url::Url::parse(IDP).expect("a URL").as_str(), CLIENT_ID);
    store.set(&account, &serde_json::to_string(&connectors).expect("serialises")).expect("memory store");
    let parts = EngineParts {
        transport: Arc::new(EmployeeTransport { employee, org: org.clone() }),
        store,
        mcp: Arc::new(AcceptingProbe),
        clock: Arc::new(TokioClock::starting_at(org.now())),
    };
    let engine = Engine::new(policy, parts);
    engine.load().await.expect("memory store");
    engine.run_renewals().await;
}

fn simulate(s: &Scenario, employees: u32, connectors: &[String], lifetimes: Lifetimes) -> Vec<IdpRequest> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a runtime");
    rt.block_on(async {
        // 08:00 today, virtually: the ID tokens are verified against the real clock, which is
        // earlier than any virtual time, so they are never seen as expired by it.
        let org = Org::new(lifetimes, time::OffsetDateTime::now_utc());
        if let Some((from, until)) = s.outage {
            org.idp_outage(from, until);
        }
        let policy = policy(connectors);
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for e in 0..employees {
            let offset = s.start_ms + if s.spread_ms > 0 { rng.random_range(0..s.spread_ms) } else { 0 };
            tokio::spawn(tray(e, Duration::from_millis(offset), org.clone(), policy.clone()));
        }
        tokio::time::sleep(Duration::from_millis(s.until_ms)).await;
        org.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    })
}

/// Requests (sent, refused or not) in `[from, to)`.
fn within(log: &[IdpRequest], from: u64, to: u64) -> impl Iterator<Item = &IdpRequest> {
    log.iter().filter(move |r| r.at_ms >= from && r.at_ms < to)
}

/// The largest number of requests of `[from, to)` in any window of `width` ms.
fn peak(log: &[IdpRequest], from: u64, to: u64, width: u64) -> usize {
    let mut times: Vec<u64> = within(log, from, to).map(|r| r.at_ms).collect();
    times.sort_unstable();
    let mut best = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while j < times.len() && times[j] < times[i] + width {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// The most requests one employee sent in any second of `[from, to)`.
fn peak_per_employee_second(log: &[IdpRequest], from: u64, to: u64) -> usize {
    let mut by: std::collections::HashMap<u32, Vec<IdpRequest>> = std::collections::HashMap::new();
    for r in within(log, from, to) {
        by.entry(r.employee).or_default().push(*r);
    }
    by.values().map(|l| peak(l, from, to, 1000)).max().unwrap_or(0)
}

fn clock(ms: u64) -> String {
    let m = ms / MINUTE_MS;
    format!("{:02}:{:02}", 8 + m / 60, m % 60)
}

fn report_window(log: &[IdpRequest], label: &str, from: u64, to: u64) {
    let sent: Vec<&IdpRequest> = within(log, from, to).collect();
    let refused = sent.iter().filter(|r| r.refused).count();
    println!(
        "  {label} {}-{}: {} requests ({} refused), peak {}/s, {}/min; one employee at most {}/s",
        clock(from),
        clock(to),
        sent.len(),
        refused,
        peak(log, from, to, 1000),
        peak(log, from, to, MINUTE_MS),
        peak_per_employee_second(log, from, to),
    );
}

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let employees = arg("--employees", 10_000);
    let connector_count = arg("--connectors", 7);
    let connectors: Vec<String> = (1..=connector_count).map(|i| format!("c{i}")).collect();
    let lifetimes = Lifetimes { id_token: 3600, id_jag: 300, access_token: 3600 };
    println!(
        "fleet: {employees} employees x {connector_count} connectors; ID tokens {} s, ID-JAGs {} s, access tokens {} s",
        lifetimes.id_token, lifetimes.id_jag, lifetimes.access_token
    );
    let n = f64::from(connector_count);
    // The refresh token is the exchange's subject once the ID token has expired (the simulated
    // IdP takes it, as Okta does): no ID-token refresh is needed on top of the exchanges.
    let minimum = n * 3600.0 / lifetimes.access_token as f64;

    let morning = Scenario {
        name: "steady state (trays start 08:00-11:00)",
        start_ms: 0,
        spread_ms: 3 * HOUR_MS,
        outage: None,
        until_ms: 9 * HOUR_MS,
    };
    let outage = Scenario {
        name: "IdP outage 13:00-14:00",
        outage: Some((5 * HOUR_MS, 6 * HOUR_MS)),
        until_ms: 6 * HOUR_MS + 30 * MINUTE_MS,
        ..morning.clone()
    };
    let wake = Scenario {
        name: "fleet wakes at 09:00, every token expired",
        start_ms: HOUR_MS,
        spread_ms: 0,
        outage: None,
        until_ms: HOUR_MS + 30 * MINUTE_MS,
    };
    for s in [&morning, &outage, &wake] {
        let started = std::time::Instant::now();
        let log = simulate(s, employees, &connectors, lifetimes);
        println!("\n{} ({} IdP requests, simulated in {:.1} s)", s.name, log.len(), started.elapsed().as_secs_f64());
        if s.outage.is_none() && s.spread_ms > 0 {
            let (from, to) = (4 * HOUR_MS, 9 * HOUR_MS);
            let hours = (to - from) as f64 / HOUR_MS as f64 * f64::from(employees);
            let count = |g: Grant| within(&log, from, to).filter(|r| r.grant == g).count() as f64 / hours;
            let (exchanges, refreshes) = (count(Grant::Exchange), count(Grant::Refresh));
            println!(
                "  12:00-17:00: {:.2} IdP requests per employee-hour ({exchanges:.2} exchanges + {refreshes:.2} refreshes); \
                 protocol minimum {minimum:.2}",
                exchanges + refreshes
            );
            report_window(&log, "busiest", from, to);
        }
        if let Some((from, until)) = s.outage {
            report_window(&log, "during the outage", from, until);
            report_window(&log, "after it ends", until, until + 10 * MINUTE_MS);
        }
        if s.spread_ms == 0 {
            report_window(&log, "after the wake", s.start_ms, s.start_ms + 10 * MINUTE_MS);
        }
    }
}
