//! The module order of every crate, as ARCHITECTURE.md states it, checked
//! against the code.
//!
//! ARCHITECTURE.md's "Module order" section lists, for each crate, its
//! modules in layers, lowest first:
//!
//! ````text
//! ```modules tenantkit-webhooks
//! schema
//! endpoints
//! outbox
//! ```
//! ````
//!
//! A module knows about the modules on the lines above its own and about
//! nothing on its own line or below ("`schema` does not know about
//! `endpoints`"). This test reads every source file of the crate, collects
//! the modules each one names (`use crate::…`, `crate::…` paths, and the
//! crate root's re-exports resolved to the module that defines them), and
//! fails on any edge the order forbids, on a cycle, and on a module the
//! order leaves out. Test modules (`#[cfg(test)]`) are not part of the
//! shape and are skipped.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One crate's declared order: its folder and its layers, lowest first.
struct Order {
    crate_name: String,
    layers: Vec<Vec<String>>,
}

/// The `modules` blocks of ARCHITECTURE.md.
fn declared_orders() -> Vec<Order> {
    let text = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut orders = Vec::new();
    let mut current: Option<Order> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("```modules ") {
            current = Some(Order {
                crate_name: name.trim().to_owned(),
                layers: Vec::new(),
            });
        } else if trimmed == "```" {
            if let Some(order) = current.take() {
                orders.push(order);
            }
        } else if let Some(order) = current.as_mut() {
            let layer: Vec<String> = trimmed
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            if !layer.is_empty() {
                order.layers.push(layer);
            }
        }
    }
    orders
}

/// The folder of a crate, from its package name.
fn crate_dir(name: &str) -> PathBuf {
    let dir = match name {
        "tenantkit-server" => "reference-server",
        other => other,
    };
    root().join(dir)
}

/// Source with comments, string literals and `#[cfg(test)]` items removed.
fn strip(source: &str) -> String {
    // Comments and strings first (so braces in them cannot confuse the
    // test-module skipping below).
    let bytes: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && is_raw_start(&bytes, i) {
            // r"..." or r#"..."#
            let mut hashes = 0;
            let mut j = i + 1;
            while bytes[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= bytes.len() {
                    break;
                }
                if bytes[j] == '"' && (0..hashes).all(|h| bytes.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&bytes, i) {
            i += 1;
            while i < bytes.len() && bytes[i] != '\'' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    skip_test_items(&out)
}

fn is_raw_start(bytes: &[char], i: usize) -> bool {
    let before_ok = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
    let mut j = i + 1;
    while j < bytes.len() && bytes[j] == '#' {
        j += 1;
    }
    before_ok && bytes.get(j) == Some(&'"')
}

/// `'a'` or `'\n'`, not a lifetime `'a`.
fn is_char_literal(bytes: &[char], i: usize) -> bool {
    matches!(
        (bytes.get(i + 1), bytes.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// Removes every item that follows a `#[cfg(test)]` attribute: a `mod x;`
/// declaration or a braced item.
fn skip_test_items(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let brace = after.find('{');
        let semi = after.find(';');
        match (brace, semi) {
            (Some(b), Some(s)) if s < b => rest = &after[s + 1..],
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (k, ch) in after[b..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (None, Some(s)) => rest = &after[s + 1..],
            (None, None) => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The top-level modules a crate declares in its root, without the ones
/// only compiled for its own unit tests.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let stripped = strip(lib);
    let mut modules = BTreeSet::new();
    for line in stripped.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(rest) = line.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
        {
            modules.insert(name.trim().to_owned());
        }
    }
    modules
}

/// The first segments of every path in a use tree: `{a::b, c}` gives `a`, `c`.
fn use_tree_heads(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{') {
        let inner = inner.strip_suffix('}').unwrap_or(inner);
        let mut heads = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (k, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    heads.extend(use_tree_heads(&inner[start..k]));
                    start = k + 1;
                }
                _ => {}
            }
        }
        heads.extend(use_tree_heads(&inner[start..]));
        heads
    } else {
        let head: String = tree
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if head.is_empty() {
            Vec::new()
        } else {
            vec![head]
        }
    }
}

/// Every identifier following `prefix` (`crate::`, `super::`) outside `use`
/// trees, and every head of a `use prefix{…};` tree.
fn named_heads(source: &str, prefix: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        let after = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            rest = after;
            continue;
        }
        if after.starts_with('{') {
            let end = after.find(';').unwrap_or(after.len());
            heads.extend(use_tree_heads(&after[..end]));
            rest = &after[end..];
        } else {
            heads.extend(use_tree_heads(after.split("::").next().unwrap_or("")));
            rest = after;
        }
    }
    heads
}

/// Names the crate root re-exports, mapped to the module they come from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let stripped = strip(lib);
    let mut map = BTreeMap::new();
    let mut rest = stripped.as_str();
    while let Some(at) = rest.find("pub use ") {
        let after = &rest[at + "pub use ".len()..];
        let end = after.find(';').unwrap_or(after.len());
        let stmt = &after[..end];
        if let Some((module, tree)) = stmt.split_once("::") {
            let module = module.trim().to_owned();
            for name in tree.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if !name.is_empty() {
                    map.entry(name.to_owned()).or_insert_with(|| module.clone());
                }
            }
        }
        rest = &after[end..];
    }
    map
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The source folder and root file of an order's block: a crate
/// (`tenantkit-webhooks`) or one of its modules (`tenantkit::store`).
fn block_root(block: &str) -> (PathBuf, PathBuf, Option<String>) {
    match block.split_once("::") {
        None => {
            let src = crate_dir(block).join("src");
            (src.clone(), src.join("lib.rs"), None)
        }
        Some((krate, module)) => {
            let src = crate_dir(krate).join("src").join(module);
            (src.clone(), src.join("mod.rs"), Some(module.to_owned()))
        }
    }
}

/// module → the modules of the same crate (or parent module) it names.
fn module_graph(block: &str) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let (src, root_file, parent) = block_root(block);
    let root = fs::read_to_string(&root_file).unwrap();
    let modules = declared_modules(&root);
    let reexports = root_reexports(&root);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        if !modules.contains(&module) {
            // The root, a binary, or a file only unit tests compile.
            continue;
        }
        let source = strip(&fs::read_to_string(&file).unwrap());
        let heads = match &parent {
            None => named_heads(&source, "crate::"),
            Some(parent) => {
                let mut heads = named_heads(&source, &format!("crate::{parent}::"));
                if relative.components().count() == 1 {
                    heads.extend(named_heads(&source, "super::"));
                }
                heads
            }
        };
        for head in heads {
            let target = if modules.contains(&head) {
                head
            } else if let Some(from) = reexports.get(&head) {
                from.clone()
            } else {
                continue;
            };
            if target != module && modules.contains(&target) {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    (modules, graph)
}

/// A cycle in the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn every_crate_has_a_declared_module_order() {
    let orders = declared_orders();
    let named: BTreeSet<&str> = orders.iter().map(|o| o.crate_name.as_str()).collect();
    for krate in [
        "tenantkit",
        "tenantkit-billing",
        "tenantkit-webhooks",
        "tenantkit-analytics",
        "tenantkit-server",
    ] {
        assert!(
            named.contains(krate),
            "ARCHITECTURE.md has no ```modules {krate} block"
        );
    }
}

#[test]
fn modules_only_know_the_modules_below_them() {
    let mut problems = Vec::new();
    for order in declared_orders() {
        let (modules, graph) = module_graph(&order.crate_name);
        let mut layer_of = BTreeMap::new();
        for (n, layer) in order.layers.iter().enumerate() {
            for module in layer {
                if !modules.contains(module) {
                    problems.push(format!(
                        "{}: ARCHITECTURE.md orders `{module}`, which the crate does not have",
                        order.crate_name
                    ));
                }
                layer_of.insert(module.clone(), n);
            }
        }
        for module in &modules {
            if !layer_of.contains_key(module) {
                problems.push(format!(
                    "{}: `{module}` is missing from its module order in ARCHITECTURE.md",
                    order.crate_name
                ));
            }
        }
        for (from, targets) in &graph {
            for to in targets {
                if let (Some(a), Some(b)) = (layer_of.get(from), layer_of.get(to))
                    && b >= a
                {
                    problems.push(format!(
                        "{}: `{from}` uses `{to}`, but `{from}` does not know about `{to}`",
                        order.crate_name
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            problems.push(format!(
                "{}: import cycle {}",
                order.crate_name,
                cycle.join(" → ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A crate root declares its modules and re-exports what users need, and
/// defines nothing itself: every item lives in a module that has a place in
/// the order.
#[test]
fn crate_roots_only_declare_modules_and_reexport() {
    let mut problems = Vec::new();
    for order in declared_orders() {
        if order.crate_name.contains("::") {
            continue;
        }
        let lib = fs::read_to_string(crate_dir(&order.crate_name).join("src/lib.rs")).unwrap();
        let stripped = strip(&lib);
        let mut depth = 0usize;
        let mut statement = String::new();
        for line in stripped.lines() {
            let trimmed = line.trim();
            if depth == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
                statement.push_str(trimmed);
                statement.push(' ');
                if trimmed.ends_with(';') || trimmed.ends_with('}') || trimmed.ends_with('{') {
                    let s = statement.trim();
                    let s = s.strip_prefix("pub ").unwrap_or(s);
                    let allowed = s.starts_with("mod ") || s.starts_with("use ");
                    if !allowed {
                        problems.push(format!("{}: lib.rs defines `{s}`", order.crate_name));
                    }
                    statement.clear();
                }
            }
            depth += line.matches('{').count();
            depth -= line.matches('}').count().min(depth);
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The isolation core lends nothing crate-wide: no item of
/// `tenantkit/src/store` is `pub(crate)`, so what the core builds on the
/// store (the users and API keys of `accounts`, the tower layers) can only
/// use its public, tenant-scoped API, the same one other crates use. What
/// the store shares between its own files is `pub(in crate::store)`.
#[test]
fn the_store_lends_nothing_crate_wide() {
    let mut files = Vec::new();
    rust_files(&root().join("tenantkit/src/store"), &mut files);
    assert!(files.len() > 10, "the store's files were not found");
    let mut problems = Vec::new();
    for file in files {
        let source = strip(&fs::read_to_string(&file).unwrap());
        for (n, line) in source.lines().enumerate() {
            if line.contains("pub(crate)")
                || line.contains("pub(super)") && file.ends_with("store/mod.rs")
            {
                problems.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "items the store lends crate-wide:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_use_trees_paths_and_reexports() {
    let source = strip(
        "use crate::{a::{X, Y}, b};\n// crate::c\nfn f() { crate::d::g(); let s = \"crate::e\"; }\n\
         #[cfg(test)]\nmod tests { use crate::f; }\n",
    );
    assert_eq!(named_heads(&source, "crate::"), ["a", "b", "d"]);
    let reexports = root_reexports("pub use endpoints::{Webhook, Webhooks};\npub use store::Db;");
    assert_eq!(reexports["Webhooks"], "endpoints");
    assert_eq!(reexports["Db"], "store");
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
}
