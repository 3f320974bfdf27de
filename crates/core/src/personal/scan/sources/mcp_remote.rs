//! mcp-remote's OAuth token cache: `~/.mcp-auth/mcp-remote-<version>/<hash>_tokens.json`.
//!
//! Why this needs care: the cache does not record which server a token is for. The file name's
//! `<hash>` is the MD5 of the server URL as passed on mcp-remote's command line (newer versions
//! mix in extra options, then only the token's own claims can tell), so the URLs seen in the
//! configuration entries, the catalog's `mcp_url`s and the vendors' well-known hosts are hashed
//! and compared; failing that, a JWT's `aud`/`iss` is matched like a server URL. The
//! `<hash>_client_info.json` next to it (the dynamic client registration) is not needed and
//! not read.

use md5::{Digest, Md5};
use serde_json::Value;

use super::super::fsread::Dialect;
use super::super::known::KNOWN;
use super::super::{Client, Ctx, MatchBasis, ScanRoots, Scope, Site, entry};
use super::claude::oauth_grant;
use super::load;
use crate::jwt::decode_claims_unverified;

pub(super) fn caches(ctx: &mut Ctx<'_>, roots: &ScanRoots) {
    let base = roots.home.join(".mcp-auth");
    let dirs: Vec<_> = ctx
        .reader
        .subdirs(&base)
        .into_iter()
        .filter(|d| d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("mcp-remote")))
        .collect();
    if dirs.is_empty() {
        return;
    }
    let candidates = candidate_urls(ctx);
    for dir in dirs {
        for path in ctx.reader.files(&dir) {
            let Some(hash) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix("_tokens.json"))
            else {
                continue;
            };
            let hash = hash.to_ascii_lowercase();
            let Some(doc) = load(ctx, Client::McpRemote, Scope::TokenCache, &path, Dialect::Json) else {
                continue;
            };
            let str_of = |k: &str| doc.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let (access, refresh, id_token) = (str_of("access_token"), str_of("refresh_token"), str_of("id_token"));
            if access.is_none() && refresh.is_none() {
                continue;
            }
            let url = candidates.iter().find(|(h, _)| *h == hash).map(|(_, u)| u.as_str());
            let connector = match url {
                Some(u) => entry::match_server("", Some(u), ctx.catalog),
                None => match_by_claims(ctx, [id_token, access]),
            };
            let mut analysis = oauth_grant(ctx, access, refresh, [id_token, access], connector, url.is_some());
            let shown = url.map(shown_url);
            if let Some(u) = &shown {
                analysis.why.push_str(&format!(" on {u}"));
            }
            let site = Site { client: Client::McpRemote, scope: Scope::TokenCache, path: &path };
            ctx.record(&site, String::new(), shown, analysis);
        }
    }
}

/// `(md5 hex, url)` for every URL a cache file may be named after.
fn candidate_urls(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let mut urls: Vec<String> = ctx.seen_urls.clone();
    for c in ctx.catalog.connectors() {
        urls.push(c.mcp_url.as_str().to_string());
        if let Some(host) = c.mcp_url.host_str()
            && let Some(k) = KNOWN.iter().find(|k| k.id == c.id)
        {
            for h in k.hosts.iter().copied().chain(std::iter::once(host)) {
                for path in ["", "/", "/mcp", "/sse", "/v1/mcp", "/v1/sse"] {
                    urls.push(format!("https://{h}{path}"));
                }
            }
        }
    }
    let mut extra = Vec::new();
    for u in &urls {
        // Users type URLs with and without a trailing slash; `Url` adds one to a bare origin.
        match u.strip_suffix('/') {
            Some(s) => extra.push(s.to_string()),
            None => extra.push(format!("{u}/")),
        }
    }
    urls.extend(extra);
    urls.sort();
    urls.dedup();
    urls.into_iter().map(|u| (md5_hex(&u), u)).collect()
}

fn md5_hex(s: &str) -> String {
    crate::digest::hex(&Md5::digest(s.as_bytes()))
}

/// A JWT's audience or issuer that is (on) a connector's server.
fn match_by_claims(ctx: &Ctx<'_>, tokens: [Option<&str>; 2]) -> Option<(String, MatchBasis)> {
    for token in tokens.into_iter().flatten() {
        let Ok(claims) = decode_claims_unverified(token) else {
            continue;
        };
        let mut values: Vec<&str> = Vec::new();
        match claims.get("aud") {
            Some(Value::String(s)) => values.push(s),
            Some(Value::Array(a)) => values.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
        values.extend(claims.get("iss").and_then(Value::as_str));
        if let Some(m) = values.into_iter().find_map(|v| entry::match_server("", Some(v), ctx.catalog)) {
            return Some(m);
        }
    }
    None
}

/// A URL without its query, fragment or user info, and with token-shaped path segments (a
/// Zapier-style key in the path) replaced, for messages.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let path: Vec<String> = u
                .path_segments()
                .map(|segs| {
                    segs.map(|s| if crate::redact::looks_like_token(s) { "[redacted]".into() } else { s.to_string() })
                        .collect()
                })
                .unwrap_or_default();
            if !path.is_empty() {
                u.set_path(&path.join("/"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn a_shown_url_keeps_no_key_in_query_user_info_or_path() {
        let shown =
            shown_url("https://user:pw@mcp.example.com/api/v1/sk_live_4eC39HqLyjWDarjtT1zdp7dcAbCdEf123/mcp?key=abc#x");
        assert_eq!(shown, "https://mcp.example.com/api/v1/[redacted]/mcp");
        assert_eq!(shown_url("https://mcp.linear.app/sse"), "https://mcp.linear.app/sse");
    }
}
