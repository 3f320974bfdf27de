//! "Export diagnostics...": the tray prepares the bundle (live checks, the personal-account
//! findings, its recent log), the window shows exactly what will be shared, and only on the
//! user's "Save" is the zip written (to the Downloads folder).
//!
//! The prepared bundle stays in the tray process between the preview and the save, so what is
//! saved is byte for byte what was shown.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use ema_core::config::Policy;
use ema_core::diagnostics::bundle::{self, BundleInput};
use ema_core::diagnostics::doctor::{Diagnosis, diagnose_now};
use ema_core::diagnostics::log_ring::LogRing;
use ema_core::personal::scan::Finding;
use serde::Serialize;

/// What the window previews.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub support_id: String,
    /// (file name, content), in the zip's order.
    pub files: Vec<(String, String)>,
    /// Where "Save" will write it.
    pub save_to: String,
}

/// The bundle prepared for the preview, awaiting "Save".
#[derive(Default)]
pub struct Export {
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    diagnosis: Diagnosis,
    policy: Policy,
    personal: Vec<Finding>,
    log: Vec<String>,
}

impl Export {
    /// Runs the checks and keeps the result for [`Export::save`]; returns the preview.
    pub async fn prepare(&self, policy: Policy, personal: Vec<Finding>, log: &LogRing) -> Result<Preview, String> {
        let diagnosis = diagnose_now(policy.clone(), &personal).await.map_err(|e| e.to_string())?;
        let pending = Pending { diagnosis, policy, personal, log: log.lines() };
        let preview = Preview {
            support_id: pending.diagnosis.support_id.clone(),
            files: bundle::contents(&input(&pending)).into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
            save_to: target(&pending.diagnosis).display().to_string(),
        };
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
        Ok(preview)
    }

    /// Writes the previewed bundle; returns where.
    pub async fn save(&self) -> Result<PathBuf, String> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| "Nothing to save: prepare the export again.".to_string())?;
        tokio::task::spawn_blocking(move || {
            let path = target(&pending.diagnosis);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            bundle::write(&input(&pending), &path)
                .map(|w| w.path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn input(p: &Pending) -> BundleInput<'_> {
    BundleInput {
        diagnosis: &p.diagnosis,
        policy: &p.policy,
        personal: &p.personal,
        log: p.log.clone(),
        app: concat!("ema-tray ", env!("CARGO_PKG_VERSION")).to_string(),
        utc_offset: crate::local_offset_opt(),
    }
}

/// `~/Downloads/ema-diagnostics-<support id>.zip` (the home directory when there is no
/// Downloads folder).
fn target(d: &Diagnosis) -> PathBuf {
    let dir = dirs::download_dir().or_else(dirs::home_dir).unwrap_or_else(std::env::temp_dir);
    dir.join(bundle::file_name(d))
}
