//! `ema`: the command-line face of the EMA engine.
//!
//! Thin by design: every command loads the policy, builds an [`Engine`] with the product's
//! parts (OS keyring, reqwest, rmcp) and prints what the engine publishes. Habits follow
//! `gh auth status`: a human table by default, `--json` for scripts, exit status 1 when
//! anything needs the user, fix hints next to every problem.

mod onboard;
mod personal;
mod render;
mod sandbox_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use ema_core::config::{Policy, locate_policy};
use ema_core::diagnostics::bundle;
use ema_core::diagnostics::doctor::diagnose_now;
use ema_core::diagnostics::log_ring::LogRing;
use ema_core::engine::Engine;
use ema_core::personal::remedy::Action;
use ema_core::personal::scan::Catalog;
use ema_core::signin::{BrowserOpener, PrintUrl, SystemBrowser};

#[derive(Debug, Parser)]
#[command(name = "ema", version, about = "Enterprise-managed access to your MCP connectors", long_about = None)]
struct Cli {
    /// Policy file to use instead of the managed one (also EMA_CONFIG).
    #[arg(long, global = true, env = "EMA_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in at your company IdP in the browser, then connect every connector you are entitled to.
    Login {
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Give up waiting for the browser after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        /// Old personal connections the company now provides (offered on the first sign-in):
        /// ask, migrate all, or skip. Given explicitly, the offer is made on any sign-in.
        #[arg(long, value_enum, value_name = "CHOICE")]
        migrate: Option<onboard::Migrate>,
    },
    /// Load the configuration IT sent (a file or an https link) when no managed policy exists.
    Setup {
        /// The policy file, or its https URL.
        #[arg(value_name = "FILE|URL")]
        source: String,
    },
    /// Show the sign-in and every connector's state (exit 1 when something needs you).
    Status {
        /// Print the status as JSON (schema: docs/status-schema.md).
        #[arg(long)]
        json: bool,
    },
    /// Renew every connector's token now.
    Refresh {
        #[arg(long)]
        json: bool,
    },
    /// Forget all tokens and revoke the IdP session where the IdP supports it.
    Logout,
    /// Find personal-account connections in other AI clients' MCP settings (exit 1 when one is flagged).
    Scan {
        #[arg(long)]
        json: bool,
        /// Also list the entries that are fine.
        #[arg(long)]
        all: bool,
        /// A project directory to check too (`.mcp.json`, `.vscode/mcp.json`, `.cursor/mcp.json`); repeatable.
        #[arg(long, value_name = "DIR")]
        project: Vec<PathBuf>,
    },
    /// Remove a flagged entry, or replace it by the company connection (backup kept; `ema undo` restores).
    #[command(group = clap::ArgGroup::new("action").required(true).args(["remove", "replace"]))]
    Fix {
        /// The finding's id, as `ema scan` shows it.
        id: String,
        /// Delete the entry (or the cached sign-in).
        #[arg(long)]
        remove: bool,
        /// Replace the entry by the company connection (Claude Code and VS Code).
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "DIR")]
        project: Vec<PathBuf>,
    },
    /// Restore the file changed by the last `ema fix`.
    Undo {
        #[arg(long)]
        json: bool,
    },
    /// Run every check (policy, keyring, IdP, clock, each connector's legs live) and say what to fix; exit 1 when one fails.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Write a diagnostics bundle (one zip, no secret in it) for your help desk.
    Diagnostics {
        /// Where to write it (default: ./ema-diagnostics-<support id>.zip).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Print exactly what would be shared, file by file, instead of writing it.
        #[arg(long)]
        preview: bool,
    },
    /// Print `{"Authorization": "Bearer ..."}` for a connector (Claude Code's `headersHelper`).
    Headers {
        /// The connector's id in the policy (`linear`).
        connector: String,
    },
    /// Serve the embedded sandbox org (a local IdP and connectors) and print its policy.
    Sandbox(sandbox_cmd::SandboxArgs),
}

/// The recent log of this run, for `ema diagnostics`.
static LOG: std::sync::OnceLock<LogRing> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    render::init_local_offset();
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ring = LOG.get_or_init(|| LogRing::new(ema_core::diagnostics::log_ring::DEFAULT_LINES));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(ema_core::log_filter::from_env()),
        )
        .with(ring.layer().with_filter(ema_core::log_filter::ring("ema_cli")))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Sandbox(args) => return sandbox_cmd::run(args).await,
        Command::Setup { source } => {
            onboard::setup(source).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Scan { json, all, project } => {
            let policy = load_policy(cli.config.clone())?;
            let report = personal::scan_now(&policy, project)?;
            let flagged = personal::print_scan(&report, &Catalog::from_policy(&policy), *all, *json);
            return Ok(if flagged { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        Command::Fix { id, remove, replace: _, json, project } => {
            let action = if *remove { Action::Remove } else { Action::Replace };
            personal::fix(&load_policy(cli.config.clone())?, id, action, project, *json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Undo { json } => {
            personal::undo(*json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Diagnostics { out, preview } => {
            return diagnostics_bundle(load_policy(cli.config.clone())?, out.clone(), *preview).await;
        }
        Command::Doctor { json } => {
            let policy = load_policy(cli.config.clone())?;
            let personal = personal::scan_now(&policy, &[]).map(|r| r.findings).unwrap_or_default();
            let diagnosis = diagnose_now(policy, &personal).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&diagnosis).expect("a diagnosis serialises"));
            } else {
                print!("{}", render::doctor_text(&diagnosis));
            }
            return Ok(if diagnosis.needs_attention() { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        _ => {}
    }
    let engine = load_engine(cli.config.clone()).await?;
    match cli.command {
        Command::Login { no_browser, timeout, migrate } => login(&engine, no_browser, timeout, migrate).await,
        Command::Status { json } => Ok(print_status(&engine, json)),
        Command::Headers { connector } => headers(&engine, &connector).await,
        Command::Refresh { json } => {
            if !engine.is_signed_in().await {
                eprintln!("You are not signed in. Run `ema login`.");
                return Ok(ExitCode::from(1));
            }
            if !json {
                eprintln!("Renewing {} connectors...", engine.policy().connectors.len());
            }
            engine.connect_all(true).await;
            Ok(print_status(&engine, json))
        }
        Command::Logout => {
            use ema_core::engine::Revocation;
            match engine.sign_out().await.context("could not remove the stored tokens")? {
                Revocation::Revoked => {
                    println!("Signed out: tokens removed from the keyring and the session revoked at the IdP.");
                    Ok(ExitCode::SUCCESS)
                }
                Revocation::NotOffered => {
                    println!("Signed out: tokens removed from the keyring (the IdP offers no revocation).");
                    Ok(ExitCode::SUCCESS)
                }
                Revocation::Failed(why) => {
                    println!("Tokens removed here; the IdP did not confirm revocation: {why}");
                    eprintln!(
                        "Your session may still be valid at the IdP. Sign out in the browser, or ask your help desk to \
                         end the session."
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Sandbox(_)
        | Command::Setup { .. }
        | Command::Scan { .. }
        | Command::Fix { .. }
        | Command::Undo { .. }
        | Command::Doctor { .. }
        | Command::Diagnostics { .. } => {
            unreachable!("handled above")
        }
    }
}

/// `ema headers`: Claude Code runs it before connecting and gives it 10 s; it answers well
/// inside that, renewing first when the token expires within a minute.
async fn headers(engine: &Arc<Engine>, connector: &str) -> Result<ExitCode> {
    let token = tokio::time::timeout(HEADERS_DEADLINE, engine.fresh_access_token(connector, Duration::from_secs(60)))
        .await
        .map_err(|_| anyhow!("no token for {connector} within {} s; run `ema status`", HEADERS_DEADLINE.as_secs()))??;
    let header = serde_json::json!({ "Authorization": format!("Bearer {}", token.secret()) });
    println!("{header}");
    Ok(ExitCode::SUCCESS)
}

/// `ema diagnostics`: the checks, the personal-account scan and this run's log, in one zip.
async fn diagnostics_bundle(policy: Policy, out: Option<PathBuf>, preview: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let personal = personal::scan_now(&policy, &[]).map(|r| r.findings).unwrap_or_default();
    let diagnosis = diagnose_now(policy.clone(), &personal).await?;
    let input = bundle::BundleInput {
        diagnosis: &diagnosis,
        policy: &policy,
        personal: &personal,
        log: LOG.get().map(LogRing::lines).unwrap_or_default(),
        app: concat!("ema ", env!("CARGO_PKG_VERSION")).to_string(),
        utc_offset: render::local_offset(),
    };
    if preview {
        for (name, content) in bundle::contents(&input) {
            println!("===== {name} =====\n{content}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = out.unwrap_or_else(|| PathBuf::from(bundle::file_name(&diagnosis)));
    let written = bundle::write(&input, &path).with_context(|| format!("cannot write {}", path.display()))?;
    let desk = diagnosis.help_desk.as_ref().map_or_else(|| "your help desk".to_string(), |h| h.name.clone());
    println!(
        "Saved {} ({} KiB, in {} ms). Support ID: {}. Send the file to {desk}; it holds no token or password.",
        written.path.display(),
        written.bytes.div_ceil(1024),
        started.elapsed().as_millis(),
        diagnosis.support_id
    );
    Ok(ExitCode::SUCCESS)
}

/// Inside Claude Code's 10 s limit for a `headersHelper`, with room for process start-up.
const HEADERS_DEADLINE: Duration = Duration::from_secs(8);

fn load_policy(explicit: Option<PathBuf>) -> Result<Policy> {
    let source = locate_policy(explicit).map_err(|tried| {
        anyhow!(
            "no policy found (looked for {}). Ask IT for the EMA policy: load the one they sent with `ema setup FILE|URL`, or pass --config PATH",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let (policy, settings_warning) = Policy::load_with_user_settings(source)?;
    if let Some(e) = settings_warning {
        // A broken settings file never blocks the user: say so, use the defaults, keep the file.
        eprintln!("warning: your settings are ignored: {e}");
    }
    Ok(policy)
}

async fn load_engine(explicit: Option<PathBuf>) -> Result<Arc<Engine>> {
    Ok(Engine::open(load_policy(explicit)?).await?)
}

async fn login(
    engine: &Arc<Engine>,
    no_browser: bool,
    timeout: u64,
    migrate: Option<onboard::Migrate>,
) -> Result<ExitCode> {
    let browser: &dyn BrowserOpener = if no_browser { &PrintUrl } else { &SystemBrowser };
    let first_run = onboard::is_first_run();
    if first_run {
        onboard::welcome(engine.policy());
    }
    eprintln!(
        "Signing in to {} at {} in your browser...",
        engine.policy().organization.name,
        engine.policy().idp.issuer
    );
    let printed = render::Printed::default();
    let progress = tokio::spawn(render::follow_progress(engine.subscribe(), printed.clone()));
    let result = engine.sign_in(browser, Duration::from_secs(timeout)).await;
    progress.abort();
    let identity = result.map_err(|e| anyhow!("sign-in failed [{}]: {e}", e.code_str()))?;
    let snapshot = engine.snapshot();
    render::catch_up(&printed, &snapshot);
    eprintln!(
        "Signed in as {}. {}.\n",
        identity.email.as_deref().unwrap_or(&identity.sub),
        ema_core::onboarding::progress(&snapshot).summary
    );
    if first_run || migrate.is_some() {
        let offered = onboard::after_sign_in(engine.policy(), &snapshot, migrate.unwrap_or(onboard::Migrate::Ask));
        // Signed in is onboarded: a failed migration is reported, not offered again at each login.
        onboard::finish(engine.policy());
        offered?;
        eprintln!();
    }
    Ok(print_status(engine, false))
}

fn print_status(engine: &Engine, json: bool) -> ExitCode {
    let snapshot = engine.snapshot();
    // The scan reads a few small files (about 10 ms); a failure to find the home directory
    // only leaves the section out.
    let scan = personal::scan_now(engine.policy(), &[]).ok();
    if json {
        let mut value = serde_json::to_value(&snapshot).expect("status always serialises");
        if let Some(report) = &scan {
            value["personal_connections"] = personal::status_json(report);
        }
        println!("{}", serde_json::to_string_pretty(&value).expect("status always serialises"));
    } else {
        print!("{}", render::status_table(&snapshot, engine.policy()));
        if let Some(report) = &scan {
            print!("{}", personal::status_section(report, &Catalog::from_policy(engine.policy())));
        }
    }
    let flagged = scan.as_ref().is_some_and(|r| r.flagged().next().is_some());
    if snapshot.needs_attention() || flagged { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
