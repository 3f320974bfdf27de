//! `ema login` on the first run, and `ema setup`: the terminal face of the onboarding the tray's
//! welcome window shows ([`ema_core::onboarding`] decides; this only prints).
//!
//! After the sign-in and the live progress: the summary ("6 connectors ready"), each failure with
//! a way to get help, then the migration offer for old personal connections the company now
//! provides, applied one by one or all at once (with backups and `ema undo`) or skipped.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, anyhow};
use ema_core::config::Policy;
use ema_core::config::import::{FETCH_TIMEOUT, import_user_policy};
use ema_core::http::HttpTransport;
use ema_core::onboarding::{self, MigrationOffer, Phase, migration_offers};
use ema_core::personal::remedy::Action;
use ema_core::personal::scan::Catalog;
use ema_core::status::StatusSnapshot;

use crate::personal;

/// What to do with the old connections found on the first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Migrate {
    /// Ask (in a terminal); otherwise list them with the command for each.
    Ask,
    /// Migrate every one.
    All,
    /// Leave them; `ema scan` lists them later.
    Skip,
}

/// The welcome line before the browser opens.
pub fn welcome(policy: &Policy) {
    eprintln!(
        "Welcome to EMA for {}. Sign in once with {}: every connector your groups give you is then set up here.",
        policy.organization.name,
        policy.idp.name()
    );
}

/// The steps after the sign-in: summary, failures, migration offer.
pub fn after_sign_in(policy: &Policy, snapshot: &StatusSnapshot, migrate: Migrate) -> Result<()> {
    let progress = onboarding::progress(snapshot);
    let desk = policy.organization.help_desk.as_ref().map_or_else(|| "your help desk".to_string(), |h| h.name.clone());
    for row in progress.rows.iter().filter(|r| r.phase == Phase::Failed) {
        eprintln!("  X {}: {}", row.display_name, row.reason.as_deref().unwrap_or("it failed"));
        if let Some(detail) = &row.detail {
            eprintln!("    ({detail})");
        }
        eprintln!("    Get help: `ema diagnostics` writes a file for {desk}, with no secret in it.");
    }
    let report = personal::scan_now(policy, &[])?;
    let catalog = Catalog::from_policy(policy);
    let offers = migration_offers(&report.findings, snapshot, &personal::remedy()?, &catalog);
    if offers.is_empty() {
        return Ok(());
    }
    eprintln!("\nOld connections that the company connection now replaces ({}):", offers.len());
    for (i, o) in offers.iter().enumerate() {
        eprintln!("  {}. {}", i + 1, o.description);
        eprintln!("     {}  (`ema fix {} --{}`)", personal::tilde(&o.finding.path), o.finding.id, flag(o.action));
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    match migrate {
        Migrate::Skip => eprintln!("Skipped: `ema scan` lists them again, and `ema fix` migrates each."),
        Migrate::All => migrate_all(policy, &offers)?,
        Migrate::Ask if !interactive => {
            eprintln!("Run the commands above to migrate them (each keeps a backup; `ema undo` restores).");
        }
        Migrate::Ask => match ask("Migrate them? [a]ll, [o]ne by one, [s]kip")?.as_str() {
            "a" | "all" => migrate_all(policy, &offers)?,
            "o" | "one" => {
                for o in &offers {
                    if matches!(ask(&format!("{}? [y/N]", o.description))?.as_str(), "y" | "yes") {
                        migrate_one(policy, o)?;
                    }
                }
            }
            _ => eprintln!("Skipped: `ema scan` lists them again, and `ema fix` migrates each."),
        },
    }
    Ok(())
}

fn flag(action: Action) -> &'static str {
    match action {
        Action::Replace => "replace",
        Action::Remove => "remove",
    }
}

fn ask(question: &str) -> Result<String> {
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_ascii_lowercase())
}

fn migrate_all(policy: &Policy, offers: &[MigrationOffer]) -> Result<()> {
    let mut failed = 0;
    for o in offers {
        if let Err(e) = migrate_one(policy, o) {
            failed += 1;
            eprintln!("  ! {}: {e:#}", o.description);
        }
    }
    if failed > 0 {
        return Err(anyhow!("{failed} of {} could not be migrated; `ema scan` shows what is left", offers.len()));
    }
    Ok(())
}

/// Applies one offer on a fresh scan (an earlier fix may have changed the same file).
fn migrate_one(policy: &Policy, offer: &MigrationOffer) -> Result<()> {
    let change = personal::apply(policy, &offer.finding.id, offer.action)?;
    eprintln!("  ✓ {} (backup: {})", personal::change_text(&change, false), change.backup.display());
    Ok(())
}

/// Records that onboarding is done, so the next `ema login` and the tray skip it.
pub fn finish(policy: &Policy) {
    if let Some(path) = onboarding::marker_path()
        && let Err(e) = onboarding::mark_done(&path, &policy.organization.name, "cli")
    {
        tracing::warn!("cannot record that onboarding is done ({}): {e}", path.display());
    }
}

/// Whether this user has not been through onboarding yet.
pub fn is_first_run() -> bool {
    onboarding::marker_path().is_some_and(|p| onboarding::is_first_run(&p))
}

/// `ema setup FILE|URL`: load the configuration IT sent, validated like a managed policy.
pub async fn setup(source: &str) -> Result<()> {
    let transport = HttpTransport::new(FETCH_TIMEOUT)?;
    let (policy, dest) = import_user_policy(source, &transport).await.map_err(|e| anyhow!("[{}] {e}", e.code()))?;
    println!(
        "Saved the configuration of {} to {}: sign-in with {} ({}), {} connectors.",
        policy.organization.name,
        personal::tilde(&dest),
        policy.idp.name(),
        policy.idp.issuer,
        policy.connectors.len()
    );
    println!("A managed policy, if IT installs one, always wins over this file. Next: `ema login`.");
    Ok(())
}
