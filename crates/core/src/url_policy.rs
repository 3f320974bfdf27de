//! Which URLs the engine will talk to.
//!
//! RFC 9700 §2.6 and RFC 8252 §8.3: every OAuth endpoint is https, except loopback addresses,
//! which never leave the machine (the sandbox org and tests use them). Userinfo and fragments
//! in an endpoint URL are refused too: they are never legitimate there and are classic
//! confusion vectors.

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlPolicyError {
    #[error("`{0}` is not https (only loopback addresses may use http)")]
    NotHttps(String),
    #[error("`{0}` carries a user name or password")]
    HasUserinfo(String),
    #[error("`{0}` has a #fragment")]
    HasFragment(String),
    #[error("`{0}` has no host")]
    NoHost(String),
}

impl UrlPolicyError {
    /// What the admin should do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            UrlPolicyError::NotHttps(_) => "use the https:// URL of the server",
            UrlPolicyError::HasUserinfo(_) => "remove the user:password@ part; credentials belong in client_auth",
            UrlPolicyError::HasFragment(_) => "remove the #fragment",
            UrlPolicyError::NoHost(_) => "write an absolute URL with a host name",
        }
    }
}

/// True for 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks an endpoint URL against the rules above.
pub fn check_endpoint_url(url: &Url) -> Result<(), UrlPolicyError> {
    // Shown without user info, query or fragment: any of them may carry a secret.
    let shown = display_url(url);
    if url.host().is_none() {
        return Err(UrlPolicyError::NoHost(shown));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlPolicyError::HasUserinfo(shown));
    }
    if url.fragment().is_some() {
        return Err(UrlPolicyError::HasFragment(shown));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(UrlPolicyError::NotHttps(shown)),
    }
}

/// Compares two URIs the way RFC 9728 §3.3 and RFC 8414 §3.3 intend (identical) after URL
/// normalisation (case of scheme and host, default port), tolerating one trailing slash
/// (`https://a.b` == `https://a.b/`, `/mcp` == `/mcp/`): URL parsers add one to empty paths and
/// the MCP conformance suite accepts both forms. Nothing looser.
pub fn same_uri(a: &str, b: &str) -> bool {
    fn canon(s: &str) -> String {
        match Url::parse(s) {
            Ok(u) => {
                let mut out = u.to_string();
                if out.ends_with('/') && u.query().is_none() {
                    out.pop();
                }
                out
            }
            Err(_) => s.to_string(),
        }
    }
    canon(a) == canon(b)
}

/// The URL without its query: queries may carry codes or tokens, and errors must not.
/// A `user:password@` part is dropped for the same reason.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn https_and_loopback_http_only() {
        assert!(check_endpoint_url(&u("https://idp.example.com")).is_ok());
        assert!(check_endpoint_url(&u("http://127.0.0.1:8080/idp")).is_ok());
        assert!(check_endpoint_url(&u("http://127.1.2.3/x")).is_ok());
        assert!(check_endpoint_url(&u("http://[::1]:9/x")).is_ok());
        assert!(check_endpoint_url(&u("http://localhost:9/x")).is_ok());
        assert!(matches!(check_endpoint_url(&u("http://idp.example.com")), Err(UrlPolicyError::NotHttps(_))));
        assert!(matches!(check_endpoint_url(&u("http://10.0.0.1/")), Err(UrlPolicyError::NotHttps(_))));
        assert!(matches!(check_endpoint_url(&u("ftp://idp.example.com")), Err(UrlPolicyError::NotHttps(_))));
        assert!(matches!(check_endpoint_url(&u("https://idp.example.com/#x")), Err(UrlPolicyError::HasFragment(_))));
    }

    #[test]
    fn userinfo_is_refused_and_not_echoed() {
        let err = check_endpoint_url(&u("https://user:hunter2@idp.example.com/")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn same_uri_tolerates_only_the_root_slash_and_trailing_slash() {
        assert!(same_uri("https://a.example", "https://a.example/"));
        assert!(same_uri("https://a.example/mcp/", "https://a.example/mcp"));
        assert!(!same_uri("https://a.example/mcp", "https://a.example/mcp2"));
        assert!(!same_uri("https://a.example/mcp", "https://b.example/mcp"));
        assert!(!same_uri("https://a.example/mcp", "http://a.example/mcp"));
    }
}
