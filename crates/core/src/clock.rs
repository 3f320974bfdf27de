//! The engine's wall clock, injected so time-driven behaviour can be tested without sleeping.
//!
//! Why a trait (tailscale's `tstime.Clock`, oauth4webapi's clock options): expiry, renewal
//! margins, the renewal floor and the IdP request budget all compare tokens' wall-clock times
//! with "now". The product uses [`SystemClock`]; tests inject [`ManualClock`] (moved by hand,
//! for tests that also move a sandbox's clock) or [`TokioClock`] (moves with tokio's paused
//! time, so `tokio::time::sleep` in the renewal loop and the wall clock stay in step).

use std::fmt::Debug;
use std::sync::Mutex;

use time::OffsetDateTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until a test moves it. For tests only (injected through
/// [`crate::engine::EngineParts`]); nothing in the product builds one.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn starting_at(now: OffsetDateTime) -> Self {
        ManualClock { now: Mutex::new(now) }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wall-clock time that follows tokio's clock: `start` plus the tokio time elapsed since the
/// clock was made. Under `tokio::time::pause()` it moves only when tokio's time does. For tests.
#[derive(Debug)]
pub struct TokioClock {
    start: OffsetDateTime,
    at: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: OffsetDateTime) -> Self {
        TokioClock { start, at: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.at);
        self.start + elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let c = ManualClock::starting_at(t0);
        assert_eq!(c.now(), t0);
        c.advance(time::Duration::seconds(90));
        assert_eq!(c.now(), t0 + time::Duration::seconds(90));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let c = TokioClock::starting_at(t0);
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        assert_eq!(c.now(), t0 + time::Duration::hours(1));
    }
}
