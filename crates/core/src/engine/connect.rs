//! The connect state machine: for one connector, whether to renew, and what each outcome of the
//! legs does to its record and status (a failed renewal keeps a token that still works; a
//! failure at the IdP never turns "not entitled" into "error").

use crate::records::{RECORD_VERSION, StoredConnector, StoredOutcome};
use crate::status::{ConnectorState, ErrorCode, FixAction, IDP_UNREACHABLE, StatusError};

use super::{Engine, apply_record, blank_connector_status};

impl Engine {
    /// Connects (or renews) every connector in parallel. With `force`, tokens are renewed even
    /// when they are still fresh. A panic while connecting one connector (a bug, whatever its
    /// server answered) fails that connector and never the others or the renewal task.
    pub async fn connect_all(&self, force: bool) {
        use futures::FutureExt as _;
        self.start_round();
        let all = self.policy.connectors.iter().map(|c| async move {
            let outcome = std::panic::AssertUnwindSafe(self.connect(&c.id, force)).catch_unwind().await;
            if outcome.is_err() {
                tracing::error!(connector = %c.id, "connecting panicked; the other connectors go on");
                let err = self
                    .error(
                        ErrorCode::InternalError,
                        &format!("EMA hit an internal error while connecting {}", c.display_name),
                        &format!("try again; if it persists, export diagnostics for {}", self.help_desk()),
                    )
                    .offering(FixAction::Refresh);
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
        let mut unassigned_token = None;
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
                // No longer assigned: the record below holds no token, so the old one is gone
                // from the store at once; then the AS is asked to revoke it.
                unassigned_token = self
                    .records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(id)
                    .and_then(|r| r.access_token.clone().map(|t| (t, r.authorization_server.clone())));
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
            Err(Failure::StepUp(e)) => {
                // No valid token and the IdP wants a step-up: a state of its own, kept across
                // processes (the expired token is dropped with the record).
                StoredConnector {
                    authorization_server: current.authorization_server.clone(),
                    last_renewal: current.last_renewal.map(|t| t.unix_timestamp()),
                    error: Some(e),
                    ..base
                }
            }
            Err(Failure::SignInNeeded(e)) => {
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
                if current.state != ConnectorState::NotEntitled && e.code == IDP_UNREACHABLE {
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
        if let Some((token, issued_by)) = unassigned_token {
            self.revoke_unassigned(cfg, &token, issued_by.as_deref()).await;
        }
    }
}

/// A token due for renewal this soon counts as due: the renewal timer fires up to 3 s early
/// (jitter), and a round that found nothing due would only wake again seconds later.
pub(super) const JITTER_SLACK: time::Duration = time::Duration::seconds(5);

/// Why one connect did not produce a token.
pub(super) enum Failure {
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
