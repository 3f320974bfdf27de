//! Scrubbing of untrusted text before it reaches status, logs or diagnostics.
//!
//! Server error descriptions and parser messages are not ours: a misbehaving server may echo
//! the assertion we sent. [`scrub`] replaces with `[redacted]`, whatever their length:
//! - anything shaped like a JWT or a long opaque token (32+ token characters, 24 of them letters
//!   or digits: base64, hex);
//! - the word after `Bearer` or `Basic`;
//! - a word starting with a known secret prefix (`sbp_`, `lin_api_`, `ghp_`, `sk-`, ...);
//! - the value of a query or form parameter named like a secret (`code`, `token`,
//!   `client_secret`, `assertion`, ...);
//!
//! and drops control characters and truncates.

/// Replaces token-like words, strips control characters and truncates to `max_chars`.
pub fn scrub(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut after_scheme = false;
    // The previous word ended with a quoted secret name and a colon (`{"access_token": "…"}`).
    let mut value_of_secret = false;
    // Control characters are dropped before words are read, so that what is checked is what is
    // shown: dropped afterwards, `eyJ…\0…` glued two harmless runs into a token (found by
    // fuzzing). Whitespace ones (newline, tab) separate words, as any whitespace does.
    let text: String = text.chars().filter(|c| !c.is_control() || c.is_whitespace()).collect();
    for (i, word) in text.split(char::is_whitespace).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if looks_like_token(word) || (after_scheme && !word.is_empty()) {
            out.push_str("[redacted]");
            value_of_secret = false;
        } else if !word.is_empty() {
            value_of_secret = scrub_runs(word, &mut out, value_of_secret);
        }
        if !word.is_empty() {
            let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            after_scheme = bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("basic");
        }
    }
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect::<String>() + "…";
    }
    out
}

/// A word with a token inside punctuation (a server echoing `{"assertion":"eyJ…"}`, a form
/// body `…&assertion=eyJ…`, `assertion:eyJ…`): each run of token characters is checked on its
/// own. A run starting with `//` is the rest of a URL (`https` `://` `host/path`): its host is
/// kept, and each path segment is checked on its own. `value_of_secret` says the previous word
/// ended with a quoted secret name and a colon; the return value says the same of this word.
fn scrub_runs(word: &str, out: &mut String, mut value_of_secret: bool) -> bool {
    let mut rest = word;
    // Whether the previous run named a secret and was followed by `:` (JSON `"token":"..."`).
    let mut quoted_name = false;
    // The previous run was a URL's host (`//host`) followed by `:`: this run is a port and path.
    let mut after_host = false;
    // The previous run was a URL scheme followed by `:` (`https:`): a run starting with `//` is
    // the rest of a URL. Without a scheme, `//…` is read as a token (standard base64 may start
    // with `//`; found by fuzzing: `//9jUW92…` was kept as a "host" and short path segments).
    let mut after_scheme = false;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        if value_of_secret && !run.is_empty() {
            out.push_str("[redacted]");
        } else if after_host && run.starts_with(|c: char| c.is_ascii_digit()) {
            // `41587/idp/.well-known/openid-configuration`: keep the port and the path, but not
            // a path segment that is itself a token.
            scrub_path(run, out);
        } else if let Some(url_rest) = run.strip_prefix("//").filter(|_| after_scheme) {
            // `//host/path`: the host is kept (a long host name is not a token), the path is
            // checked segment by segment (issue 14 item 8: `https://evil.example/eyJ…`).
            // Anything else after `//` is not a URL: it is redacted whole, path included (a
            // fuzzed `//lin_api_/////ZZ…` kept its tail as a "path").
            let (host, path) = url_rest.split_once('/').map_or((url_rest, None), |(h, p)| (h, Some(p)));
            out.push_str("//");
            // An empty host is kept only without a path: the run of `http://[::1]:8080` stops
            // at `[` (a fuzzed `/////lin_api_///…` was kept as an empty host and a path).
            if !(is_host_name(host) && !(host.is_empty() && path.is_some())) {
                out.push_str("[redacted]");
            } else {
                out.push_str(host);
                if let Some(path) = path {
                    out.push('/');
                    scrub_path(path, out);
                }
            }
        } else if push_redacted_assignment(run, out) {
            // Written: `name=[redacted]`.
        } else if is_secret(run) {
            out.push_str("[redacted]");
        } else if run.contains('/') {
            // A URL without its scheme (`evil.example/eyJ…`) or another path.
            scrub_path(run, out);
        } else {
            out.push_str(run);
        }
        let end = tail.find(is_token_char).unwrap_or(tail.len());
        let (separators, tail) = tail.split_at(end);
        out.push_str(separators);
        if !run.is_empty() {
            value_of_secret = !value_of_secret && is_secret_parameter(run) && separators.contains(':');
            quoted_name = value_of_secret && separators.starts_with(['"', '\'']);
        }
        after_host = after_scheme && run.starts_with("//") && separators == ":";
        after_scheme = separators == ":" && is_scheme(run);
        rest = tail;
    }
    // Only a quoted name carries over a space: prose such as "error code: 400" does not.
    value_of_secret && quoted_name
}

/// A plausible host of a URL (its run stops before any `:port`): DNS labels of letters, digits
/// and `-`, at most 63 characters each, not a JOSE object (a fuzzed `//aor_WQtam…` was kept as a
/// "host"). An IPv6 literal's run stops at `[`, so it is empty here.
fn is_host_name(name: &str) -> bool {
    let labels = |name: &str| name.split('.').all(dns_label);
    // A long name is a host only if it reads like one: dotted, lowercase (tokens are mixed case).
    (!is_secret(name) && labels(name))
        || (name.contains('.')
            && !name.starts_with("eyJ")
            && !name.contains(|c: char| c.is_ascii_uppercase())
            && labels(name))
}

/// A DNS label that is not a token in disguise: at most 63 letters, digits and `-`, and a label
/// of 32 or more has a `-` (`my-company-identity-provider-prod`); a long one without is a hex or
/// base64 token (found by fuzzing: `999.999.999.ffff…` kept a 56-character hex run as a "host").
fn dns_label(label: &str) -> bool {
    label.len() <= 63
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (label.len() < 32 || label.contains('-'))
}

/// Whether a run ends with a URL scheme (RFC 3986 §3.1: a letter, then letters, digits, `+`,
/// `-` or `.`), as in `https` or `endpoint=https`.
fn is_scheme(run: &str) -> bool {
    let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    let scheme = run.rsplit(|c: char| !scheme_char(c)).next().unwrap_or_default();
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// A token-shaped word or one with a known secret prefix (at its start, or for the distinctive
/// prefixes anywhere in it: `mcplin_api_…` hid a Linear key in a URL path; found by fuzzing).
fn is_secret(s: &str) -> bool {
    looks_like_token(s) || has_known_secret_prefix(s)
}

/// A known secret prefix at the start of `s` (and 6+ characters after it), or a distinctive one
/// anywhere in it: a secret whatever its length (`glpat-…` is 26 characters).
pub fn has_known_secret_prefix(s: &str) -> bool {
    has_secret_prefix(s) || has_distinctive_prefix_inside(s)
}

/// A prefix no ordinary word contains (`lin_api_`, `ghp_`, `github_pat_`, ...), followed by at
/// least 6 more characters, anywhere in `s`. The short or word-like prefixes (`sk-`, `AKIA`,
/// `ya29.`) count only at the start: "desk-top" is a word.
fn has_distinctive_prefix_inside(s: &str) -> bool {
    SECRET_PREFIXES
        .iter()
        .filter(|p| p.contains('_') || p.ends_with('-') && p.len() >= 5)
        .any(|p| s.match_indices(p).any(|(at, _)| s.len() >= at + p.len() + 6))
}

/// `name=value` whose value is a secret (by the name, or by its own shape): writes
/// `name=[redacted]` and returns true; anything else writes nothing and returns false.
fn push_redacted_assignment(piece: &str, out: &mut String) -> bool {
    match piece.split_once('=') {
        Some((name, value)) if !value.is_empty() && (is_secret_parameter(name) || is_secret(value)) => {
            // A token-shaped name is no name (found by fuzzing: `GUuY29t…Oioken=…`).
            out.push_str(if is_secret(name) { "[redacted]" } else { name });
            out.push_str("=[redacted]");
            true
        }
        _ => false,
    }
}

/// A URL path (`a/b/c`, maybe with `name=value` segments): token-shaped segments are redacted.
/// A path that is itself token-shaped and has an empty segment or a `+` is standard base64
/// split at its slashes, not a path: it is redacted whole (found by fuzzing:
/// `lin_api_///lin_kpi_//////MyNTYi…` showed in pieces shorter than 32).
fn scrub_path(path: &str, out: &mut String) {
    if (path.contains("//") || path.contains('+')) && looks_like_token(path) {
        out.push_str("[redacted]");
        return;
    }
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_secret(seg) {
            out.push_str("[redacted]");
        } else if !push_redacted_assignment(seg, out) {
            out.push_str(seg);
        }
    }
}

/// Names of query, form and JSON parameters whose values are secrets.
const SECRET_PARAMETERS: &[&str] = &[
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "subject_token",
    "actor_token",
    "assertion",
    "client_secret",
    "client_assertion",
    "secret",
    "password",
    "api_key",
    "apikey",
    "key",
    "code_verifier",
];

fn is_secret_parameter(name: &str) -> bool {
    let name = name.rsplit(['?', '&', '"', '\'', '{', ',']).next().unwrap_or(name);
    SECRET_PARAMETERS.iter().any(|p| name.eq_ignore_ascii_case(p))
}

/// Documented prefixes of personal and API tokens (vendors of the catalog and common ones).
const SECRET_PREFIXES: &[&str] = &[
    "lin_api_",
    "lin_oauth_",
    "sbp_",
    "figd_",
    "ATATT",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "ya29.",
];

/// A run that starts with a known secret prefix and has something after it.
fn has_secret_prefix(run: &str) -> bool {
    SECRET_PREFIXES.iter().any(|p| run.len() >= p.len() + 6 && run.starts_with(p))
}

/// Token characters: base64 (standard and url-safe), hex, and `%` so that a percent-encoded
/// token (`c2Vj…%2Ff39%3D`) stays one run (found by fuzzing).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=' | '%')
}

/// A JOSE object (three or five base64url parts) or a run of 32+ token characters, 24 of them
/// letters or digits (a run of slashes, as in `in//////…//6`, is not a token; found by fuzzing),
/// except a long dotted host name.
pub fn looks_like_token(word: &str) -> bool {
    // Only punctuation around the word is trimmed: standard base64 may start or end with `/` or
    // `+`, and end with `=` (found by fuzzing: `/3cj…Qov`, `c2Vj…ZFp/`, `Z2l0…bmw=` are 32).
    let w = word.trim_matches(|c: char| !is_token_char(c) || c == '%');
    if w.len() < 32 || !w.chars().all(is_token_char) || w.contains("://") {
        return false;
    }
    // A JWS or JWE (its header `{"` is `eyJ` in base64url), whatever its letters: a fuzzed
    // `eyJhbGciOiJFUzI1NiJ9.____…93.d___…` has only 23 of them.
    if (w.starts_with("eyJ") || w.contains("=eyJ")) && w.matches('.').count() >= 2 {
        return true;
    }
    if w.chars().filter(char::is_ascii_alphanumeric).count() < 24 {
        return false;
    }
    // A long host name is not a token: more than two dots (a sentence's final full stop does not
    // count) and lowercase DNS characters only. A mixed-case word with many dots is a token
    // (found by fuzzing: `eraHR0…In0.invalid…In0.invalid…` was kept for its dots).
    let dotted = w.trim_matches('.');
    let host_like = dotted.matches('.').count() > 2
        && dotted.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && dotted.split('.').all(dns_label);
    !host_like
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
            (
                format!("grant_type=x&assertion={jwt}&scope=read"),
                "grant_type=x&assertion=[redacted]&scope=read".to_string(),
            ),
            (format!("jwe {jwt}.aGVsbG8.d29ybGQ"), "jwe [redacted]".to_string()),
            (
                "see https://idp.example.com/docs/errors/access-denied-explained?code=x".to_string(),
                "see https://idp.example.com/docs/errors/access-denied-explained?code=[redacted]".to_string(),
            ),
        ] {
            assert_eq!(scrub(&text, 200), expected, "{text}");
        }
    }

    #[test]
    fn short_secrets_are_redacted_by_context_not_length() {
        for (text, expected) in [
            ("Authorization: Bearer abc123", "Authorization: Bearer [redacted]"),
            ("authorization: basic dXNlcjpw", "authorization: basic [redacted]"),
            ("callback?code=abc123&state=xyz", "callback?code=[redacted]&state=xyz"),
            ("client_secret=s3cr3t", "client_secret=[redacted]"),
            ("{\"access_token\":\"short\",\"scope\":\"read\"}", "{\"access_token\":\"[redacted]\",\"scope\":\"read\"}"),
            ("got key sbp_abc123def and lin_api_Zz9876543", "got key [redacted] and [redacted]"),
            ("ghp_0123456789 rejected", "[redacted] rejected"),
            ("the code was wrong", "the code was wrong"),
            ("state=xyz&scope=read", "state=xyz&scope=read"),
            (
                "endpoint=http://127.0.0.1:41587/idp/.well-known/openid-configuration",
                "endpoint=http://127.0.0.1:41587/idp/.well-known/openid-configuration",
            ),
            ("https://h:8443/reset/0123456789abcdef0123456789abcdef/x", "https://h:8443/reset/[redacted]/x"),
            ("", ""),
        ] {
            assert_eq!(scrub(text, 200), expected, "{text}");
        }
    }

    /// Issue 14 item 8: a token in the path of a URL without a port survived into status,
    /// diagnostics and notifications, because the rest of a URL after `//` was kept whole.
    #[test]
    fn token_shaped_path_segments_are_redacted_whatever_the_urls_shape() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let opaque = "0123456789abcdef0123456789abcdef";
        for (text, expected) in [
            (format!("see https://evil.example/{jwt}"), "see https://evil.example/[redacted]".to_string()),
            (format!("https://evil.example/a/{opaque}/b"), "https://evil.example/a/[redacted]/b".to_string()),
            (format!("http://h/x?next={jwt}"), "http://h/x?next=[redacted]".to_string()),
            (format!("http://h/x?code=abc&t={opaque}"), "http://h/x?code=[redacted]&t=[redacted]".to_string()),
            // Without a scheme, a mixed-case word with many dots is a token as a whole.
            (format!("evil.example/{jwt}"), "[redacted]".to_string()),
            ("https://evil.example/p/token=abc".to_string(), "https://evil.example/p/token=[redacted]".to_string()),
            (
                format!(r#"{{"url":"https://evil.example/{jwt}"}}"#),
                r#"{"url":"https://evil.example/[redacted]"}"#.to_string(),
            ),
            ("https://h/sbp_0123456789abcdef".to_string(), "https://h/[redacted]".to_string()),
            ("x://lin_api_/////ZZZZZZZZZZZZZZZZZZZZZZ".to_string(), "x://[redacted]".to_string()),
            (
                "https://mcp.linear.app/mcplin_api_CANARYdesktop0001".to_string(),
                "https://mcp.linear.app/[redacted]".to_string(),
            ),
            (
                "see the desk-top app and task-runner docs".to_string(),
                "see the desk-top app and task-runner docs".to_string(),
            ),
            ("{/////lin_api_///lin_api_///5//-///.valid_clien3t}".to_string(), "[redacted]".to_string()),
            ("file:///etc/ema/policy.json".to_string(), "file://[redacted]".to_string()),
            // Standard base64 starting with `//`, not after a scheme: a token, not a URL.
            (
                r#"{"k":"//9jUW92d09XK1UzUUphbDkK/////////////y3/Y4oKZWQ="}"#.to_string(),
                r#"{"k":"[redacted]"}"#.to_string(),
            ),
            ("see //9jUW92d09XK1UzUUphbDkK/y3/Y4oKZWQ=".to_string(), "see [redacted]".to_string()),
            (
                "x GUuY29tIiwgImNsaWVudF9pZCI6ICJlbWEiLCAic2NGcUivOioken=abcdefghijklmnopqrstuvwxyz0123456789"
                    .to_string(),
                "x [redacted]".to_string(),
            ),
            (
                "a:GUuY29tIiwgImNsaWVudF9pZCI6ICJlbWEiLCAic2NGcUiv=sbp_0123456789".to_string(),
                "a:[redacted]=[redacted]".to_string(),
            ),
            (
                "see http://localhost/x and http://[::1]:8080/y".to_string(),
                "see http://localhost/x and http://[::1]:8080/y".to_string(),
            ),
            (
                "https://my-company-identity-provider-prod.okta.com/oauth2/default".to_string(),
                "https://my-company-identity-provider-prod.okta.com/oauth2/default".to_string(),
            ),
        ] {
            assert_eq!(scrub(&text, 300), expected, "{text}");
        }
    }

    #[test]
    fn a_run_of_slashes_is_not_a_token_a_hex_or_base64_token_still_is() {
        assert_eq!(
            scrub("https://a99s.example/lin_api_///lin_kpi_//////MyNTYiLCAia2dkIjogImsxIn0.", 100),
            "https://a99s.example/[redacted]"
        );
        assert_eq!(
            scrub("https://h.example/a/b+c/0123456789abcdefghijklmnopqrstuv", 100),
            "https://h.example/[redacted]"
        );
        assert_eq!(
            scrub("https://idp.example.com/oauth2/default/.well-known/openid-configuration", 100),
            "https://idp.example.com/oauth2/default/.well-known/openid-configuration"
        );
        assert!(!looks_like_token("in////////////////////////////////6////valid_clien3t"));
        assert!(looks_like_token("0123456789abcdef0123456789abcdef"));
        assert!(looks_like_token("c2VjcmV0LW1hAAAAAHNldGVydlp/EDXO"));
        assert!(looks_like_token("123e4567-e89b-12d3-a456-426614174000"));
        // Standard base64 may end in `/` (found by fuzzing: the slash was trimmed, leaving 31).
        assert_eq!(scrub("x c2VjBv///////zU2Ogk1NgB0OQotZFp/ y", 100), "x [redacted] y");
        assert_eq!(scrub("x /3cjAHMAWn8QNc7jhFlyFyjN5rtccQov y", 100), "x [redacted] y");
        assert_eq!(scrub("(+3cjAHMAWn8QNc7jhFlyFyjN5rtccQov)", 100), "[redacted]");
        let underscored = format!("eyJhbGciOiJFUzI1NiJ9.{}93.d{}", "_".repeat(40), "_".repeat(40));
        assert!(looks_like_token(&underscored));
        assert!(looks_like_token("eraHR0IjogImsxIn0.invalid.ImsxIn0.invalid.IjogImsxIn0"));
        assert!(!looks_like_token("login.eu-west-1.my-company-identity-provider.example.com"));
        let hex_label = format!("999.999.999.{}", "f".repeat(56));
        assert!(looks_like_token(&hex_label), "a long label without a dash is a token");
        assert_eq!(
            scrub(&format!("https://{}.evil.example/x", "0123456789abcdef".repeat(2)), 100),
            "https://[redacted]"
        );
    }

    /// Found by fuzzing: control characters were dropped after the words were checked, so
    /// `eyJ…in\0\0valid…` was two short runs when checked and one token when shown.
    #[test]
    fn control_characters_cannot_split_a_token_past_the_check() {
        assert_eq!(scrub("a eraHR0IjogImsxIn0.in\u{0}\u{0}validiptiion b", 100), "a [redacted] b");
        assert_eq!(scrub("{\"x\":\"0123456789abcdef\u{7}0123456789abcdef\"}", 100), "{\"x\":\"[redacted]\"}");
        assert_eq!(scrub("line one\r\nline two", 100), "line one  line two");
    }

    #[test]
    fn a_quoted_secret_name_redacts_the_value_after_a_space() {
        for (text, expected) in [
            (r#"{"access_token": "short", "scope": "read"}"#, r#"{"access_token": "[redacted]", "scope": "read"}"#),
            (r#"{'refresh_token': 'abc'}"#, r#"{'refresh_token': '[redacted]'}"#),
            ("HTTP error code: 401 from the IdP", "HTTP error code: 401 from the IdP"),
        ] {
            assert_eq!(scrub(text, 300), expected, "{text}");
        }
    }

    #[test]
    fn truncates_and_strips_control_characters() {
        assert_eq!(scrub("a\u{1b}[31mb", 200), "a[31mb");
        assert_eq!(scrub(&"x ".repeat(200), 10).chars().count(), 11);
    }
}
