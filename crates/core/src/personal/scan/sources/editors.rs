//! Cursor and Windsurf: both keep a Claude-style `mcpServers` map.
//!
//! Cursor: `~/.cursor/mcp.json` and a project's `.cursor/mcp.json`. Windsurf:
//! `~/.codeium/windsurf/mcp_config.json` (its remote entries may say `serverUrl`).

use std::path::Path;

use super::super::fsread::Dialect;
use super::super::{Client, Ctx, ScanRoots, Scope, Site};
use super::{load, servers};

pub(super) fn user(ctx: &mut Ctx<'_>, roots: &ScanRoots) {
    let cursor = roots.home.join(".cursor").join("mcp.json");
    let windsurf = roots.home.join(".codeium").join("windsurf").join("mcp_config.json");
    for (client, path) in [(Client::Cursor, cursor), (Client::Windsurf, windsurf)] {
        let site = Site { client, scope: Scope::User, path: &path };
        if let Some(doc) = load(ctx, client, Scope::User, &path, Dialect::Json) {
            servers(ctx, &site, &doc, &["mcpServers"]);
        }
    }
}

pub(super) fn cursor_project(ctx: &mut Ctx<'_>, dir: &Path) {
    let path = dir.join(".cursor").join("mcp.json");
    let site = Site { client: Client::Cursor, scope: Scope::Project, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Json) {
        servers(ctx, &site, &doc, &["mcpServers"]);
    }
}
