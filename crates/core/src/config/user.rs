//! The user's own settings: the second, weaker layer under the managed policy.
//!
//! A small JSON file in the user's config dir (`settings.json` beside a user-saved policy).
//! What the organisation's policy sets is locked: [`Policy::apply_user_settings`] only fills
//! the keys the policy left open, so a managed setting always wins. Saving is atomic (temp
//! file, fsync, rename), so a crash never leaves a half-written file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Policy};
use crate::files::bounded_read::{BoundedReadError, read_regular_text};

/// The largest settings file we read: it holds three keys.
pub const MAX_USER_SETTINGS_BYTES: u64 = 64 * 1024;

/// The settings a user may change (each only while the policy leaves it open).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_login: Option<bool>,
}

/// `<config dir>/ema/settings.json`.
pub fn user_settings_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("ema").join("settings.json"))
}

impl UserSettings {
    /// Reads the file (a regular file of at most [`MAX_USER_SETTINGS_BYTES`]); a missing file is
    /// the defaults. A broken one is an error naming the key
    /// (the caller shows it and carries on with the defaults: nothing is overwritten).
    pub fn load(path: &Path) -> Result<UserSettings, ConfigError> {
        let text = match read_regular_text(path, MAX_USER_SETTINGS_BYTES) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(UserSettings::default()),
            Err(e) => {
                let fix = match e {
                    BoundedReadError::Io(_) => "check its permissions, or delete it to start from the defaults",
                    _ => "delete it to start from the defaults (it is a small JSON file)",
                };
                return Err(ConfigError {
                    file: path.into(),
                    key: "(file)".into(),
                    problem: e.to_string(),
                    fix: fix.into(),
                });
            }
        };
        let de = &mut serde_json::Deserializer::from_str(text.trim_start_matches('\u{feff}'));
        let settings: UserSettings = serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
            file: path.into(),
            key: e.path().to_string(),
            problem: super::redact_serde_message(&e.inner().to_string()),
            fix: "keys are expiry_warning_minutes (number), notifications and start_at_login (true/false)".into(),
        })?;
        if let Some(m) = settings.expiry_warning_minutes
            && !(1..=7 * 24 * 60).contains(&m)
        {
            return Err(ConfigError {
                file: path.into(),
                key: "expiry_warning_minutes".into(),
                problem: "must be between 1 and 10080 (a week)".into(),
                fix: "use 10".into(),
            });
        }
        Ok(settings)
    }

    /// Writes the file atomically (temp file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::files::atomic_file::write_atomically(path, text.as_bytes())
    }
}

impl Policy {
    /// The policy at `source` with the user's own settings (`user_settings_path`) applied, as
    /// every face loads it. A settings file that cannot be read never blocks the user: the
    /// policy's defaults are used, the file is kept as it is, and the warning says so (each face
    /// shows it its own way; the tray once ignored it silently while the CLI warned).
    pub fn load_with_user_settings(source: super::ConfigSource) -> Result<(Policy, Option<ConfigError>), ConfigError> {
        let mut policy = Policy::load(source)?;
        let warning = match user_settings_path().map(|p| UserSettings::load(&p)) {
            Some(Ok(user)) => {
                policy.apply_user_settings(&user);
                None
            }
            Some(Err(e)) => Some(e),
            None => None,
        };
        Ok((policy, warning))
    }

    /// Applies the user's settings to every key the policy left open.
    pub fn apply_user_settings(&mut self, user: &UserSettings) {
        let s = &mut self.settings;
        let open = |key: &str, locked: &[&str]| !locked.contains(&key);
        if let Some(m) = user.expiry_warning_minutes
            && open("expiry_warning_minutes", &s.locked)
        {
            s.expiry_warning = Duration::from_secs(m * 60);
        }
        if let Some(n) = user.notifications
            && open("notifications", &s.locked)
        {
            s.notifications = n;
        }
        if let Some(a) = user.start_at_login
            && open("start_at_login", &s.locked)
        {
            s.start_at_login = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn policy(settings: &str) -> Policy {
        let text = format!(
            r#"{{"schema_version":1,"organization":{{"name":"E"}},
               "idp":{{"issuer":"https://idp.example.com","client_id":"c","client_auth":{{"method":"none"}}}},
               "settings":{settings}}}"#
        );
        Policy::parse(&text, ConfigSource::Explicit("p.json".into())).unwrap()
    }

    #[test]
    fn the_policy_wins_and_open_keys_take_the_users_value() {
        let mut p = policy(r#"{"notifications": false}"#);
        assert_eq!(p.settings.locked, vec!["notifications"]);
        p.apply_user_settings(&UserSettings {
            expiry_warning_minutes: Some(30),
            notifications: Some(true),
            start_at_login: Some(true),
        });
        assert!(!p.settings.notifications, "locked by policy");
        assert!(p.settings.start_at_login);
        assert_eq!(p.settings.expiry_warning, Duration::from_secs(1800));
    }

    #[test]
    fn load_save_round_trip_missing_file_and_errors() {
        let dir = std::env::temp_dir().join(format!("ema-user-settings-{}", std::process::id()));
        let path = dir.join("settings.json");
        let _ = std::fs::remove_file(&path);
        assert_eq!(UserSettings::load(&path).unwrap(), UserSettings::default());
        let s = UserSettings { expiry_warning_minutes: Some(5), notifications: Some(false), start_at_login: None };
        s.save(&path).unwrap();
        assert_eq!(UserSettings::load(&path).unwrap(), s);
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("tmp")));
        std::fs::write(&path, r#"{"notifications": "yes"}"#).unwrap();
        let err = UserSettings::load(&path).unwrap_err();
        assert_eq!(err.key, "notifications");
        std::fs::write(&path, "\u{feff}{\"expiry_warning_minutes\": 0}").unwrap();
        assert_eq!(UserSettings::load(&path).unwrap_err().key, "expiry_warning_minutes");
        std::fs::write(&path, r#"{"colour": "blue"}"#).unwrap();
        assert!(UserSettings::load(&path).unwrap_err().problem.contains("colour"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
