//! The user's settings file (`config::UserSettings`) and how it is layered under the policy.
//!
//! Input: `settings.json text \n--\n the policy's "settings" object`. Invariants: no panic; a
//! file that loads saves and loads back to the same settings; applying user settings never
//! changes a key the policy locked.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ema_core::config::{ConfigSource, Policy, UserSettings};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory")).path().to_path_buf())
}

fuzz_target!(|data: &[u8]| {
    let parts = ema_fuzz::split(data, 2);
    let file = dir().join("settings.json");
    std::fs::write(&file, parts[0]).expect("write the settings file");
    let loaded = UserSettings::load(&file);
    let Ok(user) = loaded else { return };
    let copy = dir().join("saved.json");
    user.save(&copy).expect("save");
    assert_eq!(UserSettings::load(&copy).expect("reload what was saved"), user);

    let Ok(settings) = std::str::from_utf8(parts[1]) else { return };
    let text = format!(
        r#"{{"schema_version":1,"organization":{{"name":"E"}},
           "idp":{{"issuer":"https://idp.example.com","client_id":"c","client_auth":{{"method":"none"}}}},
           "settings":{settings}}}"#
    );
    let Ok(mut policy) = Policy::parse(&text, ConfigSource::Explicit(dir().join("policy.json"))) else { return };
    let before = policy.settings.clone();
    policy.apply_user_settings(&user);
    let after = &policy.settings;
    let locked = |k: &str| before.locked.contains(&k);
    if locked("expiry_warning_minutes") {
        assert_eq!(after.expiry_warning, before.expiry_warning, "a locked key changed");
    }
    if locked("notifications") {
        assert_eq!(after.notifications, before.notifications, "a locked key changed");
    }
    if locked("start_at_login") {
        assert_eq!(after.start_at_login, before.start_at_login, "a locked key changed");
    }
    assert_eq!(after.locked, before.locked);
    assert_eq!(after.max_parallel_connectors, before.max_parallel_connectors);
});
