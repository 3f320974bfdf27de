//! Finding a connector's authorization server from its MCP URL.
//!
//! 1. Ask the MCP server without a token: a 401 with `WWW-Authenticate: Bearer
//!    resource_metadata="..."` names the protected-resource metadata (RFC 9728 §5.1); otherwise
//!    use the well-known location (RFC 9728 §3.1, path inserted after the host), and when that
//!    answers 404, the root `/.well-known/oauth-protected-resource` (MCP 2025-11-25,
//!    "Protected Resource Metadata Discovery Requirements").
//! 2. The metadata's `resource` must be the MCP URL we asked about (RFC 9728 §3.3); at the root
//!    location it may also be the server's origin, the identifier that location stands for. Its
//!    `authorization_servers` name the AS issuer. An AS pinned by policy must be among them.
//! 3. The AS metadata at `/.well-known/oauth-authorization-server` with the issuer's path
//!    inserted (RFC 8414 §3.1), falling back to OpenID Connect discovery; its `issuer` must
//!    equal the issuer we built the URL from (RFC 8414 §3.3).
//!
//! Results are cached per connector for an hour and dropped when a grant fails, so that a
//! moved AS is found again without a restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{StatusCode, header};
use serde_json::Value;
use url::Url;

use crate::http::{HttpRequest, HttpResponse, Transport, TransportError, display_url};
use crate::redact::scrub;
use crate::status::{DiscoveryCode, ErrorCode};
use crate::url_policy::{check_endpoint_url, same_uri};

/// What the engine needs to know about one connector's authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorEndpoints {
    /// The canonical resource URI from the protected-resource metadata (RFC 9728 §2 `resource`).
    pub resource: String,
    /// The AS issuer (RFC 8414 §2 `issuer`): the ID-JAG's audience.
    pub issuer: String,
    pub token_endpoint: Url,
    /// RFC 8414 §2 `token_endpoint_auth_methods_supported` (default `client_secret_basic`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// RFC 8414 §2 `grant_types_supported`, if the AS lists them.
    pub grant_types: Option<Vec<String>>,
    /// `authorization_grant_profiles_supported` (ID-JAG -04 §7), if the AS lists them: a hint
    /// for diagnostics ([`ID_JAG_GRANT_PROFILE`]), never a gate.
    pub grant_profiles: Option<Vec<String>>,
    /// RFC 8414 §2 `token_endpoint_auth_signing_alg_values_supported`, if listed: the algorithms
    /// it takes for `private_key_jwt` assertions (a hint, [`crate::oauth::client_auth::check_signing_alg`]).
    pub signing_algs: Option<Vec<String>>,
    /// RFC 8414 §2 `revocation_endpoint` (RFC 7009), if the AS has one on the origin of its
    /// token endpoint or issuer (a token and the client's credentials go there, so a metadata
    /// document naming another host is not followed) and it is a URL EMA may send to.
    pub revocation_endpoint: Option<Url>,
}

/// The ID-JAG grant profile an AS lists in `authorization_grant_profiles_supported`.
pub const ID_JAG_GRANT_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// Why discovery failed. Each variant names the document at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{url} answered HTTP {status} for {what}")]
    Status { url: String, status: u16, what: &'static str },
    #[error("{what} at {url} is invalid: {problem}")]
    Invalid { url: String, what: &'static str, problem: String },
    #[error("protected-resource metadata at {url} is for `{found}`, not for `{expected}` (RFC 9728 §3.3)")]
    ResourceMismatch { url: String, expected: String, found: String },
    #[error("authorization-server metadata at {url} names issuer `{found}`, not `{expected}` (RFC 8414 §3.3)")]
    IssuerMismatch { url: String, expected: String, found: String },
    #[error("the policy pins the authorization server to `{pinned}`, but the MCP server names {found:?}")]
    PinMismatch { pinned: String, found: Vec<String> },
    #[error("no authorization-server metadata found for `{issuer}` (tried {tried:?})")]
    NoAsMetadata { issuer: String, tried: Vec<String> },
}

impl DiscoveryError {
    pub fn code(&self) -> ErrorCode {
        let d = match self {
            DiscoveryError::Transport(t) => DiscoveryCode::Transport(t.code()),
            DiscoveryError::Status { .. } => DiscoveryCode::HttpError,
            DiscoveryError::Invalid { .. } => DiscoveryCode::InvalidMetadata,
            DiscoveryError::ResourceMismatch { .. } => DiscoveryCode::ResourceMismatch,
            DiscoveryError::IssuerMismatch { .. } => DiscoveryCode::IssuerMismatch,
            DiscoveryError::PinMismatch { .. } => return ErrorCode::AsPinMismatch,
            DiscoveryError::NoAsMetadata { .. } => DiscoveryCode::NoAsMetadata,
        };
        ErrorCode::Discovery(d)
    }

    /// What the user or admin should do.
    pub fn fix(&self) -> &'static str {
        match self {
            DiscoveryError::Transport(_) => "check the network connection; if it persists, the connector may be down",
            DiscoveryError::PinMismatch { .. } => {
                "ask IT: the connector's authorization server changed or the policy pin is stale"
            }
            _ => "the connector's server is misconfigured; ask IT to report it to the vendor",
        }
    }
}

/// The RFC 9728 §3.1 well-known URL for a resource: `/.well-known/oauth-protected-resource`
/// inserted between host and path.
pub fn protected_resource_metadata_url(resource: &Url) -> Url {
    well_known(resource, "oauth-protected-resource")
}

fn well_known(base: &Url, name: &str) -> Url {
    let mut u = base.clone();
    let path = base.path().trim_end_matches('/');
    u.set_path(&format!("/.well-known/{name}{path}"));
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// The AS metadata URLs to try, in order (RFC 8414 §3.1, then OIDC Discovery §4 in both the
/// path-inserted and path-appended forms, as MCP authorization 2025-11-25 lists them).
pub fn as_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = vec![well_known(issuer, "oauth-authorization-server"), well_known(issuer, "openid-configuration")];
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        let mut appended = issuer.clone();
        appended.set_path(&format!("{path}/.well-known/openid-configuration"));
        urls.push(appended);
    }
    urls
}

/// Extracts `resource_metadata` from a `WWW-Authenticate: Bearer ...` header (RFC 9728 §5.1,
/// RFC 6750 §3 auth-param syntax).
pub fn resource_metadata_hint(www_authenticate: &str) -> Option<String> {
    let lower = www_authenticate.to_ascii_lowercase();
    let mut search_from = 0;
    while let Some(pos) = lower[search_from..].find("resource_metadata") {
        let start = search_from + pos;
        let before_ok = start == 0 || matches!(lower.as_bytes()[start - 1], b' ' | b',' | b'\t');
        let rest = www_authenticate[start + "resource_metadata".len()..].trim_start();
        if before_ok && let Some(rest) = rest.strip_prefix('=') {
            let rest = rest.trim_start();
            return if let Some(quoted) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.push(chars.next()?),
                        '"' => return Some(out),
                        _ => out.push(c),
                    }
                }
                None
            } else {
                Some(rest.split([',', ' ']).next().unwrap_or("").to_string()).filter(|s| !s.is_empty())
            };
        }
        search_from = start + 1;
    }
    None
}

/// A GET for a metadata document. `what` names the document when the URL, which a server may
/// have chosen, is one an HTTP request cannot carry (the `url` crate accepts characters in a
/// host, such as a backtick, that an HTTP URI does not).
fn get(url: &Url, what: &'static str) -> Result<HttpRequest, DiscoveryError> {
    http::Request::builder()
        .method(http::Method::GET)
        .uri(url.as_str())
        .header(header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|_| DiscoveryError::Invalid {
            url: display_url(url),
            what,
            problem: "its URL cannot be sent in an HTTP request".into(),
        })
}

fn json_object(
    url: &Url,
    what: &'static str,
    resp: &HttpResponse,
) -> Result<serde_json::Map<String, Value>, DiscoveryError> {
    let shown = display_url(url);
    let invalid = |problem: &str| DiscoveryError::Invalid { url: shown.clone(), what, problem: problem.to_string() };
    match serde_json::from_slice::<Value>(resp.body()) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid("it is not a JSON object")),
        Err(e) => Err(invalid(&format!("it is not JSON ({})", scrub(&e.to_string(), 80)))),
    }
}

fn string_field(obj: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    obj.get(name).and_then(Value::as_str).map(str::to_string)
}

fn string_list(obj: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<String>> {
    obj.get(name).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Discovery with a per-connector cache.
#[derive(Debug, Default)]
pub struct Discovery {
    cache: Mutex<HashMap<String, (ConnectorEndpoints, Instant)>>,
    /// What each connector's last successful discovery found, kept when the cache entry is
    /// dropped after a failed grant: diagnostics need it most then.
    last: Mutex<HashMap<String, ConnectorEndpoints>>,
}

/// How long discovered metadata is trusted before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

impl Discovery {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector's endpoints as its last successful discovery found them (for diagnostics).
    pub fn last_discovered(&self, connector_id: &str) -> Option<ConnectorEndpoints> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).get(connector_id).cloned()
    }

    /// Forgets a connector's endpoints (after a failed grant).
    pub fn invalidate(&self, connector_id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(connector_id);
    }

    /// The endpoints of `connector_id`, from cache or discovered.
    pub async fn endpoints(
        &self,
        transport: &dyn Transport,
        connector_id: &str,
        mcp_url: &Url,
        pin: Option<&Url>,
    ) -> Result<ConnectorEndpoints, DiscoveryError> {
        if let Some((e, at)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(connector_id)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(e.clone());
        }
        let e = discover(transport, mcp_url, pin).await?;
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(connector_id.to_string(), e.clone());
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connector_id.to_string(), (e.clone(), Instant::now()));
        Ok(e)
    }
}

/// Runs the whole discovery for one MCP server.
pub async fn discover(
    transport: &dyn Transport,
    mcp_url: &Url,
    pin: Option<&Url>,
) -> Result<ConnectorEndpoints, DiscoveryError> {
    let (resource, servers) = match find_resource_metadata_url(transport, mcp_url).await? {
        MetadataLocation::Hinted(url) => fetch_resource_metadata(transport, &url, mcp_url, false).await?,
        MetadataLocation::WellKnown(url) => match fetch_resource_metadata(transport, &url, mcp_url, false).await {
            Err(DiscoveryError::Status { status: 404, .. }) if url.path() != ROOT_RESOURCE_METADATA_PATH => {
                let mut root = url.clone();
                root.set_path(ROOT_RESOURCE_METADATA_PATH);
                fetch_resource_metadata(transport, &root, mcp_url, true).await?
            }
            other => other?,
        },
    };
    let issuer = choose_issuer(&servers, pin)?;
    fetch_as_metadata(transport, &issuer, resource).await
}

/// The protected-resource metadata of a host as a whole (MCP 2025-11-25 fallback).
const ROOT_RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Where the protected-resource metadata is looked for first.
enum MetadataLocation {
    /// Named by the MCP server's 401 (RFC 9728 §5.1): no other place is tried.
    Hinted(Url),
    /// The RFC 9728 §3.1 location for the MCP URL; the root one follows a 404.
    WellKnown(Url),
}

/// Step 1: an unauthenticated MCP request; its 401 may carry the metadata URL.
async fn find_resource_metadata_url(
    transport: &dyn Transport,
    mcp_url: &Url,
) -> Result<MetadataLocation, DiscoveryError> {
    // MCP Streamable HTTP: a client's first message is an `initialize` POST.
    let probe = http::Request::builder()
        .method(http::Method::POST)
        .uri(mcp_url.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.to_vec())
        .expect("a parsed URL is a valid URI");
    let resp = transport.send(probe).await?;
    if resp.status() == StatusCode::UNAUTHORIZED
        && let Some(hint) = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(resource_metadata_hint)
    {
        let url = Url::parse(&hint).map_err(|_| DiscoveryError::Invalid {
            url: display_url(mcp_url),
            what: "the WWW-Authenticate resource_metadata hint",
            problem: "it is not an absolute URL".into(),
        })?;
        check_endpoint_url(&url).map_err(TransportError::UrlRefused)?;
        return Ok(MetadataLocation::Hinted(url));
    }
    Ok(MetadataLocation::WellKnown(protected_resource_metadata_url(mcp_url)))
}

/// Step 2: RFC 9728 metadata, checked against the URL we asked about (or, from the root
/// location, `at_root`, against its origin too).
async fn fetch_resource_metadata(
    transport: &dyn Transport,
    prm_url: &Url,
    mcp_url: &Url,
    at_root: bool,
) -> Result<(String, Vec<String>), DiscoveryError> {
    const WHAT: &str = "protected-resource metadata";
    let resp = transport.send(get(prm_url, WHAT)?).await?;
    if !resp.status().is_success() {
        return Err(DiscoveryError::Status { url: display_url(prm_url), status: resp.status().as_u16(), what: WHAT });
    }
    let obj = json_object(prm_url, WHAT, &resp)?;
    let invalid =
        |problem: &str| DiscoveryError::Invalid { url: display_url(prm_url), what: WHAT, problem: problem.into() };
    let resource = string_field(&obj, "resource").ok_or_else(|| invalid("`resource` is missing"))?;
    let for_origin = at_root && same_uri(&resource, &mcp_url.origin().ascii_serialization());
    if !same_uri(&resource, mcp_url.as_str()) && !for_origin {
        return Err(DiscoveryError::ResourceMismatch {
            url: display_url(prm_url),
            expected: mcp_url.to_string(),
            found: scrub(&resource, 200),
        });
    }
    let servers = string_list(&obj, "authorization_servers").unwrap_or_default();
    if servers.is_empty() {
        return Err(invalid("`authorization_servers` is missing or empty"));
    }
    Ok((resource, servers))
}

/// The AS to use: the pin when the resource lists it, the first listed otherwise.
fn choose_issuer(servers: &[String], pin: Option<&Url>) -> Result<Url, DiscoveryError> {
    let chosen = match pin {
        Some(p) => servers.iter().find(|s| same_uri(s, p.as_str())).ok_or_else(|| DiscoveryError::PinMismatch {
            pinned: p.to_string(),
            found: servers.iter().map(|s| scrub(s, 200)).collect(),
        })?,
        None => &servers[0],
    };
    let url = Url::parse(chosen).map_err(|_| DiscoveryError::Invalid {
        url: String::new(),
        what: "authorization server issuer",
        problem: format!("`{}` is not a URL", scrub(chosen, 200)),
    })?;
    check_endpoint_url(&url).map_err(TransportError::UrlRefused)?;
    Ok(url)
}

/// Step 3: RFC 8414 metadata, with the OpenID fallbacks.
async fn fetch_as_metadata(
    transport: &dyn Transport,
    issuer: &Url,
    resource: String,
) -> Result<ConnectorEndpoints, DiscoveryError> {
    const WHAT: &str = "authorization-server metadata";
    let issuer_str = issuer.as_str();
    let mut tried = Vec::new();
    for url in as_metadata_urls(issuer) {
        let resp = transport.send(get(&url, WHAT)?).await?;
        if resp.status() == StatusCode::NOT_FOUND || resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            tried.push(display_url(&url));
            continue;
        }
        if !resp.status().is_success() {
            return Err(DiscoveryError::Status { url: display_url(&url), status: resp.status().as_u16(), what: WHAT });
        }
        let obj = json_object(&url, WHAT, &resp)?;
        let invalid =
            |problem: &str| DiscoveryError::Invalid { url: display_url(&url), what: WHAT, problem: problem.into() };
        let found = string_field(&obj, "issuer").ok_or_else(|| invalid("`issuer` is missing"))?;
        if !same_uri(&found, issuer_str) {
            return Err(DiscoveryError::IssuerMismatch {
                url: display_url(&url),
                expected: issuer_str.to_string(),
                found: scrub(&found, 200),
            });
        }
        let token_endpoint =
            string_field(&obj, "token_endpoint").ok_or_else(|| invalid("`token_endpoint` is missing"))?;
        let token_endpoint = Url::parse(&token_endpoint).map_err(|_| invalid("`token_endpoint` is not a URL"))?;
        check_endpoint_url(&token_endpoint).map_err(TransportError::UrlRefused)?;
        let revocation_endpoint = string_field(&obj, "revocation_endpoint")
            .and_then(|u| Url::parse(&u).ok())
            .filter(|u| check_endpoint_url(u).is_ok())
            .filter(|u| u.origin() == token_endpoint.origin() || u.origin() == issuer.origin());
        return Ok(ConnectorEndpoints {
            resource,
            issuer: found,
            token_endpoint,
            token_endpoint_auth_methods: string_list(&obj, "token_endpoint_auth_methods_supported")
                .unwrap_or_else(|| vec!["client_secret_basic".into()]),
            grant_types: string_list(&obj, "grant_types_supported"),
            grant_profiles: string_list(&obj, "authorization_grant_profiles_supported"),
            signing_algs: string_list(&obj, "token_endpoint_auth_signing_alg_values_supported"),
            revocation_endpoint,
        });
    }
    Err(DiscoveryError::NoAsMetadata { issuer: issuer_str.to_string(), tried })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_the_path() {
        let r = Url::parse("https://mcp.example.com/v1/mcp").unwrap();
        assert_eq!(
            protected_resource_metadata_url(&r).as_str(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp"
        );
        let root = Url::parse("https://mcp.example.com/").unwrap();
        assert_eq!(
            protected_resource_metadata_url(&root).as_str(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        let issuer = Url::parse("https://as.example.com/tenant1").unwrap();
        let urls: Vec<String> = as_metadata_urls(&issuer).iter().map(|u| u.to_string()).collect();
        assert_eq!(
            urls,
            vec![
                "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://as.example.com/.well-known/openid-configuration/tenant1",
                "https://as.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn www_authenticate_hint_parsing() {
        assert_eq!(
            resource_metadata_hint(r#"Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#).as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_hint(r#"Bearer resource_metadata=https://x.example/prm, scope="a""#).as_deref(),
            Some("https://x.example/prm")
        );
        assert_eq!(resource_metadata_hint(r#"Bearer realm="x""#), None);
        assert_eq!(resource_metadata_hint(r#"Bearer xresource_metadata="https://evil""#), None);
        assert_eq!(resource_metadata_hint(r#"Bearer resource_metadata="unterminated"#), None);
    }

    #[test]
    fn pin_must_be_listed() {
        let servers = vec!["https://as1.example.com".to_string(), "https://as2.example.com/".to_string()];
        assert_eq!(choose_issuer(&servers, None).unwrap().as_str(), "https://as1.example.com/");
        let pin = Url::parse("https://as2.example.com").unwrap();
        assert_eq!(choose_issuer(&servers, Some(&pin)).unwrap().as_str(), "https://as2.example.com/");
        let pin = Url::parse("https://evil.example.com").unwrap();
        assert_eq!(choose_issuer(&servers, Some(&pin)).unwrap_err().code(), "as-pin-mismatch");
    }

    /// Found by fuzzing (fuzz target `discovery`): a URL the `url` crate parses but an HTTP
    /// request cannot carry (a backtick in the host) named by a hostile server panicked
    /// discovery (`a parsed URL is a valid URI`); it must be an invalid-metadata error.
    #[tokio::test]
    async fn unsendable_issuer_url_from_a_hostile_server_is_an_error_not_a_panic() {
        let t = crate::testing::FakeTransport::new();
        t.json("https://mcp.example.com/mcp", 401, "");
        t.json(
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            200,
            r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as`x.example.com/"]}"#,
        );
        let mcp = Url::parse("https://mcp.example.com/mcp").unwrap();
        let err = discover(&t, &mcp, None).await.unwrap_err();
        assert_eq!(err.code(), "discovery-invalid-metadata", "{err}");
    }

    /// A host whose protected-resource metadata is only at the root location (the conformance
    /// suite's `auth/metadata-var2`), with `resource` as `resource_at_root` says.
    fn root_metadata_only(resource_at_root: &str, hint: bool) -> crate::testing::FakeTransport {
        let t = crate::testing::FakeTransport::new();
        if hint {
            t.with_headers(
                "https://mcp.example.com/v1/mcp",
                401,
                &[(
                    "www-authenticate",
                    r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp""#,
                )],
                "",
            );
        } else {
            t.json("https://mcp.example.com/v1/mcp", 401, "");
        }
        t.json("https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp", 404, "{}");
        t.json(
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            200,
            &format!(r#"{{"resource":"{resource_at_root}","authorization_servers":["https://as.example.com"]}}"#),
        );
        t.json(
            "https://as.example.com/.well-known/oauth-authorization-server",
            200,
            r#"{"issuer":"https://as.example.com","token_endpoint":"https://as.example.com/token"}"#,
        );
        t
    }

    #[tokio::test]
    async fn without_path_metadata_or_a_hint_the_root_location_is_used() {
        let mcp = Url::parse("https://mcp.example.com/v1/mcp").unwrap();
        for resource in ["https://mcp.example.com", "https://mcp.example.com/v1/mcp"] {
            let t = root_metadata_only(resource, false);
            let found = discover(&t, &mcp, None).await.unwrap();
            assert_eq!(found.resource, resource, "the resource is sent as the metadata publishes it");
            assert_eq!(found.issuer, "https://as.example.com");
            assert_eq!(t.requests_to("https://mcp.example.com/.well-known/oauth-protected-resource").len(), 1);
        }
    }

    #[tokio::test]
    async fn the_root_location_is_not_tried_after_a_hint_or_for_another_resource() {
        let mcp = Url::parse("https://mcp.example.com/v1/mcp").unwrap();
        let t = root_metadata_only("https://mcp.example.com", true);
        let err = discover(&t, &mcp, None).await.unwrap_err();
        assert!(matches!(err, DiscoveryError::Status { status: 404, .. }), "the server named its metadata: {err}");
        assert!(t.requests_to("https://mcp.example.com/.well-known/oauth-protected-resource").is_empty());

        let t = root_metadata_only("https://other.example.com/mcp", false);
        let err = discover(&t, &mcp, None).await.unwrap_err();
        assert!(matches!(err, DiscoveryError::ResourceMismatch { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_origin_stands_for_the_server_only_at_the_root_location() {
        let t = crate::testing::FakeTransport::new();
        t.json("https://mcp.example.com/v1/mcp", 401, "");
        t.json(
            "https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp",
            200,
            r#"{"resource":"https://mcp.example.com","authorization_servers":["https://as.example.com"]}"#,
        );
        let mcp = Url::parse("https://mcp.example.com/v1/mcp").unwrap();
        let err = discover(&t, &mcp, None).await.unwrap_err();
        assert!(matches!(err, DiscoveryError::ResourceMismatch { .. }), "{err}");
    }
}
