//! The `ema` CLI's end-to-end tests, as one test binary (ripgrep's layout: one link of the CLI
//! and its dependencies instead of one per file). Each module is one area; `util` holds what
//! they share.

mod util;

mod cli;
mod doctor;
mod hostile_files;
mod onboarding;
mod personal;
mod renewal_regressions;
mod scan_fix;
