//! Token endpoints: the token exchange at the IdP and the JWT-bearer grant at the connector's
//! authorization server, answered by servers that err, redirect, echo or flood.

use super::*;

/// Shaped like a JWT: `scrub` must recognise and redact it wherever it is echoed.
const CANARY_JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
/// What we send as the ID-JAG / ID token in echo tests; its signature part is the canary.
const SENT_JWT: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6Im9hdXRoLWlkLWphZytqd3QifQ.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJlLWNhbmFyeS1kby1ub3QtbGVhaw";
const SENT_JWT_SIGNATURE: &str = "c2lnbmF0dXJlLWNhbmFyeS1kby1ub3QtbGVhaw";
const SENT_JWT_PAYLOAD: &str = "eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9";

async fn jwt_bearer_call(endpoint: &Url, assertion: &str) -> Result<ConnectorGrant, GrantError> {
    let scopes = vec!["read".to_string()];
    let req = JwtBearerGrant {
        token_endpoint: endpoint,
        client_id: "ema-test",
        client_auth: &ClientAuth::None,
        assertion: IdJag::new(assertion),
        scopes: &scopes,
        resource: "https://mcp.example.com/mcp",
        assertion_audience: ("", ema_core::oauth::client_auth::AudienceRule::Endpoint),
    }
    .build(OffsetDateTime::now_utc().unix_timestamp())
    .unwrap();
    let resp = transport().send(req).await.map_err(|e| GrantError::Response(ResponseError::Transport(e)))?;
    jwt_bearer::process_response(endpoint, &resp, &scopes, OffsetDateTime::now_utc())
}

async fn token_exchange_call(endpoint: &Url, id_token: &str) -> Result<IssuedIdJag, ExchangeError> {
    let scopes = vec!["read".to_string()];
    let subject = IdToken::new(id_token);
    let req = TokenExchange {
        token_endpoint: endpoint,
        client_id: "ema-test",
        client_auth: &ClientAuth::None,
        audience: "https://as.example.com",
        resource: "https://mcp.example.com/mcp",
        scopes: &scopes,
        subject_token: ema_core::grants::token_exchange::SubjectToken::IdToken(&subject),
    }
    .build(OffsetDateTime::now_utc().unix_timestamp())
    .unwrap();
    let resp = transport().send(req).await.map_err(|e| ExchangeError::Response(ResponseError::Transport(e)))?;
    token_exchange::process_response(endpoint, &resp, &scopes)
}

/// POST answering `status` with `body` as JSON.
fn token_reply(status: StatusCode, body: String) -> MethodRouter {
    post(move || {
        let body = body.clone();
        async move { (status, [(header::CONTENT_TYPE, "application/json")], body) }
    })
}

#[tokio::test]
async fn token_control_well_formed_responses_are_accepted() {
    let s = start(|_| {
        Router::new()
            .route(
                "/as/token",
                token_reply(StatusCode::OK, json!({"access_token":"at","token_type":"Bearer","expires_in":60}).to_string()),
            )
            .route(
                "/idp/token",
                token_reply(
                    StatusCode::OK,
                    json!({"access_token":"jag","token_type":"N_A","issued_token_type":token_exchange::TOKEN_TYPE_ID_JAG})
                        .to_string(),
                ),
            )
    })
    .await;
    let g = jwt_bearer_call(&s.url("/as/token"), SENT_JWT).await.unwrap();
    assert_eq!(g.access_token.secret(), "at");
    let j = token_exchange_call(&s.url("/idp/token"), SENT_JWT).await.unwrap();
    assert_eq!(j.id_jag.secret(), "jag");
}

#[tokio::test]
async fn token_oauth_errors_are_parsed_whatever_the_status() {
    let s = start(|_| {
        let mut r = Router::new();
        for status in [400u16, 401, 403] {
            let body = json!({
                "error": "invalid_client",
                "error_description": format!("client authentication failed (sent with {status})"),
            });
            r = r.route(
                &format!("/token/{status}"),
                token_reply(StatusCode::from_u16(status).unwrap(), body.to_string()),
            );
        }
        r
    })
    .await;
    for status in [400u16, 401, 403] {
        let endpoint = s.url(&format!("/token/{status}"));
        let description = format!("client authentication failed (sent with {status})");

        let err = jwt_bearer_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-client", "{status}: {err:?}");
        assert_eq!(err.oauth_error(), Some("invalid_client"));
        let GrantError::Response(ResponseError::OAuth { status: got, error, .. }) = &err else { panic!("{err:?}") };
        assert_eq!(*got, status);
        assert_eq!(error.error_description.as_deref(), Some(description.as_str()));
        let msg = err.to_string();
        assert!(msg.contains(&description) && msg.contains(&format!("HTTP {status}")), "{msg}");
        assert!(msg.contains(&format!("/token/{status}")), "the endpoint is named: {msg}");

        let err = token_exchange_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "token-exchange-oauth-invalid-client", "{status}: {err:?}");
        assert!(err.to_string().contains(&description), "{err}");
    }
}

#[tokio::test]
async fn token_endpoint_redirect_is_not_followed() {
    let s = start(|base| {
        Router::new().route("/token", redirect_to(format!("{base}/stolen"))).route(
            "/stolen",
            token_reply(StatusCode::OK, json!({"access_token":"at","token_type":"Bearer"}).to_string()),
        )
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "connector-grant-invalid-response", "{err:?}");
    assert!(err.to_string().contains("redirect") && err.to_string().contains("302"), "{err}");
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "token-exchange-invalid-response", "{err:?}");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert_eq!(s.log.hits("/token"), 2);
    assert_eq!(s.log.hits("/stolen"), 0, "the assertion must never reach the redirect target");
}

#[tokio::test]
async fn token_endpoint_html_error_page_is_reported_by_status_and_not_echoed() {
    const PAGE: &str = "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>\
        <body><h1>Whoops</h1><pre>NullPointerException at com.vendor.TokenServlet</pre></body></html>";
    let s = start(|_| {
        Router::new().route(
            "/token",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/html")], PAGE) }),
        )
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "connector-grant-http-500", "{err:?}");
    assert!(matches!(&err, GrantError::Response(ResponseError::Http { status: 500, detail: None, .. })), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(err.to_string().contains("HTTP 500") && err.to_string().contains("/token"), "{err}");
    for fragment in ["<html", "Whoops", "NullPointerException", "DOCTYPE"] {
        assert!(!shown.contains(fragment), "{fragment} echoed: {shown}");
    }
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "token-exchange-http-500", "{err:?}");
    assert!(!format!("{err} {err:?}").contains("Whoops"));
}

#[tokio::test]
async fn token_error_description_with_a_jwt_is_redacted() {
    let s = start(|_| {
        let body = format!(r#"{{"error":"invalid_grant","error_description":"bad assertion {CANARY_JWT}"}}"#);
        Router::new().route("/token", token_reply(StatusCode::BAD_REQUEST, body))
    })
    .await;
    let err = jwt_bearer_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-grant", "{err:?}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(CANARY_JWT), "{shown}");
        assert!(!shown.contains("c2lnbmF0dXJlc2lnbmF0dXJl"), "{shown}");
        assert!(shown.contains("bad assertion [redacted]"), "the rest of the description stays: {shown}");
    }
    let err = token_exchange_call(&s.url("/token"), SENT_JWT).await.unwrap_err();
    assert_eq!(err.code(), "idp-session-invalid", "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(CANARY_JWT) && shown.contains("[redacted]"), "{shown}");
}

/// Builds an echoed `error_description` from the request body; `{JWT}` is our token.
type Shape = fn(&str) -> String;

/// Echoes the request body back in `error_description`, in the shape `shape` gives it.
fn echoing(shape: Shape) -> MethodRouter {
    post(move |body: String| async move {
        let assertion = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "assertion" || k == "subject_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let description = shape(&body).replace("{JWT}", &assertion);
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_request", "error_description": description })))
    })
}

#[tokio::test]
async fn token_endpoint_echoing_our_assertion_back_never_leaks_it() {
    // Servers that echo what they received: the whole form, JSON, on a new line, in prose.
    let shapes: &[(&str, Shape)] = &[
        ("form", |body| format!("could not parse {body}")),
        ("json", |_| r#"bad request {"assertion":"{JWT}"}"#.to_string()),
        ("newline", |_| "the assertion was rejected:\n{JWT}".to_string()),
        ("tab", |_| "assertion\t{JWT}".to_string()),
        ("sentence", |_| "Invalid assertion {JWT}.".to_string()),
        ("colon", |_| "assertion:{JWT}".to_string()),
        ("plain", |_| "rejected {JWT}".to_string()),
        // Issue 14 item 8: the rest of a URL after `//` was kept whole.
        ("url-path", |_| "details at https://evil.example/{JWT}".to_string()),
        ("url-path-no-scheme", |_| "details at evil.example/errors/{JWT}".to_string()),
        ("url-query", |_| "see https://evil.example/e?ctx={JWT}&x=1".to_string()),
        ("json-space", |_| r#"bad request {"assertion": "{JWT}"}"#.to_string()),
    ];
    let s = start(|_| {
        let mut r = Router::new();
        for (name, shape) in shapes {
            r = r.route(&format!("/token/{name}"), echoing(*shape));
        }
        r
    })
    .await;
    let mut leaks = Vec::new();
    for (name, _) in shapes {
        let endpoint = s.url(&format!("/token/{name}"));
        let err = jwt_bearer_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "connector-grant-oauth-invalid-request", "{name}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("[redacted]"), "{name}: the echo must arrive, redacted: {shown}");
        if shown.contains(SENT_JWT_SIGNATURE) || shown.contains(SENT_JWT_PAYLOAD) {
            leaks.push(format!("jwt-bearer/{name}: {err}"));
        }
        let err = token_exchange_call(&endpoint, SENT_JWT).await.unwrap_err();
        assert_eq!(err.code().wire(err.oauth_error()), "token-exchange-oauth-invalid-request", "{name}: {err:?}");
        let shown = format!("{err} {err:?}");
        if shown.contains(SENT_JWT_SIGNATURE) || shown.contains(SENT_JWT_PAYLOAD) {
            leaks.push(format!("token-exchange/{name}: {err}"));
        }
    }
    assert!(leaks.is_empty(), "the sent token leaked through error_description:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn token_response_over_one_mebibyte_is_refused() {
    let s = start(|_| {
        let big =
            format!(r#"{{"access_token":"at","token_type":"Bearer","pad":"{}"}}"#, "a".repeat(MAX_RESPONSE_BYTES));
        Router::new()
            .route("/token/sized", token_reply(StatusCode::OK, big))
            .route("/token/chunked", post(|| async { chunked_json(MAX_RESPONSE_BYTES + 1) }))
    })
    .await;
    for path in ["/token/sized", "/token/chunked"] {
        let err = jwt_bearer_call(&s.url(path), SENT_JWT).await.unwrap_err();
        assert_eq!(err.code(), "connector-grant-response-too-large", "{path}: {err:?}");
        assert!(matches!(&err, GrantError::Response(ResponseError::Transport(TransportError::TooLarge { .. }))));
        assert!(err.to_string().contains(path), "{err}");
        let err = token_exchange_call(&s.url(path), SENT_JWT).await.unwrap_err();
        assert_eq!(err.code(), "token-exchange-response-too-large", "{path}: {err:?}");
        assert_eq!(s.log.hits(path), 2);
    }
}
