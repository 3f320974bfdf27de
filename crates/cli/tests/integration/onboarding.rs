//! The headless first run, through the binary against the sandbox org: `ema setup` loads the
//! configuration IT sent (no managed policy), the first `ema login` welcomes, shows the
//! connectors settling and the summary, offers to migrate the old Supabase token of a fixture
//! home and migrates it (backup kept), and the second login skips all that until the onboarding
//! marker is deleted.

#![allow(clippy::unwrap_used)]

use crate::util::Ema;
use crate::util::text;
use std::path::Path;
use std::process::Output;

use ema_e2e::{Org, fixture_home, require_keyring_session};
use serde_json::Value;

/// `ema` as `user` with `home` as HOME and no `EMA_CONFIG`: the policy is found where a user's
/// own copy lives.
fn ema(org: &Org, home: &Path, user: &str, args: &[&str]) -> Output {
    Ema::on(org, user).without("EMA_CONFIG").home(home).run(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_loads_the_configuration_welcomes_connects_and_migrates_once() {
    require_keyring_session();
    let org = Org::start("onboarding").await;
    let home = fixture_home(&org);
    let managed = ema_core::config::managed_policy_path();
    assert!(!managed.exists(), "this test needs a machine without a managed policy at {}", managed.display());

    // No policy yet: the error says how to load the one IT sent.
    let none = ema(&org, &home, "-", &["status"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(text(&none).contains("ema setup FILE|URL"), "{}", text(&none));

    // A broken file is refused with the key and the fix, and nothing is saved.
    let broken = org.dir.join("broken.json");
    std::fs::write(&broken, std::fs::read_to_string(&org.policy_path).unwrap().replace("\"issuer\"", "\"issuer_\""))
        .unwrap();
    let refused = ema(&org, &home, "-", &["setup", broken.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("[config-invalid]") && text(&refused).contains("idp"), "{}", text(&refused));
    let saved = home.join(".config/ema/policy.json");
    assert!(!saved.exists());

    // The file IT sent, over http on loopback (the sandbox serves nothing at /policy, so use the file
    // for the install and prove the URL path refuses a 404 with its status).
    let missing = ema(&org, &home, "-", &["setup", &format!("{}policy.json", org.sandbox.base_url())]);
    assert!(text(&missing).contains("HTTP 404"), "{}", text(&missing));
    let setup = ema(&org, &home, "-", &["setup", org.policy_path.to_str().unwrap()]);
    assert!(setup.status.success(), "{}", text(&setup));
    let said = text(&setup);
    assert!(said.contains("Saved the configuration of Sandbox Org") && said.contains("Sandbox IdP"), "{said}");
    assert!(said.contains("managed policy") && said.contains("always wins"), "{said}");
    assert_eq!(std::fs::read(&saved).unwrap(), std::fs::read(&org.policy_path).unwrap());

    // The first sign-in: welcome, progress, summary, the migration offer, migrated.
    let claude_json = home.join(".claude.json");
    let before = std::fs::read(&claude_json).unwrap();
    let first = ema(&org, &home, "alice", &["login", "--migrate", "all"]);
    let said = text(&first);
    assert!(first.status.code().is_some_and(|c| c <= 1), "{said}");
    assert!(said.contains("Welcome to EMA for Sandbox Org. Sign in once with Sandbox IdP"), "{said}");
    assert!(said.contains("✓ Linear: active"), "the live progress: {said}");
    assert!(said.contains("Signed in as alice@example.com. 3 connectors ready."), "{said}");
    assert!(
        said.contains("Replace your personal token for Supabase in Claude Code by the company connection"),
        "{said}"
    );
    assert!(said.contains("✓ Replaced supabase in ~/.claude.json"), "{said}");
    let after: Value = serde_json::from_slice(&std::fs::read(&claude_json).unwrap()).unwrap();
    let helper = after["mcpServers"]["supabase"]["headersHelper"].as_str().unwrap_or_default();
    assert!(helper.ends_with(" headers supabase"), "{after:#}");
    assert_eq!(after["mcpServers"]["linear"]["headersHelper"], "ema headers linear", "other entries are kept");
    let backups: Vec<_> = std::fs::read_dir(home.join(".local/share/ema/remediation/backups"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b == before))
        .collect();
    assert_eq!(backups.len(), 1, "the file before the migration is backed up");
    let marker = home.join(".local/share/ema/onboarded.json");
    assert!(marker.exists(), "{said}");

    // The second run skips onboarding.
    let second = ema(&org, &home, "alice", &["login"]);
    let said = text(&second);
    assert!(!said.contains("Welcome to EMA") && !said.contains("Old connections"), "{said}");

    // Deleting the stored state brings it back; without a terminal the offer lists the commands.
    std::fs::remove_file(&marker).unwrap();
    let third = ema(&org, &home, "alice", &["login"]);
    let said = text(&third);
    assert!(said.contains("Welcome to EMA for Sandbox Org"), "{said}");
    if said.contains("Old connections") {
        assert!(said.contains("Run the commands above"), "{said}");
    }
    assert!(marker.exists());
    for secret in ema_e2e::fixture_canaries() {
        for out in [&first, &second, &third] {
            assert!(!text(out).contains(&secret), "a planted secret in the output");
        }
    }
}
