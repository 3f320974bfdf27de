//! The engine: one sign-in at the IdP, then a token for every connector the IdP entitles the
//! user to, kept fresh, with a status everyone can subscribe to.
//!
//! Shape (tailscale's `LocalBackend`): the engine owns the state machine and publishes a
//! [`StatusSnapshot`] on a `watch` channel at every change; the CLI and the tray are clients.
//! The engine never opens a window: sign-in asks a [`BrowserOpener`] the shell passes in.
//!
//! Concurrency: connectors are connected in parallel under a semaphore
//! (`settings.max_parallel_connectors`); each connector has its own lock, so two renewals of
//! the same connector never race (single flight); the IdP session has one lock too, so when the
//! ID token needs refreshing, one refresh serves every connector waiting on it.
//!
//! Failure policy: a renewal that fails while the current access token is still valid keeps
//! the connector active and records why (`renewal_error`): the connector works until expiry
//! even when the IdP is down. "Not entitled" is a state, not an error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, Semaphore, watch};
use url::Url;

use crate::clock::{Clock, SystemClock};
use crate::config::{ClientAuth, ConnectorConfig, Policy};
use crate::discovery::{ConnectorEndpoints, Discovery};
use crate::grants::jwt_bearer::{self, ConnectorGrant, JwtBearerGrant};
use crate::grants::token_exchange::{self, ExchangeError, TokenExchange};
use crate::http::{HttpTransport, Transport, TransportError};
use crate::mcp_check::{HttpProbe, McpProbe};
use crate::records::{
    RECORD_VERSION, StoredConnector, StoredConnectors, StoredIdpProblem, StoredOutcome, StoredSession,
    TrustedAuthorizationServer, connectors_account, session_account,
};
use crate::secret::{AccessToken, IdToken};
use crate::signin::loopback::LoopbackListener;
use crate::signin::{BrowserOpener, IdpClient, SignInError};
use crate::status::{
    ConnectorState, ConnectorStatus, Identity, IdpSessionState, IdpStatus, STATUS_SCHEMA_VERSION, StatusError,
    StatusSnapshot,
};
use crate::store::{KeyringStore, SecretStore, StoreError};

mod idp_budget;
#[cfg(test)]
mod scenarios;
pub mod skew;

/// An ID token this close to expiry is refreshed before it is used as a subject token.
const ID_TOKEN_MIN_LIFETIME: time::Duration = time::Duration::seconds(60);

/// A token due for renewal this soon counts as due: the renewal timer fires up to 3 s early
/// (jitter), and a round that found nothing due would only wake again seconds later.
const JITTER_SLACK: time::Duration = time::Duration::seconds(5);

/// After a refresh answered without an ID token, how long other connectors take that answer
/// instead of refreshing again.
const REFRESH_WITHOUT_ID_TOKEN_QUIET: time::Duration = time::Duration::seconds(60);

/// The shortest time between two renewals of one connector, whatever its tokens' lifetime:
/// a server answering `expires_in: 0` must not make the client renew in a loop (each renewal
/// is also a token exchange at the company IdP). A lifetime below it is refused as a failure
/// (`jwt_bearer::MIN_TOKEN_LIFETIME`, the same value), which goes through the backoff.
pub const MIN_RENEWAL_INTERVAL: time::Duration = jwt_bearer::MIN_TOKEN_LIFETIME;

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
    pub fn code(&self) -> String {
        match self {
            EngineError::SignIn(e) => e.code(),
            EngineError::Store(e) => e.code().into(),
        }
    }
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    policy: Arc<Policy>,
    parts: EngineParts,
    discovery: Discovery,
    idp: Mutex<Option<IdpClient>>,
    session: Mutex<Option<StoredSession>>,
    connector_locks: HashMap<String, Mutex<()>>,
    limiter: Semaphore,
    status: watch::Sender<StatusSnapshot>,
    /// Connector records as last stored (tokens included), written as one keyring entry.
    records: std::sync::Mutex<BTreeMap<String, StoredConnector>>,
    /// Coalesced writes of `records`: a change bumps `records_changed`; a write covers every
    /// change made before it took its snapshot, recorded in `records_written`.
    records_changed: AtomicU64,
    records_written: AtomicU64,
    write_lock: Mutex<()>,
    /// The last renewal problem of the IdP session, stored with the records so that every
    /// process tells the same story until a renewal succeeds. Guarded by its own lock, never
    /// held across an await; taken after `records` when both are needed.
    idp_problem: std::sync::Mutex<Option<StoredIdpProblem>>,
    /// Trust on first use of each connector's authorization server (stored with the records;
    /// same lock rules as `idp_problem`).
    trusted_as: std::sync::Mutex<BTreeMap<String, TrustedAuthorizationServer>>,
    /// A refresh that came back without an ID token, so the connectors waiting on the session
    /// lock do not each spend another refresh on it (cleared by a working refresh or sign-in).
    refresh_without_id_token: std::sync::Mutex<Option<(OffsetDateTime, StatusError)>>,
    /// Clock skew per server, from the `Date` of every response (all traffic goes through it).
    skew: Arc<skew::SkewObserver>,
    /// The cap on requests to the IdP during renewals.
    idp_budget: idp_budget::IdpBudget,
}

/// What one successful connect produced.
struct Obtained {
    endpoints: ConnectorEndpoints,
    grant: ConnectorGrant,
}

/// Why one connect did not produce a token.
enum Failure {
    NotEntitled(StatusError),
    StepUp(StatusError),
    /// The IdP session is over or absent: the user must sign in.
    SignInNeeded(StatusError),
    /// The IdP could not be reached: says nothing new about the connector itself.
    IdpUnreachable(StatusError),
    /// The IdP failed before it judged this connector (a refresh without an ID token, an
    /// invalid IdP answer, the request budget): says nothing new about entitlement either.
    IdpFailed(StatusError),
    Other(StatusError),
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
            refresh_without_id_token: std::sync::Mutex::new(None),
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

    fn error(&self, code: &str, message: &str, fix: &str) -> StatusError {
        status_error_at(code, message, fix, self.now())
    }

    fn client_key_error(&self, e: &crate::oauth::client_auth::ClientAuthError) -> StatusError {
        self.error("client-auth-key", &e.to_string(), "ask IT: the client key in the policy cannot be used")
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

    /// Restores the session and connector records from the store and publishes them.
    /// Nothing is contacted over the network.
    pub async fn load(&self) -> Result<(), StoreError> {
        let stored = match self.parts.store.get(&self.session_account())? {
            None => None,
            Some(json) => match serde_json::from_str::<StoredSession>(&json) {
                Ok(s) if s.v == RECORD_VERSION => Some(s),
                // A damaged or foreign record is treated as signed out, never as a crash.
                _ => None,
            },
        };
        let documents: StoredConnectors = match self.parts.store.get(&self.connectors_account())? {
            Some(json) => serde_json::from_str(&json).unwrap_or_default(),
            None => StoredConnectors::default(),
        };
        let same_url = |id: &str, url: &str| {
            self.policy.connector(id).is_some_and(|c| crate::url_policy::same_uri(url, c.mcp_url.as_str()))
        };
        let trusted: BTreeMap<String, TrustedAuthorizationServer> = documents
            .trusted_authorization_servers
            .clone()
            .into_iter()
            .filter(|(id, t)| documents.v == RECORD_VERSION && same_url(id, &t.mcp_url))
            .collect();
        *self.trusted_as.lock().unwrap_or_else(|p| p.into_inner()) = trusted;
        let Some(session) = stored else {
            self.publish(|s| *s = initial_snapshot(&self.policy, self.now()));
            return Ok(());
        };
        let sub = session.identity.as_ref().map(|i| i.sub.clone()).unwrap_or_default();
        let stored = documents;
        let idp_problem = stored.idp_problem.clone().filter(|_| stored.v == RECORD_VERSION);
        let records: BTreeMap<String, StoredConnector> = stored
            .records
            .into_iter()
            .filter(|(id, r)| stored.v == RECORD_VERSION && r.sub == sub && same_url(id, &r.mcp_url))
            .collect();
        let idp_state = if let Some(problem) = &idp_problem {
            // What the last renewal found, in whatever process it ran, until one succeeds.
            problem.state
        } else if session.refresh_token.is_some()
            || session.id_token_expires_at.and_then(from_unix).is_some_and(|e| e > self.now())
        {
            IdpSessionState::Active
        } else {
            IdpSessionState::Expired
        };
        self.publish(|s| {
            s.idp.state = idp_state;
            s.idp.last_error = idp_problem.as_ref().map(|p| p.error.clone());
            s.idp.identity = session.identity.clone();
            s.idp.id_token_expires_at = session.id_token_expires_at.and_then(from_unix);
            s.idp.signed_in_at = from_unix(session.signed_in_at);
            s.idp.renewable = session.refresh_token.is_some();
            for c in &mut s.connectors {
                match records.get(&c.id) {
                    Some(r) => apply_record(c, r, session.identity.clone()),
                    None => {
                        c.state = ConnectorState::Error;
                        c.identity = session.identity.clone();
                        c.error = Some(self.error(
                            "not-connected",
                            "not connected yet",
                            "run `ema refresh` (or Refresh now in the tray)",
                        ));
                    }
                }
            }
        });
        *self.records.lock().unwrap_or_else(|p| p.into_inner()) = records;
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = idp_problem;
        *self.session.lock().await = Some(session);
        Ok(())
    }

    fn connectors_account(&self) -> String {
        connectors_account(self.issuer(), &self.policy.idp.client_id)
    }

    /// Stores the connector records, coalescing concurrent callers into as few keyring writes
    /// as possible: whoever waits for the write lock while another write runs finds, once it
    /// gets it, that one write can cover everyone who changed a record meanwhile.
    async fn write_records(&self) -> Result<(), StoreError> {
        let wanted = self.records_changed.fetch_add(1, Ordering::SeqCst) + 1;
        let _writing = self.write_lock.lock().await;
        if self.records_written.load(Ordering::SeqCst) >= wanted {
            return Ok(());
        }
        let (covered, json) = {
            let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let doc = StoredConnectors {
                v: RECORD_VERSION,
                records: records.clone(),
                idp_problem: self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                trusted_authorization_servers: self.trusted_as.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            };
            // Read under the records lock: every change counted here is in this snapshot.
            (self.records_changed.load(Ordering::SeqCst), serde_json::to_string(&doc).expect("records serialise"))
        };
        // Off the async workers: a keyring write is a blocking D-Bus round trip.
        let (store, account) = (self.parts.store.clone(), self.connectors_account());
        tokio::task::spawn_blocking(move || store.set(&account, &json))
            .await
            .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())))?;
        self.records_written.store(covered, Ordering::SeqCst);
        Ok(())
    }

    /// The discovered IdP (discovered once, then reused).
    async fn idp_client(&self) -> Result<IdpClient, SignInError> {
        let mut guard = self.idp.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = IdpClient::discover(self.parts.transport.as_ref(), &self.policy.idp).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Interactive sign-in in the system browser (the shell's `browser` opens the URL), then
    /// connects every connector. Progress is published on the status channel.
    pub async fn sign_in(&self, browser: &dyn BrowserOpener, timeout: Duration) -> Result<Identity, EngineError> {
        let idp = self.idp_client().await?;
        let listener = LoopbackListener::bind().await.map_err(SignInError::from)?;
        let (url, pending) = idp.authorization_request(&listener.redirect_uri())?;
        browser.open(url.as_str()).map_err(SignInError::Browser)?;
        let tokens = idp.complete(self.parts.transport.as_ref(), listener, pending, timeout).await?;
        let identity = tokens.identity.clone().ok_or_else(|| SignInError::InvalidResponse("no identity".into()))?;
        let session = StoredSession {
            v: RECORD_VERSION,
            identity: Some(identity.clone()),
            id_token: tokens.id_token,
            id_token_expires_at: tokens.id_token_expires_at.map(|t| t.unix_timestamp()),
            refresh_token: tokens.refresh_token,
            signed_in_at: self.now().unix_timestamp(),
        };
        self.save_session(&session)?;
        let previous_sub = self.session.lock().await.replace(session.clone()).and_then(|s| s.identity).map(|i| i.sub);
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.refresh_without_id_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if previous_sub.as_deref() != Some(identity.sub.as_str()) {
            // Another user: the previous user's connector tokens must not be shown or used.
            self.records.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.write_records().await?;
        self.publish(|s| {
            s.idp.state = IdpSessionState::Active;
            s.idp.identity = Some(identity.clone());
            s.idp.id_token_expires_at = session.id_token_expires_at.and_then(from_unix);
            s.idp.signed_in_at = from_unix(session.signed_in_at);
            s.idp.last_error = None;
            s.idp.renewable = session.refresh_token.is_some();
            for c in &mut s.connectors {
                c.identity = Some(identity.clone());
                if previous_sub.as_deref() != Some(identity.sub.as_str()) {
                    *c = blank_connector_status(self.policy.connector(&c.id).expect("same policy"));
                    c.identity = Some(identity.clone());
                    c.state = ConnectorState::Connecting;
                }
            }
        });
        self.connect_all(true).await;
        Ok(identity)
    }

    fn save_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        let json = serde_json::to_string(session).expect("a record always serialises");
        self.parts.store.set(&self.session_account(), &json)
    }

    /// Connects (or renews) every connector in parallel. With `force`, tokens are renewed even
    /// when they are still fresh. A panic while connecting one connector (a bug, whatever its
    /// server answered) fails that connector and never the others or the renewal task.
    pub async fn connect_all(&self, force: bool) {
        use futures::FutureExt as _;
        let all = self.policy.connectors.iter().map(|c| async move {
            let outcome = std::panic::AssertUnwindSafe(self.connect(&c.id, force)).catch_unwind().await;
            if outcome.is_err() {
                tracing::error!(connector = %c.id, "connecting panicked; the other connectors go on");
                let err = self.error(
                    "internal-error",
                    &format!("EMA hit an internal error while connecting {}", c.display_name),
                    &format!("try Refresh now; if it persists, export diagnostics for {}", self.help_desk()),
                );
                self.publish_connector(&c.id, |s| {
                    if s.state == ConnectorState::Connecting {
                        s.state = ConnectorState::Error;
                        s.error = Some(err.clone());
                    } else {
                        s.renewal_error = Some(err);
                    }
                });
            }
        });
        futures::future::join_all(all).await;
    }

    /// Keeps a connector's stored record (its token, if any) and notes why renewal failed, so
    /// that another process (`ema status` after `ema refresh`) tells the same story.
    async fn keep_record_with_renewal_error(&self, id: &str, e: &StatusError) {
        if let Some(r) = self.records.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            r.renewal_error = Some(e.clone());
        }
        // Written even without a record: the IdP's problem is stored with the records too.
        if let Err(err) = self.write_records().await {
            tracing::warn!(connector = id, code = err.code(), "could not store the renewal error");
        }
    }

    /// Trust on first use of a connector's authorization server: the first successful
    /// connection's AS is remembered; a policy pin overrides and replaces it.
    fn trust_authorization_server(&self, cfg: &ConnectorConfig, issuer: &str) {
        let mut trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        let current = trusted.get(&cfg.id).filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()));
        if current.is_some_and(|t| t.issuer == issuer) {
            return;
        }
        trusted.insert(
            cfg.id.clone(),
            TrustedAuthorizationServer {
                mcp_url: cfg.mcp_url.to_string(),
                issuer: issuer.to_string(),
                first_seen: self.now().unix_timestamp(),
            },
        );
    }

    /// Which authorization server EMA trusts for a connector, and why (for `ema doctor` and the
    /// diagnostics bundle): the policy's pin, else the one of its first successful connection.
    pub fn authorization_server_trust(&self, id: &str) -> Option<AuthorizationServerTrust> {
        let cfg = self.policy.connector(id)?;
        if let Some(pin) = &cfg.authorization_server {
            return Some(AuthorizationServerTrust {
                issuer: pin.to_string(),
                source: TrustSource::Policy,
                since: None,
            });
        }
        let trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        let t = trusted.get(id).filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()))?;
        Some(AuthorizationServerTrust {
            issuer: t.issuer.clone(),
            source: TrustSource::FirstUse,
            since: from_unix(t.first_seen),
        })
    }

    /// The authorization server this connector was first connected through, when the policy
    /// does not pin one.
    fn trusted_authorization_server(&self, cfg: &ConnectorConfig) -> Option<String> {
        let trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
        trusted
            .get(&cfg.id)
            .filter(|t| crate::url_policy::same_uri(&t.mcp_url, cfg.mcp_url.as_str()))
            .map(|t| t.issuer.clone())
    }

    /// Connects one connector unless its token is still fresh (or `force`). Single flight.
    pub async fn connect(&self, id: &str, force: bool) {
        let (Some(cfg), Some(lock)) = (self.policy.connector(id), self.connector_locks.get(id)) else { return };
        let _flight = lock.lock().await;
        let current = self.status.borrow().connectors.iter().find(|c| c.id == id).cloned();
        let Some(current) = current else { return };
        let renew_margin = time::Duration::try_from(self.policy.settings.renew_before_expiry).unwrap_or_default();
        let valid_until = current.expires_at.filter(|_| current.token_fingerprint.is_some());
        let still_valid = valid_until.is_some_and(|e| e > self.now());
        if !force
            && current.state == ConnectorState::Active
            && valid_until.is_some_and(|e| e - renew_margin > self.now() + JITTER_SLACK)
        {
            return;
        }
        if self.session.lock().await.is_none() {
            self.publish_connector(id, |c| {
                *c = blank_connector_status(cfg);
                c.state = ConnectorState::NeedsSignIn;
            });
            return;
        }
        let _permit = self.limiter.acquire().await.expect("the semaphore is never closed");
        if !still_valid {
            self.publish_connector(id, |c| c.state = ConnectorState::Connecting);
        }
        let result = self.obtain(cfg).await.map_err(|f| self.explained_by_clock(f));
        let identity = self.session.lock().await.as_ref().and_then(|s| s.identity.clone());
        let sub = identity.as_ref().map(|i| i.sub.clone()).unwrap_or_default();
        let at = self.now();
        // What every outcome shares; each arm fills in its own fields.
        let base = StoredConnector {
            v: RECORD_VERSION,
            mcp_url: cfg.mcp_url.to_string(),
            sub,
            outcome: StoredOutcome::Error,
            authorization_server: None,
            access_token: None,
            expires_at: None,
            scopes: Vec::new(),
            last_renewal: Some(at.unix_timestamp()),
            error: None,
            renewal_error: None,
        };
        let record = match result {
            Ok(o) => {
                self.trust_authorization_server(cfg, &o.endpoints.issuer);
                StoredConnector {
                    outcome: StoredOutcome::Active,
                    authorization_server: Some(o.endpoints.issuer),
                    access_token: Some(o.grant.access_token),
                    expires_at: o.grant.expires_at.map(|t| t.unix_timestamp()),
                    scopes: o.grant.scopes,
                    ..base
                }
            }
            Err(Failure::NotEntitled(e)) => {
                StoredConnector { outcome: StoredOutcome::NotEntitled, error: Some(e), ..base }
            }
            Err(
                Failure::StepUp(e)
                | Failure::SignInNeeded(e)
                | Failure::IdpUnreachable(e)
                | Failure::IdpFailed(e)
                | Failure::Other(e),
            ) if still_valid => {
                // Renewal failed, the current token still works: keep it, say why.
                self.keep_record_with_renewal_error(id, &e).await;
                self.publish_connector(id, |c| {
                    c.state = ConnectorState::Active;
                    c.renewal_error = Some(e);
                });
                return;
            }
            Err(Failure::StepUp(e) | Failure::SignInNeeded(e)) => {
                self.keep_record_with_renewal_error(id, &e).await;
                self.publish_connector(id, |c| {
                    c.state = ConnectorState::NeedsSignIn;
                    c.error = Some(e);
                    c.expires_at = None;
                    c.token_fingerprint = None;
                });
                return;
            }
            Err(Failure::IdpUnreachable(mut e) | Failure::IdpFailed(mut e))
                if current.state == ConnectorState::NotEntitled || valid_until.is_some() =>
            {
                // A failure at the IdP before it judged this connector says nothing new about
                // it: a not-entitled one stays so (never "error"), and a token that ran out is
                // expired (not failed), with the reason, until renewal succeeds.
                if current.state != ConnectorState::NotEntitled && e.code == "idp-unreachable" {
                    e.fix = format!(
                        "{} reconnects by itself once the IdP is reachable again; check your network or VPN",
                        cfg.display_name
                    );
                }
                self.keep_record_with_renewal_error(id, &e).await;
                self.publish_connector(id, |c| {
                    c.state = if current.state == ConnectorState::NotEntitled {
                        ConnectorState::NotEntitled
                    } else {
                        ConnectorState::Expired
                    };
                    c.renewal_error = Some(e);
                });
                return;
            }
            Err(Failure::IdpUnreachable(e) | Failure::IdpFailed(e) | Failure::Other(e)) => StoredConnector {
                authorization_server: current.authorization_server.clone(),
                last_renewal: current.last_renewal.map(|t| t.unix_timestamp()),
                error: Some(e),
                ..base
            },
        };
        self.records.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), record.clone());
        let stored = self.write_records().await;
        self.publish_connector(id, |c| {
            apply_record(c, &record, identity);
            if let Err(e) = stored {
                c.renewal_error = Some(self.error(e.code(), &e.to_string(), e.fix()));
            }
        });
    }

    /// The three legs for one connector: fresh ID token, token exchange, jwt-bearer grant,
    /// then the MCP check.
    async fn obtain(&self, cfg: &ConnectorConfig) -> Result<Obtained, Failure> {
        let transport = self.parts.transport.as_ref();
        let endpoints = self
            .discovery
            .endpoints(transport, &cfg.id, &cfg.mcp_url, cfg.authorization_server.as_ref())
            .await
            .map_err(|e| Failure::Other(self.error(e.code(), &e.to_string(), e.fix())))?;
        if cfg.authorization_server.is_none()
            && let Some(trusted) = self.trusted_authorization_server(cfg)
            && !crate::url_policy::same_uri(&trusted, &endpoints.issuer)
        {
            // Trust on first use: without a policy pin, the MCP server names the AS, and a
            // spoofed or compromised one could send our ID-JAG request to an AS of its choosing.
            self.discovery.invalidate(&cfg.id);
            return Err(Failure::Other(self.error(
                "authorization-server-changed",
                &format!(
                    "{}'s MCP server now names the authorization server {}, but it was first connected through {}; \
                     EMA refused the change, since a spoofed or compromised MCP server could send your sign-in elsewhere",
                    cfg.display_name, endpoints.issuer, trusted
                ),
                &format!(
                    "if {} really moved, ask {} to pin its authorization server in the policy \
                     (`authorization_server` of the connector); otherwise report it to them",
                    cfg.display_name,
                    self.help_desk()
                ),
            )));
        }
        let mut retried_session = false;
        let issued = loop {
            let id_token = self.fresh_id_token(retried_session).await?;
            let idp = self.idp_client().await.map_err(|e| self.idp_failure(&e))?;
            self.spend_idp_budget()?;
            let exchange = TokenExchange {
                token_endpoint: idp.token_endpoint(),
                client_id: &self.policy.idp.client_id,
                client_auth: &self.policy.idp.client_auth,
                audience: &endpoints.issuer,
                resource: &endpoints.resource,
                scopes: &cfg.scopes,
                subject_token: &id_token,
            };
            let req =
                exchange.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
            let resp = transport.send(req).await.map_err(|e| self.idp_failure(&SignInError::Transport(e)))?;
            match token_exchange::process_response(idp.token_endpoint(), &resp, &cfg.scopes) {
                Ok(issued) => {
                    self.idp_answered();
                    break issued;
                }
                Err(ExchangeError::SessionInvalid(_)) if !retried_session => retried_session = true,
                Err(e) => return Err(self.exchange_failure(cfg, e)),
            }
        };
        let grant = JwtBearerGrant {
            token_endpoint: &endpoints.token_endpoint,
            client_id: &cfg.client_id,
            client_auth: &client_auth_for(&cfg.client_auth, &endpoints.token_endpoint_auth_methods),
            assertion: issued.id_jag,
            scopes: &issued.scopes,
            resource: &endpoints.resource,
        };
        let req = grant.build(self.now().unix_timestamp()).map_err(|e| Failure::Other(self.client_key_error(&e)))?;
        let grant = match transport.send(req).await {
            Ok(resp) => jwt_bearer::process_response(&endpoints.token_endpoint, &resp, &issued.scopes, self.now()),
            Err(e) => Err(jwt_bearer::GrantError::Response(e.into())),
        };
        let grant = grant.map_err(|e| {
            self.discovery.invalidate(&cfg.id);
            let fix = match e.oauth_error() {
                Some("invalid_grant") => format!(
                    "{} refused the identity assertion; if it persists, export diagnostics for {}",
                    cfg.display_name,
                    self.help_desk()
                ),
                Some("invalid_client") => {
                    format!("ask {}: our client registration at {} is wrong", self.help_desk(), cfg.display_name)
                }
                _ => format!("try again later; if it persists, contact {}", self.help_desk()),
            };
            Failure::Other(self.error(&e.code(), &e.to_string(), &fix))
        })?;
        let url = Url::parse(&endpoints.resource).unwrap_or_else(|_| cfg.mcp_url.clone());
        self.parts.mcp.check(&url, &grant.access_token).await.map_err(|e| {
            Failure::Other(self.error(
                e.code(),
                &e.to_string(),
                &format!("the sign-in worked but {} did not; contact {}", cfg.display_name, self.help_desk()),
            ))
        })?;
        Ok(Obtained { endpoints, grant })
    }

    fn help_desk(&self) -> String {
        self.policy
            .organization
            .help_desk
            .as_ref()
            .map(|h| h.name.clone())
            .unwrap_or_else(|| "your IT help desk".into())
    }

    fn exchange_failure(&self, cfg: &ConnectorConfig, e: ExchangeError) -> Failure {
        match &e {
            ExchangeError::NotEntitled(_) => Failure::NotEntitled(self.error(
                "not-entitled",
                &format!("your organisation has not assigned {} to you ({e})", cfg.display_name),
                &format!("ask {} for access if you need it", self.help_desk()),
            )),
            ExchangeError::StepUp(_) => {
                let err = self.error(&e.code(), &e.to_string(), "sign in again (`ema login`)");
                self.idp_problem_now(Some(IdpSessionState::StepUpRequired), &err);
                Failure::StepUp(err)
            }
            ExchangeError::SessionInvalid(_) => {
                let err = self.error(&e.code(), &e.to_string(), "sign in again (`ema login`)");
                self.idp_problem_now(Some(IdpSessionState::Expired), &err);
                Failure::SignInNeeded(err)
            }
            ExchangeError::Response(crate::oauth::ResponseError::Http { endpoint, status, .. }) if *status >= 500 => {
                self.idp_failure(&SignInError::Transport(TransportError::ServerUnavailable {
                    url: endpoint.clone(),
                    status: *status,
                }))
            }
            _ => Failure::Other(self.error(
                &e.code(),
                &e.to_string(),
                &format!("the IdP refused the token exchange; contact {}", self.help_desk()),
            )),
        }
    }

    /// The IdP answered a renewal: it is reachable again and the session works.
    fn idp_answered(&self) {
        let transient = {
            let mut problem = self.idp_problem.lock().unwrap_or_else(|p| p.into_inner());
            let transient = problem
                .as_ref()
                .is_some_and(|p| matches!(p.state, IdpSessionState::Unreachable | IdpSessionState::Active));
            if transient {
                *problem = None;
            }
            transient
        };
        if transient || self.status.borrow().idp.state == IdpSessionState::Unreachable {
            self.publish(|s| {
                if s.idp.state == IdpSessionState::Unreachable {
                    s.idp.state = IdpSessionState::Active;
                }
                s.idp.last_error = None;
            });
        }
    }

    /// Publishes the IdP session's state and error and keeps them for the next write of the
    /// records, so that other processes see them too.
    fn idp_problem_now(&self, state: Option<IdpSessionState>, err: &StatusError) {
        let mut stored_state = IdpSessionState::Active;
        self.publish(|s| {
            if let Some(state) = state {
                s.idp.state = state;
            }
            s.idp.last_error = Some(err.clone());
            stored_state = s.idp.state;
        });
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(StoredIdpProblem { state: stored_state, error: err.clone() });
    }

    /// Maps an IdP failure during renewal to a connector failure and the IdP's state.
    fn idp_failure(&self, e: &SignInError) -> Failure {
        if e.is_session_expired() {
            let err = self.error(&e.code(), &e.to_string(), "your sign-in has ended: sign in again (`ema login`)");
            self.idp_problem_now(Some(IdpSessionState::Expired), &err);
            return Failure::SignInNeeded(err);
        }
        let unreachable = e.is_unreachable();
        let code = if unreachable { "idp-unreachable".to_string() } else { e.code() };
        let message = if unreachable { format!("the IdP could not be reached: {e}") } else { e.to_string() };
        let err = self.error(
            &code,
            &message,
            "connectors keep working until their tokens expire; check your network or VPN, or wait for the IdP to recover",
        );
        self.idp_problem_now(unreachable.then_some(IdpSessionState::Unreachable), &err);
        if unreachable { Failure::IdpUnreachable(err) } else { Failure::IdpFailed(err) }
    }

    /// Takes one request from the IdP budget, or fails the renewal (it goes through backoff).
    fn spend_idp_budget(&self) -> Result<(), Failure> {
        if self.idp_budget.take(self.now()) {
            return Ok(());
        }
        tracing::warn!("IdP request budget spent: a renewal was held back");
        Err(Failure::IdpFailed(self.error(
            "idp-request-budget",
            &format!(
                "EMA held back a request to your company's IdP: it already sent {} in the last minute",
                self.idp_budget.capacity()
            ),
            &format!(
                "EMA retries by itself in a few minutes; if this keeps happening, export diagnostics for {}",
                self.help_desk()
            ),
        )))
    }

    /// When this computer's clock is far enough from a server's to explain a failure the server
    /// judged by time (an OAuth refusal, an invalid ID token, a 401), says so first.
    fn explained_by_clock(&self, failure: Failure) -> Failure {
        let explain = |e: StatusError| -> StatusError {
            let timed = e.code.contains("oauth-") || e.code.contains("401") || e.code.contains("id-token");
            match self.skew.beyond_leeway() {
                Some(skew) if timed => self.error(
                    "clock-skew",
                    &format!("{}; servers accept about 30 s. The server said: {}", skew.describe(), e.message),
                    &format!(
                        "turn on automatic time on this computer (set date and time automatically), then Refresh now; \
                         if your clock is right, tell {} that {}'s clock is off",
                        self.help_desk(),
                        skew.host
                    ),
                ),
                _ => e,
            }
        };
        match failure {
            Failure::Other(e) => Failure::Other(explain(e)),
            Failure::IdpFailed(e) => Failure::IdpFailed(explain(e)),
            other => other,
        }
    }

    /// An ID token with at least a minute left, refreshed with the refresh token if needed.
    /// One refresh serves all connectors waiting on the session lock.
    async fn fresh_id_token(&self, force_refresh: bool) -> Result<IdToken, Failure> {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_mut() else {
            return Err(Failure::SignInNeeded(self.error("signed-out", "not signed in", "sign in (`ema login`)")));
        };
        if !force_refresh
            && let (Some(t), Some(exp)) = (&session.id_token, session.id_token_expires_at.and_then(from_unix))
            && exp - ID_TOKEN_MIN_LIFETIME > self.now()
        {
            return Ok(t.clone());
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            let err = self.error(
                "idp-session-expired",
                "the ID token expired and the IdP gave no refresh token",
                "sign in again (`ema login`); ask IT to allow offline_access for this app",
            );
            self.publish(|s| s.idp.state = IdpSessionState::Expired);
            return Err(Failure::SignInNeeded(err));
        };
        if let Some((at, err)) = self.refresh_without_id_token.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && self.now() - at < REFRESH_WITHOUT_ID_TOKEN_QUIET
        {
            // The IdP just answered a refresh without an ID token: asking again for every
            // waiting connector would only spend the IdP's time (and, with rotation, tokens).
            return Err(Failure::IdpFailed(err));
        }
        let idp = self.idp_client().await.map_err(|e| self.idp_failure(&e))?;
        self.spend_idp_budget()?;
        let tokens =
            idp.refresh(self.parts.transport.as_ref(), &refresh_token).await.map_err(|e| self.idp_failure(&e))?;
        if let Some(rt) = tokens.refresh_token {
            // Refresh-token rotation (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1): the old one is now
            // spent. Stored before anything else can fail, or the next renewal sends a spent
            // token and the IdP ends the session (`invalid_grant`).
            session.refresh_token = Some(rt);
            if let Err(e) = self.save_session(session) {
                tracing::warn!(code = e.code(), "could not store the rotated refresh token");
            }
        }
        let Some(id_token) = tokens.id_token else {
            let err = self.error(
                "id-token-not-renewed",
                "the IdP renewed the session but sent no new ID token (OIDC Core §12.2 lets it), and the old one has \
                 expired",
                "sign in again (`ema login`); your connectors keep working until their tokens expire",
            );
            *self.refresh_without_id_token.lock().unwrap_or_else(|p| p.into_inner()) = Some((self.now(), err.clone()));
            self.idp_problem_now(None, &err);
            return Err(Failure::IdpFailed(err));
        };
        *self.refresh_without_id_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        session.id_token = Some(id_token.clone());
        session.id_token_expires_at = tokens.id_token_expires_at.map(|t| t.unix_timestamp());
        if tokens.identity.is_some() {
            session.identity = tokens.identity;
        }
        let saved = self.save_session(session);
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let (exp, identity) = (session.id_token_expires_at.and_then(from_unix), session.identity.clone());
        self.publish(|s| {
            s.idp.state = IdpSessionState::Active;
            s.idp.id_token_expires_at = exp;
            s.idp.identity = identity;
            s.idp.last_error = saved.err().map(|e| self.error(e.code(), &e.to_string(), e.fix()));
        });
        Ok(id_token)
    }

    /// When the next renewal is due: for each connector holding a token, its expiry minus the
    /// renewal margin, but never before half its lifetime has passed (so a token shorter than
    /// the margin does not renew in a tight loop) nor sooner than [`MIN_RENEWAL_INTERVAL`]
    /// after its last renewal. `None` when no token is held.
    pub fn next_renewal_at(&self) -> Option<OffsetDateTime> {
        let margin = time::Duration::try_from(self.policy.settings.renew_before_expiry).unwrap_or_default();
        self.status
            .borrow()
            .connectors
            .iter()
            .filter(|c| c.token_fingerprint.is_some())
            .filter_map(|c| {
                let exp = c.expires_at?;
                let half_life = c.last_renewal.map(|r| r + (exp - r) / 2).unwrap_or(exp - margin);
                let floor = c.last_renewal.map(|r| r + MIN_RENEWAL_INTERVAL).unwrap_or(exp - margin);
                Some((exp - margin).max(half_life).max(floor))
            })
            .min()
    }

    /// Keeps tokens fresh until the engine is dropped: sleeps until the next renewal is due
    /// (with jitter, so a fleet does not hit the IdP in step), renews what is due, and backs
    /// off exponentially while renewals fail. Wakes early when the status changes (a sign-in).
    /// Timers, not polling: between renewals it does nothing at all.
    pub async fn run_renewals(self: Arc<Self>) {
        let mut rx = self.subscribe();
        let mut failures: u32 = 0;
        loop {
            rx.borrow_and_update();
            let now = self.now();
            // After a failed round, a renewal that is already due (a token that expired while the
            // IdP is down, one the AS keeps refusing) waits for the backoff: only renewals due in
            // the future are timed by their own due time, or a past-due one would loop at once.
            let due = self.next_renewal_at().filter(|t| failures == 0 || *t > now);
            let due = due.map(|t| jittered((t - now).max(time::Duration::ZERO)));
            let retry = (failures > 0).then(|| backoff(failures));
            let wait = match (due, retry) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            };
            let timer = async move {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !self.is_signed_in().await {
                failures = 0;
                continue;
            }
            self.connect_all(false).await;
            let failed = self
                .status
                .borrow()
                .connectors
                .iter()
                .any(|c| c.renewal_error.is_some() || c.state == ConnectorState::Error);
            failures = if failed { failures.saturating_add(1) } else { 0 };
        }
    }

    /// Forgets every token; revokes the refresh token at the IdP when it supports RFC 7009.
    /// Says whether the IdP confirmed the revocation. What is kept: the authorization server
    /// each connector was first connected through (trust on first use; not a secret).
    pub async fn sign_out(&self) -> Result<Revocation, StoreError> {
        let session = self.session.lock().await.take();
        let revocation = match session.as_ref().and_then(|s| s.refresh_token.clone()) {
            None => Revocation::NotOffered,
            Some(rt) => match self.idp_client().await {
                Err(e) => Revocation::Failed(format!("the IdP could not be reached: {e}")),
                Ok(idp) => match idp.revoke(self.parts.transport.as_ref(), &rt).await {
                    Ok(true) => Revocation::Revoked,
                    Ok(false) => Revocation::NotOffered,
                    Err(e) => Revocation::Failed(e.to_string()),
                },
            },
        };
        self.parts.store.delete(&self.session_account())?;
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.refresh_without_id_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.trusted_as.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            self.parts.store.delete(&self.connectors_account())?;
        } else {
            self.write_records().await?;
        }
        self.publish(|s| *s = initial_snapshot(&self.policy, self.now()));
        Ok(revocation)
    }

    /// Whether a session is stored.
    pub async fn is_signed_in(&self) -> bool {
        self.session.lock().await.is_some()
    }

    /// The connector's access token for a client that sends it now (Claude Code's
    /// `headersHelper` through `ema headers`). A token that expires within `min_validity` is
    /// renewed first (one connect, single flight with the background renewal).
    pub async fn fresh_access_token(&self, id: &str, min_validity: Duration) -> Result<AccessToken, TokenUnavailable> {
        let cfg = self.policy.connector(id).ok_or_else(|| TokenUnavailable::UnknownConnector(id.to_string()))?;
        if !self.is_signed_in().await {
            return Err(TokenUnavailable::SignedOut);
        }
        let wanted = time::Duration::try_from(min_validity).unwrap_or(time::Duration::MINUTE);
        let usable = |engine: &Self, margin: time::Duration| {
            let records = engine.records.lock().unwrap_or_else(|p| p.into_inner());
            let record = records.get(id)?;
            let expires = record.expires_at.and_then(from_unix)?;
            (expires - margin > self.now()).then(|| record.access_token.clone()).flatten()
        };
        if let Some(token) = usable(self, wanted) {
            return Ok(token);
        }
        self.connect(id, true).await;
        // When renewal failed, a token with a few seconds left still beats no token.
        if let Some(token) = usable(self, time::Duration::seconds(5)) {
            return Ok(token);
        }
        let status = self.snapshot().connectors.into_iter().find(|c| c.id == id);
        Err(match status.and_then(|c| c.error.map(|e| (c.state, e))) {
            Some((ConnectorState::NotEntitled, _)) => TokenUnavailable::NotEntitled(cfg.display_name.clone()),
            Some((_, e)) => {
                TokenUnavailable::Failed { connector: cfg.display_name.clone(), code: e.code, message: e.message }
            }
            None => TokenUnavailable::Failed {
                connector: cfg.display_name.clone(),
                code: "connector-no-token".into(),
                message: "no token could be obtained".into(),
            },
        })
    }
}

/// The authorization server EMA accepts for a connector.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuthorizationServerTrust {
    /// Its issuer (RFC 8414 §2).
    pub issuer: String,
    pub source: TrustSource,
    /// When it was first seen (trust on first use).
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}

/// Why an authorization server is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustSource {
    /// The policy pins it (`authorization_server` of the connector).
    Policy,
    /// The connector's first successful connection went through it.
    FirstUse,
}

/// What became of the IdP session at sign-out (RFC 7009).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The IdP confirmed the refresh token revoked (RFC 7009 §2.2).
    Revoked,
    /// Nothing to revoke (no refresh token), or the IdP offers no revocation endpoint.
    NotOffered,
    /// The IdP did not confirm: the refresh token may still work there. Why, without secrets.
    Failed(String),
}

/// Why [`Engine::fresh_access_token`] has no token to give.
#[derive(Debug, thiserror::Error)]
pub enum TokenUnavailable {
    #[error("no connector {0:?} in the policy; `ema status` lists the connectors")]
    UnknownConnector(String),
    #[error("you are not signed in; run `ema login`")]
    SignedOut,
    #[error("your company has not given you access to {0}; ask your help desk")]
    NotEntitled(String),
    #[error("{connector} has no usable token [{code}]: {message}")]
    Failed { connector: String, code: String, message: String },
}

/// Client authentication at a connector's AS "per its metadata or policy": the policy's
/// method, except that a client secret is sent the way the AS says it accepts
/// (`token_endpoint_auth_methods_supported`, RFC 8414 §2) when it lists only the other of
/// `client_secret_basic` / `client_secret_post`. Other methods are used as the policy says.
fn client_auth_for(policy: &ClientAuth, supported: &[String]) -> ClientAuth {
    let supports = |m: &str| supported.iter().any(|s| s == m);
    match policy {
        ClientAuth::ClientSecretBasic(s) if !supports("client_secret_basic") && supports("client_secret_post") => {
            ClientAuth::ClientSecretPost(s.clone())
        }
        ClientAuth::ClientSecretPost(s) if !supports("client_secret_post") && supports("client_secret_basic") => {
            ClientAuth::ClientSecretBasic(s.clone())
        }
        other => other.clone(),
    }
}

/// Up to 10 % earlier, never later: renewing a little early is harmless, late is not.
fn jittered(wait: time::Duration) -> Duration {
    let wait = Duration::try_from(wait).unwrap_or_default();
    let spread = wait.as_millis().min(30_000) as u64 / 10;
    let cut = if spread == 0 { 0 } else { rand::random::<u64>() % spread };
    wait.saturating_sub(Duration::from_millis(cut))
}

/// 30 s, 1 min, 2 min ... capped at 15 min.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(30u64.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(15 * 60))
}

fn status_error_at(code: &str, message: &str, fix: &str, at: OffsetDateTime) -> StatusError {
    StatusError { code: code.into(), message: message.into(), fix: fix.into(), at }
}

fn blank_connector_status(c: &ConnectorConfig) -> ConnectorStatus {
    ConnectorStatus {
        id: c.id.clone(),
        display_name: c.display_name.clone(),
        mcp_url: c.mcp_url.to_string(),
        state: ConnectorState::NeedsSignIn,
        identity: None,
        authorization_server: None,
        expires_at: None,
        scopes: Vec::new(),
        last_renewal: None,
        token_fingerprint: None,
        error: None,
        renewal_error: None,
    }
}

fn initial_snapshot(policy: &Policy, now: OffsetDateTime) -> StatusSnapshot {
    StatusSnapshot {
        schema_version: STATUS_SCHEMA_VERSION,
        generated_at: now,
        organization: policy.organization.name.clone(),
        policy_source: policy.source.path().display().to_string(),
        idp: IdpStatus {
            issuer: policy.idp.issuer.to_string(),
            state: IdpSessionState::SignedOut,
            identity: None,
            id_token_expires_at: None,
            signed_in_at: None,
            last_error: None,
            renewable: false,
        },
        connectors: policy.connectors.iter().map(blank_connector_status).collect(),
    }
}

fn apply_record(c: &mut ConnectorStatus, r: &StoredConnector, identity: Option<Identity>) {
    c.identity = identity;
    c.authorization_server = r.authorization_server.clone();
    c.scopes = r.scopes.clone();
    c.last_renewal = r.last_renewal.and_then(from_unix);
    c.error = r.error.clone();
    c.renewal_error = r.renewal_error.clone();
    match r.outcome {
        StoredOutcome::Active => {
            c.state = ConnectorState::Active;
            c.expires_at = r.expires_at.and_then(from_unix);
            c.token_fingerprint = r.access_token.as_ref().map(|t| t.fingerprint().to_string());
        }
        StoredOutcome::NotEntitled => {
            c.state = ConnectorState::NotEntitled;
            c.expires_at = None;
            c.token_fingerprint = None;
        }
        StoredOutcome::Error => {
            c.state = ConnectorState::Error;
            c.expires_at = None;
            c.token_fingerprint = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secret_goes_the_way_the_as_accepts_it() {
        let secret = crate::secret::ClientSecret::new("s");
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let basic = ClientAuth::ClientSecretBasic(secret.clone());
        let post = ClientAuth::ClientSecretPost(secret);
        let name = |a: ClientAuth| a.method_name();
        assert_eq!(name(client_auth_for(&basic, &methods(&["client_secret_post"]))), "client_secret_post");
        assert_eq!(name(client_auth_for(&post, &methods(&["client_secret_basic"]))), "client_secret_basic");
        assert_eq!(
            name(client_auth_for(&basic, &methods(&["client_secret_basic", "client_secret_post"]))),
            "client_secret_basic"
        );
        assert_eq!(
            name(client_auth_for(&post, &methods(&["private_key_jwt"]))),
            "client_secret_post",
            "no better choice"
        );
        assert_eq!(name(client_auth_for(&ClientAuth::None, &methods(&["client_secret_basic"]))), "none");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(5), Duration::from_secs(480));
        assert_eq!(backoff(6), Duration::from_secs(900));
        assert_eq!(backoff(60), Duration::from_secs(900));
    }

    #[test]
    fn jitter_only_ever_shortens_by_at_most_ten_percent() {
        for _ in 0..200 {
            let j = jittered(time::Duration::seconds(100));
            assert!(j <= Duration::from_secs(100) && j >= Duration::from_secs(97), "{j:?}");
        }
        assert_eq!(jittered(time::Duration::ZERO), Duration::ZERO);
    }
}
