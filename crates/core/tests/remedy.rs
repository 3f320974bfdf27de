//! Removing and replacing personal connections in the fixture home (`tests/fixtures/scan`), with
//! the real files, backups and journal: what changes, what must not, and undo.
//!
//! Test names start with `remedy_` so that `cargo test -p ema-core remedy` runs them.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use ema_core::personal::remedy::{Action, Remedy, RemedyError};
use ema_core::personal::scan::{Catalog, Client, CredentialClass, Finding, ScanReport, Scope, Verdict};

use common::{Fixture, canaries, policy};

fn catalog() -> Catalog {
    Catalog::from_policy(&policy())
}

fn find<'r>(fx: &Fixture, report: &'r ScanReport, rel: &str, key_path: &str) -> &'r Finding {
    report
        .findings
        .iter()
        .find(|f| fx.rel(f) == rel && f.key_path == key_path)
        .unwrap_or_else(|| panic!("no finding at {rel} {key_path}"))
}

fn remedy(fx: &Fixture) -> Remedy {
    Remedy::new(fx.root.join("state")).with_helper_program("ema")
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap();
    jsonc_parser::parse_to_serde_value(&text, &Default::default()).unwrap()
}

#[test]
fn remedy_replaces_a_claude_code_entry_keeps_the_rest_and_undo_restores_every_byte() {
    let fx = Fixture::new();
    let report = fx.scan();
    let f = find(&fx, &report, "home/.claude.json", "/mcpServers/supabase");
    assert_eq!(f.verdict, Verdict::Flagged);
    let path = fx.home().join(".claude.json");
    let before_bytes = fs::read(&path).unwrap();
    let before = json(&path);

    let change = remedy(&fx).apply(f, Action::Replace, &catalog()).unwrap();

    let after = json(&path);
    assert_eq!(
        after["mcpServers"]["supabase"],
        serde_json::json!({"type": "http", "url": "https://mcp.supabase.com/mcp", "headersHelper": "ema headers supabase"})
    );
    let mut expected = before.clone();
    expected["mcpServers"]["supabase"] = after["mcpServers"]["supabase"].clone();
    assert_eq!(after, expected, "only the one entry changed");
    // The entry keeps its place among the others.
    let text = fs::read_to_string(&path).unwrap();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(pos("linear") < pos("supabase") && pos("supabase") < pos("asana"));
    assert_eq!(fs::read(&change.backup).unwrap(), before_bytes);

    // A rescan sees the company connection.
    let rescan = fx.scan();
    let now = find(&fx, &rescan, "home/.claude.json", "/mcpServers/supabase");
    assert_eq!((now.verdict, now.class.code()), (Verdict::Ok, "managed"));

    let undone = remedy(&fx).undo_last().unwrap();
    assert_eq!(undone.seq, change.seq);
    assert!(undone.undone);
    assert_eq!(fs::read(&path).unwrap(), before_bytes);
    assert!(matches!(remedy(&fx).undo_last(), Err(RemedyError::NothingToUndo)));
}

#[test]
fn remedy_edits_vs_code_jsonc_keeping_its_comments_and_trailing_commas() {
    let fx = Fixture::new();
    let report = fx.scan();
    let f = find(&fx, &report, "home/.config/Code/User/mcp.json", "/servers/supabase");
    let path = fx.home().join(".config/Code/User/mcp.json");
    remedy(&fx).apply(f, Action::Replace, &catalog()).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    for kept in ["// VS Code user MCP servers", "/* The compliant form", "// A personal token typed", "\"inputs\""] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
    assert_eq!(
        json(&path)["servers"]["supabase"],
        serde_json::json!({"type": "http", "url": "https://mcp.supabase.com/mcp", "oauth": {"enterpriseManaged": true}})
    );
    let rescan = fx.scan();
    assert_eq!(find(&fx, &rescan, "home/.config/Code/User/mcp.json", "/servers/supabase").verdict, Verdict::Ok);
}

#[test]
fn remedy_removes_a_local_scope_entry_whose_key_holds_slashes() {
    let fx = Fixture::new();
    let report = fx.scan();
    let project = fx.home().join("src/alpha").to_string_lossy().replace('~', "~0").replace('/', "~1");
    let key = format!("/projects/{project}/mcpServers/jira");
    let f = find(&fx, &report, "home/.claude.json", &key);
    remedy(&fx).apply(f, Action::Remove, &catalog()).unwrap();
    let after = json(&fx.home().join(".claude.json"));
    let alpha = &after["projects"][fx.home().join("src/alpha").to_string_lossy().as_ref()];
    assert_eq!(alpha["mcpServers"], serde_json::json!({}));
    assert_eq!(alpha["allowedTools"], serde_json::json!([]), "the project's other keys stay");
    assert_eq!(after["mcpServers"].as_object().unwrap().len(), 3, "user-scope servers untouched");
}

#[test]
fn remedy_refuses_a_file_changed_since_the_scan_and_writes_nothing() {
    let fx = Fixture::new();
    let report = fx.scan();
    let f = find(&fx, &report, "home/.claude.json", "/mcpServers/supabase");
    let path = fx.home().join(".claude.json");
    let changed = fs::read_to_string(&path).unwrap().replace("\"numStartups\": 12", "\"numStartups\": 13");
    fs::write(&path, &changed).unwrap();
    let err = remedy(&fx).apply(f, Action::Remove, &catalog()).unwrap_err();
    assert!(matches!(err, RemedyError::FileChanged { .. }), "{err}");
    assert!(err.to_string().contains("scan again"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), changed);
    assert!(remedy(&fx).history().unwrap().is_empty(), "nothing journaled");
}

#[test]
fn remedy_undo_refuses_to_overwrite_a_file_changed_after_the_edit() {
    let fx = Fixture::new();
    let report = fx.scan();
    let f = find(&fx, &report, "home/.claude.json", "/mcpServers/asana");
    let path = fx.home().join(".claude.json");
    let change = remedy(&fx).apply(f, Action::Remove, &catalog()).unwrap();
    let later = fs::read_to_string(&path).unwrap().replace("\"numStartups\": 12", "\"numStartups\": 14");
    fs::write(&path, &later).unwrap();
    let err = remedy(&fx).undo_last().unwrap_err();
    assert!(matches!(err, RemedyError::ChangedSinceEdit { .. }), "{err}");
    assert!(err.to_string().contains(&change.backup.display().to_string()), "names the backup: {err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), later, "Claude Code's newer state is kept");
}

#[test]
fn remedy_deletes_an_mcp_remote_token_cache_and_undo_brings_it_back() {
    let fx = Fixture::new();
    let report = fx.scan();
    let f = report
        .findings
        .iter()
        .find(|f| f.client == Client::McpRemote && f.verdict == Verdict::Flagged)
        .expect("the fixture's personal mcp-remote grant");
    let before = fs::read(&f.path).unwrap();
    remedy(&fx).apply(f, Action::Remove, &catalog()).unwrap();
    assert!(!f.path.exists());
    let err = remedy(&fx).apply(f, Action::Replace, &catalog()).unwrap_err();
    assert!(matches!(err, RemedyError::NotApplicable(_)), "{err}");
    remedy(&fx).undo_last().unwrap();
    assert_eq!(fs::read(&f.path).unwrap(), before);
}

#[test]
fn remedy_says_what_it_cannot_do_and_why() {
    let fx = Fixture::new();
    let report = fx.scan();
    let r = remedy(&fx);
    // Claude Desktop has no managed form EMA can write: removal only, and how to add it back.
    let desktop = find(&fx, &report, "home/.config/Claude/claude_desktop_config.json", "/mcpServers/linear");
    let err = r.apply(desktop, Action::Replace, &catalog()).unwrap_err();
    assert!(matches!(err, RemedyError::ReplaceUnsupported { client: "Claude Desktop", .. }), "{err}");
    assert!(err.to_string().contains("connector settings"), "{err}");
    // IT's managed file is IT's.
    let managed = report.findings.iter().find(|f| f.scope == Scope::Managed).unwrap();
    assert!(r.apply(managed, Action::Remove, &catalog()).unwrap_err().to_string().contains("IT"));
    // A file that could not be read is not edited.
    let broken = report.findings.iter().find(|f| matches!(f.class, CredentialClass::CouldNotRead { .. })).unwrap();
    assert!(matches!(r.apply(broken, Action::Remove, &catalog()), Err(RemedyError::NotApplicable(_))));
    assert!(r.history().unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn remedy_backups_are_owner_only_and_the_journal_holds_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let report = fx.scan();
    let r = remedy(&fx);
    // One change at a time, each after a fresh scan: a second edit of a file with the first
    // scan's digest is refused (see the test above).
    let mut changed = 0;
    loop {
        let now = fx.scan();
        let Some(f) = now.flagged().find(|f| r.plan(f, Action::Remove, &catalog()).is_ok()) else { break };
        r.apply(f, Action::Remove, &catalog()).unwrap();
        changed += 1;
    }
    assert!(changed >= 5, "the fixture's flagged entries were removed ({changed})");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fx.root.join("state")), 0o700);
    for c in r.history().unwrap() {
        assert_eq!(mode(&c.backup), 0o600, "{}", c.backup.display());
    }
    let journal = fs::read_to_string(fx.root.join("state/journal.json")).unwrap();
    for canary in canaries() {
        assert!(!journal.contains(&canary), "canary {canary} in the journal");
    }
    // No flagged entry is left, and every change undoes in turn.
    assert_eq!(fx.scan().flagged().count(), 0);
    for _ in 0..changed {
        r.undo_last().unwrap();
    }
    assert_eq!(fx.scan().flagged().count(), report.flagged().count());
}
