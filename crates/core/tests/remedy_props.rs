//! Properties of a remedy on arbitrary valid configuration files (proptest): removing or
//! replacing one server entry changes that entry only (every other entry, unknown key and the
//! entries' order stay), and undo gives back the very same bytes.
//!
//! Files are generated in the two dialects edited: strict JSON (Claude Code's `.mcp.json`,
//! compact or pretty) and VS Code's JSONC (comments, trailing commas). Server names include `/`
//! and `~` to exercise RFC 6901 pointer escaping.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

use ema_core::digest::sha256_hex;
use ema_core::personal::remedy::{Action, Remedy};
use ema_core::personal::scan::{
    Catalog, CatalogConnector, Client, CredentialClass, Finding, Scope, SecretLocation, Verdict,
};
use jsonc_parser::cst::CstRootNode;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A server entry: an object, as every client requires.
fn server() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-zA-Z]{1,8}", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

#[derive(Debug, Clone)]
struct Config {
    jsonc: bool,
    pretty: bool,
    /// Server names in file order (distinct).
    servers: Vec<(String, Value)>,
    /// Keys beside the server map that EMA does not know.
    others: Vec<(String, Value)>,
}

fn config() -> impl Strategy<Value = Config> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(("[a-z0-9 ._/~-]{1,10}", server()), 1..7),
        prop::collection::vec(("x[a-z]{1,6}", json_value()), 0..3),
    )
        .prop_map(|(jsonc, pretty, servers, others)| {
            let mut seen = std::collections::HashSet::new();
            let servers = servers.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let mut seen = std::collections::HashSet::new();
            let others = others.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            Config { jsonc, pretty, servers, others }
        })
}

impl Config {
    fn map_key(&self) -> &'static str {
        if self.jsonc { "servers" } else { "mcpServers" }
    }

    /// The file's text, written by hand so that the order is the generated one.
    fn text(&self) -> String {
        let v =
            |v: &Value| if self.pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) }.unwrap();
        let (nl, ind) = if self.pretty || self.jsonc { ("\n", "  ") } else { ("", "") };
        let mut out = String::new();
        if self.jsonc {
            out.push_str("// generated servers\n");
        }
        out.push('{');
        out.push_str(nl);
        out.push_str(&format!("{ind}\"{}\": {{{nl}", self.map_key()));
        let n = self.servers.len();
        for (i, (name, value)) in self.servers.iter().enumerate() {
            if self.jsonc {
                out.push_str(&format!("{ind}{ind}/* {i} */ "));
            } else {
                out.push_str(&format!("{ind}{ind}"));
            }
            let comma = if i + 1 < n || self.jsonc { "," } else { "" };
            out.push_str(&format!("{}: {}{comma}{nl}", serde_json::to_string(name).unwrap(), v(value)));
        }
        out.push_str(&format!("{ind}}}"));
        for (k, value) in &self.others {
            out.push_str(&format!(",{nl}{ind}\"{k}\": {}", v(value)));
        }
        out.push_str(nl);
        out.push_str("}\n");
        out
    }
}

fn pointer(map: &str, name: &str) -> String {
    format!("/{map}/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn finding(cfg: &Config, path: PathBuf, name: &str, text: &str) -> Finding {
    Finding {
        id: "prop".into(),
        client: if cfg.jsonc { Client::VsCode } else { Client::ClaudeCode },
        scope: Scope::Project,
        path,
        key_path: pointer(cfg.map_key(), name),
        server_name: Some(name.to_string()),
        connector: Some("linear".into()),
        matched_by: None,
        class: CredentialClass::StaticToken {
            location: SecretLocation::Env,
            name: "LINEAR_API_KEY".into(),
            value_in_file: true,
        },
        verdict: Verdict::Flagged,
        why: String::new(),
        what_to_do: String::new(),
        fingerprint: None,
        file_sha256: Some(sha256_hex(text.as_bytes())),
    }
}

fn catalog() -> Catalog {
    Catalog::new(vec![CatalogConnector {
        id: "linear".into(),
        display_name: "Linear".into(),
        mcp_url: "https://mcp.linear.app/mcp".parse().unwrap(),
        idp_only: true,
    }])
}

/// The server names of `text`, in file order, and the whole parsed meaning.
fn read_back(text: &str, map: &str) -> (Vec<String>, Value) {
    let root = CstRootNode::parse(text, &Default::default()).unwrap();
    let names = root
        .object_value()
        .unwrap()
        .object_value(map)
        .unwrap()
        .properties()
        .iter()
        .map(|p| p.name().unwrap().decoded_value().unwrap())
        .collect();
    (names, jsonc_parser::parse_to_serde_value(text, &Default::default()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn remedy_changes_one_entry_keeps_the_others_and_undo_restores_the_bytes(
        cfg in config(),
        pick in any::<prop::sample::Index>(),
        replace in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if cfg.jsonc { "mcp.json" } else { ".mcp.json" });
        let text = cfg.text();
        fs::write(&path, &text).unwrap();
        let (names_before, before) = read_back(&text, cfg.map_key());
        let target = cfg.servers[pick.index(cfg.servers.len())].0.clone();
        let remedy = Remedy::new(dir.path().join("state"));
        let action = if replace { Action::Replace } else { Action::Remove };

        remedy.apply(&finding(&cfg, path.clone(), &target, &text), action, &catalog()).unwrap();

        let after_text = fs::read_to_string(&path).unwrap();
        let (names_after, after) = read_back(&after_text, cfg.map_key());
        let expected_names: Vec<String> = if replace {
            names_before.clone()
        } else {
            names_before.iter().filter(|n| **n != target).cloned().collect()
        };
        prop_assert_eq!(names_after, expected_names, "order and the other entries kept");
        let mut expected = before.clone();
        let servers = expected[cfg.map_key()].as_object_mut().unwrap();
        if replace {
            servers.insert(target.clone(), after[cfg.map_key()][&target].clone());
            prop_assert_eq!(&after[cfg.map_key()][&target]["url"], "https://mcp.linear.app/mcp");
        } else {
            servers.remove(&target);
        }
        prop_assert_eq!(&after, &expected, "nothing else changed");
        if cfg.jsonc {
            prop_assert!(after_text.starts_with("// generated servers"), "comments kept");
        }

        remedy.undo_last().unwrap();
        prop_assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }
}
