//! Unit tests of `oidc.rs` (in a file of their own to keep the module short): discovery, the
//! authorization request, code exchange and refresh with ID-token checks, revocation, on a
//! scripted transport.

use super::*;
use crate::config::{ConfigSource, Policy};
use crate::http::HttpRequest;
use crate::testing::{FakeTransport, form};
use base64::Engine as _;

const ISSUER: &str = "https://idp.example.com";
const TOKEN: &str = "https://idp.example.com/oauth2/v1/token";

fn idp_config(client_auth: &str) -> IdpConfig {
    let text = format!(
        r#"{{"schema_version":1,"organization":{{"name":"Example"}},
            "idp":{{"issuer":"{ISSUER}","client_id":"ema-desktop","client_auth":{client_auth}}}}}"#
    );
    Policy::parse(&text, ConfigSource::Explicit("test.json".into())).unwrap().idp
}

fn fake_idp() -> FakeTransport {
    let t = FakeTransport::new();
    t.json(
        "https://idp.example.com/.well-known/openid-configuration",
        200,
        &serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example.com/oauth2/v1/authorize",
            "token_endpoint": TOKEN,
            "revocation_endpoint": "https://idp.example.com/oauth2/v1/revoke",
            "jwks_uri": "https://idp.example.com/oauth2/v1/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]
        })
        .to_string(),
    );
    t.json("https://idp.example.com/oauth2/v1/keys", 200, r#"{"keys":[]}"#);
    t.json(TOKEN, 400, r#"{"error":"invalid_grant","error_description":"test stops here"}"#);
    t.json("https://idp.example.com/oauth2/v1/revoke", 200, "");
    t
}

#[tokio::test]
async fn authorization_request_has_pkce_s256_state_nonce_and_offline_access() {
    let t = fake_idp();
    let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
    let (url, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
    assert_eq!(url.origin().ascii_serialization(), ISSUER);
    assert_eq!(url.path(), "/oauth2/v1/authorize");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "ema-desktop");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:5555/callback");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "email", "profile", "offline_access"] {
        assert!(scopes.contains(&s), "{s} in {scopes:?}");
    }
    assert_eq!(q["code_challenge_method"], "S256");
    // RFC 7636 §4.2: challenge = BASE64URL(SHA256(verifier)).
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(pending.pkce_verifier.secret().as_bytes()));
    assert_eq!(q["code_challenge"], expected);
    assert_eq!(&q["state"], pending.state.secret());
    assert_eq!(&q["nonce"], pending.nonce.secret());
    assert!(q["state"].len() >= 20 && q["nonce"].len() >= 20);
    let (_, again) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
    assert_ne!(again.state.secret(), pending.state.secret(), "a fresh state per attempt");
}

use sha2::Digest as _;
use std::collections::HashMap;

#[tokio::test]
async fn oidc_provider_needs_prompt_consent_for_offline_access_and_the_policy_can_send_it() {
    // oidc-provider drops `offline_access` (so issues no refresh token) unless the request
    // has prompt=consent (OIDC Core §11); `idp.prompt` sends it. Nothing is sent by default.
    let t = fake_idp();
    let query = |idp: &IdpClient| -> HashMap<String, String> {
        idp.authorization_request("http://127.0.0.1:5555/callback").unwrap().0.query_pairs().into_owned().collect()
    };
    let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
    assert!(!query(&idp).contains_key("prompt"));
    let text = format!(
        r#"{{"schema_version":1,"organization":{{"name":"Example"}},
            "idp":{{"issuer":"{ISSUER}","client_id":"ema-desktop","client_auth":{{"method":"none"}},"prompt":["consent"]}}}}"#
    );
    let config = Policy::parse(&text, ConfigSource::Explicit("test.json".into())).unwrap().idp;
    let idp = IdpClient::discover(&t, &config).await.unwrap();
    let q = query(&idp);
    assert_eq!(q["prompt"], "consent");
    assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
    let bad = text.replace(r#"["consent"]"#, r#"["none"]"#);
    let err = Policy::parse(&bad, ConfigSource::Explicit("test.json".into())).unwrap_err();
    assert!(err.to_string().contains("idp.prompt[0]"), "{err}");
}

async fn code_exchange_request(client_auth: &str) -> HttpRequest {
    let t = fake_idp();
    let idp = IdpClient::discover(&t, &idp_config(client_auth)).await.unwrap();
    let (_, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
    let verifier = pending.pkce_verifier.secret().clone();
    let err = idp.exchange_code(&t, "the-code".into(), pending).await.unwrap_err();
    assert_eq!(err.code().wire(err.oauth_error()), "idp-oauth-invalid-grant");
    let reqs = t.requests_to(TOKEN);
    assert_eq!(reqs.len(), 1);
    let req = reqs.into_iter().next().unwrap();
    let f = form(&req);
    assert!(f.contains(&("grant_type".into(), "authorization_code".into())));
    assert!(f.contains(&("code".into(), "the-code".into())));
    assert!(f.contains(&("redirect_uri".into(), "http://127.0.0.1:5555/callback".into())));
    assert!(f.contains(&("code_verifier".into(), verifier)));
    req
}

#[tokio::test]
async fn code_exchange_with_client_secret_basic() {
    let req = code_exchange_request(r#"{"method":"client_secret_basic","client_secret":"s e/cret"}"#).await;
    // Form-urlencoded with a space as `%20` (see `oauth::client_auth::form_encode`).
    let expected = base64::engine::general_purpose::STANDARD.encode("ema-desktop:s%20e%2Fcret");
    assert_eq!(req.headers()["authorization"], format!("Basic {expected}"));
    assert!(form(&req).iter().all(|(k, _)| k != "client_secret"));
}

#[tokio::test]
async fn code_exchange_with_client_secret_post() {
    let req = code_exchange_request(r#"{"method":"client_secret_post","client_secret":"sec"}"#).await;
    assert!(req.headers().get("authorization").is_none());
    let f = form(&req);
    assert!(f.contains(&("client_id".into(), "ema-desktop".into())));
    assert!(f.contains(&("client_secret".into(), "sec".into())));
}

#[tokio::test]
async fn code_exchange_as_a_public_client() {
    let req = code_exchange_request(r#"{"method":"none"}"#).await;
    assert!(req.headers().get("authorization").is_none());
    let f = form(&req);
    assert!(f.contains(&("client_id".into(), "ema-desktop".into())));
    assert!(f.iter().all(|(k, _)| k != "client_secret" && k != "client_assertion"));
}

#[tokio::test]
async fn code_exchange_with_private_key_jwt() {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
    let req = code_exchange_request(&format!(
        r#"{{"method":"private_key_jwt","key_file":"{key}","key_id":"k1","alg":"ES256"}}"#
    ))
    .await;
    assert!(req.headers().get("authorization").is_none());
    let f: HashMap<String, String> = form(&req).into_iter().collect();
    assert_eq!(f["client_assertion_type"], crate::oauth::client_auth::CLIENT_ASSERTION_TYPE_JWT_BEARER);
    let claims = crate::jwt::decode_claims_unverified(&f["client_assertion"]).unwrap();
    assert_eq!(claims["iss"], "ema-desktop");
    assert_eq!(claims["sub"], "ema-desktop");
    assert_eq!(claims["aud"], TOKEN);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
}

#[tokio::test]
async fn refresh_and_revoke_requests() {
    let t = fake_idp();
    let idp =
        IdpClient::discover(&t, &idp_config(r#"{"method":"client_secret_post","client_secret":"sec"}"#)).await.unwrap();
    let err = idp.refresh(&t, &RefreshToken::new("rt-1")).await.unwrap_err();
    assert!(err.is_session_expired(), "invalid_grant on refresh means the session ended");
    let f = form(&t.requests_to(TOKEN)[0]);
    assert!(f.contains(&("grant_type".into(), "refresh_token".into())));
    assert!(f.contains(&("refresh_token".into(), "rt-1".into())));
    assert!(f.contains(&("client_secret".into(), "sec".into())));
    assert!(idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap());
    let f = form(&t.requests_to("https://idp.example.com/oauth2/v1/revoke")[0]);
    assert_eq!(
        f,
        vec![
            ("token".into(), "rt-1".into()),
            ("token_type_hint".into(), "refresh_token".into()),
            ("client_id".into(), "ema-desktop".into()),
            ("client_secret".into(), "sec".into()),
        ]
    );
}

/// Regression (issue 14, item 2): with `private_key_jwt`, `ema logout`'s revocation carried a
/// client assertion addressed to the revocation URL; Okta (and OIDC Core §9) want the token
/// endpoint, answered 401 `invalid_client`, and the refresh token stayed valid.
#[tokio::test]
async fn revocation_with_private_key_jwt_addresses_the_assertion_to_the_token_endpoint() {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem");
    let t = fake_idp();
    let config = format!(r#"{{"method":"private_key_jwt","key_file":"{key}","key_id":"k1","alg":"ES256"}}"#);
    let idp = IdpClient::discover(&t, &idp_config(&config)).await.unwrap();
    assert!(idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap());
    let f: HashMap<String, String> =
        form(&t.requests_to("https://idp.example.com/oauth2/v1/revoke")[0]).into_iter().collect();
    assert_eq!(f["token"], "rt-1");
    let claims = crate::jwt::decode_claims_unverified(&f["client_assertion"]).unwrap();
    assert_eq!(claims["aud"], TOKEN, "the IdP checks the assertion as at its token endpoint");
    assert_eq!(claims["iss"], "ema-desktop");
    // An IdP that refuses the client: the caller learns it did not revoke (never a silent "ok").
    t.json("https://idp.example.com/oauth2/v1/revoke", 401, r#"{"error":"invalid_client"}"#);
    let err = idp.revoke(&t, &RefreshToken::new("rt-1")).await.unwrap_err();
    assert_eq!((err.kind(), err.oauth_error()), (crate::status::ResponseKind::OAuth, Some("invalid_client")));
}

/// The public JWK of `tests/data/test-client-key.pem` (P-256), as an IdP's JWKS would hold it.
const TEST_KEY_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
    "x":"BkumKbOYbAMEIPcO3VJZ0sgEb71iEzal-U1nDBpk8sI","y":"Dfs-XUgoZuy2Y5wI2ce8tXBG5dKlHXUhFt0YPXJF-40"}"#;
const USERINFO: &str = "https://idp.example.com/me";

/// An IdP like oidc-provider with its default `conformIdTokenClaims`: the ID token of the
/// code flow has no `email`/`name` (OIDC Core §5.4), UserInfo has them.
fn thin_id_token_idp(nonce: &str, userinfo: &serde_json::Value) -> FakeTransport {
    id_token_idp(nonce, userinfo, Some(OffsetDateTime::now_utc().unix_timestamp()))
}

/// An IdP whose code exchange answers with an ID token signed in at `auth_time` (or without it).
fn id_token_idp(nonce: &str, userinfo: &serde_json::Value, auth_time: Option<i64>) -> FakeTransport {
    let t = fake_idp();
    t.json(
        "https://idp.example.com/.well-known/openid-configuration",
        200,
        &serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": TOKEN,
            "userinfo_endpoint": USERINFO,
            "jwks_uri": "https://idp.example.com/oauth2/v1/keys",
            "response_types_supported": ["code", "code id_token", "id_token", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256", "Ed25519", "EdDSA"],
            "authorization_response_iss_parameter_supported": true
        })
        .to_string(),
    );
    t.json("https://idp.example.com/oauth2/v1/keys", 200, &format!(r#"{{"keys":[{TEST_KEY_JWK}]}}"#));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": "ema-desktop", "exp": now + 3600,
        "iat": now, "nonce": nonce});
    if let Some(at) = auth_time {
        claims["auth_time"] = at.into();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-client-key.pem")).unwrap();
    let id_token =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap()).unwrap();
    t.json(
        TOKEN,
        200,
        &serde_json::json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "id_token": id_token, "refresh_token": "rt-1", "scope": "openid email profile offline_access"})
        .to_string(),
    );
    t.json(USERINFO, 200, &userinfo.to_string());
    t
}

async fn sign_in_at_thin_id_token_idp(userinfo: serde_json::Value) -> (SessionTokens, FakeTransport) {
    let t = fake_idp();
    let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
    let (_, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
    let t = thin_id_token_idp(pending.nonce.secret(), &userinfo);
    let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
    let tokens = idp.exchange_code(&t, "the-code".into(), pending).await.unwrap();
    (tokens, t)
}

#[tokio::test]
async fn oidc_provider_id_token_without_email_takes_email_and_name_from_userinfo() {
    let (tokens, t) = sign_in_at_thin_id_token_idp(
        serde_json::json!({"sub": "alice", "email": "alice@example.com", "name": "Alice Anders"}),
    )
    .await;
    let identity = tokens.identity.unwrap();
    assert_eq!(identity.sub, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert_eq!(identity.name.as_deref(), Some("Alice Anders"));
    let reqs = t.requests_to(USERINFO);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].headers()["authorization"], "Bearer at-1");
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn oidc_provider_userinfo_for_another_subject_is_not_used() {
    let (tokens, _) =
        sign_in_at_thin_id_token_idp(serde_json::json!({"sub": "mallory", "email": "mallory@example.com"})).await;
    let identity = tokens.identity.unwrap();
    assert_eq!(identity.sub, "alice");
    assert_eq!(identity.email, None, "UserInfo of another subject must not be used (OIDC Core §5.3.2)");
}

#[tokio::test]
async fn discovery_refuses_a_mismatched_issuer_and_errors_never_echo_secrets() {
    let t = fake_idp();
    t.json(
        "https://idp.example.com/.well-known/openid-configuration",
        200,
        &serde_json::json!({"issuer": "https://evil.example.com", "authorization_endpoint": "https://evil.example.com/a",
            "token_endpoint": "https://evil.example.com/t", "jwks_uri": "https://evil.example.com/k",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]})
        .to_string(),
    );
    let err = IdpClient::discover(&t, &idp_config(r#"{"method":"client_secret_post","client_secret":"canary-sec"}"#))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("evil.example.com"), "{err}");
    assert!(!format!("{err} {err:?}").contains("canary-sec"));
}

#[tokio::test]
async fn a_step_up_sign_in_asks_for_max_age_and_acr_values_and_checks_auth_time() {
    let t = fake_idp();
    let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
    let step_up = crate::oauth::StepUp { max_age: Some(300), acr_values: Some("urn:acr:mfa urn:acr:hwk".into()) };
    let (url, _) = idp.authorization_request_with("http://127.0.0.1:5555/callback", Some(&step_up)).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["max_age"], "300");
    assert_eq!(q["acr_values"], "urn:acr:mfa urn:acr:hwk");
    let (plain, _) = idp.authorization_request("http://127.0.0.1:5555/callback").unwrap();
    assert!(!plain.query().unwrap().contains("max_age") && !plain.query().unwrap().contains("acr_values"));

    let now = OffsetDateTime::now_utc().unix_timestamp();
    let only_max_age = crate::oauth::StepUp { max_age: Some(300), acr_values: None };
    // No auth_time: accepted (the exchange at the same IdP judges); an hour old: refused.
    for (auth_time, accepted) in [(Some(now - 10), true), (Some(now - 3600), false), (None, true)] {
        let (_, pending) =
            idp.authorization_request_with("http://127.0.0.1:5555/callback", Some(&only_max_age)).unwrap();
        let t = id_token_idp(pending.nonce.secret(), &serde_json::json!({"sub": "alice"}), auth_time);
        let idp = IdpClient::discover(&t, &idp_config(r#"{"method":"none"}"#)).await.unwrap();
        let result = idp.exchange_code(&t, "the-code".into(), pending).await;
        assert_eq!(result.is_ok(), accepted, "auth_time {auth_time:?}: {:?}", result.err());
        if let Err(e) = result {
            assert_eq!(e.code(), "id-token-invalid", "{e}");
            assert!(e.to_string().contains("auth_time") || e.to_string().contains("did not sign you in again"), "{e}");
        }
    }
}

#[test]
fn step_ups_of_several_connectors_merge_and_an_empty_one_asks_for_a_fresh_sign_in() {
    use crate::oauth::StepUp;
    let a = StepUp { max_age: Some(600), acr_values: Some("urn:a".into()) };
    let b = StepUp { max_age: Some(60), acr_values: Some("urn:b urn:a".into()) };
    let m = a.merged(b);
    assert_eq!((m.max_age, m.acr_values.as_deref()), (Some(60), Some("urn:b urn:a")));
    assert_eq!(StepUp::default().for_sign_in(), StepUp { max_age: Some(0), acr_values: None });
    let kept = StepUp { max_age: None, acr_values: Some("urn:a".into()) };
    assert_eq!(kept.clone().for_sign_in(), kept);
}

#[test]
fn a_server_s_step_up_values_are_kept_only_when_they_are_plain_classes() {
    let parse = |body: &str| crate::oauth::OAuthErrorResponse::parse(body.as_bytes()).unwrap().step_up();
    let s = parse(r#"{"error":"insufficient_user_authentication","max_age":5,"acr_values":"urn:a  urn:b"}"#);
    assert_eq!((s.max_age, s.acr_values.as_deref()), (Some(5), Some("urn:a urn:b")));
    let hostile = format!(
        r#"{{"error":"insufficient_user_authentication","acr_values":"ok \"x\" {} a\u0001b"}}"#,
        "l".repeat(300)
    );
    assert_eq!(parse(&hostile).acr_values.as_deref(), Some("ok"), "quotes, overlong and control characters go");
    assert_eq!(parse(r#"{"error":"insufficient_user_authentication"}"#), crate::oauth::StepUp::default());
}
