//! The library's layers point down only: each module imports from its own layer or below, and
//! no files import each other in a circle. The layers are the table under `## Layers` in
//! docs/design/architecture.md; the imports are the `crate::` paths of jobs/ (outside the
//! binaries, comments and unit tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Top-level module name to layer number, from the design docs' table.
fn layers() -> BTreeMap<String, u32> {
    let text = std::fs::read_to_string(root().join("docs/design/architecture.md")).unwrap();
    let start = text
        .find("\n## Layers\n")
        .expect("docs/design/architecture.md has ## Layers");
    let section = &text[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut layers = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(
                layers.insert(module.to_string(), layer).is_none(),
                "{module} is in two layers"
            );
        }
    }
    assert!(layers.len() > 5, "the layers table lists the modules: {layers:?}");
    layers
}

/// Every library file below jobs/ but the binaries and lib.rs, by module path (`input::catalog`).
fn library_files() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let jobs = root().join("jobs");
    let mut found = Vec::new();
    walk(&jobs, &mut found);
    found
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&jobs).unwrap().with_extension("");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts[0] == "bin" || parts == ["lib"] {
                return None;
            }
            let parts = match parts.split_last() {
                Some((last, rest)) if last == "mod" => rest.to_vec(),
                _ => parts,
            };
            Some((parts.join("::"), path))
        })
        .collect()
}

/// The code a file runs in the library: comment lines and its unit tests left out.
fn library_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path named after `crate::`, with `{a, b::{c, d}}` groups spread out.
fn crate_paths(code: &str) -> Vec<String> {
    fn path_at(text: &str, prefix: &str, out: &mut Vec<String>) -> usize {
        let mut i = 0;
        let mut path = prefix.to_string();
        let bytes = text.as_bytes();
        loop {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if i > start {
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str(&text[start..i]);
            }
            if text[i..].starts_with("::{") {
                i += 3;
                loop {
                    while text[i..].starts_with([' ', '\n', ',']) {
                        i += 1;
                    }
                    if text[i..].starts_with('}') {
                        return i + 1;
                    }
                    i += path_at(&text[i..], &path, out);
                    // Past an `as` rename or anything else up to the next item.
                    while i < bytes.len() && !matches!(bytes[i], b',' | b'}') {
                        i += 1;
                    }
                }
            } else if text[i..].starts_with("::") {
                i += 2;
            } else {
                out.push(path);
                return i;
            }
        }
    }
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && matches!(code.as_bytes()[at - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') {
            continue;
        }
        path_at(&code[at + "crate::".len()..], "", &mut out);
    }
    out
}

/// The file a path names: its longest prefix that is a module file.
fn file_of(files: &BTreeMap<String, PathBuf>, named: &str) -> Option<String> {
    let parts: Vec<&str> = named.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|prefix| files.contains_key(prefix))
}

/// Each file's imports of other library files.
fn imports(files: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    files
        .iter()
        .map(|(module, path)| {
            let targets = crate_paths(&library_code(path))
                .into_iter()
                .filter_map(|named| file_of(files, &named))
                .filter(|target| target != module)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn layer_of(layers: &BTreeMap<String, u32>, module: &str) -> u32 {
    let top = module.split("::").next().unwrap();
    *layers
        .get(top)
        .unwrap_or_else(|| panic!("module {top} is in no layer of docs/design/architecture.md"))
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_circle() {
    let layers = layers();
    let files = library_files();
    let imports = imports(&files);
    for top in layers.keys() {
        assert!(
            files.keys().any(|m| m.split("::").next() == Some(top.as_str())),
            "the layers table names {top}, which is no module"
        );
    }
    let upward: Vec<String> = imports
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer_of(&layers, to) > layer_of(&layers, from))
        .map(|(from, to)| {
            format!(
                "{from} (layer {}) imports {to} (layer {})",
                layer_of(&layers, from),
                layer_of(&layers, to)
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );

    // A circle: a depth-first walk that meets a file still on its path.
    fn visit<'a>(
        module: &'a str,
        imports: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("a circle of imports: {} -> {module}", path[at..].join(" -> "));
        }
        path.push(module);
        for target in &imports[module] {
            visit(target, imports, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        visit(module, &imports, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_import_reader_sees_grouped_and_nested_paths() {
    let code = "use crate::input::{catalog::{self, RunDate}, contract};\nlet x = crate::engine::new_session();\nnot_crate::x";
    assert_eq!(
        crate_paths(code),
        [
            "input::catalog::self",
            "input::catalog::RunDate",
            "input::contract",
            "engine::new_session"
        ]
    );
    let files: BTreeMap<String, PathBuf> = ["input::catalog", "input::contract", "engine"]
        .map(|m| (m.to_string(), PathBuf::new()))
        .into();
    assert_eq!(
        file_of(&files, "input::catalog::self").as_deref(),
        Some("input::catalog")
    );
    assert_eq!(file_of(&files, "storage::Root"), None);
}
