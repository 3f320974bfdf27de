//! Clock skew, measured where it bites: every response the engine receives carries a `Date`
//! header (RFC 9110 §6.6.1), so the engine knows how far this computer's clock is from each
//! server's. Servers accept 30 to 60 s of difference on the JWTs they judge by time
//! (`iat`/`exp` of ID-JAGs and client assertions, RFC 7523 §3; ID tokens, OIDC Core §3.1.3.7);
//! beyond that, grants fail with messages such as "Assertion iat is in the future" that do not
//! say the clock is the cause. When such a failure happens and the skew explains it, the engine
//! says so in the status every face shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::http::{HttpRequest, HttpResponse, Transport, TransportError};

/// Skews at or beyond this many seconds explain a failure: the strictest common leeway
/// (the MCP conformance suite's and Okta's samples' 30 s; Authlib allows 60 s).
pub const SKEW_LEEWAY_SECS: i64 = 30;

/// Observations older than this no longer describe the clock (a user may have fixed it).
const OBSERVATION_TTL: time::Duration = time::Duration::minutes(10);

/// Parses an HTTP date (RFC 9110 §5.6.7: the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let value = value.trim().replace("GMT", "+0000");
    OffsetDateTime::parse(&value, &time::format_description::well_known::Rfc2822).ok()
}

/// "5 min" / "45 s" / "2 h": how far off, in words.
pub fn amount(secs: i64) -> String {
    let s = secs.unsigned_abs();
    if s < 90 {
        format!("{s} s")
    } else if s < 90 * 60 {
        format!("{} min", (s + 30) / 60)
    } else if s < 48 * 3600 {
        format!("{} h", (s + 1800) / 3600)
    } else {
        format!("{} days", (s + 43_200) / 86_400)
    }
}

/// The largest recent skew: server time minus this computer's, in seconds, and the server's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skew {
    pub secs: i64,
    pub host: String,
}

impl Skew {
    /// "your computer's clock is 5 min behind the time at idp.example.com".
    pub fn describe(&self) -> String {
        let direction = if self.secs > 0 { "behind" } else { "ahead of" };
        format!("your computer's clock is {} {direction} the time at {}", amount(self.secs), self.host)
    }
}

/// A transport that notes the skew of every response's `Date` header, per host.
#[derive(Debug)]
pub struct SkewObserver {
    inner: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    seen: Mutex<HashMap<String, (i64, OffsetDateTime)>>,
}

impl SkewObserver {
    pub fn new(inner: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> Self {
        SkewObserver { inner, clock, seen: Mutex::new(HashMap::new()) }
    }

    /// The largest skew seen in the last ten minutes, when it is beyond the servers' leeway.
    pub fn beyond_leeway(&self) -> Option<Skew> {
        let now = self.clock.now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .filter(|(_, (_, at))| now - *at <= OBSERVATION_TTL)
            .map(|(host, (secs, _))| Skew { secs: *secs, host: host.clone() })
            .filter(|s| s.secs.abs() >= SKEW_LEEWAY_SECS)
            .max_by_key(|s| s.secs.abs())
    }

    fn observe(&self, host: String, response: &HttpResponse) {
        let Some(server) = response.headers().get(http::header::DATE).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Some(server) = parse_http_date(server) else { return };
        let now = self.clock.now();
        let secs = (server - now).whole_seconds();
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(host, (secs, now));
    }
}

impl Transport for SkewObserver {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let host = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        Box::pin(async move {
            let response = self.inner.send(request).await?;
            self.observe(host, &response);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testing::FakeTransport;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Tue, 24 Nov 2026 02:00:00 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_485_600);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn skew_is_said_in_words_with_its_direction() {
        let behind = Skew { secs: 300, host: "idp.example.com".into() };
        assert_eq!(behind.describe(), "your computer's clock is 5 min behind the time at idp.example.com");
        let ahead = Skew { secs: -45, host: "as".into() };
        assert_eq!(ahead.describe(), "your computer's clock is 45 s ahead of the time at as");
    }

    #[tokio::test]
    async fn only_recent_skews_beyond_the_leeway_are_reported() {
        let fake = Arc::new(FakeTransport::new());
        fake.with_headers("https://idp.example.com/token", 400, &[("date", "Tue, 24 Nov 2026 02:05:00 GMT")], "{}");
        fake.with_headers("https://as.example.com/token", 200, &[("date", "Tue, 24 Nov 2026 02:00:20 GMT")], "{}");
        let clock = Arc::new(ManualClock::starting_at(parse_http_date("Tue, 24 Nov 2026 02:00:00 GMT").unwrap()));
        let observer = SkewObserver::new(fake, clock.clone());
        let get = |u: &str| http::Request::builder().uri(u).body(Vec::new()).unwrap();
        observer.send(get("https://as.example.com/token")).await.unwrap();
        assert_eq!(observer.beyond_leeway(), None, "20 s is within every server's leeway");
        observer.send(get("https://idp.example.com/token")).await.unwrap();
        assert_eq!(observer.beyond_leeway(), Some(Skew { secs: 300, host: "idp.example.com".into() }));
        clock.advance(time::Duration::minutes(11));
        assert_eq!(observer.beyond_leeway(), None, "an old observation says nothing about the clock now");
    }
}
