//! End-to-end tests of the sandbox organisation over real HTTP.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ema_sandbox::{ClientAuthMethod, ConnectorFailure, Sandbox, SandboxOptions, entitled_connectors};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const REDIRECT: &str = "http://127.0.0.1:49152/callback";

/// A started sandbox plus an HTTP client that never follows redirects.
struct Org {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Org {
    async fn start(opts: SandboxOptions) -> Result<Org, Box<dyn std::error::Error>> {
        let sandbox = Sandbox::start(opts).await?;
        // The workspace's reqwest has no TLS provider of its own (ema-core installs ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Org { sandbox, http })
    }

    async fn default() -> Result<Org, Box<dyn std::error::Error>> {
        Self::start(SandboxOptions::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.base_url(), path.trim_start_matches('/'))
    }

    /// POSTs a form to a token endpoint with the registered client authentication.
    async fn token_request(
        &self,
        endpoint: &str,
        client_id: &str,
        method: ClientAuthMethod,
        secret: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut request = self.http.post(endpoint);
        match method {
            ClientAuthMethod::ClientSecretBasic => {
                request = request.basic_auth(client_id, secret);
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.unwrap_or_default()));
            }
            ClientAuthMethod::None => form.push(("client_id", client_id)),
            ClientAuthMethod::PrivateKeyJwt => {
                panic!("private_key_jwt clients sign an assertion: see tests/private_key_jwt.rs")
            }
        }
        let response = request.form(&form).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    async fn idp_token(&self, params: &[(&str, &str)]) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let policy = self.sandbox.policy();
        let method = auth_method(&policy["idp"]["client_auth"]["method"]);
        self.token_request(
            &self.url("/idp/token"),
            self.sandbox.idp_client_id(),
            method,
            self.sandbox.idp_client_secret(),
            params,
        )
        .await
    }

    async fn exchange(&self, id_token: &str, connector: &str) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let audience = self.sandbox.as_issuer(connector);
        let resource = self.sandbox.mcp_url(connector);
        self.idp_token(&[
            ("grant_type", EXCHANGE),
            ("requested_token_type", ID_JAG),
            ("subject_token", id_token),
            ("subject_token_type", ID_TOKEN),
            ("audience", &audience),
            ("resource", &resource),
        ])
        .await
    }

    async fn id_jag(&self, user: &str, connector: &str) -> Result<String, Box<dyn std::error::Error>> {
        let id_token = self.sandbox.issue_id_token(user).ok_or("unknown user")?;
        let (status, body) = self.exchange(&id_token, connector).await?;
        assert_eq!(status, 200, "{body}");
        Ok(body["access_token"].as_str().ok_or("no ID-JAG")?.to_owned())
    }

    async fn jwt_bearer(
        &self,
        connector: &str,
        assertion: &str,
        extra: &[(&str, &str)],
    ) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let (client_id, secret) = self.sandbox.connector_client(connector).ok_or("no connector")?;
        let policy = self.sandbox.policy();
        let method = auth_method(&policy["connectors"][0]["client_auth"]["method"]);
        let endpoint = format!("{}/token", self.sandbox.as_issuer(connector));
        let mut params = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
        params.extend_from_slice(extra);
        self.token_request(&endpoint, &client_id, method, secret.as_deref(), &params).await
    }

    async fn connector_token(&self, user: &str, connector: &str) -> Result<String, Box<dyn std::error::Error>> {
        let id_jag = self.id_jag(user, connector).await?;
        let (status, body) = self.jwt_bearer(connector, &id_jag, &[]).await?;
        assert_eq!(status, 200, "{body}");
        Ok(body["access_token"].as_str().ok_or("no access token")?.to_owned())
    }

    async fn mcp_post(
        &self,
        connector: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .http
            .post(self.sandbox.mcp_url(connector))
            .header("Accept", "application/json, text/event-stream")
            .json(body);
        // After initialize, Streamable HTTP clients send the negotiated version.
        if body["method"] != "initialize" {
            request = request.header("MCP-Protocol-Version", "2025-11-25");
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await
    }
}

fn auth_method(value: &Value) -> ClientAuthMethod {
    match value.as_str() {
        Some("client_secret_post") => ClientAuthMethod::ClientSecretPost,
        Some("none") => ClientAuthMethod::None,
        _ => ClientAuthMethod::ClientSecretBasic,
    }
}

/// Decodes a JWT's header and claims without verifying it.
fn decode_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || -> Value {
        let raw = URL_SAFE_NO_PAD.decode(parts.next().unwrap_or_default()).unwrap_or_default();
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };
    let header = next();
    (header, next())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Extracts `<input type="hidden" name=".." value="..">` pairs and the form action.
fn parse_login_form(html: &str) -> (String, Vec<(String, String)>) {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    };
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let form_tag = html.split("<form").nth(1).and_then(|s| s.split('>').next()).unwrap_or_default();
    let action = attr(form_tag, "action").unwrap_or_default();
    let hidden = html
        .split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            Some((attr(tag, "name")?, attr(tag, "value")?))
        })
        .collect();
    (action, hidden)
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// Runs the browser part of sign-in and returns the redirect's query parameters.
async fn browser_login(
    org: &Org,
    user: &str,
    password: &str,
    challenge: &str,
) -> Result<HashMap<String, String>, Box<dyn std::error::Error>> {
    let page = org
        .http
        .get(org.url("/idp/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "ema-desktop"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email profile offline_access"),
            ("state", "st<&>ate"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("<form id=\"login\" method=\"post\""));
    assert!(html.contains("alice") && html.contains("dave"), "demo users listed");
    let (action, mut fields) = parse_login_form(&html);
    assert_eq!(action, "/idp/login");
    fields.push(("username".to_owned(), user.to_owned()));
    fields.push(("password".to_owned(), password.to_owned()));
    let response = org.http.post(org.url(&action)).form(&fields).send().await?;
    if response.status() != 302 {
        return Err(format!("login answered {}: {}", response.status(), response.text().await?).into());
    }
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("no Location")?;
    let location = url::Url::parse(location)?;
    assert!(location.as_str().starts_with(REDIRECT));
    Ok(location.query_pairs().into_owned().collect())
}

#[tokio::test]
async fn discovery_documents() -> TestResult {
    let org = Org::default().await?;
    let issuer = org.sandbox.idp_issuer();
    let oidc: Value = org.http.get(org.url("/idp/.well-known/openid-configuration")).send().await?.json().await?;
    assert_eq!(oidc["issuer"], issuer);
    assert_eq!(oidc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(oidc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(oidc["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert!(oidc["grant_types_supported"].as_array().is_some_and(|g| g.contains(&json!(EXCHANGE))));

    let jwks: Value = org.http.get(org.url("/idp/jwks")).send().await?.json().await?;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("ES256"), Some("sig"))
    );
    assert!(key["kid"].is_string());

    let mcp = org.sandbox.mcp_url("linear");
    let prm: Value = org
        .http
        .get(org.url("/.well-known/oauth-protected-resource/connectors/linear/mcp"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(prm["resource"], mcp);
    assert_eq!(prm["authorization_servers"], json!([org.sandbox.as_issuer("linear")]));
    assert_eq!(prm["scopes_supported"], json!(["read", "write"]));
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));

    let asm: Value = org
        .http
        .get(org.url("/.well-known/oauth-authorization-server/connectors/figma/as"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(asm["issuer"], org.sandbox.as_issuer("figma"));
    assert_eq!(asm["token_endpoint"], format!("{}/token", org.sandbox.as_issuer("figma")));
    assert_eq!(asm["grant_types_supported"], json!([JWT_BEARER]));
    assert_eq!(asm["token_endpoint_auth_methods_supported"], json!(["client_secret_basic"]));
    assert_eq!(asm["authorization_grant_profiles_supported"], json!(["urn:ietf:params:oauth:grant-profile:id-jag"]));
    assert_eq!(asm["scopes_supported"], json!(["files:read"]));

    let missing = org.http.get(org.url("/.well-known/oauth-protected-resource/connectors/nope/mcp")).send().await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

#[tokio::test]
async fn policy_document_matches_example_shape() -> TestResult {
    let org = Org::default().await?;
    let policy = org.sandbox.policy();
    let example: Value = serde_json::from_str(include_str!("../../../examples/policy.example.json"))?;
    let keys = |v: &Value| -> Vec<String> { v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default() };
    assert_eq!(keys(&policy), keys(&example));
    assert_eq!(keys(&policy["organization"]), keys(&example["organization"]));
    assert_eq!(keys(&policy["idp"]), keys(&example["idp"]));
    assert_eq!(keys(&policy["connectors"][0]), keys(&example["connectors"][0]));
    assert_eq!(policy["idp"]["issuer"], org.sandbox.idp_issuer());
    assert_eq!(policy["idp"]["client_id"], "ema-desktop");
    assert_eq!(policy["organization"]["help_desk"]["url"], org.url("/help"));
    let ids: Vec<&str> =
        policy["connectors"].as_array().ok_or("connectors")?.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["asana", "atlassian", "canva", "figma", "granola", "linear", "supabase"]);
    assert_eq!(policy["connectors"][5]["client_id"], "ema-linear");
    assert_eq!(policy["connectors"][5]["authorization_server"], org.sandbox.as_issuer("linear"));
    let over_http: Value = org.http.get(org.url("/_sandbox/policy")).send().await?.json().await?;
    assert_eq!(over_http, policy);
    let help = org.http.get(org.url("/help")).send().await?;
    assert_eq!(help.status(), 200);
    Ok(())
}

#[tokio::test]
async fn browser_login_code_pkce_refresh_and_revoke() -> TestResult {
    let org = Org::default().await?;
    let pkce = pkce();
    let query = browser_login(&org, "alice@example.com", "demo", &pkce.challenge).await?;
    assert_eq!(query.get("state").map(String::as_str), Some("st<&>ate"));
    assert_eq!(query.get("iss"), Some(&org.sandbox.idp_issuer()));
    let code = query.get("code").ok_or("no code")?;

    let (status, body) = org
        .idp_token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
        ])
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].is_string() && body["expires_in"].is_number());
    let id_token = body["id_token"].as_str().ok_or("id_token")?;
    let refresh = body["refresh_token"].as_str().ok_or("refresh_token")?;

    // Verify the ID token against the JWKS, as the app will.
    let jwks: Value = org.http.get(org.url("/idp/jwks")).send().await?.json().await?;
    let jwk = &jwks["keys"][0];
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(jwk["x"].as_str().ok_or("x")?, jwk["y"].as_str().ok_or("y")?)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["ema-desktop"]);
    validation.set_issuer(&[org.sandbox.idp_issuer()]);
    let verified = jsonwebtoken::decode::<Value>(id_token, &key, &validation)?;
    assert_eq!(verified.header.kid.as_deref(), jwk["kid"].as_str());
    assert_eq!(verified.header.typ.as_deref(), Some("JWT"));
    let claims = verified.claims;
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Engineer");
    assert_eq!(claims["groups"], json!(["Engineering"]));
    assert!(claims["auth_time"].is_number());

    // The code is one-time.
    let (status, body) = org
        .idp_token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
        ])
        .await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Refresh rotates.
    let (status, body) = org.idp_token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await?;
    assert_eq!(status, 200, "{body}");
    let (_, refreshed) = decode_parts(body["id_token"].as_str().ok_or("id_token")?);
    assert!(refreshed.get("nonce").is_none());
    let rotated = body["refresh_token"].as_str().ok_or("rotated")?.to_owned();
    assert_ne!(rotated, refresh);
    let (status, body) = org.idp_token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Revocation (RFC 7009) kills the rotated one.
    let secret = org.sandbox.idp_client_secret().ok_or("secret")?;
    let revoked = org
        .http
        .post(org.url("/idp/revoke"))
        .basic_auth("ema-desktop", Some(secret))
        .form(&[("token", rotated.as_str())])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    let (status, _) = org.idp_token(&[("grant_type", "refresh_token"), ("refresh_token", &rotated)]).await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn wrong_pkce_verifier_and_bad_requests_are_refused() -> TestResult {
    let org = Org::default().await?;
    let pkce = pkce();
    let query = browser_login(&org, "bob", "demo", &pkce.challenge).await?;
    let code = query.get("code").ok_or("no code")?;
    let wrong = "x".repeat(43);
    let (status, body) = org
        .idp_token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ])
        .await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("code_verifier")));

    // Wrong password re-renders the login page.
    assert!(browser_login(&org, "bob", "nope", &pkce.challenge).await.is_err());

    // A non-loopback redirect URI gets an error page, never a redirect.
    let page = org
        .http
        .get(org.url("/idp/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "ema-desktop"),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await?;
    assert_eq!(page.status(), 400);
    assert!(page.headers().get("location").is_none());

    // Missing PKCE redirects back with invalid_request.
    let response = org
        .http
        .get(org.url("/idp/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "ema-desktop"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s1"),
        ])
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers().get("location").ok_or("location")?.to_str()?)?;
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query.get("error").map(String::as_str), Some("invalid_request"));
    assert_eq!(query.get("state").map(String::as_str), Some("s1"));

    // Client authentication is strict: wrong secret, or post instead of basic.
    let (status, body) = org
        .token_request(
            &org.url("/idp/token"),
            "ema-desktop",
            ClientAuthMethod::ClientSecretBasic,
            Some("wrong"),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await?;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let secret = org.sandbox.idp_client_secret().ok_or("secret")?;
    let (status, _) = org
        .token_request(
            &org.url("/idp/token"),
            "ema-desktop",
            ClientAuthMethod::ClientSecretPost,
            Some(secret),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await?;
    assert_eq!(status, 401);
    Ok(())
}

#[tokio::test]
async fn token_exchange_issues_id_jag_for_entitled_connectors_only() -> TestResult {
    let org = Org::default().await?;
    let id_token = org.sandbox.issue_id_token("alice").ok_or("alice")?;
    let (status, body) = org.exchange(&id_token, "linear").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ID_JAG);
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read write");
    let (header, claims) = decode_parts(body["access_token"].as_str().ok_or("ID-JAG")?);
    assert_eq!(header["typ"], "oauth-id-jag+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], org.sandbox.idp_issuer());
    assert_eq!(claims["aud"], org.sandbox.as_issuer("linear"));
    assert_eq!(claims["client_id"], "ema-linear");
    assert_eq!(claims["resource"], org.sandbox.mcp_url("linear"));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["sub"], "sandbox-user-alice");
    assert!(claims["jti"].is_string() && claims["auth_time"].is_number());
    let ttl = claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default();
    assert_eq!(ttl, 300);

    let (status, body) = org.exchange(&id_token, "figma").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("access_denied")), "{body}");
    assert_eq!(body["error_description"], "user is not assigned to figma");

    let (status, body) = org
        .idp_token(&[
            ("grant_type", EXCHANGE),
            ("requested_token_type", ID_JAG),
            ("subject_token", &id_token),
            ("subject_token_type", ID_TOKEN),
            ("audience", "https://unknown.example"),
        ])
        .await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));

    // Narrowed scope.
    let audience = org.sandbox.as_issuer("linear");
    let (status, body) = org
        .idp_token(&[
            ("grant_type", EXCHANGE),
            ("requested_token_type", ID_JAG),
            ("subject_token", &id_token),
            ("subject_token_type", ID_TOKEN),
            ("audience", &audience),
            ("scope", "read admin"),
        ])
        .await?;
    assert_eq!((status, body["scope"].as_str()), (200, Some("read")));

    // Step-up knob.
    org.sandbox.knobs().update(|k| {
        k.step_up_required.insert("linear".to_owned());
    });
    let (status, body) = org.exchange(&id_token, "linear").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("insufficient_user_authentication")));
    assert_eq!(body["max_age"], 300, "RFC 9470 §3: how recent the sign-in must be");
    assert_eq!(body["acr_values"], "urn:ema:sandbox:acr:mfa", "and which class it must meet");
    let (status, _) = org.exchange(&id_token, "atlassian").await?;
    assert_eq!(status, 200, "only the connector the knob names asks for it");
    org.sandbox.knobs().reset();

    // Expired ID token (sandbox clock moved past it).
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 3600 + 60);
    let (status, body) = org.exchange(&id_token, "linear").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("expired")));
    Ok(())
}

#[test]
fn entitlement_table() {
    assert_eq!(entitled_connectors("alice"), ["atlassian", "linear", "supabase"]);
    assert_eq!(entitled_connectors("bob"), ["canva", "figma"]);
    assert_eq!(entitled_connectors("carol"), ["asana", "granola"]);
    assert_eq!(entitled_connectors("dave"), ["atlassian", "canva", "figma", "linear", "supabase"]);
    assert_eq!(Sandbox::users().len(), 4);
}

#[tokio::test]
async fn jwt_bearer_grant_is_strict() -> TestResult {
    let org = Org::default().await?;
    let id_jag = org.id_jag("alice", "linear").await?;
    let resource = org.sandbox.mcp_url("linear");
    let (status, body) = org.jwt_bearer("linear", &id_jag, &[("scope", "read"), ("resource", &resource)]).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.get("refresh_token").is_none());

    // Replay.
    let (status, body) = org.jwt_bearer("linear", &id_jag, &[]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("jti")), "{body}");

    // Wrong audience: an ID-JAG for linear presented to supabase's AS.
    let id_jag = org.id_jag("alice", "linear").await?;
    let (status, body) = org.jwt_bearer("supabase", &id_jag, &[]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("aud")), "{body}");

    // Bad signature: same header and claims, signed by another key.
    let (header, claims) = decode_parts(&id_jag);
    let other = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"not the idp"))?;
    use p256::pkcs8::EncodePrivateKey;
    let der = other.to_pkcs8_der()?;
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    forged_header.typ = header["typ"].as_str().map(str::to_owned);
    forged_header.kid = header["kid"].as_str().map(str::to_owned);
    let forged =
        jsonwebtoken::encode(&forged_header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()))?;
    let (status, body) = org.jwt_bearer("linear", &forged, &[]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("signature")), "{body}");

    // Wrong resource in the request.
    let (status, body) = org.jwt_bearer("linear", &id_jag, &[("resource", "http://127.0.0.1:1/mcp")]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("resource")), "{body}");

    // Expired: move the sandbox clock past exp + leeway.
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 300 + 31);
    let (status, body) = org.jwt_bearer("linear", &id_jag, &[]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("expired")), "{body}");

    // iat in the future (IdP clock ahead): issue now, validate 60 s in the past.
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 0);
    let id_jag = org.id_jag("alice", "linear").await?;
    org.sandbox.knobs().update(|k| k.clock_offset_secs = -60);
    let (status, body) = org.jwt_bearer("linear", &id_jag, &[]).await?;
    assert_eq!(status, 400);
    assert!(body["error_description"].as_str().is_some_and(|d| d.contains("iat")), "{body}");
    org.sandbox.knobs().reset();

    // Wrong client secret at the AS.
    let endpoint = format!("{}/token", org.sandbox.as_issuer("linear"));
    let (status, body) = org
        .token_request(
            &endpoint,
            "ema-linear",
            ClientAuthMethod::ClientSecretBasic,
            Some("wrong"),
            &[("grant_type", JWT_BEARER), ("assertion", &id_jag)],
        )
        .await?;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    Ok(())
}

#[tokio::test]
async fn mcp_endpoint_requires_bearer_and_serves_initialize() -> TestResult {
    let org = Org::default().await?;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    });
    let response = org.mcp_post("linear", None, &initialize).await?;
    assert_eq!(response.status(), 401);
    let challenge = response.headers().get("www-authenticate").ok_or("challenge")?.to_str()?.to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\"",
            org.url("/.well-known/oauth-protected-resource/connectors/linear/mcp")
        )
    );
    let response = org.mcp_post("linear", Some("bogus"), &initialize).await?;
    assert_eq!(response.status(), 401);
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("error=\"invalid_token\""))
    );

    let token = org.connector_token("alice", "linear").await?;
    // A linear token does not open supabase.
    assert_eq!(org.mcp_post("supabase", Some(&token), &initialize).await?.status(), 401);

    let response = org.mcp_post("linear", Some(&token), &initialize).await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["result"]["serverInfo"]["name"], "sandbox-linear");
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
    assert!(body["result"]["capabilities"]["tools"].is_object());

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let body: Value = org.mcp_post("linear", Some(&token), &list).await?.json().await?;
    assert_eq!(body["result"]["tools"][0]["name"], "whoami", "{body}");

    let call =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let body: Value = org.mcp_post("linear", Some(&token), &call).await?.json().await?;
    let who = &body["result"]["structuredContent"];
    assert_eq!(who["email"], "alice@example.com", "{body}");
    assert_eq!(who["connector"], "linear");

    // Stateless server: no standalone SSE stream, so GET is 405 once authorised.
    let get = org.http.get(org.sandbox.mcp_url("linear")).header("Accept", "text/event-stream");
    assert_eq!(get.try_clone().ok_or("clone")?.send().await?.status(), 401);
    assert_eq!(get.bearer_auth(&token).send().await?.status(), 405);

    // The access token expires on the sandbox clock.
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 3601);
    assert_eq!(org.mcp_post("linear", Some(&token), &initialize).await?.status(), 401);
    Ok(())
}

#[tokio::test]
async fn knobs_inject_failures_and_latency() -> TestResult {
    let org = Org::default().await?;
    let token = org.connector_token("carol", "asana").await?;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    });

    // Over HTTP, as another process would: POST merges fields.
    let knobs: Value = org
        .http
        .post(org.url("/_sandbox/knobs"))
        .json(&json!({"idp_down": true, "failing_connectors": {"asana": "mcp_down", "granola": "invalid_grant"}}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(knobs["idp_down"], true);
    assert_eq!(knobs["id_jag_ttl_secs"], 300);
    let response = org.http.get(org.url("/idp/jwks")).send().await?;
    assert_eq!(response.status(), 503);
    assert_eq!(org.mcp_post("asana", Some(&token), &initialize).await?.status(), 503);
    let (status, body) = org.jwt_bearer("granola", "x.y.z", &[]).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let bad = org.http.post(org.url("/_sandbox/knobs")).json(&json!({"no_such_knob": 1})).send().await?;
    assert_eq!(bad.status(), 400);

    // The connector keeps working while the IdP is down (only renewals fail).
    org.sandbox.knobs().update(|k| {
        k.failing_connectors.clear();
    });
    assert_eq!(org.mcp_post("asana", Some(&token), &initialize).await?.status(), 200);
    org.sandbox.knobs().update(|k| {
        k.idp_down = false;
        k.failing_connectors.insert("asana".to_owned(), ConnectorFailure::McpUnauthorized);
        k.failing_connectors.insert("granola".to_owned(), ConnectorFailure::ServerError);
    });
    assert_eq!(org.mcp_post("asana", Some(&token), &initialize).await?.status(), 401);
    let id_jag = org.id_jag("carol", "granola").await?;
    let (status, body) = org.jwt_bearer("granola", &id_jag, &[]).await?;
    assert_eq!((status, body["error"].as_str()), (500, Some("server_error")));

    // Latency applies to protocol routes.
    org.sandbox.knobs().update(|k| k.latency_ms = 250);
    let started = Instant::now();
    let response = org.http.get(org.url("/idp/jwks")).send().await?;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Clock offset shows in the Date header.
    let reset: Value = org.http.delete(org.url("/_sandbox/knobs")).send().await?.json().await?;
    assert_eq!(reset["latency_ms"], 0);
    org.sandbox.knobs().update(|k| k.clock_offset_secs = 7200);
    let response = org.http.get(org.url("/idp/jwks")).send().await?;
    let date = response.headers().get("date").ok_or("date")?.to_str()?;
    let parsed = time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822)?;
    assert!((parsed.unix_timestamp() - now() - 7200).abs() < 5, "{date}");
    Ok(())
}

#[tokio::test]
async fn other_client_auth_methods_and_synthetic_connectors() -> TestResult {
    let org = Org::start(SandboxOptions {
        idp_client_auth: ClientAuthMethod::None,
        connector_client_auth: ClientAuthMethod::ClientSecretPost,
        extra_connectors: 3,
        only_connectors: Some(vec!["figma".to_owned()]),
        ..SandboxOptions::default()
    })
    .await?;
    let policy = org.sandbox.policy();
    assert_eq!(policy["idp"]["client_auth"], json!({"method": "none"}));
    assert_eq!(policy["connectors"][1]["client_auth"]["method"], "client_secret_post");
    assert_eq!(org.sandbox.connector_ids(), ["figma", "synthetic-01", "synthetic-02", "synthetic-03"]);
    assert_eq!(policy["connectors"][3]["display_name"], "Synthetic 03");
    assert_eq!(org.sandbox.entitled_connectors("carol"), ["synthetic-01", "synthetic-02", "synthetic-03"]);
    assert_eq!(org.sandbox.entitled_connectors("bob"), ["figma", "synthetic-01", "synthetic-02", "synthetic-03"]);

    let token = org.connector_token("carol", "synthetic-02").await?;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    });
    let body: Value = org.mcp_post("synthetic-02", Some(&token), &initialize).await?.json().await?;
    assert_eq!(body["result"]["serverInfo"]["name"], "sandbox-synthetic-02", "{body}");
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");

    // With `none` registered, a secret is refused.
    let id_token = org.sandbox.issue_id_token("bob").ok_or("bob")?;
    let (status, _) = org
        .token_request(
            &org.url("/idp/token"),
            "ema-desktop",
            ClientAuthMethod::ClientSecretPost,
            Some("x"),
            &[("grant_type", EXCHANGE), ("subject_token", &id_token)],
        )
        .await?;
    assert_eq!(status, 401);
    assert!(
        Sandbox::start(SandboxOptions { only_connectors: Some(vec!["nope".to_owned()]), ..Default::default() })
            .await
            .is_err()
    );
    Ok(())
}
