//! `reach-*` checks: can this computer reach each endpoint the app talks to, step by step?
//!
//! Why separate from the connector legs: when a leg fails with "cannot connect", the help desk's
//! next question is always which layer broke. So for every origin (scheme, host, port) in the
//! policy and in the trace, the check resolves the name (DNS), opens a TCP connection to the
//! first address that answers, and for `https` does the TLS handshake and reads one HTTP answer
//! through the product's own HTTP client, so the trust store, TLS versions and proxy are the ones
//! the legs use. Any HTTP status counts: the question is whether the channel works, not the page.
//!
//! When a proxy is set (`HTTPS_PROXY`, `ALL_PROXY`), failing direct DNS or TCP is expected, so
//! those become warnings and the TLS step (which goes through the proxy) decides.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use url::Url;

use super::check::{Check, Outcome};
use super::trace::Step;
use crate::config::Policy;
use crate::http::Transport;

/// Longest wait for each of DNS, TCP and TLS.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// One place to reach: `https://idp.example.com:443`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: url.port_or_known_default()?,
        })
    }

    /// `reach-https-idp.example.com-443`.
    pub fn check_name(&self) -> String {
        format!("reach-{}-{}-{}", self.scheme, self.host, self.port)
    }

    fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}/", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}/", self.scheme, self.host, self.port)
        }
    }
}

/// Every origin the policy names (the IdP, each MCP server, pinned authorization servers) and
/// every one the trace went to (token endpoints and keys found by discovery), each once.
pub fn origins(policy: &Policy, steps: &[Step]) -> Vec<Origin> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let configured = std::iter::once(policy.idp.issuer.clone()).chain(
        policy.connectors.iter().flat_map(|c| std::iter::once(c.mcp_url.clone()).chain(c.authorization_server.clone())),
    );
    let traced = steps.iter().filter_map(|s| Url::parse(&s.endpoint).ok());
    for url in configured.chain(traced) {
        if let Some(o) = Origin::of(&url)
            && matches!(o.scheme.as_str(), "http" | "https")
            && seen.insert(o.clone())
        {
            out.push(o);
        }
    }
    out
}

/// Runs the check for every origin at once; results in the order of `origins`.
pub async fn reach_all(origins: &[Origin], http: &dyn Transport) -> Vec<Check> {
    let proxy = proxy_in_use();
    futures::future::join_all(origins.iter().map(|o| reach(o, http, proxy.as_deref()))).await
}

/// The proxy variable the HTTP client will honour, if any (reqwest reads these).
fn proxy_in_use() -> Option<String> {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
        .map(str::to_string)
}

/// DNS, then TCP, then (https) TLS and one HTTP answer, for one origin.
pub async fn reach(origin: &Origin, http: &dyn Transport, proxy: Option<&str>) -> Check {
    let started = Instant::now();
    let name = origin.check_name();
    let host = &origin.host;
    let mut said = Vec::new();
    let done = |outcome, said: Vec<String>, fix: Option<String>| Check {
        name: name.clone(),
        outcome,
        summary: said.join("; "),
        fix,
        fix_action: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        hints: Vec::new(),
    };
    let network_fix = |what: &str| {
        Some(format!(
            "check the network, VPN or proxy settings ({what}); if other people are affected, tell the help desk"
        ))
    };
    let soft = if proxy.is_some() { Outcome::Warn } else { Outcome::Fail };

    // DNS (RFC 1035): the system resolver, as the HTTP client uses it.
    let t = Instant::now();
    let resolved = tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host.as_str(), origin.port))).await;
    let addresses: Vec<std::net::SocketAddr> = match resolved {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            said.push(format!("DNS: {host} could not be resolved ({e})"));
            note_proxy(&mut said, proxy);
            return done(soft, said, network_fix(&format!("`getent hosts {host}` shows what this computer resolves")));
        }
        Err(_) => {
            said.push(format!("DNS: no answer for {host} within {} s", STEP_TIMEOUT.as_secs()));
            note_proxy(&mut said, proxy);
            return done(soft, said, network_fix("the DNS server does not answer"));
        }
    };
    if addresses.is_empty() {
        said.push(format!("DNS: {host} has no address"));
        return done(soft, said, network_fix(&format!("`getent hosts {host}` shows what this computer resolves")));
    }
    said.push(format!("DNS: {} ({} ms)", summary_of(&addresses), t.elapsed().as_millis()));

    // TCP: the first address that accepts, as happy-eyeballs clients end up doing.
    let t = Instant::now();
    let mut last_error = String::new();
    let mut connected = None;
    for addr in &addresses {
        match tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => {
                connected = Some(*addr);
                break;
            }
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => last_error = format!("{addr}: no answer within {} s", STEP_TIMEOUT.as_secs()),
        }
    }
    match connected {
        Some(addr) => said.push(format!("TCP: connected to {addr} ({} ms)", t.elapsed().as_millis())),
        None => {
            said.push(format!("TCP: cannot connect to port {} ({last_error})", origin.port));
            note_proxy(&mut said, proxy);
            return done(soft, said, network_fix("a firewall or the server itself refuses the connection"));
        }
    }

    // TLS (RFC 8446) and one HTTP answer, through the product's client.
    if origin.scheme != "https" {
        said.push("TLS: not used (plain http, allowed on loopback only)".into());
        return done(Outcome::Pass, said, None);
    }
    let t = Instant::now();
    let request = match http::Request::builder().uri(origin.url()).body(Vec::new()) {
        Ok(r) => r,
        Err(_) => return done(Outcome::Fail, vec![format!("{} is not a valid URL", origin.url())], None),
    };
    match http.send(request).await {
        Ok(response) => {
            said.push(format!(
                "TLS: handshake done and the server answered HTTP {} ({} ms)",
                response.status().as_u16(),
                t.elapsed().as_millis()
            ));
            done(Outcome::Pass, said, None)
        }
        Err(e) => {
            said.push(format!("TLS: the secure connection failed ({})", crate::redact::scrub(&e.to_string(), 300)));
            done(
                Outcome::Fail,
                said,
                Some(
                    "a certificate, TLS version or TLS-intercepting proxy problem: check the date and time, and ask \
                     the help desk whether a security proxy needs its certificate installed"
                        .into(),
                ),
            )
        }
    }
}

fn note_proxy(said: &mut Vec<String>, proxy: Option<&str>) {
    if let Some(var) = proxy {
        said.push(format!("a proxy is set ({var}), so direct connections may be blocked on purpose"));
    }
}

/// `127.0.0.1` or `2 addresses (192.0.2.1, 2001:db8::1)`.
fn summary_of(addresses: &[std::net::SocketAddr]) -> String {
    let ips: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect::<BTreeSet<_>>().into_iter().collect();
    match ips.as_slice() {
        [one] => one.clone(),
        many => format!("{} addresses ({})", many.len(), many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeTransport;

    fn origin(url: &str) -> Origin {
        Origin::of(&Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn origins_are_named_by_scheme_host_and_port() {
        assert_eq!(origin("https://idp.example.com/oauth2").check_name(), "reach-https-idp.example.com-443");
        assert_eq!(origin("http://127.0.0.1:8080/idp").check_name(), "reach-http-127.0.0.1-8080");
        assert_eq!(origin("https://[::1]:9443/").url(), "https://[::1]:9443/");
    }

    #[tokio::test]
    async fn an_unresolvable_name_fails_at_dns_and_goes_no_further() {
        let transport = FakeTransport::default();
        let c = reach(&origin("https://mcp.does-not-exist.invalid/mcp"), &transport, None).await;
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(c.summary.starts_with("DNS: mcp.does-not-exist.invalid could not be resolved"), "{c:?}");
        assert!(!c.summary.contains("TCP"), "{c:?}");
        assert!(c.fix.unwrap().contains("getent hosts mcp.does-not-exist.invalid"));
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_tcp_and_a_proxy_makes_it_a_warning() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let transport = FakeTransport::default();
        let o = origin(&format!("https://127.0.0.1:{port}/"));
        let c = reach(&o, &transport, None).await;
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(c.summary.contains("DNS: 127.0.0.1") && c.summary.contains("TCP: cannot connect"), "{c:?}");
        let c = reach(&o, &transport, Some("HTTPS_PROXY")).await;
        assert_eq!(c.outcome, Outcome::Warn, "{c:?}");
        assert!(c.summary.contains("a proxy is set (HTTPS_PROXY)"), "{c:?}");
    }

    #[tokio::test]
    async fn plain_http_on_loopback_passes_without_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = reach(&origin(&format!("http://127.0.0.1:{port}/")), &FakeTransport::default(), None).await;
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        assert!(c.summary.contains("TCP: connected to 127.0.0.1") && c.summary.contains("TLS: not used"), "{c:?}");
    }

    #[tokio::test]
    async fn https_needs_the_handshake_and_any_http_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let o = origin(&format!("https://127.0.0.1:{port}/mcp"));
        let answers = FakeTransport::default();
        answers.json(&format!("https://127.0.0.1:{port}/"), 404, "{}");
        let c = reach(&o, &answers, None).await;
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        assert!(c.summary.contains("the server answered HTTP 404"), "{c:?}");
        let c = reach(&o, &FakeTransport::default(), None).await;
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(c.summary.contains("TLS: the secure connection failed"), "{c:?}");
        assert!(c.fix.unwrap().contains("certificate"));
    }
}
