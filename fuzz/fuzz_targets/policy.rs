//! Policy parsing and validation (`config::Policy::parse`): any text as a policy file.
//!
//! Invariants: no panic; a client secret of the input (12+ characters, written once) never
//! appears in an error message nor in the `Debug` of a valid policy; a valid policy's
//! identifiers are what its connectors look up by.
//!
//! `key_file` paths under /dev, /proc and /sys are skipped: a device or FIFO there hangs the
//! reader (issue 14 item 11, fixed in `config/` separately), which would stall the run rather
//! than report it. Relative key files resolve to a temporary directory holding a real key.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ema_core::config::{ConfigSource, Policy};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn policy_path() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(d.path().join("key.pem"), include_str!("../../crates/core/tests/data/test-client-key.pem"))
            .expect("write the key");
        d
    });
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| dir.path().join("policy.json"))
}

fn secrets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "client_secret"
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                secrets(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| secrets(x, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let mut planted = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')) {
        secrets(&v, &mut planted);
    }
    planted.retain(|s| s.len() >= 12 && text.matches(s.as_str()).count() == 1);
    match Policy::parse(text, ConfigSource::Explicit(policy_path().clone())) {
        Ok(p) => {
            let shown = format!("{p:?}");
            for s in &planted {
                assert!(!shown.contains(s.as_str()), "Debug of a policy shows a client secret");
            }
            for c in &p.connectors {
                assert!(p.connector(&c.id).is_some());
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            for s in &planted {
                assert!(!shown.contains(s.as_str()), "a policy error shows a client secret: {shown}");
            }
        }
    }
});
