//! The fixture home shared by the scan and remedy tests: `tests/fixtures/scan`, copied into a
//! temporary directory per test.

#![allow(clippy::unwrap_used, dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use ema_core::config::{ConfigSource, Policy};
use ema_core::personal::scan::{Catalog, CompanyIdentity, Finding, ScanLimits, ScanReport, ScanRoots, scan};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scan");

/// A temporary copy of the fixture tree (`home/`, `managed/`), with `@HOME@` in file contents
/// replaced by the copy's home path.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        copy_tree(&Path::new(FIXTURES).join("home"), &home, &home);
        copy_tree(&Path::new(FIXTURES).join("managed"), &root.join("managed"), &home);
        Fixture { _dir: dir, root }
    }

    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    pub fn roots(&self) -> ScanRoots {
        let mut roots = ScanRoots::under_home(self.home());
        roots.managed_dirs = vec![self.root.join("managed")];
        roots
    }

    pub fn scan(&self) -> ScanReport {
        self.scan_with(&self.roots(), &ScanLimits::default())
    }

    pub fn scan_with(&self, roots: &ScanRoots, limits: &ScanLimits) -> ScanReport {
        let policy = policy();
        scan(roots, &Catalog::from_policy(&policy), &CompanyIdentity::from_policy(&policy), limits)
    }

    /// A finding's path relative to the fixture root, `/`-separated.
    pub fn rel(&self, f: &Finding) -> String {
        f.path.strip_prefix(&self.root).unwrap().to_string_lossy().replace('\\', "/")
    }
}

pub fn copy_tree(from: &Path, to: &Path, home: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, home);
        } else {
            let text = fs::read_to_string(entry.path()).unwrap();
            // JSON-escape the path (Windows backslashes).
            let home_json = serde_json::to_string(&home.to_string_lossy()).unwrap();
            fs::write(&target, text.replace("@HOME@", home_json.trim_matches('"'))).unwrap();
        }
    }
}

pub fn policy() -> Policy {
    Policy::load(ConfigSource::Explicit(Path::new(FIXTURES).join("policy.json"))).unwrap()
}

pub fn canaries() -> Vec<String> {
    fs::read_to_string(Path::new(FIXTURES).join("canaries.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}
