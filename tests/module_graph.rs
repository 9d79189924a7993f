//! The module graph stays acyclic and layered (ARCHITECTURE.md, "Layers"): every `crate::` path in
//! `src/` (in `use` lines and in code, `use crate::{a, b::c}` groups included; `super::` between
//! `domain`'s files) is an edge between top-level modules, or between `domain`'s submodules. The test
//! fails naming a cycle, or a module that uses one from a higher layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first (one line each). A module may use modules of its own layer or lower
/// ones, never a higher one; within a layer (and between `domain`'s files) uses form no cycle.
const LAYERS: &[&str] = &[
    "domain",
    "clock config telemetry",
    "store error metrics sessions stream_hub ratelimit listen throttle sinks plugin cluster",
    "outbox pipeline mailer presence inbound",
    "state",
    "ingest chatops api web ops reload",
    "app",
    "cli main",
];

/// Module → module it uses → a file where it does.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Source text without comments (doc comments name modules freely).
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find('/') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |n| &rest[n..]);
        } else if rest.starts_with("/*") {
            rest = rest.find("*/").map_or("", |n| &rest[n + 2..]);
        } else {
            out.push('/');
            rest = &rest[1..];
        }
    }
    out + rest
}

fn ident(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// The paths (their first two segments) of a use tree or path starting at `s`: `a::b::C` gives
/// `[a, b]`, `{a, b::{c, d}}` gives `[a]`, `[b, c]`, `[b, d]`.
fn paths(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(paths(&inner[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths(&inner[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let (name, rest) = ident(s);
    if name.is_empty() {
        return Vec::new();
    }
    let tails = match rest.trim_start().strip_prefix("::") {
        Some(rest) => paths(rest),
        None => Vec::new(),
    };
    if tails.is_empty() {
        return vec![vec![name.to_string()]];
    }
    let head = name.to_string();
    tails
        .into_iter()
        .map(|t| std::iter::once(head.clone()).chain(t).take(2).collect())
        .collect()
}

/// The modules `src` (the text of the file in module `me`) uses, with `prefix` naming the crate
/// (`crate::`, or `tocsin::` in `main.rs`). `domain` lists its submodules.
fn uses(src: &str, me: &str, prefix: &str, domain: &[String]) -> BTreeSet<String> {
    let src = strip_comments(src);
    let sub = |p: &[String]| match p.get(1) {
        Some(s) if domain.contains(s) => format!("domain::{s}"),
        _ => "domain".to_string(),
    };
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices(prefix) {
        let before = src[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        for p in paths(&src[i + prefix.len()..]) {
            out.insert(match p[0].as_str() {
                "self" | "super" => continue,
                "domain" => sub(&p),
                m => m.to_string(),
            });
        }
    }
    if me.starts_with("domain::") {
        for (i, _) in src.match_indices("super::") {
            let mut rest = &src[i + "super::".len()..];
            while let Some(r) = rest.trim_start().strip_prefix("super::") {
                rest = r;
            }
            for p in paths(rest) {
                if domain.contains(&p[0]) {
                    out.insert(format!("domain::{}", p[0]));
                }
            }
        }
    }
    out.remove(me);
    out
}

fn graph(src: &Path) -> Graph {
    let domain: Vec<String> = std::fs::read_dir(src.join("domain"))
        .expect("src/domain")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .filter(|s| s != "mod")
        .collect();
    let (mut g, mut dirs) = (Graph::new(), vec![src.to_path_buf()]);
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder of src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src/");
            let parts: Vec<&str> = rel.iter().filter_map(|s| s.to_str()).collect();
            let me = match parts.as_slice() {
                ["lib.rs"] => continue,
                ["domain", file, ..] if *file != "mod.rs" => {
                    format!("domain::{}", file.trim_end_matches(".rs"))
                }
                [first, ..] if first.ends_with(".rs") => first.trim_end_matches(".rs").to_string(),
                [first, ..] => first.to_string(),
                [] => continue,
            };
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let prefix = if me == "main" { "tocsin::" } else { "crate::" };
            for used in uses(&text, &me, prefix, &domain) {
                let file = format!("src/{}", rel.display());
                g.entry(me.clone()).or_default().entry(used).or_insert(file);
            }
        }
    }
    g
}

/// A cycle, as the modules in order with the first repeated at the end, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        m: &str,
        stack: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            return Some([&stack[at..], &[m.to_string()]].concat());
        }
        if done.iter().any(|d| d == m) {
            return None;
        }
        stack.push(m.to_string());
        for next in g.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(g, next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.push(m.to_string());
        None
    }
    let mut done = Vec::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|l| l.split_whitespace().any(|m| m == top))
}

#[test]
fn modules_form_no_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // The parser finds what is surely there; an empty graph would pass for the wrong reason.
    assert!(g["app"].contains_key("state") && g["main"].contains_key("cli"));
    assert!(g["domain::ticket"].contains_key("domain::alert"));
    if let Some(cycle) = find_cycle(&g) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("  {} -> {} (in {})", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        panic!(
            "module cycle: {}\n{}\nmove what the lower module needs down, or the use up",
            cycle.join(" -> "),
            steps.join("\n")
        );
    }
}

#[test]
fn modules_use_only_their_layer_and_lower() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut problems = Vec::new();
    for (from, edges) in &g {
        for (to, file) in edges {
            match (layer(from), layer(to)) {
                (Some(a), Some(b)) if b > a => problems.push(format!(
                    "{from} (layer {a}) uses {to} (layer {b}) in {file}"
                )),
                (None, _) => problems.push(format!("{from} is in no layer: add it to LAYERS")),
                (_, None) => problems.push(format!("{to} is in no layer: add it to LAYERS")),
                _ => {}
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "layer rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checks_can_fail() {
    let domain = vec!["alert".to_string(), "plugin".to_string()];
    let src = "use crate::{api, web::{a, b}};\n// crate::cli\nlet x = crate::domain::alert::X;";
    let found: Vec<String> = uses(src, "state", "crate::", &domain).into_iter().collect();
    assert_eq!(found, ["api", "domain::alert", "web"]);
    let found = uses(
        "use super::plugin::R; use super::*;",
        "domain::alert",
        "crate::",
        &domain,
    );
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["domain::plugin"]);
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), String::new());
    }
    assert_eq!(find_cycle(&g).expect("a cycle"), ["a", "b", "c", "a"]);
    g.get_mut("c").expect("c").clear();
    assert_eq!(find_cycle(&g), None);
}
