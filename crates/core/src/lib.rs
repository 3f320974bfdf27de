//! The headless engine of the EMA desktop app.
//!
//! Enterprise-Managed Authorization (the MCP extension
//! `io.modelcontextprotocol/enterprise-managed-authorization`, built on
//! draft-ietf-oauth-identity-assertion-authz-grant; cited as revision -04 of 2026-05-21, which the stable extension is aligned
//! with, section numbers included): the user signs in once at the company
//! IdP, and the engine turns that sign-in into an access token for every MCP connector the
//! IdP entitles them to. Both faces of the product, the `ema` CLI and the tray app, are thin
//! clients of this crate; it has no GUI dependency.

// The modules, in the order a connector's token is made. Each says at its top why it exists.

// What the organisation decided: the policy IT deploys, the user's own settings.
pub mod config;

// The wire: one HTTP client for every leg (no redirects, bounded bodies, https except loopback),
// the URLs it may reach, OAuth's shared request and error shapes, and JWTs we read but do not
// verify.
pub mod http;
pub mod jwt;
pub mod oauth;
pub mod url_policy;

// The three legs. Sign-in at the IdP (OIDC, PKCE, loopback redirect); the connector's
// authorization server found from its MCP URL (RFC 9728, RFC 8414); the ID-JAG token exchange
// and the JWT-bearer grant; and the MCP server's answer with the token.
pub mod discovery;
pub mod grants;
pub mod mcp_check;
pub mod signin;

// The engine: runs the legs for every connector, renews before expiry on an injected clock,
// and publishes the status both faces show (docs/status-schema.md).
pub mod clock;
pub mod engine;
pub mod onboarding;
pub mod status;

// What is kept between runs, and how secrets stay secret: the OS keyring behind a trait, the
// records in it, secret newtypes, scrubbing of untrusted text, digests, files written safely.
pub mod digest;
pub mod files;
pub mod records;
pub mod redact;
pub mod secret;
pub mod store;

// Personal connections: credentials that bypass the IdP, found and fixed on request.
pub mod personal;

// For the help desk: checks, the trace of one connect, the bundle; which log lines are kept.
pub mod diagnostics;
pub mod log_filter;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_api;
#[cfg(test)]
pub(crate) mod testing;
