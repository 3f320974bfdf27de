//! Interop: `oidc-provider` (panva's certified OpenID Provider, npm) as the company IdP, a real
//! browser (Debian's Chromium, headless, driven by Playwright) as the user, and the sandbox's
//! connectors as the authorization servers and MCP servers.
//!
//! The engine signs in through oidc-provider's own login and consent pages (authorization code +
//! PKCE S256, `state`, `nonce`, RFC 9207 `iss`, loopback redirect on an ephemeral port), verifies
//! its ID token, exchanges it (RFC 8693, the grant `tests/interop/oidc-provider/provider.mjs`
//! registers with `registerGrantType`) for ID-JAGs signed by oidc-provider's keys, and redeems
//! those at the sandbox's authorization servers, which trust only oidc-provider for this test.
//! The exchange also takes oidc-provider's refresh token as its subject (ID-JAG -02 and later),
//! or refuses it as an IdP of the -01 era does (`EMA_OP_REFRESH_SUBJECT=refuse`); the provider's
//! counters (`GET /ema-test/counters`) show which subject went on the wire.
//!
//! Step-up (RFC 9470 through the exchange): oidc-provider refuses a connector with
//! `insufficient_user_authentication`, `max_age` and `acr_values` (`EMA_OP_STEP_UP`), and the
//! user's next sign-in sends both to its authorization endpoint, where its own `max_age` check and
//! the login policy `provider.mjs` configures for `acr_values` (OIDC Core makes that claim
//! voluntary) send a browser that still has a session back to the login page; its log
//! (`GET /ema-test/log`) shows the requests, the reasons of its interaction policy and the `acr`
//! and `auth_time` it issued. Entitlement removed: `POST /ema-test/unassign` withdraws a
//! connector, and the next renewal deletes its token and revokes it at the connector's AS.
//!
//! Needs Node 22, the pinned npm packages and Chromium: run `tests/interop/oidc-provider/run.sh`,
//! which installs them and runs this file in a desktop session with an unlocked keyring.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ema_core::engine::{Engine, TokenUnavailable};
use ema_core::mcp_check::{HttpProbe, McpCheckError, McpProbe};
use ema_core::signin::BrowserOpener;
use ema_core::status::{ConnectorState, IdpSessionState, StatusSnapshot};
use ema_e2e::{Org, require_keyring_session};
use ema_sandbox::{SandboxOptions, TrustedIdp};
use serde_json::{Value, json};

/// Chromium's cold start plus two pages and the redirect.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(90);
/// The connectors this test uses (bob is entitled to `linear` only, see `provider.mjs`).
const CONNECTORS: &[&str] = &["linear", "figma", "supabase"];

/// `tests/interop/oidc-provider` (or `$EMA_OIDC_PROVIDER_DIR`).
fn interop_dir() -> PathBuf {
    std::env::var_os("EMA_OIDC_PROVIDER_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("interop").join("oidc-provider"), PathBuf::from)
}

/// The Node binary `run.sh` installed (Node 22, as oidc-provider 9 supports).
fn node() -> PathBuf {
    let Some(node) = std::env::var_os("EMA_OIDC_PROVIDER_NODE") else {
        panic!(
            "EMA_OIDC_PROVIDER_NODE is not set: this test needs Node 22, oidc-provider, playwright-core and \
             Chromium; run it with tests/interop/oidc-provider/run.sh (it installs them and sets the variable)"
        );
    };
    let node = PathBuf::from(node);
    assert!(
        node.exists(),
        "EMA_OIDC_PROVIDER_NODE={} does not exist; run tests/interop/oidc-provider/run.sh",
        node.display()
    );
    node
}

fn random_hex() -> String {
    let state = std::collections::hash_map::RandomState::new();
    (0..2)
        .map(|i| {
            let mut h = state.build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// oidc-provider running `provider.mjs`; killed on drop (it also exits when its stdin closes).
struct OidcProvider {
    child: Child,
    issuer: String,
    client_secret: String,
}

impl OidcProvider {
    fn start(connectors_file: &Path, env: &[(&str, &str)]) -> OidcProvider {
        let client_secret = random_hex();
        let mut child = Command::new(node())
            .arg(interop_dir().join("provider.mjs"))
            .envs(env.iter().copied())
            .env("EMA_OIDC_CLIENT_SECRET", &client_secret)
            .env("EMA_CONNECTORS_FILE", connectors_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", node().display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let issuer = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(issuer) = line.strip_prefix("READY ") {
                        break issuer.trim().to_string();
                    }
                }
                _ => panic!("provider.mjs exited before printing READY (see its stderr above)"),
            }
        };
        // Keep draining stdout so the provider never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        OidcProvider { child, issuer, client_secret }
    }
}

impl OidcProvider {
    /// What `provider.mjs` counted so far (`GET /ema-test/counters`): ID-JAGs issued by kind of
    /// subject token, refresh-token subjects refused or invalid, refresh grants, refresh tokens
    /// saved and consumed.
    async fn counts(&self) -> BTreeMap<String, usize> {
        serde_json::from_value(get_json(&format!("{}/ema-test/counters", self.issuer)).await).unwrap()
    }

    /// What `provider.mjs` logged so far (`GET /ema-test/log`), in order: authorization requests
    /// (`max_age`, `acr_values`, `prompt`), interactions (prompt and the reasons of its policy),
    /// logins (`acr`, `amr`), ID tokens (`acr`, `amr`, `auth_time`), step-up verdicts; each with
    /// `at`, oidc-provider's clock in seconds.
    async fn log(&self) -> Vec<Value> {
        serde_json::from_value(get_json(&format!("{}/ema-test/log", self.issuer)).await).unwrap()
    }

    /// The entries of `event` in `log`, from the `from`th entry on.
    fn events<'a>(log: &'a [Value], from: usize, event: &str) -> Vec<&'a Value> {
        log.iter().skip(from).filter(|e| e["event"] == event).collect()
    }

    /// `POST /ema-test/unassign`: from now on the exchange answers `access_denied` for
    /// `connector` and `user` (offboarding, a group change).
    async fn unassign(&self, user: &str, connector: &str) {
        let url = format!("{}/ema-test/unassign?user={user}&connector={connector}", self.issuer);
        let resp = reqwest::Client::new().post(&url).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser: `node browser.mjs <url>` (Playwright driving headless Chromium), started
/// detached as `$BROWSER` would be.
#[derive(Debug, Clone)]
struct PlaywrightBrowser {
    user: String,
    log: PathBuf,
    /// A Chromium (`$EMA_CHROMIUM`) that keeps its profile between runs, see [`Self::keeping_profile`].
    chromium: Option<PathBuf>,
    /// The last `browser.mjs` started.
    running: Arc<Mutex<Option<Child>>>,
}

impl PlaywrightBrowser {
    fn new(user: &str, log: PathBuf) -> Self {
        PlaywrightBrowser { user: user.into(), log, chromium: None, running: Arc::default() }
    }

    /// A browser that keeps its cookies from one sign-in to the next, as the user's own does (so
    /// oidc-provider's session is still there at the next sign-in). `browser.mjs` gives Chromium a
    /// fresh `--user-data-dir` each run; the wrapper written here swaps in one kept in `dir`.
    fn keeping_profile(user: &str, dir: &Path) -> Self {
        let profile = dir.join("chromium-profile");
        let wrapper = dir.join("chromium-keeping-profile.sh");
        let script = format!(
            "#!/bin/sh\nfor a do\n  shift\n  case $a in --user-data-dir=*) a='--user-data-dir={}' ;; esac\n  set -- \"$@\" \"$a\"\ndone\nexec /usr/bin/chromium \"$@\"\n",
            profile.display()
        );
        std::fs::write(&wrapper, script).unwrap();
        let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&wrapper, perms).unwrap();
        PlaywrightBrowser { chromium: Some(wrapper), ..Self::new(user, dir.join(format!("browser-{user}.log"))) }
    }

    /// Waits until the last `browser.mjs` has closed Chromium (it saves its cookies then, and
    /// the next run may use the same profile).
    async fn closed(&self) {
        for _ in 0..600 {
            let done = match self.running.lock().unwrap().as_mut() {
                None => true,
                Some(child) => child.try_wait().unwrap().is_some(),
            };
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("browser.mjs did not exit within a minute (see {})", self.log.display());
    }
}

impl BrowserOpener for PlaywrightBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        let mut cmd = Command::new(node());
        cmd.arg(interop_dir().join("browser.mjs"))
            .arg(url)
            .env("EMA_TEST_USER", &self.user)
            .env("EMA_TEST_BROWSER_LOG", &self.log)
            .stdin(Stdio::null());
        if let Some(chromium) = &self.chromium {
            cmd.env("EMA_CHROMIUM", chromium);
        }
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        *self.running.lock().unwrap() = Some(child);
        Ok(())
    }
}

async fn get_json(url: &str) -> Value {
    ema_core::http::install_tls_provider();
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.unwrap()
}

/// oidc-provider (with `env`), then the sandbox trusting it, then the connector list it reads
/// and the policy.
async fn start_world(tag: &str, env: &[(&str, &str)]) -> (OidcProvider, Org) {
    let dir = ema_e2e::temp_dir(&format!("oidc-provider-{tag}"));
    let connectors_file = dir.join("connectors.json");
    let provider = OidcProvider::start(&connectors_file, env);
    let discovery = get_json(&format!("{}/.well-known/openid-configuration", provider.issuer)).await;
    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    let jwks = get_json(discovery["jwks_uri"].as_str().unwrap()).await;
    let opts = SandboxOptions {
        only_connectors: Some(CONNECTORS.iter().map(|c| (*c).to_string()).collect()),
        trusted_idp: Some(TrustedIdp { issuer: provider.issuer.clone(), jwks }),
        ..SandboxOptions::default()
    };
    let org = Org::start_with(&format!("oidc-provider-{tag}"), opts).await;
    let entries: Vec<Value> = org
        .sandbox
        .connector_ids()
        .iter()
        .map(|id| {
            let policy = org.sandbox.policy();
            let scopes =
                policy["connectors"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap()["scopes"]
                    .clone();
            json!({
                "id": id,
                "as_issuer": org.sandbox.as_issuer(id),
                "client_id": org.sandbox.connector_client(id).unwrap().0,
                "mcp_url": org.sandbox.mcp_url(id),
                "scopes": scopes,
            })
        })
        .collect();
    std::fs::write(&connectors_file, serde_json::to_string_pretty(&entries).unwrap()).unwrap();
    let mut policy = org.sandbox.policy();
    policy["idp"] = json!({
        "issuer": provider.issuer,
        "client_id": "ema-desktop",
        "client_auth": { "method": "client_secret_basic", "client_secret": provider.client_secret },
        "scopes": ["openid", "email", "profile", "offline_access"],
        // oidc-provider honours offline_access (a refresh token) only with prompt=consent.
        "prompt": ["consent"],
    });
    std::fs::write(&org.policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    (provider, org)
}

/// Rewrites the org's policy with `idp.exchange_subject` (before the engine reads it).
fn force_subject(org: &Org, subject: &str) {
    let text = std::fs::read_to_string(&org.policy_path).unwrap();
    let mut policy: Value = serde_json::from_str(&text).unwrap();
    policy["idp"]["exchange_subject"] = subject.into();
    std::fs::write(&org.policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
}

fn service(tag: &str) -> String {
    format!("dev.ema.e2e.oidc-provider.{tag}.{}", std::process::id())
}

async fn sign_in(org: &Org, tag: &str, user: &str) -> Arc<Engine> {
    let browser = PlaywrightBrowser::new(user, org.dir.join(format!("browser-{user}.log")));
    sign_in_with(org, tag, &browser).await
}

async fn sign_in_with(org: &Org, tag: &str, browser: &PlaywrightBrowser) -> Arc<Engine> {
    require_keyring_session();
    let engine = org.engine(&service(tag));
    sign_in_again(&engine, browser).await;
    engine
}

/// `Engine::sign_in` (what the user's "Sign in" does) in `browser`.
async fn sign_in_again(engine: &Engine, browser: &PlaywrightBrowser) {
    let user = &browser.user;
    let identity = engine
        .sign_in(browser, SIGN_IN_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("sign-in of {user} at oidc-provider failed: {} ({e})", e.code_str()));
    assert_eq!(&identity.sub, user);
}

fn states(s: &StatusSnapshot) -> BTreeMap<String, ConnectorState> {
    s.connectors.iter().map(|c| (c.id.clone(), c.state)).collect()
}

#[tokio::test]
async fn oidc_provider_signs_in_in_chromium_and_its_id_jags_open_every_entitled_connector() {
    let (provider, org) = start_world("alice", &[]).await;
    let engine = sign_in(&org, "alice", "alice").await;
    let s = engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Active);
    let n = provider.counts().await;
    assert_eq!(n["exchange-with-id-token"], CONNECTORS.len(), "auto sends a fresh ID token: {n:?}");
    assert_eq!(n["exchange-with-refresh-token"], 0, "{n:?}");
    let identity = s.idp.identity.as_ref().unwrap();
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"), "{identity:?}");
    assert_eq!(s.connectors.len(), CONNECTORS.len());
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
        assert!(c.expires_at.unwrap() > s.generated_at, "{}", c.id);
        assert!(!c.scopes.is_empty(), "{}", c.id);
        assert_eq!(c.authorization_server.as_deref(), Some(org.sandbox.as_issuer(&c.id).as_str()));
        assert!(c.token_fingerprint.as_ref().unwrap().starts_with("sha256:"));
        assert_eq!(c.identity.as_ref().unwrap().email.as_deref(), Some("alice@example.com"));
    }
    assert!(!s.needs_attention(), "{s:#?}");
    // The session survives a restart through the keyring, and sign-out revokes at oidc-provider
    // (RFC 7009; its revocation feature is enabled in provider.mjs).
    let again = org.engine(&service("alice"));
    again.load().await.unwrap();
    assert_eq!(states(&again.snapshot()), states(&s));
    assert_eq!(
        again.sign_out().await.unwrap(),
        ema_core::engine::Revocation::Revoked,
        "oidc-provider accepted the revocation"
    );
}

#[tokio::test]
async fn oidc_provider_refusing_the_exchange_is_not_entitled() {
    let (_provider, org) = start_world("bob", &[]).await;
    let s = sign_in(&org, "bob", "bob").await.snapshot();
    assert_eq!(s.idp.identity.as_ref().unwrap().email.as_deref(), Some("bob@example.com"));
    let got = states(&s);
    assert_eq!(got["linear"], ConnectorState::Active, "{s:#?}");
    for id in ["figma", "supabase"] {
        assert_eq!(got[id], ConnectorState::NotEntitled, "{id}: {s:#?}");
        let c = s.connectors.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.error.as_ref().unwrap().code, "not-entitled");
    }
}

#[tokio::test]
async fn oidc_provider_refresh_token_renews_short_lived_id_tokens_before_each_exchange() {
    // ID tokens live 30 s, under the engine's one-minute minimum, and this oidc-provider refuses
    // the refresh token as the exchange's subject (`invalid_request`, as IdPs of the ID-JAG -01
    // era do). With `exchange_subject` at `auto`, the engine tries the refresh token once,
    // remembers the refusal and falls back: every exchange needs a refresh at oidc-provider
    // first, and the renewed identity still has the email (from UserInfo: oidc-provider keeps it
    // out of the ID token).
    let env = [("EMA_OIDC_ID_TOKEN_TTL", "30"), ("EMA_OP_REFRESH_SUBJECT", "refuse")];
    let (provider, org) = start_world("refresh", &env).await;
    let engine = sign_in(&org, "refresh", "alice").await;
    let (mut refused, mut refreshes) = (0, 0);
    for round in 0..2 {
        if round > 0 {
            engine.connect_all(true).await;
        }
        let s = engine.snapshot();
        assert_eq!(s.idp.state, IdpSessionState::Active, "round {round}: {:?}", s.idp.last_error);
        assert_eq!(s.idp.identity.as_ref().unwrap().email.as_deref(), Some("alice@example.com"));
        let exp = s.idp.id_token_expires_at.unwrap();
        assert!(exp > s.generated_at && exp <= s.generated_at + time::Duration::seconds(31), "round {round}: {exp}");
        for c in &s.connectors {
            assert_eq!(c.state, ConnectorState::Active, "round {round}, {}: {:?}", c.id, c.error);
            assert!(c.error.is_none() && c.renewal_error.is_none(), "round {round}, {}: {c:?}", c.id);
        }
        let n = provider.counts().await;
        assert_eq!(n["exchange-with-refresh-token"], 0, "round {round}: {n:?}");
        assert_eq!(n["exchange-with-id-token"], (round + 1) * CONNECTORS.len(), "round {round}: {n:?}");
        if round == 0 {
            refused = n["exchange-refresh-token-refused"];
            assert!(refused >= 1, "auto tried the refresh token: {n:?}");
        } else {
            assert_eq!(n["exchange-refresh-token-refused"], refused, "the refusal was remembered: {n:?}");
        }
        assert!(n["refresh"] >= refreshes + CONNECTORS.len(), "round {round}: a refresh before each exchange: {n:?}");
        refreshes = n["refresh"];
    }
}

#[tokio::test]
async fn oidc_provider_takes_its_refresh_token_as_the_subject_when_the_policy_says_so() {
    // ID tokens live an hour: `auto` would send them. Forced, every exchange sends the refresh
    // token, which oidc-provider validates as its refresh grant does but neither consumes nor
    // rotates, so the same one serves every round; entitlement is still judged, for the
    // refresh token's account.
    let (provider, org) = start_world("rt-forced", &[]).await;
    force_subject(&org, "refresh_token");
    let engine = sign_in(&org, "rt-forced", "alice").await;
    for round in 1..=2 {
        if round > 1 {
            engine.connect_all(true).await;
        }
        let s = engine.snapshot();
        assert_eq!(s.idp.state, IdpSessionState::Active, "round {round}: {:?}", s.idp.last_error);
        for c in &s.connectors {
            assert_eq!(c.state, ConnectorState::Active, "round {round}, {}: {:?}", c.id, c.error);
            assert!(c.error.is_none() && c.renewal_error.is_none(), "round {round}, {}: {c:?}", c.id);
            assert_eq!(c.identity.as_ref().unwrap().email.as_deref(), Some("alice@example.com"));
        }
        let n = provider.counts().await;
        assert_eq!(n["exchange-with-refresh-token"], round * CONNECTORS.len(), "round {round}: {n:?}");
        assert_eq!(n["exchange"], n["exchange-with-refresh-token"], "only refresh-token exchanges: {n:?}");
        assert_eq!(n["exchange-refresh-token-invalid"], 0, "{n:?}");
        assert_eq!(n["refresh"], 0, "no ID-token refresh: {n:?}");
        assert_eq!(
            (n["refresh-token-saved"], n["refresh-token-consumed"]),
            (1, 0),
            "the sign-in's refresh token, neither consumed nor rotated: {n:?}"
        );
    }

    // It is validated, not just taken: one it never issued gets its refresh grant's answer.
    ema_core::http::install_tls_provider();
    let linear_as = org.sandbox.as_issuer("linear");
    let forged = random_hex();
    let resp = reqwest::Client::new()
        .post(format!("{}/token", provider.issuer))
        .basic_auth("ema-desktop", Some(&provider.client_secret))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag"),
            ("subject_token", forged.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
            ("audience", linear_as.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(provider.counts().await["exchange-refresh-token-invalid"], 1);

    let bob = sign_in(&org, "rt-forced-bob", "bob").await.snapshot();
    let got = states(&bob);
    assert_eq!(got["linear"], ConnectorState::Active, "{bob:#?}");
    for id in ["figma", "supabase"] {
        assert_eq!(got[id], ConnectorState::NotEntitled, "{id}: {bob:#?}");
        let c = bob.connectors.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.error.as_ref().unwrap().code, "not-entitled");
    }
    let n = provider.counts().await;
    assert_eq!(n["exchange-with-refresh-token"], 2 * CONNECTORS.len() + 1, "bob's linear: {n:?}");
    assert_eq!(n["exchange"], n["exchange-with-refresh-token"], "{n:?}");
}

#[tokio::test]
async fn oidc_provider_refusing_a_forced_refresh_token_subject_is_the_connectors_error() {
    // Forced, the IdP's refusal is its verdict: no quiet fallback to the ID token.
    let (provider, org) = start_world("rt-refused", &[("EMA_OP_REFRESH_SUBJECT", "refuse")]).await;
    force_subject(&org, "refresh_token");
    let s = sign_in(&org, "rt-refused", "alice").await.snapshot();
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Error, "{}: {c:?}", c.id);
        let err = c.error.as_ref().unwrap();
        assert_eq!(err.code_str(), "token-exchange-oauth-invalid-request", "{}: {err:?}", c.id);
        assert_eq!(err.oauth_error.as_deref(), Some("invalid_request"));
    }
    let n = provider.counts().await;
    assert_eq!(n["exchange-refresh-token-refused"], CONNECTORS.len(), "{n:?}");
    assert_eq!((n["exchange"], n["refresh"]), (0, 0), "{n:?}");
}

#[tokio::test]
async fn oidc_provider_taking_the_refresh_token_is_learned_and_spares_the_id_token_refresh() {
    // ID tokens live 30 s: with `auto`, the expired ID token makes the engine try the refresh
    // token, oidc-provider takes it, and from then on (also in another process) no ID-token
    // refresh is needed.
    let (provider, org) = start_world("rt-auto", &[("EMA_OIDC_ID_TOKEN_TTL", "30")]).await;
    let engine = sign_in(&org, "rt-auto", "alice").await;
    let s = engine.snapshot();
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
    }
    let n = provider.counts().await;
    assert_eq!(n["exchange-with-refresh-token"], CONNECTORS.len(), "{n:?}");
    assert_eq!((n["exchange-with-id-token"], n["refresh"]), (0, 0), "{n:?}");

    engine.connect_all(true).await;
    let again = org.engine(&service("rt-auto"));
    again.load().await.unwrap();
    again.connect_all(true).await;
    let s = again.snapshot();
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
        assert!(c.renewal_error.is_none(), "{}: {:?}", c.id, c.renewal_error);
    }
    let n = provider.counts().await;
    assert_eq!(n["exchange-with-refresh-token"], 3 * CONNECTORS.len(), "{n:?}");
    assert_eq!((n["exchange-with-id-token"], n["refresh"]), (0, 0), "learned: no ID-token refresh: {n:?}");
    assert_eq!((n["refresh-token-saved"], n["refresh-token-consumed"]), (1, 0), "{n:?}");
}

/// The class `provider.mjs` asks for in a step-up (`EMA_OP_STEP_UP_ACR`'s default), and the one a
/// password alone gets.
const ACR_MFA: &str = "urn:ema:mfa";
const ACR_PASSWORD: &str = "urn:ema:pwd";

/// After a sign-in that met no step-up: `connector` waits for the user (a state of its own, the
/// IdP too), the others are active.
fn assert_step_up_required(s: &StatusSnapshot, connector: &str) {
    assert_eq!(s.idp.state, IdpSessionState::StepUpRequired, "{:?}", s.idp.last_error);
    for c in &s.connectors {
        if c.id == connector {
            assert_eq!(c.state, ConnectorState::StepUpRequired, "{c:?}");
            let err = c.error.as_ref().unwrap();
            assert_eq!(err.code, "step-up-required", "{err:?}");
            assert_eq!(err.oauth_error.as_deref(), Some("insufficient_user_authentication"));
            assert_eq!(err.fix_action, Some(ema_core::status::FixAction::SignIn));
        } else {
            assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
        }
    }
    assert!(s.needs_attention());
}

/// The one sign-in in `log[from..]`: its authorization request, checked for `max_age` and
/// `acr_values`; then the first interaction oidc-provider started for it, the login and the ID
/// token issued by the code grant.
fn step_up_round<'a>(
    log: &'a [Value],
    from: usize,
    max_age: &str,
    acr_values: Option<&str>,
) -> (&'a Value, &'a Value, &'a Value) {
    let requests = OidcProvider::events(log, from, "authorization");
    assert_eq!(requests.len(), 1, "one authorization request: {log:#?}");
    assert_eq!(requests[0]["max_age"], max_age, "{log:#?}");
    assert_eq!(requests[0]["acr_values"].as_str(), acr_values, "{log:#?}");
    let interactions = OidcProvider::events(log, from, "interaction");
    let logins = OidcProvider::events(log, from, "login");
    let id_tokens: Vec<_> = OidcProvider::events(log, from, "id-token")
        .into_iter()
        .filter(|t| t["grant_type"] == "authorization_code")
        .collect();
    assert_eq!((logins.len(), id_tokens.len()), (1, 1), "one login, one ID token: {log:#?}");
    (interactions[0], logins[0], id_tokens[0])
}

#[tokio::test]
async fn oidc_provider_step_up_sends_acr_values_and_max_age_and_its_login_issues_the_class() {
    // oidc-provider refuses figma's exchange until the ID token says urn:ema:mfa and a sign-in
    // at most 300 s old. The browser keeps its cookies, as the user's does: oidc-provider's
    // session from the first sign-in is still there at the second.
    let (provider, org) = start_world("step-up", &[("EMA_OP_STEP_UP", "figma")]).await;
    let browser = PlaywrightBrowser::keeping_profile("alice", &org.dir);
    let engine = sign_in_with(&org, "step-up", &browser).await;
    let s = engine.snapshot();
    assert_step_up_required(&s, "figma");
    let err = s.connectors.iter().find(|c| c.id == "figma").unwrap().error.clone().unwrap();
    assert!(err.message.contains("needs you to sign in again to confirm it's you"), "{}", err.message);
    let n = provider.counts().await;
    assert_eq!((n["authorization"], n["authorization-with-max_age"], n["authorization-with-acr_values"]), (1, 0, 0));
    assert_eq!((n["step-up-refused"], n["step-up-met"]), (1, 0), "{n:?}");
    let log = provider.log().await;
    // A plain sign-in's ID token carries neither acr nor auth_time (oidc-provider adds them only
    // when asked for, by acr_values or max_age): the exchange cannot tell, and asks.
    let first = OidcProvider::events(&log, 0, "id-token");
    assert_eq!((&first[0]["acr"], &first[0]["auth_time"]), (&Value::Null, &Value::Null), "{log:#?}");
    assert_eq!(OidcProvider::events(&log, 0, "login")[0]["acr"], ACR_PASSWORD);

    // A renewal neither opens the browser nor loops: the state waits for the user.
    engine.connect_all(true).await;
    assert_step_up_required(&engine.snapshot(), "figma");
    let n = provider.counts().await;
    assert_eq!(n["authorization"], 1, "no browser opened by a renewal: {n:?}");
    let refused = n["step-up-refused"];
    assert!(refused <= 2, "at most one more try of the exchange: {n:?}");

    // The user signs in again: the authorization request carries what the exchange asked for.
    browser.closed().await;
    let from = provider.log().await.len();
    sign_in_again(&engine, &browser).await;
    let s = engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Active, "{:?}", s.idp.last_error);
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
    }
    let n = provider.counts().await;
    assert_eq!((n["authorization"], n["authorization-with-max_age"], n["authorization-with-acr_values"]), (2, 1, 1));
    assert_eq!((n["step-up-refused"], n["step-up-met"]), (refused, 1), "met at once: {n:?}");
    let log = provider.log().await;
    let (interaction, login, id_token) = step_up_round(&log, from, "300", Some(ACR_MFA));
    // The session (a password, seconds old) is within max_age: oidc-provider's own `max_age`
    // check does not fire; the login policy for the requested class does.
    assert_eq!(interaction["prompt"], "login", "{log:#?}");
    assert_eq!(interaction["reasons"], json!(["acr_values"]), "{log:#?}");
    assert_eq!((&login["acr"], &login["amr"]), (&json!(ACR_MFA), &json!(["pwd", "otp"])), "{log:#?}");
    assert_eq!(id_token["acr"], ACR_MFA, "{log:#?}");
    let auth_time = id_token["auth_time"].as_i64().unwrap();
    assert!(auth_time >= login["at"].as_i64().unwrap() - 1, "a fresh auth_time: {log:#?}");
    let verdict = OidcProvider::events(&log, from, "step-up");
    assert!(verdict.iter().all(|v| v["met"] == true && v["acr"] == ACR_MFA), "{log:#?}");
}

#[tokio::test]
async fn oidc_provider_max_age_sends_a_live_session_back_to_the_login_page() {
    // max_age alone (no class): 20 s. The first sign-in's session outlives it before the user
    // signs in again; oidc-provider must then re-authenticate (OIDC Core §3.1.2.1), not reuse it.
    const MAX_AGE: i64 = 20;
    let env = [("EMA_OP_STEP_UP", "supabase"), ("EMA_OP_STEP_UP_ACR", ""), ("EMA_OP_STEP_UP_MAX_AGE", "20")];
    let (provider, org) = start_world("max-age", &env).await;
    let browser = PlaywrightBrowser::keeping_profile("alice", &org.dir);
    let engine = sign_in_with(&org, "max-age", &browser).await;
    assert_step_up_required(&engine.snapshot(), "supabase");
    let log = provider.log().await;
    let first_login = OidcProvider::events(&log, 0, "login")[0]["at"].as_i64().unwrap();

    browser.closed().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let wait = (first_login + MAX_AGE + 2 - now).max(0);
    tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
    let from = log.len();
    sign_in_again(&engine, &browser).await;
    let s = engine.snapshot();
    assert_eq!(s.idp.state, IdpSessionState::Active, "{:?}", s.idp.last_error);
    for c in &s.connectors {
        assert_eq!(c.state, ConnectorState::Active, "{}: {:?}", c.id, c.error);
    }
    let log = provider.log().await;
    let (interaction, login, id_token) = step_up_round(&log, from, "20", None);
    // The browser still had the session (no `no_session`): max_age alone sent it to the login.
    assert_eq!(interaction["prompt"], "login", "{log:#?}");
    assert_eq!(interaction["reasons"], json!(["max_age"]), "{log:#?}");
    assert_eq!(login["acr"], ACR_PASSWORD, "{log:#?}");
    let auth_time = id_token["auth_time"].as_i64().unwrap();
    assert!(auth_time > first_login + MAX_AGE, "a new auth_time, not the session's: {log:#?}");
    let verdicts = OidcProvider::events(&log, from, "step-up");
    assert!(verdicts.iter().all(|v| v["met"] == true), "{log:#?}");
}

#[tokio::test]
async fn oidc_provider_withdrawing_a_connector_deletes_its_token_and_revokes_it_at_the_connector() {
    let (provider, org) = start_world("unassign", &[]).await;
    let engine = sign_in(&org, "unassign", "alice").await;
    let minute = Duration::from_secs(60);
    let token = engine.fresh_access_token("figma", minute).await.unwrap();
    let figma = org.policy().connector("figma").unwrap().mcp_url.clone();
    let probe =
        HttpProbe::new(&ema_core::http::HttpTransport::new(Duration::from_secs(10)).unwrap(), Duration::from_secs(10));
    probe.check(&figma, &token).await.expect("the token works before");
    assert_eq!(org.sandbox.count("connector-revoke"), 0);

    provider.unassign("alice", "figma").await;
    engine.connect_all(true).await;
    let s = engine.snapshot();
    let c = s.connectors.iter().find(|c| c.id == "figma").unwrap();
    assert_eq!(c.state, ConnectorState::NotEntitled, "{c:?}");
    assert_eq!(c.error.as_ref().unwrap().code, "not-entitled");
    assert_eq!(c.error.as_ref().unwrap().oauth_error.as_deref(), Some("access_denied"));
    assert!(c.token_fingerprint.is_none() && c.expires_at.is_none(), "{c:?}");
    let got = states(&s);
    assert_eq!((got["linear"], got["supabase"]), (ConnectorState::Active, ConnectorState::Active), "{s:#?}");
    assert_eq!(provider.counts().await["exchange-unassigned"], 1);
    assert!(
        matches!(engine.fresh_access_token("figma", minute).await, Err(TokenUnavailable::NotEntitled(_))),
        "nothing hands the token out any more"
    );
    // Another process (`ema headers`) reads the store: no token there either.
    let again = org.engine(&service("unassign"));
    again.load().await.unwrap();
    assert!(again.fresh_access_token("figma", minute).await.is_err());
    assert_eq!(org.sandbox.count("connector-revoke"), 1, "revoked at figma's authorization server (RFC 7009)");
    assert!(
        matches!(probe.check(&figma, &token).await, Err(McpCheckError::Unauthorized)),
        "a copy a client took earlier no longer works"
    );

    // Still withdrawn at the next renewal: nothing left to revoke.
    engine.connect_all(true).await;
    assert_eq!(states(&engine.snapshot())["figma"], ConnectorState::NotEntitled);
    assert_eq!(org.sandbox.count("connector-revoke"), 1);
}
