//! `ema`: the command-line face of the EMA engine.
//!
//! Thin by design: every command loads the policy, builds an [`Engine`] with the product's
//! parts (OS keyring, reqwest, rmcp) and prints what the engine publishes. Habits follow
//! `gh auth status`: a human table by default, `--json` for scripts, exit status 1 when
//! anything needs the user, fix hints next to every problem.

mod render;
mod sandbox_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use ema_core::config::{Policy, UserSettings, locate_policy, user_settings_path};
use ema_core::engine::{Engine, EngineParts};
use ema_core::signin::{BrowserOpener, PrintUrl, SystemBrowser};
use ema_core::status::ConnectorState;

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
    /// Serve the embedded sandbox org (a local IdP and connectors) and print its policy.
    Sandbox(sandbox_cmd::SandboxArgs),
}

fn main() -> ExitCode {
    render::init_local_offset();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EMA_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
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
    if let Command::Sandbox(args) = &cli.command {
        return sandbox_cmd::run(args).await;
    }
    let engine = load_engine(cli.config.clone()).await?;
    match cli.command {
        Command::Login { no_browser, timeout } => login(&engine, no_browser, timeout).await,
        Command::Status { json } => Ok(print_status(&engine, json)),
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
            let revoked = engine.sign_out().await.context("could not remove the stored tokens")?;
            println!(
                "Signed out: tokens removed from the keyring{}.",
                if revoked { " and the session revoked at the IdP" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(_) => unreachable!("handled above"),
    }
}

async fn load_engine(explicit: Option<PathBuf>) -> Result<Arc<Engine>> {
    let source = locate_policy(explicit).map_err(|tried| {
        anyhow!(
            "no policy found (looked for {}). Ask IT for the EMA policy, or pass --config PATH",
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut policy = Policy::load(source)?;
    if let Some(path) = user_settings_path() {
        match UserSettings::load(&path) {
            Ok(user) => policy.apply_user_settings(&user),
            // A broken settings file never blocks the user: say so, use the defaults, keep the file.
            Err(e) => eprintln!("warning: your settings are ignored: {e}"),
        }
    }
    let parts = EngineParts::production(&policy)?;
    let engine = Engine::new(policy, parts);
    engine.load().await.context("cannot read the stored sign-in")?;
    Ok(engine)
}

async fn login(engine: &Arc<Engine>, no_browser: bool, timeout: u64) -> Result<ExitCode> {
    let browser: &dyn BrowserOpener = if no_browser { &PrintUrl } else { &SystemBrowser };
    eprintln!(
        "Signing in to {} at {} in your browser...",
        engine.policy().organization.name,
        engine.policy().idp.issuer
    );
    let progress = tokio::spawn(render::follow_progress(engine.subscribe()));
    let result = engine.sign_in(browser, Duration::from_secs(timeout)).await;
    progress.abort();
    let identity = result.map_err(|e| anyhow!("sign-in failed [{}]: {e}", e.code()))?;
    let snapshot = engine.snapshot();
    let ready = snapshot.connectors.iter().filter(|c| c.state == ConnectorState::Active).count();
    eprintln!(
        "Signed in as {}. {ready} of {} connectors ready.\n",
        identity.email.as_deref().unwrap_or(&identity.sub),
        snapshot.connectors.len()
    );
    Ok(print_status(engine, false))
}

fn print_status(engine: &Engine, json: bool) -> ExitCode {
    let snapshot = engine.snapshot();
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshot).expect("status always serialises"));
    } else {
        print!("{}", render::status_table(&snapshot, engine.policy()));
    }
    if snapshot.needs_attention() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
