//! Regressions of issue 14 item 11: a policy file, its `key_file` or the user's settings that
//! name a device, a FIFO or a huge file is refused at once with the file and the fix (it used to
//! read `/dev/zero` until memory ran out, and block for ever on a FIFO); a policy fetched from a
//! URL may not point `key_file` out of its folder.
//!
//! Every read that could hang runs under [`within`], so a regression fails instead of hanging.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::import::{install, key_files_for};
use super::*;
use crate::files::bounded_read::tests::within;

/// An EC P-256 PKCS#8 private key that exists in the repository.
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
/// The bound on a read that used to hang or run out of memory.
const QUICKLY: Duration = Duration::from_secs(10);

fn policy_with_idp_key_file(key_file: &str) -> Value {
    json!({
        "schema_version": 1,
        "organization": { "name": "Acme" },
        "idp": {
            "issuer": "https://idp.acme.example",
            "client_id": "ema-desktop",
            "client_auth": { "method": "private_key_jwt", "key_file": key_file }
        }
    })
}

fn write_policy(dir: &Path, key_file: &str) -> PathBuf {
    let path = dir.join("policy.json");
    std::fs::write(&path, policy_with_idp_key_file(key_file).to_string()).unwrap();
    path
}

fn load_within(path: PathBuf) -> Result<Policy, ConfigError> {
    within(QUICKLY, move || Policy::load(ConfigSource::Explicit(path)))
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn key_file_dev_zero_is_refused_at_once_not_read_until_memory_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "/dev/zero");
    let err = load_within(policy.clone()).unwrap_err();
    assert_eq!(err.file, policy);
    assert_eq!(err.key, "idp.client_auth.key_file");
    assert_eq!(err.problem, "/dev/zero is a character device, not a regular file");
    assert_eq!(err.fix, "point key_file to the PEM private key file itself");
}

#[cfg(unix)]
#[test]
fn key_file_fifo_without_a_writer_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("key.pem");
    mkfifo(&fifo);
    let policy = write_policy(dir.path(), "key.pem");
    let err = load_within(policy).unwrap_err();
    assert_eq!(err.key, "idp.client_auth.key_file");
    assert_eq!(err.problem, format!("{} is a named pipe (FIFO), not a regular file", fifo.display()));
}

#[cfg(unix)]
#[test]
fn policy_file_that_is_a_fifo_or_a_device_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.json");
    mkfifo(&fifo);
    let err = load_within(fifo.clone()).unwrap_err();
    assert_eq!((err.file.as_path(), err.key.as_str()), (fifo.as_path(), "(file)"));
    assert_eq!(err.problem, "is a named pipe (FIFO), not a regular file");
    assert_eq!(err.fix, "point to the policy JSON file itself");
    let err = load_within(PathBuf::from("/dev/zero")).unwrap_err();
    assert_eq!(err.problem, "is a character device, not a regular file");
}

#[cfg(unix)]
#[test]
fn user_settings_that_are_a_fifo_or_a_device_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("settings.json");
    mkfifo(&fifo);
    let err = within(QUICKLY, move || UserSettings::load(&fifo)).unwrap_err();
    assert_eq!(err.problem, "is a named pipe (FIFO), not a regular file");
    let err = within(QUICKLY, || UserSettings::load(Path::new("/dev/zero"))).unwrap_err();
    assert_eq!(err.problem, "is a character device, not a regular file");
    assert_eq!(err.fix, "delete it to start from the defaults (it is a small JSON file)");
}

#[test]
fn oversized_user_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    std::fs::write(&path, vec![b' '; usize::try_from(user::MAX_USER_SETTINGS_BYTES).unwrap() + 1]).unwrap();
    let err = UserSettings::load(&path).unwrap_err();
    assert_eq!(err.problem, "is 65537 bytes, more than the 65536-byte limit");
}

/// `ema setup https://...`: the policy as the URL sent it, validated against the user's folder.
fn install_from_url(policy: &Value, dir: &Path) -> Result<Policy, super::import::ImportError> {
    let dest = dir.join("config/ema/policy.json");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    install(
        &policy.to_string(),
        key_files_for("https://it.acme.example/ema/policy.json"),
        &dest,
        &dir.join("managed.json"),
    )
}

#[test]
fn url_imported_policy_pointing_key_file_at_an_absolute_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("config/ema");
    // A readable, valid key outside the folder: a file-imported policy may use it, a URL one may not.
    for key_file in [TEST_KEY, "/etc/passwd", "/dev/zero", "../../key.pem", "sub/../../key.pem"] {
        let err = install_from_url(&policy_with_idp_key_file(key_file), dir.path()).unwrap_err();
        assert_eq!(err.code(), "config-invalid", "{key_file}: {err}");
        let shown = err.to_string();
        assert!(shown.contains("idp.client_auth.key_file"), "{shown}");
        assert!(
            shown.contains(&format!(
                "is outside the policy's folder {}: a policy loaded from a URL may only name a key file inside it",
                folder.display()
            )),
            "{shown}"
        );
        assert!(shown.contains("ema setup FILE"), "the fix names the way that allows it: {shown}");
        assert!(!folder.join("policy.json").exists(), "nothing is saved: {key_file}");
    }
    // The same policy from a file the user chose is accepted.
    let dest = folder.join("policy.json");
    install(
        &policy_with_idp_key_file(TEST_KEY).to_string(),
        key_files_for("/tmp/sent.json"),
        &dest,
        &dir.path().join("m"),
    )
    .unwrap();
}

#[test]
fn url_imported_policy_may_name_a_key_file_inside_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("config/ema");
    std::fs::create_dir_all(folder.join("keys")).unwrap();
    std::fs::copy(TEST_KEY, folder.join("keys/client-key.pem")).unwrap();
    let policy = install_from_url(&policy_with_idp_key_file("keys/client-key.pem"), dir.path()).unwrap();
    assert_eq!(policy.idp.client_auth.method_name(), "private_key_jwt");
}

#[cfg(unix)]
#[test]
fn url_imported_policy_may_not_leave_its_folder_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("config/ema");
    std::fs::create_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(TEST_KEY, folder.join("client-key.pem")).unwrap();
    let err = install_from_url(&policy_with_idp_key_file("client-key.pem"), dir.path()).unwrap_err();
    assert!(err.to_string().contains("is outside the policy's folder"), "{err}");
}
