//! Client side of the MCP conformance suite's `auth/cross-app-access-complete-flow` scenario
//! (`@modelcontextprotocol/conformance`), driven by the EMA core engine's own legs.
//!
//! The suite runs `conformance-adapter <mcp-url>` with `MCP_CONFORMANCE_CONTEXT` in the
//! environment (JSON: `client_id`, `client_secret`, `idp_client_id`, `idp_id_token`,
//! `idp_issuer`, `idp_token_endpoint`). The ID token is pre-minted, so there is no browser leg:
//!
//! 1. discovery from the MCP URL (RFC 9728 protected-resource metadata, then RFC 8414),
//! 2. RFC 8693 token exchange at the IdP: ID token -> ID-JAG (public client `idp_client_id`;
//!    the suite's IdP does not authenticate clients),
//! 3. RFC 7523 jwt-bearer grant at the AS with `client_id`/`client_secret`, sent the way the
//!    AS metadata says it accepts them (`client_secret_basic` unless it lists only `_post`),
//! 4. the product's own MCP check with the access token (`ema_core::mcp_check::HttpProbe`:
//!    `initialize`, `notifications/initialized`, the session ended), then MCP over Streamable HTTP
//!    through rmcp: `initialize`, `tools/list`, `tools/call` of the first tool.
//!
//! Exit status 0 on success; otherwise 1 with one line naming the failed step. Tokens and the
//! client secret are never printed, only their fingerprints.

use std::process::ExitCode;
use std::time::Duration;

use ema_core::config::ClientAuth;
use ema_core::grants::jwt_bearer::{self, JwtBearerGrant};
use ema_core::grants::token_exchange::{self, TokenExchange};
use ema_core::http::{HttpTransport, Transport};
use ema_core::mcp_check::{HttpProbe, McpProbe};
use ema_core::secret::{AccessToken, ClientSecret, IdToken};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use url::Url;

/// Every HTTP request (and each MCP call) must finish within this; the suite's own limit is 30 s.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The scenario's inputs, from `MCP_CONFORMANCE_CONTEXT`.
#[derive(Debug)]
struct Context {
    client_id: String,
    client_secret: ClientSecret,
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
        client_secret: ClientSecret::new(field("client_secret")?),
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

/// Client authentication at the AS: `client_secret_basic` (RFC 8414 §2's default when the
/// metadata is silent), or `client_secret_post` when that is all the AS lists.
fn as_client_auth(secret: &ClientSecret, supported: &[String]) -> ClientAuth {
    let supports = |m: &str| supported.iter().any(|s| s == m);
    if !supports("client_secret_basic") && supports("client_secret_post") {
        ClientAuth::ClientSecretPost(secret.clone())
    } else {
        ClientAuth::ClientSecretBasic(secret.clone())
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

async fn run() -> Result<(), Failure> {
    let (ctx, mcp_url) = read_context()?;
    eprintln!("MCP server: {mcp_url}");
    let transport = HttpTransport::new(TIMEOUT).map_err(|e| fail("building the HTTP client")(e.to_string()))?;

    // 1. Discovery.
    let endpoints = ema_core::discovery::discover(&transport, &mcp_url, None)
        .await
        .map_err(|e| fail("discovery (RFC 9728 -> RFC 8414)")(format!("{e} [{}]", e.code().wire(None))))?;
    eprintln!(
        "discovered: resource {}, AS issuer {}, token endpoint {}, auth methods {:?}",
        endpoints.resource, endpoints.issuer, endpoints.token_endpoint, endpoints.token_endpoint_auth_methods
    );

    // 2. Token exchange at the IdP. No scopes: neither the resource nor the AS lists any.
    let scopes: Vec<String> = Vec::new();
    let idp_auth = ClientAuth::None;
    let request = TokenExchange {
        token_endpoint: &ctx.idp_token_endpoint,
        client_id: &ctx.idp_client_id,
        client_auth: &idp_auth,
        audience: &endpoints.issuer,
        resource: &endpoints.resource,
        scopes: &scopes,
        subject_token: &ctx.idp_id_token,
    }
    .build(now().unix_timestamp())
    .map_err(|e| fail("token exchange at the IdP")(e.to_string()))?;
    let response =
        transport.send(request).await.map_err(|e| fail("token exchange at the IdP")(format!("{e} [{}]", e.code())))?;
    let issued = token_exchange::process_response(&ctx.idp_token_endpoint, &response, &scopes)
        .map_err(|e| fail("token exchange at the IdP")(format!("{e} [{}]", e.code().wire(e.oauth_error()))))?;
    eprintln!(
        "ID-JAG issued: {} (token_type {}, expires_in {:?})",
        issued.id_jag.fingerprint(),
        issued.token_type,
        issued.expires_in
    );

    // 3. jwt-bearer grant at the AS.
    let as_auth = as_client_auth(&ctx.client_secret, &endpoints.token_endpoint_auth_methods);
    eprintln!("client authentication at the AS: {}", as_auth.method_name());
    let request = JwtBearerGrant {
        token_endpoint: &endpoints.token_endpoint,
        client_id: &ctx.client_id,
        client_auth: &as_auth,
        assertion: issued.id_jag,
        scopes: &issued.scopes,
        resource: &endpoints.resource,
    }
    .build(now().unix_timestamp())
    .map_err(|e| fail("jwt-bearer grant at the AS")(e.to_string()))?;
    let response =
        transport.send(request).await.map_err(|e| fail("jwt-bearer grant at the AS")(format!("{e} [{}]", e.code())))?;
    let grant = jwt_bearer::process_response(&endpoints.token_endpoint, &response, &issued.scopes, now())
        .map_err(|e| fail("jwt-bearer grant at the AS")(format!("{e} [{}]", e.code().wire(e.oauth_error()))))?;
    eprintln!(
        "access token issued: {} (expires {:?}, scopes {:?})",
        grant.access_token.fingerprint(),
        grant.expires_at.map(|t| t.unix_timestamp()),
        grant.scopes
    );

    // 4. MCP with the token: the product's check, then a session of calls.
    let probe = HttpProbe::new(&transport, TIMEOUT);
    let info = probe.check(&mcp_url, &grant.access_token).await.map_err(|e| fail("EMA's MCP check")(e.to_string()))?;
    eprintln!("EMA's MCP check: server `{}` {}, protocol {}", info.name, info.version, info.protocol_version);
    mcp_calls(transport.client_for(&mcp_url).clone(), &mcp_url, &grant.access_token).await
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
