//! A connector's authorization server with the app's client registered for `private_key_jwt`
//! (RFC 7523 §2.2 and §3, OIDC Core §9), over real HTTP: what its metadata and the policy say,
//! and what its token and revocation endpoints take and refuse under each audience rule.

use std::collections::BTreeMap;

use ema_sandbox::{ClientAssertionAudience, ClientAuthMethod, Sandbox, SandboxOptions};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Alice (Engineering) is assigned supabase.
const CONNECTOR: &str = "supabase";

struct Org {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Org {
    async fn start(audience: ClientAssertionAudience) -> Result<Org, Box<dyn std::error::Error>> {
        let opts = SandboxOptions {
            client_auth_by_connector: BTreeMap::from([(CONNECTOR.to_owned(), ClientAuthMethod::PrivateKeyJwt)]),
            client_assertion_audience: audience,
            ..SandboxOptions::default()
        };
        let sandbox = Sandbox::start(opts).await?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Org { sandbox, http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()? })
    }

    fn issuer(&self) -> String {
        self.sandbox.as_issuer(CONNECTOR)
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }

    /// A client assertion as a correct client signs it, naming `aud`.
    fn assertion(&self, aud: &str) -> Result<String, Box<dyn std::error::Error>> {
        let key = self.sandbox.connector_client_key(CONNECTOR).ok_or("no client key")?;
        let now = Self::now();
        let claims = json!({
            "iss": "ema-supabase", "sub": "ema-supabase", "aud": aud,
            "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60,
        });
        Ok(key.sign(Some("JWT"), &claims)?)
    }

    /// A fresh ID-JAG for alice at the connector (the IdP client authenticates with Basic).
    async fn id_jag(&self) -> Result<String, Box<dyn std::error::Error>> {
        let id_token = self.sandbox.issue_id_token("alice").ok_or("no id token")?;
        let (issuer, resource) = (self.issuer(), self.sandbox.mcp_url(CONNECTOR));
        let body: Value = self
            .http
            .post(format!("{}/token", self.sandbox.idp_issuer()))
            .basic_auth(self.sandbox.idp_client_id(), self.sandbox.idp_client_secret())
            .form(&[
                ("grant_type", EXCHANGE),
                ("requested_token_type", ID_JAG),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
                ("audience", &issuer),
                ("resource", &resource),
            ])
            .send()
            .await?
            .json()
            .await?;
        Ok(body["access_token"].as_str().ok_or_else(|| format!("no ID-JAG: {body}"))?.to_owned())
    }

    /// POSTs `form` plus the client assertion to `path` under the connector's AS.
    async fn post(&self, path: &str, assertion: &str, form: &[(&str, &str)]) -> Result<(u16, Value), reqwest::Error> {
        let mut form = form.to_vec();
        form.extend([("client_id", "ema-supabase"), ("client_assertion_type", ASSERTION_TYPE)]);
        form.push(("client_assertion", assertion));
        let response = self.http.post(format!("{}{path}", self.issuer())).form(&form).send().await?;
        let status = response.status().as_u16();
        let body = if status == 200 && path == "/revoke" { Value::Null } else { response.json().await? };
        Ok((status, body))
    }

    /// The jwt-bearer grant with a fresh ID-JAG, authenticated by `assertion`.
    async fn grant(&self, assertion: &str) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let id_jag = self.id_jag().await?;
        Ok(self.post("/token", assertion, &[("grant_type", JWT_BEARER), ("assertion", &id_jag)]).await?)
    }
}

fn assert_invalid_client((status, body): &(u16, Value), reason: &str) {
    assert_eq!(*status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(reason), "expected `{reason}` in: {description}");
}

#[tokio::test]
async fn metadata_and_policy_describe_the_private_key_jwt_client_and_its_key_file() -> TestResult {
    let org = Org::start(ClientAssertionAudience::default()).await?;
    let metadata: Value = org
        .http
        .get(org.sandbox.base_url().join("/.well-known/oauth-authorization-server/connectors/supabase/as")?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(metadata["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
    assert_eq!(metadata["token_endpoint_auth_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(metadata["revocation_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
    let linear: Value = org
        .http
        .get(org.sandbox.base_url().join("/.well-known/oauth-authorization-server/connectors/linear/as")?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(linear["token_endpoint_auth_methods_supported"], json!(["client_secret_basic"]), "others unchanged");
    assert!(linear.get("token_endpoint_auth_signing_alg_values_supported").is_none());

    let policy = org.sandbox.policy();
    let connectors = policy["connectors"].as_array().ok_or("connectors")?;
    let auth_of = |id: &str| connectors.iter().find(|c| c["id"] == id).map(|c| c["client_auth"].clone());
    let auth = auth_of(CONNECTOR).ok_or("supabase")?;
    let key = org.sandbox.connector_client_key(CONNECTOR).ok_or("no key")?;
    assert_eq!(auth["method"], "private_key_jwt");
    assert_eq!(auth["key_id"], key.kid());
    assert_eq!(auth["alg"], "ES256");
    assert!(auth.get("client_secret").is_none());
    let key_file = std::path::PathBuf::from(auth["key_file"].as_str().ok_or("key_file")?);
    assert!(key_file.is_absolute());
    assert_eq!(std::fs::read_to_string(&key_file)?, key.private_pem());
    assert!(key.private_pem().starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(key_file.parent().ok_or("dir")?)?.permissions().mode() & 0o777, 0o700);
    }
    assert_eq!(key.public_jwk()["kid"], key.kid());
    assert_eq!(auth_of("linear").ok_or("linear")?["method"], "client_secret_basic");
    assert_eq!(org.sandbox.connector_client(CONNECTOR), Some(("ema-supabase".into(), None)));

    org.sandbox.shutdown().await;
    assert!(!key_file.exists(), "the key goes with the sandbox");
    assert!(!key_file.parent().ok_or("dir")?.exists());
    Ok(())
}

#[tokio::test]
async fn the_grant_takes_a_correct_assertion_once_and_names_each_refusal() -> TestResult {
    let org = Org::start(ClientAssertionAudience::default()).await?;
    let token_endpoint = format!("{}/token", org.issuer());
    let assertion = org.assertion(&token_endpoint)?;
    let (status, body) = org.grant(&assertion).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    assert_eq!(org.sandbox.count("grant:supabase"), 1);
    // The issuer is as good (Keycloak, Spring and oidc-provider take both).
    let (status, body) = org.grant(&org.assertion(&org.issuer())?).await?;
    assert_eq!(status, 200, "{body}");

    assert_invalid_client(&org.grant(&assertion).await?, "was already used");
    assert_invalid_client(&org.grant(&org.assertion(&org.sandbox.mcp_url(CONNECTOR))?).await?, "is neither");
    let other = ema_sandbox::ClientKey::generate()?;
    let now = Org::now();
    let forged = other.sign(
        None,
        &json!({"iss": "ema-supabase", "sub": "ema-supabase", "aud": token_endpoint, "jti": "j1", "exp": now + 60}),
    )?;
    assert_invalid_client(&org.grant(&forged).await?, "is not this client's registered key");
    // A client secret is no way in for this client.
    let id_jag = org.id_jag().await?;
    let response = org
        .http
        .post(&token_endpoint)
        .basic_auth("ema-supabase", Some("guess"))
        .form(&[("grant_type", JWT_BEARER), ("assertion", id_jag.as_str())])
        .send()
        .await?;
    let refused = (response.status().as_u16(), response.json::<Value>().await?);
    assert_invalid_client(&refused, "registered for private_key_jwt");
    assert_eq!(org.sandbox.count("grant:supabase"), 2, "no refused request got a token");
    Ok(())
}

/// draft-ietf-oauth-rfc7523bis (OpenIddict 7): the issuer alone.
#[tokio::test]
async fn an_rfc7523bis_server_takes_only_its_issuer() -> TestResult {
    let org = Org::start(ClientAssertionAudience::IssuerOnly).await?;
    let refused = org.grant(&org.assertion(&format!("{}/token", org.issuer()))?).await?;
    assert_invalid_client(&refused, "as its sole value (draft-ietf-oauth-rfc7523bis §4)");
    let (status, body) = org.grant(&org.assertion(&org.issuer())?).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

/// Okta: exactly the URL of the endpoint invoked, at the revocation endpoint too.
#[tokio::test]
async fn an_okta_like_server_takes_only_the_endpoint_invoked() -> TestResult {
    let org = Org::start(ClientAssertionAudience::EndpointInvoked).await?;
    assert_invalid_client(&org.grant(&org.assertion(&org.issuer())?).await?, "the URL of the endpoint invoked");
    let (status, body) = org.grant(&org.assertion(&format!("{}/token", org.issuer()))?).await?;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().ok_or("token")?.to_owned();
    let revoke = |aud: String| {
        let org = &org;
        let token = token.clone();
        async move {
            let assertion = org.assertion(&aud).map_err(|e| e.to_string())?;
            org.post("/revoke", &assertion, &[("token", &token)]).await.map_err(|e| e.to_string())
        }
    };
    assert_invalid_client(&revoke(format!("{}/token", org.issuer())).await?, "the URL of the endpoint invoked");
    let (status, _) = revoke(format!("{}/revoke", org.issuer())).await?;
    assert_eq!(status, 200);
    assert_eq!(org.sandbox.count("connector-revoke"), 1);
    Ok(())
}
