//! ARCHITECTURE.md is a map for changing the code, so it must not drift: its table of
//! files names every file under `src/`, and every file, module and item it names in
//! backticks exists (an item: as a word in the code of `src/`, comments left out).
//!
//! Fixture: the repository's own files, read from `CARGO_MANIFEST_DIR`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn map() -> String {
    fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap()
}

/// Every `.rs` file below `dir`, as a path relative to `base`.
fn rust_files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(base).unwrap();
            out.insert(relative.to_str().unwrap().replace('\\', "/"));
        }
    }
}

/// The text in backticks, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The code of every file under `src/`, with `//` comments cut off (a string holding `//`
/// loses its tail, which only makes the check stricter).
fn code_words() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    rust_files(&root().join("src"), &root().join("src"), &mut files);
    let mut words = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(root().join("src").join(file)).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if !word.is_empty() {
                    words.insert(word.to_owned());
                }
            }
        }
    }
    words
}

#[test]
fn the_file_table_names_every_source_file() {
    let map = map();
    let table = map
        .split("## Every file")
        .nth(1)
        .expect("ARCHITECTURE.md has a section \"Every file\"");
    let table = table.split("\n## ").next().unwrap();
    let named: BTreeSet<String> = table
        .lines()
        .filter_map(|row| row.strip_prefix("| `"))
        .map(|row| row.split('`').next().unwrap().to_owned())
        .collect();
    let mut files = BTreeSet::new();
    rust_files(&root().join("src"), &root().join("src"), &mut files);
    let missing: Vec<_> = files.difference(&named).collect();
    let stale: Vec<_> = named.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's file table lacks {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's file table names no longer existing {stale:?}"
    );
}

#[test]
fn every_file_and_item_it_names_exists() {
    let map = map();
    let words = code_words();
    let mut files = BTreeSet::new();
    rust_files(&root().join("src"), &root().join("src"), &mut files);
    let mut missing = Vec::new();
    for token in backticked(&map) {
        let token = token.trim_end_matches("()");
        if token.ends_with(".rs") || token.contains('/') {
            // A file or a module folder: `src/` or the root holds it, or a table about one
            // folder names it relative to that folder (`seal.rs` in `engine/record/`).
            let bare = token.trim_end_matches('/');
            let module = format!("{bare}.rs");
            let exists = root().join(bare).exists()
                || files.iter().any(|f| {
                    let f = format!("/{f}");
                    f.ends_with(&format!("/{bare}"))
                        || f.ends_with(&format!("/{module}"))
                        || f.contains(&format!("/{bare}/"))
                });
            if !exists {
                missing.push(token.to_owned());
            }
            continue;
        }
        let is_path = token
            .split("::")
            .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if !is_path || token.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue; // prose in backticks: `Ready(Ok(()))`, `h2, http/1.1`, a number
        }
        for segment in token.split("::") {
            if !words.contains(segment) {
                missing.push(token.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what the code lacks: {missing:?}"
    );
}
