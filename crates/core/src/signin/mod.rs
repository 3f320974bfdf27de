//! Sign-in at the IdP: OpenID Connect Authorization Code flow with PKCE in the system browser
//! and a loopback redirect (RFC 8252 §7.3, RFC 7636, OIDC Core §3.1).
//!
//! - [`loopback`]: the one-shot listener on `127.0.0.1:<ephemeral>` that receives the code.
//! - [`browser`]: how the browser is opened (the shell decides; the core only asks).
//! - [`oidc`]: the OIDC client (openidconnect crate): authorization URL, code exchange, ID token
//!   verification, refresh and revocation.

pub mod browser;
pub mod loopback;
pub mod oidc;

pub use browser::{BrowserOpener, PrintUrl, SystemBrowser};
pub use oidc::{IdpClient, SessionTokens, SignInError};
