//! Token-endpoint responses: the generic parser (RFC 6749 §5.1/§5.2), the token-exchange
//! processor (RFC 8693 §2.2, ID-JAG draft §4.3.2) and the jwt-bearer processor (RFC 7523 §3.1),
//! for any status and body. Input: one status byte, then the body.
//!
//! Invariants: no panic (lifetimes, numbers, types); a success carries a non-empty token and,
//! for jwt-bearer, a Bearer token type; no error message or `Debug` output contains a
//! token-shaped string value of the body (the issued tokens, an echoed assertion).
#![no_main]

use ema_core::grants::{jwt_bearer, token_exchange};
use ema_core::oauth::parse_token_response;
use ema_core::redact::looks_like_token;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use url::Url;

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn assert_no_token(text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{text:?} contains the token-shaped value {s:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let status = ema_fuzz::status_of(first);
    let resp = http::Response::builder().status(status).body(body.to_vec()).expect("a response");
    let endpoint = Url::parse("https://as.example.com/oauth2/token").expect("a URL");
    let mut secrets = Vec::new();
    let mut error_code = None;
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        strings(&v, &mut secrets);
        error_code = v.get("error").and_then(Value::as_str).map(str::to_string);
    }
    // Values the scrubber promises to catch (redact.rs: JWTs and 32+ token characters). The
    // OAuth error code (`insufficient_user_authentication` is 32 characters) is shown on purpose.
    secrets.retain(|s| {
        looks_like_token(s)
            && !s.contains(char::is_whitespace)
            && !endpoint.as_str().contains(s.as_str())
            && error_code.as_deref() != Some(s.as_str())
    });

    match parse_token_response(&endpoint, &resp) {
        Ok(t) => {
            assert_eq!(status, 200);
            assert!(!t.access_token.is_empty());
            assert_no_token(&format!("{t:?}"), &secrets);
        }
        Err(e) => {
            assert_no_token(&e.to_string(), &secrets);
            assert_no_token(&format!("{e:?}"), &secrets);
            let _ = (e.kind(), e.oauth_error());
        }
    }
    let scopes = vec!["read".to_string()];
    match token_exchange::process_response(&endpoint, &resp, &scopes) {
        Ok(issued) => {
            assert!(!issued.id_jag.secret().is_empty());
            assert_no_token(&format!("{:?}", issued), &secrets);
        }
        Err(e) => {
            assert_no_token(&e.to_string(), &secrets);
            let _ = e.code();
        }
    }
    let now = time::OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("a time");
    match jwt_bearer::process_response(&endpoint, &resp, &scopes, now) {
        Ok(grant) => {
            assert!(!grant.access_token.secret().is_empty());
            if let Some(at) = grant.expires_at {
                assert!(at >= now, "a grant that expired before it was issued");
            }
        }
        Err(e) => {
            assert_no_token(&e.to_string(), &secrets);
            let _ = (e.code(), e.oauth_error());
        }
    }
});
