//! Scrubbing of untrusted text before it reaches status, logs or diagnostics.
//!
//! Server error descriptions and parser messages are not ours: a misbehaving server may echo
//! the assertion we sent. [`scrub`] replaces anything shaped like a JWT or a long opaque
//! token with `[redacted]`, drops control characters and truncates.

/// Replaces token-like words, strips control characters and truncates to `max_chars`.
pub fn scrub(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if looks_like_token(word) {
            out.push_str("[redacted]");
        } else {
            out.extend(word.chars().filter(|c| !c.is_control()));
        }
    }
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect::<String>() + "…";
    }
    out
}

/// A JWT (three base64url parts) or a run of 32+ token characters.
pub fn looks_like_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
    let tokenish = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=');
    if w.len() >= 32 && w.chars().all(tokenish) && !w.contains("://") {
        // A long dotted host name is not a token: require few dots relative to length.
        return w.matches('.').count() <= 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_and_long_tokens_are_redacted_prose_is_kept() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let s = scrub(&format!("assertion {jwt} was replayed"), 200);
        assert_eq!(s, "assertion [redacted] was replayed");
        let s = scrub("token sk_live_0123456789abcdef0123456789abcdef is bad", 200);
        assert_eq!(s, "token [redacted] is bad");
        assert_eq!(scrub("jti already used", 200), "jti already used");
        assert_eq!(
            scrub("see https://idp.example.com/docs/errors/access-denied-explained", 200),
            "see https://idp.example.com/docs/errors/access-denied-explained"
        );
    }

    #[test]
    fn truncates_and_strips_control_characters() {
        assert_eq!(scrub("a\u{1b}[31mb", 200), "a[31mb");
        assert_eq!(scrub(&"x ".repeat(200), 10).chars().count(), 11);
    }
}
