//! Help-desk diagnostics: what support needs to see which leg failed and why, with no secret.
//!
//! This first part is the protocol trace ([`trace`]); the named checks, `ema doctor` and the
//! export bundle build on it.

pub mod doctor;
pub mod trace;
