//! Test doubles for unit tests only (compiled under `cfg(test)`): a transport that answers
//! from a script and records every request, so a test can assert the exact bytes sent
//! (oauth2-rs `tests.rs` style). Injected through [`crate::http::Transport`]; never reachable
//! from product code.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use crate::http::{HttpRequest, HttpResponse, Transport, TransportError};

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Answers by URL (without query); records requests in order.
#[derive(Debug, Default)]
pub struct FakeTransport {
    routes: Mutex<HashMap<String, Answer>>,
    pub requests: Mutex<Vec<HttpRequest>>,
}

impl FakeTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `body` with `status` and a JSON content type at `url`.
    pub fn json(&self, url: &str, status: u16, body: &str) -> &Self {
        self.routes.lock().unwrap().insert(
            url.to_string(),
            (status, vec![("content-type".into(), "application/json".into())], body.as_bytes().to_vec()),
        );
        self
    }

    /// Serves `body` with `status`, a JSON content type and the extra `headers` at `url`.
    pub fn with_headers(&self, url: &str, status: u16, headers: &[(&str, &str)], body: &str) -> &Self {
        let mut all = vec![("content-type".to_string(), "application/json".to_string())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.routes.lock().unwrap().insert(url.to_string(), (status, all, body.as_bytes().to_vec()));
        self
    }

    /// Stops serving `url`: requests to it fail to connect, as to a server that is down.
    pub fn unroute(&self, url: &str) -> &Self {
        self.routes.lock().unwrap().remove(url);
        self
    }

    /// The recorded requests to `url` (without query).
    pub fn requests_to(&self, url: &str) -> Vec<HttpRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri().to_string().split('?').next() == Some(url))
            .map(|r| {
                let mut b = http::Request::builder().method(r.method()).uri(r.uri());
                for (k, v) in r.headers() {
                    b = b.header(k, v);
                }
                b.body(r.body().clone()).unwrap()
            })
            .collect()
    }
}

/// The form fields of a request body, in order.
pub fn form(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.body()).into_owned().collect()
}

impl Transport for FakeTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let key = request.uri().to_string().split('?').next().unwrap_or_default().to_string();
        let answer = self.routes.lock().unwrap().get(&key).cloned();
        self.requests.lock().unwrap().push(request);
        Box::pin(async move {
            let (status, headers, body) = answer.ok_or(TransportError::Connect {
                url: key,
                kind: crate::http::NetworkFailure::Other,
                reason: "no route".into(),
            })?;
            let mut b = http::Response::builder().status(status);
            for (k, v) in headers {
                b = b.header(k, v);
            }
            Ok(b.body(body).unwrap())
        })
    }
}
