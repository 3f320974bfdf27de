//! The loopback redirect receiver (RFC 8252 §7.3 and §8.3).
//!
//! Binds `127.0.0.1` on an ephemeral port (never `0.0.0.0`, never `localhost`, which may resolve
//! to another interface), waits for the one callback that carries our `state`, answers the
//! browser with a friendly page, and gives up at one deadline for the whole wait.
//!
//! Any local process can find the port (in `/proc/net/tcp`, say), so the listener assumes it is
//! being poked at:
//! - connections are served concurrently, each with a size cap and its own short deadline, and at
//!   most [`MAX_CONNECTIONS`] at once: a client that connects and says nothing delays nobody;
//! - a response with the wrong `state` (RFC 6749 §10.12) is answered with an error page and the
//!   wait goes on: a forged `/callback?code=x&state=forged` cannot end the sign-in and leave the
//!   real browser in front of a closed port. If only forged responses came, the sign-in ends at
//!   the deadline as `state-mismatch`, so the user learns why;
//! - a request to another path (a favicon) gets a 404 and the wait goes on.
//!
//! The `state` check and the `iss` check (RFC 9207 §2.4) happen here, before any code is used.
//! When the IdP advertises `authorization_response_iss_parameter_supported` (RFC 9207 §3), a
//! response without `iss` is refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::secret::Fingerprint;
use crate::status::ErrorCode;

/// The callback path.
pub const CALLBACK_PATH: &str = "/callback";
/// The largest request head accepted from the browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long one connection may take to send its request.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's backlog until one ends.
pub const MAX_CONNECTIONS: usize = 32;

/// Why no authorization code arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(String),
    #[error("no sign-in response arrived within {0} s")]
    Timeout(u64),
    #[error(
        "no valid sign-in response arrived within {waited} s; {refused} response(s) with the wrong `state` were refused (another program or site may be forging them); nothing was accepted"
    )]
    StateMismatch { refused: usize, waited: u64 },
    #[error("the sign-in response came from issuer `{0}`, not ours (RFC 9207 mix-up protection)")]
    IssuerMismatch(String),
    #[error(
        "the sign-in response has no `iss` although the IdP promises one (RFC 9207 mix-up protection); nothing was accepted"
    )]
    IssuerMissing,
    #[error("the IdP refused the sign-in: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
    #[error("the sign-in response has no authorization code")]
    MissingCode,
}

impl CallbackError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CallbackError::Bind(_) => ErrorCode::LoopbackBind,
            CallbackError::Timeout(_) => ErrorCode::SignInTimeout,
            CallbackError::StateMismatch { .. } => ErrorCode::StateMismatch,
            CallbackError::IssuerMismatch(_) | CallbackError::IssuerMissing => ErrorCode::IssuerMismatch,
            CallbackError::Refused { .. } => ErrorCode::SignInRefused,
            CallbackError::MissingCode => ErrorCode::MissingCode,
        }
    }
}

/// What the callback must carry (RFC 6749 §4.1.2, RFC 9207 §2.4).
#[derive(Clone)]
pub struct ExpectedCallback {
    /// The `state` sent in the authorization request.
    pub state: String,
    /// The IdP's issuer identifier, which an `iss` parameter must name.
    pub issuer: String,
    /// The IdP advertises `authorization_response_iss_parameter_supported` (RFC 9207 §3): a
    /// response without `iss` is refused.
    pub issuer_required: bool,
}

impl std::fmt::Debug for ExpectedCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedCallback")
            .field("issuer", &self.issuer)
            .field("issuer_required", &self.issuer_required)
            .finish_non_exhaustive()
    }
}

/// Why a callback request was not accepted.
#[derive(Debug)]
pub enum Rejected {
    /// Not the response to our request (wrong or missing `state`): answered, then ignored.
    WrongState,
    /// Our response, and it ends the sign-in with this error.
    Failed(CallbackError),
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

/// What one connection turned out to be.
enum Outcome {
    /// Our response: the sign-in ends with it.
    Ours(Result<Callback, CallbackError>),
    /// A callback with the wrong `state`.
    Forged,
    /// Anything else (another path, a bad request, a client that went away).
    Other,
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

    /// Waits until `timeout` for the callback that carries `expected.state`, checks it, and
    /// answers the browser. Consumes the listener: the port is closed afterwards, and
    /// connections still being served are dropped.
    pub async fn wait(self, expected: ExpectedCallback, timeout: Duration) -> Result<Callback, CallbackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let expected = Arc::new(expected);
        let mut connections = JoinSet::new();
        let mut refused = 0usize;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    let waited = timeout.as_secs();
                    return Err(if refused > 0 {
                        CallbackError::StateMismatch { refused, waited }
                    } else {
                        CallbackError::Timeout(waited)
                    });
                }
                accepted = self.listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(handle_connection(stream, Arc::clone(&expected)));
                    }
                }
                Some(done) = connections.join_next() => match done {
                    Ok(Outcome::Ours(result)) => return result,
                    Ok(Outcome::Forged) => {
                        refused += 1;
                        tracing::warn!(refused, "loopback: a sign-in response with the wrong state was refused");
                    }
                    Ok(Outcome::Other) | Err(_) => {}
                },
            }
        }
    }
}

const ONLY_SIGN_IN: &str = "This address only receives the sign-in response.";

/// Serves one connection and says what it was.
async fn handle_connection(mut stream: TcpStream, expected: Arc<ExpectedCallback>) -> Outcome {
    let head = match tokio::time::timeout(CONNECTION_DEADLINE, read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        _ => {
            let _ = respond(&mut stream, 400, "Bad request", ONLY_SIGN_IN).await;
            return Outcome::Other;
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
        let _ = respond(&mut stream, 405, "Not allowed", ONLY_SIGN_IN).await;
        return Outcome::Other;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != CALLBACK_PATH {
        let _ = respond(&mut stream, 404, "Not found", "Nothing here.").await;
        return Outcome::Other;
    }
    match parse_callback(query, &expected) {
        Ok(callback) => {
            let _ =
                respond(&mut stream, 200, "Signed in", "You are signed in. You can close this tab and return to EMA.")
                    .await;
            Outcome::Ours(Ok(callback))
        }
        Err(Rejected::WrongState) => {
            let message = "This response does not belong to the sign-in EMA started, so it was ignored. \
                If you are signing in, finish in the tab EMA opened.";
            let _ = respond(&mut stream, 400, "Not this sign-in", message).await;
            Outcome::Forged
        }
        Err(Rejected::Failed(e)) => {
            let _ = respond(&mut stream, 400, "Sign-in failed", &format!("{e}. Return to EMA to try again.")).await;
            Outcome::Ours(Err(e))
        }
    }
}

/// Parses and checks the callback query (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207 §2.4).
pub fn parse_callback(query: &str, expected: &ExpectedCallback) -> Result<Callback, Rejected> {
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
    if !constant_time_eq(state.as_deref().unwrap_or("").as_bytes(), expected.state.as_bytes()) {
        return Err(Rejected::WrongState);
    }
    match iss {
        Some(iss) if !crate::url_policy::same_uri(&iss, &expected.issuer) => {
            return Err(Rejected::Failed(CallbackError::IssuerMismatch(crate::redact::scrub(&iss, 200))));
        }
        None if expected.issuer_required => return Err(Rejected::Failed(CallbackError::IssuerMissing)),
        _ => {}
    }
    if let Some(error) = error {
        return Err(Rejected::Failed(CallbackError::Refused { error, description }));
    }
    match code {
        Some(code) if !code.is_empty() => Ok(Callback { code }),
        _ => Err(Rejected::Failed(CallbackError::MissingCode)),
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

    const ISS: &str = "https://idp.example.com";

    fn expected(state: &str, issuer_required: bool) -> ExpectedCallback {
        ExpectedCallback { state: state.into(), issuer: ISS.into(), issuer_required }
    }

    fn failed(r: Result<Callback, Rejected>) -> CallbackError {
        match r {
            Err(Rejected::Failed(e)) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn callback_checks_state_then_issuer_then_error_then_code() {
        let e = expected("s1", false);
        assert_eq!(parse_callback("code=abc&state=s1", &e).unwrap().code, "abc");
        assert!(matches!(parse_callback("code=abc&state=s2", &e), Err(Rejected::WrongState)));
        assert!(matches!(parse_callback("code=abc", &e), Err(Rejected::WrongState)));
        assert!(matches!(parse_callback("error=access_denied", &e), Err(Rejected::WrongState)));
        assert!(matches!(
            failed(parse_callback("code=abc&state=s1&iss=https%3A%2F%2Fevil.example", &e)),
            CallbackError::IssuerMismatch(_)
        ));
        assert!(parse_callback("code=abc&state=s1&iss=https%3A%2F%2Fidp.example.com", &e).is_ok());
        assert!(matches!(
            failed(parse_callback("error=access_denied&error_description=no&state=s1", &e)),
            CallbackError::Refused { ref error, .. } if error == "access_denied"
        ));
        assert!(matches!(failed(parse_callback("state=s1", &e)), CallbackError::MissingCode));
    }

    /// Item 13 of issue 14: with `authorization_response_iss_parameter_supported: true` a
    /// response without `iss` was accepted.
    #[test]
    fn a_response_without_iss_is_refused_when_the_idp_promises_one() {
        let e = expected("s1", true);
        let err = failed(parse_callback("code=abc&state=s1", &e));
        assert!(matches!(err, CallbackError::IssuerMissing));
        assert_eq!(err.code(), "issuer-mismatch");
        assert!(err.to_string().contains("no `iss`"), "{err}");
        assert!(parse_callback("code=abc&state=s1&iss=https%3A%2F%2Fidp.example.com", &e).is_ok());
        // An IdP that does not promise `iss` may leave it out.
        assert!(parse_callback("code=abc&state=s1", &expected("s1", false)).is_ok());
    }

    #[test]
    fn callback_debug_hides_the_code_and_the_state() {
        let cb = parse_callback("code=secret-code-canary&state=s", &expected("s", false)).unwrap();
        assert!(!format!("{cb:?}").contains("secret-code-canary"));
        assert!(!format!("{:?}", expected("state-canary", false)).contains("state-canary"));
    }

    fn port_of(l: &LoopbackListener) -> u16 {
        l.port
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
        let waiter = tokio::spawn(async move { l.wait(expected("st", false), Duration::from_secs(5)).await });
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        let page = get(port, "/callback?code=c0de&state=st").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("You are signed in"));
        assert!(!page.contains("c0de"));
        assert_eq!(waiter.await.unwrap().unwrap().code, "c0de");
    }

    /// Item 9 of issue 14: one forged `/callback?code=x&state=forged` from any local process
    /// ended the sign-in with `state-mismatch`, and the real browser then found a closed port.
    #[tokio::test]
    async fn a_forged_callback_gets_an_error_page_and_the_real_one_still_signs_in() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = port_of(&l);
        let waiter = tokio::spawn(async move { l.wait(expected("expected", false), Duration::from_secs(10)).await });
        for forged in ["/callback?code=x&state=forged", "/callback?code=x", "/callback?error=access_denied&state=no"] {
            let page = get(port, forged).await;
            assert!(page.starts_with("HTTP/1.1 400"), "{page}");
            assert!(page.contains("does not belong to the sign-in EMA started"), "{page}");
        }
        assert!(!waiter.is_finished(), "a forged response ended the wait");
        let page = get(port, "/callback?code=genuine&state=expected").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert_eq!(waiter.await.unwrap().unwrap().code, "genuine");
    }

    #[tokio::test(start_paused = true)]
    async fn only_forged_responses_end_as_state_mismatch_at_the_deadline() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = port_of(&l);
        let waiter = tokio::spawn(async move { l.wait(expected("expected", false), Duration::from_secs(120)).await });
        assert!(get(port, "/callback?code=x&state=forged").await.starts_with("HTTP/1.1 400"));
        let err = waiter.await.unwrap().unwrap_err();
        assert!(matches!(err, CallbackError::StateMismatch { refused: 1, waited: 120 }), "{err:?}");
        assert_eq!(err.code(), "state-mismatch");
        assert!(err.to_string().contains("1 response(s) with the wrong `state` were refused"), "{err}");
    }

    /// Item 9 of issue 14: connections were served one at a time with 5 s each, so silent
    /// clients delayed the real browser, and kept the wait going past its timeout.
    #[tokio::test(start_paused = true)]
    async fn silent_connections_neither_block_the_browser_nor_stretch_the_deadline() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = port_of(&l);
        let started = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move { l.wait(expected("s", false), Duration::from_secs(10)).await });
        let mut silent = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 8 {
            silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // Served concurrently: the silent ones time out together after the connection deadline,
        // then the browser's request is answered at once.
        let page = get(port, "/callback?code=ok&state=s").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert_eq!(waiter.await.unwrap().unwrap().code, "ok");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

        // Clients that keep connecting do not keep the wait alive past its deadline.
        let l = LoopbackListener::bind().await.unwrap();
        let port = port_of(&l);
        let started = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move { l.wait(expected("s", false), Duration::from_secs(10)).await });
        let pester = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
                    held.push(s);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let err = waiter.await.unwrap().unwrap_err();
        pester.abort();
        assert!(matches!(err, CallbackError::Timeout(10)), "{err:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11), "one deadline: {waited:?}");
        drop(silent);
    }

    #[tokio::test]
    async fn times_out() {
        let l = LoopbackListener::bind().await.unwrap();
        let r = l.wait(expected("s", false), Duration::from_millis(100)).await;
        assert!(matches!(r, Err(CallbackError::Timeout(_))));
    }

    #[tokio::test]
    async fn oversized_request_is_dropped_and_the_wait_goes_on() {
        let l = LoopbackListener::bind().await.unwrap();
        let port = port_of(&l);
        let waiter = tokio::spawn(async move { l.wait(expected("s", false), Duration::from_secs(5)).await });
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = s.write_all(&vec![b'A'; 40_000]).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
        assert!(get(port, "/callback?code=ok&state=s").await.starts_with("HTTP/1.1 200"));
        assert_eq!(waiter.await.unwrap().unwrap().code, "ok");
    }
}
