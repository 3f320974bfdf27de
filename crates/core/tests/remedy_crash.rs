//! Crash safety of the file writes remedies make: a process killed (SIGKILL, no clean-up)
//! while replacing a file leaves either the old content or the new one, never a mix or an
//! empty file.
//!
//! The test re-runs its own binary as the writing child (selected by an environment variable
//! read here, in the test, not in product code) and kills it: once exactly between the durable
//! temporary file and the rename, and many times at random moments of a write loop.

#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ema_core::files::atomic_file::{write_atomically, write_atomically_pausing};

const CHILD: &str = "EMA_TEST_CRASH_CHILD";

fn old_content() -> Vec<u8> {
    format!("{{\"mcpServers\": {{\"keep\": {{\"command\": \"x\"}}}}, \"pad\": \"{}\"}}\n", "o".repeat(200_000))
        .into_bytes()
}

fn new_content() -> Vec<u8> {
    format!("{{\"mcpServers\": {{}}, \"pad\": \"{}\"}}\n", "n".repeat(300_000)).into_bytes()
}

/// Runs in the child: `pause` mode stops before the rename; `loop` mode rewrites for ever.
fn child(mode: &str, path: &Path) {
    match mode {
        "pause" => write_atomically_pausing(path, &new_content(), || {
            println!("ready");
            std::thread::sleep(Duration::from_secs(120));
        })
        .unwrap(),
        _ => {
            let contents = [old_content(), new_content()];
            println!("ready");
            for i in 0.. {
                write_atomically(path, &contents[i % 2]).unwrap();
            }
        }
    }
}

fn spawn(test: &str, mode: &str, path: &Path) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{mode}:{}", path.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    while !line.contains("ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended before it was ready");
    }
    c
}

fn child_role() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD).ok()?;
    let (mode, path) = v.split_once(':')?;
    Some((mode.to_string(), PathBuf::from(path)))
}

fn kill(mut c: Child) {
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
}

#[test]
fn remedy_crash_between_write_and_rename_leaves_the_old_file() {
    if let Some((mode, path)) = child_role() {
        return child(&mode, &path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".claude.json");
    std::fs::write(&path, old_content()).unwrap();
    let c = spawn("remedy_crash_between_write_and_rename_leaves_the_old_file", "pause", &path);
    // The new content is complete and synced in a temporary file beside it at this point.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "the temporary file is beside the original: {names:?}");
    kill(c);
    assert_eq!(std::fs::read(&path).unwrap(), old_content());
    // A later write works and leaves one file (plus the dead child's temporary file, which is
    // inert: its name starts with `.ema-edit-`).
    write_atomically(&path, &new_content()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), new_content());
}

#[test]
fn remedy_crash_at_random_moments_leaves_old_or_new_never_a_mix() {
    if let Some((mode, path)) = child_role() {
        return child(&mode, &path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp.json");
    std::fs::write(&path, old_content()).unwrap();
    let (old, new) = (old_content(), new_content());
    let mut seen = [0usize; 2];
    for i in 0..20u64 {
        let c = spawn("remedy_crash_at_random_moments_leaves_old_or_new_never_a_mix", "loop", &path);
        // Spread the kills over a few write cycles (each about a millisecond).
        std::thread::sleep(Duration::from_micros(500 + (i * 7919) % 9000));
        kill(c);
        let now = std::fs::read(&path).unwrap();
        assert!(now == old || now == new, "kill {i} left {} bytes that are neither", now.len());
        seen[usize::from(now == new)] += 1;
    }
    eprintln!("after 20 kills: {} times the old content, {} times the new", seen[0], seen[1]);
}
