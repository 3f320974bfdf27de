//! Scrubbing of untrusted text before it reaches status, logs or diagnostics.
//!
//! Server error descriptions and parser messages are not ours: a misbehaving server may echo
//! the assertion we sent. [`scrub`] replaces anything shaped like a JWT or a long opaque
//! token with `[redacted]`, drops control characters and truncates.

/// Replaces token-like words, strips control characters and truncates to `max_chars`.
pub fn scrub(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    // Any whitespace separates words: control characters are dropped below, so a token after
    // a newline or tab would otherwise be glued to the previous word and escape detection.
    for (i, word) in text.split(char::is_whitespace).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if looks_like_token(word) {
            out.push_str("[redacted]");
        } else {
            scrub_runs(word, &mut out);
        }
    }
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect::<String>() + "…";
    }
    out
}

/// A word with a token inside punctuation (a server echoing `{"assertion":"eyJ…"}`, a form
/// body `…&assertion=eyJ…`, `assertion:eyJ…`): each run of token characters is checked on its
/// own. A run starting with `//` is the rest of a URL (`https` `://` `host/path`) and is kept.
fn scrub_runs(word: &str, out: &mut String) {
    let mut rest = word;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        if !run.starts_with("//") && looks_like_token(run) {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        let end = tail.find(is_token_char).unwrap_or(tail.len());
        let (separators, tail) = tail.split_at(end);
        out.extend(separators.chars().filter(|c| !c.is_control()));
        rest = tail;
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// A JWT (three base64url parts) or a run of 32+ token characters.
pub fn looks_like_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.');
    if w.len() >= 32 && w.chars().all(is_token_char) && !w.contains("://") {
        // A JOSE object (JWS or JWE: its header `{"` is `eyJ` in base64url) whatever its dots.
        // Otherwise a long dotted host name is not a token: require few dots (a sentence's
        // final full stop does not count).
        return w.starts_with("eyJ") || w.contains("=eyJ") || w.trim_matches('.').matches('.').count() <= 2;
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
    fn tokens_inside_punctuation_or_after_other_whitespace_are_redacted() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        for (text, expected) in [
            (format!("rejected:\n{jwt}"), "rejected: [redacted]".to_string()),
            (format!("assertion\t{jwt}"), "assertion [redacted]".to_string()),
            (format!("Invalid assertion {jwt}."), "Invalid assertion [redacted]".to_string()),
            (format!("assertion:{jwt}"), "assertion:[redacted]".to_string()),
            (format!(r#"{{"assertion":"{jwt}"}}"#), r#"{"assertion":"[redacted]"}"#.to_string()),
            (format!("grant_type=x&assertion={jwt}&scope=read"), "grant_type=x&[redacted]&scope=read".to_string()),
            (format!("jwe {jwt}.aGVsbG8.d29ybGQ"), "jwe [redacted]".to_string()),
            (
                "see https://idp.example.com/docs/errors/access-denied-explained?code=x".to_string(),
                "see https://idp.example.com/docs/errors/access-denied-explained?code=x".to_string(),
            ),
        ] {
            assert_eq!(scrub(&text, 200), expected, "{text}");
        }
    }

    #[test]
    fn truncates_and_strips_control_characters() {
        assert_eq!(scrub("a\u{1b}[31mb", 200), "a[31mb");
        assert_eq!(scrub(&"x ".repeat(200), 10).chars().count(), 11);
    }
}
