//! No module of the engine imports one that imports it back, at file or at top-level module
//! granularity (ARCHITECTURE.md, "Layers inside the engine"). Reads the sources: a `crate::`
//! path outside a module's tests is an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `src` (as `checkpoint::restore`, `worker`, ...) with its source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            found.insert(parts.join("::"), text);
        }
    }
    found
}

/// The modules `text` imports: the longest known module each `crate::` path names.
fn imports(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if known.contains(&candidate) {
                out.insert(candidate);
                break;
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The import graph, with each module named by `name`.
fn graph(name: impl Fn(&str) -> String) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<String> = modules.keys().filter(|m| !m.is_empty()).cloned().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in modules.iter().filter(|(m, _)| !m.is_empty()) {
        let from = name(module);
        for import in imports(text, &known) {
            let to = name(&import);
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let by_file = graph(str::to_string);
    assert!(by_file.len() > 20, "too few modules found: {by_file:?}");
    assert_eq!(find_cycle(&by_file), None);
    let by_top_module = graph(|m| m.split("::").next().unwrap_or(m).to_string());
    assert_eq!(find_cycle(&by_top_module), None);
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("worker".into()).or_default().insert("builder".into());
    graph.entry("builder".into()).or_default().insert("stream".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("stream".into()).or_default().insert("worker".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec![
            "builder".into(),
            "stream".into(),
            "worker".into(),
            "builder".into()
        ])
    );
}
