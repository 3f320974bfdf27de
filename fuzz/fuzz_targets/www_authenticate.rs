//! `discovery::resource_metadata_hint`: the `resource_metadata` auth-param of a
//! `WWW-Authenticate` header (RFC 9728 §5.1, RFC 6750 §3).
//!
//! Input: `header \n--\n url`. Invariants: any header parses without panic; a URL written as
//! an RFC 7230 quoted-string (escaping `"` and `\`) after other auth-params is read back
//! exactly.
#![no_main]

use ema_core::discovery::resource_metadata_hint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts = ema_fuzz::split(data, 2);
    if let Ok(header) = std::str::from_utf8(parts[0]) {
        if let Some(hint) = resource_metadata_hint(header) {
            assert!(!hint.is_empty() || header.contains("\"\""), "an empty unquoted hint: {header:?}");
        }
    }
    if let Ok(url) = std::str::from_utf8(parts[1]) {
        let quoted: String =
            url.chars().flat_map(|c| if matches!(c, '"' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
        for header in [
            format!("Bearer resource_metadata=\"{quoted}\""),
            format!("Bearer realm=\"mcp\", error=\"invalid_token\", resource_metadata=\"{quoted}\""),
            format!("Bearer error_description=\"see x_resource_metadata\",resource_metadata=\"{quoted}\", scope=\"a\""),
        ] {
            assert_eq!(resource_metadata_hint(&header).as_deref(), Some(url), "header {header:?}");
        }
    }
});
