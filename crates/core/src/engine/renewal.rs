//! Renewal scheduling: when the next renewal is due, and the task that sleeps until then,
//! renews, and backs off while renewals fail. Timers, not polling.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::grants::jwt_bearer::{self};
use crate::status::ConnectorState;

use super::Engine;

impl Engine {
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
}

/// The shortest time between two renewals of one connector, whatever its tokens' lifetime:
/// a server answering `expires_in: 0` must not make the client renew in a loop (each renewal
/// is also a token exchange at the company IdP). A lifetime below it is refused as a failure
/// (`jwt_bearer::MIN_TOKEN_LIFETIME`, the same value), which goes through the backoff.
pub const MIN_RENEWAL_INTERVAL: time::Duration = jwt_bearer::MIN_TOKEN_LIFETIME;

/// Up to 10 % earlier, never later: renewing a little early is harmless, late is not.
pub(super) fn jittered(wait: time::Duration) -> Duration {
    let wait = Duration::try_from(wait).unwrap_or_default();
    let spread = wait.as_millis().min(30_000) as u64 / 10;
    let cut = if spread == 0 { 0 } else { rand::random::<u64>() % spread };
    wait.saturating_sub(Duration::from_millis(cut))
}

/// 30 s, 1 min, 2 min ... capped at 15 min.
pub(super) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(30u64.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(15 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

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
