//! The IdP session: interactive sign-in in the system browser, sign-out with revocation
//! (RFC 7009), and the discovered IdP client they share.

use std::time::Duration;

use crate::oauth::StepUp;
use crate::records::{IdpInUse, RECORD_VERSION, StoredSession};
use crate::signin::loopback::LoopbackListener;
use crate::signin::{BrowserOpener, IdpClient, SignInError};
use crate::status::{ConnectorState, Identity, IdpSessionState};
use crate::store::StoreError;

use super::{Engine, EngineError, blank_connector_status, from_unix, initial_snapshot};

impl Engine {
    /// The discovered IdP (discovered once, then reused).
    pub(super) async fn idp_client(&self) -> Result<IdpClient, SignInError> {
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
        // A step-up the IdP asked for is sent with this sign-in (RFC 9470 §3): once, since a
        // sign-in that succeeds clears it, and the browser opens only because the user asked.
        let step_up = self.step_up.lock().unwrap_or_else(|p| p.into_inner()).clone().map(StepUp::for_sign_in);
        let (url, pending) = idp.authorization_request_with(&listener.redirect_uri(), step_up.as_ref())?;
        browser.open(url.as_str()).map_err(SignInError::Browser)?;
        let tokens = idp.complete(self.parts.transport.as_ref(), listener, pending, timeout).await?;
        let identity = tokens.identity.clone().ok_or_else(|| SignInError::InvalidResponse("no identity".into()))?;
        // What this IdP answered to a refresh-token subject outlives a sign-in (same issuer).
        let learned = self.session.lock().await.as_ref().and_then(|s| s.refresh_token_subject);
        let session = StoredSession {
            v: RECORD_VERSION,
            identity: Some(identity.clone()),
            id_token: tokens.id_token,
            id_token_expires_at: tokens.id_token_expires_at.map(|t| t.unix_timestamp()),
            refresh_token: tokens.refresh_token,
            signed_in_at: self.now().unix_timestamp(),
            refresh_token_subject: learned,
            idp_issuer: Some(self.issuer().to_string()),
        };
        self.save_session(&session)?;
        let in_use = IdpInUse { issuer: self.issuer().to_string(), client_id: self.policy.idp.client_id.clone() };
        let noted = serde_json::to_string(&in_use).expect("serialises");
        if let Err(e) = self.parts.store.set(&self.idp_in_use_account(), &noted) {
            tracing::warn!(code = e.code().wire(None), "could not note which IdP this sign-in used");
        }
        let previous_sub = self.session.lock().await.replace(session.clone()).and_then(|s| s.identity).map(|i| i.sub);
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.refresh_without_id_token_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.step_up.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
        self.parts.store.delete(&self.idp_in_use_account())?;
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.idp_problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.step_up.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.refresh_without_id_token_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
