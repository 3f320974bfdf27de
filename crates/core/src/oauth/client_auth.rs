//! Client authentication at a token endpoint, as the policy chooses.
//!
//! - `client_secret_basic`: RFC 6749 §2.3.1, id and secret form-urlencoded, then Basic.
//! - `client_secret_post`: RFC 6749 §2.3.1, both in the body.
//! - `private_key_jwt`: RFC 7523 §2.2 and §3, OIDC Core §9; a fresh one-minute assertion with a
//!   unique `jti` for every request.
//! - `none`: RFC 6749 §2.1 public client, `client_id` in the body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::secret::{ClientSecret, PrivateKeyPem};

/// Client authentication at a token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, OIDC Core §9).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Public client: `client_id` in the body, no secret (RFC 6749 §2.1).
    None,
    /// HTTP Basic with form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic(ClientSecret),
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost(ClientSecret),
    /// A signed JWT assertion (RFC 7523 §2.2, OIDC Core §9 `private_key_jwt`).
    PrivateKeyJwt { key: PrivateKeyPem, key_id: Option<String>, alg: jsonwebtoken::Algorithm },
}

impl ClientAuth {
    /// The RFC 7591 §2 name of the method.
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::ClientSecretBasic(_) => "client_secret_basic",
            ClientAuth::ClientSecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
        }
    }
}

/// RFC 7523 §2.2.
pub const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What client authentication adds to a form request.
#[derive(Debug, Default)]
pub struct AuthParts {
    /// Value for the `Authorization` header (Basic), if any.
    pub authorization: Option<String>,
    /// Extra form fields.
    pub form: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// Why client authentication could not be prepared (a local key problem, never the server's).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot sign the client assertion: {0}")]
pub struct ClientAuthError(pub String);

/// Form-urlencodes per RFC 6749 Appendix B, as §2.3.1 requires before Basic encoding, except
/// that a space is `%20` rather than `+`: form decoders read both as a space, but servers that
/// percent-decode the Basic credentials without the `+` rule (Authlib's
/// `extract_basic_authorization` uses `urllib.parse.unquote`) would read `+` literally.
fn form_encode(s: &str) -> String {
    // `byte_serialize` escapes a literal `+` as `%2B`, so every `+` it emits is a space.
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Prepares client authentication for a request to `token_endpoint`.
pub fn authenticate(
    client_id: &str,
    auth: &ClientAuth,
    token_endpoint: &str,
    now_unix: i64,
) -> Result<AuthParts, ClientAuthError> {
    let mut parts = AuthParts::default();
    match auth {
        ClientAuth::None => parts.form.push(("client_id", client_id.to_string())),
        ClientAuth::ClientSecretBasic(secret) => {
            let raw = format!("{}:{}", form_encode(client_id), form_encode(secret.secret()));
            parts.authorization = Some(format!("Basic {}", STANDARD.encode(raw)));
        }
        ClientAuth::ClientSecretPost(secret) => {
            parts.form.push(("client_id", client_id.to_string()));
            parts.form.push(("client_secret", secret.secret().to_string()));
        }
        ClientAuth::PrivateKeyJwt { key, key_id, alg } => {
            let claims = AssertionClaims {
                iss: client_id,
                sub: client_id,
                aud: token_endpoint,
                jti: uuid::Uuid::new_v4().to_string(),
                iat: now_unix,
                exp: now_unix + 60,
            };
            let mut header = Header::new(*alg);
            header.kid = key_id.clone();
            let enc = encoding_key(key, *alg).map_err(ClientAuthError)?;
            let jwt = jsonwebtoken::encode(&header, &claims, &enc).map_err(|e| ClientAuthError(e.to_string()))?;
            parts.form.push(("client_id", client_id.to_string()));
            parts.form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER.to_string()));
            parts.form.push(("client_assertion", jwt));
        }
    }
    Ok(parts)
}

fn encoding_key(key: &PrivateKeyPem, alg: Algorithm) -> Result<EncodingKey, String> {
    let pem = key.secret().as_bytes();
    let r = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        other => return Err(format!("{other:?} is not an allowed client-assertion algorithm")),
    };
    r.map_err(|e| format!("not a usable {alg:?} PEM private key ({e})"))
}

/// Checks at policy load that a key can sign with `alg`, so the error names the policy key.
pub fn check_signing_key(key: &PrivateKeyPem, alg: Algorithm) -> Result<(), String> {
    let enc = encoding_key(key, alg)?;
    let claims = AssertionClaims { iss: "x", sub: "x", aud: "x", jti: String::new(), iat: 0, exp: 0 };
    jsonwebtoken::encode(&Header::new(alg), &claims, &enc).map(|_| ()).map_err(|e| format!("cannot sign with it ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn basic_credentials(client_id: &str, secret: &str) -> String {
        let auth = ClientAuth::ClientSecretBasic(ClientSecret::new(secret));
        let header = authenticate(client_id, &auth, "https://as.example.com/token", 0).unwrap().authorization.unwrap();
        String::from_utf8(STANDARD.decode(header.strip_prefix("Basic ").unwrap()).unwrap()).unwrap()
    }

    /// Authlib (`authlib.oauth2.rfc6749.util.extract_basic_authorization`) percent-decodes the
    /// Basic credentials with `unquote`, which keeps `+`: a space must go as `%20`, which form
    /// decoders (RFC 6749 Appendix B) read as a space too.
    #[test]
    fn basic_credentials_with_spaces_survive_authlib_percent_decoding() {
        assert_eq!(basic_credentials("ema client", "p@ss word+1"), "ema%20client:p%40ss%20word%2B1");
        let raw = basic_credentials("a b", "c d");
        let (id, secret) = raw.split_once(':').unwrap();
        let form_decoded =
            |v: &str| url::form_urlencoded::parse(format!("v={v}").as_bytes()).next().unwrap().1.into_owned();
        assert_eq!((form_decoded(id), form_decoded(secret)), ("a b".into(), "c d".into()));
    }
}
