//! Assembles the one HTTP server: IdP, connectors, the `/_sandbox` control routes,
//! and the middleware every knob needs (latency, skewed `Date`).
//!
//! All parties share one origin, `http://127.0.0.1:PORT`, under path prefixes, so a
//! single ephemeral port hosts a whole organisation.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::connector::{self, McpServers};
use crate::html;
use crate::policy;
use crate::state::SandboxState;
use crate::users::{USERS, entitled_connectors};

/// Builds the whole router; `mcp` receives the MCP services so they can be cancelled.
pub(crate) fn router(state: Arc<SandboxState>, mcp: &mut McpServers) -> Router {
    let routes = Router::new()
        .route("/", get(index))
        .route("/help", get(|| async { Html(html::help_page()) }))
        .route("/_sandbox/knobs", get(get_knobs).post(post_knobs).delete(reset_knobs))
        .route("/_sandbox/policy", get(get_policy))
        .route("/_sandbox/users", get(get_users))
        .merge(crate::idp::router(state.clone()))
        .merge(connector::router());
    mcp.mount(&state, routes).layer(middleware::from_fn_with_state(state.clone(), latency_and_date)).with_state(state)
}

/// Applies `latency_ms` (not to `/_sandbox/*`, so tests can always reset knobs fast)
/// and stamps a `Date` header from the sandbox clock, so clients measuring skew from
/// `Date` (RFC 9110 §6.6.1) see the `clock_offset_secs` knob.
async fn latency_and_date(State(state): State<Arc<SandboxState>>, request: Request, next: Next) -> Response {
    let knobs = state.knobs.get();
    if knobs.latency_ms > 0 && !request.uri().path().starts_with("/_sandbox") {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    let mut response = next.run(request).await;
    if let Some(date) = http_date(state.now())
        && let Ok(value) = HeaderValue::from_str(&date)
    {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// Formats Unix seconds as an IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(unix: i64) -> Option<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix).ok()?.format(&format).ok()
}

async fn index(State(state): State<Arc<SandboxState>>) -> Html<String> {
    let mut body =
        format!("<h1>Sandbox Org</h1>\n<p>IdP issuer: <code>{}</code></p>\n<ul>\n", html::escape(&state.idp_issuer()));
    for id in &state.connector_order {
        if let Some(c) = state.connectors.get(id) {
            body.push_str(&format!(
                "<li>{}: <code>{}</code></li>\n",
                html::escape(&c.def.display_name),
                html::escape(&state.mcp_url(id))
            ));
        }
    }
    body.push_str(
        "</ul>\n<p>Policy: <a href=\"/_sandbox/policy\">/_sandbox/policy</a>. \
         Knobs: <a href=\"/_sandbox/knobs\">/_sandbox/knobs</a>.</p>\n",
    );
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sandbox Org</title></head><body>\n{body}</body></html>\n"
    ))
}

async fn get_knobs(State(state): State<Arc<SandboxState>>) -> Response {
    axum::Json(state.knobs.get()).into_response()
}

/// Merges the posted JSON object's top-level fields into the knobs.
async fn post_knobs(State(state): State<Arc<SandboxState>>, body: axum::body::Bytes) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}\n")).into_response(),
    };
    match state.knobs.get().merged(&patch) {
        Ok(knobs) => {
            state.knobs.set(knobs.clone());
            tracing::info!("sandbox: knobs changed");
            axum::Json(knobs).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid knobs: {e}\n")).into_response(),
    }
}

async fn reset_knobs(State(state): State<Arc<SandboxState>>) -> Response {
    state.knobs.reset();
    axum::Json(state.knobs.get()).into_response()
}

async fn get_policy(State(state): State<Arc<SandboxState>>) -> Response {
    axum::Json(policy::document(&state)).into_response()
}

async fn get_users(State(state): State<Arc<SandboxState>>) -> Response {
    let users: Vec<serde_json::Value> = USERS
        .iter()
        .map(|u| {
            serde_json::json!({
                "username": u.username,
                "name": u.name,
                "email": u.email,
                "groups": u.groups,
                "entitled_connectors": entitled_in(&state, u.username),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "password": crate::users::DEMO_PASSWORD, "users": users })).into_response()
}

/// The connectors of this sandbox `username` is entitled to, in catalog order.
pub(crate) fn entitled_in(state: &SandboxState, username: &str) -> Vec<String> {
    if crate::users::find_user(username).is_none() {
        return Vec::new();
    }
    let builtin = entitled_connectors(username);
    state
        .connector_order
        .iter()
        .filter(|id| state.connectors.get(*id).is_some_and(|c| c.def.synthetic || builtin.contains(id)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_date_format() {
        assert_eq!(super::http_date(784_111_777).as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    }
}
