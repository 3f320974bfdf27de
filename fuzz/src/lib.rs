//! Shared pieces of the fuzz targets: a transport answering from the fuzz input, one tokio
//! runtime per process, and the splitting of one input into several documents.

use std::sync::{Mutex, OnceLock};

use ema_core::http::{HttpRequest, HttpResponse, Transport, TransportError};
use futures::future::BoxFuture;

/// One current-thread runtime for the whole fuzzing process (building one per input would
/// dominate the run time).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime"))
}

/// Splits `data` at the separator line `\n--\n` into exactly `n` parts (missing ones empty):
/// seeds stay readable text, and the fuzzer can move bytes between documents.
pub fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    const SEP: &[u8] = b"\n--\n";
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    while out.len() < n {
        out.push(&[]);
    }
    out
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, body: &[u8]) -> Self {
        Answer { status, headers: vec![("content-type".into(), b"application/json".to_vec())], body: body.to_vec() }
    }
}

type Route = Box<dyn Fn(&HttpRequest) -> Option<Answer> + Send + Sync>;

/// Answers each request with the first route that matches; records the URLs asked for.
pub struct FuzzTransport {
    route: Route,
    pub asked: Mutex<Vec<String>>,
}

impl std::fmt::Debug for FuzzTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuzzTransport").finish_non_exhaustive()
    }
}

impl FuzzTransport {
    pub fn new(route: impl Fn(&HttpRequest) -> Option<Answer> + Send + Sync + 'static) -> Self {
        FuzzTransport { route: Box::new(route), asked: Mutex::new(Vec::new()) }
    }
}

impl Transport for FuzzTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let url = request.uri().to_string();
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).push(url.clone());
        let answer = (self.route)(&request);
        Box::pin(async move {
            let a = answer.ok_or(TransportError::Connect { url, reason: "no route".into() })?;
            let mut b = http::Response::builder().status(a.status);
            for (k, v) in a.headers {
                // A header value the http crate refuses is what a real client would never see.
                if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                    b = b.header(k, v);
                }
            }
            Ok(b.body(a.body).unwrap_or_else(|_| http::Response::new(Vec::new())))
        })
    }
}

/// A status code from one byte: mostly 200, with the error and redirect codes servers send.
pub fn status_of(b: u8) -> u16 {
    const CODES: &[u16] = &[200, 200, 200, 200, 400, 401, 403, 500, 302, 201, 204, 404, 503, 429, 307, 199];
    CODES[(b as usize) % CODES.len()]
}
