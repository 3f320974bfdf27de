//! Edits one entry of a JSON (or VS Code JSONC) file and keeps every other byte.
//!
//! Why a concrete syntax tree: these files are the user's (and other programs'), with their own
//! indentation, key order, comments (VS Code) and unknown keys. Re-serialising a parsed value
//! would lose all of that; jsonc-parser's CST edits the text in place, so removing
//! `/mcpServers/linear` touches that property (and its comma) and nothing else.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};

/// What to do to the entry at a JSON pointer.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Delete the property.
    Remove,
    /// Replace the property's value.
    Set(CstInputValue),
}

/// Why an edit could not be made. Messages name the place, never file content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is no longer valid JSON ({0})")]
    Parse(String),
    #[error("the entry {0} is not in the file any more")]
    Missing(String),
    #[error("the JSON pointer {0:?} does not name an entry inside an object")]
    BadPointer(String),
}

/// Applies `edit` to the property at the RFC 6901 pointer `pointer` of `text`.
pub fn apply(text: &str, pointer: &str, edit: &Edit) -> Result<String, EditError> {
    // A byte-order mark some Windows editors write is kept, but is not JSON.
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let tokens = unescape_pointer(pointer).ok_or_else(|| EditError::BadPointer(pointer.to_string()))?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err(EditError::BadPointer(pointer.to_string()));
    };
    let root = CstRootNode::parse(body, &ParseOptions::default())
        .map_err(|e| EditError::Parse(crate::redact::scrub(&e.to_string(), 120)))?;
    let missing = || EditError::Missing(pointer.to_string());
    let mut object: CstObject = root.object_value().ok_or_else(missing)?;
    for key in parents {
        object = object.get(key).and_then(|p| p.object_value()).ok_or_else(missing)?;
    }
    let prop = object.get(last).ok_or_else(missing)?;
    match edit {
        Edit::Remove => prop.remove(),
        Edit::Set(value) => prop.set_value(value.clone()),
    }
    let out = root.to_string();
    // The CST parser accepts a little more than the value parser (found by fuzzing: in
    // `{"k": 22a: " "}` it replaced `22` and left `a: " "`): an edit whose result does not parse
    // is refused here, so no caller can write it.
    jsonc_parser::parse_to_value(&out, &ParseOptions::default())
        .map_err(|_| EditError::Parse("the edited text would not parse; nothing was changed".into()))?;
    Ok(format!("{bom}{out}"))
}

/// The reference tokens of an RFC 6901 pointer (`~1` is `/`, `~0` is `~`); `None` when it
/// does not start with `/`.
pub(crate) fn unescape_pointer(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

/// A JSON object value for [`Edit::Set`], keys in the given order.
pub fn object<const N: usize>(props: [(&str, CstInputValue); N]) -> CstInputValue {
    CstInputValue::Object(props.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: the CST parser took `22a` for a value the value parser refuses, so
    /// replacing it produced a file that no longer parsed (the remedy's own check refused to
    /// write it; `apply` now refuses too).
    #[test]
    fn an_edit_that_would_break_the_file_is_refused() {
        let text = "{\"n\u{0}\u{0}\u{0}No\": 22a: \" \",}";
        if let Ok(out) = apply(text, "/n\u{0}\u{0}\u{0}No", &Edit::Set(CstInputValue::Null)) {
            assert!(jsonc_parser::parse_to_value(&out, &ParseOptions::default()).is_ok(), "{out:?}");
        }
        let err = apply(text, "/n\u{0}\u{0}\u{0}No", &Edit::Set(CstInputValue::Null));
        assert!(matches!(err, Err(EditError::Parse(_)) | Err(EditError::Missing(_))), "{err:?}");
    }

    #[test]
    fn removes_one_entry_and_keeps_the_rest_of_the_text() {
        let text = "{\n  \"mcpServers\": {\n    \"a\": { \"command\": \"x\" },\n    \"b\": {\"url\": \"u\"}\n  },\n  \"zz\": 1\n}\n";
        let out = apply(text, "/mcpServers/a", &Edit::Remove).unwrap();
        assert_eq!(out, "{\n  \"mcpServers\": {\n    \"b\": {\"url\": \"u\"}\n  },\n  \"zz\": 1\n}\n");
    }

    #[test]
    fn keeps_comments_and_trailing_commas_of_jsonc() {
        let text = "{\n  // my servers\n  \"servers\": {\n    \"a\": {}, // first\n    \"b\": {},\n  },\n}\n";
        let out = apply(text, "/servers/b", &Edit::Remove).unwrap();
        assert!(out.contains("// my servers") && out.contains("// first"), "{out}");
        assert!(!out.contains("\"b\""), "{out}");
    }

    #[test]
    fn replaces_a_value_with_keys_in_order() {
        let text = "{\"mcpServers\": {\"lin\": {\"command\": \"npx\"}, \"other\": 1}}";
        let value = object([("type", "http".into()), ("url", "https://mcp.linear.app/mcp".into())]);
        let out = apply(text, "/mcpServers/lin", &Edit::Set(value)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["mcpServers"]["lin"], serde_json::json!({"type": "http", "url": "https://mcp.linear.app/mcp"}));
        assert_eq!(v["mcpServers"]["other"], 1);
        assert!(out.find("\"type\"").unwrap() < out.find("\"url\"").unwrap());
    }

    #[test]
    fn escaped_pointer_tokens_reach_keys_with_slashes() {
        let text = r#"{"projects": {"/home/a": {"mcpServers": {"x": {}, "y": {}}}}}"#;
        let out = apply(text, "/projects/~1home~1a/mcpServers/x", &Edit::Remove).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, serde_json::json!({"projects": {"/home/a": {"mcpServers": {"y": {}}}}}));
    }

    #[test]
    fn missing_entries_and_broken_files_are_errors_not_guesses() {
        assert_eq!(apply("{}", "/mcpServers/a", &Edit::Remove), Err(EditError::Missing("/mcpServers/a".into())));
        assert!(matches!(apply("{\"a\": ", "/a", &Edit::Remove), Err(EditError::Parse(_))));
        assert!(matches!(apply("{}", "", &Edit::Remove), Err(EditError::BadPointer(_))));
    }

    #[test]
    fn a_byte_order_mark_is_kept() {
        let out = apply("\u{feff}{\"a\": 1, \"b\": 2}", "/a", &Edit::Remove).unwrap();
        assert!(out.starts_with('\u{feff}'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out[3..]).unwrap(), serde_json::json!({"b": 2}));
    }
}
