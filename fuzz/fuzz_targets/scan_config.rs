//! The personal-account scan (`scan::scan`) reading each MCP client's configuration file as
//! the client writes it: strict JSON (Claude Desktop, Claude Code, Cursor, Windsurf, managed
//! and project files, Claude's credentials, mcp-remote's token cache) and JSONC with comments
//! and trailing commas (VS Code `mcp.json` and `settings.json`), in a real temporary home.
//!
//! Input: one byte choosing the file, then its content. Invariants: no panic; every finding
//! names a file the scan was given; a secret of the fixture list (`canaries.txt`) planted in
//! the file's values never appears in the report (JSON, as the CLI prints it).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ema_core::config::{ConfigSource, Policy};
use ema_core::personal::scan::{Catalog, CompanyIdentity, ScanLimits, ScanRoots, scan};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SLOTS: &[&str] = &[
    "home/.claude.json",
    "home/.config/Claude/claude_desktop_config.json",
    "home/.config/Code/User/mcp.json",
    "home/.config/Code/User/settings.json",
    "home/.cursor/mcp.json",
    "home/.codeium/windsurf/mcp_config.json",
    "home/.claude/.credentials.json",
    "home/.mcp-auth/mcp-remote-0.1.29/00000000000000000000000000000000_tokens.json",
    "managed/managed-mcp.json",
    "home/proj/.mcp.json",
    "home/proj/.vscode/mcp.json",
    "home/proj/.cursor/mcp.json",
];

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    roots: ScanRoots,
    catalog: Catalog,
    company: CompanyIdentity,
    canaries: Vec<&'static str>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().canonicalize().expect("canonical");
        for slot in SLOTS {
            std::fs::create_dir_all(root.join(slot).parent().expect("a parent")).expect("mkdir");
        }
        let mut roots = ScanRoots::under_home(root.join("home"));
        roots.managed_dirs = vec![root.join("managed")];
        roots.project_dirs = vec![root.join("home/proj")];
        let policy = Policy::parse(
            include_str!("../../crates/core/tests/fixtures/scan/policy.json"),
            ConfigSource::Explicit(root.join("policy.json")),
        )
        .expect("the fixture policy");
        let canaries = include_str!("../../crates/core/tests/fixtures/scan/canaries.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Setup {
            _dir: dir,
            roots,
            catalog: Catalog::from_policy(&policy),
            company: CompanyIdentity::from_policy(&policy),
            root,
            canaries,
        }
    })
}

fn keys(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                out.push_str(k);
                out.push('\n');
                // As the report's JSON writes it too (a key is shown in `key_path`): a key with a
                // control character before `f` reads `\f…` there (found by fuzzing).
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push('\n');
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&slot, content)) = data.split_first() else { return };
    let s = setup();
    let rel = SLOTS[slot as usize % SLOTS.len()];
    let file = s.root.join(rel);
    std::fs::write(&file, content).expect("write the file");
    let limits = ScanLimits { max_file_bytes: 1024 * 1024, max_files: 100 };
    let report = scan(&s.roots, &s.catalog, &s.company, &limits);
    std::fs::remove_file(&file).expect("remove the file");

    for f in &report.findings {
        assert!(Path::new(&f.path).starts_with(&s.root), "a finding outside the home: {:?}", f.path);
    }
    let shown = serde_json::to_string(&report).expect("the report serialises");
    let text = String::from_utf8_lossy(content);
    // A canary written as an object key is a name, not a secret; one in a value must not show.
    let mut names = String::new();
    if let Ok(v) = jsonc_parser::parse_to_serde_value::<Value>(&text, &Default::default()) {
        keys(&v, &mut names);
    }
    for c in &s.canaries {
        if text.contains(c) && !names.contains(c) {
            assert!(!shown.contains(c), "the report shows the planted secret {c} from {rel}");
        }
    }
});
