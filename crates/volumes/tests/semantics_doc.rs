//! docs/SEMANTICS.md cannot drift from the tests. Each paragraph under its headings starts
//! with a bold name (`**Atomic writes.**`); tests quote a paragraph with a comment line that
//! reads `SEMANTICS:` and the name. This fails when a test quotes a name the document does
//! not have, or when a paragraph is quoted by no test in `crates/*/tests/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TAG: &str = "SEMANTICS:";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The names of the document's paragraphs, in order. The introduction (before the first
/// `##` heading) needs none; every paragraph after it must have one.
fn paragraph_names(doc: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut in_claims = false;
    for para in doc.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if para.starts_with('#') {
            in_claims |= para.starts_with("## ");
            continue;
        }
        if !in_claims {
            continue;
        }
        let name = para
            .strip_prefix("**")
            .and_then(|rest| rest.split_once(".**"))
            .map(|(name, _)| name.to_owned())
            .ok_or_else(|| format!("a paragraph without a name: {para:?}"))?;
        if names.contains(&name) {
            return Err(format!("two paragraphs are named {name:?}"));
        }
        names.push(name);
    }
    Ok(names)
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The name a line quotes, if it is a comment line of the form `// SEMANTICS: <name>`.
fn quoted(line: &str) -> Option<&str> {
    let comment = line.trim_start().strip_prefix("//")?;
    let text = comment.trim_start_matches(['/', '!']).trim();
    Some(text.strip_prefix(TAG)?.trim())
}

/// Every quote in the workspace's tests: name -> where (`file:line`).
fn quotes() -> BTreeMap<String, Vec<String>> {
    let root = workspace();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        rust_files(&krate.path().join("tests"), &mut files);
    }
    assert!(!files.is_empty(), "no test files under {}", root.display());
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            if let Some(name) = quoted(line) {
                found
                    .entry(name.to_owned())
                    .or_default()
                    .push(format!("{shown}:{}", n + 1));
            }
        }
    }
    found
}

#[test]
fn every_paragraph_is_quoted_by_a_test_and_every_quote_names_a_paragraph() {
    let doc = std::fs::read_to_string(workspace().join("docs/SEMANTICS.md")).unwrap();
    let names = paragraph_names(&doc).unwrap();
    assert!(names.len() > 10, "{names:?}");
    let quotes = quotes();
    let unknown: Vec<String> = quotes
        .iter()
        .filter(|(name, _)| !names.contains(name))
        .map(|(name, at)| format!("{name:?} at {}", at.join(", ")))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests quote paragraphs docs/SEMANTICS.md does not have: {unknown:#?}"
    );
    let unquoted: Vec<&String> = names.iter().filter(|n| !quotes.contains_key(*n)).collect();
    assert!(
        unquoted.is_empty(),
        "paragraphs of docs/SEMANTICS.md that no test quotes: {unquoted:#?}"
    );
}

#[test]
fn the_checker_reads_names_and_quotes() {
    let doc = "# T\n\nIntro.\n\n## A\n\n**First one.** Text\nmore.\n\n**Second.** x\n";
    assert_eq!(paragraph_names(doc).unwrap(), ["First one", "Second"]);
    assert!(paragraph_names("## A\n\nNo name here.\n").is_err());
    assert!(paragraph_names("## A\n\n**Same.** a\n\n**Same.** b\n").is_err());
    let tagged = format!("    /// {TAG} First one");
    assert_eq!(quoted(&tagged), Some("First one"));
    assert_eq!(quoted(&format!("// {TAG}  Second ")), Some("Second"));
    assert_eq!(quoted(&format!("let s = \"{TAG} x\";")), None);
    assert_eq!(quoted("// semantics, but not a quote"), None);
}
