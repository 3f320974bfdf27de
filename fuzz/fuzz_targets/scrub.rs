//! The scrubber (`redact::scrub`), which stands between server text and status, logs,
//! notifications and diagnostics.
//!
//! A token is planted in fuzzed text and must not survive. The token shapes are exactly those
//! `redact.rs` documents:
//! - a JWT (`eyJ…` header, three base64url parts);
//! - a long opaque token: 32+ token characters, base64url, standard base64 (`+ / =`) or hex;
//! - a word starting with a known secret prefix (`ghp_`, `sk-`, `lin_api_`, ...) and 6+ more characters;
//! - the word after `Bearer`;
//! - the value of a parameter named like a secret (`code=`, `client_secret=`, ...).
//!
//! Encodings (the first three shapes and prefixed tokens): raw, base64 (standard and url-safe,
//! which makes 32+ token characters of any token) and percent-encoded. Places: between any two
//! non-token characters, as a URL path segment (with or without a port), as a URL query value,
//! as a JSON string value. The surrounding text is fuzzed; inputs whose surrounding text
//! already holds the token are skipped. Invariant: the planted (encoded) token is not in the
//! output.
#![no_main]

use ema_core::redact::scrub;
use ema_fuzz::{DELIMS, alnum};
use libfuzzer_sys::fuzz_target;

const PARAMS: &[&str] = &[
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "assertion",
    "client_secret",
    "password",
    "api_key",
    "code_verifier",
];
const HOSTS: &[&str] = &["evil.example", "idp.example.com", "127.0.0.1", "h", "[::1]"];

fuzz_target!(|data: &[u8]| {
    let [shape, encoding, place, delims, rest @ ..] = data else { return };
    let parts = ema_fuzz::split(rest, 3);
    let (Ok(prefix), Ok(suffix)) = (std::str::from_utf8(parts[0]), std::str::from_utf8(parts[2])) else { return };
    let m = parts[1];
    let mut d1 = DELIMS[*delims as usize % DELIMS.len()];
    let d2 = DELIMS[(*delims as usize / DELIMS.len()) % DELIMS.len()];

    // The planted text and the strings that must not appear in the output.
    let (planted, forbidden): (String, String) = match shape % 7 {
        5 => {
            // "the word after Bearer": `Bearer` must be a word of its own.
            if !d1.is_whitespace() {
                d1 = ' ';
            }
            let word = alnum(m, 1);
            (format!("Bearer {word}"), format!("Bearer {word}"))
        }
        6 => {
            let p = PARAMS[m.first().copied().unwrap_or(0) as usize % PARAMS.len()];
            let v = alnum(m.get(1..).unwrap_or_default(), 1);
            (format!("{p}={v}"), format!("{p}={v}"))
        }
        s => {
            let Some(encoded) = ema_fuzz::planted_secret(s, *encoding, m) else { return };
            let host = HOSTS[(*encoding as usize / 4) % HOSTS.len()];
            let port = if encoding & 0x80 != 0 { ":8443" } else { "" };
            let placed = match place % 4 {
                0 => encoded.clone(),
                // A `/` inside a path is a segment separator (RFC 3986 §3.3): standard base64 with a
                // `/` in a URL path is not one segment, and the scrubber cannot tell it from a path.
                1 if encoded.contains('/') => return,
                1 => format!("https://{host}{port}/reset/{encoded}/x"),
                2 => format!("https://{host}{port}/cb?x={encoded}&y=1"),
                _ => format!("{{\"k\":\"{encoded}\"}}"),
            };
            (placed, encoded)
        }
    };
    let text = format!("{prefix}{d1}{planted}{d2}{suffix}");
    let visible: String = text.chars().filter(|c| !c.is_control()).collect();
    if visible.matches(forbidden.as_str()).count() != 1 {
        return;
    }
    let out = scrub(&text, 1_000_000);
    assert!(!out.contains(forbidden.as_str()), "scrub kept {forbidden:?}\n in: {text:?}\nout: {out:?}");
    let _ = scrub(&text, *place as usize);
});
