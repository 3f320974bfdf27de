//! OAuth error responses (RFC 6749 §5.2) and the failures of a token-endpoint call.
//!
//! Servers send the error JSON with 400, 401 or 403 (and some with 500): it is parsed whatever
//! the status. Descriptions are server text: they are truncated and stripped of anything that
//! looks like a token before they reach status or diagnostics.

use serde::Deserialize;

use crate::http::TransportError;
use crate::redact::scrub;

/// `{"error": ..., "error_description": ..., "error_uri": ...}` (RFC 6749 §5.2), plus the
/// step-up hints of RFC 9470 §3 (`max_age`, `acr_values`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OAuthErrorResponse {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
    #[serde(default)]
    pub max_age: Option<u64>,
    #[serde(default)]
    pub acr_values: Option<String>,
}

impl OAuthErrorResponse {
    /// Parses an error body; `None` when it is not RFC 6749 §5.2 JSON.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let mut e: OAuthErrorResponse = serde_json::from_slice(body).ok()?;
        // RFC 6749 §5.2: error codes are ASCII without space, quote or backslash.
        if e.error.is_empty()
            || e.error.len() > 64
            || !e.error.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return None;
        }
        e.error_description = e.error_description.map(|d| scrub(&d, 300));
        e.error_uri = e.error_uri.map(|d| scrub(&d, 300));
        Some(e)
    }

    /// `error: description` for messages.
    pub fn summary(&self) -> String {
        match &self.error_description {
            Some(d) if !d.is_empty() => format!("{}: {}", self.error, d),
            _ => self.error.clone(),
        }
    }
}

/// Why a token-endpoint (or metadata) call did not produce what we needed; says who is at
/// fault, as oauth2-rs's `RequestTokenError` does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server answered with an OAuth error.
    #[error("{endpoint} refused the request (HTTP {status}): {}", .error.summary())]
    OAuth { endpoint: String, status: u16, error: Box<OAuthErrorResponse> },
    /// The server answered with an HTTP error that is not OAuth JSON.
    #[error("{endpoint} answered HTTP {status}{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Http { endpoint: String, status: u16, detail: Option<String> },
    /// The server answered 2xx but the body is not what the spec requires.
    #[error("{endpoint} sent an invalid response: {problem}")]
    Invalid { endpoint: String, problem: String },
    /// No HTTP answer at all.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl ResponseError {
    /// The OAuth error code when the server sent one.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            ResponseError::OAuth { error, .. } => Some(&error.error),
            _ => None,
        }
    }

    /// A stable code for the UI and diagnostics.
    pub fn code(&self) -> String {
        match self {
            ResponseError::OAuth { error, .. } => format!("oauth-{}", error.error.replace('_', "-")),
            ResponseError::Http { status, .. } => format!("http-{status}"),
            ResponseError::Invalid { .. } => "invalid-response".into(),
            ResponseError::Transport(t) => t.code().into(),
        }
    }

    /// Builds the error for a non-success response: OAuth JSON if present, else the status.
    pub fn from_response(endpoint: &str, status: u16, body: &[u8]) -> Self {
        match OAuthErrorResponse::parse(body) {
            Some(error) => ResponseError::OAuth { endpoint: endpoint.into(), status, error: Box::new(error) },
            None => {
                let text = String::from_utf8_lossy(body);
                let detail =
                    (!text.trim().is_empty() && !text.trim_start().starts_with('<')).then(|| scrub(text.trim(), 200));
                ResponseError::Http { endpoint: endpoint.into(), status, detail }
            }
        }
    }
}
