//! OAuth error bodies (RFC 6749 §5.2, RFC 9470 §3 hints) as any endpoint may send them, and
//! the error built from any non-success response (`ResponseError::from_response`).
//!
//! Two contracts, checked on every input:
//! - **Any body**: the whole input after its header bytes is sent as the body. A parsed error
//!   code is 1-64 printable ASCII characters without space, quote or backslash; nothing panics.
//! - **A planted secret never shows**: a secret of a shape `redact.rs` promises to redact
//!   (`ema_fuzz::planted_secret`: JWT, base64url, base64, hex, known prefix; raw, base64- or
//!   percent-encoded) is put into a body the way a server echoing our request would: inside
//!   `error_description` or `error_uri` (JSON-escaped, or with a character written as a `\u`
//!   escape), in a plain-text body, or in fuzzed text around it that may or may not be JSON.
//!   Whatever the server's text around it, the message must not contain the secret.
//!
//! The second contract replaces a check of the raw body's words against the message, which had
//! to mirror the scrubber's rules and disagreed with it where JSON decoding joined or split
//! words (docs/fuzzing.md, "Harness history").
#![no_main]

use ema_core::oauth::{OAuthErrorResponse, ResponseError};
use ema_core::status::{ErrorCode, Leg};
use ema_fuzz::DELIMS;
use libfuzzer_sys::fuzz_target;

const ENDPOINT: &str = "https://as.example.com/token";

fuzz_target!(|data: &[u8]| {
    let [status, shape, encoding, place, delims, rest @ ..] = data else { return };
    let status = ema_fuzz::status_of(*status);
    any_body(status, rest);

    let parts = ema_fuzz::split(rest, 3);
    let (Ok(prefix), Ok(suffix)) = (std::str::from_utf8(parts[0]), std::str::from_utf8(parts[2])) else { return };
    let Some(secret) = ema_fuzz::planted_secret(*shape, *encoding, parts[1]) else { return };
    let d1 = DELIMS[*delims as usize % DELIMS.len()];
    let d2 = DELIMS[(*delims as usize / DELIMS.len()) % DELIMS.len()];
    let text = format!("{prefix}{d1}{secret}{d2}{suffix}");
    // The server's own text must not hold the secret already (nor make it from its pieces).
    let visible: String = text.chars().filter(|c| !c.is_control()).collect();
    if visible.matches(secret.as_str()).count() != 1 {
        return;
    }
    let body = match place % 5 {
        0 => serde_json::json!({"error": "invalid_grant", "error_description": text}).to_string(),
        1 => serde_json::json!({"error": "invalid_client", "error_uri": text}).to_string(),
        // The same JSON with the secret's first character written as a `\u` escape: what the
        // message shows is the decoded string.
        2 => {
            let json = serde_json::json!({"error": "invalid_grant", "error_description": text}).to_string();
            let escaped = secret.chars().next().map(|c| format!("\\u{:04x}", c as u32)).unwrap_or_default();
            if json.matches(secret.as_str()).count() != 1 {
                return;
            }
            json.replacen(secret.as_str(), &format!("{escaped}{}", &secret[1..]), 1)
        }
        // Not JSON, or JSON of the fuzzer's making: shown as the HTTP error's scrubbed detail.
        _ => text.clone(),
    };
    // In the fuzzer's own JSON, a `\` before or after the secret would be an escape, not a
    // delimiter (eating the secret's first character, or gluing it to the text around).
    if *place % 5 >= 3 && (d1 == '\\' || d2 == '\\') {
        return;
    }
    // What is kept of the body (`error_uri` is not in the message, but is kept and may be shown).
    if let Some(e) = OAuthErrorResponse::parse(body.as_bytes()) {
        for kept in [&e.error_description, &e.error_uri].into_iter().flatten() {
            assert!(
                !kept.contains(secret.as_str()),
                "a parsed field keeps the planted secret {secret:?}\nbody: {body:?}\nfield: {kept:?}"
            );
        }
    }
    let message = ResponseError::from_response(ENDPOINT, status, body.as_bytes()).to_string();
    assert!(
        !message.contains(secret.as_str()),
        "the message shows the planted secret {secret:?}\nbody: {body:?}\nmessage: {message:?}"
    );
});

/// The contract for any body: codes are well-formed, building and printing never panics.
fn any_body(status: u16, body: &[u8]) {
    if let Some(e) = OAuthErrorResponse::parse(body) {
        assert!(!e.error.is_empty() && e.error.len() <= 64);
        assert!(e.error.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
        let _ = e.summary();
    }
    let err = ResponseError::from_response(ENDPOINT, status, body);
    let _ = err.to_string();
    // The code as the status JSON writes it, the server's `error` included: still one token of
    // printable ASCII (docs/status-schema.md).
    let code = ErrorCode::Response(Leg::ConnectorGrant, err.kind()).wire(err.oauth_error());
    assert!(!code.is_empty() && code.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"'), "{code:?}");
}
