//! Connector discovery: RFC 9728 protected-resource metadata, then RFC 8414 authorization-server
//! metadata, from an MCP server that misbehaves.

use super::*;

const PRM_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const AS_PATH: &str = "/.well-known/oauth-authorization-server";

/// The MCP endpoint's answer to an unauthenticated probe: 401 without a metadata hint.
fn mcp_401() -> MethodRouter {
    post(|| async { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, r#"Bearer realm="mcp""#)]) })
}

/// Valid RFC 9728 metadata for `<base>/mcp`, naming `<base>` as its AS.
fn good_prm(base: &str) -> Value {
    json!({ "resource": format!("{base}/mcp"), "authorization_servers": [base] })
}

/// Valid RFC 8414 metadata for `issuer`, with its token endpoint on `base`.
fn good_as(issuer: &str, base: &str) -> Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}/token"),
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
    })
}

/// An MCP server whose protected-resource metadata is `prm` and whose AS metadata is valid.
async fn with_prm(prm: impl FnOnce(&str) -> MethodRouter) -> Server {
    start(|base| {
        Router::new().route("/mcp", mcp_401()).route(PRM_PATH, prm(base)).route(AS_PATH, json_get(good_as(base, base)))
    })
    .await
}

/// An MCP server with valid protected-resource metadata and AS metadata `as_meta` at `AS_PATH`.
async fn with_as(as_meta: impl FnOnce(&str) -> MethodRouter) -> Server {
    start(|base| {
        Router::new().route("/mcp", mcp_401()).route(PRM_PATH, json_get(good_prm(base))).route(AS_PATH, as_meta(base))
    })
    .await
}

async fn discover(server: &Server) -> Result<ConnectorEndpoints, DiscoveryError> {
    discovery::discover(&transport(), &server.url("/mcp"), None).await
}

async fn discover_err(server: &Server) -> DiscoveryError {
    let err = discover(server).await.unwrap_err();
    eprintln!("{}: {err}", err.code().wire(None));
    err
}

#[tokio::test]
async fn discovery_control_a_well_behaved_server_is_discovered() {
    let s = with_prm(|base| json_get(good_prm(base))).await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.resource, format!("{}/mcp", s.base));
    assert!(same(&e.issuer, &s.base), "{e:?}");
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.requests(), vec!["POST /mcp".to_string(), format!("GET {PRM_PATH}"), format!("GET {AS_PATH}")]);
}

fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[tokio::test]
async fn discovery_protected_resource_metadata_that_is_not_json_is_invalid() {
    let s = with_prm(|_| body_get(StatusCode::OK, "text/html", "<html><body>Welcome!</body></html>")).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(matches!(&err, DiscoveryError::Invalid { what: "protected-resource metadata", .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("protected-resource metadata") && msg.contains(PRM_PATH), "{msg}");
    assert!(msg.contains("not JSON"), "{msg}");
    assert!(!msg.contains("Welcome"), "the body must not be echoed: {msg}");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_that_is_a_json_array_is_invalid() {
    let s = with_prm(|base| json_get(json!([good_prm(base)]))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    assert_eq!(s.log.hits(AS_PATH), 0, "nothing may be fetched after invalid metadata");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_without_resource_is_invalid() {
    let s = with_prm(|base| json_get(json!({ "authorization_servers": [base] }))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-invalid-metadata");
    assert!(err.to_string().contains("`resource` is missing"), "{err}");
}

#[tokio::test]
async fn discovery_protected_resource_metadata_for_another_resource_is_refused() {
    let s =
        with_prm(|base| json_get(json!({ "resource": format!("{base}/other-mcp"), "authorization_servers": [base] })))
            .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-resource-mismatch");
    let DiscoveryError::ResourceMismatch { expected, found, .. } = &err else { panic!("{err:?}") };
    assert_eq!(expected, &format!("{}/mcp", s.base));
    assert_eq!(found, &format!("{}/other-mcp", s.base));
    let msg = err.to_string();
    assert!(msg.contains("/other-mcp") && msg.contains("RFC 9728"), "{msg}");
    assert_eq!(s.log.hits(AS_PATH), 0, "a mismatched resource must stop discovery");
}

#[tokio::test]
async fn discovery_empty_authorization_servers_is_invalid() {
    for servers in [json!([]), json!(null), json!([42])] {
        let s =
            with_prm(|base| json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": servers })))
                .await;
        let err = discover_err(&s).await;
        assert_eq!(err.code(), "discovery-invalid-metadata", "{servers}");
        assert!(err.to_string().contains("`authorization_servers` is missing or empty"), "{err}");
    }
}

#[tokio::test]
async fn discovery_oversized_metadata_with_content_length_is_refused() {
    let big = format!(r#"{{"resource":"x","pad":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let s = with_prm(|_| body_get(StatusCode::OK, "application/json", big)).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-response-too-large");
    let DiscoveryError::Transport(TransportError::TooLarge { url, limit }) = &err else { panic!("{err:?}") };
    assert_eq!(*limit, MAX_RESPONSE_BYTES);
    assert!(url.ends_with(PRM_PATH), "{url}");
    assert_eq!(s.log.hits(PRM_PATH), 1);
}

#[tokio::test]
async fn discovery_oversized_metadata_streamed_without_content_length_is_refused() {
    let s = with_prm(|_| get(|| async { chunked_json(2 * 1024 * 1024) })).await;
    // The fixture really is chunked: the cap must come from counting, not from the header.
    ema_core::http::install_tls_provider();
    let probe = reqwest::get(s.url(PRM_PATH)).await.unwrap();
    assert!(probe.headers().get("content-length").is_none(), "{:?}", probe.headers());
    assert_eq!(probe.headers()["transfer-encoding"], "chunked");
    assert_eq!(probe.bytes().await.unwrap().len(), 2 * 1024 * 1024 + 2);

    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-response-too-large");
    assert!(err.to_string().contains(PRM_PATH) && err.to_string().contains("larger than 1048576 bytes"), "{err}");
}

#[tokio::test]
async fn discovery_control_large_but_allowed_metadata_is_accepted() {
    // 900 KiB of padding in an otherwise valid document: the cap is 1 MiB, not less.
    let s = with_prm(|base| {
        let mut v = good_prm(base);
        v["padding"] = json!("a".repeat(900 * 1024));
        json_get(v)
    })
    .await;
    discover(&s).await.unwrap();
}

#[tokio::test]
async fn discovery_slow_server_times_out_promptly() {
    let s = start(|_| {
        Router::new().route(
            "/mcp",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                StatusCode::UNAUTHORIZED
            }),
        )
    })
    .await;
    let transport = HttpTransport::new(Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "discovery-timeout", "{err:?}");
    assert!(took < Duration::from_millis(1500), "returned after {took:?}");
    assert!(took >= Duration::from_millis(400), "returned after {took:?}: did the request happen?");
    let DiscoveryError::Transport(TransportError::Timeout { url, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(url, &format!("{}/mcp", s.base));
    assert_eq!(s.log.hits("/mcp"), 1);
}

#[tokio::test]
async fn discovery_server_dripping_its_body_times_out() {
    // Headers at once, then a byte every 100 ms forever: the timeout covers the whole body.
    let s = with_prm(|_| {
        get(|| async {
            let drip = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
            });
            ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(drip))
        })
    })
    .await;
    let transport = HttpTransport::new(Duration::from_millis(700)).unwrap();
    let started = Instant::now();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-timeout", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(err.to_string().contains(PRM_PATH), "{err}");
}

#[tokio::test]
async fn discovery_follows_the_www_authenticate_resource_metadata_hint() {
    const HIDDEN: &str = "/vendor/metadata/prm-v2.json";
    let s = start(|base| {
        let hint = format!(r#"Bearer error="invalid_token", resource_metadata="{base}{HIDDEN}""#);
        Router::new()
            .route(
                "/mcp",
                post(move || {
                    let hint = hint.clone();
                    async move { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, hint)]) }
                }),
            )
            .route(HIDDEN, json_get(good_prm(base)))
            .route(AS_PATH, json_get(good_as(base, base)))
    })
    .await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.hits(HIDDEN), 1);
    assert_eq!(s.log.hits(PRM_PATH), 0, "the well-known path must not be needed");
}

#[tokio::test]
async fn discovery_refuses_a_hint_to_plain_http_elsewhere_without_fetching_it() {
    let s = start(|_| {
        Router::new().route(
            "/mcp",
            post(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, r#"Bearer resource_metadata="http://example.com/x""#)],
                )
            }),
        )
    })
    .await;
    let transport = Recording::new();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-url-refused", "{err:?}");
    assert!(err.to_string().contains("http://example.com/x") && err.to_string().contains("not https"), "{err}");
    assert_eq!(transport.sent(), vec![format!("POST {}/mcp", s.base)], "only the probe may be sent");
    assert_eq!(s.log.requests(), vec!["POST /mcp".to_string()]);
}

#[tokio::test]
async fn discovery_as_metadata_with_another_issuer_is_refused() {
    let s = with_as(|base| json_get(good_as("https://evil.example.com", base))).await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-issuer-mismatch");
    let DiscoveryError::IssuerMismatch { expected, found, .. } = &err else { panic!("{err:?}") };
    assert!(same(expected, &s.base), "{expected}");
    assert_eq!(found, "https://evil.example.com");
    assert!(err.to_string().contains("evil.example.com") && err.to_string().contains("RFC 8414"), "{err}");
}

#[tokio::test]
async fn discovery_finds_as_metadata_at_the_openid_fallback_path() {
    const OIDC_PATH: &str = "/.well-known/openid-configuration/tenant1";
    let s = start(|base| {
        let issuer = format!("{base}/tenant1");
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": [issuer] })))
            .route(OIDC_PATH, json_get(good_as(&issuer, base)))
    })
    .await;
    let e = discover(&s).await.unwrap();
    assert_eq!(e.issuer, format!("{}/tenant1", s.base));
    assert_eq!(e.token_endpoint, s.url("/token"));
    assert_eq!(s.log.hits("/.well-known/oauth-authorization-server/tenant1"), 1, "RFC 8414 first");
    assert_eq!(s.log.hits(OIDC_PATH), 1);
    assert_eq!(s.log.hits("/tenant1/.well-known/openid-configuration"), 0, "stop at the first found");
}

#[tokio::test]
async fn discovery_without_any_as_metadata_says_so() {
    let s = start(|base| {
        let issuer = format!("{base}/tenant1");
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(json!({ "resource": format!("{base}/mcp"), "authorization_servers": [issuer] })))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-no-as-metadata");
    let DiscoveryError::NoAsMetadata { issuer, tried } = &err else { panic!("{err:?}") };
    assert_eq!(issuer, &format!("{}/tenant1", s.base));
    let expected_paths = [
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
    ];
    assert_eq!(tried, &expected_paths.map(|p| format!("{}{p}", s.base)).to_vec());
    for p in expected_paths {
        assert_eq!(s.log.hits(p), 1, "{p}");
    }
    assert!(err.to_string().contains("/tenant1"), "{err}");
}

#[tokio::test]
async fn discovery_does_not_follow_a_redirect_on_protected_resource_metadata() {
    let s = start(|base| {
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, redirect_to(format!("{base}/moved/prm")))
            .route("/moved/prm", json_get(good_prm(base)))
            .route(AS_PATH, json_get(good_as(base, base)))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-http-error");
    assert!(matches!(&err, DiscoveryError::Status { status: 302, what: "protected-resource metadata", .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 302") && err.to_string().contains(PRM_PATH), "{err}");
    assert_eq!(s.log.hits(PRM_PATH), 1);
    assert_eq!(s.log.hits("/moved/prm"), 0, "the redirect must not be followed");
}

#[tokio::test]
async fn discovery_does_not_follow_a_redirect_on_as_metadata() {
    let s = start(|base| {
        Router::new()
            .route("/mcp", mcp_401())
            .route(PRM_PATH, json_get(good_prm(base)))
            .route(AS_PATH, redirect_to(format!("{base}/moved/as")))
            .route("/moved/as", json_get(good_as(base, base)))
            .route("/.well-known/openid-configuration", json_get(good_as(base, base)))
    })
    .await;
    let err = discover_err(&s).await;
    assert_eq!(err.code(), "discovery-http-error");
    assert!(
        matches!(&err, DiscoveryError::Status { status: 302, what: "authorization-server metadata", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 302") && err.to_string().contains(AS_PATH), "{err}");
    assert_eq!(s.log.hits("/moved/as"), 0, "the redirect must not be followed");
    assert_eq!(s.log.hits("/.well-known/openid-configuration"), 0, "a redirect is not a 404: no fallback");
}

#[tokio::test]
async fn discovery_refuses_a_plain_http_token_endpoint_elsewhere() {
    let s = with_as(|base| {
        let mut v = good_as(base, base);
        v["token_endpoint"] = json!("http://as.example.com/oauth/token");
        json_get(v)
    })
    .await;
    let transport = Recording::new();
    let err = discovery::discover(&transport, &s.url("/mcp"), None).await.unwrap_err();
    assert_eq!(err.code(), "discovery-url-refused", "{err:?}");
    assert!(err.to_string().contains("http://as.example.com/oauth/token"), "{err}");
    assert!(transport.sent().iter().all(|r| !r.contains("as.example.com")), "{:?}", transport.sent());
}
