//! ID-token verification and the IdP token responses of sign-in and refresh
//! (`signin::oidc::IdpClient::exchange_code` / `refresh`, OIDC Core §3.1.3.3-§3.1.3.7, §12),
//! behind real discovery and JWKS documents.
//!
//! The fuzzer writes the ID token's claims (and optionally its JOSE header), the rest of the
//! token response and the UserInfo answer; the harness signs the token with the IdP's real
//! key (ES256, `kid` k1), so claim checks are reached, not only signature failures.
//! Placeholders: `$NONCE` (this attempt's nonce), `$NOW` (current Unix time), `$ID` (the
//! signed ID token, inside the token response).
//!
//! Input: flags byte (bit 0: refresh instead of code exchange; bits 1-2: signing mode: good key,
//! fuzzed header signed with the good key, `alg: none`, forged signature; bits 3-5: status),
//! then `claims \n--\n header \n--\n token response \n--\n UserInfo`.
//!
//! Invariants: a token is accepted only when signed by the IdP's key with an allowed algorithm,
//! with `iss` the issuer, `aud` containing the client id, an `exp` in the future (modulo the
//! verifier's skew) and, on sign-in, the attempt's nonce; no error message contains the ID token,
//! the access or the refresh token.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ema_core::config::{ConfigSource, IdpConfig, Policy};
use ema_core::secret::RefreshToken;
use ema_core::signin::IdpClient;
use ema_fuzz::{Answer, FuzzTransport, runtime, split, status_of};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::Value;

const ISSUER: &str = "https://idp.example.com";
const CLIENT_ID: &str = "ema-desktop";
const JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
    "x":"BkumKbOYbAMEIPcO3VJZ0sgEb71iEzal-U1nDBpk8sI","y":"Dfs-XUgoZuy2Y5wI2ce8tXBG5dKlHXUhFt0YPXJF-40"}"#;

struct Setup {
    key: p256::ecdsa::SigningKey,
    config: IdpConfig,
    discovery: Vec<u8>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let key =
            p256::ecdsa::SigningKey::from_pkcs8_pem(include_str!("../../crates/core/tests/data/test-client-key.pem"))
                .expect("the test key");
        let policy = Policy::parse(
            &format!(
                r#"{{"schema_version":1,"organization":{{"name":"E"}},
                   "idp":{{"issuer":"{ISSUER}","client_id":"{CLIENT_ID}","client_auth":{{"method":"none"}}}}}}"#
            ),
            ConfigSource::Explicit("policy.json".into()),
        )
        .expect("a policy");
        let discovery = serde_json::json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token",
            "userinfo_endpoint": "https://idp.example.com/me",
            "jwks_uri": "https://idp.example.com/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"]
        })
        .to_string()
        .into_bytes();
        Setup { key, config: policy.idp, discovery }
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let parts = split(rest, 4);
    let s = setup();
    let refresh = flags & 1 == 1;
    let mode = (flags >> 1) & 3;
    let status = status_of(flags >> 3);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rt = runtime();

    let discovery = s.discovery.clone();
    let boot = FuzzTransport::new(move |req| match req.uri().path() {
        "/.well-known/openid-configuration" => Some(Answer::json(200, &discovery)),
        "/keys" => Some(Answer::json(200, format!(r#"{{"keys":[{JWK}]}}"#).as_bytes())),
        _ => None,
    });
    let idp = rt.block_on(IdpClient::discover(&boot, &s.config)).expect("discovery of the fixed IdP");
    let (auth_url, pending) = idp.authorization_request("http://127.0.0.1:5555/callback").expect("an auth request");
    let nonce = auth_url.query_pairs().find(|(k, _)| k == "nonce").map(|(_, v)| v.into_owned()).expect("a nonce");

    let fill = |t: String| t.replace("$NONCE", &nonce).replace("$NOW", &now.to_string());
    let claims = fill(text(parts[0]));
    let header = match mode {
        1 => text(parts[1]),
        2 => r#"{"alg":"none"}"#.to_string(),
        _ => r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#.to_string(),
    };
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&claims));
    let signature = match mode {
        2 => String::new(),
        3 => URL_SAFE_NO_PAD.encode([7u8; 64]),
        _ => {
            let sig: p256::ecdsa::Signature = s.key.sign(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        }
    };
    let id_token = format!("{signing_input}.{signature}");
    let response = fill(text(parts[2])).replace("$ID", &id_token);
    let userinfo = parts[3].to_vec();
    let discovery = s.discovery.clone();
    let response_bytes = response.clone().into_bytes();
    let t = FuzzTransport::new(move |req| match req.uri().path() {
        "/.well-known/openid-configuration" => Some(Answer::json(200, &discovery)),
        "/keys" => Some(Answer::json(200, format!(r#"{{"keys":[{JWK}]}}"#).as_bytes())),
        "/token" => Some(Answer::json(status, &response_bytes)),
        "/me" => Some(Answer::json(200, &userinfo)),
        _ => None,
    });
    let result = rt.block_on(async {
        if refresh {
            idp.refresh(&t, &RefreshToken::new("rt-old-0123456789")).await
        } else {
            idp.exchange_code(&t, "the-code".into(), pending).await
        }
    });

    let body: Option<Value> = serde_json::from_str(&response).ok();
    let field = |k: &str| body.as_ref().and_then(|b| b.get(k)).and_then(Value::as_str).map(str::to_string);
    match result {
        Ok(tokens) => {
            assert_eq!(status, 200);
            if let Some(got) = &tokens.id_token {
                assert_eq!(got.secret(), id_token, "an ID token other than the one signed was accepted");
                assert!(mode < 2, "an unsigned or forged ID token was accepted");
                let h: Value = serde_json::from_str(&header).expect("an accepted header is JSON");
                assert_eq!(h["alg"], "ES256", "an ID token with alg {} was accepted", h["alg"]);
                let c: Value = serde_json::from_str(&claims).expect("accepted claims are JSON");
                assert_eq!(c["iss"], ISSUER, "wrong issuer accepted");
                let aud_ok = match &c["aud"] {
                    Value::String(a) => a == CLIENT_ID,
                    Value::Array(a) => a.iter().any(|x| x == CLIENT_ID),
                    _ => false,
                };
                assert!(aud_ok, "an ID token for another audience was accepted: {}", c["aud"]);
                let exp = c["exp"].as_f64().expect("a numeric exp");
                assert!(exp > (now - 300) as f64, "an expired ID token was accepted (exp {exp}, now {now})");
                if !refresh {
                    assert_eq!(c["nonce"].as_str(), Some(nonce.as_str()), "the nonce was not checked");
                }
            } else {
                assert!(refresh, "a sign-in without an ID token succeeded");
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            let _ = (e.code(), e.is_unreachable(), e.is_session_expired());
            for secret in [Some(id_token.clone()), field("access_token"), field("refresh_token")].into_iter().flatten()
            {
                let known = format!(
                    "{} {claims} {header}",
                    "https://idp.example.com/.well-known/openid-configuration https://idp.example.com/token https://idp.example.com/keys https://idp.example.com/me"
                );
                // The shapes redact.rs promises to catch (JWTs, 32+ token characters).
                let promised = ema_core::redact::looks_like_token(&secret) && !secret.contains(char::is_whitespace);
                if promised && !known.contains(secret.as_str()) {
                    assert!(!shown.contains(secret.as_str()), "an error shows a token: {shown}");
                }
            }
        }
    }
});
