//! No module cycles in ema-core (issue 15 item 7): between the crate's top-level modules, and
//! between sibling submodules of one module, dependencies go one way.
//!
//! How: every `crate::a::b` and `super::a` path in the source (comments skipped; `use` groups
//! such as `super::{a::X, b::Y}` read one level deep) is resolved to the module it names, and
//! each reference from module `p::s1::…` to `p::s2::…` (two different children of the same
//! module `p`) is an edge `s1 -> s2`. A module and its own ancestors or descendants referring to
//! each other is a facade, not a cycle, and is not counted. Calls of methods defined in another
//! file (`impl Engine` split over files) are not paths and are not seen. Test doubles (`testing`)
//! and the fuzzing API are left out: they exist for tests and depend on everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Module = Vec<String>;

/// Every module of the crate, by its path (`["engine", "renewal"]`), with its source.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, String>) {
        for entry in fs::read_dir(dir).expect("the source folder") {
            let path = entry.expect("an entry").path();
            let name = path.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 name").to_string();
            if path.is_dir() {
                let mut m = prefix.clone();
                m.push(name);
                walk(&path, &m, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut m = prefix.clone();
                if name != "mod" && name != "lib" {
                    m.push(name);
                }
                out.insert(m, fs::read_to_string(&path).expect("a source file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// The paths written after `crate::` and `super::` in code (not comments), as written.
fn paths(source: &str) -> Vec<(bool, Vec<String>)> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (anchor, is_crate) in [("crate::", true), ("super::", false)] {
            let mut rest = code;
            while let Some(at) = rest.find(anchor) {
                rest = &rest[at + anchor.len()..];
                let mut segments = Vec::new();
                let mut tail = rest;
                loop {
                    if let Some(group) = tail.strip_prefix('{') {
                        // `{a::X, b::{Y, Z}}`: the first segment of each member.
                        let inner = group.split('}').next().unwrap_or_default();
                        for member in inner.split(',') {
                            let first = ident(member.trim());
                            if !first.is_empty() {
                                let mut p = segments.clone();
                                p.push(first);
                                out.push((is_crate, p));
                            }
                        }
                        break;
                    }
                    let seg = ident(tail);
                    if seg.is_empty() {
                        break;
                    }
                    tail = &tail[seg.len()..];
                    segments.push(seg);
                    match tail.strip_prefix("::") {
                        Some(t) => tail = t,
                        None => break,
                    }
                }
                if !segments.is_empty() {
                    out.push((is_crate, segments));
                }
            }
        }
    }
    out
}

/// The deepest module a path names (its leading segments that are modules).
fn resolve(all: &BTreeMap<Module, String>, from: &Module, is_crate: bool, segments: &[String]) -> Module {
    let mut base: Module = if is_crate { Vec::new() } else { from[..from.len().saturating_sub(1)].to_vec() };
    for s in segments {
        if s == "super" {
            base.pop();
            continue;
        }
        let mut next = base.clone();
        next.push(s.clone());
        if !all.contains_key(&next) {
            break;
        }
        base = next;
    }
    base
}

fn excluded(m: &Module) -> bool {
    m.first().is_some_and(|f| f == "testing" || f == "fuzz_api")
}

/// Edges between siblings: parent module -> (child -> children it depends on).
fn sibling_edges(all: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> {
    let mut edges: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, source) in all {
        if excluded(from) {
            continue;
        }
        for (is_crate, segments) in paths(source) {
            let to = resolve(all, from, is_crate, &segments);
            if excluded(&to) {
                continue;
            }
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .insert(to[common].clone());
            }
        }
    }
    edges
}

/// A cycle in `graph`, if there is one (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut c = stack[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_depends_on_a_sibling_that_depends_on_it() {
    let all = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(all.contains_key(&vec!["engine".to_string(), "renewal".to_string()]), "the module map was read");
    let cycles: Vec<String> = sibling_edges(&all)
        .iter()
        .filter_map(|(parent, graph)| {
            cycle(graph).map(|c| format!("in crate::{}: {}", parent.join("::"), c.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_between_siblings() {
    let mut all = BTreeMap::new();
    all.insert(vec![], String::new());
    all.insert(vec!["a".to_string()], "use crate::b::X;".to_string());
    all.insert(vec!["b".to_string()], "fn f() { crate::a::g() }".to_string());
    all.insert(vec!["p".to_string()], "use q::Y;".to_string());
    all.insert(vec!["p".to_string(), "q".to_string()], "use super::{r::Z, W};\n// super::s::T".to_string());
    all.insert(vec!["p".to_string(), "r".to_string()], "use super::q::V;".to_string());
    all.insert(vec!["p".to_string(), "s".to_string()], String::new());
    let edges = sibling_edges(&all);
    assert!(cycle(&edges[&vec![]]).is_some(), "a <-> b");
    let inner = &edges[&vec!["p".to_string()]];
    assert!(cycle(inner).is_some(), "q <-> r");
    assert!(!inner["q"].contains("s"), "comments are not code");
}
