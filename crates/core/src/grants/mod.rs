//! The two grants of the ID-JAG flow, each a request builder plus a response processor.
//!
//! - [`token_exchange`]: RFC 8693 at the IdP, ID token in, ID-JAG out
//!   (draft-ietf-oauth-identity-assertion-authz-grant-04 §4.3).
//! - [`jwt_bearer`]: RFC 7523 at the connector's authorization server, ID-JAG in, access token
//!   out (draft §4.4).

pub mod jwt_bearer;
pub mod token_exchange;

/// Splits an RFC 6749 §3.3 scope string.
pub fn split_scopes(scope: &str) -> Vec<String> {
    scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
}
