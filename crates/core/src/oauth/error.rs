//! OAuth error responses (RFC 6749 §5.2) and the failures of a token-endpoint call.
//!
//! Servers send the error JSON with 400, 401 or 403 (and some with 500): it is parsed whatever
//! the status. Descriptions are server text: they are truncated and stripped of anything that
//! looks like a token before they reach status or diagnostics.

use serde::{Deserialize, Serialize};

use crate::http::TransportError;
use crate::redact::{has_known_secret_prefix, looks_like_token, scrub};
use crate::status::ResponseKind;

/// `{"error": ..., "error_description": ..., "error_uri": ...}` (RFC 6749 §5.2), plus the
/// step-up hints of RFC 9470 §3 (`max_age`, `acr_values`; ID-JAG -04 §9.2 allows the error at the
/// token exchange).
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

/// What a step-up asks of the next sign-in (RFC 9470 §3, from `insufficient_user_authentication`):
/// sent as `max_age` and `acr_values` in the authorization request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// Space-separated authentication context classes, most preferred first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
}

impl StepUp {
    /// What both ask: the smaller `max_age`, every class of either (most recent first).
    pub fn merged(self, other: StepUp) -> StepUp {
        let max_age = match (self.max_age, other.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let classes = format!("{} {}", other.acr_values.unwrap_or_default(), self.acr_values.unwrap_or_default());
        let mut seen = Vec::new();
        for c in classes.split_ascii_whitespace() {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        StepUp::sanitized(max_age, Some(&seen.join(" ")))
    }

    /// The step-up to send with a sign-in: one that asks for nothing in particular becomes
    /// `max_age=0`, a fresh authentication (OIDC Core §3.1.2.1), or the IdP's single sign-on
    /// would answer with the very sign-in it just found too weak.
    pub fn for_sign_in(self) -> StepUp {
        if self.max_age.is_none() && self.acr_values.is_none() {
            StepUp { max_age: Some(0), acr_values: None }
        } else {
            self
        }
    }

    /// A value the server chose is put in a URL the browser opens: at most 8 classes of at most
    /// 200 printable characters (no quotes or backslashes), the rest dropped.
    fn sanitized(max_age: Option<u64>, acr_values: Option<&str>) -> StepUp {
        let acr: Vec<&str> = acr_values
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter(|v| v.len() <= 200 && v.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'))
            .take(8)
            .collect();
        StepUp { max_age, acr_values: (!acr.is_empty()).then(|| acr.join(" ")) }
    }
}

impl OAuthErrorResponse {
    /// What this error asks of the next sign-in, when it is a step-up (RFC 9470 §3).
    pub fn step_up(&self) -> StepUp {
        StepUp::sanitized(self.max_age, self.acr_values.as_deref())
    }

    /// Parses an error body; `None` when it is not RFC 6749 §5.2 JSON.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let mut e: OAuthErrorResponse = serde_json::from_slice(body).ok()?;
        // RFC 6749 §5.2: error codes are ASCII without space, quote or backslash. The code is
        // shown as sent (it names the failure), so a token-shaped one (a server echoing our
        // assertion as its `error`) is not a code: the body is then shown scrubbed, as any
        // non-OAuth error body is.
        if e.error.is_empty()
            || e.error.len() > 64
            || !e.error.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
            || has_known_secret_prefix(&e.error)
            || (looks_like_token(&e.error) && !words_joined(&e.error))
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

/// Whether a code 32 characters or longer is words, as registered codes are
/// (`insufficient_user_authentication`, RFC 9470 §3): lowercase words of at most 24 letters
/// joined by `_`, `-`, `.` or `:`. A secret of that length has capitals or digits.
fn words_joined(code: &str) -> bool {
    code.split(['_', '-', '.', ':']).all(|w| w.len() <= 24 && w.bytes().all(|b| b.is_ascii_lowercase()))
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

    /// What kind of answer it was; the leg that sent the request makes it a code
    /// (`ErrorCode::Response`).
    pub fn kind(&self) -> ResponseKind {
        match self {
            ResponseError::OAuth { .. } => ResponseKind::OAuth,
            ResponseError::Http { status, .. } => ResponseKind::Http(*status),
            ResponseError::Invalid { .. } => ResponseKind::InvalidResponse,
            ResponseError::Transport(t) => ResponseKind::Transport(t.code()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_shaped_error_code_is_not_shown_as_a_code() {
        // A server echoing the assertion it was sent as its `error` (found by the oauth_error
        // fuzz target's planted secrets): the code would be shown as sent.
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let body = format!(r#"{{"error":"{jwt}"}}"#);
        assert_eq!(OAuthErrorResponse::parse(body.as_bytes()), None);
        let e = ResponseError::from_response("https://as.example.com/token", 400, body.as_bytes());
        assert_eq!(e.kind(), ResponseKind::Http(400));
        assert!(!e.to_string().contains(jwt), "{e}");
        // A secret with a known prefix is one whatever its length (found in review: 26 characters).
        for secret in [
            "0123456789abcdef0123456789abcdef",
            &"a".repeat(40),
            "lin_api_Q2FuYXJ5Q2FuYXJ5Q2FuYXJ5Q2FuYXJ5",
            "glpat-xxxxxxxxxxxxxxxxxxxx",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert_eq!(OAuthErrorResponse::parse(format!(r#"{{"error":"{secret}"}}"#).as_bytes()), None, "{secret}");
        }
        // Ordinary codes, including long registered ones (32 characters), still are codes.
        let ok = br#"{"error":"insufficient_user_authentication","error_description":"log in again"}"#;
        assert_eq!(OAuthErrorResponse::parse(ok).unwrap().error, "insufficient_user_authentication");
    }

    #[test]
    fn an_escaped_secret_in_the_description_is_scrubbed_after_decoding() {
        let body = br#"{"error":"invalid_grant","error_description":"assertion \u0065yJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl replayed"}"#;
        let e = ResponseError::from_response("https://as.example.com/token", 400, body);
        assert_eq!(
            e.to_string(),
            "https://as.example.com/token refused the request (HTTP 400): invalid_grant: assertion [redacted] replayed"
        );
    }
}
