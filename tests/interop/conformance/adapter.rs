//! Client side of the MCP conformance suite's `auth/cross-app-access-complete-flow` scenario
//! (`@modelcontextprotocol/conformance`), driven by the EMA engine's own connect path.
//!
//! The suite runs `conformance-adapter <mcp-url>` with `MCP_CONFORMANCE_CONTEXT` in the
//! environment (JSON: `client_id`, `client_secret`, `idp_client_id`, `idp_id_token`,
//! `idp_issuer`, `idp_token_endpoint`). The ID token is pre-minted, so there is no browser leg.
//! The adapter sets the engine up as the product would be after `ema login`, then lets it connect:
//!
//! - a policy, as IT would write it: the suite's IdP (public client `idp_client_id`; the suite's
//!   IdP does not authenticate clients) and one connector at the MCP URL with `client_id` and
//!   `client_secret` sent as `client_secret_basic`, which the suite's AS requires;
//! - the session `ema login` would have stored, holding the suite's ID token, in an in-memory
//!   store (the one thing not the product's: the suite's processes have no desktop keyring);
//! - the suite's IdP has a token endpoint but no OpenID configuration, so the adapter serves one
//!   on 127.0.0.1 naming the suite's token endpoint, and the policy's issuer is that address.
//!
//! Then `Engine::connect_all`: discovery from the MCP URL (RFC 9728, RFC 8414), the token
//! exchange of the ID token for an ID-JAG at the IdP (RFC 8693), the jwt-bearer grant at the AS
//! (RFC 7523), the product's MCP check (`initialize`, `notifications/initialized`, the session
//! ended), and the connector's state as the tray would show it. Last, the token the engine hands
//! to clients (`Engine::fresh_access_token`, what `ema headers` prints) is used for MCP over
//! Streamable HTTP through rmcp: `initialize`, `tools/list`, `tools/call` of the first tool.
//!
//! Exit status 0 on success; otherwise 1 with one line naming the failed step. Tokens and the
//! client secret are never printed, only their fingerprints.

use std::process::ExitCode;
use std::time::Duration;

use ema_core::config::{ConfigSource, Policy};
use ema_core::http::HttpTransport;
use ema_core::secret::{AccessToken, IdToken};
use ema_core::status::ConnectorState;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use url::Url;

/// The connector's id in the policy.
const CONNECTOR: &str = "conformance";

/// Every HTTP request (and each MCP call) must finish within this; the suite's own limit is 30 s.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The scenario's inputs, from `MCP_CONFORMANCE_CONTEXT`.
#[derive(Debug)]
struct Context {
    client_id: String,
    client_secret: String,
    idp_client_id: String,
    idp_id_token: IdToken,
    idp_token_endpoint: Url,
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

fn read_context() -> Result<(Context, Url), Failure> {
    let step = "reading the suite's inputs";
    let mcp_url = std::env::args().skip(1).last().ok_or_else(|| Failure {
        step,
        reason: "usage: conformance-adapter <mcp-url> (the suite appends it as the last argument)".into(),
    })?;
    let mcp_url = Url::parse(&mcp_url).map_err(|e| fail(step)(format!("`{mcp_url}` is not a URL: {e}")))?;
    let raw = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .map_err(|_| fail(step)("MCP_CONFORMANCE_CONTEXT is not set".into()))?;
    let json: serde_json::Value = serde_json::from_str(&raw)
        .map_err(|e| fail(step)(format!("MCP_CONFORMANCE_CONTEXT is not JSON: {}", json_error_class(&e))))?;
    let field = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| fail(step)(format!("MCP_CONFORMANCE_CONTEXT has no string `{name}`")))
    };
    let endpoint = field("idp_token_endpoint")?;
    let ctx = Context {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
        idp_client_id: field("idp_client_id")?,
        idp_id_token: IdToken::new(field("idp_id_token")?),
        idp_token_endpoint: Url::parse(&endpoint)
            .map_err(|e| fail(step)(format!("idp_token_endpoint `{endpoint}` is not a URL: {e}")))?,
    };
    if let Some(issuer) = json.get("idp_issuer").and_then(serde_json::Value::as_str) {
        eprintln!("IdP issuer: {issuer}");
    }
    Ok((ctx, mcp_url))
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

/// The policy IT would deploy for this org: one IdP, one connector.
fn policy(ctx: &Context, issuer: &Url, mcp_url: &Url) -> Result<Policy, String> {
    let text = json!({
        "schema_version": 1,
        "organization": { "name": "MCP conformance suite" },
        "idp": { "issuer": issuer.as_str(), "client_id": ctx.idp_client_id, "client_auth": { "method": "none" } },
        "connectors": [{
            "id": CONNECTOR,
            "display_name": "Conformance server",
            "mcp_url": mcp_url.as_str(),
            "client_id": ctx.client_id,
            "client_auth": { "method": "client_secret_basic", "client_secret": ctx.client_secret },
        }],
    })
    .to_string();
    Policy::parse(&text, ConfigSource::Explicit("conformance-policy.json".into())).map_err(|e| e.to_string())
}

async fn run() -> Result<(), Failure> {
    let (ctx, mcp_url) = read_context()?;
    eprintln!("MCP server: {mcp_url}");
    let issuer =
        serve_idp_configuration(&ctx.idp_token_endpoint).await.map_err(fail("serving the IdP's configuration"))?;
    let policy = policy(&ctx, &issuer, &mcp_url).map_err(fail("the policy"))?;
    // The session `ema login` would have stored: the suite's ID token, valid until its `exp`.
    let claims = ema_core::jwt::decode_claims_unverified(ctx.idp_id_token.secret())
        .map_err(|e| fail("reading the suite's ID token")(e.to_string()))?;
    let expires = claims.get("exp").and_then(serde_json::Value::as_i64);
    let (engine, _) = ema_e2e::engine_with_id_token(policy, ctx.idp_id_token.clone(), expires, TIMEOUT)
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
    if c.state != ConnectorState::Active {
        let why = c.error.as_ref().or(c.renewal_error.as_ref());
        let reason = why
            .map_or_else(|| format!("{:?}", c.state), |e| format!("{:?}: {} [{}]", c.state, e.message, e.code_str()));
        return Err(fail("the engine's connect")(reason));
    }
    eprintln!(
        "EMA's engine connected it (state active: its MCP check passed): authorization server {}, token {}, expires {:?}, scopes {:?}",
        c.authorization_server.as_deref().unwrap_or("?"),
        c.token_fingerprint.as_deref().unwrap_or("?"),
        c.expires_at.map(|t| t.unix_timestamp()),
        c.scopes
    );

    // MCP with the token the engine hands to clients.
    let token = engine
        .fresh_access_token(CONNECTOR, Duration::from_secs(60))
        .await
        .map_err(|e| fail("the engine's token for clients")(e.to_string()))?;
    // The product's HTTP client settings (no redirects, its proxy rules) for the MCP session too.
    let http = HttpTransport::new(TIMEOUT).map_err(|e| fail("building the HTTP client")(e.to_string()))?;
    mcp_calls(http.client_for(&mcp_url).clone(), &mcp_url, &token).await
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
