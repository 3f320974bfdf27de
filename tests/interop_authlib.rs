//! Interop: EMA against Authlib's ID-JAG grant (`authlib.oauth2.drafts.IDJAGGrant`) acting as
//! a connector's authorization server, with its jti replay check on.
//!
//! The sandbox stays the IdP; `tests/interop/authlib/fixture.py` is the connector `authlib`
//! (RFC 9728 + RFC 8414 metadata, Authlib's token endpoint, a minimal MCP server), registered in
//! the sandbox as an external connector so the sandbox IdP issues ID-JAGs for it.
//!
//! Start order: the fixture's URLs go into the sandbox's options and the sandbox's issuer goes
//! into the fixture, so the fixture starts first without an IdP (it prints `READY <base_url>`),
//! the sandbox starts with the fixture as an external connector, and the test then tells the
//! fixture which IdP to trust with a `POST <base_url>/_config` (test-only, accepted once).
//!
//! Our client authenticates at Authlib with `client_secret_basic`, or, in the `private_key_jwt`
//! tests, with a client assertion (RFC 7523 §2.2) that Authlib's own `JWTBearerClientAssertion`
//! verifies against the public key the fixture registered (`--client-jwk`).
//!
//! Run with `tests/interop/authlib/run.sh` (it builds the Python venv and sets
//! `EMA_AUTHLIB_PYTHON`). Only the end-to-end tests need the keyring session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ema_core::config::{ClientAuth, ConnectorConfig, Policy};
use ema_core::discovery::ConnectorEndpoints;
use ema_core::grants::jwt_bearer::{self, ConnectorGrant, GrantError, JwtBearerGrant};
use ema_core::grants::token_exchange::{self, IssuedIdJag, TokenExchange};
use ema_core::http::{HttpRequest, HttpResponse};
use ema_core::http::{HttpTransport, Transport};
use ema_core::oauth::TokenRequest;
use ema_core::oauth::client_auth::{self, AssertionAudience};
use ema_core::secret::{ClientSecret, IdToken, PrivateKeyPem};
use ema_core::status::ConnectorState;
use ema_e2e::{Org, ScriptedBrowser, require_keyring_session, temp_dir};
use ema_sandbox::{ClientKey, ExternalConnector, SandboxOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECTOR: &str = "authlib";
const CLIENT_ID: &str = "ema-authlib";
const OTHER_CLIENT_ID: &str = "other-client";

/// A random hex string (std's `RandomState` is seeded from the OS).
fn random_secret() -> String {
    use std::hash::{BuildHasher, RandomState};
    (0..2).map(|i| format!("{:016x}", RandomState::new().hash_one(i))).collect()
}

/// How our client authenticates at the fixture.
enum OwnAuth {
    /// `client_secret_basic` with this secret.
    Secret(String),
    /// `private_key_jwt` with this key, its private half in `file` for the policy's `key_file`.
    Key { key: ClientKey, file: PathBuf },
}

/// The running Python fixture; killed when dropped.
struct Fixture {
    _child: tokio::process::Child,
    base: String,
    own: OwnAuth,
    other_client_secret: String,
    log: PathBuf,
}

impl Fixture {
    /// Starts the fixture with our client on `client_secret_basic`, or on `private_key_jwt` with a
    /// fresh P-256 key when `with_key`.
    async fn start(dir: &Path, with_key: bool) -> Fixture {
        let python = std::env::var_os("EMA_AUTHLIB_PYTHON").unwrap_or_else(|| {
            panic!(
                "EMA_AUTHLIB_PYTHON is not set: run these tests with `tests/interop/authlib/run.sh` \
                 (it creates the Authlib venv and points EMA_AUTHLIB_PYTHON at its python)"
            )
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/authlib/fixture.py");
        // other-client's secret has a space, `+` and `@`: Authlib percent-decodes Basic credentials
        // with `unquote`, so it checks that our client_secret_basic encoding survives that.
        let other_client_secret = format!("{} a+b c@d", random_secret());
        let own = if with_key {
            let key = ClientKey::generate().unwrap();
            let file = dir.join("ema-authlib-key.pem");
            std::fs::write(&file, key.private_pem()).unwrap();
            OwnAuth::Key { key, file }
        } else {
            OwnAuth::Secret(random_secret())
        };
        let own_arg = match &own {
            OwnAuth::Secret(secret) => ["--client-secret".to_owned(), secret.clone()],
            OwnAuth::Key { key, .. } => ["--client-jwk".to_owned(), key.public_jwk().to_string()],
        };
        let log = dir.join("authlib-fixture.log");
        let mut child = tokio::process::Command::new(python)
            .arg(&script)
            .args(own_arg)
            .args(["--other-client-secret", &other_client_secret])
            .args(["--scope", "read"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run $EMA_AUTHLIB_PYTHON");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let base = match ready {
            Ok(Ok(Some(line))) if line.starts_with("READY ") => line["READY ".len()..].trim().to_owned(),
            other => panic!(
                "the Authlib fixture did not start ({other:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Fixture { _child: child, base, own, other_client_secret, log }
    }

    /// The connector as the sandbox IdP issues ID-JAGs for it and the policy lists it.
    fn external_connector(&self) -> ExternalConnector {
        ExternalConnector {
            id: CONNECTOR.into(),
            display_name: "Authlib".into(),
            mcp_url: format!("{}/mcp", self.base),
            as_issuer: self.base.clone(),
            client_id: CLIENT_ID.into(),
            scopes: vec!["read".into()],
            client_auth: match &self.own {
                OwnAuth::Secret(secret) => {
                    serde_json::json!({ "method": "client_secret_basic", "client_secret": secret })
                }
                OwnAuth::Key { key, file } => serde_json::json!({
                    "method": "private_key_jwt",
                    "key_file": file,
                    "key_id": key.kid(),
                    "alg": "ES256",
                }),
            },
        }
    }

    /// Tells the fixture which IdP to trust (the sandbox's JWKS is at `<issuer>/jwks`).
    async fn trust(&self, idp_issuer: &str) {
        ema_core::http::install_tls_provider();
        let resp = reqwest::Client::new()
            .post(format!("{}/_config", self.base))
            .json(&serde_json::json!({ "idp_issuer": idp_issuer, "idp_jwks_url": format!("{idp_issuer}/jwks") }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "POST /_config: {}", resp.text().await.unwrap_or_default());
    }

    fn log(&self) -> String {
        format!("--- Authlib fixture log ({}) ---\n{}", self.log.display(), std::fs::read_to_string(&self.log).unwrap())
    }
}

/// The fixture, then the sandbox org with it as the external connector `authlib`.
async fn start(tag: &str) -> (Fixture, Org) {
    start_with(tag, false).await
}

/// [`start`], with our client at Authlib on `private_key_jwt` when `with_key`.
async fn start_with(tag: &str, with_key: bool) -> (Fixture, Org) {
    let fixture = Fixture::start(&temp_dir(&format!("authlib-fixture-{tag}")), with_key).await;
    let mut opts = SandboxOptions { external_connectors: vec![fixture.external_connector()], ..Default::default() };
    opts.knobs.latency_ms = 0;
    let org = Org::start_with(&format!("authlib-{tag}"), opts).await;
    fixture.trust(&org.sandbox.idp_issuer()).await;
    (fixture, org)
}

/// The token exchange and jwt-bearer legs by hand, for the refusal tests.
struct Legs {
    transport: HttpTransport,
    policy: Policy,
    /// Authlib's endpoints, found by our discovery.
    authlib: ConnectorEndpoints,
    id_token: IdToken,
}

impl Legs {
    async fn new(org: &Org) -> Legs {
        let policy = org.policy();
        let transport = HttpTransport::new(Duration::from_secs(10)).unwrap();
        let cfg = policy.connector(CONNECTOR).unwrap();
        let authlib =
            ema_core::discovery::discover(&transport, &cfg.mcp_url, cfg.authorization_server.as_ref()).await.unwrap();
        let id_token = IdToken::new(org.sandbox.issue_id_token("alice").unwrap());
        Legs { transport, policy, authlib, id_token }
    }

    fn authlib_config(&self) -> &ConnectorConfig {
        self.policy.connector(CONNECTOR).unwrap()
    }

    /// An ID-JAG from the sandbox IdP for `audience` / `resource`.
    async fn id_jag(&self, audience: &str, resource: &str, scopes: &[String]) -> IssuedIdJag {
        let idp = ema_core::signin::IdpClient::discover(&self.transport, &self.policy.idp).await.unwrap();
        let req = TokenExchange {
            token_endpoint: idp.token_endpoint(),
            client_id: &self.policy.idp.client_id,
            client_auth: &self.policy.idp.client_auth,
            audience,
            resource,
            scopes,
            subject_token: ema_core::grants::token_exchange::SubjectToken::IdToken(&self.id_token),
        }
        .build(now().unix_timestamp())
        .unwrap();
        let resp = self.transport.send(req).await.unwrap();
        token_exchange::process_response(idp.token_endpoint(), &resp, scopes).unwrap()
    }

    /// An ID-JAG for the Authlib connector, as the engine would ask for it.
    async fn authlib_id_jag(&self) -> IssuedIdJag {
        let scopes = self.authlib_config().scopes.clone();
        self.id_jag(&self.authlib.issuer, &self.authlib.resource, &scopes).await
    }

    /// The jwt-bearer grant at Authlib's token endpoint.
    async fn present(
        &self,
        client_id: &str,
        client_auth: &ClientAuth,
        issued: &IssuedIdJag,
    ) -> Result<ConnectorGrant, GrantError> {
        let req = JwtBearerGrant {
            token_endpoint: &self.authlib.token_endpoint,
            client_id,
            client_auth,
            assertion: issued.id_jag.clone(),
            scopes: &issued.scopes,
            resource: &self.authlib.resource,
            assertion_audience: ("", ema_core::oauth::client_auth::AudienceRule::Endpoint),
        }
        .build(now().unix_timestamp())
        .unwrap();
        let resp = self.transport.send(req).await.unwrap();
        jwt_bearer::process_response(&self.authlib.token_endpoint, &resp, &issued.scopes, now())
    }

    async fn present_as_ema(&self, issued: &IssuedIdJag) -> Result<ConnectorGrant, GrantError> {
        let cfg = self.authlib_config();
        self.present(&cfg.client_id, &cfg.client_auth, issued).await
    }

    /// The jwt-bearer grant request for `issued`, our client authenticated with a client
    /// assertion naming `audience` and signed with `auth`'s key.
    fn grant_request(&self, auth: &ClientAuth, audience: AssertionAudience<'_>, issued: &IssuedIdJag) -> HttpRequest {
        let params = vec![
            ("grant_type", jwt_bearer::GRANT_TYPE_JWT_BEARER.to_string()),
            ("assertion", issued.id_jag.secret().to_string()),
            ("scope", issued.scopes.join(" ")),
            ("resource", self.authlib.resource.clone()),
        ];
        let mut req = TokenRequest {
            token_endpoint: &self.authlib.token_endpoint,
            client_id: CLIENT_ID,
            client_auth: &ClientAuth::None,
            params,
        }
        .build(now().unix_timestamp())
        .unwrap();
        // `none` put `client_id` in the body; add the assertion fields after it.
        let parts = client_auth::authenticate_with(CLIENT_ID, auth, audience, now().unix_timestamp()).unwrap();
        let mut form = url::form_urlencoded::Serializer::new(String::from_utf8(req.body().clone()).unwrap());
        for (name, value) in parts.form.iter().filter(|(name, _)| *name != "client_id") {
            form.append_pair(name, value);
        }
        *req.body_mut() = form.finish().into_bytes();
        req
    }

    async fn send_grant(&self, req: HttpRequest, issued: &IssuedIdJag) -> Result<ConnectorGrant, GrantError> {
        let resp: HttpResponse = self.transport.send(req).await.unwrap();
        jwt_bearer::process_response(&self.authlib.token_endpoint, &resp, &issued.scopes, now())
    }
}

/// The same request again, byte for byte (a replay).
fn duplicate(req: &HttpRequest) -> HttpRequest {
    let mut copy = HttpRequest::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.headers_mut() = req.headers().clone();
    copy
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A refusal as our client reports it: the code, and Authlib's `error_description` in the message.
fn assert_refused(result: Result<ConnectorGrant, GrantError>, code: &str, description: &str, fixture: &Fixture) {
    let err = match result {
        Ok(_) => panic!("Authlib issued a token; expected `{code}`\n{}", fixture.log()),
        Err(e) => e,
    };
    assert_eq!(err.code().wire(err.oauth_error()), code, "{err}\n{}", fixture.log());
    let message = err.to_string();
    assert!(message.contains(description), "{message}\n{}", fixture.log());
    assert!(message.contains("HTTP 400"), "Authlib answers invalid_grant with 400: {message}");
}

#[tokio::test]
async fn sign_in_makes_the_authlib_connector_active_through_its_mcp_server() {
    require_keyring_session();
    let (fixture, org) = start("e2e").await;
    let engine = org.engine(&format!("dev.ema.e2e.authlib.{}", std::process::id()));
    let browser = ScriptedBrowser::new("alice", org.dir.join("browser.log"));
    engine.sign_in(&browser, SIGN_IN_TIMEOUT).await.unwrap();
    let s = engine.snapshot();
    let authlib = s.connectors.iter().find(|c| c.id == CONNECTOR).expect("the policy lists the external connector");
    assert_eq!(authlib.state, ConnectorState::Active, "{:?}\n{}", authlib.error, fixture.log());
    assert_eq!(authlib.scopes, ["read"]);
    assert_eq!(authlib.authorization_server.as_deref(), Some(fixture.base.as_str()));
    assert!(authlib.expires_at.unwrap() > s.generated_at);
    assert_eq!(authlib.identity.as_ref().unwrap().email.as_deref(), Some("alice@example.com"));
    let log = fixture.log();
    assert!(log.contains("issued an access token to ema-authlib"), "{log}");
    assert!(log.contains("MCP initialize from"), "the MCP check reached the fixture: {log}");
    let entitled = org.sandbox.entitled_connectors("alice");
    for c in s.connectors.iter().filter(|c| c.id != CONNECTOR) {
        let expected = if entitled.contains(&c.id) { ConnectorState::Active } else { ConnectorState::NotEntitled };
        assert_eq!(c.state, expected, "{}: {:?}", c.id, c.error);
    }
}

/// A refusal of our client authentication: `invalid_client` with Authlib's reason.
fn assert_client_refused(result: Result<ConnectorGrant, GrantError>, description: &str, fixture: &Fixture) {
    let err = match result {
        Ok(_) => panic!("Authlib issued a token; expected invalid_client\n{}", fixture.log()),
        Err(e) => e,
    };
    assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-client", "{err}\n{}", fixture.log());
    assert!(err.to_string().contains(description), "{err}\n{}", fixture.log());
}

#[tokio::test]
async fn sign_in_with_private_key_jwt_makes_the_authlib_connector_active() {
    require_keyring_session();
    let (fixture, org) = start_with("pkjwt-e2e", true).await;
    let policy = org.policy();
    assert_eq!(policy.connector(CONNECTOR).unwrap().client_auth.method_name(), "private_key_jwt");
    let engine = org.engine(&format!("dev.ema.e2e.authlib-pkjwt.{}", std::process::id()));
    let browser = ScriptedBrowser::new("alice", org.dir.join("browser.log"));
    engine.sign_in(&browser, SIGN_IN_TIMEOUT).await.unwrap();
    let s = engine.snapshot();
    let authlib = s.connectors.iter().find(|c| c.id == CONNECTOR).unwrap();
    assert_eq!(authlib.state, ConnectorState::Active, "{:?}\n{}", authlib.error, fixture.log());
    let log = fixture.log();
    // The token endpoint URL as the audience (RFC 7523 §3, OIDC Core §9), checked by Authlib.
    let aud = format!("client ema-authlib authenticated with private_key_jwt (aud '{}/token')", fixture.base);
    assert!(log.contains(&aud), "{log}");
    assert!(log.contains("issued an access token to ema-authlib"), "{log}");
}

/// Authlib's `JWTBearerClientAssertion` takes the token endpoint URL and the issuer (rfc7523bis,
/// explicitly typed) as the audience, and refuses another audience, another key and a replay.
#[tokio::test]
async fn authlib_checks_our_client_assertion() {
    let (fixture, org) = start_with("pkjwt", true).await;
    let legs = Legs::new(&org).await;
    assert_eq!(legs.authlib.token_endpoint_auth_methods, ["client_secret_basic", "private_key_jwt"]);
    let ours = legs.authlib_config().client_auth.clone();
    // What the engine sends: the policy's key, the token endpoint as the audience.
    let token = legs.present_as_ema(&legs.authlib_id_jag().await).await;
    assert!(token.is_ok(), "{:?}\n{}", token.err(), fixture.log());
    // The issuer alone, typed client-authentication+jwt (draft-ietf-oauth-rfc7523bis §4).
    let issued = legs.authlib_id_jag().await;
    let by_issuer = legs.grant_request(&ours, AssertionAudience::issuer(&legs.authlib.issuer), &issued);
    legs.send_grant(by_issuer, &issued).await.unwrap_or_else(|e| panic!("{e}\n{}", fixture.log()));

    // Another audience: the MCP server.
    let issued = legs.authlib_id_jag().await;
    let wrong_aud = legs.grant_request(&ours, AssertionAudience::endpoint(&legs.authlib.resource), &issued);
    assert_client_refused(legs.send_grant(wrong_aud, &issued).await, "Invalid claim: 'aud'", &fixture);
    // Another key under our key id.
    let OwnAuth::Key { key, .. } = &fixture.own else { unreachable!("started with a key") };
    let other_key = ClientAuth::PrivateKeyJwt {
        key: PrivateKeyPem::new(include_str!("../crates/core/tests/data/test-client-key.pem")),
        key_id: Some(key.kid().to_owned()),
        alg: jsonwebtoken::Algorithm::ES256,
    };
    let issued = legs.authlib_id_jag().await;
    let forged =
        legs.grant_request(&other_key, AssertionAudience::endpoint(legs.authlib.token_endpoint.as_str()), &issued);
    // Authlib says no more than `invalid_client` here (joserfc's BadSignatureError has no description).
    assert_client_refused(legs.send_grant(forged, &issued).await, "(HTTP 400): invalid_client", &fixture);
    assert!(fixture.log().contains("BadSignatureError"), "{}", fixture.log());
    // The same request twice: the client assertion's jti is spent by the first.
    let issued = legs.authlib_id_jag().await;
    let request = legs.grant_request(&ours, AssertionAudience::endpoint(legs.authlib.token_endpoint.as_str()), &issued);
    let replay = duplicate(&request);
    legs.send_grant(request, &issued).await.unwrap_or_else(|e| panic!("{e}\n{}", fixture.log()));
    assert_client_refused(legs.send_grant(replay, &issued).await, "JWT ID is used before", &fixture);
}

#[tokio::test]
async fn authlib_refuses_an_id_jag_for_another_authorization_server() {
    let (fixture, org) = start("audience").await;
    let legs = Legs::new(&org).await;
    let linear = legs.policy.connector("linear").unwrap();
    let for_linear =
        legs.id_jag(&org.sandbox.as_issuer("linear"), &org.sandbox.mcp_url("linear"), &linear.scopes).await;
    let claims = ema_core::jwt::decode_claims_unverified(for_linear.id_jag.secret()).unwrap();
    assert_eq!(claims["aud"], org.sandbox.as_issuer("linear"));
    // Presented to Authlib by our client there, with a scope Authlib knows: only `aud` is wrong.
    let wrong = IssuedIdJag { scopes: vec!["read".into()], ..for_linear };
    let result = legs.present_as_ema(&wrong).await;
    assert_refused(result, "connector-grant-oauth-invalid-grant", "Invalid claim: 'aud'", &fixture);
}

#[tokio::test]
async fn authlib_refuses_an_id_jag_presented_by_another_client() {
    let (fixture, org) = start("client").await;
    let legs = Legs::new(&org).await;
    let issued = legs.authlib_id_jag().await;
    let claims = ema_core::jwt::decode_claims_unverified(issued.id_jag.secret()).unwrap();
    assert_eq!(claims["client_id"], CLIENT_ID);
    let other = ClientAuth::ClientSecretBasic(ClientSecret::new(fixture.other_client_secret.clone()));
    let result = legs.present(OTHER_CLIENT_ID, &other, &issued).await;
    assert_refused(
        result,
        "connector-grant-oauth-invalid-grant",
        "Authenticated client does not match 'client_id' claim",
        &fixture,
    );
    // Authlib binds the client before it records the jti: the rightful client can still use it.
    let token = legs.present_as_ema(&issued).await.unwrap_or_else(|e| panic!("{e}\n{}", fixture.log()));
    assert!(token.expires_at.unwrap() > now());
}

#[tokio::test]
async fn authlib_refuses_a_replayed_id_jag() {
    let (fixture, org) = start("replay").await;
    let legs = Legs::new(&org).await;
    let issued = legs.authlib_id_jag().await;
    let first = legs.present_as_ema(&issued).await.unwrap_or_else(|e| panic!("{e}\n{}", fixture.log()));
    assert_eq!(first.scopes, ["read"]);
    assert!(!first.had_refresh_token, "IDJAGGrant never issues a refresh token");
    let replay = legs.present_as_ema(&issued).await;
    assert_refused(replay, "connector-grant-oauth-invalid-grant", "JWT has already been used (jti replay)", &fixture);
    // A freshly minted ID-JAG, as the engine sends for every grant, is accepted again.
    let fresh = legs.authlib_id_jag().await;
    legs.present_as_ema(&fresh).await.unwrap_or_else(|e| panic!("{e}\n{}", fixture.log()));
}
