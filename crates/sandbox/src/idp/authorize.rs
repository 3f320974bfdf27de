//! The authorization endpoint and the login form behind it (leg 1 of the flow).
//!
//! `GET /idp/authorize` validates the request (RFC 6749 §4.1.1, RFC 7636 §4.3,
//! RFC 8252 §7.3 loopback redirects) and renders the login page; `POST /idp/login`
//! re-validates the same parameters from the form (hidden fields can be tampered
//! with), checks the password and redirects back with a one-time code (RFC 6749 §4.1.2).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{STEP_UP_ACR, SUPPORTED_SCOPES};
use crate::html;
use crate::oauth::{random_token, split_scope, token_hash};
use crate::state::{AUTH_CODE_TTL_SECS, AuthCode, SandboxState};
use crate::users::{DEMO_PASSWORD, find_user};

/// The request parameters carried through the login form, in form order.
const CARRIED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "max_age",
    "acr_values",
];

/// A validated authorization request.
#[derive(Debug)]
struct AuthorizationRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    scopes: Vec<String>,
    /// The step-up class this sign-in meets: [`STEP_UP_ACR`] when `acr_values` asked for it
    /// (the sandbox's login form stands for the stronger authentication too).
    acr: Option<String>,
}

/// How an invalid request is refused.
enum Refusal {
    /// Client or redirect URI cannot be trusted: show an error page, never redirect
    /// (RFC 6749 §4.1.2.1).
    Page(&'static str, String),
    /// Redirect back with `error` (RFC 6749 §4.1.2.1).
    Redirect(Box<Response>),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(title, detail) => {
                (StatusCode::BAD_REQUEST, Html(html::error_page(title, &detail))).into_response()
            }
            Refusal::Redirect(response) => *response,
        }
    }
}

/// Whether `uri` is an RFC 8252 §7.3 loopback redirect: `http://127.0.0.1:<port>/<path>`.
fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && u.host_str() == Some("127.0.0.1")
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment().is_none()
    })
}

/// A 302 to `redirect_uri` with `params` added to its query, plus `state` and the
/// RFC 9207 `iss` parameter.
fn redirect_back(issuer: Option<&str>, redirect_uri: &str, state: Option<&str>, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return Refusal::Page("Invalid redirect_uri", "redirect_uri is not a URL".to_owned()).into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        if let Some(issuer) = issuer {
            query.append_pair("iss", issuer);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn validate(state: &SandboxState, params: &HashMap<String, String>) -> Result<AuthorizationRequest, Refusal> {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let client_id = get("client_id").unwrap_or_default();
    if client_id != state.idp_client.client_id {
        return Err(Refusal::Page("Unknown client", format!("client_id {client_id:?} is not registered at this IdP")));
    }
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    if !is_loopback_redirect(&redirect_uri) {
        return Err(Refusal::Page(
            "Invalid redirect_uri",
            "redirect_uri must be http://127.0.0.1:<port>/<path> (RFC 8252 loopback redirect)".to_owned(),
        ));
    }
    let issuer = state.idp_issuer();
    let st = get("state");
    let fail = |error: &str, description: &str| {
        Refusal::Redirect(Box::new(redirect_back(
            Some(&issuer),
            &redirect_uri,
            st.as_deref(),
            &[("error", error), ("error_description", description)],
        )))
    };
    if get("response_type").as_deref() != Some("code") {
        return Err(fail("unsupported_response_type", "only response_type=code is supported"));
    }
    let Some(code_challenge) = get("code_challenge") else {
        return Err(fail("invalid_request", "code_challenge is required (PKCE)"));
    };
    if get("code_challenge_method").as_deref() != Some("S256") {
        return Err(fail("invalid_request", "code_challenge_method must be S256"));
    }
    let requested = split_scope(&get("scope").unwrap_or_default());
    if !requested.iter().any(|s| s == "openid") {
        return Err(fail("invalid_scope", "scope must include openid"));
    }
    let scopes = requested.into_iter().filter(|s| SUPPORTED_SCOPES.contains(&s.as_str())).collect();
    // OIDC Core §3.1.2.1: `max_age` is a number of seconds; a fresh sign-in always meets it.
    if get("max_age").is_some_and(|m| m.parse::<u64>().is_err()) {
        return Err(fail("invalid_request", "max_age must be a number of seconds"));
    }
    let acr = get("acr_values").filter(|v| v.split(' ').any(|a| a == STEP_UP_ACR)).map(|_| STEP_UP_ACR.to_owned());
    Ok(AuthorizationRequest {
        client_id,
        redirect_uri,
        state: st.clone(),
        nonce: get("nonce"),
        code_challenge,
        scopes,
        acr,
    })
}

fn render_login(params: &HashMap<String, String>, username: &str, error: Option<&str>, status: StatusCode) -> Response {
    let hidden: Vec<(&str, &str)> =
        CARRIED_PARAMS.iter().filter_map(|k| params.get(*k).map(|v| (*k, v.as_str()))).collect();
    let page = html::login_page("/idp/login", &hidden, username, error);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// `GET /idp/authorize`: the authorization endpoint (RFC 6749 §4.1.1).
pub(super) async fn authorize(
    State(state): State<Arc<SandboxState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match validate(&state, &params) {
        Ok(_) => render_login(&params, "", None, StatusCode::OK),
        Err(refusal) => refusal.into_response(),
    }
}

/// `POST /idp/login`: checks the credentials and answers the authorization request
/// with a code (RFC 6749 §4.1.2).
pub(super) async fn login(State(state): State<Arc<SandboxState>>, body: axum::body::Bytes) -> Response {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let request = match validate(&state, &params) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let username = params.get("username").map(String::as_str).unwrap_or("");
    let password = params.get("password").map(String::as_str).unwrap_or("");
    let Some(user) = find_user(username).filter(|_| password == DEMO_PASSWORD) else {
        tracing::info!("idp: failed sign-in");
        return render_login(&params, username, Some("Wrong username or password."), StatusCode::OK);
    };
    let code = random_token();
    state.issued(&code);
    let now = state.now();
    state.stores().codes.insert(
        token_hash(&code),
        AuthCode {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            nonce: request.nonce,
            scopes: request.scopes,
            user,
            auth_time: now,
            acr: request.acr,
            expires_at: now + AUTH_CODE_TTL_SECS,
        },
    );
    tracing::info!(user = user.username, "idp: signed in, code issued");
    // RFC 9207 §2: `iss` on every response, unless a test plays an IdP that forgets it.
    let issuer = state.idp_issuer();
    let issuer = (!state.knobs.get().authorization_response_omits_iss).then_some(issuer.as_str());
    redirect_back(issuer, &request.redirect_uri, request.state.as_deref(), &[("code", &code)])
}

#[cfg(test)]
mod tests {
    use super::is_loopback_redirect;

    #[test]
    fn only_ipv4_loopback_http_redirects() {
        assert!(is_loopback_redirect("http://127.0.0.1:53123/callback"));
        assert!(is_loopback_redirect("http://127.0.0.1/"));
        assert!(!is_loopback_redirect("https://127.0.0.1:1/cb"));
        assert!(!is_loopback_redirect("http://localhost:1/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1.evil.com/cb"));
        assert!(!is_loopback_redirect("http://evil.com/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1:1/cb#frag"));
    }
}
