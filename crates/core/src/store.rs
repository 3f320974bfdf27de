//! Where credentials live: behind the [`SecretStore`] trait.
//!
//! The product uses [`KeyringStore`], the OS credential store through the `keyring` crate
//! (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows). Unit tests
//! inject [`MemoryStore`] (tailscale's `ipn.StateStore` + `mem.Store`); nothing in product code
//! switches between them by environment. Tokens never touch a plain file.
//!
//! Each entry is one JSON document under service [`SERVICE`]; the accounts are named in
//! `records.rs`: `session:<issuer>#<client_id>` (the IdP session) and
//! `connectors:<issuer>#<client_id>` (every connector's record, in one entry).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::status::{ErrorCode, KeyringCode};

/// The keyring service name of every entry.
pub const SERVICE: &str = "dev.ema.desktop";

/// Why the store could not be used. Never carries a stored value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the OS keyring is not available: {0}")]
    Unavailable(String),
    #[error("the OS keyring refused access: {0}")]
    Denied(String),
    #[error("keyring entry `{account}` is damaged: {reason}")]
    Damaged { account: String, reason: String },
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Keyring(match self {
            StoreError::Unavailable(_) => KeyringCode::Unavailable,
            StoreError::Denied(_) => KeyringCode::Denied,
            StoreError::Damaged { .. } => KeyringCode::EntryDamaged,
        })
    }

    pub fn fix(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => {
                "start or unlock the desktop keyring (on Linux: gnome-keyring or KWallet with the Secret Service)"
            }
            StoreError::Denied(_) => "unlock the keyring and allow EMA to use it",
            StoreError::Damaged { .. } => "sign out and sign in again to rewrite it",
        }
    }
}

/// A key-value store for secret documents.
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    fn get(&self, account: &str) -> Result<Option<String>, StoreError>;
    fn set(&self, account: &str, value: &str) -> Result<(), StoreError>;
    fn delete(&self, account: &str) -> Result<(), StoreError>;
}

/// The OS keyring.
#[derive(Debug, Default, Clone)]
pub struct KeyringStore {
    service: String,
}

impl KeyringStore {
    pub fn new() -> Self {
        KeyringStore { service: SERVICE.to_string() }
    }

    /// A store under another service name (for tests that must not touch the user's entries).
    pub fn with_service(service: impl Into<String>) -> Self {
        KeyringStore { service: service.into() }
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(&self.service, account).map_err(map_keyring_error)
    }
}

/// How long to wait before the one retry of a keyring call that failed in the platform.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs `op`, and once more after [`RETRY_AFTER`] when it failed in the platform (the keyring
/// daemon went away with the call in flight: gnome-keyring restarted, or started on demand).
/// Every operation here is idempotent (read, write the whole value, delete), so a second attempt
/// cannot double anything. A refusal (`NoStorageAccess`, a locked keyring) is not retried.
fn retried<T>(op: impl Fn() -> keyring::Result<T>) -> keyring::Result<T> {
    match op() {
        Err(keyring::Error::PlatformFailure(e)) => {
            tracing::debug!("the keyring failed ({e}); trying once more");
            std::thread::sleep(RETRY_AFTER);
            op()
        }
        other => other,
    }
}

fn map_keyring_error(e: keyring::Error) -> StoreError {
    match e {
        keyring::Error::NoStorageAccess(inner) => StoreError::Denied(inner.to_string()),
        keyring::Error::PlatformFailure(inner) => StoreError::Unavailable(inner.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, account: &str) -> Result<Option<String>, StoreError> {
        let entry = self.entry(account)?;
        match retried(|| entry.get_password()) {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::BadEncoding(_)) => {
                Err(StoreError::Damaged { account: account.into(), reason: "not UTF-8".into() })
            }
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn set(&self, account: &str, value: &str) -> Result<(), StoreError> {
        let entry = self.entry(account)?;
        retried(|| entry.set_password(value)).map_err(map_keyring_error)
    }

    fn delete(&self, account: &str) -> Result<(), StoreError> {
        let entry = self.entry(account)?;
        match retried(|| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_keyring_error(e)),
        }
    }
}

/// An in-memory store for unit tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// All entries (tests inspect what was stored).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, account: &str) -> Result<Option<String>, StoreError> {
        Ok(self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(account).cloned())
    }

    fn set(&self, account: &str, value: &str) -> Result<(), StoreError> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(account.into(), value.into());
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<(), StoreError> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn platform_failure() -> keyring::Error {
        keyring::Error::PlatformFailure("the Secret Service went away".into())
    }

    #[test]
    fn a_call_the_platform_dropped_is_tried_once_more_and_a_refusal_is_not() {
        let calls = Cell::new(0);
        let once_down = retried(|| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 { Err(platform_failure()) } else { Ok("value") }
        });
        assert_eq!((once_down.ok(), calls.get()), (Some("value"), 2));

        calls.set(0);
        let always_down = retried(|| -> keyring::Result<()> {
            calls.set(calls.get() + 1);
            Err(platform_failure())
        });
        assert!(matches!(always_down, Err(keyring::Error::PlatformFailure(_))));
        assert_eq!(calls.get(), 2, "once more, not in a loop");

        calls.set(0);
        let locked = retried(|| -> keyring::Result<()> {
            calls.set(calls.get() + 1);
            Err(keyring::Error::NoStorageAccess("locked".into()))
        });
        assert!(matches!(locked, Err(keyring::Error::NoStorageAccess(_))));
        assert_eq!(calls.get(), 1, "a refusal is the user's answer: not asked again");
    }
}
