//! Client authentication at a token endpoint, as the policy chooses.
//!
//! - `client_secret_basic`: RFC 6749 §2.3.1, id and secret form-urlencoded, then Basic.
//! - `client_secret_post`: RFC 6749 §2.3.1, both in the body.
//! - `private_key_jwt`: RFC 7523 §2.2 and §3, OIDC Core §9; a fresh one-minute assertion with a
//!   unique `jti` for every request.
//! - `none`: RFC 6749 §2.1 public client, `client_id` in the body.
//!
//! # The `aud` of a client assertion
//!
//! The specifications disagree, and so do the servers:
//! - RFC 7523 §3: `aud` identifies the authorization server; "the token endpoint URL of the
//!   authorization server MAY be used"; the exact strings are agreed out of band.
//! - OIDC Core §9 (`private_key_jwt`): "The Audience SHOULD be the URL of the Authorization
//!   Server's Token Endpoint."
//! - draft-ietf-oauth-rfc7523bis (-11, §4, after the 2025 audience-injection disclosure): for
//!   client authentication `aud` MUST be the AS's issuer identifier (RFC 8414) as its sole value,
//!   the token endpoint URL MUST NOT be used, and the AS MUST reject any other assertion; an
//!   assertion that follows the update SHOULD say so with `typ: client-authentication+jwt`.
//!
//! What the servers enforce (their documentation or source, 2026):
//! - Okta: exactly the URL of the endpoint invoked (`invalid_client`, "The audience claim for
//!   client_assertion must be the endpoint invoked for the request"); the issuer is refused.
//! - Microsoft Entra ID: the token endpoint URL (`.../oauth2/v2.0/token`), `typ: JWT`.
//! - Keycloak (`JWTClientValidator`): the issuer or the token, introspection, PAR or CIBA
//!   endpoint URL, and one value only unless the server is configured to allow several.
//! - Spring Authorization Server (Spring Security 7, `JwtClientAssertionDecoderFactory`): the
//!   issuer or the token, introspection, revocation or PAR endpoint URL.
//! - oidc-provider 9 (`jwt_client_auth.js`): the URL of the endpoint invoked, the issuer or the
//!   token endpoint URL.
//! - Authlib 1.9 (`JWTBearerClientAssertion.get_audiences`): whatever the deployer lists; its
//!   documented example lists the token endpoint URL and the issuer.
//! - OpenIddict 7: the issuer only, as a single value, and only with the explicit `typ` (ID2173,
//!   ID2089). Auth0 documents its tenant URL (the issuer) with the trailing slash.
//!
//! So no one value passes everywhere. [`AudienceRule::Endpoint`] (the token endpoint URL, or the
//! URL of the endpoint the request goes to, `typ: JWT`) is the default at the IdP and at every
//! connector's AS: it is what Okta and Entra require and what Keycloak, Spring, oidc-provider and
//! the usual Authlib set-up accept. [`AudienceRule::Issuer`] (the issuer as a single string,
//! `typ: client-authentication+jwt`) is for an AS known to follow rfc7523bis. No metadata says
//! so (the draft defines none; `token_endpoint_auth_signing_alg_values_supported`, RFC 8414 §2,
//! lists algorithms only), so a caller can only learn it from a refusal: [`audience_retry`] says
//! when an answer is worth one retry under the other rule, and a caller that retries keeps the
//! rule that worked per AS issuer. `aud` is always one string, never an array: several values are
//! what audience injection exploits, Keycloak refuses them by default and rfc7523bis forbids them.

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

/// The explicit type of a client assertion that follows draft-ietf-oauth-rfc7523bis (§4, RFC 8725
/// §3.11): sent with [`AudienceRule::Issuer`] only, since it tells the AS that the assertion obeys
/// the update's audience rules.
pub const TYP_CLIENT_AUTHENTICATION: &str = "client-authentication+jwt";

/// Which identifier of the authorization server a `private_key_jwt` assertion names as its `aud`
/// (see the module documentation for what each server accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AudienceRule {
    /// The URL of the endpoint the request goes to: the token endpoint for a grant (RFC 7523 §3
    /// "MAY", OIDC Core §9 "SHOULD"; required by Okta and Entra ID), with `typ: JWT`.
    #[default]
    Endpoint,
    /// The AS's issuer identifier (RFC 8414 §2) as the sole value, with
    /// `typ: client-authentication+jwt` (draft-ietf-oauth-rfc7523bis §4; required by OpenIddict 7).
    Issuer,
}

impl AudienceRule {
    /// The rule to try after this one was refused.
    pub fn other(self) -> AudienceRule {
        match self {
            AudienceRule::Endpoint => AudienceRule::Issuer,
            AudienceRule::Issuer => AudienceRule::Endpoint,
        }
    }

    /// A stable name for logs and stored records (`endpoint`, `issuer`).
    pub fn name(self) -> &'static str {
        match self {
            AudienceRule::Endpoint => "endpoint",
            AudienceRule::Issuer => "issuer",
        }
    }
}

/// The `aud` of one client assertion: a rule and the string it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionAudience<'a> {
    rule: AudienceRule,
    value: &'a str,
}

impl<'a> AssertionAudience<'a> {
    /// The URL of the endpoint the request goes to (or of the token endpoint, for a request to
    /// another endpoint of a server that checks assertions as at its token endpoint).
    pub fn endpoint(url: &'a str) -> Self {
        AssertionAudience { rule: AudienceRule::Endpoint, value: url }
    }

    /// The AS's issuer identifier, exactly as its metadata's `issuer` spells it (RFC 8414 §3.3).
    pub fn issuer(issuer: &'a str) -> Self {
        AssertionAudience { rule: AudienceRule::Issuer, value: issuer }
    }

    /// The audience `rule` gives at an AS whose issuer is `issuer`, for a request to `endpoint`.
    pub fn by_rule(rule: AudienceRule, issuer: &'a str, endpoint: &'a str) -> Self {
        match rule {
            AudienceRule::Endpoint => Self::endpoint(endpoint),
            AudienceRule::Issuer => Self::issuer(issuer),
        }
    }

    pub fn rule(&self) -> AudienceRule {
        self.rule
    }

    /// The `aud` claim's value.
    pub fn value(&self) -> &'a str {
        self.value
    }
}

/// Whether a refusal of a request authenticated with `auth`, whose assertion named its audience by
/// `tried`, may only be about that audience, so that one retry under the returned rule is worth
/// it: `invalid_client` (what Okta, Keycloak, OpenIddict, oidc-provider and Authlib answer to an
/// audience they do not take) for a `private_key_jwt` client. Any other answer, or another method,
/// is a verdict. A retry that is refused again says nothing about the audience (a wrong key, an
/// unknown client): report the first refusal and remember nothing.
pub fn audience_retry(auth: &ClientAuth, tried: AudienceRule, oauth_error: Option<&str>) -> Option<AudienceRule> {
    (matches!(auth, ClientAuth::PrivateKeyJwt { .. }) && oauth_error == Some("invalid_client")).then(|| tried.other())
}

/// Checks the policy's signing algorithm against the AS's
/// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2; absent: no constraint known).
/// `Err` names both, for a hint or an error before anything is sent.
pub fn check_signing_alg(auth: &ClientAuth, supported: Option<&[String]>) -> Result<(), String> {
    let (ClientAuth::PrivateKeyJwt { alg, .. }, Some(supported)) = (auth, supported) else { return Ok(()) };
    let name = format!("{alg:?}");
    if supported.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "the client key signs with {name}, but the authorization server accepts client assertions signed with {} \
         only (token_endpoint_auth_signing_alg_values_supported)",
        if supported.is_empty() {
            "no algorithm".to_string()
        } else {
            // The server's words: algorithm names only, a few of them, never echoed as sent.
            let shown: Vec<&str> = supported
                .iter()
                .map(String::as_str)
                .filter(|a| (2..=16).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .take(8)
                .collect();
            if shown.is_empty() { "algorithms it names oddly".to_string() } else { shown.join(", ") }
        }
    ))
}

/// Prepares client authentication for a request to `token_endpoint`, a client assertion naming
/// that URL as its audience ([`AudienceRule::Endpoint`]).
pub fn authenticate(
    client_id: &str,
    auth: &ClientAuth,
    token_endpoint: &str,
    now_unix: i64,
) -> Result<AuthParts, ClientAuthError> {
    authenticate_with(client_id, auth, AssertionAudience::endpoint(token_endpoint), now_unix)
}

/// Prepares client authentication; a `private_key_jwt` assertion names `audience` (a single string)
/// and is typed as its rule says. The other methods ignore `audience`.
pub fn authenticate_with(
    client_id: &str,
    auth: &ClientAuth,
    audience: AssertionAudience<'_>,
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
                aud: audience.value,
                jti: uuid::Uuid::new_v4().to_string(),
                iat: now_unix,
                exp: now_unix + ASSERTION_LIFETIME_SECS,
            };
            let mut header = Header::new(*alg);
            if audience.rule == AudienceRule::Issuer {
                header.typ = Some(TYP_CLIENT_AUTHENTICATION.to_string());
            }
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

/// How long a client assertion is valid: one request, so a minute (Okta allows an hour, Auth0
/// five minutes; servers keep each `jti` until `exp`, so shorter is kinder to them too).
pub const ASSERTION_LIFETIME_SECS: i64 = 60;

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
pub(crate) mod tests {
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

    /// The test key (`tests/data/test-client-key.pem`) and its public half.
    pub(crate) fn test_key_auth(key_id: Option<&str>) -> ClientAuth {
        ClientAuth::PrivateKeyJwt {
            key: PrivateKeyPem::new(include_str!("../../tests/data/test-client-key.pem")),
            key_id: key_id.map(str::to_string),
            alg: Algorithm::ES256,
        }
    }

    pub(crate) fn test_public_key() -> jsonwebtoken::DecodingKey {
        jsonwebtoken::DecodingKey::from_ec_components(
            "BkumKbOYbAMEIPcO3VJZ0sgEb71iEzal-U1nDBpk8sI",
            "Dfs-XUgoZuy2Y5wI2ce8tXBG5dKlHXUhFt0YPXJF-40",
        )
        .unwrap()
    }

    /// Verifies `jwt` with the test key's public half, checking no claim, and returns header and claims.
    pub(crate) fn verified(jwt: &str) -> (Header, serde_json::Value) {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &test_public_key(), &validation).unwrap();
        (data.header, data.claims)
    }

    fn assertion(parts: &AuthParts) -> String {
        let names: Vec<&str> = parts.form.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["client_id", "client_assertion_type", "client_assertion"]);
        assert_eq!(parts.form[1].1, CLIENT_ASSERTION_TYPE_JWT_BEARER);
        assert!(parts.authorization.is_none(), "no Basic header next to an assertion");
        parts.form[2].1.clone()
    }

    /// OIDC Core §9 / RFC 7523 §3 by default: the endpoint's URL as a single string, `typ: JWT`.
    #[test]
    fn endpoint_rule_names_the_token_endpoint_as_a_single_string() {
        let auth = test_key_auth(Some("k1"));
        let parts = authenticate("cid", &auth, "https://as.example.com/oauth2/token", 1_000).unwrap();
        assert_eq!(parts.form[0], ("client_id", "cid".to_string()));
        let (header, claims) = verified(&assertion(&parts));
        assert_eq!(
            (header.alg, header.typ.as_deref(), header.kid.as_deref()),
            (Algorithm::ES256, Some("JWT"), Some("k1"))
        );
        assert_eq!(claims["aud"], serde_json::json!("https://as.example.com/oauth2/token"), "a string, never an array");
        assert_eq!((&claims["iss"], &claims["sub"]), (&serde_json::json!("cid"), &serde_json::json!("cid")));
        assert_eq!((claims["iat"].as_i64(), claims["exp"].as_i64()), (Some(1_000), Some(1_060)));
        assert_eq!(claims.as_object().unwrap().len(), 6, "iss sub aud jti iat exp, nothing else: {claims}");
        let jti = claims["jti"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");
    }

    /// draft-ietf-oauth-rfc7523bis §4: the issuer alone, explicitly typed.
    #[test]
    fn issuer_rule_names_the_issuer_alone_and_types_the_assertion() {
        let auth = test_key_auth(None);
        let issuer = "https://as.example.com/tenant";
        let audience = AssertionAudience::by_rule(AudienceRule::Issuer, issuer, "https://as.example.com/tenant/token");
        assert_eq!((audience.rule(), audience.value()), (AudienceRule::Issuer, issuer));
        let parts = authenticate_with("cid", &auth, audience, 50).unwrap();
        let (header, claims) = verified(&assertion(&parts));
        assert_eq!(header.typ.as_deref(), Some(TYP_CLIENT_AUTHENTICATION));
        assert_eq!(header.kid, None);
        assert_eq!(claims["aud"], serde_json::json!(issuer));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), ASSERTION_LIFETIME_SECS);
        let endpoint =
            AssertionAudience::by_rule(AudienceRule::Endpoint, issuer, "https://as.example.com/tenant/token");
        assert_eq!(endpoint, AssertionAudience::endpoint("https://as.example.com/tenant/token"));
    }

    #[test]
    fn audience_is_ignored_by_the_secret_methods() {
        let secret = ClientAuth::ClientSecretPost(ClientSecret::new("s"));
        let parts = authenticate_with("cid", &secret, AssertionAudience::issuer("https://as"), 0).unwrap();
        let names: Vec<&str> = parts.form.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["client_id", "client_secret"]);
    }

    #[test]
    fn only_invalid_client_to_an_assertion_is_worth_a_retry_under_the_other_rule() {
        let key = test_key_auth(None);
        assert_eq!(audience_retry(&key, AudienceRule::Endpoint, Some("invalid_client")), Some(AudienceRule::Issuer));
        assert_eq!(audience_retry(&key, AudienceRule::Issuer, Some("invalid_client")), Some(AudienceRule::Endpoint));
        assert_eq!(audience_retry(&key, AudienceRule::Endpoint, Some("invalid_grant")), None);
        assert_eq!(audience_retry(&key, AudienceRule::Endpoint, None), None);
        let basic = ClientAuth::ClientSecretBasic(ClientSecret::new("s"));
        assert_eq!(audience_retry(&basic, AudienceRule::Endpoint, Some("invalid_client")), None);
        assert_eq!((AudienceRule::default().name(), AudienceRule::Issuer.name()), ("endpoint", "issuer"));
    }

    #[test]
    fn the_signing_algorithm_is_checked_against_the_metadata_when_it_lists_one() {
        let key = test_key_auth(None);
        let list = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_signing_alg(&key, None).is_ok());
        assert!(check_signing_alg(&key, Some(&list(&["RS256", "ES256"]))).is_ok());
        let err = check_signing_alg(&key, Some(&list(&["RS256", "PS256"]))).unwrap_err();
        assert!(err.contains("signs with ES256") && err.contains("RS256, PS256"), "{err}");
        let basic = ClientAuth::ClientSecretBasic(ClientSecret::new("s"));
        assert!(check_signing_alg(&basic, Some(&list(&["RS256"]))).is_ok());
    }
}
