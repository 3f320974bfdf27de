//! What the token exchange sends as its subject: the ID token, or the IdP refresh token itself
//! (`urn:ietf:params:oauth:token-type:refresh_token`, draft-ietf-oauth-identity-assertion-
//! authz-grant-02 and later).
//!
//! Why learned, not configured per IdP: Okta documents the refresh token as the way to renew
//! its 5-minute ID-JAGs, rmcp's enterprise client sends it by default, and an IdP that renews
//! sessions without new ID tokens (OIDC Core §12.2 lets it) leaves no other way on; but IdPs of
//! the -01 era refuse it. So with the policy's `exchange_subject` at `auto`:
//! - a live ID token goes first (every IdP takes it);
//! - when it has expired, the refresh token is tried, once per IdP, and the answer remembered
//!   with the session ([`LearnedSubject`]): accepted saves the ID-token refresh from then on;
//!   refused falls back to refreshing the ID token, and is tried again after a day;
//! - a refresh that brings no new ID token is followed by the refresh token as the subject,
//!   whatever was learned, since nothing else can work.
//!
//! A refusal of a refresh token the IdP never took before says nothing about the connector (an
//! IdP that does not know the token type may answer `access_denied`), so it never marks a
//! connector "not assigned"; only the ID-token path, or a refresh token the IdP took before,
//! speaks for the connector.

use crate::config::ExchangeSubject;
use crate::records::{LearnedSubject, StoredSession};
use crate::secret::{IdToken, RefreshToken};
use crate::status::{ErrorCode, FixAction, IdpSessionState};

use super::idp_pacing::{REFRESH_WITHOUT_ID_TOKEN_QUIET, RecentIdpFailure, RecentIdpFailureKind};
use super::{Engine, Failure, from_unix};

/// An ID token this close to expiry is refreshed before it is used as a subject token.
const ID_TOKEN_MIN_LIFETIME: time::Duration = time::Duration::seconds(60);

/// A learned refusal is tried again after this long (the IdP may have been upgraded).
pub(super) const RETRY_REFUSED_SUBJECT_AFTER: time::Duration = time::Duration::days(1);

/// The subject chosen for one token exchange.
#[derive(Clone)]
pub(super) enum Subject {
    IdToken(IdToken),
    RefreshToken { token: RefreshToken, why: RefreshSubjectWhy },
}

/// Why the refresh token is the subject, which decides what a refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshSubjectWhy {
    /// The policy says so: the IdP's answers are its verdicts.
    Policy,
    /// This IdP took it before: its answers are verdicts, except that a refusal of the token
    /// type sends EMA back to the ID token.
    Learned,
    /// Never tried with this IdP: a refusal only teaches that it does not take it.
    Trial,
    /// A refresh just brought no ID token: a refusal leaves nothing else to try.
    LastResort,
}

/// Which exchange attempt of one connect this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    First,
    /// The IdP rejected the ID token (`invalid_grant`): refresh it, whatever its expiry says.
    IdTokenRejected,
    /// The IdP refused the refresh token as the subject: refresh the ID token instead.
    RefreshSubjectRefused,
}

impl Engine {
    /// The subject for the next exchange of one connect.
    pub(super) async fn exchange_subject(&self, attempt: Attempt) -> Result<Subject, Failure> {
        let mode = self.policy.idp.exchange_subject;
        {
            let guard = self.session.lock().await;
            let Some(session) = guard.as_ref() else {
                return Err(self.signed_out());
            };
            let fresh_id_token = self.fresh_id_token_of(session);
            let refresh_token = session.refresh_token.clone();
            match (mode, refresh_token) {
                (ExchangeSubject::RefreshToken, Some(token)) => {
                    return Ok(Subject::RefreshToken { token, why: RefreshSubjectWhy::Policy });
                }
                (ExchangeSubject::RefreshToken, None) => {}
                (_, _) if attempt == Attempt::First && fresh_id_token.is_some() => {
                    return Ok(Subject::IdToken(fresh_id_token.expect("checked above")));
                }
                (ExchangeSubject::Auto, Some(token)) if attempt == Attempt::First => {
                    match session.refresh_token_subject {
                        Some(LearnedSubject { accepted: true, .. }) => {
                            return Ok(Subject::RefreshToken { token, why: RefreshSubjectWhy::Learned });
                        }
                        Some(LearnedSubject { accepted: false, at })
                            if from_unix(at).is_some_and(|at| self.now() - at < RETRY_REFUSED_SUBJECT_AFTER) => {}
                        _ => return Ok(Subject::RefreshToken { token, why: RefreshSubjectWhy::Trial }),
                    }
                }
                _ => {}
            }
        }
        match self.refreshed_id_token(attempt == Attempt::IdTokenRejected).await {
            Ok(id_token) => Ok(Subject::IdToken(id_token)),
            Err(NoIdToken::Failed(f)) => Err(f),
            Err(NoIdToken::NotRenewed(token))
                if mode == ExchangeSubject::Auto && attempt != Attempt::RefreshSubjectRefused =>
            {
                // An IdP seen taking it speaks for the connector with it; one never seen may
                // refuse the type with any error, which must not read as "not assigned".
                let taken_before = self
                    .session
                    .lock()
                    .await
                    .as_ref()
                    .is_some_and(|s| s.refresh_token_subject.is_some_and(|l| l.accepted));
                let why = if taken_before { RefreshSubjectWhy::Learned } else { RefreshSubjectWhy::LastResort };
                Ok(Subject::RefreshToken { token, why })
            }
            Err(NoIdToken::NotRenewed(_)) => Err(self.id_token_not_renewed()),
        }
    }

    /// The session's ID token if it has at least [`ID_TOKEN_MIN_LIFETIME`] left.
    fn fresh_id_token_of(&self, session: &StoredSession) -> Option<IdToken> {
        let exp = session.id_token_expires_at.and_then(from_unix)?;
        session.id_token.clone().filter(|_| exp - ID_TOKEN_MIN_LIFETIME > self.now())
    }

    /// Whether the session's refresh token is no longer `sent` (a refresh rotated it meanwhile).
    pub(super) async fn refresh_token_rotated_since(&self, sent: &RefreshToken) -> bool {
        let guard = self.session.lock().await;
        guard.as_ref().and_then(|s| s.refresh_token.as_ref()).is_some_and(|current| current != sent)
    }

    /// Remembers what the IdP answered to a refresh token as the subject.
    pub(super) async fn learn_refresh_subject(&self, accepted: bool) {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_mut() else { return };
        if session.refresh_token_subject.is_some_and(|l| l.accepted == accepted) {
            return;
        }
        tracing::info!(accepted, "the IdP's answer to a refresh token as the exchange's subject is remembered");
        session.refresh_token_subject = Some(LearnedSubject { accepted, at: self.now().unix_timestamp() });
        if let Err(e) = self.save_session(session) {
            tracing::warn!(code = e.code().wire(None), "could not store what the IdP accepts as a subject");
        }
    }

    /// The error of a refresh that brought no ID token when no refresh-token subject can help;
    /// the connectors of the same round take it without asking the IdP again.
    pub(super) fn id_token_not_renewed(&self) -> Failure {
        let err = self
            .error(
                ErrorCode::IdTokenNotRenewed,
                "the IdP renewed the session but sent no new ID token (OIDC Core §12.2 lets it), the old one has \
                 expired, and the IdP does not take the refresh token in the token exchange instead",
                "sign in again; your connectors keep working until their tokens expire",
            )
            .offering(FixAction::SignIn);
        *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(RecentIdpFailure {
            at: self.now(),
            kind: RecentIdpFailureKind::RefreshWithoutIdToken,
            error: err.clone(),
        });
        self.idp_problem_now(None, &err);
        Failure::IdpFailed(err)
    }

    fn signed_out(&self) -> Failure {
        Failure::SignInNeeded(self.error(ErrorCode::SignedOut, "not signed in", "sign in").offering(FixAction::SignIn))
    }

    /// An ID token with at least a minute left, refreshed with the refresh token if needed.
    /// One refresh serves all connectors waiting on the session lock. A rotated refresh token
    /// is stored before anything else happens.
    async fn refreshed_id_token(&self, force_refresh: bool) -> Result<IdToken, NoIdToken> {
        let mut guard = self.session.lock().await;
        let Some(session) = guard.as_mut() else {
            return Err(NoIdToken::Failed(self.signed_out()));
        };
        if !force_refresh && let Some(t) = self.fresh_id_token_of(session) {
            return Ok(t);
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            let err = self
                .error(
                    ErrorCode::IdpSessionExpired,
                    "the ID token expired and the IdP gave no refresh token",
                    "sign in again; ask IT to allow offline_access for this app",
                )
                .offering(FixAction::SignIn);
            self.publish(|s| s.idp.state = IdpSessionState::Expired);
            return Err(NoIdToken::Failed(Failure::SignInNeeded(err)));
        };
        if let Some(recent) = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && recent.kind == RecentIdpFailureKind::RefreshWithoutIdToken
            && self.now() - recent.at < REFRESH_WITHOUT_ID_TOKEN_QUIET
        {
            // The IdP just answered a refresh without an ID token: asking again for every
            // waiting connector would only spend the IdP's time (and, with rotation, tokens).
            return Err(NoIdToken::Failed(Failure::IdpFailed(recent.error)));
        }
        if !force_refresh
            && let Some(at) = *self.refresh_without_id_token_at.lock().unwrap_or_else(|p| p.into_inner())
            && self.now() - at < REFRESH_WITHOUT_ID_TOKEN_QUIET
        {
            return Err(NoIdToken::NotRenewed(refresh_token));
        }
        let idp = self.idp_client().await.map_err(|e| NoIdToken::Failed(self.idp_failure(&e)))?;
        self.spend_idp_budget().map_err(NoIdToken::Failed)?;
        let tokens = idp
            .refresh(self.parts.transport.as_ref(), &refresh_token)
            .await
            .map_err(|e| NoIdToken::Failed(self.idp_failure(&e)))?;
        if let Some(rt) = tokens.refresh_token {
            // Refresh-token rotation (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1): the old one is now
            // spent. Stored before anything else can fail, or the next renewal sends a spent
            // token and the IdP ends the session (`invalid_grant`).
            session.refresh_token = Some(rt);
            if let Err(e) = self.save_session(session) {
                tracing::warn!(code = e.code().wire(None), "could not store the rotated refresh token");
            }
        }
        let Some(id_token) = tokens.id_token else {
            *self.refresh_without_id_token_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.now());
            let current = session.refresh_token.clone().expect("the refresh token was used above");
            return Err(NoIdToken::NotRenewed(current));
        };
        *self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.refresh_without_id_token_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
}

/// Why no fresh ID token came.
enum NoIdToken {
    Failed(Failure),
    /// The IdP renewed the session without an ID token; the (possibly rotated) refresh token.
    NotRenewed(RefreshToken),
}
