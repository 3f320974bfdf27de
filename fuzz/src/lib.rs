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
            let a = answer.ok_or(TransportError::Connect {
                url,
                kind: ema_core::http::NetworkFailure::Other,
                reason: "no route".into(),
            })?;
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

/// Characters that are not token characters (`redact.rs`: alphanumerics and `- _ . ~ + / = %`):
/// what may stand on either side of a planted secret.
pub const DELIMS: &[char] = &[
    ' ', '\n', '\t', '"', '\'', '(', ')', '[', ']', '{', '}', '<', '>', ',', ';', ':', '!', '|', '*', '?', '&', '#',
    '@', '\\', '`', '\r',
];

/// The secret prefixes `redact.rs` knows.
pub const PREFIXES: &[&str] = &[
    "lin_api_",
    "sbp_",
    "figd_",
    "ATATT",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "sk-",
    "sk_live_",
    "AKIA",
    "ya29.",
];

fn padded(m: &[u8], n: usize) -> Vec<u8> {
    let mut v = m.to_vec();
    let mut i = 0u8;
    while v.len() < n {
        v.push(0x5a ^ i);
        i = i.wrapping_add(37);
    }
    v
}

/// Letters and digits made of `m`, at least `min` and at most 64 of them.
pub fn alnum(m: &[u8], min: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    padded(m, min).iter().take(64).map(|b| A[*b as usize % A.len()] as char).collect()
}

/// A secret of one of the token shapes `redact.rs` promises to redact, made of `material`, in one
/// of the encodings it promises to see through; `None` when that combination is not promised
/// (too few letters and digits). Shapes (`shape % 5`): a JWT (`eyJ…` header, three base64url
/// parts); 32+ characters of base64url, of standard base64 (`+ / =`), of hex; a known secret
/// prefix and 6+ more characters. Encodings (`encoding % 4`): raw, base64, base64url,
/// percent-encoded.
pub fn planted_secret(shape: u8, encoding: u8, material: &[u8]) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let m = material;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let shape = shape % 5;
    let token = match shape {
        0 => format!(
            "eyJhbGciOiJFUzI1NiJ9.{}.{}",
            URL_SAFE_NO_PAD.encode(padded(m, 8)),
            URL_SAFE_NO_PAD.encode(padded(&m.iter().rev().copied().collect::<Vec<_>>(), 16))
        ),
        1 => URL_SAFE_NO_PAD.encode(padded(m, 24)),
        2 => STANDARD.encode(padded(m, 24)),
        3 => hex(&padded(m, 16)),
        _ => format!(
            "{}{}",
            PREFIXES[m.first().copied().unwrap_or(0) as usize % PREFIXES.len()],
            alnum(m.get(1..).unwrap_or_default(), 6)
        ),
    };
    let encoded = match encoding % 4 {
        0 => token.clone(),
        1 => STANDARD.encode(&token),
        2 => URL_SAFE_NO_PAD.encode(&token),
        _ => url::form_urlencoded::byte_serialize(token.as_bytes()).collect(),
    };
    // Base64 of a short prefixed token is neither prefixed nor 32+ characters: not promised.
    let encoded = if matches!(encoding % 4, 1 | 2) && encoded.len() < 32 { token } else { encoded };
    // An opaque token is promised when at least 24 of its characters are letters or digits
    // (redact.rs: a run of slashes or dashes is not a token).
    if (1..=3).contains(&shape) && encoded.chars().filter(char::is_ascii_alphanumeric).count() < 24 {
        return None;
    }
    Some(encoded)
}
