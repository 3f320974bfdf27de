//! `ema scan`, `ema fix`, `ema undo` and the personal-connection part of `ema status`: the
//! command-line face of [`ema_core::personal::scan`] and [`ema_core::personal::remedy`].
//!
//! Habits: findings carry a short id (`ema fix 1a2b3c4d --replace`), every flagged finding says
//! what to do, nothing is changed without an explicit `ema fix`, and `--json` prints the same
//! data for scripts. Exit status 1 when a personal connection is flagged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use ema_core::config::Policy;
use ema_core::personal::remedy::{self, Action, Change, Remedy};
use ema_core::personal::scan::{Catalog, CompanyIdentity, Finding, ScanLimits, ScanReport, ScanRoots, Verdict};

/// Version of the JSON that `ema scan --json` prints.
const SCAN_JSON_VERSION: u32 = 1;

/// Scans this user's clients, plus `projects` and the current directory as project directories.
pub fn scan_now(policy: &Policy, projects: &[PathBuf]) -> Result<ScanReport> {
    let mut roots = ScanRoots::for_current_user().ok_or_else(|| anyhow!("cannot tell your home directory"))?;
    roots.project_dirs.extend(projects.iter().cloned());
    if let Ok(cwd) = std::env::current_dir() {
        roots.project_dirs.push(cwd);
    }
    Ok(ema_core::personal::scan::scan(
        &roots,
        &Catalog::from_policy(policy),
        &CompanyIdentity::from_policy(policy),
        &ScanLimits::default(),
    ))
}

/// `ema scan`.
pub fn print_scan(report: &ScanReport, catalog: &Catalog, all: bool, json: bool) -> bool {
    if json {
        let mut value = serde_json::to_value(report).expect("a scan report serialises");
        value["version"] = SCAN_JSON_VERSION.into();
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON serialises"));
    } else {
        print!("{}", scan_text(report, catalog, all));
    }
    report.flagged().next().is_some()
}

fn scan_text(report: &ScanReport, catalog: &Catalog, all: bool) -> String {
    let remedy = Remedy::new("");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Personal-account connections ({} files, {} entries, {} ms)",
        report.files_read,
        report.entries_seen,
        report.duration.as_millis()
    );
    let shown: Vec<&Finding> = report.findings.iter().filter(|f| all || f.verdict != Verdict::Ok).collect();
    if shown.is_empty() {
        let _ = writeln!(out, "  ✓ No personal connection to a company connector that must go through the IdP");
    }
    for f in shown {
        out.push_str(&finding_text(f, catalog, remedy.options(f, catalog)));
    }
    if report.file_limit_reached {
        let _ = writeln!(out, "  ! The scan stopped at its file limit; some files were not checked");
    }
    out
}

fn finding_text(f: &Finding, catalog: &Catalog, options: (bool, bool)) -> String {
    let mark = match f.verdict {
        Verdict::Flagged => "X",
        Verdict::Review => "!",
        Verdict::Ok => "✓",
    };
    let connector = f.connector.as_deref().and_then(|id| catalog.connectors().iter().find(|c| c.id == id));
    let what = connector.map(|c| c.display_name.as_str()).or(f.server_name.as_deref()).unwrap_or("A file");
    let at = if f.key_path.is_empty() { String::new() } else { format!(", {}", f.key_path) };
    let mut out = format!(
        "  {mark} [{}] {what} in {} ({}{at})\n    {}\n    - {}\n",
        f.id,
        remedy::client_name(f.client),
        tilde(&f.path),
        f.why,
        f.what_to_do
    );
    let (remove, replace) = options;
    if f.verdict != Verdict::Ok && f.file_sha256.is_some() {
        if replace {
            let _ = writeln!(out, "    - `ema fix {} --replace` switches it to the company connection", f.id);
        }
        if remove {
            let _ = writeln!(out, "    - `ema fix {} --remove` removes it", f.id);
        }
        if remove || replace {
            let _ = writeln!(out, "      (a backup is kept; `ema undo` restores the file)");
        }
    }
    out
}

/// `~/...` for paths under the home directory.
pub fn tilde(path: &Path) -> String {
    match dirs_home().and_then(|h| path.strip_prefix(h).ok().map(Path::to_path_buf)) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The personal-connection lines of `ema status`: only what needs the user.
pub fn status_section(report: &ScanReport, catalog: &Catalog) -> String {
    let remedy = Remedy::new("");
    let flagged = report.flagged().count();
    let review = report.findings.iter().filter(|f| f.verdict == Verdict::Review).count();
    let mut out = String::from("\nPersonal-account connections\n");
    if flagged == 0 && review == 0 {
        out.push_str("  ✓ None found for connectors that must go through the IdP\n");
        return out;
    }
    for f in report.findings.iter().filter(|f| f.verdict != Verdict::Ok) {
        out.push_str(&finding_text(f, catalog, remedy.options(f, catalog)));
    }
    out
}

/// The `personal_connections` object of `ema status --json`.
pub fn status_json(report: &ScanReport) -> serde_json::Value {
    let needing: Vec<&Finding> = report.findings.iter().filter(|f| f.verdict != Verdict::Ok).collect();
    serde_json::json!({
        "flagged": report.flagged().count(),
        "review": needing.len() - report.flagged().count(),
        "findings": needing,
    })
}

/// `ema fix ID --remove|--replace`: a fresh scan, then the change.
pub fn fix(policy: &Policy, id: &str, action: Action, projects: &[PathBuf], json: bool) -> Result<()> {
    let change = apply_in(policy, id, action, projects)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&change).expect("a change serialises"));
    } else {
        println!("{}", change_text(&change, false));
        println!("The file before the change is in {}. Run `ema undo` to restore it.", change.backup.display());
    }
    Ok(())
}

/// Applies `action` to the finding `id` of a fresh scan of this user's files.
pub fn apply(policy: &Policy, id: &str, action: Action) -> Result<Change> {
    apply_in(policy, id, action, &[])
}

fn apply_in(policy: &Policy, id: &str, action: Action, projects: &[PathBuf]) -> Result<Change> {
    let report = scan_now(policy, projects)?;
    let finding = remedy::finding_for(&report, id)?;
    Ok(remedy()?.apply(finding, action, &Catalog::from_policy(policy))?)
}

/// `ema undo`.
pub fn undo(json: bool) -> Result<()> {
    let change = remedy()?.undo_last()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&change).expect("a change serialises"));
    } else {
        println!("{}", change_text(&change, true));
    }
    Ok(())
}

pub fn change_text(c: &Change, undone: bool) -> String {
    let name = c.server_name.as_deref().or(c.connector.as_deref()).unwrap_or("the entry");
    let file = tilde(&c.path);
    match (c.action, undone) {
        (Action::Remove, false) if c.key_path.is_empty() => format!("Removed the cached sign-in {file}."),
        (Action::Remove, false) => format!("Removed {name} from {file} ({}).", c.key_path),
        (Action::Replace, false) => format!("Replaced {name} in {file} by the company connection ({}).", c.key_path),
        (_, true) => format!("Restored {file} as it was before change {} ({name}).", c.seq),
    }
}

pub fn remedy() -> Result<Remedy> {
    let r = Remedy::for_current_user().ok_or_else(|| anyhow!("cannot tell your data directory"))?;
    Ok(r.with_helper_program(helper_program()))
}

/// This program, as Claude Code's `headersHelper` should call it.
fn helper_program() -> String {
    std::env::current_exe().map_or_else(|_| "ema".into(), |me| remedy::helper_command(&me))
}
