//! Reading the JSON-RPC answer to one POST over Streamable HTTP (MCP basic/transports,
//! "Sending Messages to the Server"): a JSON body, or the event on an event stream that carries
//! it, bounded in size.

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::{McpCheckError, failed};
use crate::http::MAX_RESPONSE_BYTES;
use crate::redact::scrub;

/// The JSON-RPC response with `id` in the answer to a POST: a JSON body or, on an event stream,
/// the first event carrying it (notifications and requests before it are skipped; the stream
/// need not end). At most [`MAX_RESPONSE_BYTES`] are read; `broke_off` words a transport error
/// while reading.
pub(super) async fn read_answer(
    response: reqwest::Response,
    id: u64,
    method: &str,
    broke_off: impl Fn(&reqwest::Error) -> McpCheckError,
) -> Result<Value, McpCheckError> {
    let status = response.status();
    if !status.is_success() {
        return Err(failed(&format!("answered {method} with HTTP {status}")));
    }
    read_message(response, id, method, broke_off).await
}

/// As [`read_answer`], whatever the HTTP status (a refusal's body may be the JSON-RPC error).
pub(super) async fn read_message(
    mut response: reqwest::Response,
    id: u64,
    method: &str,
    broke_off: impl Fn(&reqwest::Error) -> McpCheckError,
) -> Result<Value, McpCheckError> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let stream = match content_type.as_str() {
        "application/json" => false,
        "text/event-stream" => true,
        other => {
            return Err(failed(&format!(
                "answered {method} with content type `{}`, not JSON or an event stream",
                scrub(other, 60)
            )));
        }
    };
    let too_large = || failed(&format!("answered {method} with more than {} KiB", MAX_RESPONSE_BYTES / 1024));
    let (mut body, mut read) = (Vec::new(), 0);
    let mut events = sse::Parser::default();
    while let Some(chunk) = response.chunk().await.map_err(|e| broke_off(&e))? {
        read += chunk.len();
        if read > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        if !stream {
            body.extend_from_slice(&chunk);
            continue;
        }
        for data in events.feed(&chunk) {
            if let Some(found) = serde_json::from_str::<Value>(&data).ok().and_then(|m| response_with_id(m, id)) {
                return Ok(found);
            }
        }
    }
    if stream {
        return Err(failed(&format!("ended its event stream without answering {method}")));
    }
    let message: Value =
        serde_json::from_slice(&body).map_err(|_| failed(&format!("answered {method} with malformed JSON")))?;
    response_with_id(message, id).ok_or_else(|| failed(&format!("answered {method} with no JSON-RPC response to it")))
}

/// `message` if it is the JSON-RPC response (result or error) to request `id`.
pub(super) fn response_with_id(message: Value, id: u64) -> Option<Value> {
    let is_it = |m: &Value| {
        m.get("id").and_then(Value::as_u64) == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
    };
    match message {
        Value::Array(batch) => batch.into_iter().find(is_it),
        m if is_it(&m) => Some(m),
        _ => None,
    }
}

/// Server-sent events, as far as MCP needs them: the data of each event (WHATWG HTML,
/// "Server-sent events", the event stream interpretation; `event`, `id` and `retry` fields are
/// not needed to find a response and are ignored).
mod sse {
    #[derive(Debug, Default)]
    pub struct Parser {
        /// Bytes of a line not yet terminated.
        line: Vec<u8>,
        /// The data of the event being read, and whether it has any `data` field.
        data: String,
        has_data: bool,
        /// A CR ended the last chunk: an LF starting the next one belongs to it.
        after_cr: bool,
        started: bool,
    }

    impl Parser {
        /// Feeds bytes; returns the data of each event they complete.
        pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
            let mut events = Vec::new();
            for &b in bytes {
                if std::mem::take(&mut self.after_cr) && b == b'\n' {
                    continue;
                }
                match b {
                    b'\r' | b'\n' => {
                        self.after_cr = b == b'\r';
                        let line = std::mem::take(&mut self.line);
                        if let Some(data) = self.line_done(&line) {
                            events.push(data);
                        }
                    }
                    _ => self.line.push(b),
                }
            }
            events
        }

        fn line_done(&mut self, line: &[u8]) -> Option<String> {
            let mut line = String::from_utf8_lossy(line).into_owned();
            if !std::mem::replace(&mut self.started, true) && line.starts_with('\u{feff}') {
                line.remove(0);
            }
            if line.is_empty() {
                // The blank line dispatches the event.
                let data = std::mem::take(&mut self.data);
                return std::mem::take(&mut self.has_data)
                    .then(|| data.strip_suffix('\n').unwrap_or(&data).to_string());
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            if field == "data" {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            None
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Parser;

        #[test]
        fn events_are_split_on_blank_lines_across_chunks_and_line_endings() {
            let mut p = Parser::default();
            assert!(p.feed(b"\xef\xbb\xbf: a comment\r\nevent: message\r\ndata: {\"a\"").is_empty());
            assert_eq!(p.feed(b":1}\r"), Vec::<String>::new());
            assert_eq!(p.feed(b"\n\r\n"), vec!["{\"a\":1}".to_string()]);
            assert_eq!(p.feed(b"data:x\ndata: y\n\nid: 7\n\n"), vec!["x\ny".to_string()]);
            assert_eq!(p.feed(b"data\r\rdata: z"), vec![String::new()]);
            assert_eq!(p.feed(b"\n\n"), vec!["z".to_string()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_answer_is_the_response_with_our_id() {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}});
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert_eq!(response_with_id(note.clone(), 1), None);
        assert_eq!(response_with_id(ping, 1), None, "a request from the server with the same id is not the answer");
        assert_eq!(response_with_id(answer.clone(), 2), None);
        assert_eq!(response_with_id(json!([note, answer.clone()]), 1), Some(answer));
    }
}
