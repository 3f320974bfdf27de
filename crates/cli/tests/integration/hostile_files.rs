//! Issue 14, items 11 and 12, through the `ema` binary: files a user or a hostile policy names.
//!
//! - `ema setup /dev/zero` read until memory ran out and `ema setup FIFO` (or `--config FIFO`)
//!   hung for ever: both are refused at once, naming the file and what to do.
//! - A policy fetched from a URL pointed `key_file` at any absolute path: refused with the rule.
//! - `ema sandbox --write-policy FILE` wrote through a symlink at the predictable `FILE.tmp`;
//!   a symlink at FILE itself is refused, and neither link's target is touched.
//!
//! Every run is bounded ([`run_bounded`]): a regression fails with "still running" instead of
//! hanging the suite or eating the machine's memory.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ema_e2e::{output_text, temp_dir};

/// The bound on a command that used to hang or run out of memory.
const QUICKLY: Duration = Duration::from_secs(20);
/// An EC P-256 PKCS#8 private key in the repository (outside any user's config folder).
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data/test-client-key.pem");

/// `ema` with its own HOME and config dir, no `EMA_CONFIG`.
fn ema(home: &Path, args: &[&str]) -> Command {
    let mut c = Ema::bare().without("EMA_CONFIG").home(home).command();
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` and fails the test if it has not ended within `limit` (killing it).
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            kill(&mut child);
            panic!("still running after {limit:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn no_managed_policy() {
    let managed = ema_core::config::managed_policy_path();
    assert!(!managed.exists(), "this test needs a machine without a managed policy at {}", managed.display());
}

#[test]
fn setup_dev_zero_is_refused_at_once_instead_of_reading_until_out_of_memory() {
    let home = temp_dir("setup-dev-zero");
    let out = run_bounded(ema(&home, &["setup", "/dev/zero"]), QUICKLY);
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("[policy-unreadable] cannot read /dev/zero: it is a character device, not a regular file"),
        "{said}"
    );
    assert!(said.contains("save the file IT sent and choose it again"), "the fix: {said}");
}

#[test]
fn setup_fifo_is_refused_without_hanging() {
    let home = temp_dir("setup-fifo");
    let fifo = home.join("policy.json");
    mkfifo(&fifo);
    let out = run_bounded(ema(&home, &["setup", fifo.to_str().unwrap()]), QUICKLY);
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("cannot read {}: it is a named pipe (FIFO), not a regular file", fifo.display())),
        "{said}"
    );
}

#[test]
fn config_fifo_and_dev_zero_are_refused_without_hanging() {
    let home = temp_dir("config-fifo");
    let fifo = home.join("policy.json");
    mkfifo(&fifo);
    for (path, what) in [(fifo.as_path(), "a named pipe (FIFO)"), (Path::new("/dev/zero"), "a character device")] {
        let out = run_bounded(ema(&home, &["--config", path.to_str().unwrap(), "status"]), QUICKLY);
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(said.contains(&format!("{}: (file): is {what}, not a regular file", path.display())), "{said}");
        assert!(said.contains("Fix: point to the policy JSON file itself"), "{said}");
    }
}

#[test]
fn setup_oversized_file_is_refused() {
    let home = temp_dir("setup-big");
    let big = home.join("big.json");
    std::fs::write(&big, vec![b' '; 1024 * 1024 + 1]).unwrap();
    let out = run_bounded(ema(&home, &["setup", big.to_str().unwrap()]), QUICKLY);
    let said = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("[policy-too-large]"), "{said}");
    assert!(!home.join(".config/ema/policy.json").exists());
}

/// Serves `body` as JSON to every request on 127.0.0.1 until the test ends; returns its URL.
fn serve_once(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ema/policy.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

fn policy_with_key_file(key_file: &str) -> String {
    serde_json::json!({
        "schema_version": 1,
        "organization": { "name": "Acme" },
        "idp": {
            "issuer": "https://idp.acme.example",
            "client_id": "ema-desktop",
            "client_auth": { "method": "private_key_jwt", "key_file": key_file }
        }
    })
    .to_string()
}

#[test]
fn setup_from_url_with_key_file_outside_the_config_folder_is_refused() {
    no_managed_policy();
    let home = temp_dir("setup-url-key");
    let folder = home.join(".config/ema");
    for key_file in [TEST_KEY, "/etc/passwd", "../../.ssh/id_ecdsa"] {
        let url = serve_once(policy_with_key_file(key_file));
        let out = run_bounded(ema(&home, &["setup", &url]), QUICKLY);
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{key_file}: {said}");
        assert!(said.contains("[config-invalid]") && said.contains("idp.client_auth.key_file"), "{said}");
        assert!(
            said.contains(&format!("is outside the policy's folder {}: a policy loaded from a URL", folder.display())),
            "{said}"
        );
        assert!(said.contains("run `ema setup FILE`"), "{said}");
        assert!(!folder.join("policy.json").exists(), "nothing is saved");
    }
    // A key IT asked the user to save in the folder is fine.
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(TEST_KEY, folder.join("client-key.pem")).unwrap();
    let out = run_bounded(ema(&home, &["setup", &serve_once(policy_with_key_file("client-key.pem"))]), QUICKLY);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(folder.join("policy.json").exists());
}

/// Starts `ema sandbox --write-policy path`; returns once it said the policy is written (the
/// org keeps running: killed by the caller) or it ended.
fn sandbox_write_policy(home: &Path, path: &Path) -> (Child, String) {
    let mut child = ema(home, &["sandbox", "--port", "0", "--write-policy", path.to_str().unwrap()]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            said.push_str(&line);
            said.push('\n');
            if line.starts_with("Policy written") || line.starts_with("error:") {
                break;
            }
        }
        let _ = tx.send(said);
    });
    let said = rx.recv_timeout(QUICKLY).unwrap_or_else(|_| {
        kill(&mut child);
        panic!("`ema sandbox --write-policy` said nothing within {QUICKLY:?}")
    });
    (child, said)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn sandbox_write_policy_never_writes_through_a_symlink() {
    let home = temp_dir("write-policy-symlink");
    let victim: PathBuf = home.join("victim");
    std::fs::write(&victim, "precious").unwrap();

    // A symlink at FILE: refused, the link and its target untouched.
    let link = home.join("policy.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (mut child, said) = sandbox_write_policy(&home, &link);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("is a symbolic link: refusing to write secrets through it"), "{said}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    // A symlink at the temporary name the old writer used (FILE.tmp): not followed.
    let path = home.join("sandbox.json");
    std::os::unix::fs::symlink(&victim, home.join("sandbox.tmp")).unwrap();
    let (mut child, said) = sandbox_write_policy(&home, &path);
    kill(&mut child);
    assert!(said.contains("Policy written to"), "{said}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the planted link's target was overwritten");
    assert!(std::fs::read_to_string(&path).unwrap().contains("client_secret"));
    assert_eq!(mode(&path), 0o600);
}

/// A broken settings file never blocks the user (issue 15 item 4: both faces load the policy
/// through `Policy::load_with_user_settings`): the command runs on the policy's defaults, says
/// the settings are ignored and why, and leaves the file as it was.
#[test]
fn a_broken_settings_file_is_reported_and_kept_and_the_command_still_runs() {
    let home = temp_dir("broken-settings");
    let policy = home.join("policy.json");
    let text = serde_json::json!({
        "schema_version": 1,
        "organization": { "name": "Acme" },
        "idp": { "issuer": "https://idp.acme.example", "client_id": "ema-desktop", "client_auth": { "method": "none" } }
    });
    std::fs::write(&policy, text.to_string()).unwrap();
    let settings = home.join(".config/ema/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "{\"notifications\": \"loud\"}").unwrap();
    let out = run_bounded(ema(&home, &["--config", policy.to_str().unwrap(), "status", "--json"]), QUICKLY);
    let said = output_text(&out);
    assert!(said.contains("warning: your settings are ignored:"), "{said}");
    assert!(said.contains("notifications"), "the key is named: {said}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{\"notifications\": \"loud\"}", "kept as it was");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"schema_version\""), "the status was printed: {said}");
}
