//! The embedded sandbox organisation: a whole Enterprise-Managed Authorization
//! world on one loopback port.
//!
//! The app must be demonstrable and testable without a real enterprise IdP or real
//! SaaS vendors, so the sandbox hosts all of them in-process under one origin
//! `http://127.0.0.1:PORT`:
//!
//! - `/idp/...`: an OpenID Provider (authorization code + PKCE with a login page,
//!   refresh tokens, RFC 8693 token exchange issuing ID-JAGs per
//!   draft-ietf-oauth-identity-assertion-authz-grant-04);
//! - `/connectors/<id>/as/...`: one authorization server per connector, accepting
//!   ID-JAGs in an RFC 7523 JWT bearer grant;
//! - `/connectors/<id>/mcp`: one MCP server per connector (Streamable HTTP, rmcp);
//! - `/.well-known/...`: RFC 9728 and RFC 8414 discovery documents;
//! - `/_sandbox/...`: knobs, policy and users, for tests driving another process.
//!
//! [`Sandbox::policy`] is the managed policy that points the app at it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ema_sandbox::SandboxError> {
//! let sandbox = ema_sandbox::Sandbox::start(Default::default()).await?;
//! println!("{}", sandbox.policy());
//! sandbox.knobs().update(|k| k.idp_down = true);
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod catalog;
mod connector;
mod html;
mod idp;
mod jwt;
mod knobs;
mod oauth;
mod policy;
mod server;
mod state;
mod users;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use catalog::{BUILTIN_CONNECTORS, ConnectorDef, ExternalConnector, TrustedIdp};
pub use knobs::{ConnectorFailure, IdTokenFault, Knobs, KnobsHandle};
pub use oauth::{ClientAssertionAudience, ClientAuthMethod, ClientKey};
pub use users::{DEMO_PASSWORD, DemoUser, EMAIL_DOMAIN, USERS, entitled_connectors, find_user};

use connector::McpServers;
use state::{ConnectorState, IDP_CLIENT_ID, SandboxState};

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Port on 127.0.0.1; 0 picks an ephemeral one.
    pub port: u16,
    /// How the app's client (`ema-desktop`) authenticates at the IdP.
    pub idp_client_auth: ClientAuthMethod,
    /// How the app authenticates at each connector's AS (client `ema-<id>`).
    pub connector_client_auth: ClientAuthMethod,
    /// Connector id → how the app authenticates at that connector's AS, instead of
    /// `connector_client_auth` (e.g. one connector on `private_key_jwt`).
    pub client_auth_by_connector: BTreeMap<String, ClientAuthMethod>,
    /// Which `aud` the connectors' ASs take in a `private_key_jwt` client assertion.
    pub client_assertion_audience: ClientAssertionAudience,
    /// Where the private keys of `private_key_jwt` clients are written for the policy's
    /// `key_file` (0600 files). `None`: a fresh directory under the system's temporary
    /// directory, removed when the sandbox stops (a given directory is kept; the key files in it
    /// are removed).
    pub key_dir: Option<PathBuf>,
    /// Adds `synthetic-01` ... connectors entitled to every user (benchmarks).
    pub extra_connectors: usize,
    /// Restricts the built-in connectors to these ids (`None`: all of them).
    pub only_connectors: Option<Vec<String>>,
    /// Connectors hosted by interop peers that the IdP also issues ID-JAGs for.
    pub external_connectors: Vec<ExternalConnector>,
    /// Accept ID-JAGs from this IdP (instead of the sandbox IdP) at the connectors' ASs.
    pub trusted_idp: Option<TrustedIdp>,
    /// Initial knobs.
    pub knobs: Knobs,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            port: 0,
            idp_client_auth: ClientAuthMethod::ClientSecretBasic,
            connector_client_auth: ClientAuthMethod::ClientSecretBasic,
            client_auth_by_connector: BTreeMap::new(),
            client_assertion_audience: ClientAssertionAudience::default(),
            key_dir: None,
            extra_connectors: 0,
            only_connectors: None,
            external_connectors: Vec::new(),
            trusted_idp: None,
            knobs: Knobs::default(),
        }
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listening socket could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// `only_connectors` names a connector the sandbox does not have.
    #[error("unknown connector {0:?} (known: asana, atlassian, canva, figma, granola, linear, supabase)")]
    UnknownConnector(String),
    /// The signing key could not be generated.
    #[error("cannot create the IdP signing key: {0}")]
    Key(String),
    /// A `private_key_jwt` client's key could not be made or written for the policy.
    #[error("cannot create the client key file {path}: {problem}")]
    ClientKey { path: PathBuf, problem: String },
}

/// A running sandbox organisation. Dropping it stops the server too;
/// [`Sandbox::shutdown`] also waits for it.
#[derive(Debug)]
pub struct Sandbox {
    state: Arc<SandboxState>,
    base_url: url::Url,
    mcp: McpServers,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    keys: KeyFiles,
}

impl Sandbox {
    /// Binds 127.0.0.1:`opts.port`, generates keys and secrets, and starts serving.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let defs = catalog::build(opts.only_connectors.as_deref(), opts.extra_connectors)
            .map_err(SandboxError::UnknownConnector)?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port)))
            .await
            .map_err(|source| SandboxError::Bind { port: opts.port, source })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind { port: opts.port, source })?;
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let base_url =
            url::Url::parse(&format!("{origin}/")).map_err(|e| SandboxError::Key(format!("bad base URL: {e}")))?;
        let key = jwt::SigningKeyPair::generate().map_err(SandboxError::Key)?;
        let knobs = KnobsHandle::new(opts.knobs);
        let mut keys = KeyFiles::new(opts.key_dir);
        let idp_issuer = format!("{origin}/idp");
        // The IdP takes what Keycloak, Spring and oidc-provider take (its behaviour is not a knob).
        let idp_client = keys.register(
            oauth::RegisteredClient::new(IDP_CLIENT_ID, opts.idp_client_auth),
            format!("{idp_issuer}/token"),
            idp_issuer,
            ClientAssertionAudience::IssuerOrEndpoint,
            &knobs,
        )?;
        let mut connectors = Vec::with_capacity(defs.len());
        for def in defs {
            let method = opts.client_auth_by_connector.get(&def.id).copied().unwrap_or(opts.connector_client_auth);
            let issuer = format!("{origin}/connectors/{}/as", def.id);
            let client = keys.register(
                oauth::RegisteredClient::new(format!("ema-{}", def.id), method),
                format!("{issuer}/token"),
                issuer,
                opts.client_assertion_audience,
                &knobs,
            )?;
            connectors.push(ConnectorState { client, def });
        }
        let state = Arc::new(SandboxState::new(
            origin,
            knobs,
            key,
            idp_client,
            connectors,
            opts.external_connectors,
            opts.trusted_idp,
        ));
        let mut mcp = McpServers::default();
        let app = server::router(state.clone(), &mut mcp);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("sandbox server stopped: {e}");
            }
        });
        tracing::info!(%base_url, "sandbox organisation started");
        Ok(Sandbox { state, base_url, mcp, shutdown: Some(shutdown), task: Some(task), keys })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> url::Url {
        self.base_url.clone()
    }

    /// The IdP issuer, `http://127.0.0.1:PORT/idp`.
    pub fn idp_issuer(&self) -> String {
        self.state.idp_issuer()
    }

    /// Every credential issued while the `record_issued_secrets` knob was on, for canary tests.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.state.issued_secrets()
    }

    /// How many requests of `kind` were answered with success so far: `refresh` (refresh-token
    /// grants), `exchange` (ID-JAGs issued), `grant:<connector id>` (access tokens issued).
    pub fn count(&self, kind: &str) -> u64 {
        self.state.stores().counts.get(kind).copied().unwrap_or(0)
    }

    /// The IdP client id of the app (`ema-desktop`).
    pub fn idp_client_id(&self) -> &str {
        &self.state.idp_client.client_id
    }

    /// The IdP client secret of the app (`None` for `none` auth).
    pub fn idp_client_secret(&self) -> Option<&str> {
        self.state.idp_client.secret.as_deref()
    }

    /// Connector ids in catalog order.
    pub fn connector_ids(&self) -> Vec<String> {
        self.state.connector_order.clone()
    }

    /// The MCP server URL of a connector.
    pub fn mcp_url(&self, connector_id: &str) -> String {
        self.state.mcp_url(connector_id)
    }

    /// The AS issuer of a connector.
    pub fn as_issuer(&self, connector_id: &str) -> String {
        self.state.as_issuer(connector_id)
    }

    /// The app's client id and secret at a connector's AS.
    pub fn connector_client(&self, connector_id: &str) -> Option<(String, Option<String>)> {
        self.state.connectors.get(connector_id).map(|c| (c.client.client_id.clone(), c.client.secret.clone()))
    }

    /// The app's key pair at a connector's AS, when that client is registered for
    /// `private_key_jwt` (the policy's `key_file` holds its private half).
    pub fn connector_client_key(&self, connector_id: &str) -> Option<Arc<ClientKey>> {
        self.state.connectors.get(connector_id).and_then(|c| c.client.key.clone())
    }

    /// The connectors of this sandbox `username` is entitled to (built-ins by group,
    /// plus every synthetic connector), in catalog order.
    pub fn entitled_connectors(&self, username: &str) -> Vec<String> {
        server::entitled_in(&self.state, username)
    }

    /// A fresh ID token for a demo user, as if they had just signed in (no nonce).
    /// For tests and tools that skip the browser (the conformance suite does too).
    pub fn issue_id_token(&self, username: &str) -> Option<String> {
        let user = find_user(username)?;
        idp::id_token_for(&self.state, user, self.state.now(), None, None).ok()
    }

    /// The managed policy document pointing at this sandbox, in the format of
    /// `examples/policy.example.json` (it contains this start's client secrets).
    pub fn policy(&self) -> serde_json::Value {
        policy::document(&self.state)
    }

    /// The live knobs.
    pub fn knobs(&self) -> KnobsHandle {
        self.state.knobs.clone()
    }

    /// The demo users.
    pub fn users() -> &'static [DemoUser] {
        USERS
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until Ctrl-C, then shuts down.
    pub async fn run_until_ctrl_c(self) {
        let _ = tokio::signal::ctrl_c().await;
        self.shutdown().await;
    }

    fn stop(&mut self) {
        self.mcp.cancel();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.keys.remove();
    }
}

/// The private keys of `private_key_jwt` clients, written where the policy's `key_file` points,
/// and removed when the sandbox stops.
#[derive(Debug)]
struct KeyFiles {
    /// The directory; `None` until a key is written.
    dir: Option<PathBuf>,
    /// The directory the options named, if any (kept; only the files are removed).
    given: Option<PathBuf>,
    written: Vec<PathBuf>,
}

impl KeyFiles {
    fn new(given: Option<PathBuf>) -> Self {
        KeyFiles { dir: None, given, written: Vec::new() }
    }

    /// For a `private_key_jwt` client: writes its private key and makes its AS (`issuer`,
    /// `token_endpoint`) check its assertions. Other clients pass unchanged.
    fn register(
        &mut self,
        client: oauth::RegisteredClient,
        token_endpoint: String,
        issuer: String,
        audience: ClientAssertionAudience,
        knobs: &KnobsHandle,
    ) -> Result<oauth::RegisteredClient, SandboxError> {
        if client.method != ClientAuthMethod::PrivateKeyJwt {
            return Ok(client);
        }
        let dir = self.dir()?;
        let path = dir.join(format!("{}.pem", client.client_id));
        let fail = |problem: String| SandboxError::ClientKey { path: path.clone(), problem };
        let pem = client.key.as_ref().ok_or_else(|| fail("no P-256 key could be generated".into()))?.private_pem();
        write_private(&path, pem).map_err(|e| fail(e.to_string()))?;
        self.written.push(path.clone());
        let mut client = client.with_assertion_check(issuer, token_endpoint, audience, knobs.clone());
        client.key_file = Some(path);
        Ok(client)
    }

    fn dir(&mut self) -> Result<PathBuf, SandboxError> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        let dir = match &self.given {
            Some(given) => given.clone(),
            None => std::env::temp_dir().join(format!("ema-sandbox-keys-{}", uuid::Uuid::new_v4().simple())),
        };
        create_private_dir(&dir).map_err(|e| SandboxError::ClientKey {
            path: dir.clone(),
            problem: format!("cannot create the folder: {e}"),
        })?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    fn remove(&mut self) {
        for file in self.written.drain(..) {
            let _ = std::fs::remove_file(file);
        }
        if self.given.is_none()
            && let Some(dir) = self.dir.take()
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `text` to a new file readable by its owner only (a private key).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
