//! `signin::loopback::parse_callback`: the query of the OAuth redirect (RFC 6749 §4.1.2,
//! RFC 9207 §2). Invariants: a callback is accepted only with the expected `state`; when an
//! `iss` is present it names the expected issuer, and when the IdP promises `iss` it is present;
//! the accepted code is the one sent; a response with the wrong `state` is never a failure that
//! ends the sign-in.
#![no_main]

use ema_core::signin::loopback::{ExpectedCallback, Rejected, parse_callback};
use libfuzzer_sys::fuzz_target;

const STATE: &str = "Xq3-expected-state_0123456789";
const ISSUER: &str = "https://idp.example.com/oauth2/default";

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let last = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for issuer_required in [false, true] {
        let expected = ExpectedCallback { state: STATE.into(), issuer: ISSUER.into(), issuer_required };
        let result = parse_callback(query, &expected);
        if last("state").as_deref() != Some(STATE) {
            assert!(matches!(result, Err(Rejected::WrongState)), "a response without our state ended the sign-in");
        }
        let Ok(cb) = result else { continue };
        if issuer_required {
            assert!(last("iss").is_some(), "accepted without the promised iss");
        }
        assert_eq!(last("state").as_deref(), Some(STATE), "accepted without the expected state");
        assert_eq!(last("code").as_deref(), Some(cb.code.as_str()));
        assert!(!cb.code.is_empty());
        assert!(last("error").is_none(), "an error response was accepted");
        if let Some(iss) = last("iss") {
            assert!(ema_core::url_policy::same_uri(&iss, ISSUER), "accepted from issuer {iss:?}");
        }
    }
});
