//! `jwt.rs`: unverified JWT decoding (ID-JAG and access-token claims shown in status and
//! diagnostics). Invariants: decoding succeeds only for three dot-separated parts whose part
//! is a JSON object; `displayable_claims` keeps only allow-listed claims, unchanged.
#![no_main]

use ema_core::jwt::{decode_claims_unverified, decode_header_unverified, displayable_claims};
use libfuzzer_sys::fuzz_target;

const ALLOWED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "client_id",
    "scope",
    "resource",
    "exp",
    "iat",
    "nbf",
    "jti",
    "email",
    "auth_time",
    "tenant",
];

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let header = decode_header_unverified(token);
    let claims = decode_claims_unverified(token);
    for v in [&header, &claims].into_iter().flatten() {
        assert_eq!(token.split('.').count(), 3, "decoded a token that is not three parts");
        assert!(v.is_object());
    }
    if let Ok(c) = &claims {
        let shown = displayable_claims(c);
        for (k, v) in &shown {
            assert!(ALLOWED.contains(&k.as_str()), "claim {k} is not allow-listed");
            assert_eq!(Some(v), c.get(k));
        }
    }
    // Claims given as any JSON value (not only decoded ones).
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        for k in displayable_claims(&v).keys() {
            assert!(ALLOWED.contains(&k.as_str()));
        }
    }
});
