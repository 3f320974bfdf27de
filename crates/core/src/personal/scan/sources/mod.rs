//! Where each client keeps its MCP servers and tokens, one module per client family.
//!
//! Why separate: file locations and shapes change per client release; each module is the one
//! place that knows one family's layout (see `docs` "Where personal connections hide") and
//! hands entries to the shared analysis in `entry.rs`.

mod claude;
mod editors;
mod mcp_remote;
mod vscode;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fsread::{Dialect, Parsed};
use super::{Client, Ctx, ScanRoots, Scope, Site, entry, json_pointer};

/// Runs every source. mcp-remote goes last: its file names are hashes of server URLs, and the
/// configuration entries seen before are the candidates.
pub(super) fn scan_all(ctx: &mut Ctx<'_>, roots: &ScanRoots) {
    claude::desktop(ctx, roots);
    let listed = claude::code_user(ctx, roots);
    claude::managed(ctx, roots);
    vscode::user(ctx, roots);
    editors::user(ctx, roots);

    let mut projects: Vec<PathBuf> = roots.project_dirs.clone();
    projects.extend(listed);
    let mut seen = std::collections::HashSet::new();
    projects.retain(|p| seen.insert(p.clone()));
    for dir in &projects {
        claude::project(ctx, dir);
        vscode::workspace(ctx, dir);
        editors::cursor_project(ctx, dir);
    }

    claude::oauth_cache(ctx, roots);
    mcp_remote::caches(ctx, roots);
}

/// Reads a JSON file; a missing file is `None`, an unreadable one a finding and `None`.
fn load(ctx: &mut Ctx<'_>, client: Client, scope: Scope, path: &Path, dialect: Dialect) -> Option<Value> {
    match ctx.reader.read_json(path, dialect) {
        Parsed::Missing => None,
        Parsed::Failed(reason) => {
            ctx.could_not_read(client, scope, path, reason);
            None
        }
        Parsed::Json(v) => Some(v),
    }
}

/// Analyses every entry of the server map at `at` (unescaped key path) inside `doc`.
fn servers(ctx: &mut Ctx<'_>, site: &Site<'_>, doc: &Value, at: &[&str]) {
    let mut node = doc;
    for key in at {
        match node.get(*key) {
            Some(n) => node = n,
            None => return,
        }
    }
    let Some(map) = node.as_object() else {
        return;
    };
    for (name, value) in map {
        let Some(obj) = value.as_object() else {
            continue;
        };
        let analysis = entry::analyse(name, obj, ctx.catalog);
        ctx.seen_urls.extend(analysis.urls.iter().cloned());
        let key_path = json_pointer(at.iter().copied().chain(std::iter::once(name.as_str())));
        ctx.record(site, key_path, Some(name.clone()), analysis);
    }
}
