//! VS Code (stable and Insiders).
//!
//! User `mcp.json` (`servers`) and the older `settings.json` key `mcp.servers` (written flat,
//! `"mcp.servers"`, or nested, `"mcp": {"servers"}`) in `<app config>/Code/User/` and in each
//! profile's `User/profiles/<id>/`, and a workspace's `.vscode/mcp.json`. These files are JSONC (comments, trailing commas), parsed
//! with `jsonc-parser`. Secrets typed into `inputs` prompts live in VS Code's secret storage,
//! not here: an entry that references one is reported without a fingerprint.

use std::path::Path;

use super::super::fsread::Dialect;
use super::super::{Client, Ctx, ScanRoots, Scope, Site};
use super::{load, servers};

const PRODUCTS: &[&str] = &["Code", "Code - Insiders"];

pub(super) fn user(ctx: &mut Ctx<'_>, roots: &ScanRoots) {
    for product in PRODUCTS {
        let user = roots.app_config_dir.join(product).join("User");
        // Each profile (`User/profiles/<id>/`) has its own MCP servers and settings.
        let profiles = ctx.reader.subdirs(&user.join("profiles"));
        for dir in std::iter::once(user).chain(profiles) {
            user_files(ctx, &dir);
        }
    }
}

fn user_files(ctx: &mut Ctx<'_>, dir: &Path) {
    let path = dir.join("mcp.json");
    let site = Site { client: Client::VsCode, scope: Scope::User, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Jsonc) {
        servers(ctx, &site, &doc, &["servers"]);
    }
    let path = dir.join("settings.json");
    let site = Site { client: Client::VsCode, scope: Scope::User, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Jsonc) {
        servers(ctx, &site, &doc, &["mcp.servers"]);
        servers(ctx, &site, &doc, &["mcp", "servers"]);
    }
}

pub(super) fn workspace(ctx: &mut Ctx<'_>, dir: &Path) {
    let path = dir.join(".vscode").join("mcp.json");
    let site = Site { client: Client::VsCode, scope: Scope::Project, path: &path };
    if let Some(doc) = load(ctx, site.client, site.scope, &path, Dialect::Jsonc) {
        servers(ctx, &site, &doc, &["servers"]);
    }
}
