//! The engine's state in the store: restoring it at start, and writing the connector records
//! as one keyring entry, coalescing concurrent writers into as few writes as possible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use crate::config::{ConnectorConfig, Policy};
use crate::records::{
    IdpInUse, RECORD_VERSION, StoredConnector, StoredConnectors, StoredOutcome, StoredSession,
    TrustedAuthorizationServer, connectors_account, idp_in_use_account, session_account,
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
        let this_issuer =
            |i: &Option<String>| i.as_deref().is_none_or(|i| crate::url_policy::same_uri(i, self.issuer()));
        let stored = match self.parts.store.get(&self.session_account())? {
            None => None,
            Some(json) => match serde_json::from_str::<StoredSession>(&json) {
                // Another issuer's tokens are never used (SEP-2352), whatever account they are in.
                Ok(s) if s.v == RECORD_VERSION && this_issuer(&s.idp_issuer) => Some(s),
                // A damaged or foreign record is treated as signed out, never as a crash.
                _ => None,
            },
        };
        let documents: StoredConnectors = match self.parts.store.get(&self.connectors_account())? {
            Some(json) => serde_json::from_str(&json).unwrap_or_default(),
            None => StoredConnectors::default(),
        };
        let documents = if this_issuer(&documents.idp_issuer) { documents } else { StoredConnectors::default() };
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
            let moved = self.forget_another_idp();
            self.publish(|s| {
                *s = initial_snapshot(&self.policy, self.now());
                s.idp.last_error = moved;
            });
            return Ok(());
        };
        let sub = session.identity.as_ref().map(|i| i.sub.clone()).unwrap_or_default();
        let stored = documents;
        let idp_problem = stored.idp_problem.clone().filter(|_| stored.v == RECORD_VERSION);
        // A connector the policy now sends through another authorization server: its token came
        // from the old one and is never used (SEP-2352); it reconnects through the new one.
        let moved_as = |id: &str, r: &StoredConnector| {
            let pin = self.policy.connector(id).and_then(|c| c.authorization_server.as_ref());
            pin.zip(r.authorization_server.as_ref())
                .is_some_and(|(pin, a)| !crate::url_policy::same_uri(a, pin.as_str()))
        };
        let (records, moved): (BTreeMap<String, StoredConnector>, BTreeMap<String, StoredConnector>) = stored
            .records
            .into_iter()
            .filter(|(id, r)| stored.v == RECORD_VERSION && r.sub == sub && same_url(id, &r.mcp_url))
            .partition(|(id, r)| !moved_as(id, r));
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
                        let message = match moved.get(&c.id).and_then(|r| r.authorization_server.as_deref()) {
                            Some(old) => format!(
                                "{} now goes through another authorization server than {old}, by your organisation's \
                                 policy; its old token is not used",
                                c.display_name
                            ),
                            None => "not connected yet".to_string(),
                        };
                        c.error = Some(
                            self.error(ErrorCode::NotConnected, &message, "connect it now")
                                .offering(FixAction::Refresh),
                        );
                    }
                }
            }
        });
        *self.records.lock().unwrap_or_else(|p| p.into_inner()) = records;
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = idp_problem;
        *self.step_up.lock().unwrap_or_else(|p| p.into_inner()) = stored.step_up.clone();
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
                idp_issuer: Some(self.issuer().to_string()),
                records: records.clone(),
                idp_problem: self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                step_up: self.step_up.lock().unwrap_or_else(|p| p.into_inner()).clone(),
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

impl Engine {
    /// The account noting the IdP of the last sign-in under this policy's place.
    pub(super) fn idp_in_use_account(&self) -> String {
        idp_in_use_account(&self.policy.source.path().display().to_string())
    }

    /// When the last sign-in was at another IdP (or client) than the policy's now: its stored
    /// session and records are deleted (never sent to anyone: SEP-2352), and the reason the user
    /// must sign in again is returned for the status. Kept until the next sign-in, so every
    /// process tells the same story.
    fn forget_another_idp(&self) -> Option<StatusError> {
        let json = self.parts.store.get(&self.idp_in_use_account()).ok().flatten()?;
        let last: IdpInUse = serde_json::from_str(&json).ok()?;
        if crate::url_policy::same_uri(&last.issuer, self.issuer()) && last.client_id == self.policy.idp.client_id {
            return None;
        }
        // The authorization servers trusted on first use are not the IdP's: kept, so that the move
        // does not reopen the window that trust closes.
        let old_connectors = connectors_account(&last.issuer, &last.client_id);
        if let Some(old) = self.parts.store.get(&old_connectors).ok().flatten()
            && let Ok(old) = serde_json::from_str::<StoredConnectors>(&old)
        {
            let mut trusted = self.trusted_as.lock().unwrap_or_else(|p| p.into_inner());
            for (id, t) in old.trusted_authorization_servers {
                let same_url = self
                    .policy
                    .connector(&id)
                    .is_some_and(|c| crate::url_policy::same_uri(&t.mcp_url, c.mcp_url.as_str()));
                if same_url {
                    trusted.entry(id).or_insert(t);
                }
            }
        }
        for account in [session_account(&last.issuer, &last.client_id), old_connectors] {
            if let Err(e) = self.parts.store.delete(&account) {
                tracing::warn!(code = e.code().wire(None), "could not delete the previous IdP's tokens");
            }
        }
        let host = |u: &str| url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_string));
        let (old, new) = (host(&last.issuer).unwrap_or_else(|| last.issuer.clone()), self.policy.idp.name());
        Some(
            self.error(
                ErrorCode::IdpChanged,
                &format!(
                    "your organisation now signs you in with {new} instead of {old}; the tokens from {old} were \
                     removed and are never sent"
                ),
                "sign in again; your settings are kept",
            )
            .offering(FixAction::SignIn),
        )
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
            let step_up = r.error.as_ref().is_some_and(|e| e.code == ErrorCode::StepUpRequired);
            c.state = if step_up { ConnectorState::StepUpRequired } else { ConnectorState::Error };
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
