//! Where the policy is looked for, in order, and which one was used.
//!
//! Order (the first that exists wins): an explicit `--config` path or `EMA_CONFIG`, then the
//! per-OS managed location an MDM writes to, then the user's own config dir (a policy IT sent
//! by other means). A managed policy therefore always wins over one the user saved.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Which layer a policy came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum ConfigSource {
    /// `--config PATH` or `EMA_CONFIG`.
    Explicit(PathBuf),
    /// The OS's managed location (see [`managed_policy_path`]).
    Managed(PathBuf),
    /// The user's config dir (see [`user_policy_path`]).
    User(PathBuf),
}

impl ConfigSource {
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Explicit(p) | ConfigSource::Managed(p) | ConfigSource::User(p) => p,
        }
    }
}

/// The managed policy location for this OS, where MDM tools and admins expect it.
pub fn managed_policy_path() -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        PathBuf::from("/etc/ema/policy.json")
    }
    #[cfg(target_os = "macos")]
    {
        // Configuration profiles land in managed preferences; until the plist reader exists
        // the JSON policy is read from the system Application Support folder.
        PathBuf::from("/Library/Application Support/EMA/policy.json")
    }
    #[cfg(windows)]
    {
        let base =
            std::env::var_os("ProgramData").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("EMA").join("policy.json")
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        PathBuf::from("/etc/ema/policy.json")
    }
}

/// The user's own copy of a policy (e.g. one IT sent by mail), in the OS config dir.
pub fn user_policy_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("ema").join("policy.json"))
}

/// Finds the policy to use. `explicit` is `--config` or `EMA_CONFIG` (the caller reads both).
/// Returns the candidates tried when none exists, for a helpful error.
pub fn locate_policy(explicit: Option<PathBuf>) -> Result<ConfigSource, Vec<PathBuf>> {
    if let Some(p) = explicit {
        // An explicit path is used even if missing: the load error then names it.
        return Ok(ConfigSource::Explicit(p));
    }
    let managed = managed_policy_path();
    if managed.exists() {
        return Ok(ConfigSource::Managed(managed));
    }
    let mut tried = vec![managed];
    if let Some(user) = user_policy_path() {
        if user.exists() {
            return Ok(ConfigSource::User(user));
        }
        tried.push(user);
    }
    Err(tried)
}
