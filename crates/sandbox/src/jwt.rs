//! The IdP's ES256 signing key, its JWK, and JWT signing/verification.
//!
//! One P-256 key pair is generated per sandbox start. It signs ID tokens and ID-JAGs;
//! the connectors' authorization servers verify ID-JAGs with the same public key the
//! JWKS serves, exactly as a real resource AS would after fetching the IdP's JWKS.
//!
//! Verification here checks only the signature and the algorithm: claim checks
//! (times against the sandbox clock, audiences, `typ`) are done by the callers so each
//! failure gets its own error description.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The only algorithm the sandbox signs with or accepts.
pub const ALG: Algorithm = Algorithm::ES256;

/// `typ` header of ID tokens.
pub const TYP_JWT: &str = "JWT";

/// `typ` header of ID-JAGs (draft-ietf-oauth-identity-assertion-authz-grant-04 §3.1).
pub const TYP_ID_JAG: &str = "oauth-id-jag+jwt";

/// A fresh P-256 key (ES256) with a key id and its public JWK (RFC 7517 §4, with `kid`, `alg`
/// and `use`): what the IdP's signing key and a client's `private_key_jwt` key are made from.
pub(crate) struct P256Key {
    pub(crate) signing: SigningKey,
    pub(crate) kid: String,
    pub(crate) jwk: serde_json::Value,
    /// The public key as an uncompressed SEC1 point (what `DecodingKey::from_ec_der` takes).
    pub(crate) public_sec1: Vec<u8>,
}

impl P256Key {
    /// A new key whose id starts with `kid_prefix`.
    pub(crate) fn generate(kid_prefix: &str) -> Result<Self, String> {
        let signing = loop {
            // Almost every 32-byte string is a valid scalar; retry the rare ones that are not.
            if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let point = signing.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err("P-256 public key without coordinates".to_owned());
        };
        let kid = format!("{kid_prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Ok(P256Key { public_sec1: point.as_bytes().to_vec(), signing, kid, jwk })
    }
}

/// An ES256 key pair with its key id.
pub struct SigningKeyPair {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKeyPair {
    /// Generates a fresh P-256 key pair.
    pub fn generate() -> Result<Self, String> {
        let P256Key { signing, kid, jwk, public_sec1 } = P256Key::generate("sandbox")?;
        let pkcs8 = signing.to_pkcs8_der().map_err(|e| e.to_string())?;
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_bytes()),
            decoding: DecodingKey::from_ec_der(&public_sec1),
            jwk,
        })
    }

    /// The public key as a JWK (RFC 7517 §4) with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// Signs `claims` with header `{alg: ES256, typ, kid}`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, String> {
        let mut header = Header::new(ALG);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// Verifies the signature of `token` (ES256 only) and returns its header and claims.
    /// No claim is checked.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<(Header, T), VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != ALG {
            return Err(VerifyError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(ALG);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<T>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
            jsonwebtoken::errors::ErrorKind::Json(_) => VerifyError::Claims(e.to_string()),
            _ => VerifyError::Malformed,
        })?;
        Ok((data.header, data.claims))
    }
}

/// Verifies `token` against a JSON Web Key Set (RFC 7517 §5) of another IdP, picking the key
/// by `kid`; only asymmetric algorithms are allowed (RFC 8725 §3.1). No claim is checked.
pub fn verify_with_jwks<T: DeserializeOwned>(
    jwks: &serde_json::Value,
    token: &str,
) -> Result<(Header, T), VerifyError> {
    use jsonwebtoken::Algorithm::*;
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !matches!(header.alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA) {
        return Err(VerifyError::Algorithm(format!("{:?}", header.alg)));
    }
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).map_err(|_| VerifyError::Malformed)?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or(VerifyError::Signature)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::Signature)?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<T>(token, &key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
        jsonwebtoken::errors::ErrorKind::Json(_) => VerifyError::Claims(e.to_string()),
        _ => VerifyError::Malformed,
    })?;
    Ok((data.header, data.claims))
}

/// Why a JWT was refused before any claim was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS.
    #[error("malformed JWT")]
    Malformed,
    /// `alg` is not allowed (this includes `none` and HMAC).
    #[error("alg {0} is not allowed")]
    Algorithm(String),
    /// Signature does not verify against the IdP key.
    #[error("signature verification failed")]
    Signature,
    /// The claims set does not have the expected shape.
    #[error("claims are not well-formed: {0}")]
    Claims(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_foreign_key_fails() {
        let key = SigningKeyPair::generate().expect("key");
        let other = SigningKeyPair::generate().expect("key");
        let token = key.sign(TYP_ID_JAG, &serde_json::json!({"sub": "x"})).expect("sign");
        let (header, claims): (Header, serde_json::Value) = key.verify(&token).expect("verify");
        assert_eq!(header.typ.as_deref(), Some(TYP_ID_JAG));
        assert_eq!(header.kid.as_deref(), key.public_jwk()["kid"].as_str());
        assert_eq!(claims["sub"], "x");
        assert_eq!(other.verify::<serde_json::Value>(&token).map(|_| ()), Err(VerifyError::Signature));
    }
}
