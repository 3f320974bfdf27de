//! `ema sandbox`: serves the embedded demo org and prints the policy that points at it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ema_core::files::private_file::write_private;
use ema_sandbox::{Sandbox, SandboxOptions};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Also write the policy to this file (0600, atomically; a symlink there is refused), ready
    /// for `--config`.
    #[arg(long, value_name = "PATH")]
    write_policy: Option<PathBuf>,
    /// Add N synthetic connectors that every demo user is entitled to.
    #[arg(long, default_value_t = 0)]
    extra_connectors: usize,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Lifetime of connector access tokens, in seconds.
    #[arg(long)]
    connector_token_ttl: Option<u64>,
}

pub async fn run(args: &SandboxArgs) -> Result<ExitCode> {
    let mut opts = SandboxOptions { port: args.port, extra_connectors: args.extra_connectors, ..Default::default() };
    opts.knobs.latency_ms = args.latency_ms;
    if let Some(ttl) = args.connector_token_ttl {
        opts.knobs.connector_token_ttl_secs = ttl;
    }
    let sandbox = Sandbox::start(opts).await.context("cannot start the sandbox org")?;
    let policy = serde_json::to_string_pretty(&sandbox.policy())?;
    if let Some(path) = &args.write_policy {
        write_private(path, policy.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("Policy written to {}", path.display());
    }
    println!("{policy}");
    eprintln!("\nSandbox org at {} (Ctrl-C to stop). Demo users, password `demo`:", sandbox.base_url());
    for u in Sandbox::users() {
        eprintln!("  {:6} {:18} groups: {}", u.username, u.email, u.groups.join(", "));
    }
    eprintln!("Knobs: GET/POST {}_sandbox/knobs", sandbox.base_url());
    sandbox.run_until_ctrl_c().await;
    Ok(ExitCode::SUCCESS)
}
