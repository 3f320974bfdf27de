//! How long a personal-account scan takes on a realistic home: the fixture home of
//! `tests/fixtures/scan` plus a `~/.claude.json` listing 300 projects (each with a local-scope
//! entry; every third with its own `.mcp.json`, every fifth with a `.cursor/mcp.json`).
//!
//! Plain std timing (no criterion in the workspace): 5 warm-up runs, 31 measured runs, the
//! median printed. Run with `cargo bench -p ema-core --bench scan`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use ema_core::config::{ConfigSource, Policy};
use ema_core::personal::scan::{Catalog, CompanyIdentity, ScanLimits, ScanRoots, scan};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scan");
const PROJECTS: usize = 300;

fn copy_tree(from: &Path, to: &Path, home: &str) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target, home);
        } else {
            let text = fs::read_to_string(entry.path()).expect("read fixture");
            fs::write(&target, text.replace("@HOME@", home)).expect("write fixture");
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let home_str = home.to_string_lossy().replace('\\', "/");
    copy_tree(&Path::new(FIXTURES).join("home"), &home, &home_str);

    let claude_json = home.join(".claude.json");
    let mut doc: Value = serde_json::from_str(&fs::read_to_string(&claude_json).expect("read")).expect("json");
    let projects = doc["projects"].as_object_mut().expect("projects");
    for i in 0..PROJECTS {
        let p = home.join("work").join(format!("repo-{i:03}"));
        fs::create_dir_all(&p).expect("project dir");
        let entry = if i % 2 == 0 {
            json!({"type": "http", "url": "https://mcp.linear.app/mcp", "headersHelper": "ema headers linear"})
        } else {
            json!({"command": "npx", "args": ["-y", "@supabase/mcp-server-supabase@latest", "--access-token", format!("sbp_bench{i:040}")]})
        };
        projects.insert(
            p.to_string_lossy().into_owned(),
            json!({"allowedTools": ["Bash(git status)"], "history": [{"display": "fix the build"}], "mcpServers": {format!("srv-{i}"): entry}}),
        );
        if i % 3 == 0 {
            let mcp = json!({"mcpServers": {"canva": {"type": "http", "url": "https://mcp.canva.com/mcp"}}});
            fs::write(p.join(".mcp.json"), mcp.to_string()).expect("write .mcp.json");
        }
        if i % 5 == 0 {
            fs::create_dir_all(p.join(".cursor")).expect("cursor dir");
            let mcp = json!({"mcpServers": {"figma": {"command": "npx", "args": ["figma-developer-mcp"], "env": {"FIGMA_API_KEY": "figd_bench0000000"}}}});
            fs::write(p.join(".cursor").join("mcp.json"), mcp.to_string()).expect("write cursor mcp.json");
        }
    }
    fs::write(&claude_json, serde_json::to_string_pretty(&doc).expect("json")).expect("write .claude.json");

    let policy = Policy::load(ConfigSource::Explicit(Path::new(FIXTURES).join("policy.json"))).expect("policy");
    let catalog = Catalog::from_policy(&policy);
    let company = CompanyIdentity::from_policy(&policy);
    let roots = ScanRoots::under_home(&home);
    let limits = ScanLimits::default();

    for _ in 0..5 {
        std::hint::black_box(scan(&roots, &catalog, &company, &limits));
    }
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..31 {
        let t = Instant::now();
        let report = scan(&roots, &catalog, &company, &limits);
        times.push(t.elapsed());
        last = Some(report);
    }
    times.sort();
    let report = last.expect("at least one run");
    println!(
        "scan: median {:?} (min {:?}, max {:?}) over {} runs; {} files read, {} entries, {} findings ({} flagged)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len(),
        report.files_read,
        report.entries_seen,
        report.findings.len(),
        report.flagged().count()
    );
}
