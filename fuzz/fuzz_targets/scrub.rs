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

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ema_core::redact::scrub;
use libfuzzer_sys::fuzz_target;

/// Characters that are not token characters (`redact.rs`: alphanumerics and `- _ . ~ + / =`).
const DELIMS: &[char] = &[
    ' ', '\n', '\t', '"', '\'', '(', ')', '[', ']', '{', '}', '<', '>', ',', ';', ':', '!', '|', '*', '?', '&', '#',
    '@', '\\', '`', '\r',
];
const PREFIXES: &[&str] = &[
    "lin_api_",
    "sbp_",
    "figd_",
    "ATATT",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "sk-",
    "sk_live_",
    "AKIA",
    "ya29.",
];
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

fn padded(m: &[u8], n: usize) -> Vec<u8> {
    let mut v = m.to_vec();
    let mut i = 0u8;
    while v.len() < n {
        v.push(0x5a ^ i);
        i = i.wrapping_add(37);
    }
    v
}

fn alnum(m: &[u8], min: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    padded(m, min).iter().take(64).map(|b| A[*b as usize % A.len()] as char).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

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
            let token = match s {
                0 => format!(
                    "eyJhbGciOiJFUzI1NiJ9.{}.{}",
                    URL_SAFE_NO_PAD.encode(padded(m, 8)),
                    URL_SAFE_NO_PAD.encode(padded(&m.iter().rev().copied().collect::<Vec<_>>(), 16))
                ),
                1 => URL_SAFE_NO_PAD.encode(padded(m, 24)),
                2 => STANDARD.encode(padded(m, 24)),
                3 => hex(&padded(m, 16)),
                _ => format!(
                    "{}{}",
                    PREFIXES[m.first().copied().unwrap_or(0) as usize % PREFIXES.len()],
                    alnum(m.get(1..).unwrap_or_default(), 6)
                ),
            };
            let encoded = match encoding % 4 {
                0 => token.clone(),
                1 => STANDARD.encode(&token),
                2 => URL_SAFE_NO_PAD.encode(&token),
                _ => url::form_urlencoded::byte_serialize(token.as_bytes()).collect(),
            };
            // Base64 of a short prefixed token is neither prefixed nor 32+ characters: not promised.
            let encoded = if matches!(encoding % 4, 1 | 2) && encoded.len() < 32 { token } else { encoded };
            // An opaque token is promised when at least 24 of its characters are letters or digits
            // (redact.rs: a run of slashes or dashes is not a token).
            if (1..=3).contains(&s) && encoded.chars().filter(char::is_ascii_alphanumeric).count() < 24 {
                return;
            }
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
