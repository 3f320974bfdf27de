//! Claude Desktop and Claude Code.
//!
//! - Claude Desktop: `<app config>/Claude/claude_desktop_config.json`, `mcpServers`.
//! - Claude Code: `~/.claude.json` (`mcpServers` = user scope, `projects["<path>"].mcpServers` =
//!   local scope), `<project>/.mcp.json` (project scope), `managed-mcp.json` in the managed
//!   directories, and the OAuth cache `~/.claude/.credentials.json` (`mcpOAuth`). On macOS that
//!   cache is in the Keychain (`Claude Code-credentials`), which this scan does not open.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::fsread::Dialect;
use super::super::identity::identify;
use super::super::{Client, CredentialClass, Ctx, IdentityKind, MatchBasis, Scope, Site, entry};
use super::{load, servers};
use crate::personal::scan::json_pointer;
use crate::secret::Fingerprint;

pub(super) fn desktop(ctx: &mut Ctx<'_>, roots: &crate::personal::scan::ScanRoots) {
    let path = roots.app_config_dir.join("Claude").join("claude_desktop_config.json");
    let site = Site { client: Client::ClaudeDesktop, scope: Scope::User, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Json) {
        servers(ctx, &site, &doc, &["mcpServers"]);
    }
}

/// Reads `~/.claude.json`; returns the project directories it lists.
pub(super) fn code_user(ctx: &mut Ctx<'_>, roots: &crate::personal::scan::ScanRoots) -> Vec<PathBuf> {
    let path = roots.home.join(".claude.json");
    let Some(doc) = load(ctx, Client::ClaudeCode, Scope::User, &path, Dialect::Json) else {
        return Vec::new();
    };
    servers(ctx, &Site { client: Client::ClaudeCode, scope: Scope::User, path: &path }, &doc, &["mcpServers"]);
    let mut projects = Vec::new();
    if let Some(map) = doc.get("projects").and_then(Value::as_object) {
        let local = Site { client: Client::ClaudeCode, scope: Scope::Local, path: &path };
        for key in map.keys() {
            servers(ctx, &local, &doc, &["projects", key, "mcpServers"]);
            let dir = PathBuf::from(key);
            // A relative key has no base to resolve against: skip it rather than guess.
            if dir.is_absolute() {
                projects.push(dir);
            }
        }
    }
    projects
}

pub(super) fn project(ctx: &mut Ctx<'_>, dir: &Path) {
    let path = dir.join(".mcp.json");
    let site = Site { client: Client::ClaudeCode, scope: Scope::Project, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Json) {
        servers(ctx, &site, &doc, &["mcpServers"]);
    }
}

pub(super) fn managed(ctx: &mut Ctx<'_>, roots: &crate::personal::scan::ScanRoots) {
    for dir in &roots.managed_dirs {
        let path = dir.join("managed-mcp.json");
        let site = Site { client: Client::ClaudeCode, scope: Scope::Managed, path: &path };
        if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Json) {
            servers(ctx, &site, &doc, &["mcpServers"]);
        }
    }
}

/// `~/.claude/.credentials.json` `mcpOAuth`: `{"<name>|<hash>": {serverName, serverUrl,
/// accessToken, refreshToken, expiresAt, ...}}`. Other keys (Claude's own login) are not read.
pub(super) fn oauth_cache(ctx: &mut Ctx<'_>, roots: &crate::personal::scan::ScanRoots) {
    let path = roots.home.join(".claude").join(".credentials.json");
    let Some(doc) = load(ctx, Client::ClaudeCode, Scope::TokenCache, &path, Dialect::Json) else {
        return;
    };
    let Some(map) = doc.get("mcpOAuth").and_then(Value::as_object) else {
        return;
    };
    let site = Site { client: Client::ClaudeCode, scope: Scope::TokenCache, path: &path };
    for (key, grant) in map {
        let str_of = |k: &str| grant.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let (access, refresh) = (str_of("accessToken"), str_of("refreshToken"));
        if access.is_none() && refresh.is_none() {
            continue;
        }
        let name = str_of("serverName").map(str::to_string);
        let url = str_of("serverUrl");
        let connector = entry::match_server(name.as_deref().unwrap_or(""), url, ctx.catalog);
        let analysis = oauth_grant(ctx, access, refresh, [access, str_of("idToken")], connector, url.is_some());
        ctx.record(&site, json_pointer(["mcpOAuth", key.as_str()]), name, analysis);
    }
}

/// The analysis of a cached OAuth grant, shared with mcp-remote.
pub(super) fn oauth_grant(
    ctx: &Ctx<'_>,
    access: Option<&str>,
    refresh: Option<&str>,
    readable: [Option<&str>; 2],
    connector: Option<(String, MatchBasis)>,
    has_url: bool,
) -> entry::Analysis {
    let id = identify(readable.into_iter().flatten(), ctx.company);
    let who = match (&id.kind, &id.email, &id.issuer) {
        (IdentityKind::Unknown, _, Some(iss)) => format!("an account the token does not name (issuer {iss})"),
        (IdentityKind::Unknown, _, None) => "an account the token does not name (the token is opaque)".to_string(),
        (_, Some(email), _) => format!("the account {email}"),
        (_, None, Some(iss)) => format!("an account from the issuer {iss}"),
        (_, None, None) => "an unnamed account".to_string(),
    };
    let why = format!("A cached OAuth sign-in{} for {who}", if has_url { "" } else { " (server URL not recorded)" });
    entry::Analysis {
        class: CredentialClass::PersonalOAuth { identity: id.kind, email: id.email, issuer: id.issuer },
        // The access token is what a server sees; the refresh token when no access token is left.
        fingerprint: access.or(refresh).map(Fingerprint::of),
        why,
        connector,
        urls: Vec::new(),
    }
}
