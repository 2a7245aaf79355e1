//! The module layers, pinned: the writer ([`crate::writer`], whose doc
//! describes the layers) is the floor; lifecycle stands on it; `run` stands
//! on lifecycle. These tests read the sources and fail when a module names
//! one above it:
//!
//! - a path `crate::<above>…` or `super::<above>…` anywhere in its files,
//!   comments included;
//! - in code, `<above>` in a grouped `crate::{…}` import, or an item of the
//!   module above named through its re-export at the crate root
//!   (`crate::SpawnError` is `run`'s). A doc link to such an item is no
//!   import and is allowed.

use std::path::{Path, PathBuf};

/// Lifecycle never imports `run`: the tracker carries the runs' state in a
/// slot `run` fills (`lifecycle/state.rs`).
#[test]
fn lifecycle_does_not_import_run() {
    assert_stands_below("lifecycle", &["run"]);
}

/// The writer imports none of the modules that write through it.
#[test]
fn the_writer_imports_none_of_the_modules_above_it() {
    assert_stands_below("writer", &["lifecycle", "run", "logs", "auth", "dashboard"]);
}

/// The change feed's reader stands beside the writer: the live stream,
/// cancel and the run page read it; it reads none of them.
#[test]
fn the_feed_imports_none_of_the_modules_that_read_it() {
    assert_stands_below("feed", &["lifecycle", "run", "logs", "auth", "dashboard"]);
}

/// No sea-orm call whose SQL depends on a sea-orm feature tasktrail does
/// not turn on: `exec_with_returning` answers "not supported" on SQLite
/// unless sea-orm's `sqlite-use-returning-for-3_35` is on. It is one of
/// sea-orm's default features, which tasktrail turns off — and which the
/// test crates turn on again (sea-orm-migration), so a test passed where
/// a user's build failed: the quickstart's recovery sweep failed on every
/// tick. `RETURNING` goes through SQL the runtime builds
/// (`run/store.rs`).
#[test]
fn no_returning_call_that_a_sea_orm_feature_gates() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.ends_with("layers.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("exec_with_returning") || code.contains("exec_with_returning_many") {
                found.push(format!("{}:{}", file.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "feature-gated RETURNING calls: {found:?}");
}

/// Fails if a file under `src/<module>/` names one of `above`.
fn assert_stands_below(module: &str, above: &[&str]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let sources: Vec<(PathBuf, String)> = rust_files(&src.join(module))
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("a source file");
            (f, text)
        })
        .collect();
    // The items the modules above re-export at the crate root, less those
    // this module defines (the `Retention` policy, re-exported by `run`,
    // is one of lifecycle's options).
    let defined_here = |item: &str| {
        sources.iter().any(|(_, text)| {
            [
                format!("pub struct {item} "),
                format!("pub enum {item} "),
                format!("pub trait {item} "),
            ]
            .iter()
            .any(|def| text.contains(def.as_str()))
        })
    };
    let items: Vec<&str> = above
        .iter()
        .flat_map(|m| reexports(&lib, m))
        .filter(|item| !defined_here(item))
        .collect();

    let mut found = Vec::new();
    for (file, text) in &sources {
        let line_of = |at: usize| text[..at].lines().count().max(1);
        let at_boundary = |end: usize| {
            !text[end..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        };
        for m in above {
            for needle in [format!("crate::{m}"), format!("super::{m}")] {
                for (at, _) in text.match_indices(needle.as_str()) {
                    if at_boundary(at + needle.len()) {
                        found.push(format!("{}:{}: {needle}", file.display(), line_of(at)));
                    }
                }
            }
        }
        // Code only: comments blanked, so that offsets stay put.
        let code: String = text
            .lines()
            .map(|line| match line.find("//") {
                Some(c) => format!("{}{}\n", &line[..c], " ".repeat(line.len() - c)),
                None => format!("{line}\n"),
            })
            .collect();
        for (at, root) in crate_roots(&code) {
            if above.contains(&root) || items.contains(&root) {
                found.push(format!("{}:{}: crate::{root}", file.display(), line_of(at)));
            }
        }
    }
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "`{module}` must not import {above:?} (the layers: see crate::writer):\n{}",
        found.join("\n")
    );
}

/// The names `lib.rs` re-exports from `module` (`pub use module::{…};`).
fn reexports<'a>(lib: &'a str, module: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for rest in lib.split(&format!("pub use {module}::")).skip(1) {
        let list = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or_default(),
            None => rest.split(';').next().unwrap_or_default(),
        };
        names.extend(idents(list));
    }
    names
}

/// The first segment of every path that starts with `crate::`, with its
/// offset; for a group (`crate::{a::b, c}`), each item's.
fn crate_roots(code: &str) -> Vec<(usize, &str)> {
    let mut roots = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            roots.extend(idents(rest).first().map(|r| (at, *r)));
            continue;
        };
        let (mut depth, mut start) = (0, 0);
        for (i, c) in group.char_indices() {
            let item_ends = match c {
                '{' => {
                    depth += 1;
                    false
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    false
                }
                '}' => true,
                ',' => depth == 0,
                _ => false,
            };
            if item_ends {
                roots.extend(idents(&group[start..i]).first().map(|r| (at, *r)));
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
        }
    }
    roots
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    files
}

/// The identifiers in `text`, in order.
fn idents(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The checker itself finds what it must.
#[test]
fn crate_roots_sees_single_and_grouped_paths() {
    let code = "use crate::run::Runs;\nuse crate::{hooks::X, run, config::{A, B}};\nlet e = crate::SpawnError::EmptyKey;";
    let roots: Vec<&str> = crate_roots(code).into_iter().map(|(_, r)| r).collect();
    assert_eq!(roots, ["run", "hooks", "run", "config", "SpawnError"]);
    let lib = "pub use run::{\n    CancelOutcome, Retention,\n};\npub use dashboard::Dashboard;";
    assert_eq!(reexports(lib, "run"), ["CancelOutcome", "Retention"]);
    assert_eq!(reexports(lib, "dashboard"), ["Dashboard"]);
}
