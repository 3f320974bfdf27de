//! The loopback redirect receiver (RFC 8252 §7.3 and §8.3).
//!
//! Binds `127.0.0.1` on an ephemeral port (never `0.0.0.0`, never `localhost`, which may resolve
//! to another interface), serves exactly one successful callback, answers the browser with a
//! friendly page, and gives up after a timeout. Requests are read with a size cap and a
//! per-connection deadline, so a stray or hostile local client cannot hang or flood it; a
//! request to another path (a favicon) gets a 404 and the wait goes on.
//!
//! The `state` check (RFC 6749 §10.12) and the `iss` check (RFC 9207 §2.4) happen here, before
//! any code is used.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::secret::Fingerprint;

/// The callback path.
pub const CALLBACK_PATH: &str = "/callback";
/// The largest request head accepted from the browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long one connection may take to send its request.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// Why no authorization code arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(String),
    #[error("no sign-in response arrived within {0} s")]
    Timeout(u64),
    #[error("the sign-in response has the wrong `state` (possible cross-site request forgery); nothing was accepted")]
    StateMismatch,
    #[error("the sign-in response came from issuer `{0}`, not ours (RFC 9207 mix-up protection)")]
    IssuerMismatch(String),
    #[error("the IdP refused the sign-in: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
    #[error("the sign-in response has no authorization code")]
    MissingCode,
}

impl CallbackError {
    pub fn code(&self) -> &'static str {
        match self {
            CallbackError::Bind(_) => "loopback-bind",
            CallbackError::Timeout(_) => "sign-in-timeout",
            CallbackError::StateMismatch => "state-mismatch",
            CallbackError::IssuerMismatch(_) => "issuer-mismatch",
            CallbackError::Refused { .. } => "sign-in-refused",
            CallbackError::MissingCode => "missing-code",
        }
    }
}

/// A bound listener waiting for one callback.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: TcpListener,
    port: u16,
}

/// What the browser delivered.
pub struct Callback {
    /// The authorization code (secret, one use).
    pub code: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("code", &Fingerprint::of(&self.code)).finish()
    }
}

impl LoopbackListener {
    /// Binds 127.0.0.1 on a port the OS chooses (RFC 8252 §7.3).
    pub async fn bind() -> Result<Self, CallbackError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| CallbackError::Bind(e.to_string()))?;
        let port = listener.local_addr().map_err(|e| CallbackError::Bind(e.to_string()))?.port();
        Ok(LoopbackListener { listener, port })
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// Waits for the callback, checks `state` (and `iss` when the IdP sends it), and answers
    /// the browser. Consumes the listener: the port is closed afterwards.
    pub async fn wait(
        self,
        expected_state: &str,
        expected_issuer: &str,
        timeout: Duration,
    ) -> Result<Callback, CallbackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await;
            let (stream, _) = match accepted {
                Err(_) => return Err(CallbackError::Timeout(timeout.as_secs())),
                Ok(Err(_)) => continue,
                Ok(Ok(s)) => s,
            };
            if let Some(result) = handle_connection(stream, expected_state, expected_issuer).await {
                return result;
            }
        }
    }
}

/// Handles one connection. `None` means "not the callback, keep waiting".
async fn handle_connection(
    mut stream: TcpStream,
    expected_state: &str,
    expected_issuer: &str,
) -> Option<Result<Callback, CallbackError>> {
    let head = match tokio::time::timeout(CONNECTION_DEADLINE, read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        _ => {
            let _ = respond(&mut stream, 400, "Bad request", "This address only receives the sign-in response.").await;
            return None;
        }
    };
    let target = head.lines().next().and_then(|line| {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next()) {
            (Some("GET"), Some(t)) => Some(t.to_string()),
            _ => None,
        }
    });
    let Some(target) = target else {
        let _ = respond(&mut stream, 405, "Not allowed", "This address only receives the sign-in response.").await;
        return None;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != CALLBACK_PATH {
        let _ = respond(&mut stream, 404, "Not found", "Nothing here.").await;
        return None;
    }
    let result = parse_callback(query, expected_state, expected_issuer);
    let _ = match &result {
        Ok(_) => {
            respond(&mut stream, 200, "Signed in", "You are signed in. You can close this tab and return to EMA.").await
        }
        Err(e) => respond(&mut stream, 400, "Sign-in failed", &format!("{e}. Return to EMA to try again.")).await,
    };
    Some(result)
}

/// Parses and checks the callback query (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207 §2).
pub fn parse_callback(query: &str, expected_state: &str, expected_issuer: &str) -> Result<Callback, CallbackError> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    let mut iss = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(crate::redact::scrub(&v, 64)),
            "error_description" => description = Some(crate::redact::scrub(&v, 300)),
            "iss" => iss = Some(v.into_owned()),
            _ => {}
        }
    }
    // The state is checked first, for errors too: an unsolicited error page is also forgery.
    if !constant_time_eq(state.as_deref().unwrap_or("").as_bytes(), expected_state.as_bytes()) {
        return Err(CallbackError::StateMismatch);
    }
    if let Some(iss) = iss
        && !crate::url_policy::same_uri(&iss, expected_issuer)
    {
        return Err(CallbackError::IssuerMismatch(crate::redact::scrub(&iss, 200)));
    }
    if let Some(error) = error {
        return Err(CallbackError::Refused { error, description });
    }
    match code {
        Some(code) if !code.is_empty() => Ok(Callback { code }),
        _ => Err(CallbackError::MissingCode),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return None;
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let ok = status == 200;
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>EMA - {title}</title>\
<meta name=\"color-scheme\" content=\"light dark\"><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:15vh auto;padding:0 1rem;line-height:1.5}}\
h1{{font-size:1.4rem;color:{color}}}</style></head><body><main><h1>{title}</h1><p>{msg}</p></main></body></html>",
        title = html_escape(title),
        msg = html_escape(message),
        color = if ok { "#1a7f37" } else { "#cf222e" },
    );
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_checks_state_then_issuer_then_error_then_code() {
        let iss = "https://idp.example.com";
        assert_eq!(parse_callback("code=abc&state=s1", "s1", iss).unwrap().code, "abc");
        assert!(matches!(parse_callback("code=abc&state=s2", "s1", iss), Err(CallbackError::StateMismatch)));
        assert!(matches!(parse_callback("code=abc", "s1", iss), Err(CallbackError::StateMismatch)));
        assert!(matches!(parse_callback("error=access_denied", "s1", iss), Err(CallbackError::StateMismatch)));
        assert!(matches!(
            parse_callback("code=abc&state=s1&iss=https%3A%2F%2Fevil.example", "s1", iss),
            Err(CallbackError::IssuerMismatch(_))
        ));
        assert!(parse_callback("code=abc&state=s1&iss=https%3A%2F%2Fidp.example.com", "s1", iss).is_ok());
        assert!(matches!(
            parse_callback("error=access_denied&error_description=no&state=s1", "s1", iss),
            Err(CallbackError::Refused { ref error, .. }) if error == "access_denied"
        ));
        assert!(matches!(parse_callback("state=s1", "s1", iss), Err(CallbackError::MissingCode)));
    }

    #[test]
    fn callback_debug_hides_the_code() {
        let cb = parse_callback("code=secret-code-canary&state=s", "s", "https://i").unwrap();
        assert!(!format!("{cb:?}").contains("secret-code-canary"));
    }

    async fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn listener_ignores_other_paths_and_answers_the_callback() {
        let l = LoopbackListener::bind().await.unwrap();
        let uri = l.redirect_uri();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"));
        let port: u16 = uri.trim_start_matches("http://127.0.0.1:").trim_end_matches("/callback").parse().unwrap();
        let waiter = tokio::spawn(async move { l.wait("st", "https://i", Duration::from_secs(5)).await });
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let page = get(port, "/callback?code=c0de&state=st").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("You are signed in"));
        assert!(!page.contains("c0de"));
        assert_eq!(waiter.await.unwrap().unwrap().code, "c0de");
    }

    #[tokio::test]
    async fn wrong_state_fails_with_a_page_and_an_error() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = l.port;
        let waiter = tokio::spawn(async move { l.wait("expected", "https://i", Duration::from_secs(5)).await });
        let page = get(port, "/callback?code=c&state=forged").await;
        assert!(page.starts_with("HTTP/1.1 400"));
        assert!(page.contains("Sign-in failed"));
        assert!(matches!(waiter.await.unwrap(), Err(CallbackError::StateMismatch)));
    }

    #[tokio::test]
    async fn times_out() {
        let l = LoopbackListener::bind().await.unwrap();
        let r = l.wait("s", "https://i", Duration::from_millis(100)).await;
        assert!(matches!(r, Err(CallbackError::Timeout(_))));
    }

    #[tokio::test]
    async fn oversized_request_is_dropped_and_the_wait_goes_on() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = l.port;
        let waiter = tokio::spawn(async move { l.wait("s", "https://i", Duration::from_secs(5)).await });
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = s.write_all(&vec![b'A'; 40_000]).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
        assert!(get(port, "/callback?code=ok&state=s").await.starts_with("HTTP/1.1 200"));
        assert_eq!(waiter.await.unwrap().unwrap().code, "ok");
    }
}
