//! The engine: one sign-in at the IdP, then a token for every connector the IdP entitles the
//! user to, kept fresh, with a status everyone can subscribe to.
//!
//! Shape (tailscale's `LocalBackend`): the engine owns the state machine and publishes a
//! [`StatusSnapshot`] on a `watch` channel at every change; the CLI and the tray are clients.
//! The engine never opens a window: sign-in asks a [`BrowserOpener`] the shell passes in.
//!
//! Where each concept lives:
//! - [`session`]: interactive sign-in and sign-out (the IdP session);
//! - [`connect`]: the connect state machine, one connector's outcome to its record and status;
//! - [`legs`]: the three legs (fresh ID token, token exchange, JWT-bearer grant) and the MCP check;
//! - [`failures`]: how a failed leg is classified and worded;
//! - [`renewal`]: when renewals are due and the task that runs them;
//! - [`record_store`]: restoring state from the store and coalesced writes of the records;
//! - [`trust`]: trust on first use of each connector's authorization server;
//! - [`client_token`]: the access token handed to a client (`ema headers`);
//! - `idp_budget` and [`skew`]: the cap on IdP requests, and clock skew seen in servers' `Date`.
//!
//! Concurrency: connectors are connected in parallel under a semaphore
//! (`settings.max_parallel_connectors`); each connector has its own lock, so two renewals of
//! the same connector never race (single flight); the IdP session has one lock too, so when the
//! ID token needs refreshing, one refresh serves every connector waiting on it. Which lock guards
//! what is written at the fields of [`Engine`], with the order in which they are taken.
//!
//! Failure policy: a renewal that fails while the current access token is still valid keeps
//! the connector active and records why (`renewal_error`): the connector works until expiry
//! even when the IdP is down. "Not entitled" is a state, not an error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore, watch};

use crate::clock::{Clock, SystemClock};
use crate::config::Policy;
use crate::discovery::Discovery;
use crate::http::{HttpTransport, Transport, TransportError};
use crate::mcp_check::{HttpProbe, McpProbe};
use crate::records::{StoredConnector, StoredIdpProblem, StoredSession, TrustedAuthorizationServer, session_account};
use crate::signin::{IdpClient, SignInError};
use crate::status::{ConnectorStatus, ErrorCode, StatusError, StatusSnapshot};
use crate::store::{KeyringStore, SecretStore, StoreError};

mod client_token;
mod connect;
mod failures;
mod idp_budget;
mod idp_pacing;
mod legs;
mod record_store;
mod renewal;
#[cfg(test)]
mod scenarios;
mod session;
pub mod skew;
mod subject;
mod trust;
mod unassigned;

pub use client_token::TokenUnavailable;
use connect::Failure;
pub use record_store::OpenError;
use record_store::{apply_record, blank_connector_status, initial_snapshot};
pub use renewal::MIN_RENEWAL_INTERVAL;
pub use session::Revocation;
pub use trust::{AuthorizationServerTrust, TrustSource};

/// The replaceable parts of an engine: real ones in the product, fakes in unit tests.
#[derive(Debug, Clone)]
pub struct EngineParts {
    pub transport: Arc<dyn Transport>,
    pub store: Arc<dyn SecretStore>,
    pub mcp: Arc<dyn McpProbe>,
    /// Wall-clock time for expiry, renewal scheduling and the IdP request budget.
    pub clock: Arc<dyn Clock>,
}

impl EngineParts {
    /// The product's parts: reqwest transport, OS keyring, MCP probe.
    pub fn production(policy: &Policy) -> Result<Self, TransportError> {
        let http = HttpTransport::new(policy.settings.request_timeout)?;
        Ok(EngineParts {
            mcp: Arc::new(HttpProbe::new(&http, policy.settings.request_timeout)),
            transport: Arc::new(http),
            store: Arc::new(KeyringStore::new()),
            clock: Arc::new(SystemClock),
        })
    }
}

/// Why an interactive sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::SignIn(e) => e.code(),
            EngineError::Store(e) => e.code(),
        }
    }

    /// The code as the status schema writes it, the IdP's OAuth `error` included.
    pub fn code_str(&self) -> String {
        match self {
            EngineError::SignIn(e) => e.code().wire(e.oauth_error()),
            EngineError::Store(e) => e.code().wire(None),
        }
    }
}

/// The engine.
///
/// Locks, in the order they are taken when one is held while taking another (never the
/// reverse): a connector's lock (`connector_locks`), then `limiter`, then `session`, then `idp`;
/// `write_lock` alone. The `std::sync` mutexes (`records`, then `idp_problem` and `trusted_as`,
/// `recent_idp_failure`) are never held across an await, so they come last in any order
/// above, and `records` is taken before `idp_problem` and `trusted_as` when more than one is
/// needed (a write of the records reads all three).
#[derive(Debug)]
pub struct Engine {
    /// Read-only after start.
    policy: Arc<Policy>,
    parts: EngineParts,
    /// Its own locks (discovery results per connector).
    discovery: Discovery,
    /// The discovered IdP, discovered once (async lock: discovery awaits under it, so that
    /// concurrent connectors discover once).
    idp: Mutex<Option<IdpClient>>,
    /// The IdP session (tokens and identity); async lock, held across the refresh so that one
    /// refresh serves every connector waiting on it.
    session: Mutex<Option<StoredSession>>,
    /// One per connector, held for a whole connect: single flight per connector.
    connector_locks: HashMap<String, Mutex<()>>,
    /// How many connectors connect at once.
    limiter: Semaphore,
    /// The published status (its own lock: `send_modify`, never held across an await).
    status: watch::Sender<StatusSnapshot>,
    /// Connector records as last stored (tokens included), written as one keyring entry.
    records: std::sync::Mutex<BTreeMap<String, StoredConnector>>,
    /// Coalesced writes of `records`: a change bumps `records_changed`; a write covers every
    /// change made before it took its snapshot, recorded in `records_written`.
    records_changed: AtomicU64,
    records_written: AtomicU64,
    /// Held for one write of the records to the store (async: the write is awaited).
    write_lock: Mutex<()>,
    /// The last renewal problem of the IdP session, stored with the records so that every
    /// process tells the same story until a renewal succeeds. Guarded by its own lock, never
    /// held across an await; taken after `records` when both are needed.
    idp_problem: std::sync::Mutex<Option<StoredIdpProblem>>,
    /// Trust on first use of each connector's authorization server (stored with the records;
    /// same lock rules as `idp_problem`).
    trusted_as: std::sync::Mutex<BTreeMap<String, TrustedAuthorizationServer>>,
    /// A failure at the IdP a moment ago (unreachable, or a refresh without an ID token), so
    /// the connectors of one round do not each spend another request on it (cleared by a
    /// working refresh, an answer from the IdP, or a sign-in). Never held across an await.
    recent_idp_failure: std::sync::Mutex<Option<idp_pacing::RecentIdpFailure>>,
    /// When a refresh last brought no ID token: the connectors that follow within
    /// [`idp_pacing::REFRESH_WITHOUT_ID_TOKEN_QUIET`] go on with the refresh token it left instead of
    /// refreshing again (which, with rotation, would spend the token the others are sending).
    refresh_without_id_token_at: std::sync::Mutex<Option<OffsetDateTime>>,
    /// How each connector AS (by issuer) wants `private_key_jwt` assertions addressed, once one
    /// refused the token endpoint as `aud` and took the issuer (rfc7523bis); per process.
    assertion_audiences: std::sync::Mutex<HashMap<String, crate::oauth::client_auth::AudienceRule>>,
    /// What the IdP asked of the next sign-in (step-up), stored with the records; same lock
    /// rules as `idp_problem`.
    step_up: std::sync::Mutex<Option<crate::oauth::StepUp>>,
    /// Clock skew per server, from the `Date` of every response (all traffic goes through it).
    skew: Arc<skew::SkewObserver>,
    /// The cap on requests to the IdP during renewals (its own lock).
    idp_budget: idp_budget::IdpBudget,
}

fn from_unix(t: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t).ok()
}

impl Engine {
    /// An engine for `policy`. Call [`Engine::load`] to restore stored state.
    pub fn new(policy: Policy, mut parts: EngineParts) -> Arc<Self> {
        let now = parts.clock.now();
        let snapshot = initial_snapshot(&policy, now);
        let (status, _) = watch::channel(snapshot);
        let skew = Arc::new(skew::SkewObserver::new(parts.transport.clone(), parts.clock.clone()));
        parts.transport = skew.clone();
        Arc::new(Engine {
            idp_problem: std::sync::Mutex::new(None),
            trusted_as: std::sync::Mutex::new(BTreeMap::new()),
            recent_idp_failure: std::sync::Mutex::new(None),
            refresh_without_id_token_at: std::sync::Mutex::new(None),
            assertion_audiences: std::sync::Mutex::new(HashMap::new()),
            step_up: std::sync::Mutex::new(None),
            skew,
            idp_budget: idp_budget::IdpBudget::new(policy.connectors.len(), now),
            connector_locks: policy.connectors.iter().map(|c| (c.id.clone(), Mutex::new(()))).collect(),
            limiter: Semaphore::new(policy.settings.max_parallel_connectors),
            policy: Arc::new(policy),
            parts,
            discovery: Discovery::new(),
            idp: Mutex::new(None),
            session: Mutex::new(None),
            status,
            records: std::sync::Mutex::new(BTreeMap::new()),
            records_changed: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            write_lock: Mutex::new(()),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn now(&self) -> OffsetDateTime {
        self.parts.clock.now()
    }

    fn error(&self, code: ErrorCode, message: &str, fix: &str) -> StatusError {
        status_error_at(code, message, fix, self.now())
    }

    /// An error with the server's OAuth `error` kept beside its code.
    fn oauth_error(&self, code: ErrorCode, oauth_error: Option<&str>, message: &str, fix: &str) -> StatusError {
        StatusError { oauth_error: oauth_error.map(String::from), ..self.error(code, message, fix) }
    }

    /// Subscribes to status changes (no polling: `changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<StatusSnapshot> {
        self.status.subscribe()
    }

    /// The current status, with time-driven states derived now.
    pub fn snapshot(&self) -> StatusSnapshot {
        let mut s = self.status.borrow().clone();
        s.derive_at(self.now(), self.warning());
        s
    }

    fn warning(&self) -> time::Duration {
        time::Duration::try_from(self.policy.settings.expiry_warning).unwrap_or(time::Duration::minutes(10))
    }

    fn publish(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        let warning = self.warning();
        self.status.send_modify(|s| {
            f(s);
            s.derive_at(self.now(), warning);
        });
    }

    fn publish_connector(&self, id: &str, f: impl FnOnce(&mut ConnectorStatus)) {
        self.publish(|s| {
            if let Some(c) = s.connectors.iter_mut().find(|c| c.id == id) {
                f(c);
            }
        });
    }

    fn issuer(&self) -> &str {
        self.policy.idp.issuer.as_str()
    }

    fn session_account(&self) -> String {
        session_account(self.issuer(), &self.policy.idp.client_id)
    }
}

fn status_error_at(code: ErrorCode, message: &str, fix: &str, at: OffsetDateTime) -> StatusError {
    StatusError { code, oauth_error: None, message: message.into(), fix: fix.into(), fix_action: None, at }
}
