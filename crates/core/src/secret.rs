//! Secret newtypes: every credential the engine handles is wrapped so that it cannot be
//! printed by accident.
//!
//! Why: a token that reaches a log line, an error message, a panic or a diagnostics export is
//! a leaked token. Following oauth2-rs's `new_secret_type!`, each type's `Debug` prints
//! `[redacted]`, there is no `Display`, and the value is read only through [`secret()`]-style
//! accessors whose call sites are easy to audit. A SHA-256 [`Fingerprint`] identifies a value
//! in status and diagnostics without revealing it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first 8 bytes of a SHA-256 digest, in hex: enough to tell two tokens apart in a
/// diagnostics bundle, far too little to recover or guess one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprint of an arbitrary secret value.
    pub fn of(value: &str) -> Self {
        let digest = Sha256::digest(value.as_bytes());
        Fingerprint(format!("sha256:{}", crate::digest::hex(&digest[..8])))
    }

    /// The printable form, e.g. `sha256:1a2b3c4d5e6f7081`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value itself. Every call site is a place where the secret leaves
            /// the wrapper: send it on the wire or to the keyring, never to a log.
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// A non-reversible identifier for status and diagnostics.
            pub fn fingerprint(&self) -> Fingerprint {
                Fingerprint::of(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth client secret from the managed policy (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// An OpenID Connect ID token (OIDC Core §2): proves who signed in; the subject token of
    /// the RFC 8693 exchange.
    IdToken
);
secret_type!(
    /// An IdP refresh token (RFC 6749 §1.5): the IdP session; renews the ID token silently.
    RefreshToken
);
secret_type!(
    /// An Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant-04 §3.1):
    /// short-lived, used once in a jwt-bearer grant, never stored.
    IdJag
);
secret_type!(
    /// A connector access token (RFC 6749 §1.4), sent to the MCP server as a Bearer token.
    AccessToken
);
secret_type!(
    /// A PEM private key used for `private_key_jwt` client authentication (RFC 7523 §2.2).
    PrivateKeyPem
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let canary = "canary-7f3a-do-not-print";
        let outputs = [
            format!("{:?}", ClientSecret::new(canary)),
            format!("{:?}", IdToken::new(canary)),
            format!("{:?}", RefreshToken::new(canary)),
            format!("{:?}", IdJag::new(canary)),
            format!("{:?}", AccessToken::new(canary)),
            format!("{:#?}", Some(AccessToken::new(canary))),
        ];
        for out in outputs {
            assert!(!out.contains(canary), "{out}");
            assert!(out.contains("[redacted]"), "{out}");
        }
    }

    #[test]
    fn fingerprint_is_stable_short_and_not_the_value() {
        let a = AccessToken::new("abc");
        assert_eq!(a.fingerprint(), Fingerprint::of("abc"));
        assert_eq!(a.fingerprint().as_str().len(), "sha256:".len() + 16);
        assert_ne!(a.fingerprint(), Fingerprint::of("abd"));
        assert!(!a.fingerprint().as_str().contains("abc"));
    }
}
