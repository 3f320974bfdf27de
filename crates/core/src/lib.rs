//! The headless engine of the EMA desktop app.
//!
//! Enterprise-Managed Authorization (the MCP extension
//! `io.modelcontextprotocol/enterprise-managed-authorization`, built on
//! draft-ietf-oauth-identity-assertion-authz-grant; cited as revision -04 of 2026-05-21, which the stable extension is aligned
//! with, section numbers included): the user signs in once at the company
//! IdP, and the engine turns that sign-in into an access token for every MCP connector the
//! IdP entitles them to. Both faces of the product, the `ema` CLI and the tray app, are thin
//! clients of this crate; it has no GUI dependency.

pub mod atomic_file;
pub mod bounded_read;
pub mod clock;
pub mod config;
pub mod diagnostics;
pub mod digest;
pub mod discovery;
pub mod engine;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_api;
pub mod grants;
pub mod http;
pub mod jwt;
pub mod log_filter;
pub mod mcp_check;
pub mod oauth;
pub mod onboarding;
pub mod personal;
pub mod private_file;
pub mod records;
pub mod redact;
pub mod secret;
pub mod signin;
pub mod status;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;
pub mod url_policy;
