//! What to watch so that a rescan follows every change that matters, and nothing else.
//!
//! Why a plan rather than a recursive watch of the home directory: a recursive watch of `~`
//! costs an inotify watch per directory (tens of thousands in a developer's home) and wakes
//! the app for every build. The scan knows the few files it reads, so the plan watches their
//! directories, one level each, and filters the events down to those files.
//!
//! A file that does not exist yet (Cursor not installed) is caught by watching its nearest
//! existing ancestor: creating `~/.cursor` is an event there, the rescan then finds the new
//! directory and the next plan watches it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::ScanReport;

/// The directories to watch (non-recursively) and the paths whose changes matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchPlan {
    files: BTreeSet<PathBuf>,
    trees: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

impl WatchPlan {
    /// The plan for the files and directories `report`'s scan looked at.
    pub fn from_report(report: &ScanReport) -> Self {
        let files: BTreeSet<PathBuf> = report.looked_at.iter().cloned().collect();
        let trees: BTreeSet<PathBuf> = report.listed_dirs.iter().cloned().collect();
        let mut dirs = BTreeSet::new();
        for f in &files {
            if let Some(d) = f.parent().and_then(nearest_existing) {
                dirs.insert(d);
            }
        }
        for t in &trees {
            if let Some(d) = nearest_existing(t) {
                dirs.insert(d);
            }
        }
        WatchPlan { files, trees, dirs }
    }

    /// The directories to watch, each non-recursively.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    /// Whether a change at `path` (as a watcher reports it) can change the scan's result: one of
    /// the files, a directory on the way to one (created, renamed or removed), or anything in a
    /// listed directory.
    pub fn is_relevant(&self, path: &Path) -> bool {
        self.files.contains(path)
            || self.files.iter().any(|f| f.starts_with(path))
            || self.trees.iter().any(|t| path.starts_with(t) || t.starts_with(path))
    }
}

/// `dir` if it is a directory, else its nearest ancestor that is.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personal::scan::{Catalog, CompanyIdentity, ScanLimits, ScanRoots, scan};

    #[test]
    fn watches_the_directories_of_the_files_read_and_filters_events_to_them() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().canonicalize().unwrap();
        std::fs::write(h.join(".claude.json"), "{}").unwrap();
        std::fs::create_dir_all(h.join(".mcp-auth/mcp-remote-0.1.0")).unwrap();
        let report =
            scan(&ScanRoots::under_home(&h), &Catalog::default(), &CompanyIdentity::default(), &ScanLimits::default());
        let plan = WatchPlan::from_report(&report);
        let dirs: Vec<&Path> = plan.dirs().collect();
        assert!(dirs.contains(&h.as_path()), "home, for ~/.claude.json and the missing ~/.cursor: {dirs:?}");
        assert!(dirs.contains(&h.join(".mcp-auth/mcp-remote-0.1.0").as_path()), "{dirs:?}");
        assert!(!dirs.iter().any(|d| d.starts_with(h.join(".cursor"))), "missing directories are not watched");

        assert!(plan.is_relevant(&h.join(".claude.json")));
        assert!(plan.is_relevant(&h.join(".cursor")), "creating ~/.cursor matters");
        assert!(plan.is_relevant(&h.join(".cursor/mcp.json")));
        assert!(plan.is_relevant(&h.join(".mcp-auth/mcp-remote-0.1.0/abc_tokens.json")));
        assert!(!plan.is_relevant(&h.join(".bash_history")), "unrelated files in home do not");
        assert!(!plan.is_relevant(&h.join(".claude.json.tmp")));
    }
}
