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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use catalog::{BUILTIN_CONNECTORS, ConnectorDef, ExternalConnector, TrustedIdp};
pub use knobs::{ConnectorFailure, IdTokenFault, Knobs, KnobsHandle};
pub use oauth::ClientAuthMethod;
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
        let connectors = defs
            .into_iter()
            .map(|def| ConnectorState {
                client: oauth::RegisteredClient::new(format!("ema-{}", def.id), opts.connector_client_auth),
                def,
            })
            .collect();
        let state = Arc::new(SandboxState::new(
            origin,
            KnobsHandle::new(opts.knobs),
            key,
            oauth::RegisteredClient::new(IDP_CLIENT_ID, opts.idp_client_auth),
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
        Ok(Sandbox { state, base_url, mcp, shutdown: Some(shutdown), task: Some(task) })
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

    /// The connectors of this sandbox `username` is entitled to (built-ins by group,
    /// plus every synthetic connector), in catalog order.
    pub fn entitled_connectors(&self, username: &str) -> Vec<String> {
        server::entitled_in(&self.state, username)
    }

    /// A fresh ID token for a demo user, as if they had just signed in (no nonce).
    /// For tests and tools that skip the browser (the conformance suite does too).
    pub fn issue_id_token(&self, username: &str) -> Option<String> {
        let user = find_user(username)?;
        idp::id_token_for(&self.state, user, self.state.now(), None).ok()
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
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
