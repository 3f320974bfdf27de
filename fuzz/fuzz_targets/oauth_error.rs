//! OAuth error bodies (RFC 6749 §5.2, RFC 9470 §3 hints) as any endpoint may send them, and
//! the error built from any non-success response. Invariants: a parsed error code is 1-64
//! printable ASCII characters without space, quote or backslash; descriptions and details are
//! scrubbed (no token-shaped value of the body survives into the message).
#![no_main]

use ema_core::oauth::{OAuthErrorResponse, ResponseError};
use ema_core::redact::looks_like_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let code = OAuthErrorResponse::parse(body).map(|e| e.error.clone()).unwrap_or_default();
    if let Some(e) = OAuthErrorResponse::parse(body) {
        assert!(!e.error.is_empty() && e.error.len() <= 64);
        assert!(e.error.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
        let _ = e.summary();
    }
    let status = ema_fuzz::status_of(first);
    let err = ResponseError::from_response("https://as.example.com/token", status, body);
    let message = err.to_string();
    let _ = err.code();
    // Words of the body the scrubber promises to redact (whitespace-separated, token-shaped).
    // What is shown: control characters are dropped (`redact::scrub` does it first too).
    let text: String = String::from_utf8_lossy(body).chars().filter(|c| !c.is_control() || c.is_whitespace()).collect();
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        if looks_like_token(word) && word.len() >= 32 && !word.contains(['<', '>', '&', '%']) {
            let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
            // The error code is shown on purpose (validated, not scrubbed).
            if core.len() >= 32
                && !"https://as.example.com/token".contains(core)
                && !code.contains(core)
                && !inside_host_name(&text, core)
            {
                match url_path(&text, core) {
                    // `//host/path`: the host is kept, each segment of the path is checked.
                    Some(path) => {
                        for segment in path.split('/').filter(|s| looks_like_token(s)) {
                            assert!(!message.contains(segment), "{message:?} contains {segment:?}");
                        }
                    }
                    None => {
                        for (at, _) in message.match_indices(core) {
                            assert!(kept_url_path(&message, at, core), "{message:?} contains {core:?}");
                        }
                    }
                }
            }
        }
    }
});

/// Whether `core` occurs in `text` inside a host name `redact.rs` keeps on purpose: a long one
/// (more than two dots, lowercase DNS characters), or the host of a URL (`scheme://host`).
fn inside_host_name(text: &str, core: &str) -> bool {
    let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    text.match_indices(core).any(|(at, _)| {
        let start = text[..at].char_indices().rev().find(|&(_, c)| !dns(c)).map_or(0, |(i, c)| i + c.len_utf8());
        let end = text[at + core.len()..].find(|c: char| !dns(c)).map_or(text.len(), |i| at + core.len() + i);
        let host = text[start..end].trim_matches('.');
        // Labels as `redact.rs` reads them: a long one without a dash is a token.
        let labels = host.split('.').all(|l| l.len() < 32 || l.contains('-'));
        labels && (host.matches('.').count() > 2 || text[..start].ends_with("://"))
    })
}

/// The path of `core` when every occurrence of it in `text` is the rest of a URL, `//host/path`
/// with a plausible host name (lowercase DNS labels), which `redact.rs` checks segment by segment.
fn url_path<'a>(text: &str, core: &'a str) -> Option<&'a str> {
    let (host, path) = core.split_once('/')?;
    let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let plausible = !host.is_empty() && host.len() < 32 && host.chars().all(dns);
    let all_after_slashes = text.match_indices(core).all(|(at, _)| text[..at].ends_with("//"));
    (plausible && all_after_slashes).then_some(path)
}

/// Whether the occurrence of `core` at `at` in the message lies in the path of a URL
/// (`scheme://host/path`) the way `redact.rs` promises to keep one: spanning path segments
/// (each checked on its own, none a token), in a path that is not standard base64 split at its
/// slashes. The same characters may stand alone elsewhere in the body, where they are a token
/// (found by fuzzing: `"ample.com/e6ICJ…"` in the body, `s://as.example.com/e6ICJ…` in the
/// message).
fn kept_url_path(message: &str, at: usize, core: &str) -> bool {
    let token_char = |c: char| c.is_ascii_alphanumeric() || "-_.~+/=%".contains(c);
    let start = message[..at].char_indices().rev().find(|&(_, c)| !token_char(c)).map_or(0, |(i, c)| i + c.len_utf8());
    let end = message[at..].find(|c: char| !token_char(c)).map_or(message.len(), |i| at + i);
    let run = &message[start..end];
    let Some(rest) = run.strip_prefix("//").filter(|_| message[..start].ends_with(':')) else { return false };
    let Some((_host, path)) = rest.split_once('/') else { return false };
    let whole_base64 = (path.contains("//") || path.contains('+')) && looks_like_token(path);
    core.contains('/') && !whole_base64 && path.split('/').all(|seg| !looks_like_token(seg) || seg.len() < 32)
}
