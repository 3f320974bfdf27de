//! Shared helpers for the end-to-end tests: a sandbox org per test, a policy file pointing at
//! it, the scripted browser, and the keyring session the tests run in.
//!
//! The tests use real parts: the sandbox over real HTTP on 127.0.0.1, the scripted browser as
//! a separate process following real redirects to the loopback listener, and the OS keyring
//! (gnome-keyring's Secret Service in the dbus session that `scripts/test.sh` starts).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_debug_implementations)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ema_core::config::{ConfigSource, Policy};
use ema_core::engine::{Engine, EngineParts};
use ema_core::signin::BrowserOpener;
use ema_core::store::KeyringStore;
use ema_sandbox::{Sandbox, SandboxOptions};

/// The scripted browser (`tests/browser/scripted-browser.py`).
pub fn scripted_browser() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join("scripted-browser.py")
}

/// Fails with a clear message when the tests run outside the keyring session.
pub fn require_keyring_session() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "these tests use the real OS keyring: run them through `scripts/test.sh` (a dbus session with an unlocked gnome-keyring)"
    );
}

/// A fresh temporary directory, kept after the test (removed by the OS's tmp cleaning): a failed
/// test leaves its evidence behind (logs, policies, the browser's record).
pub fn temp_dir(tag: &str) -> PathBuf {
    tempfile::Builder::new().prefix(&format!("ema-e2e-{tag}-")).tempdir().unwrap().keep()
}

/// The `ema` binary at `bin` as a user on `org` runs it: the org's policy, the scripted browser
/// signing in as `user`, trace logging on (so canary checks cover the logs too).
pub fn ema_command(bin: &str, org: &Org, user: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env("EMA_CONFIG", &org.policy_path)
        .env("BROWSER", scripted_browser())
        .env("EMA_TEST_USER", user)
        .env("EMA_TEST_BROWSER_LOG", org.dir.join("browser.log"))
        .env("EMA_LOG", "trace");
    c
}

/// The scanner's fixtures: a home with personal connections, and the secrets planted in it.
const SCAN_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/core/tests/fixtures/scan");

/// A copy of the scanner's fixture home under `org.dir` (`@HOME@` in contents replaced by the
/// copy's path), for running `ema` with `HOME` there.
pub fn fixture_home(org: &Org) -> PathBuf {
    fn copy(from: &Path, to: &Path, home: &str) {
        std::fs::create_dir_all(to).expect("create the fixture home");
        for e in std::fs::read_dir(from).expect("read the fixtures") {
            let e = e.expect("read the fixtures");
            let target = to.join(e.file_name());
            if e.file_type().expect("a file type").is_dir() {
                copy(&e.path(), &target, home);
            } else {
                let text = std::fs::read_to_string(e.path()).expect("a text fixture");
                std::fs::write(&target, text.replace("@HOME@", home)).expect("write the fixture home");
            }
        }
    }
    let home = org.dir.join("home");
    copy(&Path::new(SCAN_FIXTURES).join("home"), &home, &home.to_string_lossy());
    home
}

/// The secret values planted in the fixture home (none may appear in any output).
pub fn fixture_canaries() -> Vec<String> {
    std::fs::read_to_string(Path::new(SCAN_FIXTURES).join("canaries.txt"))
        .expect("the canary list")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A running sandbox and its policy, written to a file.
pub struct Org {
    pub sandbox: Sandbox,
    pub policy_path: PathBuf,
    pub dir: PathBuf,
}

impl Org {
    pub async fn start(tag: &str) -> Org {
        Self::start_with(tag, SandboxOptions::default()).await
    }

    pub async fn start_with(tag: &str, opts: SandboxOptions) -> Org {
        let sandbox = Sandbox::start(opts).await.unwrap();
        let dir = temp_dir(tag);
        let policy_path = dir.join("policy.json");
        std::fs::write(&policy_path, serde_json::to_string_pretty(&sandbox.policy()).unwrap()).unwrap();
        Org { sandbox, policy_path, dir }
    }

    pub fn policy(&self) -> Policy {
        Policy::load(ConfigSource::Explicit(self.policy_path.clone())).unwrap()
    }

    /// An engine on this org with the product's parts, except a keyring service of its own.
    pub fn engine(&self, keyring_service: &str) -> Arc<Engine> {
        let policy = self.policy();
        let mut parts = EngineParts::production(&policy).unwrap();
        parts.store = Arc::new(KeyringStore::with_service(keyring_service));
        Engine::new(policy, parts)
    }
}

/// A [`BrowserOpener`] that runs the scripted browser as a separate process, as `$BROWSER` would.
#[derive(Debug, Clone)]
pub struct ScriptedBrowser {
    pub user: String,
    pub mode: Option<String>,
    pub log: PathBuf,
}

impl ScriptedBrowser {
    pub fn new(user: &str, log: PathBuf) -> Self {
        ScriptedBrowser { user: user.into(), mode: None, log }
    }
}

impl BrowserOpener for ScriptedBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        let mut cmd = std::process::Command::new(scripted_browser());
        cmd.arg(url).env("EMA_TEST_USER", &self.user).env("EMA_TEST_BROWSER_LOG", &self.log);
        if let Some(m) = &self.mode {
            cmd.env("EMA_TEST_BROWSER_MODE", m);
        }
        cmd.spawn().map(|_| ()).map_err(|e| e.to_string())
    }
}

/// An engine for `policy` as `ema login` leaves it, for a peer that hands over the ID token
/// itself (the conformance suite, a hostile org): the product's transport, MCP check and clock,
/// and an in-memory store (injected: these peers' processes have no desktop keyring) holding the
/// session with `id_token`, valid until `expires_at` (Unix seconds). Returns the store too.
pub async fn engine_with_id_token(
    policy: Policy,
    id_token: ema_core::secret::IdToken,
    expires_at: Option<i64>,
    timeout: std::time::Duration,
) -> Result<(Arc<Engine>, Arc<ema_core::store::MemoryStore>), String> {
    use ema_core::records::{RECORD_VERSION, StoredSession, session_account};
    use ema_core::store::{MemoryStore, SecretStore};
    let store = Arc::new(MemoryStore::new());
    let session = StoredSession {
        v: RECORD_VERSION,
        identity: None,
        id_token: Some(id_token),
        id_token_expires_at: expires_at,
        refresh_token: None,
        signed_in_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        refresh_token_subject: None,
        idp_issuer: None,
    };
    let account = session_account(policy.idp.issuer.as_str(), &policy.idp.client_id);
    store.set(&account, &serde_json::to_string(&session).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let http = ema_core::http::HttpTransport::new(timeout).map_err(|e| e.to_string())?;
    let parts = EngineParts {
        mcp: Arc::new(ema_core::mcp_check::HttpProbe::new(&http, timeout)),
        transport: Arc::new(http),
        store: store.clone(),
        clock: Arc::new(ema_core::clock::SystemClock),
    };
    let engine = Engine::new(policy, parts);
    engine.load().await.map_err(|e| e.to_string())?;
    Ok((engine, store))
}
