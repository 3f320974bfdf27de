//! Reading JWTs we cannot (or need not) verify: the ID-JAG is for the connector's AS, yet its
//! claims (`exp`, `aud`, `scope`, `jti`) belong in status and diagnostics.
//!
//! Nothing decoded here is trusted for a security decision. Signatures are never kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The largest JWT we look into; real ones are a few KiB.
const MAX_JWT_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtShapeError {
    #[error("not a JWT (expected three base64url parts)")]
    NotAJwt,
    #[error("the JWT {0} is not base64url JSON")]
    BadPart(&'static str),
}

fn part(token: &str, index: usize, name: &'static str) -> Result<Value, JwtShapeError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwtShapeError::NotAJwt);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtShapeError::NotAJwt);
    }
    let bytes = URL_SAFE_NO_PAD.decode(parts[index].trim_end_matches('=')).map_err(|_| JwtShapeError::BadPart(name))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| JwtShapeError::BadPart(name))?;
    if !v.is_object() {
        return Err(JwtShapeError::BadPart(name));
    }
    Ok(v)
}

/// The JOSE header, unverified.
pub fn decode_header_unverified(token: &str) -> Result<Value, JwtShapeError> {
    part(token, 0, "header")
}

/// The claims, unverified.
pub fn decode_claims_unverified(token: &str) -> Result<Value, JwtShapeError> {
    part(token, 1, "claims")
}

/// The claims worth showing a help desk (draft-ietf-oauth-identity-assertion-authz-grant-04 §3.1),
/// by allow-list: anything else (including custom claims that might carry data) is dropped.
pub fn displayable_claims(claims: &Value) -> serde_json::Map<String, Value> {
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
    let mut out = serde_json::Map::new();
    if let Some(obj) = claims.as_object() {
        for k in ALLOWED {
            if let Some(v) = obj.get(*k) {
                out.insert((*k).to_string(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_parts_and_rejects_garbage() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"typ":"oauth-id-jag+jwt","alg":"ES256"}"#);
        let c = URL_SAFE_NO_PAD.encode(r#"{"aud":"https://as","jti":"1","secret_claim":"x"}"#);
        let t = format!("{h}.{c}.sig");
        assert_eq!(decode_header_unverified(&t).unwrap()["typ"], "oauth-id-jag+jwt");
        let shown = displayable_claims(&decode_claims_unverified(&t).unwrap());
        assert_eq!(shown.get("aud").unwrap(), "https://as");
        assert!(!shown.contains_key("secret_claim"));
        assert_eq!(decode_claims_unverified("opaque-token"), Err(JwtShapeError::NotAJwt));
        assert_eq!(decode_claims_unverified("a.!!.c"), Err(JwtShapeError::BadPart("claims")));
        assert_eq!(
            decode_claims_unverified(&format!("{h}.{}.s", URL_SAFE_NO_PAD.encode("[1]"))),
            Err(JwtShapeError::BadPart("claims"))
        );
    }
}
