//! The house's own rules, read off the source tree: no two modules of a
//! crate depend on each other (directly or round a longer loop), and no
//! file grows past what a reader takes in at once. `docs/architecture.md`
//! states these rules; these tests keep them true.
//!
//! The module graph is built from the source text, not from rustc: every
//! `use crate::…`, `use super::…`, `use self::…` (braces expanded) and every
//! inline `crate::…`/`super::…` path outside comments, string literals and
//! a file's trailing `#[cfg(test)] mod tests`. A path names the deepest
//! module file it reaches (`crate::amqp::wire::Record` → `amqp/wire.rs`);
//! a module's own ancestors (a child naming its parent's re-exports) are
//! not edges: a parent declares its children, so that edge always exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `host/src` files may hold at most this many lines.
const MAX_SOURCE_LINES: usize = 700;
/// `tests/e2e` files may hold at most this many lines.
const MAX_TEST_LINES: usize = 1200;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

type Module = Vec<String>;

/// The module a file is: `amqp/wire.rs` → `[amqp, wire]`, `amqp/mod.rs` →
/// `[amqp]`, `lib.rs` → `[]`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text with comments, string and char literals blanked and a
/// trailing `#[cfg(test)] mod tests` cut off.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\''
            && (rest[1..].starts_with("\\") || rest.chars().nth(2) == Some('\''))
        {
            // A char literal ('a', '\n', '\''), not a lifetime.
            let end = rest[2..].find('\'').map_or(rest.len(), |e| e + 3);
            i += end;
            out.push_str("' '");
        } else {
            let ch = rest.chars().next().expect("not at the end");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `crate::a::{b::c, d}` → `crate::a::b::c`, `crate::a::d`.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let mut depth = 0;
    let mut close = path.len();
    for (at, ch) in path.char_indices().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = at;
                    break;
                }
            }
            _ => {}
        }
    }
    let (head, body) = (&path[..open], &path[open + 1..close]);
    let tail = path.get(close + 1..).unwrap_or("");
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, ch) in body.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand(&format!("{head}{item}{tail}")))
        .collect()
}

/// Every path a file's code names that starts at `crate`, `super` or `self`.
fn paths_in(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        paths.extend(expand(&after[..end]));
        rest = &after[end..];
    }
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let word_start = at == 0
                || !rest[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if word_start {
                paths.push(tail[..len].to_string());
            }
            rest = &tail[len.max(1)..];
        }
    }
    paths
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let at = from + at;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if boundary(before) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The module graph of the crate whose root is `src`: module → the
/// modules it names.
fn module_graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files: BTreeMap<Module, PathBuf> = rust_files(src)
        .into_iter()
        .map(|f| (module_of(src, &f), f))
        .collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).expect("a source file");
        let edges = graph.entry(module.clone()).or_default();
        for path in paths_in(&code_of(&text)) {
            let mut segs = path.split("::").filter(|s| !s.is_empty()).peekable();
            let mut base: Module = match segs.peek().copied() {
                Some("crate") => {
                    segs.next();
                    Vec::new()
                }
                Some("super") => {
                    let mut base = module.clone();
                    while segs.peek() == Some(&"super") {
                        segs.next();
                        base.pop();
                    }
                    base
                }
                Some("self") => {
                    segs.next();
                    module.clone()
                }
                _ => continue,
            };
            let mut reached = files.contains_key(&base).then(|| base.clone());
            for seg in segs {
                base.push(seg.to_string());
                if files.contains_key(&base) {
                    reached = Some(base.clone());
                } else {
                    break;
                }
            }
            if let Some(target) = reached
                && &target != module
                && !module.starts_with(&target)
            {
                edges.insert(target);
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let Some((w, _)) = self.graph.get_key_value(w) else {
                    continue;
                };
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

fn assert_no_circle(src: &str) {
    let graph = module_graph(&repo_root().join(src));
    let found: Vec<String> = circles(&graph)
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("{} → {}", name(a), name(b)))
                })
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "modules of {src} that depend on each other:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_two_modules_of_the_host_depend_on_each_other() {
    assert_no_circle("host/src");
}

/// The rooms of `host/src` in layers: a room may name rooms of lower
/// layers only, so the data's path never runs back up (the transport knows
/// no sandbox, observation knows no room, the watchers know no daemon).
const ROOM_LAYERS: &[&[&str]] = &[
    &["store", "source", "observe"],
    &["publish", "runtime"],
    &["amqp", "watch"],
    &["daemon"],
    &["cli"],
];

#[test]
fn a_room_of_the_host_names_only_rooms_below_it() {
    let graph = module_graph(&repo_root().join("host/src"));
    let layer_of = |room: &str| ROOM_LAYERS.iter().position(|layer| layer.contains(&room));
    let mut wrong = BTreeSet::new();
    for (from, targets) in &graph {
        let Some(room) = from.first() else { continue };
        for to in targets {
            let Some(target) = to.first() else { continue };
            if target == room {
                continue;
            }
            match (layer_of(room), layer_of(target)) {
                (Some(a), Some(b)) if b < a => {}
                (a, b) => {
                    wrong.insert(format!(
                        "{} → {} (layers {a:?} → {b:?})",
                        name(from),
                        name(to)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that do not run down ROOM_LAYERS:\n  {}",
        wrong.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn no_two_modules_of_the_core_depend_on_each_other() {
    assert_no_circle("host/core/src");
}

#[test]
fn no_two_modules_of_the_handler_sdk_depend_on_each_other() {
    assert_no_circle("handler-sdk/src");
}

/// The checker itself: a circle through `use` braces, `super` and an
/// inline path is found; a child naming its parent is not a circle.
#[test]
fn the_circle_finder_sees_braces_super_and_inline_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(src.join("a/mod.rs"), "mod x;\nmod y;\npub use x::X;\n").expect("write");
    std::fs::write(
        src.join("a/x.rs"),
        "// use super::y; (a comment)\nuse super::{y::{Y}, X as _};\npub struct X;\n",
    )
    .expect("write");
    std::fs::write(
        src.join("a/y.rs"),
        "pub struct Y;\npub fn f(x: crate::a::x::X) -> crate::a::x::X { let _ = \"crate::b\"; x }\n",
    )
    .expect("write");
    std::fs::write(src.join("b.rs"), "use crate::a::X;\n").expect("write");
    let graph = module_graph(src);
    let found = circles(&graph);
    let a = |s: &str| s.split("::").map(String::from).collect::<Module>();
    assert_eq!(found, vec![vec![a("a::x"), a("a::y")]], "{graph:?}");
    assert!(graph[&a("b")].contains(&a("a")), "{graph:?}");
    assert!(
        !graph[&a("a::y")].contains(&a("b")),
        "a string is not a path"
    );
}

fn long_files(dir: &str, max: usize) -> Vec<String> {
    let root = repo_root();
    rust_files(&root.join(dir))
        .into_iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(&file)
                .expect("a file")
                .lines()
                .count();
            (lines > max).then(|| {
                format!(
                    "{}: {lines} lines",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                )
            })
        })
        .collect()
}

#[test]
fn no_host_source_file_is_over_700_lines() {
    let long = long_files("host/src", MAX_SOURCE_LINES);
    assert!(
        long.is_empty(),
        "over {MAX_SOURCE_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn no_end_to_end_test_file_is_over_1200_lines() {
    let long = long_files("tests/e2e", MAX_TEST_LINES);
    assert!(
        long.is_empty(),
        "over {MAX_TEST_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}
