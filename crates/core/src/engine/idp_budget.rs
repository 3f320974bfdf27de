//! A cap on the engine's request rate to the company IdP.
//!
//! Why: every renewal of a connector costs a token exchange at the IdP (and sometimes a
//! refresh). A connector's authorization server that answers with absurd lifetimes, or a bug
//! in our own scheduling, must never make one desktop client hammer the company IdP; across a
//! fleet of thousands that is an outage. A token bucket (capacity `C`, refilled at `C` per
//! minute) lets a sign-in or a "Refresh now" through at once and holds back anything sustained
//! beyond it. The clock is the engine's, so it is tested on a virtual clock.

use std::sync::Mutex;

use time::OffsetDateTime;

/// Requests the budget always allows in a burst, on top of a few per connector.
const BASE_BURST: f64 = 10.0;
/// Requests per connector in a burst: an exchange, a retry after a refreshed session, a refresh,
/// twice over. With 3 per connector, a user clicking "Refresh now" four times in a minute (each
/// round asks for every connector, entitled or not) was held back (found by the tray e2e); 6
/// lets about six rounds a minute through and still holds a looping client to a few dozen
/// requests a minute instead of thousands.
const PER_CONNECTOR: f64 = 6.0;

#[derive(Debug)]
pub struct IdpBudget {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, OffsetDateTime)>,
}

impl IdpBudget {
    /// A full budget for `connectors` connectors at `now`.
    pub fn new(connectors: usize, now: OffsetDateTime) -> Self {
        let capacity = BASE_BURST + PER_CONNECTOR * connectors as f64;
        IdpBudget { capacity, per_second: capacity / 60.0, state: Mutex::new((capacity, now)) }
    }

    /// How many requests a burst may have.
    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    /// Takes one request from the budget, or says none is left.
    pub fn take(&self, now: OffsetDateTime) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *state;
        let elapsed = (now - last).as_seconds_f64().max(0.0);
        let tokens = (tokens + elapsed * self.per_second).min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_is_held_to_capacity_per_minute() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let budget = IdpBudget::new(7, t0);
        assert_eq!(budget.capacity(), 52);
        assert!((0..52).all(|_| budget.take(t0)), "a sign-in's burst goes through");
        assert!(!budget.take(t0), "the 53rd request in the same instant is held back");
        // Over the next ten minutes, one attempt a second: at most 52 a minute get through.
        let passed = (1..=600).filter(|s| budget.take(t0 + time::Duration::seconds(*s))).count();
        assert!((500..=521).contains(&passed), "{passed} passed in 10 min");
    }

    #[test]
    fn an_idle_budget_fills_up_again_but_not_beyond_capacity() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let budget = IdpBudget::new(0, t0);
        assert!((0..10).all(|_| budget.take(t0)));
        let later = t0 + time::Duration::hours(5);
        assert_eq!((0..20).filter(|_| budget.take(later)).count(), 10);
    }
}
