//! Connect latency: the time from the sign-in callback to every connector `Active`, for
//! N = 1, 10 and 50 connectors, with 50 ms of latency on every request to the sandbox org.
//!
//! Why: after the browser redirects back, the user waits while the engine does, for each
//! connector, discovery (unauthenticated MCP request, RFC 9728 protected-resource metadata,
//! RFC 8414 AS metadata), the RFC 8693 token exchange for an ID-JAG at the IdP, the RFC 7523
//! jwt-bearer grant at the connector's AS, the MCP `initialize` with the new token, and a write
//! of the record to the OS keyring (plus one IdP discovery shared by all connectors). These are
//! sequential round trips within one connector, but connectors are independent and the engine
//! connects them in parallel, so with real network latency the wait should hardly grow with the
//! number of connectors. Target: T(50)/T(1) < 1.5.
//!
//! How: for each N, a sandbox org with exactly N synthetic connectors (no built-ins), alice signs
//! in once through the scripted browser with no latency (storing her IdP session in the real
//! keyring under a per-run service name); then the latency knob is set to 50 ms and, per trial,
//! a NEW engine on the same keyring service loads the stored session (no network) and
//! `connect_all(true)` is timed. A new engine has cold caches (IdP and connector discovery, HTTP
//! connections), so each trial is exactly the work that follows a real sign-in callback (the
//! callback's own code redemption is not included). Every trial must end with all N connectors
//! `Active`, or the benchmark panics: timing failures would be worthless. One more trial per N
//! runs with instrumented parts (transport, MCP probe, keyring) to show where the time goes.
//!
//! Run it in the keyring session:
//! `scripts/with-desktop-session.sh cargo bench -p ema-e2e --bench connect_latency`.
//! Results are printed and written to `<target dir>/bench/connect_latency.json`.
//! `EMA_BENCH_TRIALS` overrides the number of timed trials per N (default 5);
//! `EMA_BENCH_MAX_PARALLEL` sets `settings.max_parallel_connectors` in the sandbox's policy
//! (default: none, so the product's default is measured); `EMA_BENCH_STORE=memory` is a
//! diagnostic only: the timed engines keep their records in memory instead of the OS keyring
//! (seeded from it after the real sign-in), to show what the keyring writes cost. The output
//! says so; figures from it are not the product's.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ema_core::engine::{Engine, EngineParts};
use ema_core::http::{HttpRequest, HttpResponse, Transport, TransportError};
use ema_core::mcp_check::{McpCheckError, McpProbe, McpServerInfo};
use ema_core::records::{connectors_account, session_account};
use ema_core::secret::AccessToken;
use ema_core::status::{ConnectorState, StatusSnapshot};
use ema_core::store::{KeyringStore, MemoryStore, SecretStore, StoreError};
use ema_e2e::{Org, ScriptedBrowser, require_keyring_session};
use ema_sandbox::SandboxOptions;
use serde_json::{Value, json};

/// Connector counts measured.
const SIZES: [usize; 3] = [1, 10, 50];
/// Latency the sandbox adds to every request during the timed trials.
const LATENCY_MS: u64 = 50;
/// Untimed trials per N before the timed ones (page cache, allocator, keyring daemon).
const WARMUP_TRIALS: usize = 1;
/// Timed trials per N, unless `EMA_BENCH_TRIALS` says otherwise.
const DEFAULT_TRIALS: usize = 5;
/// T(50)/T(1) must stay below this.
const TARGET_RATIO: f64 = 1.5;
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(60);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn main() {
    require_keyring_session();
    let trials = std::env::var("EMA_BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0);
    let trials = trials.unwrap_or(DEFAULT_TRIALS);
    let max_parallel = std::env::var("EMA_BENCH_MAX_PARALLEL")
        .ok()
        .map(|v| v.parse::<usize>().unwrap_or_else(|_| panic!("EMA_BENCH_MAX_PARALLEL={v:?} is not a number")));
    let store = match std::env::var("EMA_BENCH_STORE").as_deref() {
        Err(_) | Ok("keyring") => StoreKind::Keyring,
        Ok("memory") => StoreKind::Memory,
        Ok(other) => panic!("EMA_BENCH_STORE={other:?}: use keyring (the default) or memory"),
    };
    let config = Config { trials, max_parallel, store };
    // The product's runtime (crates/cli): multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut sizes = Vec::new();
    for n in SIZES {
        sizes.push(runtime.block_on(measure(n, &config)));
    }
    report(&sizes, &config, workers);
}

/// How this run measures (defaults: the product's settings and store).
#[derive(Debug)]
struct Config {
    trials: usize,
    max_parallel: Option<usize>,
    store: StoreKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// The product's store: the OS keyring.
    Keyring,
    /// Diagnostic: an in-memory store seeded from the keyring.
    Memory,
}

impl StoreKind {
    fn describe(self) -> &'static str {
        match self {
            StoreKind::Keyring => "real OS keyring over D-Bus",
            StoreKind::Memory => "IN-MEMORY store (EMA_BENCH_STORE=memory, diagnostic: not the product)",
        }
    }
}

/// A store for a timed engine: the keyring under `service`, or a copy of its entries in memory.
fn store_for(kind: StoreKind, org: &Org, service: &str) -> Arc<dyn SecretStore> {
    let keyring = KeyringStore::with_service(service);
    if kind == StoreKind::Keyring {
        return Arc::new(keyring);
    }
    let policy = org.policy();
    let issuer = policy.idp.issuer.as_str();
    let memory = MemoryStore::new();
    let accounts = [session_account(issuer, &policy.idp.client_id), connectors_account(issuer, &policy.idp.client_id)];
    for account in accounts {
        if let Some(value) = keyring.get(&account).unwrap() {
            memory.set(&account, &value).unwrap();
        }
    }
    Arc::new(memory)
}

/// A new engine on `org` with the product's parts and the given store.
fn engine_with(org: &Org, store: Arc<dyn SecretStore>) -> Arc<Engine> {
    let policy = org.policy();
    let mut parts = EngineParts::production(&policy).unwrap();
    parts.store = store;
    Engine::new(policy, parts)
}

/// What was measured for one N.
#[derive(Debug)]
struct SizeResult {
    n: usize,
    max_parallel_connectors: usize,
    /// Whether `max_parallel_connectors` was set by `EMA_BENCH_MAX_PARALLEL`.
    overridden: bool,
    samples: Vec<Duration>,
    diagnosis: Diagnosis,
}

impl SizeResult {
    fn sorted_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self.samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn median_ms(&self) -> f64 {
        let ms = self.sorted_ms();
        let mid = ms.len() / 2;
        if ms.len() % 2 == 1 { ms[mid] } else { (ms[mid - 1] + ms[mid]) / 2.0 }
    }

    fn min_ms(&self) -> f64 {
        self.sorted_ms()[0]
    }

    fn max_ms(&self) -> f64 {
        *self.sorted_ms().last().unwrap()
    }
}

fn keyring_service(n: usize) -> String {
    format!("dev.ema.bench.connect-latency.{}.n{n}", std::process::id())
}

async fn measure(n: usize, config: &Config) -> SizeResult {
    let (trials, max_parallel) = (config.trials, config.max_parallel);
    let opts = SandboxOptions { extra_connectors: n, only_connectors: Some(Vec::new()), ..SandboxOptions::default() };
    assert_eq!(opts.knobs.latency_ms, 0, "sign-in runs without latency");
    let org = Org::start_with(&format!("bench-n{n}"), opts).await;
    if let Some(limit) = max_parallel {
        let mut policy: Value = serde_json::from_str(&std::fs::read_to_string(&org.policy_path).unwrap()).unwrap();
        policy["settings"]["max_parallel_connectors"] = json!(limit);
        std::fs::write(&org.policy_path, policy.to_string()).unwrap();
    }
    assert_eq!(org.sandbox.connector_ids().len(), n, "the org has exactly the synthetic connectors");
    let max_parallel_connectors = org.policy().settings.max_parallel_connectors;
    let service = keyring_service(n);

    let first = org.engine(&service);
    let browser = ScriptedBrowser::new("alice", org.dir.join("browser.log"));
    first.sign_in(&browser, SIGN_IN_TIMEOUT).await.unwrap_or_else(|e| panic!("N={n}: sign-in failed: {e}"));
    assert_all_active(&first.snapshot(), n, "after sign-in");
    drop(first);

    org.sandbox.knobs().update(|k| k.latency_ms = LATENCY_MS);
    let mut samples = Vec::with_capacity(trials);
    for trial in 0..WARMUP_TRIALS + trials {
        let engine = match config.store {
            StoreKind::Keyring => org.engine(&service),
            StoreKind::Memory => engine_with(&org, store_for(StoreKind::Memory, &org, &service)),
        };
        engine.load().await.unwrap_or_else(|e| panic!("N={n}: cannot load the stored session: {e}"));
        let started = Instant::now();
        engine.connect_all(true).await;
        let elapsed = started.elapsed();
        let label = if trial < WARMUP_TRIALS {
            format!("warm-up {}", trial + 1)
        } else {
            format!("trial {}/{trials}", trial + 1 - WARMUP_TRIALS)
        };
        assert_all_active(&engine.snapshot(), n, &label);
        println!("N={n:>2} {label:<12} {:>8.1} ms", elapsed.as_secs_f64() * 1000.0);
        if trial >= WARMUP_TRIALS {
            samples.push(elapsed);
        }
    }
    let diagnosis = diagnose(&org, store_for(config.store, &org, &service), n).await;

    // Leave nothing behind in the keyring.
    org.sandbox.knobs().update(|k| k.latency_ms = 0);
    let last = org.engine(&service);
    last.load().await.unwrap();
    last.sign_out().await.unwrap();
    org.sandbox.shutdown().await;
    SizeResult { n, max_parallel_connectors, overridden: max_parallel.is_some(), samples, diagnosis }
}

/// Panics unless exactly `n` connectors are all `Active`.
fn assert_all_active(s: &StatusSnapshot, n: usize, when: &str) {
    assert_eq!(s.connectors.len(), n, "N={n} {when}: wrong number of connectors");
    let bad: Vec<String> = s
        .connectors
        .iter()
        .filter(|c| c.state != ConnectorState::Active)
        .map(|c| format!("{}: {:?} {:?}", c.id, c.state, c.error.as_ref().map(|e| (&e.code, &e.message))))
        .collect();
    assert!(bad.is_empty(), "N={n} {when}: {} of {n} connectors are not Active: {bad:#?}", bad.len());
}

// ---------------------------------------------------------------------------------------------
// Diagnosis: one more trial with every outbound step timed.

/// One timed step of a connect.
#[derive(Debug, Clone)]
struct Span {
    phase: &'static str,
    start: Instant,
    end: Instant,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Span>>>);

impl Recorder {
    fn record(&self, phase: &'static str, start: Instant) {
        let span = Span { phase, start, end: Instant::now() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(span);
    }

    fn take(&self) -> Vec<Span> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

const PHASE_MCP_INITIALIZE: &str = "MCP initialize (rmcp, token)";
const PHASE_KEYRING_WRITE: &str = "keyring write";

/// The protocol step a request belongs to, from the sandbox's routes.
fn classify(path: &str) -> &'static str {
    if path == "/idp/token" {
        "IdP token exchange (ID-JAG)"
    } else if path.starts_with("/idp/") || path.ends_with("/idp") {
        "IdP discovery (shared)"
    } else if path.contains("oauth-protected-resource") {
        "discovery: resource metadata"
    } else if path.contains("oauth-authorization-server") || path.contains("openid-configuration") {
        "discovery: AS metadata"
    } else if path.ends_with("/mcp") {
        "discovery: MCP 401 probe"
    } else if path.ends_with("/as/token") {
        "jwt-bearer grant"
    } else {
        "other"
    }
}

#[derive(Debug)]
struct TimedTransport {
    inner: Arc<dyn Transport>,
    rec: Recorder,
}

impl Transport for TimedTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let phase = classify(request.uri().path());
        Box::pin(async move {
            let start = Instant::now();
            let result = self.inner.send(request).await;
            self.rec.record(phase, start);
            result
        })
    }
}

#[derive(Debug)]
struct TimedProbe {
    inner: Arc<dyn McpProbe>,
    rec: Recorder,
}

impl McpProbe for TimedProbe {
    fn check<'a>(
        &'a self,
        mcp_url: &'a url::Url,
        token: &'a AccessToken,
    ) -> BoxFuture<'a, Result<McpServerInfo, McpCheckError>> {
        Box::pin(async move {
            let start = Instant::now();
            let result = self.inner.check(mcp_url, token).await;
            self.rec.record(PHASE_MCP_INITIALIZE, start);
            result
        })
    }
}

#[derive(Debug)]
struct TimedStore {
    inner: Arc<dyn SecretStore>,
    rec: Recorder,
}

impl SecretStore for TimedStore {
    fn get(&self, account: &str) -> Result<Option<String>, StoreError> {
        self.inner.get(account)
    }

    fn set(&self, account: &str, value: &str) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.set(account, value);
        self.rec.record(PHASE_KEYRING_WRITE, start);
        result
    }

    fn delete(&self, account: &str) -> Result<(), StoreError> {
        self.inner.delete(account)
    }
}

/// Where the time of one instrumented trial went.
#[derive(Debug)]
struct Diagnosis {
    total: Duration,
    phases: Vec<PhaseStats>,
    /// Most HTTP requests plus MCP handshakes in flight at once.
    peak_network: usize,
    /// Most keyring writes in progress at once.
    peak_keyring: usize,
}

#[derive(Debug)]
struct PhaseStats {
    phase: &'static str,
    count: usize,
    mean_ms: f64,
    max_ms: f64,
    /// From the trial's start to the first start and the last end of this phase.
    first_start_ms: f64,
    last_end_ms: f64,
}

async fn diagnose(org: &Org, store: Arc<dyn SecretStore>, n: usize) -> Diagnosis {
    let rec = Recorder::default();
    let policy = org.policy();
    let mut parts = EngineParts::production(&policy).unwrap();
    parts.transport = Arc::new(TimedTransport { inner: parts.transport.clone(), rec: rec.clone() });
    parts.mcp = Arc::new(TimedProbe { inner: parts.mcp.clone(), rec: rec.clone() });
    parts.store = Arc::new(TimedStore { inner: store, rec: rec.clone() });
    let engine: Arc<Engine> = Engine::new(policy, parts);
    engine.load().await.unwrap();
    rec.take();
    let t0 = Instant::now();
    engine.connect_all(true).await;
    let total = t0.elapsed();
    assert_all_active(&engine.snapshot(), n, "instrumented trial");
    let spans = rec.take();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut by_phase: BTreeMap<&'static str, Vec<&Span>> = BTreeMap::new();
    for s in &spans {
        by_phase.entry(s.phase).or_default().push(s);
    }
    let mut phases: Vec<PhaseStats> = by_phase
        .into_iter()
        .map(|(phase, spans)| {
            let durations: Vec<f64> = spans.iter().map(|s| ms(s.end - s.start)).collect();
            PhaseStats {
                phase,
                count: spans.len(),
                mean_ms: durations.iter().sum::<f64>() / durations.len() as f64,
                max_ms: durations.iter().copied().fold(0.0, f64::max),
                first_start_ms: spans.iter().map(|s| ms(s.start - t0)).fold(f64::INFINITY, f64::min),
                last_end_ms: spans.iter().map(|s| ms(s.end - t0)).fold(0.0, f64::max),
            }
        })
        .collect();
    phases.sort_by(|a, b| a.first_start_ms.total_cmp(&b.first_start_ms));
    let peak_network = peak_overlap(spans.iter().filter(|s| s.phase != PHASE_KEYRING_WRITE));
    let peak_keyring = peak_overlap(spans.iter().filter(|s| s.phase == PHASE_KEYRING_WRITE));
    Diagnosis { total, phases, peak_network, peak_keyring }
}

/// The largest number of spans that overlap at one instant.
fn peak_overlap<'a>(spans: impl Iterator<Item = &'a Span>) -> usize {
    let mut edges: Vec<(Instant, i32)> = spans.flat_map(|s| [(s.start, 1), (s.end, -1)]).collect();
    // Ends sort before starts at the same instant: touching spans do not overlap.
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Report.

/// `<target dir>/bench`, found from this binary's path (`<target>/<profile>/deps/<bench>`), so
/// that `CARGO_TARGET_DIR` is honoured.
fn output_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).map(PathBuf::from);
    target.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target")).join("bench")
}

fn profile_name() -> String {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.ancestors().nth(2).and_then(|p| p.file_name()).map(|s| s.to_string_lossy().into_owned());
    let dir = dir.unwrap_or_else(|| "?".into());
    let kind = if cfg!(debug_assertions) { "debug assertions ON: not representative" } else { "optimised" };
    format!("{dir} ({kind})")
}

fn report(sizes: &[SizeResult], config: &Config, workers: usize) {
    let trials = config.trials;
    let t1 = sizes.iter().find(|s| s.n == 1).map(SizeResult::median_ms).unwrap();
    let ratio = |n: usize| sizes.iter().find(|s| s.n == n).map(|s| s.median_ms() / t1).unwrap();
    let (r10, r50) = (ratio(10), ratio(50));
    let met = r50 < TARGET_RATIO;
    let latency = LATENCY_MS as f64;
    let max_parallel = sizes[0].max_parallel_connectors;

    println!();
    println!("connect_latency: sign-in callback -> all connectors Active (connect_all(true) on a new engine)");
    println!(
        "method: {trials} timed trials per N after {WARMUP_TRIALS} warm-up; {LATENCY_MS} ms sandbox latency per request; \
         profile {}; tokio multi-thread runtime with {workers} workers; settings.max_parallel_connectors = {max_parallel}{}; \
         {}",
        profile_name(),
        if sizes.iter().any(|s| s.overridden) { " (set by EMA_BENCH_MAX_PARALLEL)" } else { " (the default)" },
        config.store.describe()
    );
    println!();
    println!("{:>4} {:>11} {:>9} {:>9} {:>9} {:>12}", "N", "median ms", "min ms", "max ms", "T(N)/T(1)", "T / latency");
    for s in sizes {
        println!(
            "{:>4} {:>11.1} {:>9.1} {:>9.1} {:>9.2} {:>12.1}",
            s.n,
            s.median_ms(),
            s.min_ms(),
            s.max_ms(),
            s.median_ms() / t1,
            s.median_ms() / latency
        );
    }
    println!();
    println!(
        "requests in series for N=1: {:.1} (median T(1) / {LATENCY_MS} ms, incl. the shared IdP discovery)",
        t1 / latency
    );
    println!("T(10)/T(1) = {r10:.2}");
    println!("T(50)/T(1) = {r50:.2}  target < {TARGET_RATIO}: {}", if met { "met" } else { "MISSED" });

    for s in sizes {
        let d = &s.diagnosis;
        println!();
        println!(
            "N={} instrumented trial: {:.1} ms; peak in flight: {} HTTP requests/MCP handshakes, {} keyring writes",
            s.n,
            d.total.as_secs_f64() * 1000.0,
            d.peak_network,
            d.peak_keyring
        );
        println!(
            "  {:<32} {:>5} {:>9} {:>9} {:>11} {:>11}",
            "phase", "count", "mean ms", "max ms", "first start", "last end"
        );
        for p in &d.phases {
            println!(
                "  {:<32} {:>5} {:>9.1} {:>9.1} {:>11.1} {:>11.1}",
                p.phase, p.count, p.mean_ms, p.max_ms, p.first_start_ms, p.last_end_ms
            );
        }
    }

    let json = json!({
        "benchmark": "connect_latency",
        "measures": "connect_all(true) on a new engine after load(): sign-in callback -> all connectors Active",
        "method": {
            "sizes": SIZES,
            "timed_trials": trials,
            "warmup_trials": WARMUP_TRIALS,
            "latency_ms_per_request": LATENCY_MS,
            "profile": profile_name(),
            "runtime_workers": workers,
            "max_parallel_connectors": max_parallel,
            "max_parallel_connectors_overridden": sizes.iter().any(|s| s.overridden),
            "store": config.store.describe(),
        },
        "results": sizes.iter().map(|s| json!({
            "n": s.n,
            "median_ms": round1(s.median_ms()),
            "min_ms": round1(s.min_ms()),
            "max_ms": round1(s.max_ms()),
            "samples_ms": s.samples.iter().map(|d| round1(d.as_secs_f64() * 1000.0)).collect::<Vec<_>>(),
            "ratio_to_n1": round2(s.median_ms() / t1),
            "median_over_latency": round1(s.median_ms() / latency),
            "diagnosis": diagnosis_json(&s.diagnosis),
        })).collect::<Vec<_>>(),
        "requests_in_series_n1": round1(t1 / latency),
        "ratios": { "t10_over_t1": round2(r10), "t50_over_t1": round2(r50) },
        "target": { "t50_over_t1_below": TARGET_RATIO, "met": met },
    });
    let dir = output_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("connect_latency.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap() + "\n").unwrap();
    println!();
    println!("written to {}", path.display());
}

fn diagnosis_json(d: &Diagnosis) -> Value {
    json!({
        "total_ms": round1(d.total.as_secs_f64() * 1000.0),
        "peak_in_flight_network": d.peak_network,
        "peak_in_flight_keyring_writes": d.peak_keyring,
        "phases": d.phases.iter().map(|p| json!({
            "phase": p.phase,
            "count": p.count,
            "mean_ms": round1(p.mean_ms),
            "max_ms": round1(p.max_ms),
            "first_start_ms": round1(p.first_start_ms),
            "last_end_ms": round1(p.last_end_ms),
        })).collect::<Vec<_>>(),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
