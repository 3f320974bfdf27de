//! The diagnostics export: one zip the user sends to the help desk.
//!
//! Contents (the model is Cloudflare's warp-diag and `tailscale bugreport`):
//! - `summary.txt` and `summary.html`: what works, what does not, the failing leg, the likely cause
//!   and the fix in plain words, the support ID and the organisation's help desk;
//! - `diagnostics.json`: the machine-readable diagnosis (versioned) with the traces, the
//!   environment and the personal-account findings that need the user;
//! - `policy.json`: the effective policy, redacted by allow-list (no client secret, no key);
//! - `log.txt`: the recent log (scrubbed lines from [`super::log_ring`]).
//!
//! Everything in it is built from allow-listed fields; the canary test proves no planted
//! secret reaches it, raw, base64 or URL-encoded.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::doctor::{Diagnosis, Outcome};
use crate::config::{ClientAuth, Policy};
use crate::personal::scan::{Finding, Verdict};
use crate::status::ConnectorState;

/// Version of `diagnostics.json` in the bundle.
pub const BUNDLE_VERSION: u32 = 1;

/// What goes into a bundle besides the diagnosis.
#[derive(Debug, Clone)]
pub struct BundleInput<'a> {
    pub diagnosis: &'a Diagnosis,
    pub policy: &'a Policy,
    /// Personal-account findings (only those needing the user are kept).
    pub personal: &'a [Finding],
    /// The recent log, scrubbed.
    pub log: Vec<String>,
    /// `ema 0.1.0`, `ema-tray 0.1.0`.
    pub app: String,
    /// The local time zone's offset, when known.
    pub utc_offset: Option<time::UtcOffset>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub files: Vec<&'static str>,
}

/// The files of the bundle, in order, as (name, content): also what a preview shows.
pub fn contents(input: &BundleInput<'_>) -> Vec<(&'static str, String)> {
    let environment = environment(input);
    let personal: Vec<&Finding> = input.personal.iter().filter(|f| f.verdict != Verdict::Ok).collect();
    let json = json!({
        "version": BUNDLE_VERSION,
        "support_id": input.diagnosis.support_id,
        "environment": environment,
        "diagnosis": input.diagnosis,
        "personal_connections": personal,
    });
    vec![
        ("summary.txt", summary_text(input, &environment)),
        ("summary.html", summary_html(input, &environment)),
        ("diagnostics.json", serde_json::to_string_pretty(&json).expect("the diagnosis serialises")),
        ("policy.json", serde_json::to_string_pretty(&redacted_policy(input.policy)).expect("JSON serialises")),
        ("log.txt", input.log.join("\n") + "\n"),
    ]
}

/// Writes the bundle to `path` atomically (a temporary file beside it, then a rename).
pub fn write(input: &BundleInput<'_>, path: &Path) -> std::io::Result<Written> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".ema-diagnostics-").suffix(".zip").tempfile_in(dir)?;
    let mut zip = zip::ZipWriter::new(tmp.reopen()?);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut files = Vec::new();
    for (name, content) in contents(input) {
        zip.start_file(name, options).map_err(std::io::Error::other)?;
        zip.write_all(content.as_bytes())?;
        files.push(name);
    }
    let file = zip.finish().map_err(std::io::Error::other)?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(Written { path: path.to_path_buf(), bytes, files })
}

/// The default file name: `ema-diagnostics-<support id>.zip`.
pub fn file_name(d: &Diagnosis) -> String {
    format!("ema-diagnostics-{}.zip", d.support_id)
}

fn environment(input: &BundleInput<'_>) -> Value {
    json!({
        "app": input.app,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "os_release": os_release(),
        "generated_at_utc": input.diagnosis.generated_at,
        "utc_offset": input.utc_offset.map(|o| o.to_string()),
        "time_zone": std::env::var("TZ").ok().or_else(|| std::fs::read_to_string("/etc/timezone").ok().map(|s| s.trim().to_string())),
    })
}

/// `PRETTY_NAME` of `/etc/os-release` (Linux); `None` elsewhere.
fn os_release() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| crate::redact::scrub(v.trim_matches('"'), 100))
}

/// The policy by allow-list: names, URLs, scopes, client ids and auth *methods*; never a
/// client secret or a private key.
pub fn redacted_policy(p: &Policy) -> Value {
    let method = |a: &ClientAuth| a.method_name();
    json!({
        "source": p.source.path().display().to_string(),
        "organization": {
            "name": p.organization.name,
            "email_domains": p.organization.email_domains,
            "help_desk": p.organization.help_desk.as_ref().map(|h| json!({"name": h.name, "url": h.url.as_str()})),
        },
        "idp": {
            "issuer": p.idp.issuer.as_str(),
            "client_id": p.idp.client_id,
            "client_auth": method(&p.idp.client_auth),
            "scopes": p.idp.scopes,
        },
        "connectors": p.connectors.iter().map(|c| json!({
            "id": c.id,
            "display_name": c.display_name,
            "mcp_url": c.mcp_url.as_str(),
            "authorization_server": c.authorization_server.as_ref().map(|u| u.as_str()),
            "scopes": c.scopes,
            "client_id": c.client_id,
            "client_auth": method(&c.client_auth),
            "idp_only": c.idp_only,
        })).collect::<Vec<_>>(),
        "settings": {
            "expiry_warning_seconds": p.settings.expiry_warning.as_secs(),
            "renew_before_expiry_seconds": p.settings.renew_before_expiry.as_secs(),
            "max_parallel_connectors": p.settings.max_parallel_connectors,
            "request_timeout_seconds": p.settings.request_timeout.as_secs(),
            "notifications": p.settings.notifications,
            "start_at_login": p.settings.start_at_login,
            "locked": p.settings.locked,
        },
    })
}

/// What works, what does not and why, in plain words.
fn summary_lines(input: &BundleInput<'_>) -> Vec<String> {
    let d = input.diagnosis;
    let mut out = Vec::new();
    let names = |pred: &dyn Fn(&super::doctor::ConnectorDiagnosis) -> bool| {
        d.connectors.iter().filter(|c| pred(c)).map(|c| c.display_name.clone()).collect::<Vec<_>>().join(", ")
    };
    let works = names(&|c| c.state == ConnectorState::Active && c.failed_leg.is_none());
    let not_assigned = names(&|c| c.state == ConnectorState::NotEntitled);
    out.push(format!("What works: {}", if works.is_empty() { "no connector" } else { &works }));
    if !not_assigned.is_empty() {
        out.push(format!("Not assigned to you (not an error): {not_assigned}"));
    }
    let broken: Vec<_> = d.connectors.iter().filter(|c| c.failed_leg.is_some()).collect();
    if broken.is_empty() {
        out.push("What does not work: nothing found".into());
    } else {
        out.push("What does not work:".into());
        for c in broken {
            let leg = c.failed_leg.map(|l| l.words()).unwrap_or("an unknown step");
            let working = if matches!(c.state, ConnectorState::Active | ConnectorState::ExpiringSoon) {
                " (works for now; its renewal fails)"
            } else {
                ""
            };
            out.push(format!("- {}{working}: fails at {leg} [{}]", c.display_name, c.code.as_deref().unwrap_or("?")));
            if let Some(cause) = &c.cause {
                out.push(format!("  Why: {cause}"));
            }
            if let Some(fix) = &c.fix {
                out.push(format!("  Fix: {fix}"));
            }
        }
    }
    let problems: Vec<_> = d.checks.iter().filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Warn)).collect();
    for c in problems.iter().filter(|c| !c.name.starts_with("connector-")) {
        out.push(format!("Problem ({}): {}", c.name, c.summary));
        if let Some(fix) = &c.fix {
            out.push(format!("  Fix: {fix}"));
        }
    }
    let flagged = input.personal.iter().filter(|f| f.is_flagged()).count();
    if flagged > 0 {
        out.push(format!(
            "Personal-account connections: {flagged} personal credential(s) for connectors that must go through the \
             company sign-in (details in diagnostics.json)"
        ));
    }
    out
}

fn summary_text(input: &BundleInput<'_>, env: &Value) -> String {
    let d = input.diagnosis;
    let mut s = String::new();
    let _ = writeln!(s, "EMA diagnostics - {}", d.organization);
    let _ = writeln!(s, "Support ID: {}", d.support_id);
    if let Some(h) = &d.help_desk {
        let _ = writeln!(s, "Help desk: {}{}", h.name, h.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default());
    }
    let _ = writeln!(
        s,
        "Created: {} (UTC offset here: {})",
        d.generated_at,
        env["utc_offset"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(
        s,
        "App: {} on {} ({} {})\n",
        input.app,
        env["os_release"].as_str().unwrap_or("unknown OS"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    for line in summary_lines(input) {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "\nChecks:");
    for c in &d.checks {
        let _ = writeln!(s, "  {:?} {}: {}", c.outcome, c.name, c.summary);
    }
    s
}

fn summary_html(input: &BundleInput<'_>, env: &Value) -> String {
    let d = input.diagnosis;
    let e = html_escape;
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>EMA diagnostics</title>\n<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}.fail{color:#cf222e}.warn{color:#9a6700}.pass{color:#1a7f37}</style></head><body>\n",
    );
    let _ = writeln!(s, "<h1>EMA diagnostics - {}</h1>", e(&d.organization));
    let _ = writeln!(s, "<p>Support ID: <strong>{}</strong></p>", e(&d.support_id));
    if let Some(h) = &d.help_desk {
        let link = h.url.as_deref().map(|u| format!(" (<a href=\"{0}\">{0}</a>)", e(u))).unwrap_or_default();
        let _ = writeln!(s, "<p>Help desk: {}{link}</p>", e(&h.name));
    }
    let _ = writeln!(
        s,
        "<p>Created {} (UTC offset here: {}); {} on {}</p>",
        e(&d.generated_at),
        e(env["utc_offset"].as_str().unwrap_or("unknown")),
        e(&input.app),
        e(env["os_release"].as_str().unwrap_or("unknown OS"))
    );
    s.push_str("<h2>Summary</h2>\n<ul>\n");
    for line in summary_lines(input) {
        let _ = writeln!(s, "<li>{}</li>", e(&line));
    }
    s.push_str("</ul>\n<h2>Checks</h2>\n<table><tr><th>Check</th><th>Result</th><th>Found</th><th>Fix</th></tr>\n");
    for c in &d.checks {
        let class = match c.outcome {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"{class}\">{class}</td><td>{}</td><td>{}</td></tr>",
            e(&c.name),
            e(&c.summary),
            e(c.fix.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
