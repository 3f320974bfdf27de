//! Connector discovery (`discovery::discover`): the MCP server's 401 and `WWW-Authenticate`,
//! the protected-resource metadata (RFC 9728) and the authorization-server metadata
//! (RFC 8414 / OIDC Discovery), all from the fuzz input through a scripted transport.
//!
//! Input: one flag byte (bit 0: a policy pin; the rest: the AS metadata's status), then
//! `WWW-Authenticate value \n--\n PRM body \n--\n AS metadata body`.
//! Invariants on success: the resource is the MCP URL asked about (RFC 9728 §3.3); the issuer
//! is one the PRM lists, is the pinned one when pinned, and is the AS metadata's own `issuer`
//! (RFC 8414 §3.3); every URL requested and the token endpoint pass the endpoint policy
//! (https, or http on loopback only).
#![no_main]

use ema_core::discovery::discover;
use ema_core::url_policy::{check_endpoint_url, same_uri};
use ema_fuzz::{Answer, FuzzTransport, runtime, split, status_of};
use libfuzzer_sys::fuzz_target;
use url::Url;

const MCP: &str = "https://mcp.example.com/v1/mcp";
const PIN: &str = "https://as.example.com/tenant1";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let parts = split(rest, 3);
    let header = parts[0].to_vec();
    let prm = parts[1].to_vec();
    let as_body = parts[2].to_vec();
    let as_status = status_of(flags >> 1);
    let transport = FuzzTransport::new(move |req| {
        let url = req.uri().to_string();
        if req.method() == http::Method::POST {
            let mut a = Answer::json(401, b"");
            if !header.is_empty() {
                a.headers.push(("www-authenticate".into(), header.clone()));
            }
            return Some(a);
        }
        if url.contains("oauth-authorization-server") || url.contains("openid-configuration") {
            return Some(Answer::json(as_status, &as_body));
        }
        Some(Answer::json(200, &prm))
    });
    let mcp = Url::parse(MCP).expect("a URL");
    let pin = Url::parse(PIN).expect("a URL");
    let pinned = flags & 1 == 1;
    let result = runtime().block_on(discover(&transport, &mcp, pinned.then_some(&pin)));
    for asked in transport.asked.lock().expect("no poison").iter() {
        let u = Url::parse(asked).expect("requested URLs are URLs");
        assert!(check_endpoint_url(&u).is_ok(), "requested a refused URL {asked}");
    }
    match result {
        Ok(e) => {
            assert!(same_uri(&e.resource, MCP), "resource {:?}", e.resource);
            let prm: serde_json::Value = serde_json::from_slice(parts[1]).expect("the PRM parsed");
            let servers: Vec<&str> =
                prm["authorization_servers"].as_array().expect("a list").iter().filter_map(|s| s.as_str()).collect();
            assert!(servers.iter().any(|s| same_uri(s, &e.issuer)), "issuer {:?} not in {servers:?}", e.issuer);
            if pinned {
                assert!(same_uri(&e.issuer, PIN), "pin ignored: {:?}", e.issuer);
            }
            let asm: serde_json::Value = serde_json::from_slice(parts[2]).expect("the AS metadata parsed");
            assert_eq!(asm["issuer"].as_str(), Some(e.issuer.as_str()));
            assert!(check_endpoint_url(&e.token_endpoint).is_ok());
        }
        Err(e) => {
            // Error messages quote server-chosen URLs (a refused hint URL, a mismatched issuer)
            // as they are: what discovery handles is the server's text, not our secrets.
            let _ = (e.to_string(), e.code(), e.fix());
        }
    }
});
