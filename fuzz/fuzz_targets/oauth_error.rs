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
    let text = String::from_utf8_lossy(body);
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        if looks_like_token(word) && word.len() >= 32 && !word.contains(['<', '>', '&', '%']) {
            let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
            // The error code is shown on purpose (validated, not scrubbed).
            if core.len() >= 32 && !"https://as.example.com/token".contains(core) && !code.contains(core) {
                assert!(!message.contains(core), "{message:?} contains {core:?}");
            }
        }
    }
});
