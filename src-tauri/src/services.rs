//! What runs beside the engine and how the app starts it: the policy (or the embedded sandbox
//! org) and the engine, the personal-account scan, the status follower and renewals, the
//! single-instance claim on the session bus, and the exit on termination signals.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ema_core::config::{ConfigSource, Policy, locate_policy};
use ema_core::engine::Engine;
use ema_core::personal::scan::{Catalog, CompanyIdentity};
use tauri::{AppHandle, Manager, Runtime};

use crate::app_state::{NotificationsOn, engine_of, settings};
use crate::args::Options;
use crate::commands::set_autostart;
use crate::personal::Personal;
use crate::tray::{follow_status, render};

/// The embedded sandbox org (`--sandbox`) and the private directory holding its policy (which
/// carries the org's client secrets); a build without the `sandbox` feature has none.
#[cfg(feature = "sandbox")]
pub(crate) struct Sandbox {
    _org: ema_sandbox::Sandbox,
    /// Removed, with the policy, when dropped: at exit (`RunEvent::Exit`, SIGTERM, SIGINT).
    _policy_dir: ema_core::files::private_file::PrivateDir,
}
#[cfg(not(feature = "sandbox"))]
pub(crate) type Sandbox = std::convert::Infallible;

/// The sandbox org, kept alive for the app's life when `--sandbox` is given.
pub(crate) struct SandboxGuard(#[allow(dead_code)] pub Mutex<Option<Sandbox>>);

/// Starts the embedded sandbox org and writes its policy for the engine, with the writer `ema
/// sandbox --write-policy` uses: a fresh directory of random name (mode 0700), the file 0600
/// through a temporary file and a rename, so nothing planted beforehand (a symlink at a
/// predictable path, issue 14 item 12) is followed, and no other user reads the secrets.
#[cfg(feature = "sandbox")]
fn start_sandbox() -> anyhow::Result<(ConfigSource, Sandbox)> {
    let org = tauri::async_runtime::block_on(ema_sandbox::Sandbox::start(ema_sandbox::SandboxOptions::default()))?;
    let policy_dir = ema_core::files::private_file::PrivateDir::new("ema-tray-sandbox-")?;
    let path = policy_dir.write("policy.json", serde_json::to_string_pretty(&org.policy())?.as_bytes())?;
    Ok((ConfigSource::Explicit(path), Sandbox { _org: org, _policy_dir: policy_dir }))
}

/// `--sandbox` in a build without the org: said, not ignored.
#[cfg(not(feature = "sandbox"))]
fn start_sandbox() -> anyhow::Result<(ConfigSource, Sandbox)> {
    Err(no_sandbox_in_this_build())
}

/// What `--sandbox` answers in a build without the org. Compiled in every build so that its test
/// runs in the one CI builds for tests (with the org); the build without it is linted by clippy
/// (scripts/test.sh), which type-checks the one line above that returns it.
#[cfg_attr(feature = "sandbox", allow(dead_code))]
fn no_sandbox_in_this_build() -> anyhow::Error {
    anyhow::anyhow!(
        "this build has no embedded sandbox org (built without the `sandbox` feature); use `ema sandbox \
         --write-policy FILE` and start the tray with `--config FILE`"
    )
}

/// Loads the policy (or starts the sandbox and writes its policy) and builds the engine; `None`
/// when no policy exists anywhere: the app then starts "not set up" and offers to load one.
pub(crate) fn start_engine(opts: &Options) -> anyhow::Result<Option<(Arc<Engine>, Option<Sandbox>)>> {
    if opts.sandbox {
        let (source, sandbox) = start_sandbox()?;
        let engine = tauri::async_runtime::block_on(build_engine(source))?;
        return Ok(Some((engine, Some(sandbox))));
    }
    let explicit = opts.config.clone().or_else(|| std::env::var_os("EMA_CONFIG").map(Into::into));
    match locate_policy(explicit) {
        Ok(source) => Ok(Some((tauri::async_runtime::block_on(build_engine(source))?, None))),
        Err(tried) => {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            tracing::info!("no EMA policy found (looked in {}): starting not set up", tried.join(", "));
            Ok(None)
        }
    }
}

/// The engine for the policy at `source`, with the user's settings and its stored tokens.
pub(crate) async fn build_engine(source: ConfigSource) -> anyhow::Result<Arc<Engine>> {
    let (policy, settings_warning) = Policy::load_with_user_settings(source)?;
    if let Some(e) = settings_warning {
        // The defaults are used and the file is kept; changing a setting in the window reports
        // the same error to the user (`Your settings file is broken: ...`).
        tracing::warn!("your settings are ignored: {e}");
    }
    Ok(Engine::open(policy).await?)
}

/// Starts what runs beside the engine: the policy's start-at-login, the personal-account scan,
/// the status follower and the renewal timers.
pub(crate) fn start_services<R: Runtime>(app: &AppHandle<R>, engine: &Arc<Engine>) {
    let policy = &engine.policy().settings;
    app.state::<NotificationsOn>().0.store(policy.notifications, Ordering::Relaxed);
    // A policy that sets start-at-login is applied, not just shown.
    if policy.locked.contains(&"start_at_login")
        && settings(app).autostart != policy.start_at_login
        && let Err(e) = set_autostart(app, policy.start_at_login)
    {
        tracing::warn!("{}", e.message);
    }
    // The personal-account scan: at start and when the files it read change.
    let handle = app.clone();
    let personal = Personal::start(
        Catalog::from_policy(engine.policy()),
        CompanyIdentity::from_policy(engine.policy()),
        move || {
            if let Some(engine) = engine_of(&handle) {
                render(&handle, &engine.snapshot());
            }
        },
    );
    app.manage(personal);
    tauri::async_runtime::spawn(follow_status(app.clone(), engine.clone()));
    tauri::async_runtime::spawn(engine.clone().run_renewals());
}

/// The bus name of a tray on the embedded sandbox org: one of each can run, so the demo works beside
/// an installed EMA instead of opening its window.
#[cfg(target_os = "linux")]
pub(crate) const SANDBOX_APP_ID: &str = "dev.ema.desktop.Sandbox";

/// Connects to the session bus and claims `app_id` there (`single_instance`). A second launch
/// activates the first and exits here; without a session bus the app runs on its own.
#[cfg(target_os = "linux")]
pub(crate) fn claim_single_instance(
    app_id: &str,
) -> (Option<crate::session_bus::Bus>, Option<tokio::sync::mpsc::UnboundedReceiver<()>>) {
    use crate::single_instance::{ACTIVATE_TIMEOUT, Claim, ClaimError};
    let bus = match crate::session_bus::connect() {
        Ok(bus) => bus,
        Err(e) => {
            tracing::warn!("no D-Bus session bus ({e}): no single-instance check and no notifications");
            return (None, None);
        }
    };
    match tauri::async_runtime::block_on(crate::single_instance::claim(&bus, app_id, ACTIVATE_TIMEOUT)) {
        Ok(Claim::First(activations)) => (Some(bus), Some(activations)),
        Ok(Claim::AlreadyRunning) => {
            eprintln!("EMA is already running: its status window is open.");
            std::process::exit(0);
        }
        Err(ClaimError::Bus(e)) => {
            tracing::warn!("cannot claim the app's name on the session bus ({e}): no single-instance check");
            (Some(bus), None)
        }
        Err(ClaimError::NotAnswering(e)) => {
            eprintln!(
                "EMA is already running but did not answer within {} s ({e}). If it is stuck, quit it \
                 (`pkill -x ema-tray`) and start it again.",
                ACTIVATE_TIMEOUT.as_secs()
            );
            std::process::exit(1);
        }
    }
}

/// SIGTERM (a logout, `systemctl --user stop`, `kill`) and SIGINT end the app as "Quit" does, so
/// the exit clean-up runs.
#[cfg(unix)]
pub(crate) fn exit_on_termination_signals<R: Runtime>(app: &AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("cannot listen for SIGTERM/SIGINT: the exit clean-up runs only on Quit");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("terminated by a signal: exiting");
        app.exit(0);
    });
}

#[cfg(test)]
mod without_sandbox {
    use super::*;

    #[test]
    fn the_sandbox_flag_is_refused_in_words_where_the_org_is_not_built_in() {
        let message = format!("{:#}", no_sandbox_in_this_build());
        assert!(message.contains("no embedded sandbox org") && message.contains("ema sandbox"), "{message}");
    }

    #[cfg(not(feature = "sandbox"))]
    #[test]
    fn the_sandbox_flag_is_refused_in_words() {
        let opts = Options { sandbox: true, ..Options::default() };
        let Err(e) = start_engine(&opts) else {
            panic!("--sandbox started an engine in a build without the sandbox org")
        };
        assert_eq!(format!("{e:#}"), format!("{:#}", no_sandbox_in_this_build()));
    }
}
