//! The remedy's in-place JSON/JSONC edit (`remedy::jsonedit::apply`) and the checked edit the
//! remedy writes (`remedy::edited`, through `fuzz_api::remedy_edit`).
//!
//! Input: a selector byte (which entry), an operation byte (remove, or replace with one of a few
//! values), then the file text. The entry is chosen among the object members the text really
//! has, so most inputs reach the edit.
//!
//! Invariants:
//! - `apply` on a text that parses returns a text that still parses (JSONC rules);
//! - whatever the remedy accepts to write (`remedy_edit` Ok) parses, and its meaning equals
//!   the input's meaning with only the target entry removed or replaced; a BOM is kept.
#![no_main]

use std::path::Path;

use ema_core::fuzz_api::remedy_edit;
use ema_core::personal::remedy::jsonedit::{self, Edit};
use jsonc_parser::cst::CstInputValue;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn meaning(text: &str) -> Option<Value> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    jsonc_parser::parse_to_serde_value::<Value>(body, &Default::default()).ok()
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// RFC 6901 pointers of the members of every object, depth first, up to depth 4.
fn pointers(v: &Value, prefix: &str, depth: usize, out: &mut Vec<(String, Vec<String>)>) {
    if depth > 4 {
        return;
    }
    if let Value::Object(o) = v {
        for (k, x) in o {
            let p = format!("{prefix}/{}", escape(k));
            out.push((p.clone(), Vec::new()));
            pointers(x, &p, depth + 1, out);
        }
    }
}

fn value(op: u8) -> (CstInputValue, Value) {
    match op % 4 {
        0 => (
            jsonedit::object([
                ("type", "http".into()),
                ("url", "https://mcp.linear.app/mcp".into()),
                ("headersHelper", "ema headers linear".into()),
            ]),
            serde_json::json!({"type": "http", "url": "https://mcp.linear.app/mcp", "headersHelper": "ema headers linear"}),
        ),
        1 => (CstInputValue::String("a \"quoted\" \\ value\n".into()), Value::String("a \"quoted\" \\ value\n".into())),
        2 => (CstInputValue::Null, Value::Null),
        _ => (
            CstInputValue::Array(vec![CstInputValue::Bool(true), CstInputValue::Number("1".into())]),
            serde_json::json!([true, 1]),
        ),
    }
}

fn set(root: &mut Value, pointer: &str, new: Option<Value>) -> Option<()> {
    let tokens: Vec<String> =
        pointer.strip_prefix('/')?.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let (last, parents) = tokens.split_last()?;
    let mut node = root;
    for t in parents {
        node = node.get_mut(t.as_str())?;
    }
    let map = node.as_object_mut()?;
    match new {
        None => {
            map.remove(last.as_str());
        }
        Some(v) => {
            map.insert(last.clone(), v);
        }
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let [selector, op, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Some(before) = meaning(text) else {
        // Not JSON(C): the edit must refuse, not guess.
        let _ = jsonedit::apply(text, "/mcpServers/a", &Edit::Remove);
        return;
    };
    let mut ps = Vec::new();
    pointers(&before, "", 0, &mut ps);
    let pointer = match ps.get(*selector as usize % (ps.len() + 1)) {
        Some((p, _)) => p.clone(),
        None => "/mcpServers/absent".to_string(),
    };
    let (edit, expected_value) = if op & 0x80 == 0 {
        (Edit::Remove, None)
    } else {
        let (c, v) = value(*op);
        (Edit::Set(c), Some(v))
    };
    if let Ok(out) = jsonedit::apply(text, &pointer, &edit) {
        assert!(meaning(&out).is_some(), "the edit of {pointer} broke the file: {out:?}");
        assert_eq!(out.starts_with('\u{feff}'), text.starts_with('\u{feff}'), "the BOM changed");
    }
    if let Ok(out) = remedy_edit(Path::new("mcp.json"), text.as_bytes(), &pointer, &edit) {
        let out = String::from_utf8(out).expect("the remedy writes UTF-8");
        let after = meaning(&out).expect("the remedy wrote a file that does not parse");
        let mut expected = before.clone();
        set(&mut expected, &pointer, expected_value).expect("the pointer named an object member");
        assert_eq!(after, expected, "the remedy changed more than {pointer}");
        assert_eq!(out.starts_with('\u{feff}'), text.starts_with('\u{feff}'), "the BOM changed");
    }
});
