//! Layers only look down: no module uses a module that uses it back, in the server or the
//! client. Read from the sources, so that a new import circle fails here, by name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`http::gate`) to the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn server_modules_only_use_modules_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_acyclic(&root, &graph(&root));
}

#[test]
fn server_modules_only_use_modules_listed_below_them_in_the_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let map = lib_map(&root);
    let declared: BTreeSet<String> = std::fs::read_to_string(root.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let listed: BTreeSet<String> = map.iter().cloned().collect();
    assert_eq!(listed, declared, "lib.rs's map lists every module, once");
    let rank = |module: &str| {
        let top = module.split("::").next().unwrap_or_default();
        map.iter().position(|m| m == top)
    };
    let mut upward = Vec::new();
    for (module, uses) in graph(&root) {
        for used in uses {
            if let (Some(from), Some(to)) = (rank(&module), rank(&used))
                && to < from
            {
                upward.push(format!("{module} uses {used}, listed above it"));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

/// The modules in the order `lib.rs`'s map lists them, top to bottom.
fn lib_map(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn nothing_under_store_decides_a_rule_of_the_bar() {
    // What deciding looks like: naming a flag to give, a burst or empty-keg check, a keg
    // level, an idempotency key's fingerprint, or whether a keg operation applies.
    const DECIDING: &[&str] = &[
        "Flag::Burst",
        "Flag::EmptyKeg",
        "Flag::Tiny",
        "Flag::OverPour",
        "Flag::AfterHours",
        "flags.with(",
        "between(",
        "empty_before(",
        "remaining",
        "microlitres(",
        "fingerprint(",
        ".check(&",
        "Fingerprint",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut files = Vec::new();
    collect(&root, &mut files);
    assert!(files.len() > 5, "no store files under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            for word in DECIDING.iter().filter(|w| line.contains(**w)) {
                found.push(format!("{}:{}: {word}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/store decides what crate::decide should:\n{}",
        found.join("\n")
    );
}

#[test]
fn client_modules_only_use_modules_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("client/src");
    assert_acyclic(&root, &graph(&root));
}

#[test]
fn a_circle_is_found_and_named() {
    let graph = graph_of(
        "circle",
        &[
            ("lib.rs", "pub mod http;\npub mod server;\n"),
            ("server.rs", "use crate::http::routes;\n"),
            (
                "http/mod.rs",
                "mod beers;\npub use beers::Thing;\nuse crate::server::AppState;\n",
            ),
            ("http/beers.rs", "use super::{AppState};\n"),
        ],
    );
    assert_eq!(
        cycle(&graph),
        Some(vec!["http".into(), "server".into(), "http".into()])
    );
}

#[test]
fn a_use_over_several_lines_is_read_whole() {
    let graph = graph_of(
        "lines",
        &[
            ("lib.rs", "pub mod feed;\npub mod store;\npub mod bus;\n"),
            ("bus.rs", "pub struct Bus;\n"),
            (
                "store.rs",
                "use crate::{\n    bus::Bus,\n    feed::Feed,\n};\n",
            ),
            ("feed.rs", "use crate::store::Store;\n"),
        ],
    );
    assert_eq!(
        graph["store"],
        BTreeSet::from(["bus".to_owned(), "feed".to_owned()])
    );
    assert_eq!(
        cycle(&graph),
        Some(vec!["feed".into(), "store".into(), "feed".into()])
    );
}

/// The graph of a crate made of `files` (path under `src`, text), written to a fresh
/// directory named after `name`.
fn graph_of(name: &str, files: &[(&str, &str)]) -> Graph {
    let dir = std::env::temp_dir().join(format!("altair-arch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let graph = graph(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    graph
}

fn assert_acyclic(root: &Path, graph: &Graph) {
    assert!(graph.len() > 3, "no modules found under {}", root.display());
    if let Some(cycle) = cycle(graph) {
        panic!(
            "import circle under {}: {}",
            root.display(),
            cycle.join(" -> ")
        );
    }
}

/// Every module under `root` (a crate's `src`) and the modules its code uses, by `crate::`,
/// `super::` and its own child modules' names. `mod` declarations and `pub use`
/// re-exports are a module's table of contents, not uses; test modules are left out.
fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    collect(root, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(root).ok()?.with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts
                .last()
                .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
            {
                parts.pop();
            }
            // The binary's main.rs is another crate; lib.rs is the root, which uses nothing.
            (!parts.is_empty()).then(|| (parts.join("::"), file))
        })
        .collect();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let is_dir = file.ends_with("mod.rs");
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        let own_children: Vec<String> = known
            .iter()
            .filter(|m| {
                is_dir
                    && m.strip_prefix(&format!("{module}::"))
                        .is_some_and(|rest| !rest.contains("::"))
            })
            .map(|m| m.rsplit("::").next().unwrap_or_default().to_owned())
            .collect();
        let mut uses = BTreeSet::new();
        for line in statements(code) {
            let line = line.as_str();
            if line.starts_with("mod ")
                || line.starts_with("pub mod ")
                || line.starts_with("pub use ")
            {
                continue;
            }
            for (base, path) in paths(line) {
                let base = match base.as_str() {
                    "crate" => String::new(),
                    "super" => parent.clone(),
                    child if own_children.iter().any(|c| c == child) => module.clone(),
                    _ => continue,
                };
                let segments: Vec<&str> = if base.is_empty() {
                    path.clone()
                } else {
                    base.split("::").chain(path.iter().copied()).collect()
                };
                // The longest prefix that is a module.
                let target = (1..=segments.len())
                    .rev()
                    .map(|n| segments[..n].join("::"))
                    .find(|m| known.contains(m));
                if let Some(target) = target
                    && target != *module
                {
                    uses.insert(target);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// The code's lines without comments, a `use` over several lines joined into one:
/// `use super::{\n    error::ApiError,\n    reply,\n};` is read as written on one line.
fn statements(code: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut open = String::new();
    for line in code.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        if !open.is_empty() {
            open.push(' ');
        }
        open.push_str(line);
        let is_use = open.starts_with("use ")
            || open.starts_with("pub use ")
            || open.starts_with("pub(crate) use ");
        if is_use && open.matches('{').count() > open.matches('}').count() {
            continue;
        }
        statements.push(std::mem::take(&mut open));
    }
    statements
}

/// The paths a line names, as (first segment, the rest), braces expanded one level:
/// `use super::{error::ApiError, reply}` gives (super, [error, ApiError]) and (super, [reply]).
fn paths(line: &str) -> Vec<(String, Vec<&str>)> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let word_end = line[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(line.len(), |n| i + n);
        if !starts_word || word_end == i || !line[word_end..].starts_with("::") {
            i += line[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let base = line[i..word_end].to_owned();
        let rest = &line[word_end + 2..];
        if let Some(inner) = rest.strip_prefix('{') {
            let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
            for item in inner.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    found.push((base.clone(), segments(item)));
                }
            }
        } else {
            found.push((base, segments(rest)));
        }
        i = word_end + 2;
    }
    found
}

fn segments(path: &str) -> Vec<&str> {
    path.split("::")
        .map(|s| {
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            &s[..end]
        })
        .take_while(|s| !s.is_empty())
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// A circle of uses, first module repeated at the end, if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}
