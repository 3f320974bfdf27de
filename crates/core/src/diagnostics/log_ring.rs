//! The recent log, kept in memory for the diagnostics bundle: a bounded ring of formatted,
//! scrubbed lines fed by a `tracing` layer beside the usual one.
//!
//! Why in memory: the tray and the CLI write no log file (a log file is one more place a secret
//! could land); the help desk gets the last lines in the export instead. Every line is scrubbed
//! ([`crate::redact::scrub`]) when recorded, so a careless log call cannot smuggle a token in.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept by default: enough for a session's story, small enough for the bundle.
pub const DEFAULT_LINES: usize = 2000;
/// Characters kept of one line.
const MAX_LINE_CHARS: usize = 1000;

/// The ring; cheap to clone (all clones share the lines).
#[derive(Debug, Clone)]
pub struct LogRing {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        LogRing { lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(4096)))), capacity: capacity.max(1) }
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Adds a line (scrubbed), dropping the oldest beyond the capacity.
    pub fn push(&self, line: &str) {
        let line = crate::redact::scrub(line, MAX_LINE_CHARS);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A `tracing` layer recording into this ring.
    pub fn layer(&self) -> RingLayer {
        RingLayer { ring: self.clone() }
    }
}

/// Records each event as `time level target: message key=value ...`.
#[derive(Debug)]
pub struct RingLayer {
    ring: LogRing,
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let now = time::OffsetDateTime::now_utc();
        let mut line = format!(
            "{:02}:{:02}:{:02}.{:03}Z {} {}:",
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            meta.level(),
            meta.target()
        );
        event.record(&mut Fields(&mut line));
        self.ring.push(&line);
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_scrubbed() {
        let ring = LogRing::new(3);
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::warn!(attempt = i, "renewal failed for linear");
            }
            tracing::info!("sent Authorization: Bearer opaque-CANARY-123");
        });
        let lines = ring.lines();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("attempt=3") && lines[0].contains("WARN"), "{lines:?}");
        assert!(lines[2].ends_with("Bearer [redacted]"), "{lines:?}");
        assert!(!lines.concat().contains("CANARY"));
    }
}
