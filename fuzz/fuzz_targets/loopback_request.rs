//! The loopback redirect listener (`signin::loopback`, RFC 8252 §7.3) fed raw bytes over a
//! real socket, as any local process can: the request head reader, the request-line parser
//! and the callback checks.
//!
//! Each input is sent on one connection (then the write side is closed); a second connection
//! then delivers the genuine callback. Invariants: the listener neither hangs nor panics; a
//! sign-in completes only with the genuine code, or with a code from a request that carried
//! the expected `state`.
#![no_main]

use std::time::Duration;

use ema_core::signin::loopback::{ExpectedCallback, LoopbackListener};
use ema_fuzz::runtime;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STATE: &str = "Xq3-expected-state_0123456789";
const ISSUER: &str = "https://idp.example.com";
const GENUINE: &str = "genuine-code";

async fn send(port: u16, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else { return };
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
}

fuzz_target!(|data: &[u8]| {
    let rt = runtime();
    let result = rt.block_on(async {
        let listener = LoopbackListener::bind().await.expect("bind 127.0.0.1");
        let port = listener
            .redirect_uri()
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a port in the redirect URI");
        let expected = ExpectedCallback { state: STATE.into(), issuer: ISSUER.into(), issuer_required: false };
        let waiting = tokio::spawn(listener.wait(expected, Duration::from_secs(20)));
        send(port, data).await;
        let genuine = format!("GET /callback?code={GENUINE}&state={STATE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        send(port, genuine.as_bytes()).await;
        tokio::time::timeout(Duration::from_secs(25), waiting).await
    });
    let result = result.expect("the listener hung").expect("the wait task panicked");
    if let Ok(cb) = result
        && cb.code != GENUINE
    {
        // The state may arrive percent-encoded: look in the decoded pairs too.
        let decoded: String =
            url::form_urlencoded::parse(data).flat_map(|(k, v)| [k.into_owned(), v.into_owned()]).collect();
        assert!(
            String::from_utf8_lossy(data).contains(STATE) || decoded.contains(STATE),
            "a code was accepted without the expected state"
        );
    }
});
