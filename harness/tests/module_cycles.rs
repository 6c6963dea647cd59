//! No import cycles between the top-level modules of harness/src and
//! telemetry/src: each module file's `crate::...` references (in `use`
//! declarations and in paths) become edges of a module graph, and a cycle
//! in that graph fails the test, naming the modules on it.
//!
//! The granularity is the top-level module (`run_cmd`, with its
//! `run_cmd/config.rs` and `run_cmd/observers.rs`): that is where a cycle
//! makes two files impossible to read or change apart. Comments are not
//! references (a doc link to `crate::mapping` imports nothing); references
//! to items of the crate root (`crate::TelemetryError`) are not edges, as
//! the root declares every module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module graph: module -> the modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules `text` refers to through `crate::`, comments
/// stripped: `crate::a::x`, `crate::b`, and each first name in a group
/// `crate::{c::y, d}`.
fn referenced_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        // `crate::` as a whole word, not the tail of `my_crate::`.
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.trim_start().strip_prefix('{') {
            // Top-level items of the group, nested groups skipped.
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`: every file
/// under it, attributed to its top-level module; edges only to names that
/// are top-level modules, never to the module itself.
fn module_graph(src: &Path) -> Graph {
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(src, &mut paths);
    let top = |path: &Path| -> Option<String> {
        let rel = path.strip_prefix(src).unwrap();
        let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
        let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        (!matches!(name.as_str(), "main" | "lib")).then_some(name)
    };
    let modules: BTreeSet<String> = paths.iter().filter_map(|p| top(p)).collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for path in &paths {
        let Some(module) = top(path) else { continue };
        let text = std::fs::read_to_string(path).unwrap();
        let edges = graph.get_mut(&module).unwrap();
        edges.extend(
            referenced_modules(&text)
                .into_iter()
                .filter(|m| *m != module && modules.contains(m)),
        );
    }
    graph
}

/// One cycle of `graph` (its modules in order, the first repeated at the
/// end), if it has any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, State>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(State::Done) => return None,
            Some(State::Open) => {
                let from = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[from..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node.to_owned(), State::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_owned(), State::Done);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(node, graph, &mut state, &mut path) {
            return Some(cycle);
        }
    }
    None
}

fn graph(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (from, to) in edges {
        g.entry((*from).to_owned())
            .or_default()
            .insert((*to).to_owned());
        g.entry((*to).to_owned()).or_default();
    }
    g
}

#[test]
fn the_cycle_check_finds_a_cycle_and_accepts_a_dag() {
    let dag = graph(&[("app", "run_cmd"), ("run_cmd", "shared"), ("app", "shared")]);
    assert_eq!(find_cycle(&dag), None);
    let cyclic = graph(&[
        ("app", "run_cmd"),
        ("run_cmd", "hooks"),
        ("hooks", "summary"),
        ("summary", "run_cmd"),
    ]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(
            ["run_cmd", "hooks", "summary", "run_cmd"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[test]
fn references_are_read_from_uses_groups_and_paths_not_comments() {
    let text = "use crate::{a::X, b, c::{d, e::F}};\n\
                use crate::g;\n\
                fn f() -> crate::h::T { my_crate::i::j(); crate::k::l() } // crate::m\n\
                /// [`crate::n`]\n";
    let want: BTreeSet<String> = ["a", "b", "c", "g", "h", "k"].map(String::from).into();
    assert_eq!(referenced_modules(text), want);
}

#[test]
fn harness_and_telemetry_have_no_module_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // An edge each graph must have, so a reader that found nothing fails.
    for (src, from, to) in [
        (root.join("src"), "run_cmd", "hooks"),
        (root.join("../telemetry/src"), "prom_endpoint", "live"),
    ] {
        let graph = module_graph(&src);
        assert!(
            graph.get(from).is_some_and(|e| e.contains(to)),
            "{}: no edge {from} -> {to} in {graph:?}",
            src.display()
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{}: the modules import each other in a cycle: {}",
                src.display(),
                cycle.join(" -> ")
            );
        }
    }
}
