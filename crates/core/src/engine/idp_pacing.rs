//! Not asking the company IdP pointlessly: the request budget of a renewal
//! ([`super::idp_budget`]), and the recent answers of the IdP that serve the other connectors of
//! a round instead of a request each (an outage, a refresh without an ID token).

use time::OffsetDateTime;

use crate::status::{ErrorCode, StatusError};

use super::{Engine, Failure};

impl Engine {
    /// Takes one request from the IdP budget, or fails the renewal (it goes through backoff).
    /// When the IdP could not be reached a moment ago, fails at once with that answer.
    pub(super) fn spend_idp_budget(&self) -> Result<(), Failure> {
        if let Some(recent) = self.recent_idp_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && recent.kind == RecentIdpFailureKind::Unreachable
            && self.now() - recent.at < UNREACHABLE_QUIET
        {
            // The IdP could not be reached a moment ago: the other connectors of this round take
            // that answer (during an outage, seven connectors sent seven requests per round;
            // bench/fleet).
            return Err(Failure::IdpUnreachable(recent.error));
        }
        if self.idp_budget.take(self.now()) {
            return Ok(());
        }
        tracing::warn!("IdP request budget spent: a renewal was held back");
        Err(Failure::IdpFailed(self.error(
            ErrorCode::IdpRequestBudget,
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
}

/// After a refresh answered without an ID token, how long other connectors take that answer
/// instead of refreshing again.
pub(super) const REFRESH_WITHOUT_ID_TOKEN_QUIET: time::Duration = time::Duration::seconds(60);

/// After the IdP could not be reached, how long the other connectors of the same round take
/// that answer instead of trying again (a round's connectors come within moments; a new round
/// always tries again: `Engine::start_round`).
pub(super) const UNREACHABLE_QUIET: time::Duration = time::Duration::seconds(10);

/// A failure at the IdP a moment ago that makes the next request pointless, so that the
/// connectors of one round do not each spend a request on it (cleared by a working refresh,
/// an answer from the IdP, or a sign-in).
#[derive(Debug, Clone)]
pub(super) struct RecentIdpFailure {
    pub(super) at: OffsetDateTime,
    pub(super) kind: RecentIdpFailureKind,
    pub(super) error: StatusError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecentIdpFailureKind {
    /// The IdP could not be reached (any request).
    Unreachable,
    /// A refresh came back without an ID token (refreshes only).
    RefreshWithoutIdToken,
}
