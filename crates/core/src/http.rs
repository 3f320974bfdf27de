//! The one HTTP client every protocol leg uses, built for OAuth.
//!
//! Why a wrapper: following openidconnect's advice and RFC 9700 §4.11, token and metadata
//! requests must not follow redirects (an open redirect turns into SSRF or a leaked code),
//! must time out (a slow IdP must not hang the tray), must cap response bodies (a hostile
//! metadata document must not eat memory), and must refuse plain http except on loopback.
//! The [`Transport`] trait is the seam where unit tests inject a fake that asserts the exact
//! request (oauth2-rs's `tests.rs` style); the product uses [`HttpTransport`].

use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use url::Url;

pub use crate::status::TransportCode;
/// Where it always was for callers; it lives with the URL rules (`url_policy`), which need it too.
pub use crate::url_policy::display_url;
use crate::url_policy::{UrlPolicyError, check_endpoint_url};

/// A request as sent on the wire (the same type openidconnect uses).
pub type HttpRequest = Request<Vec<u8>>;
/// A response with its body already read (and capped).
pub type HttpResponse = Response<Vec<u8>>;

/// The largest response body accepted: metadata, JWKS and token responses are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a request got no usable HTTP response. Never contains a request or response body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("refused to contact {0}")]
    UrlRefused(#[from] UrlPolicyError),
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, kind: NetworkFailure, reason: String },
    #[error("{url} sent a response larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("request to {url} failed: {reason}")]
    Other { url: String, reason: String },
    /// The server answered 5xx without an OAuth error body: it is down or overloaded.
    #[error("{url} is unavailable (HTTP {status})")]
    ServerUnavailable { url: String, status: u16 },
}

/// Which network failure kept a request from an answer, as the transport knew it from the
/// error's type when it failed ([`classify`]). Diagnostics give their advice from it; nothing
/// reads the English message back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFailure {
    /// The host name did not resolve (DNS).
    Dns,
    /// The TLS handshake failed: a certificate, the TLS version, a TLS-intercepting proxy, or a
    /// server that does not speak TLS.
    Tls,
    /// Nothing accepts connections at the address (connection refused).
    Refused,
    /// No answer in time.
    Timeout,
    /// Another failure to connect.
    Other,
}

impl TransportError {
    /// The network failure behind this error, when it is one.
    pub fn network_failure(&self) -> Option<NetworkFailure> {
        match self {
            TransportError::Connect { kind, .. } => Some(*kind),
            TransportError::Timeout { .. } => Some(NetworkFailure::Timeout),
            _ => None,
        }
    }

    /// A stable code for the UI and diagnostics.
    pub fn code(&self) -> TransportCode {
        match self {
            TransportError::UrlRefused(_) => TransportCode::UrlRefused,
            TransportError::Timeout { .. } => TransportCode::Timeout,
            TransportError::Connect { .. } => TransportCode::Unreachable,
            TransportError::TooLarge { .. } => TransportCode::ResponseTooLarge,
            TransportError::Other { .. } => TransportCode::TransportFailed,
            TransportError::ServerUnavailable { .. } => TransportCode::ServerUnavailable,
        }
    }
}

/// Sends one HTTP request and returns the whole (capped) response. Implementations never
/// follow redirects: a 3xx is returned as is.
pub trait Transport: Send + Sync + std::fmt::Debug {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// The product's transport: reqwest with redirects off, timeouts, capped bodies.
///
/// Requests go through the system's proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
/// `NO_PROXY`; the system settings on macOS and Windows), except those to a loopback address:
/// these are plain http by design (the sandbox org, a local IdP, RFC 8252 loopback), carry client
/// secrets and tokens, and must never leave the machine (issue 14 item 10: with `HTTP_PROXY` set
/// they all went to the proxy). reqwest has no "bypass loopback" setting that keeps the system's
/// proxy configuration, so a second client without any proxy serves loopback destinations.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    /// For every destination but loopback: the system's proxy applies.
    client: reqwest::Client,
    /// For loopback destinations: never a proxy.
    direct: reqwest::Client,
    timeout: Duration,
}

impl HttpTransport {
    /// A transport whose every request (connect, send, read the whole body) ends within `timeout`.
    ///
    /// TLS is rustls with the ring provider (Cargo.toml says why), and server certificates are
    /// checked against the operating system's trust store, where enterprises put their roots
    /// (rustls-platform-verifier: on Linux the system bundle, or instead `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` when set, as with OpenSSL; the keychain on macOS; the Windows certificate
    /// store).
    pub fn new(timeout: Duration) -> Result<Self, TransportError> {
        install_tls_provider();
        let with_proxy = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .timeout(timeout)
                .user_agent(concat!("ema/", env!("CARGO_PKG_VERSION")))
        };
        let client = build_client(with_proxy)?;
        let direct = build_client(|| with_proxy().no_proxy())?;
        Ok(HttpTransport { client, direct, timeout })
    }

    /// The client for requests to `url`, for the MCP probe (same redirect, timeout, TLS and
    /// proxy rules as [`Transport::send`]).
    pub fn client_for(&self, url: &Url) -> &reqwest::Client {
        if crate::url_policy::is_loopback(url) { &self.direct } else { &self.client }
    }

    async fn send_inner(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = Url::parse(&request.uri().to_string())
            .map_err(|e| TransportError::Other { url: request.uri().to_string(), reason: e.to_string() })?;
        check_endpoint_url(&url)?;
        let shown = display_url(&url);
        let req = reqwest::Request::try_from(request)
            .map_err(|e| TransportError::Other { url: shown.clone(), reason: e.to_string() })?;
        let mut resp = self.client_for(&url).execute(req).await.map_err(|e| self.classify(&shown, e))?;
        let mut builder = Response::builder().status(resp.status()).version(resp.version());
        for (k, v) in resp.headers() {
            builder = builder.header(k, v);
        }
        if let Some(len) = resp.content_length()
            && len > MAX_RESPONSE_BYTES as u64
        {
            return Err(TransportError::TooLarge { url: shown, limit: MAX_RESPONSE_BYTES });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(&shown, e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(TransportError::TooLarge { url: shown, limit: MAX_RESPONSE_BYTES });
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| TransportError::Other { url: shown, reason: e.to_string() })
    }

    fn classify(&self, url: &str, e: reqwest::Error) -> TransportError {
        classify(url, self.timeout, &e)
    }
}

/// Builds a client from `builder`. The platform verifier refuses to be built when the system has
/// no CA certificate at all (a bare container); OpenSSL built the client and then failed each https
/// handshake. Do as it did: loopback http (the sandbox org) keeps working, and every https
/// connection is refused with a certificate error that says why.
fn build_client(builder: impl Fn() -> reqwest::ClientBuilder) -> Result<reqwest::Client, TransportError> {
    match builder().build() {
        Ok(client) => Ok(client),
        Err(e) => match builder().tls_certs_only(std::iter::empty()).build() {
            Ok(client) => {
                tracing::warn!("no trusted CA certificate ({}); every https connection will fail", root_cause(&e));
                Ok(client)
            }
            Err(_) => Err(TransportError::Other { url: String::new(), reason: root_cause(&e) }),
        },
    }
}

/// A reqwest error as a [`TransportError`] that says what went wrong in the user's words: a
/// timeout, a TLS failure (named as such), a connection that failed, or something else. `url` is
/// shown as given (callers pass [`display_url`]); `timeout` is the limit that was set.
pub fn classify(url: &str, timeout: Duration, e: &reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout { url: url.to_string(), seconds: timeout.as_secs() }
    } else if let Some(tls) = tls_cause(e) {
        // rustls's own words ("invalid peer certificate: UnknownIssuer", "received corrupt
        // message of type InvalidContentType" from a server that does not speak TLS) do not
        // all say TLS; the user, the help desk and `ema doctor` need to know it was TLS.
        TransportError::Connect {
            url: url.to_string(),
            kind: NetworkFailure::Tls,
            reason: format!("TLS handshake failed: {tls}"),
        }
    } else if e.is_connect() {
        TransportError::Connect { url: url.to_string(), kind: connect_failure(e), reason: root_cause(e) }
    } else {
        TransportError::Other { url: url.to_string(), reason: root_cause(e) }
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(self.send_inner(request))
    }
}

/// Installs ring as the process's rustls provider (a no-op once one is installed). reqwest is
/// built without a provider of its own (Cargo.toml says why), so anything in the process that
/// builds a reqwest client, such as a test, calls this first; [`HttpTransport::new`] does.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What kept a connection from being made, from the errors in `e`'s chain: an `io::Error` of kind
/// `ConnectionRefused`, or hyper-util's connector error for the resolver (whose type is private;
/// its message is "dns error", set where the lookup failed).
fn connect_failure(e: &(dyn std::error::Error + 'static)) -> NetworkFailure {
    for err in chain(e) {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return NetworkFailure::Refused;
        }
        if err.to_string().starts_with("dns error") {
            return NetworkFailure::Dns;
        }
    }
    NetworkFailure::Other
}

/// `e` and its causes. An `io::Error` is looked into with `get_ref`: its `source()` skips the
/// error it carries (tokio-rustls wraps rustls's error in one, hyper's connector may wrap that
/// in another).
fn chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| match err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
        Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
        None => err.source(),
    })
}

/// The TLS error behind `e`, if there is one.
fn tls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    chain(e).find_map(|err| err.downcast_ref::<rustls::Error>())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    // reqwest's messages name the URL with its query; the innermost cause does not.
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn failure_of(url: &str) -> TransportError {
        let transport = HttpTransport::new(Duration::from_secs(30)).unwrap();
        let request = http::Request::get(url).body(Vec::new()).unwrap();
        transport.send(request).await.expect_err("no answer")
    }

    #[tokio::test]
    async fn a_closed_port_is_classified_as_refused() {
        // A port just released by the OS: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = failure_of(&format!("http://127.0.0.1:{port}/mcp")).await;
        assert_eq!(e.network_failure(), Some(NetworkFailure::Refused), "{e}");
        assert_eq!(e.code(), "unreachable");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_classified_as_dns() {
        // Through a proxy the name is the proxy's to resolve: nothing to classify here.
        if ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"].iter().any(|v| std::env::var_os(v).is_some()) {
            eprintln!("skipped: a proxy is configured");
            return;
        }
        // `.invalid` never resolves (RFC 6761 §6.4).
        let e = failure_of("https://ema-test.invalid/mcp").await;
        assert_eq!(e.network_failure(), Some(NetworkFailure::Dns), "{e}");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_tls_is_classified_as_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            if let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let e = failure_of(&format!("https://127.0.0.1:{port}/mcp")).await;
        assert_eq!(e.network_failure(), Some(NetworkFailure::Tls), "{e}");
    }
}
