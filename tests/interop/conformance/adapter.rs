//! Client side of the MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `package-lock.json`), driven by the EMA engine's own discovery and connect path
//! (`Engine::connect_all`), never by a re-implementation here. `run.sh` runs the suite once per
//! scenario; the suite starts its servers and runs `conformance-adapter [--expect ...] <mcp-url>`
//! (it appends the MCP URL), with `MCP_CONFORMANCE_SCENARIO` (the scenario's name) in the
//! environment and, for scenarios that have one, `MCP_CONFORMANCE_CONTEXT` (JSON).
//!
//! What each scenario proves (`run.sh` grades the suite's checks; this adapter proves the
//! engine's side: its connector's state and error code, and what it did with the token):
//! - `auth/enterprise-managed-authorization` (the EMA extension, `--expect connect`): the suite's
//!   own IdP, AS and MCP server check every request of the whole flow: RFC 9728 -> RFC 8414
//!   discovery, the RFC 8693 token exchange of the ID token for an ID-JAG at the IdP, the
//!   RFC 7523 jwt-bearer grant at the AS with `client_secret_basic` (the ID-JAG's `typ`, `aud`,
//!   `client_id`, `resource`), then bearer use at the MCP server.
//! - `auth/metadata-default`, `-var1`, `-var2`, `-var3` (`--expect connect`): discovery the way
//!   each variant publishes its metadata: the protected-resource metadata (PRM) named by the 401's
//!   `WWW-Authenticate` or only at its well-known location, path-based or, in `-var2`, only at
//!   the root `/.well-known/oauth-protected-resource` (whose `resource` is the origin, sent
//!   verbatim), the AS metadata as RFC 8414 or OpenID configuration, with or without an issuer
//!   path; then the grant and bearer use with the resource exactly as published.
//! - `auth/resource-mismatch` (`--expect refuse:discovery-resource-mismatch`): a PRM for another
//!   resource; `auth/metadata-issuer-mismatch` (`--expect refuse:discovery-issuer-mismatch`): AS
//!   metadata naming another issuer. The engine must refuse the connector with that code, and
//!   before asking the IdP for an ID-JAG for it.
//!
//! Where the IdP comes from:
//! - The EMA scenario passes `client_id`, `client_secret`, `idp_client_id`, `idp_id_token`,
//!   `idp_issuer` and `idp_token_endpoint`. The ID token is pre-minted, so there is no browser
//!   leg. The suite's IdP serves an OpenID configuration that OIDC Discovery would not accept (no
//!   `response_types_supported`, `subject_types_supported` or
//!   `id_token_signing_alg_values_supported`, and its `jwks_uri` is not served), so the adapter
//!   serves a complete one on 127.0.0.1 naming the suite's token endpoint, and the policy's issuer
//!   is that address. The connector authenticates with `client_secret_basic`, which the suite's
//!   AS requires.
//! - The generic scenarios pass no context: they are written for an authorization-code client,
//!   while the engine gets its connector tokens by ID-JAG. So the adapter is the IdP: a small one
//!   on 127.0.0.1 (`LocalIdp`) with an OpenID configuration and a token endpoint answering
//!   RFC 8693 token exchange of the ID token it minted with an ID-JAG (`typ`
//!   `oauth-id-jag+jwt`) for the `audience` and `resource` the engine asks for. The suite's AS
//!   answers the jwt-bearer grant with its test token without reading the assertion (its generic
//!   token endpoint issues one for any grant), so what the ID-JAG says is checked here: its
//!   audience must be the AS the engine discovered. The connector is a public client (`none`),
//!   as those ASs advertise.
//!
//! Either way the adapter sets the engine up as the product would be after `ema login`: the
//! policy IT would write (the IdP, one connector at the MCP URL) and the stored session holding
//! the ID token, in an in-memory store (the one thing not the product's: the suite's processes
//! have no desktop keyring). Then `Engine::connect_all`: discovery, token exchange, jwt-bearer
//! grant, the product's MCP check (`initialize`, `notifications/initialized`, the session ended)
//! and the connector's state as the tray would show it. With `--expect connect`, the token the
//! engine hands to clients (`Engine::fresh_access_token`, what `ema headers` prints) is then used
//! for MCP over Streamable HTTP through rmcp: `initialize`, `tools/list`, `tools/call` of the
//! first tool. With `--expect refuse:<code>`, the connector must not be active and its error must
//! carry `<code>`.
//!
//! Exit status 0 on success; otherwise 1 with one line naming the failed step. Tokens and the
//! client secret are never printed, only their fingerprints.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ema_core::config::{ConfigSource, Policy};
use ema_core::http::HttpTransport;
use ema_core::secret::{AccessToken, IdToken};
use ema_core::status::ConnectorState;
use ema_core::url_policy::same_uri;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use url::Url;

/// The connector's id in the policy.
const CONNECTOR: &str = "conformance";

/// Every HTTP request (and each MCP call) must finish within this; the suite's own limit is 30 s.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The app's client id at the local IdP (a public client, as `ema login` uses one).
const LOCAL_IDP_CLIENT: &str = "ema-desktop";
/// Our client id at the generic scenarios' ASs (they take any, unauthenticated).
const LOCAL_CONNECTOR_CLIENT: &str = "ema-conformance";

const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const TOKEN_TYPE_ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// How the run must end (`--expect`, from `run.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The connector active, then MCP with the token the engine hands to clients.
    Connect,
    /// The connector refused with this status code, and no ID-JAG asked for it.
    Refuse(String),
}

/// The IdP and the clients the policy names, and the ID token `ema login` would have stored.
#[derive(Debug)]
struct Setup {
    issuer: Url,
    idp_client_id: String,
    id_token: IdToken,
    connector_client_id: String,
    /// The policy's `client_auth` object for the connector.
    connector_auth: Value,
    /// The adapter's own IdP, when the suite passes none.
    local_idp: Option<Arc<LocalIdp>>,
}

/// A failed step: which one, and why (never containing a token).
#[derive(Debug)]
struct Failure {
    step: &'static str,
    reason: String,
}

fn fail(step: &'static str) -> impl FnOnce(String) -> Failure {
    move |reason| Failure { step, reason }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conformance-adapter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => {
            eprintln!("conformance-adapter: OK");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("conformance-adapter: FAILED at {}: {}", f.step, f.reason);
            ExitCode::FAILURE
        }
    }
}

/// `[--expect connect|refuse:<code>] <mcp-url>`: the suite appends the URL as the last argument.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<(Expect, Url), Failure> {
    let step = "reading the command line";
    let usage = "usage: conformance-adapter [--expect connect|refuse:<status code>] <mcp-url>";
    let mut expect = Expect::Connect;
    let mut url = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--expect" {
            let v = args.next().ok_or_else(|| fail(step)(usage.into()))?;
            expect = match v.split_once(':') {
                None if v == "connect" => Expect::Connect,
                Some(("refuse", code)) if !code.is_empty() => Expect::Refuse(code.to_string()),
                _ => return Err(fail(step)(format!("`--expect {v}`: {usage}"))),
            };
        } else {
            url = Some(a);
        }
    }
    let url = url.ok_or_else(|| fail(step)(usage.into()))?;
    let url = Url::parse(&url).map_err(|e| fail(step)(format!("`{url}` is not a URL: {e}")))?;
    Ok((expect, url))
}

/// The EMA scenario's inputs, from `MCP_CONFORMANCE_CONTEXT`.
async fn suite_setup(raw: &str) -> Result<Setup, Failure> {
    let step = "reading the suite's inputs";
    let json: Value = serde_json::from_str(raw)
        .map_err(|e| fail(step)(format!("MCP_CONFORMANCE_CONTEXT is not JSON: {}", json_error_class(&e))))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| fail(step)(format!("MCP_CONFORMANCE_CONTEXT has no string `{name}`")))
    };
    let endpoint = field("idp_token_endpoint")?;
    let token_endpoint =
        Url::parse(&endpoint).map_err(|e| fail(step)(format!("idp_token_endpoint `{endpoint}` is not a URL: {e}")))?;
    if let Some(issuer) = json.get("idp_issuer").and_then(Value::as_str) {
        eprintln!("IdP: the suite's, issuer {issuer}, token endpoint {token_endpoint}");
    }
    let issuer = serve_idp_configuration(&token_endpoint).await.map_err(fail("serving the IdP's configuration"))?;
    Ok(Setup {
        issuer,
        idp_client_id: field("idp_client_id")?,
        id_token: IdToken::new(field("idp_id_token")?),
        connector_client_id: field("client_id")?,
        connector_auth: json!({ "method": "client_secret_basic", "client_secret": field("client_secret")? }),
        local_idp: None,
    })
}

/// The error class only: serde's message may quote the (secret-bearing) input.
fn json_error_class(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "truncated",
    }
}

/// Serves the IdP's OpenID configuration (OIDC Discovery §4) on 127.0.0.1, naming the suite's
/// token endpoint, and returns its issuer URL. The JWKS is empty: the engine never verifies the ID
/// token it was handed; the suite's IdP does, in the exchange.
async fn serve_idp_configuration(token_endpoint: &Url) -> Result<Url, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let issuer = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let configuration = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": token_endpoint.as_str(),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(configuration) }),
        )
        .route("/jwks", axum::routing::get(|| async { axum::Json(json!({ "keys": [] })) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Url::parse(&issuer).map_err(|e| e.to_string())
}

/// The IdP the generic scenarios lack: an OpenID configuration and an RFC 8693 token endpoint
/// issuing ID-JAGs (ID-JAG -04 §4.3) for the ID token it minted, signed with a key of this run
/// (HS256: nobody downstream verifies the signature, the suite's generic ASs do not read the
/// assertion; the JWKS is therefore empty). It records what it issued and refused.
#[derive(Debug)]
struct LocalIdp {
    issuer: String,
    key: Vec<u8>,
    /// `(audience, resource)` of every ID-JAG issued.
    issued: Mutex<Vec<(String, Option<String>)>>,
    /// Why each refused token request was refused.
    refused: Mutex<Vec<String>>,
}

/// Unpredictable bytes from the standard library's randomly seeded hasher (no RNG dependency for
/// a key that lives as long as one test run).
fn random_bytes(n: usize) -> Vec<u8> {
    (0..n.div_ceil(8) as u64).flat_map(|i| RandomState::new().hash_one(i).to_le_bytes()).take(n).collect()
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl LocalIdp {
    /// Starts it on 127.0.0.1 and returns it with the ID token `ema login` would have stored.
    async fn start() -> Result<(Arc<LocalIdp>, IdToken), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let issuer = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let idp = Arc::new(LocalIdp {
            issuer: issuer.clone(),
            key: random_bytes(32),
            issued: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        });
        let now = now_unix();
        let id_token = idp.sign(
            "JWT",
            &json!({
                "iss": issuer, "sub": "conformance-user", "aud": LOCAL_IDP_CLIENT,
                "email": "conformance-user@example.com", "iat": now, "exp": now + 3600,
            }),
        )?;
        let configuration = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "grant_types_supported": ["authorization_code", "refresh_token", GRANT_TOKEN_EXCHANGE],
            "identity_chaining_requested_token_types_supported": [TOKEN_TYPE_ID_JAG],
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(configuration) }),
            )
            .route("/jwks", axum::routing::get(|| async { axum::Json(json!({ "keys": [] })) }))
            .route("/token", axum::routing::post(local_idp_token))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((idp, IdToken::new(id_token)))
    }

    fn sign(&self, typ: &str, claims: &Value) -> Result<String, String> {
        let header = Header { typ: Some(typ.to_string()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&self.key)).map_err(|e| e.to_string())
    }

    /// RFC 8693 §2.1 with the ID-JAG profile's parameters (ID-JAG -04 §4.3.1); an error is the
    /// OAuth `error` and its description (RFC 8693 §2.2.2).
    fn exchange(&self, form: &HashMap<String, String>) -> Result<Value, (&'static str, String)> {
        let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        if param("grant_type") != Some(GRANT_TOKEN_EXCHANGE) {
            return Err(("unsupported_grant_type", format!("grant_type {:?}", param("grant_type"))));
        }
        // A public client identifies itself in the body (RFC 6749 §2.3.1, §3.2.1).
        if param("client_id") != Some(LOCAL_IDP_CLIENT) {
            return Err(("invalid_client", format!("client_id {:?}", param("client_id"))));
        }
        if param("requested_token_type") != Some(TOKEN_TYPE_ID_JAG) {
            return Err(("invalid_request", format!("requested_token_type {:?}", param("requested_token_type"))));
        }
        if param("subject_token_type") != Some(TOKEN_TYPE_ID_TOKEN) {
            return Err(("invalid_request", format!("subject_token_type {:?}", param("subject_token_type"))));
        }
        let audience = param("audience").ok_or(("invalid_request", "no audience".to_string()))?;
        // Optional in the stable MCP extension; the engine sends it.
        let resource = param("resource");
        let subject = param("subject_token").ok_or(("invalid_request", "no subject_token".to_string()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[LOCAL_IDP_CLIENT]);
        validation.set_issuer(&[&self.issuer]);
        let id_token = jsonwebtoken::decode::<Value>(subject, &DecodingKey::from_secret(&self.key), &validation)
            .map_err(|e| ("invalid_grant", format!("the subject token is not this IdP's valid ID token: {e}")))?;
        let now = now_unix();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": id_token.claims["sub"],
            "aud": audience,
            "client_id": LOCAL_CONNECTOR_CLIENT,
            "jti": format!("{:016x}{:016x}", RandomState::new().hash_one(now), RandomState::new().hash_one(audience)),
            "iat": now,
            "exp": now + 300,
        });
        if let Some(r) = resource {
            claims["resource"] = json!(r);
        }
        if let Some(s) = param("scope") {
            claims["scope"] = json!(s);
        }
        let id_jag = self.sign("oauth-id-jag+jwt", &claims).map_err(|e| ("server_error", e))?;
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((audience.to_string(), resource.map(str::to_string)));
        let mut body = json!({
            "access_token": id_jag,
            "issued_token_type": TOKEN_TYPE_ID_JAG,
            "token_type": "N_A",
            "expires_in": 300,
        });
        if let Some(s) = param("scope") {
            body["scope"] = json!(s);
        }
        Ok(body)
    }

    fn issued(&self) -> Vec<(String, Option<String>)> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One line per ID-JAG issued and per request refused.
    fn report(&self) {
        let issued = self.issued();
        eprintln!("local IdP: {} ID-JAG(s) issued", issued.len());
        for (audience, resource) in &issued {
            eprintln!("  for audience `{audience}`, resource `{}`", resource.as_deref().unwrap_or("(none)"));
        }
        for why in self.refused.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            eprintln!("local IdP: refused a token request: {why}");
        }
    }
}

async fn local_idp_token(
    State(idp): State<Arc<LocalIdp>>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    match idp.exchange(&form) {
        Ok(body) => axum::Json(body).into_response(),
        Err((error, description)) => {
            idp.refused.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{error}: {description}"));
            let body = json!({ "error": error, "error_description": description });
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

/// The setup for a scenario that passes no IdP context: the adapter's own IdP.
async fn local_setup() -> Result<Setup, Failure> {
    let (idp, id_token) = LocalIdp::start().await.map_err(fail("starting the local IdP"))?;
    eprintln!("IdP: the adapter's own at {} (the scenario passes no IdP context)", idp.issuer);
    Ok(Setup {
        issuer: Url::parse(&idp.issuer).map_err(|e| fail("starting the local IdP")(e.to_string()))?,
        idp_client_id: LOCAL_IDP_CLIENT.into(),
        id_token,
        connector_client_id: LOCAL_CONNECTOR_CLIENT.into(),
        connector_auth: json!({ "method": "none" }),
        local_idp: Some(idp),
    })
}

/// The policy IT would deploy for this org: one IdP (a public client; neither the suite's IdP nor
/// the local one authenticates clients), one connector.
fn policy(setup: &Setup, mcp_url: &Url) -> Result<Policy, String> {
    let text = json!({
        "schema_version": 1,
        "organization": { "name": "MCP conformance suite" },
        "idp": { "issuer": setup.issuer.as_str(), "client_id": setup.idp_client_id, "client_auth": { "method": "none" } },
        "connectors": [{
            "id": CONNECTOR,
            "display_name": "Conformance server",
            "mcp_url": mcp_url.as_str(),
            "client_id": setup.connector_client_id,
            "client_auth": setup.connector_auth,
        }],
    })
    .to_string();
    Policy::parse(&text, ConfigSource::Explicit("conformance-policy.json".into())).map_err(|e| e.to_string())
}

async fn run() -> Result<(), Failure> {
    let (expect, mcp_url) = parse_args(std::env::args().skip(1))?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_else(|_| "(not named)".into());
    let expecting = match &expect {
        Expect::Connect => "the connector active".to_string(),
        Expect::Refuse(code) => format!("a refusal with code {code}"),
    };
    eprintln!("scenario {scenario}, MCP server {mcp_url}, expecting {expecting}");
    let setup = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(raw) => suite_setup(&raw).await?,
        Err(_) => local_setup().await?,
    };
    let policy = policy(&setup, &mcp_url).map_err(fail("the policy"))?;
    // The session `ema login` would have stored: the ID token, valid until its `exp`.
    let claims = ema_core::jwt::decode_claims_unverified(setup.id_token.secret())
        .map_err(|e| fail("reading the ID token")(e.to_string()))?;
    let expires = claims.get("exp").and_then(Value::as_i64);
    let (engine, _) = ema_e2e::engine_with_id_token(policy, setup.id_token.clone(), expires, TIMEOUT)
        .await
        .map_err(fail("the engine as ema login leaves it"))?;

    // Discovery, token exchange, jwt-bearer grant and the MCP check: the engine's own path.
    engine.connect_all(true).await;
    let status = engine.snapshot();
    let c = status
        .connectors
        .iter()
        .find(|c| c.id == CONNECTOR)
        .ok_or_else(|| fail("the engine's connect")("no connector in the status".into()))?;
    if let Some(idp) = &setup.local_idp {
        idp.report();
    }
    let why = c.error.as_ref().or(c.renewal_error.as_ref());
    match expect {
        Expect::Refuse(code) => {
            if c.state == ConnectorState::Active {
                return Err(fail("the engine's refusal")(format!(
                    "the engine connected it (token {}); expected a refusal with code {code}",
                    c.token_fingerprint.as_deref().unwrap_or("?")
                )));
            }
            let e = why.ok_or_else(|| fail("the engine's refusal")(format!("state {:?} without an error", c.state)))?;
            if e.code_str() != code {
                return Err(fail("the engine's refusal")(format!(
                    "state {:?}, code {} ({}); expected code {code}",
                    c.state,
                    e.code_str(),
                    e.message
                )));
            }
            if let Some(idp) = &setup.local_idp
                && !idp.issued().is_empty()
            {
                return Err(fail("the engine's refusal")(
                    "it asked the IdP for an ID-JAG for a server it then refused".into(),
                ));
            }
            eprintln!(
                "EMA's engine refused it (state {}, code {code}): {}",
                format!("{:?}", c.state).to_lowercase(),
                e.message
            );
            Ok(())
        }
        Expect::Connect => {
            if c.state != ConnectorState::Active {
                let reason = why.map_or_else(
                    || format!("{:?}", c.state),
                    |e| format!("{:?}: {} [{}]", c.state, e.message, e.code_str()),
                );
                return Err(fail("the engine's connect")(reason));
            }
            let authorization_server = c.authorization_server.as_deref().unwrap_or("?");
            eprintln!(
                "EMA's engine connected it (state active: its MCP check passed): authorization server {}, token {}, expires {:?}, scopes {:?}",
                authorization_server,
                c.token_fingerprint.as_deref().unwrap_or("?"),
                c.expires_at.map(|t| t.unix_timestamp()),
                c.scopes
            );
            if let Some(idp) = &setup.local_idp {
                // The suite's generic AS does not read the ID-JAG: its audience is checked here.
                let issued = idp.issued();
                if issued.is_empty() {
                    return Err(fail("the local IdP")("the engine connected without a token exchange".into()));
                }
                if let Some((audience, _)) = issued.iter().find(|(a, _)| !same_uri(a, authorization_server)) {
                    return Err(fail("the local IdP")(format!(
                        "an ID-JAG was asked for audience `{audience}`, not for the AS the engine connected through"
                    )));
                }
            }
            // MCP with the token the engine hands to clients.
            let token = engine
                .fresh_access_token(CONNECTOR, Duration::from_secs(60))
                .await
                .map_err(|e| fail("the engine's token for clients")(e.to_string()))?;
            // The product's HTTP client settings (no redirects, its proxy rules) for the MCP session too.
            let http = HttpTransport::new(TIMEOUT).map_err(|e| fail("building the HTTP client")(e.to_string()))?;
            mcp_calls(http.client_for(&mcp_url).clone(), &mcp_url, &token).await
        }
    }
}

async fn mcp_calls(client: reqwest::Client, mcp_url: &Url, token: &AccessToken) -> Result<(), Failure> {
    let config = StreamableHttpClientTransportConfig::with_uri(mcp_url.as_str()).auth_header(token.secret());
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let service = tokio::time::timeout(TIMEOUT, ().serve(transport))
        .await
        .map_err(|_| fail("MCP initialize")(format!("no answer within {} s", TIMEOUT.as_secs())))?
        .map_err(|e| fail("MCP initialize")(e.to_string()))?;
    let result = async {
        if let Some(info) = service.peer_info() {
            let (name, version) =
                info.server_info.as_ref().map(|s| (s.name.as_str(), s.version.as_str())).unwrap_or_default();
            eprintln!("MCP initialized: server `{name}` {version}, protocol {}", info.protocol_version);
        }
        let tools = tokio::time::timeout(TIMEOUT, service.list_tools(None))
            .await
            .map_err(|_| fail("MCP tools/list")("timed out".into()))?
            .map_err(|e| fail("MCP tools/list")(e.to_string()))?;
        let names: Vec<&str> = tools.tools.iter().map(|t| t.name.as_ref()).collect();
        eprintln!("MCP tools/list: {names:?}");
        let Some(first) = tools.tools.first() else {
            return Err(fail("MCP tools/list")("the server lists no tools to call".into()));
        };
        let call = CallToolRequestParams::new(first.name.clone()).with_arguments(serde_json::Map::new());
        let result = tokio::time::timeout(TIMEOUT, service.call_tool(call))
            .await
            .map_err(|_| fail("MCP tools/call")("timed out".into()))?
            .map_err(|e| fail("MCP tools/call")(e.to_string()))?;
        if result.is_error == Some(true) {
            return Err(fail("MCP tools/call")(format!("`{}` returned an error result", first.name)));
        }
        eprintln!("MCP tools/call `{}`: {} content block(s)", first.name, result.content.len());
        Ok(())
    }
    .await;
    let _ = service.cancel().await;
    result
}
