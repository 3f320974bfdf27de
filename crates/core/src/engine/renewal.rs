//! Renewal scheduling: when the next renewal is due, and the task that sleeps until then,
//! renews, and backs off while renewals fail. Timers, not polling.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::grants::jwt_bearer::{self};
use crate::status::ConnectorState;

use super::Engine;
use super::connect::JITTER_SLACK;

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
    /// off exponentially, with jitter, while renewals fail. Wakes early when the status changes
    /// (a sign-in). Timers, not polling: between renewals it only wakes every [`MAX_SLEEP`] to
    /// look at the wall clock, because monotonic timers stop while the computer sleeps.
    ///
    /// Renewals found overdue (at start, after the computer slept) are spread over
    /// [`OVERDUE_SPREAD`], so a fleet that starts or wakes at once does not reach the IdP in the
    /// same second (bench/fleet, docs/fleet.md).
    pub async fn run_renewals(self: Arc<Self>) {
        use tokio::time::Instant;
        let mut rx = self.subscribe();
        let mut failures: u32 = 0;
        // Absolute deadlines, so that waking early (a status change, the sleep cap) never
        // pushes them back: the retry after a failed round, and the round for overdue renewals.
        let mut retry_at: Option<Instant> = None;
        let mut overdue_at: Option<Instant> = None;
        loop {
            rx.borrow_and_update();
            let (now, instant) = (self.now(), Instant::now());
            // After a failed round, a renewal that is already due (a token that expired while the
            // IdP is down, one the AS keeps refusing) waits for the backoff: only renewals due
            // beyond what the failed round tried (it counted `JITTER_SLACK` as due) are timed by
            // their own due time, or a past-due one would loop at once (and one due in a few
            // milliseconds was retried several times; found by bench/fleet).
            let due = self.next_renewal_at().filter(|t| failures == 0 || *t > now + JITTER_SLACK);
            let overdue = due.is_some_and(|t| t + JITTER_SLACK < now);
            if !overdue {
                overdue_at = None;
            }
            let due = due.map(|t| match overdue {
                true => *overdue_at.get_or_insert_with(|| instant + spread_within(OVERDUE_SPREAD)),
                false => instant + jittered((t - now).max(time::Duration::ZERO)),
            });
            let wake = [due, retry_at].into_iter().flatten().min();
            let cap = instant + MAX_SLEEP;
            tokio::select! {
                _ = tokio::time::sleep_until(wake.map_or(cap, |w| w.min(cap))) => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if wake.is_none_or(|w| w > cap) {
                // The sleep cap: look at the wall clock again.
                continue;
            }
            if !self.is_signed_in().await {
                (failures, retry_at, overdue_at) = (0, None, None);
                continue;
            }
            self.connect_all(false).await;
            overdue_at = None;
            let failed = self
                .status
                .borrow()
                .connectors
                .iter()
                .any(|c| c.renewal_error.is_some() || c.state == ConnectorState::Error);
            failures = if failed { failures.saturating_add(1) } else { 0 };
            retry_at = failed.then(|| Instant::now() + spread_within_upper_half(backoff(failures)));
        }
    }
}

/// The longest the renewal task sleeps before it looks at the wall clock again. Monotonic timers
/// (tokio's, on every OS) stop while the computer sleeps: without a cap, a laptop that went to
/// sleep at 18:00 with a renewal due in 50 minutes woke at 9:00 and waited 50 more minutes with
/// expired tokens. Twelve wake-ups an hour cost nothing measurable.
pub const MAX_SLEEP: Duration = Duration::from_secs(5 * 60);

/// Renewals found overdue are run at a random moment within this window.
pub const OVERDUE_SPREAD: Duration = Duration::from_secs(30);

/// The shortest time between two renewals of one connector, whatever its tokens' lifetime:
/// a server answering `expires_in: 0` must not make the client renew in a loop (each renewal
/// is also a token exchange at the company IdP). A lifetime below it is refused as a failure
/// (`jwt_bearer::MIN_TOKEN_LIFETIME`, the same value), which goes through the backoff.
pub const MIN_RENEWAL_INTERVAL: time::Duration = jwt_bearer::MIN_TOKEN_LIFETIME;

/// Up to 10 % earlier (at most 3 s), never later: renewing a little early is harmless, late is
/// not.
pub(super) fn jittered(wait: time::Duration) -> Duration {
    let wait = Duration::try_from(wait).unwrap_or_default();
    let spread = wait.as_millis().min(30_000) as u64 / 10;
    let cut = if spread == 0 { 0 } else { rand::random::<u64>() % spread };
    wait.saturating_sub(Duration::from_millis(cut))
}

/// A random wait in `[0, window)`.
fn spread_within(window: Duration) -> Duration {
    let ms = window.as_millis() as u64;
    Duration::from_millis(if ms == 0 { 0 } else { rand::random::<u64>() % ms })
}

/// A random wait in `[wait / 2, wait]` ("equal jitter"): retries after a failed round never
/// come sooner than half the backoff, and a fleet that failed together does not retry together.
fn spread_within_upper_half(wait: Duration) -> Duration {
    wait / 2 + spread_within(wait / 2 + Duration::from_millis(1)).min(wait / 2)
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

    #[test]
    fn spreads_stay_within_their_window() {
        for _ in 0..200 {
            assert!(spread_within(Duration::from_secs(30)) < Duration::from_secs(30));
            let retry = spread_within_upper_half(Duration::from_secs(60));
            assert!(retry >= Duration::from_secs(30) && retry <= Duration::from_secs(60), "{retry:?}");
        }
        assert_eq!(spread_within(Duration::ZERO), Duration::ZERO);
        assert_eq!(spread_within_upper_half(Duration::ZERO), Duration::ZERO);
    }
}
