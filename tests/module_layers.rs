//! Keeps the crate's modules layered: no import cycles between modules, and the two roles and the
//! CLI sit on top, depending on the shared layers but never on each other.
//!
//! It reads `src/` and follows every `crate::…` and `super::…` path, so a cycle introduced through
//! a fully qualified path counts as much as one through `use`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that nothing else in the library may depend on (only the binaries use them).
const ROLES: &[&str] = &["cli", "controller", "server"];

/// A module's path from the crate root, from its file (`src/server/login/flow.rs` is
/// `server::login::flow`; `mod.rs` and `lib.rs` name their directory).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The paths named after `crate::` or `super::` in `text`, as module-path segments, with
/// `use crate::{a, b::c}` groups expanded to their first segments.
fn referenced_paths(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = vec![];
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    for (prefix, base) in [("crate::", vec![]), ("super::", here[..here.len().saturating_sub(1)].to_vec())] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let preceded_by_ident = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + prefix.len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                for item in top_level_items(group) {
                    found.push(base.iter().cloned().chain(segments(&item)).collect());
                }
            } else {
                found.push(base.iter().cloned().chain(segments(rest)).collect());
            }
        }
    }
    found
}

/// The comma-separated items of a `{…}` group up to its closing brace, nested groups left whole.
fn top_level_items(group: &str) -> Vec<String> {
    let (mut depth, mut items, mut item) = (0, vec![], String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items.into_iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect()
}

fn segments(path: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = path.trim_start();
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) if !next.starts_with('{') => rest = next,
            _ => break,
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges between modules at `depth` segments (1: `server`; 2: `server::login`), from every file.
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(&src, f)).filter(|p| !p.is_empty() && p[0] != "bin").collect();
    let node = |path: &[String]| -> Option<String> {
        // The longest prefix of `path` that is a module, cut to `depth` segments.
        let known = (1..=path.len()).rev().map(|n| &path[..n]).find(|p| modules.contains(*p))?;
        Some(known[..known.len().min(depth)].join("::"))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let here = module_path(&src, file);
        if here.first().is_none_or(|m| m == "bin") {
            continue;
        }
        let from = node(&here).unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        // A module's own unit tests may reach anywhere; they are not part of the layering.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for path in referenced_paths(text, &here) {
            if let Some(to) = node(&path)
                && to != from
                && !to.starts_with(&format!("{from}::"))
                && !from.starts_with(&format!("{to}::"))
            {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
        edges.entry(from).or_default();
    }
    edges
}

/// One cycle in `edges`, if there is any, as the modules along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|s| *s == n).unwrap();
                return Some(stack[start..].iter().chain([&n]).map(|s| s.to_string()).collect());
            }
            None => {}
        }
        state.insert(n, false);
        stack.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if let Some(cycle) = visit(m, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(n, true);
        None
    }
    let mut state = BTreeMap::new();
    edges.keys().find_map(|n| visit(n, edges, &mut state, &mut vec![]))
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let edges = graph(1);
    assert!(edges.len() > 10, "the scan found too few modules: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle between modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn submodules_have_no_import_cycles() {
    let edges = graph(2);
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle between modules: {}", cycle.join(" -> "));
    }
}

#[test]
fn roles_are_on_top_and_independent() {
    for (from, to) in graph(1) {
        for role in ROLES {
            assert!(!to.contains(*role), "{from} depends on {role}, but only the binaries may use a role's module");
        }
    }
}

#[test]
fn the_scan_sees_paths_and_groups() {
    let here = vec!["server".to_string(), "login".to_string(), "flow".to_string()];
    let refs = referenced_paths("use crate::{api::{A, B}, oidc};\nlet x = super::state::X;\n// crate::cli\nfoo::crate::bar", &here);
    assert_eq!(
        refs,
        vec![
            vec!["api".to_string()],
            vec!["oidc".to_string()],
            vec!["server".to_string(), "login".to_string(), "state".to_string(), "X".to_string()]
        ]
    );
    let edges =
        BTreeMap::from([("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::from(["a".to_string()]))]);
    assert_eq!(find_cycle(&edges), Some(vec!["a".to_string(), "b".to_string(), "a".to_string()]));
}
