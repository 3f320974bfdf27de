//! The personal-account scan in the tray: one scan at start, a rescan whenever a file it read
//! changes, and the remedies the window asks for.
//!
//! Why file watching and not a timer: the idle tray must not wake up (docs/tray.md), and a
//! change is what makes a rescan worth it. The watch is narrow ([`WatchPlan`]: the directories of
//! the files the scan read, one level each) through `dir_watch` (inotify with a mask of changes
//! only on Linux, read on tokio; notify's FSEvents and ReadDirectoryChangesW elsewhere), which
//! waits until the kernel has a change. Events are debounced here on the tokio runtime (no ticking
//! debouncer thread):
//! editors and Claude Code write a file in bursts, one rescan follows the last write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ema_core::personal::remedy::{self, Action, Change, Remedy, RemedyError};
use ema_core::personal::scan::{
    Catalog, CompanyIdentity, Finding, ScanLimits, ScanReport, ScanRoots, Verdict, WatchPlan, scan,
};
use tokio::sync::mpsc;

use crate::dir_watch::DirWatcher;
use crate::presenter::PersonalCounts;
use crate::views::{PersonalFindingView, PersonalView};

/// Quiet time after the last change before rescanning.
const DEBOUNCE: Duration = Duration::from_millis(400);

/// The scan's last result and the way to ask for another; managed as Tauri state.
pub struct Personal {
    shared: Arc<Shared>,
    catalog: Catalog,
    company: CompanyIdentity,
}

struct Shared {
    report: Mutex<Option<Arc<ScanReport>>>,
    wake: mpsc::UnboundedSender<()>,
}

impl Personal {
    /// Starts scanning (on the tauri runtime); `on_report` runs after each scan.
    pub fn start(catalog: Catalog, company: CompanyIdentity, on_report: impl Fn() + Send + Sync + 'static) -> Self {
        let (wake, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { report: Mutex::new(None), wake });
        tauri::async_runtime::spawn(scan_loop(shared.clone(), rx, catalog.clone(), company.clone(), on_report));
        Personal { shared, catalog, company }
    }

    /// The last scan's result (`None` before the first one ends).
    pub fn report(&self) -> Option<Arc<ScanReport>> {
        self.shared.report.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The findings that need the user: flagged, then to review.
    pub fn needing_attention(&self) -> Vec<Finding> {
        self.report()
            .map(|r| r.findings.iter().filter(|f| f.verdict != Verdict::Ok).cloned().collect())
            .unwrap_or_default()
    }

    pub fn flagged(&self) -> Vec<Finding> {
        self.report().map(|r| r.flagged().cloned().collect()).unwrap_or_default()
    }

    pub fn counts(&self) -> PersonalCounts {
        let needing = self.needing_attention();
        let flagged = needing.iter().filter(|f| f.is_flagged()).count();
        PersonalCounts { flagged, review: needing.len() - flagged }
    }

    /// Scans again now.
    pub fn rescan(&self) {
        let _ = self.shared.wake.send(());
    }

    /// What the window shows: each finding needing the user with the remedies it allows, and
    /// whether there is a change to undo.
    pub fn window_view(&self) -> PersonalView {
        let remedy = remedies();
        let findings = self
            .needing_attention()
            .iter()
            .map(|f| {
                let (can_remove, can_replace) = remedy.options(f, &self.catalog);
                PersonalFindingView {
                    id: f.id.clone(),
                    verdict: serde_json::to_value(f.verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    connector: f.connector.clone(),
                    server_name: f.server_name.clone(),
                    client_name: remedy::client_name(f.client).to_string(),
                    path: f.path.display().to_string(),
                    key_path: f.key_path.clone(),
                    why: f.why.clone(),
                    what_to_do: f.what_to_do.clone(),
                    can_remove,
                    can_replace,
                }
            })
            .collect();
        let last = remedy.history().ok().and_then(|h| h.into_iter().rev().find(|c| !c.undone));
        PersonalView { scanned: self.report().is_some(), findings, undo: last.map(|c| describe(&c)) }
    }

    /// Applies `action` to the finding `id` (the user clicked it), then rescans. The finding is
    /// looked up in a fresh scan (about 10 ms), so fixes in a row, such as "Migrate all" with two
    /// entries in one file, each see the file as the previous fix left it.
    pub async fn fix(&self, id: &str, action: Action) -> Result<Change, String> {
        let (catalog, company, id) = (self.catalog.clone(), self.company.clone(), id.to_string());
        let done = tokio::task::spawn_blocking(move || {
            let roots = ScanRoots::for_current_user().ok_or_else(|| "There is no home directory.".to_string())?;
            let report = scan(&roots, &catalog, &company, &ScanLimits::default());
            // The id carries the credential's fingerprint: a changed credential is refused.
            let finding = remedy::finding_for(&report, &id).map_err(|e| match e {
                RemedyError::NoSuchFinding { .. } => {
                    "This finding is gone: the files changed since. Look at the new list.".to_string()
                }
                e => e.to_string(),
            })?;
            remedies().apply(finding, action, &catalog).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
        self.rescan();
        done
    }

    /// The catalog the scan matches connectors with.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Restores the file of the last change, then rescans.
    pub async fn undo(&self) -> Result<Change, String> {
        let done = tokio::task::spawn_blocking(|| remedies().undo_last()).await.map_err(|e| e.to_string())?;
        self.rescan();
        done.map_err(|e| e.to_string())
    }
}

/// "Replaced linear in ~/.claude.json": what the undo button will restore.
fn describe(c: &Change) -> String {
    let name = c.server_name.as_deref().or(c.connector.as_deref()).unwrap_or("an entry");
    let verb = match c.action {
        Action::Remove => "Removed",
        Action::Replace => "Replaced",
    };
    format!("{verb} {name} in {}", c.path.display())
}

/// The remedies, with the `ema` CLI installed beside this app as Claude Code's helper.
pub(crate) fn remedies() -> Remedy {
    let remedy =
        Remedy::for_current_user().unwrap_or_else(|| Remedy::new(std::env::temp_dir().join("ema-remediation")));
    let exe = if cfg!(windows) { "ema.exe" } else { "ema" };
    match std::env::current_exe().ok().and_then(|me| me.parent().map(|d| d.join(exe))).filter(|p| p.is_file()) {
        Some(ema) => remedy.with_helper_program(remedy::helper_command(&ema)),
        None => remedy,
    }
}

async fn scan_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<()>,
    catalog: Catalog,
    company: CompanyIdentity,
    on_report: impl Fn() + Send + Sync + 'static,
) {
    let Some(roots) = ScanRoots::for_current_user() else {
        tracing::warn!("no home directory: the personal-account scan is off");
        return;
    };
    let plan = Arc::new(Mutex::new(WatchPlan::default()));
    let mut watcher = match watcher(plan.clone(), shared.wake.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("cannot watch files ({e}); the personal-account scan runs at start and on request only");
            None
        }
    };
    loop {
        let (r, c, co) = (roots.clone(), catalog.clone(), company.clone());
        let Ok(report) = tokio::task::spawn_blocking(move || scan(&r, &c, &co, &ScanLimits::default())).await else {
            tracing::error!("the personal-account scan panicked");
            return;
        };
        let next = WatchPlan::from_report(&report);
        if let Some(w) = watcher.as_mut() {
            rewatch(w, &next);
        }
        *plan.lock().unwrap_or_else(PoisonError::into_inner) = next;
        tracing::debug!(
            findings = report.findings.len(),
            flagged = report.flagged().count(),
            ms = report.duration.as_millis(),
            "personal-account scan"
        );
        *shared.report.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(report));
        on_report();
        // Sleep until a relevant change (or a request), then until the burst is over.
        if rx.recv().await.is_none() {
            return;
        }
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
    }
}

/// A watcher whose events wake the scan loop when the current plan says they matter.
fn watcher(plan: Arc<Mutex<WatchPlan>>, wake: mpsc::UnboundedSender<()>) -> std::io::Result<DirWatcher> {
    DirWatcher::start(Box::new(move |path| {
        let relevant = path.is_none_or(|p| plan.lock().unwrap_or_else(PoisonError::into_inner).is_relevant(p));
        if relevant {
            let _ = wake.send(());
        }
    }))
}

/// Moves the watches to the plan's directories. What is watched comes from the watcher itself,
/// so a directory whose watch the kernel dropped (deleted, and maybe back since) is watched again.
fn rewatch(w: &mut DirWatcher, plan: &WatchPlan) {
    let want: BTreeSet<PathBuf> = plan.dirs().map(Path::to_path_buf).collect();
    let have = w.watched();
    for gone in have.difference(&want) {
        w.unwatch(gone);
    }
    for dir in want.difference(&have) {
        if let Err(e) = w.watch(dir) {
            tracing::warn!("cannot watch {}: {e}", dir.display());
        }
    }
}
