//! The engine's state in the store: restoring it at start, and writing the connector records
//! as one keyring entry, coalescing concurrent writers into as few writes as possible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use crate::config::{ConnectorConfig, Policy};
use crate::records::{
    RECORD_VERSION, StoredConnector, StoredConnectors, StoredOutcome, StoredSession, TrustedAuthorizationServer,
    connectors_account,
};
use crate::status::{
    ConnectorState, ConnectorStatus, ErrorCode, FixAction, Identity, IdpSessionState, IdpStatus, STATUS_SCHEMA_VERSION,
    StatusError, StatusSnapshot,
};
use crate::store::StoreError;

use super::{Engine, EngineParts, from_unix};

impl Engine {
    /// The product's engine for `policy` (reqwest, the OS keyring, the MCP probe), with its
    /// stored state restored: what both faces start from.
    pub async fn open(policy: Policy) -> Result<Arc<Engine>, OpenError> {
        let parts = EngineParts::production(&policy)?;
        let engine = Engine::new(policy, parts);
        engine.load().await?;
        Ok(engine)
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
                        c.error = Some(
                            self.error(ErrorCode::NotConnected, "not connected yet", "connect it now")
                                .offering(FixAction::Refresh),
                        );
                    }
                }
            }
        });
        *self.records.lock().unwrap_or_else(|p| p.into_inner()) = records;
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = idp_problem;
        *self.session.lock().await = Some(session);
        Ok(())
    }

    pub(super) fn connectors_account(&self) -> String {
        connectors_account(self.issuer(), &self.policy.idp.client_id)
    }

    /// Stores the connector records, coalescing concurrent callers into as few keyring writes
    /// as possible: whoever waits for the write lock while another write runs finds, once it
    /// gets it, that one write can cover everyone who changed a record meanwhile.
    pub(super) async fn write_records(&self) -> Result<(), StoreError> {
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

    pub(super) fn save_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        let json = serde_json::to_string(session).expect("a record always serialises");
        self.parts.store.set(&self.session_account(), &json)
    }

    /// Keeps a connector's stored record (its token, if any) and notes why renewal failed, so
    /// that another process (`ema status` after `ema refresh`) tells the same story.
    pub(super) async fn keep_record_with_renewal_error(&self, id: &str, e: &StatusError) {
        if let Some(r) = self.records.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            r.renewal_error = Some(e.clone());
        }
        // Written even without a record: the IdP's problem is stored with the records too.
        if let Err(err) = self.write_records().await {
            tracing::warn!(connector = id, code = err.code().wire(None), "could not store the renewal error");
        }
    }
}

pub(super) fn blank_connector_status(c: &ConnectorConfig) -> ConnectorStatus {
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

pub(super) fn initial_snapshot(policy: &Policy, now: OffsetDateTime) -> StatusSnapshot {
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

pub(super) fn apply_record(c: &mut ConnectorStatus, r: &StoredConnector, identity: Option<Identity>) {
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

/// Why [`Engine::open`] could not open the engine.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot set up HTTPS: {0}")]
    Transport(#[from] crate::http::TransportError),
    #[error("cannot read the stored sign-in: {0}")]
    Store(#[from] StoreError),
}
