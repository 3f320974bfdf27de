//! TLS end to end: the product's transport (`HttpTransport`: reqwest on rustls with ring, server
//! certificates checked against the OS trust store by rustls-platform-verifier) runs a connector's
//! discovery against local servers whose certificates come from a throwaway CA made here (rcgen).
//!
//! It proves that a CA the system trusts is trusted (an enterprise's TLS-inspection root), that a
//! certificate from any other CA, or for another name, is refused, and that each refusal and a
//! server speaking plain HTTP on an https URL are reported in words `ema doctor` names as TLS.
//!
//! The trust store is read when the client is built: on Linux the system bundle, or instead
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` when set, as with OpenSSL. A test cannot set its own process's
//! environment soundly, so every client runs in a child process: this test binary again, running
//! the same test with the URL and the trust in its environment (selected by an environment variable
//! read here, in the test, not in product code). The child prints one result line; the parent,
//! which serves the https, checks it.

#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ema_core::diagnostics::trace::TracingTransport;
use ema_core::discovery::discover;
use ema_core::http::HttpTransport;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The child's role: the MCP URL to discover.
const CHILD_URL: &str = "EMA_TEST_TLS_CHILD_URL";
const RESULT: &str = "tls-trust-result ";

// ---------------------------------------------------------------------------------------------
// The child: one discovery through the product's transport, traced as `ema doctor` traces it.

async fn child(mcp_url: &str) {
    let result = match HttpTransport::new(Duration::from_secs(10)) {
        Err(e) => json!({ "built": false, "error": e.to_string() }),
        Ok(transport) => {
            let traced = TracingTransport::new(transport);
            let found = discover(&traced, &Url::parse(mcp_url).unwrap(), None).await;
            let steps = traced.take();
            json!({
                "built": true,
                "token_endpoint": found.as_ref().ok().map(|e| e.token_endpoint.to_string()),
                "error": found.as_ref().err().map(ToString::to_string),
                "statuses": steps.iter().map(|s| s.http_status).collect::<Vec<_>>(),
                "transport_errors": steps.iter().filter_map(|s| s.transport_error.clone()).collect::<Vec<_>>(),
                "network_failures": steps.iter().filter_map(|s| s.network_failure).collect::<Vec<_>>(),
            })
        }
    };
    println!("{RESULT}{result}");
}

fn child_role() -> Option<String> {
    std::env::var(CHILD_URL).ok()
}

/// Where the child's trust store comes from.
enum Trust<'a> {
    /// `SSL_CERT_FILE` (and no `SSL_CERT_DIR`).
    File(&'a Path),
    /// The system's own store: neither variable set.
    System,
}

/// Runs `test` (the caller's own name) as the child against `mcp_url`; returns its result.
async fn client(test: &str, mcp_url: &str, trust: Trust<'_>) -> Value {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, mcp_url)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .kill_on_drop(true);
    if let Trust::File(path) = trust {
        cmd.env("SSL_CERT_FILE", path);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(RESULT).map(|(_, json)| json))
        .unwrap_or_else(|| panic!("the child printed no result: {stdout}"));
    eprintln!("{mcp_url}: {line}");
    serde_json::from_str(line).unwrap()
}

/// The error `ema doctor` would classify: the last transport error of the trace.
fn last_transport_error(result: &Value) -> String {
    let errors = result["transport_errors"].as_array().unwrap_or_else(|| panic!("no trace: {result:#}"));
    errors.last().and_then(Value::as_str).unwrap_or_else(|| panic!("no transport error: {result:#}")).to_string()
}

/// `ema doctor` gives its advice from the kind the transport classified the failure as
/// (`network_cause`): here it must be TLS.
fn assert_classified_as_tls(result: &Value) {
    let kinds = result["network_failures"].as_array().unwrap_or_else(|| panic!("no trace: {result:#}"));
    assert_eq!(kinds.last(), Some(&json!("tls")), "not classified as a TLS failure: {result:#}");
}

// ---------------------------------------------------------------------------------------------
// A throwaway PKI.

struct Pki {
    _dir: tempfile::TempDir,
    /// The CA that signed the servers' certificates, as PEM.
    ca_pem: PathBuf,
    /// Another CA, which signed nothing here.
    other_ca_pem: PathBuf,
    /// A file with no certificate in it.
    empty: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, issuer) = new_ca("EMA test TLS-inspection root");
        let (other_ca, _) = new_ca("EMA test unrelated root");
        let write = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        Pki {
            ca_pem: write("ca.pem", &ca),
            other_ca_pem: write("other-ca.pem", &other_ca),
            empty: write("empty.pem", ""),
            _dir: dir,
            issuer,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by the CA.
    fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal MCP server and authorization server: the three documents of a connector's discovery
// (a 401 pointing to RFC 9728 metadata, that metadata, RFC 8414 metadata), over TLS or plain HTTP.

struct Server {
    addr: SocketAddr,
    /// HTTP requests answered (a refused TLS handshake never gets this far).
    requests: Arc<AtomicUsize>,
}

impl Server {
    async fn start(tls: Option<rustls::ServerConfig>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    match acceptor {
                        // A refused handshake ends here, on the server's side too.
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                answer(tls, scheme, &counter).await;
                            }
                        }
                        None => answer(tcp, scheme, &counter).await,
                    }
                });
            }
        });
        Server { addr, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request and answers it, then closes the connection.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, scheme: &str, counter: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        // Not HTTP (a TLS ClientHello sent to the plain server starts with 0x16): what an HTTP
        // server such as hyper answers at once, then close.
        if !buf[0].is_ascii_uppercase() || buf.len() > 64 * 1024 {
            let _ =
                stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut host = String::new();
    let mut length = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "host" => host = v.trim().to_string(),
                "content-length" => length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let base = format!("{scheme}://{host}");
    let (status, extra, body) = match (method, path) {
        ("POST", "/mcp") => (
            "401 Unauthorized",
            format!(
                "www-authenticate: Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\"\r\n"
            ),
            json!({"error": "invalid_token"}),
        ),
        ("GET", "/.well-known/oauth-protected-resource/mcp") => {
            ("200 OK", String::new(), json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}))
        }
        ("GET", "/.well-known/oauth-authorization-server") => (
            "200 OK",
            String::new(),
            json!({
                "issuer": base,
                "token_endpoint": format!("{base}/token"),
                "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }),
        ),
        _ => ("404 Not Found", String::new(), json!({})),
    };
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_the_system_trusts_is_trusted_by_name_and_by_address() {
    if let Some(url) = child_role() {
        return child(&url).await;
    }
    let test = "a_ca_the_system_trusts_is_trusted_by_name_and_by_address";
    let pki = Pki::new();
    let server = Server::start(Some(pki.server_config(&["localhost", "127.0.0.1"]))).await;
    let port = server.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let result = client(test, &format!("https://{host}:{port}/mcp"), Trust::File(&pki.ca_pem)).await;
        assert_eq!(result["error"], Value::Null, "{result:#}");
        assert_eq!(result["token_endpoint"], format!("https://{host}:{port}/token"), "{result:#}");
        // The 401 with its hint, then both metadata documents: every leg went over TLS.
        assert_eq!(result["statuses"], json!([401, 200, 200]), "{result:#}");
    }
    assert_eq!(server.requests(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_in_words_doctor_calls_tls() {
    if let Some(url) = child_role() {
        return child(&url).await;
    }
    let test = "a_certificate_from_another_ca_is_refused_in_words_doctor_calls_tls";
    let pki = Pki::new();
    let server = Server::start(Some(pki.server_config(&["localhost", "127.0.0.1"]))).await;
    let url = format!("https://localhost:{}/mcp", server.addr.port());
    // Trusting another CA only; then the system's own store, which has never seen this CA.
    for trust in [Trust::File(&pki.other_ca_pem), Trust::System] {
        let result = client(test, &url, trust).await;
        assert_eq!(result["token_endpoint"], Value::Null, "{result:#}");
        let error = last_transport_error(&result);
        assert!(error.contains("UnknownIssuer"), "not refused for its issuer: {error}");
        assert_classified_as_tls(&result);
    }
    assert_eq!(server.requests(), 0, "a request went over an untrusted connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_for_another_name_is_refused() {
    if let Some(url) = child_role() {
        return child(&url).await;
    }
    let test = "a_trusted_certificate_for_another_name_is_refused";
    let pki = Pki::new();
    let server = Server::start(Some(pki.server_config(&["mcp.example.com"]))).await;
    let result = client(test, &format!("https://localhost:{}/mcp", server.addr.port()), Trust::File(&pki.ca_pem)).await;
    assert_eq!(result["token_endpoint"], Value::Null, "{result:#}");
    let error = last_transport_error(&result);
    assert!(error.contains("not valid for name"), "not refused for its name: {error}");
    assert_classified_as_tls(&result);
    assert_eq!(server.requests(), 0, "a request went over a connection to the wrong name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_on_an_https_url_is_a_tls_failure() {
    if let Some(url) = child_role() {
        return child(&url).await;
    }
    let test = "a_plain_http_server_on_an_https_url_is_a_tls_failure";
    let pki = Pki::new();
    let server = Server::start(None).await;
    let port = server.addr.port();
    // The same server on the scheme it speaks works (the positive control)...
    let result = client(test, &format!("http://127.0.0.1:{port}/mcp"), Trust::File(&pki.ca_pem)).await;
    assert_eq!(result["statuses"], json!([401, 200, 200]), "{result:#}");
    // ...and on https the handshake meets an HTTP answer.
    let result = client(test, &format!("https://127.0.0.1:{port}/mcp"), Trust::File(&pki.ca_pem)).await;
    assert_eq!(result["token_endpoint"], Value::Null, "{result:#}");
    let error = last_transport_error(&result);
    assert!(error.starts_with("unreachable: "), "{error}");
    assert_classified_as_tls(&result);
    assert_eq!(server.requests(), 3, "only the plain-http discovery was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_trusted_ca_at_all_loopback_http_works_and_https_is_refused() {
    if let Some(url) = child_role() {
        return child(&url).await;
    }
    // A system with no CA certificate (a bare container): the transport is still built, as it was
    // with OpenSSL, so the sandbox org on loopback http works; every https server is refused.
    let test = "with_no_trusted_ca_at_all_loopback_http_works_and_https_is_refused";
    let pki = Pki::new();
    let plain = Server::start(None).await;
    let result = client(test, &format!("http://127.0.0.1:{}/mcp", plain.addr.port()), Trust::File(&pki.empty)).await;
    assert_eq!(result["built"], true, "{result:#}");
    assert_eq!(result["statuses"], json!([401, 200, 200]), "{result:#}");
    let tls = Server::start(Some(pki.server_config(&["localhost"]))).await;
    let result = client(test, &format!("https://localhost:{}/mcp", tls.addr.port()), Trust::File(&pki.empty)).await;
    let error = last_transport_error(&result);
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert_classified_as_tls(&result);
    assert_eq!(tls.requests(), 0);
}
