//! `signin::loopback::parse_callback`: the query of the OAuth redirect (RFC 6749 §4.1.2,
//! RFC 9207 §2). Invariants: a callback is accepted only with the expected `state`; when an
//! `iss` is present it names the expected issuer; the accepted code is the one sent.
#![no_main]

use ema_core::signin::loopback::parse_callback;
use libfuzzer_sys::fuzz_target;

const STATE: &str = "Xq3-expected-state_0123456789";
const ISSUER: &str = "https://idp.example.com/oauth2/default";

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let result = parse_callback(query, STATE, ISSUER);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let last = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Ok(cb) = result {
        assert_eq!(last("state").as_deref(), Some(STATE), "accepted without the expected state");
        assert_eq!(last("code").as_deref(), Some(cb.code.as_str()));
        assert!(!cb.code.is_empty());
        assert!(last("error").is_none(), "an error response was accepted");
        if let Some(iss) = last("iss") {
            assert!(ema_core::url_policy::same_uri(&iss, ISSUER), "accepted from issuer {iss:?}");
        }
    }
});
