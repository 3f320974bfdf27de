//! Help-desk diagnostics: what support needs to see which leg failed and why, with no secret.
//!
//! - [`trace`]: the step-by-step protocol trace, by allow-list;
//! - [`doctor`]: the named checks and the diagnosis per connector (`ema doctor`);
//! - [`reach`]: DNS, TCP and TLS reachability of every endpoint, one `reach-*` check each;
//! - [`log_ring`]: the recent log, scrubbed, in memory;
//! - [`bundle`]: the export, one zip with a summary (text and HTML), the diagnosis as JSON, the
//!   redacted policy, versions, time and time zone, and the log.

pub mod bundle;
pub mod check;
pub mod doctor;
pub mod log_ring;
pub mod reach;
pub mod trace;
