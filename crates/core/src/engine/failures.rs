//! How a failed leg is classified (which state it leads to) and worded for the user: the IdP's
//! state, the help desk's name, and the clock when it explains a refusal.

use crate::config::ConnectorConfig;
use crate::grants::token_exchange::ExchangeError;
use crate::http::TransportError;
use crate::records::StoredIdpProblem;
use crate::signin::SignInError;
use crate::status::{ErrorCode, FixAction, IDP_UNREACHABLE, IdpSessionState, StatusError};

use super::idp_pacing::{RecentIdpFailure, RecentIdpFailureKind};
use super::{Engine, Failure};

impl Engine {
    pub(super) fn exchange_failure(&self, cfg: &ConnectorConfig, e: ExchangeError) -> Failure {
        match &e {
            ExchangeError::NotEntitled(_) => Failure::NotEntitled(self.oauth_error(
                ErrorCode::NotEntitled,
                e.oauth_error(),
                &format!("your organisation has not assigned {} to you ({e})", cfg.display_name),
                &format!("ask {} for access if you need it", self.help_desk()),
            )),
            ExchangeError::StepUp(refusal) => {
                let err = self
                    .oauth_error(
                        e.code(),
                        e.oauth_error(),
                        &format!(
                            "{} needs you to sign in again to confirm it's you (your IdP said {})",
                            cfg.display_name,
                            refusal.summary()
                        ),
                        "sign in again; your company's sign-in page may ask for a second factor",
                    )
                    .offering(FixAction::SignIn);
                self.idp_problem_now(Some(IdpSessionState::StepUpRequired), &err);
                // Kept (and stored with the records) until a sign-in succeeds, so that the next
                // sign-in, in whichever process, asks the IdP for what it wants (RFC 9470 §3).
                let mut pending = self.step_up.lock().unwrap_or_else(|p| p.into_inner());
                *pending = Some(match pending.take() {
                    Some(earlier) => earlier.merged(refusal.step_up()),
                    None => refusal.step_up(),
                });
                Failure::StepUp(err)
            }
            ExchangeError::SessionInvalid(_) => {
                let err = self
                    .oauth_error(e.code(), e.oauth_error(), &e.to_string(), "sign in again")
                    .offering(FixAction::SignIn);
                self.idp_problem_now(Some(IdpSessionState::Expired), &err);
                Failure::SignInNeeded(err)
            }
            ExchangeError::Response(crate::oauth::ResponseError::Http { endpoint, status, .. }) if *status >= 500 => {
                self.idp_failure(&SignInError::Transport(TransportError::ServerUnavailable {
                    url: endpoint.clone(),
                    status: *status,
                }))
            }
            _ => Failure::Other(self.oauth_error(
                e.code(),
                e.oauth_error(),
                &e.to_string(),
                &format!("the IdP refused the token exchange; contact {}", self.help_desk()),
            )),
        }
    }

    /// The IdP answered a renewal: it is reachable again and the session works.
    /// A new round of connects (a renewal round, "Refresh now", a token for a client): an
    /// unreachable IdP is tried again, once, however recently it failed (the answer serves only
    /// the connectors of one round).
    pub(super) fn start_round(&self) {
        let mut recent = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner());
        if recent.as_ref().is_some_and(|r| r.kind == RecentIdpFailureKind::Unreachable) {
            *recent = None;
        }
    }

    pub(super) fn idp_answered(&self) {
        {
            let mut recent = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner());
            if recent.as_ref().is_some_and(|r| r.kind == RecentIdpFailureKind::Unreachable) {
                *recent = None;
            }
        }
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
    pub(super) fn idp_problem_now(&self, state: Option<IdpSessionState>, err: &StatusError) {
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
    pub(super) fn idp_failure(&self, e: &SignInError) -> Failure {
        if e.is_session_expired() {
            let err = self
                .oauth_error(e.code(), e.oauth_error(), &e.to_string(), "your sign-in has ended: sign in again")
                .offering(FixAction::SignIn);
            self.idp_problem_now(Some(IdpSessionState::Expired), &err);
            return Failure::SignInNeeded(err);
        }
        let unreachable = e.is_unreachable();
        let (code, oauth_error) = if unreachable { (IDP_UNREACHABLE, None) } else { (e.code(), e.oauth_error()) };
        let message = if unreachable { format!("the IdP could not be reached: {e}") } else { e.to_string() };
        let err = self.oauth_error(
            code,
            oauth_error,
            &message,
            "connectors keep working until their tokens expire; check your network or VPN, or wait for the IdP to recover",
        );
        self.idp_problem_now(unreachable.then_some(IdpSessionState::Unreachable), &err);
        if unreachable {
            *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(RecentIdpFailure { at: self.now(), kind: RecentIdpFailureKind::Unreachable, error: err.clone() });
            Failure::IdpUnreachable(err)
        } else {
            Failure::IdpFailed(err)
        }
    }

    /// When this computer's clock is far enough from a server's to explain a failure the server
    /// judged by time (an OAuth refusal, an invalid ID token, a 401), says so first.
    pub(super) fn explained_by_clock(&self, failure: Failure) -> Failure {
        let explain = |e: StatusError| -> StatusError {
            match self.skew.beyond_leeway() {
                Some(skew) if e.code.may_be_judged_by_time() => self.oauth_error(
                    ErrorCode::ClockSkew,
                    e.oauth_error.as_deref(),
                    &format!("{}; servers accept about 30 s. The server said: {}", skew.describe(), e.message),
                    &format!(
                        "turn on automatic time on this computer (set date and time automatically), then try again; \
                         if your clock is right, tell {} that {}'s clock is off",
                        self.help_desk(),
                        skew.host
                    ),
                )
                .offering(FixAction::Refresh),
                _ => e,
            }
        };
        match failure {
            Failure::Other(e) => Failure::Other(explain(e)),
            Failure::IdpFailed(e) => Failure::IdpFailed(explain(e)),
            other => other,
        }
    }

    pub(super) fn help_desk(&self) -> String {
        self.policy
            .organization
            .help_desk
            .as_ref()
            .map(|h| h.name.clone())
            .unwrap_or_else(|| "your IT help desk".into())
    }

    pub(super) fn client_key_error(&self, e: &crate::oauth::client_auth::ClientAuthError) -> StatusError {
        self.error(ErrorCode::ClientAuthKey, &e.to_string(), "ask IT: the client key in the policy cannot be used")
    }
}
