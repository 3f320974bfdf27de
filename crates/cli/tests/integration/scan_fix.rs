//! `ema scan` and `ema fix` through the binary on the scan fixtures, without an org: the
//! fixture policy (`crates/core/tests/fixtures/scan/policy.json`) and a temporary home.
//!
//! - A `headersHelper` that prints a literal token (`echo '{"Authorization": "Bearer ..."}'`,
//!   `printf`, a here-document, `TOKEN=... cmd`) is a personal static token: flagged, with the
//!   token's fingerprint, and the token itself appears in no output. A helper that runs
//!   `ema headers` or reads its token from a keychain is not a literal token.
//! - `ema fix ID` acts only on the credential the user saw: an id from a scan taken before the
//!   credential changed is refused with "scan again", and the file is left byte for byte.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use std::path::{Path, PathBuf};
use std::process::Output;

use ema_core::secret::Fingerprint;
use ema_e2e::{output_text, temp_dir};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/fixtures/scan");

/// Runs `ema` with the fixture policy and `home` as the user's home (and working directory).
fn ema(home: &Path, args: &[&str]) -> Output {
    Ema::bare().home(home).env("EMA_CONFIG", Path::new(FIXTURES).join("policy.json")).env("EMA_LOG", "trace").run(args)
}

/// A home whose `~/.claude.json` is the fixture `rel` (`@HOME@` replaced by the home's path).
fn home_with_claude_json(tag: &str, rel: &str) -> PathBuf {
    let home = temp_dir(tag);
    let text = std::fs::read_to_string(Path::new(FIXTURES).join(rel)).unwrap();
    std::fs::write(home.join(".claude.json"), text.replace("@HOME@", &home.to_string_lossy())).unwrap();
    home
}

fn canaries(rel: &str) -> Vec<String> {
    std::fs::read_to_string(Path::new(FIXTURES).join(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn scan_json(home: &Path, outputs: &mut String) -> Vec<Value> {
    let scan = ema(home, &["scan", "--json"]);
    outputs.push_str(&output_text(&scan));
    let report: Value = serde_json::from_slice(&scan.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&scan)));
    report["findings"].as_array().unwrap().clone()
}

fn entry<'f>(findings: &'f [Value], name: &str) -> &'f Value {
    findings
        .iter()
        .find(|f| f["key_path"] == format!("/mcpServers/{name}"))
        .unwrap_or_else(|| panic!("no finding for {name}: {findings:#?}"))
}

#[test]
fn scan_flags_a_literal_token_in_a_headers_helper_with_its_fingerprint_and_never_prints_it() {
    let home = home_with_claude_json("scan-helper", "helpers/claude.json");
    let mut outputs = String::new();
    let findings = scan_json(&home, &mut outputs);

    for (name, token) in [
        ("linear-echo", "lin_api_CANARYhelperecho0101"),
        ("supabase-printf", "CANARYhelperprintf0102"),
        ("atlassian-heredoc", "CANARYhelperheredoc0103"),
        ("asana-env", "CANARYhelperenv0104"),
    ] {
        let f = entry(&findings, name);
        assert_eq!(f["verdict"], "flagged", "{name}: {f:#}");
        assert_eq!(f["class"]["kind"], "static_token", "{name}: {f:#}");
        assert_eq!(f["class"]["location"], "helper", "{name}: {f:#}");
        assert_eq!(f["class"]["value_in_file"], true, "{name}: {f:#}");
        assert_eq!(f["fingerprint"], Fingerprint::of(token).as_str(), "{name}: the token's fingerprint");
    }
    // The company app's helper is managed; helpers that fetch their token when they run are
    // opaque (a person should look), not a literal token.
    let managed = entry(&findings, "linear");
    assert_eq!((&managed["verdict"], &managed["class"]["kind"]), (&"ok".into(), &"managed".into()), "{managed:#}");
    for name in ["linear-keychain", "supabase-vault", "asana-env-ref"] {
        let f = entry(&findings, name);
        assert_eq!(f["verdict"], "review", "{name}: {f:#}");
        assert_eq!(f["class"]["kind"], "opaque_helper", "{name}: {f:#}");
        assert!(f["fingerprint"].is_null(), "{name}: {f:#}");
    }

    // The human output, with the ok findings too.
    let human = ema(&home, &["scan", "--all"]);
    assert_eq!(human.status.code(), Some(1), "flagged findings make the exit status 1: {}", output_text(&human));
    outputs.push_str(&output_text(&human));
    assert!(output_text(&human).contains("headersHelper command"), "{}", output_text(&human));

    for canary in canaries("helpers/canaries.txt") {
        assert!(!outputs.contains(&canary), "planted secret {canary} appeared in ema's output");
    }
}

#[test]
fn fix_refuses_an_id_whose_credential_changed_since_the_scan_and_leaves_the_file_alone() {
    let home = home_with_claude_json("fix-changed", "home/.claude.json");
    let claude_json = home.join(".claude.json");
    let mut outputs = String::new();

    // The user runs `ema scan` and picks the flagged Supabase entry...
    let findings = scan_json(&home, &mut outputs);
    let old = entry(&findings, "supabase").clone();
    assert_eq!(old["verdict"], "flagged", "{old:#}");
    let old_id = old["id"].as_str().unwrap().to_string();
    // ... and the id stays the same on a rescan of the unchanged file.
    assert_eq!(entry(&scan_json(&home, &mut outputs), "supabase")["id"], old_id.as_str());

    // Meanwhile the entry's token is replaced by another one.
    let text = std::fs::read_to_string(&claude_json).unwrap();
    assert!(text.contains("sbp_CANARYcode0003"));
    std::fs::write(&claude_json, text.replace("sbp_CANARYcode0003", "sbp_CANARYchanged0201")).unwrap();
    let changed = std::fs::read(&claude_json).unwrap();

    // `ema fix OLD_ID --remove` refuses, says to scan again, and writes nothing.
    let fix = ema(&home, &["fix", &old_id, "--remove"]);
    outputs.push_str(&output_text(&fix));
    assert!(!fix.status.success(), "a fix on a changed credential must be refused: {}", output_text(&fix));
    assert!(output_text(&fix).contains("changed since it was scanned; scan again"), "{}", output_text(&fix));
    assert_eq!(std::fs::read(&claude_json).unwrap(), changed, "the file is byte-identical");
    assert!(!home.join(".local/share/ema/remediation/journal.json").exists(), "nothing journaled");

    // After a new scan, the new id (same entry, another credential) works.
    let new = entry(&scan_json(&home, &mut outputs), "supabase").clone();
    let new_id = new["id"].as_str().unwrap();
    assert_ne!(new_id, old_id, "the id names the credential");
    assert_eq!(new_id.split('-').next(), old_id.split('-').next(), "and the same entry");
    let fix = ema(&home, &["fix", new_id, "--remove"]);
    outputs.push_str(&output_text(&fix));
    assert!(fix.status.success(), "{}", output_text(&fix));
    let after: Value = serde_json::from_slice(&std::fs::read(&claude_json).unwrap()).unwrap();
    assert!(after["mcpServers"].get("supabase").is_none(), "{after:#}");

    for canary in ["sbp_CANARYcode0003", "sbp_CANARYchanged0201"] {
        assert!(!outputs.contains(canary), "planted secret {canary} appeared in ema's output");
    }
}

#[test]
fn fix_with_an_id_from_an_unchanged_scan_removes_the_entry() {
    let home = home_with_claude_json("fix-unchanged", "home/.claude.json");
    let claude_json = home.join(".claude.json");
    let mut outputs = String::new();
    let id = entry(&scan_json(&home, &mut outputs), "supabase")["id"].as_str().unwrap().to_string();
    // Another entry of the same file changes: the finding's own credential does not.
    let text = std::fs::read_to_string(&claude_json).unwrap();
    std::fs::write(&claude_json, text.replace("\"numStartups\": 12", "\"numStartups\": 13")).unwrap();
    let fix = ema(&home, &["fix", &id, "--remove"]);
    outputs.push_str(&output_text(&fix));
    assert!(fix.status.success(), "{}", output_text(&fix));
    let after: Value = serde_json::from_slice(&std::fs::read(&claude_json).unwrap()).unwrap();
    assert!(after["mcpServers"].get("supabase").is_none(), "{after:#}");
    assert_eq!(after["numStartups"], 13);
    assert!(!outputs.contains("sbp_CANARYcode0003"));
}
