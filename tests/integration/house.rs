//! The house rules of `src/`, read from the source itself: each folder is a layer that
//! uses only the layers below it, no two files or folders import each other in a
//! circle, no clap type below `cli/`, `unsafe` only in `net/sys/`, and files and
//! functions short enough to read (code under `#[cfg(test)]` not counted).
//!
//! The imports are read from the code with its comments, strings and test modules
//! blanked out: `use crate::…` lines, inline `crate::a::b` paths and `super::` paths
//! resolved against the file's own module. A failure names the file, the line and the
//! import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the top down; a layer may use any layer of a lower rank, never one of
/// its own rank but another name (siblings), never one above.
const LAYERS: &[(&str, u32)] = &[
    ("app", 9),
    ("cmd", 8),
    ("cli", 7),
    ("send", 6),
    ("serve", 6),
    ("relay", 6),
    ("doctor", 6),
    ("scan", 6),
    ("report", 5),
    ("wire", 4),
    ("netem", 4),
    ("net", 3),
    ("net/sys", 2),
    ("base", 1),
];

/// Layers that may name clap types: the command line itself and what sits above it.
const CLAP_LAYERS: &[&str] = &["app", "cmd", "cli"];

const MAX_FILE_LINES: usize = 600;
const MAX_CMD_FILE_LINES: usize = 250;
const MAX_FN_LINES: usize = 80;

/// One source file: its path under `src/`, its module path, and its text with comments,
/// string and char literals and `#[cfg(test)]` items blanked (newlines kept, so line
/// numbers hold).
struct Source {
    rel: String,
    module: Vec<String>,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    let test_files = test_module_files(root, &files);
    files
        .into_iter()
        .filter(|p| !test_files.contains(p))
        .map(|path| {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            Source {
                module: module_of(&rel),
                code: strip_test_items(&blank_non_code(&text)),
                rel,
            }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files that are test modules (`#[cfg(test)] mod tests;` in their parent).
fn test_module_files(root: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut tests = BTreeSet::new();
    for path in files {
        let text = blank_non_code(&std::fs::read_to_string(path).unwrap());
        let dir = if path
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#[cfg(test)]") {
            rest = &rest[i + "#[cfg(test)]".len()..];
            let decl = rest.trim_start();
            let decl = decl.strip_prefix("pub(crate) ").unwrap_or(decl);
            if let Some(after) = decl.strip_prefix("mod ") {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if after[name.len()..].trim_start().starts_with(';') {
                    tests.insert(dir.join(format!("{name}.rs")));
                    tests.insert(dir.join(&name).join("mod.rs"));
                }
            }
        }
    }
    let _ = root;
    tests
}

/// `net/sys/poller.rs` -> `[net, sys, poller]`; `net/mod.rs` -> `[net]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The text with comments, string literals and char literals replaced by spaces.
fn blank_non_code(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if raw_string_start(b, i).is_some() => {
                let (hashes, open) = raw_string_start(b, i).unwrap();
                let close = format!("\"{}", "#".repeat(hashes));
                let end = text[open + 1..]
                    .find(&close)
                    .map_or(b.len(), |n| open + 1 + n + close.len());
                blank(&mut out, open, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j.min(b.len()));
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{1F600}', '{') or a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    text[i + 2..].find('\'').map(|n| i + 2 + n)
                } else {
                    let c = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + c) == Some(&b'\'')).then_some(i + 1 + c)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i + 1, end);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `r"`, `r#"`, `br##"`…: the number of `#`s and the index of the opening quote.
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') && b[i - 1] != b'b' {
        return None;
    }
    let mut j = i + 1;
    while b.get(j) == Some(&b'#') {
        j += 1;
    }
    (b.get(j) == Some(&b'"')).then_some((j - i - 1, j))
}

/// The end (exclusive) of the `{…}` block whose `{` is at `open`.
fn block_end(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (j, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Blank every item under `#[cfg(test)]` (a `mod tests { … }`, a test helper fn).
fn strip_test_items(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(i) = code[from..].find("#[cfg(test)]").map(|n| from + n) {
        let after = i + "#[cfg(test)]".len();
        let brace = code[after..].find(['{', ';']).map(|n| after + n);
        let end = match brace {
            Some(b) if code.as_bytes()[b] == b'{' => block_end(code.as_bytes(), b),
            Some(b) => b + 1,
            None => code.len(),
        };
        for c in &mut out[i..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    String::from_utf8(out).unwrap()
}

/// Every `crate::…` and `super::…` path of the code, resolved to a module path, with
/// its line number. Groups (`use crate::a::{b, c::d}`) give one path each.
fn imports(src: &Source) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let code = src.code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < code.len() {
        let starts = |w: &str| src.code[i..].starts_with(w) && (i == 0 || !is_ident(code[i - 1]));
        let (base, mut j) = if starts("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if starts("super::") {
            let mut base = src.module.clone();
            let mut j = i;
            while src.code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            (base, j)
        } else {
            i += 1;
            continue;
        };
        let line = src.code[..i].matches('\n').count() + 1;
        let mut path = base;
        loop {
            let start = j;
            while j < code.len() && is_ident(code[j]) {
                j += 1;
            }
            if j > start {
                path.push(src.code[start..j].to_string());
            }
            if src.code[j..].starts_with("::{") {
                let end = block_end(code, j + 2);
                for item in src.code[j + 3..end - 1].split(',') {
                    let item: Vec<String> = item
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .split("::")
                        .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                        .map(String::from)
                        .collect();
                    let mut p = path.clone();
                    p.extend(item);
                    found.push((line, p));
                }
                j = end;
                break;
            } else if src.code[j..].starts_with("::") && j + 2 < code.len() && is_ident(code[j + 2])
            {
                j += 2;
            } else {
                found.push((line, path.clone()));
                break;
            }
        }
        i = j.max(i + 1);
    }
    found
}

/// The layer a module path is in: `net/sys` for `net::sys::…`, else its first name.
fn layer_of(module: &[String]) -> Option<&'static str> {
    let key = match module {
        [a, b, ..] if a == "net" && b == "sys" => "net/sys".to_string(),
        [a, ..] => a.clone(),
        [] => return None,
    };
    LAYERS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(name, _)| *name)
}

fn rank(layer: &str) -> u32 {
    LAYERS.iter().find(|(n, _)| *n == layer).unwrap().1
}

/// The node of the file graph a module path belongs to: a top folder's file or
/// sub-folder (`net/addr`, `net/sys`, `cmd/send`), or the folder itself.
fn node_of(module: &[String], nodes: &BTreeSet<String>) -> Option<String> {
    let two = module.iter().take(2).cloned().collect::<Vec<_>>().join("/");
    if nodes.contains(&two) {
        return Some(two);
    }
    let one = module.first()?.clone();
    nodes.contains(&one).then_some(one)
}

/// Why each upward or sideways import breaks the layering, one line each.
fn layer_violations(sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for src in sources {
        let Some(me) = layer_of(&src.module) else {
            continue;
        };
        for (line, path) in imports(src) {
            let Some(them) = layer_of(&path) else {
                continue;
            };
            if them == me {
                continue;
            }
            let (a, b) = (rank(me), rank(them));
            if b >= a {
                let how = if b == a {
                    "a sibling layer"
                } else {
                    "a layer above it"
                };
                bad.push(format!(
                    "src/{}:{line}: `{}` ({me}) imports `crate::{}`, {how} ({them})",
                    src.rel,
                    src.module.join("::"),
                    path.join("::")
                ));
            }
        }
    }
    bad
}

/// Circles in the graph of files and sub-folders (`net/addr` -> `net/sys` -> …), a file
/// and the folder it is in not counted as importing each other.
fn file_cycles(sources: &[Source]) -> Vec<String> {
    let mut nodes = BTreeSet::new();
    for src in sources {
        if src.module.is_empty() {
            continue;
        }
        nodes.insert(src.module[0].clone());
        if src.module.len() >= 2 {
            nodes.insert(src.module[..2].join("/"));
        }
    }
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for src in sources {
        let Some(me) = node_of(&src.module, &nodes) else {
            continue;
        };
        for (line, path) in imports(src) {
            let Some(them) = node_of(&path, &nodes) else {
                continue;
            };
            let related = me == them
                || me.starts_with(&format!("{them}/"))
                || them.starts_with(&format!("{me}/"));
            if !related {
                edges
                    .entry(me.clone())
                    .or_default()
                    .entry(them)
                    .or_insert(format!(
                        "src/{}:{line} `crate::{}`",
                        src.rel,
                        path.join("::")
                    ));
            }
        }
    }
    let mut cycles = Vec::new();
    for start in &nodes {
        // A path from one of start's targets back to start is a circle through start.
        let Some(targets) = edges.get(start) else {
            continue;
        };
        for (next, why) in targets {
            if let Some(back) = path_between(&edges, next, start) {
                let mut ring = vec![format!("{start} -> {next} ({why})")];
                ring.extend(back);
                cycles.push(ring.join("; "));
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    cycles
}

fn path_between(
    edges: &BTreeMap<String, BTreeMap<String, String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(from.to_string(), Vec::new())];
    while let Some((node, trail)) = stack.pop() {
        if !seen.insert(node.clone()) {
            continue;
        }
        for (next, why) in edges.get(&node).into_iter().flatten() {
            let mut t: Vec<String> = trail.clone();
            t.push(format!("{node} -> {next} ({why})"));
            if next == to {
                return Some(t);
            }
            stack.push((next.clone(), t));
        }
    }
    None
}

fn clap_below_cli(sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for src in sources {
        let Some(layer) = layer_of(&src.module) else {
            continue;
        };
        if CLAP_LAYERS.contains(&layer) {
            continue;
        }
        for (n, line) in src.code.lines().enumerate() {
            if line.contains("clap::") || line.contains("ValueEnum") {
                bad.push(format!(
                    "src/{}:{}: clap below cli/: {}",
                    src.rel,
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    bad
}

fn unsafe_outside_sys(sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for src in sources {
        if layer_of(&src.module) == Some("net/sys") {
            continue;
        }
        for (n, line) in src.code.lines().enumerate() {
            if line
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "unsafe")
            {
                bad.push(format!(
                    "src/{}:{}: unsafe outside net/sys/",
                    src.rel,
                    n + 1
                ));
            }
        }
    }
    bad
}

/// Lines of code a file has outside its test items (blank lines of a stripped test
/// module at the end not counted).
fn code_lines(src: &Source) -> usize {
    src.code.trim_end().lines().count()
}

fn long_files(sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for src in sources {
        let max = if src.rel.starts_with("cmd/") {
            MAX_CMD_FILE_LINES
        } else {
            MAX_FILE_LINES
        };
        let n = code_lines(src);
        if n > max {
            bad.push(format!("src/{}: {n} lines (at most {max})", src.rel));
        }
    }
    bad
}

/// Every `fn` with a body: its name, first line and length in lines.
fn functions(src: &Source) -> Vec<(String, usize, usize)> {
    let code = src.code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = src.code[from..].find("fn ").map(|n| from + n) {
        from = i + 3;
        if i > 0 && (code[i - 1].is_ascii_alphanumeric() || code[i - 1] == b'_') {
            continue;
        }
        let name: String = src.code[i + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` outside the signature's parentheses and
        // generics; a `;` first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        for (j, &c) in code.iter().enumerate().skip(i) {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else {
            continue;
        };
        let end = block_end(code, open);
        let first = src.code[..i].matches('\n').count() + 1;
        let last = src.code[..end].matches('\n').count() + 1;
        out.push((name, first, last - first + 1));
    }
    out
}

fn long_functions(sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    for src in sources {
        for (name, line, len) in functions(src) {
            if len > MAX_FN_LINES {
                bad.push(format!(
                    "src/{}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})",
                    src.rel
                ));
            }
        }
    }
    bad
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[test]
fn every_layer_uses_only_the_layers_below_it() {
    assert_none(
        "imports that run upward or sideways",
        layer_violations(&sources(&src_dir())),
    );
}

#[test]
fn no_files_or_folders_import_each_other_in_a_circle() {
    assert_none("import circles", file_cycles(&sources(&src_dir())));
}

#[test]
fn no_clap_type_below_cli_and_no_unsafe_outside_sys() {
    let sources = sources(&src_dir());
    assert_none("clap below cli/", clap_below_cli(&sources));
    assert_none("unsafe outside net/sys/", unsafe_outside_sys(&sources));
}

#[test]
fn files_and_functions_are_short_enough_to_read() {
    let sources = sources(&src_dir());
    let mut found = long_files(&sources);
    found.extend(long_functions(&sources));
    assert_none("files or functions too long", found);
}

#[test]
fn every_folder_is_a_known_layer_and_says_what_it_holds() {
    let root = src_dir();
    let mut top: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    for name in &top {
        let path = root.join(name);
        if path.is_dir() {
            assert!(
                LAYERS.iter().any(|(l, _)| l == name),
                "src/{name}/ is not a layer of the table in tests/integration/house.rs"
            );
            let head = std::fs::read_to_string(path.join("mod.rs")).unwrap_or_default();
            assert!(
                head.starts_with("//! "),
                "src/{name}/mod.rs must open with a //! line"
            );
        } else {
            assert!(
                ["lib.rs", "main.rs"].contains(&name.as_str()),
                "src/{name}: src/ holds main.rs, lib.rs and folders"
            );
        }
    }
}

// The checker itself, on small made-up trees: each rule can fail.

fn fake(rel: &str, text: &str) -> Source {
    Source {
        rel: rel.into(),
        module: module_of(rel),
        code: strip_test_items(&blank_non_code(text)),
    }
}

#[test]
fn the_checker_catches_an_upward_import_in_a_use_line_and_inline() {
    let s = [
        fake("net/addr.rs", "use crate::report::output::Format;\nfn f() {}\n"),
        fake("wire/dns/mod.rs", "fn f() { crate::serve::reply::go(); }\n"),
        fake("send/run.rs", "use crate::serve::{reply, exec::Job};\n"),
        fake("net/sys/mod.rs", "fn f() { super::super::report::x(); }\n"),
        fake("net/socket.rs", "use crate::net::sys::x; use crate::base::error::Usage;\n"),
        fake(
            "base/units.rs",
            "// crate::app::exit\nconst S: &str = \"crate::app\";\n#[cfg(test)]\nmod tests { use crate::app::exit; }\n",
        ),
    ];
    let bad = layer_violations(&s);
    assert_eq!(bad.len(), 5, "{bad:#?}");
    assert!(bad[0].starts_with("src/net/addr.rs:1: `net::addr` (net) imports `crate::report::output::Format`, a layer above it (report)"), "{}", bad[0]);
    assert!(bad[1].contains("wire/dns/mod.rs:1") && bad[1].contains("crate::serve::reply::go"));
    assert!(bad[2].contains("crate::serve::reply") && bad[2].contains("a sibling layer"));
    assert!(bad[3].contains("crate::serve::exec::Job"));
    assert!(bad[4].contains("net/sys/mod.rs") && bad[4].contains("crate::report::x"));
}

#[test]
fn the_checker_catches_circles_clap_unsafe_and_long_code() {
    let s = [
        fake("net/addr.rs", "use crate::net::iface::x;\n"),
        fake("net/iface.rs", "fn f() { crate::net::addr::y(); }\n"),
        fake("net/icmp.rs", "use crate::net::addr::y;\n"),
    ];
    let cycles = file_cycles(&s);
    assert!(
        !cycles.is_empty() && cycles.iter().all(|c| !c.contains("icmp")),
        "{cycles:#?}"
    );
    assert!(cycles[0].contains("net/addr -> net/iface"), "{cycles:#?}");

    let s = [fake(
        "report/output/mod.rs",
        "#[derive(clap::ValueEnum)]\nenum F {}\n",
    )];
    assert_eq!(clap_below_cli(&s).len(), 1);
    let s = [fake("net/socket.rs", "fn f() { unsafe { g() } }\n")];
    assert_eq!(unsafe_outside_sys(&s).len(), 1);
    let s = [fake("net/sys/linux.rs", "fn f() { unsafe { g() } }\n")];
    assert!(unsafe_outside_sys(&s).is_empty());

    let body = "    x();\n".repeat(MAX_FN_LINES - 2);
    let s = [fake(
        "send/run.rs",
        &format!("fn short() {{\n{body}}}\nfn long(a: [u8; 2]) -> u8 {{\n{body}    x();\n}}\n"),
    )];
    assert_eq!(
        long_functions(&s),
        vec![format!(
            "src/send/run.rs:{}: fn long is {} lines (at most {MAX_FN_LINES})",
            MAX_FN_LINES + 1,
            MAX_FN_LINES + 1
        )]
    );
    let s = [
        fake("cmd/x.rs", &"x();\n".repeat(251)),
        fake(
            "cmd/y.rs",
            &format!(
                "x();\n#[cfg(test)]\nmod tests {{\n{}}}\n",
                "x();\n".repeat(400)
            ),
        ),
    ];
    assert_eq!(
        long_files(&s),
        vec!["src/cmd/x.rs: 251 lines (at most 250)".to_string()]
    );
}

#[test]
fn strings_chars_and_lifetimes_do_not_confuse_the_reader() {
    let s = fake(
        "net/addr.rs",
        "fn f<'a>(x: &'a str) -> char { let _ = \"}{\"; let _ = r#\"}\"#; '{' }\nfn g() {}\n",
    );
    let fns = functions(&s);
    assert_eq!(fns, vec![("f".to_string(), 1, 1), ("g".to_string(), 2, 1)]);
}
