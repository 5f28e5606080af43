//! Property test of edit and replace: random small files and patterns, applied through the
//! Rust client to the real server and to a simple model (`str::replace`, `str::matches`), then
//! compared — the answer (counts, files, conflicts) and every file's content and etag.

mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};

use harness::Server;
use nullspace_client::{
    Client, EditCount, EditOptions, ReplaceOptions, ReplacedFile, WriteOptions,
};
use nullspace_core::{ErrorCode, Labels, VolumeName, VolumePath};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

/// A regex the model can compute without a regex engine.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `a+`: each run of `a`s.
    Runs,
    /// `(a)(b)` replaced by `$2$1`: each `ab` becomes `ba`.
    Swap,
    /// `[ab]`: each `a` or `b`.
    Class,
}

#[derive(Debug, Clone)]
enum Op {
    Edit {
        old: String,
        new: String,
        /// `None`: all.
        count: Option<u64>,
    },
    Literal {
        pattern: String,
        replacement: String,
        ignore_case: bool,
        dry_run: bool,
    },
    Regex {
        shape: Shape,
        replacement: String,
        dry_run: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let piece = "[aAb]{1,3}";
    // `$` and digits stay literal outside regex mode.
    let replacement = "[ab$1\n]{0,3}";
    prop_oneof![
        (piece, replacement, prop::option::weighted(0.8, 0u64..4))
            .prop_map(|(old, new, count)| { Op::Edit { old, new, count } }),
        (piece, replacement, any::<bool>(), any::<bool>()).prop_map(
            |(pattern, replacement, ignore_case, dry_run)| Op::Literal {
                pattern,
                replacement,
                ignore_case,
                dry_run,
            }
        ),
        (
            prop_oneof![Just(Shape::Runs), Just(Shape::Swap), Just(Shape::Class)],
            "[xy]{0,2}",
            any::<bool>()
        )
            .prop_map(|(shape, replacement, dry_run)| Op::Regex {
                shape,
                replacement,
                dry_run
            }),
    ]
}

/// Starts of the non-overlapping occurrences of `needle`, left to right (ASCII case folding
/// with `ignore_case`).
fn occurrences(hay: &str, needle: &str, ignore_case: bool) -> Vec<usize> {
    let fold = |s: &str| {
        if ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        }
    };
    fold(hay)
        .match_indices(&fold(needle))
        .map(|(i, _)| i)
        .collect()
}

/// The model: the new content and the number of replacements.
fn model(content: &str, op: &Op) -> (String, u64) {
    match op {
        Op::Edit { old, new, .. } => (
            content.replace(old, new),
            content.matches(old).count() as u64,
        ),
        Op::Literal {
            pattern,
            replacement,
            ignore_case,
            ..
        } => {
            let at = occurrences(content, pattern, *ignore_case);
            let mut out = String::new();
            let mut last = 0;
            for &i in &at {
                out.push_str(&content[last..i]);
                out.push_str(replacement);
                last = i + pattern.len();
            }
            out.push_str(&content[last..]);
            (out, at.len() as u64)
        }
        Op::Regex {
            shape: Shape::Swap, ..
        } => (
            content.replace("ab", "ba"),
            content.matches("ab").count() as u64,
        ),
        Op::Regex {
            shape: Shape::Class,
            replacement,
            ..
        } => {
            let n = content.chars().filter(|c| matches!(c, 'a' | 'b')).count();
            (content.replace(['a', 'b'], replacement), n as u64)
        }
        Op::Regex {
            shape: Shape::Runs,
            replacement,
            ..
        } => {
            let mut out = String::new();
            let mut runs = 0;
            let mut in_run = false;
            for c in content.chars() {
                if c == 'a' {
                    if !in_run {
                        runs += 1;
                        out.push_str(replacement);
                    }
                    in_run = true;
                } else {
                    in_run = false;
                    out.push(c);
                }
            }
            (out, runs)
        }
    }
}

fn request(op: &Op) -> ReplaceOptions {
    match op {
        Op::Literal {
            pattern,
            replacement,
            ignore_case,
            dry_run,
        } => ReplaceOptions {
            pattern: pattern.clone(),
            replacement: replacement.clone(),
            regex: false,
            ignore_case: *ignore_case,
            glob: None,
            dry_run: *dry_run,
        },
        Op::Regex {
            shape,
            replacement,
            dry_run,
        } => {
            let (pattern, replacement) = match shape {
                Shape::Runs => ("a+", replacement.clone()),
                Shape::Swap => ("(a)(b)", "$2$1".to_owned()),
                Shape::Class => ("[ab]", replacement.clone()),
            };
            ReplaceOptions {
                dry_run: *dry_run,
                ..ReplaceOptions::new(pattern, replacement)
            }
        }
        Op::Edit { .. } => unreachable!(),
    }
}

/// A binary file (a NUL byte) full of matches: search and replace skip it.
const BINARY: &[u8] = b"aab\0ab AB aa\n";

async fn check(
    c: &Client,
    v: &VolumeName,
    dir: &str,
    files: &[String],
    op: &Op,
) -> Result<(), TestCaseError> {
    let w = WriteOptions::default();
    let mut before = Vec::new();
    for (i, content) in files.iter().enumerate() {
        let st = c
            .write_bytes(v, &p(&format!("{dir}/f{i}.txt")), content.clone(), &w)
            .await
            .unwrap();
        before.push(st.etag);
    }
    let bin = c
        .write_bytes(v, &p(&format!("{dir}/z.bin")), BINARY, &w)
        .await
        .unwrap()
        .etag;
    let dry = match op {
        Op::Literal { dry_run, .. } | Op::Regex { dry_run, .. } => *dry_run,
        Op::Edit { .. } => false,
    };
    let mut want: Vec<String> = Vec::new();
    let mut changed: Vec<bool> = Vec::new();
    match op {
        Op::Edit { old, new, count } => {
            // Edit works on one file: the first.
            let (edited, found) = model(&files[0], op);
            let ok = match count {
                Some(n) => found == *n,
                None => found > 0,
            };
            let opts = EditOptions {
                count: count.map_or(EditCount::All, EditCount::Exactly),
                if_match: None,
            };
            let got = c
                .edit(v, &p(&format!("{dir}/f0.txt")), old, new, &opts)
                .await;
            if ok {
                let st = got.map_err(|e| TestCaseError::fail(format!("edit failed: {e}")))?;
                prop_assert_eq!(st.size, edited.len() as u64);
                want.push(edited);
                changed.push(true);
            } else {
                let e = got.expect_err("a count mismatch is refused");
                prop_assert_eq!(e.code, ErrorCode::Conflict);
                let found_msg = format!("found {found}");
                prop_assert!(e.message.contains(&found_msg), "{}", e.message);
                want.push(files[0].clone());
                changed.push(false);
            }
            want.extend(files[1..].iter().cloned());
            changed.extend(files[1..].iter().map(|_| false));
        }
        Op::Literal { .. } | Op::Regex { .. } => {
            let sum = c.replace(v, &p(dir), &request(op)).await.unwrap();
            let mut files_want = Vec::new();
            for (i, content) in files.iter().enumerate() {
                let (new, n) = model(content, op);
                if n > 0 {
                    files_want.push(ReplacedFile {
                        path: format!("{dir}/f{i}.txt"),
                        replacements: n,
                        skipped: None,
                    });
                }
                want.push(if dry { content.clone() } else { new });
                changed.push(n > 0 && !dry);
            }
            prop_assert_eq!(sum.dry_run, dry);
            prop_assert_eq!(sum.files_changed, files_want.len() as u64);
            prop_assert_eq!(
                sum.replacements,
                files_want.iter().map(|f| f.replacements).sum::<u64>()
            );
            prop_assert_eq!(sum.files, files_want);
        }
    }
    for (i, content) in want.iter().enumerate() {
        let path = p(&format!("{dir}/f{i}.txt"));
        let got = c.read_bytes(v, &path).await.unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&got), content.as_str(), "f{}", i);
        let etag = c.stat(v, &path).await.unwrap().etag;
        prop_assert_eq!(
            etag != before[i],
            changed[i],
            "etag of f{} changes iff it was rewritten",
            i
        );
    }
    let path = p(&format!("{dir}/z.bin"));
    let bytes = c.read_bytes(v, &path).await.unwrap();
    prop_assert_eq!(bytes.as_ref(), BINARY);
    prop_assert_eq!(c.stat(v, &path).await.unwrap().etag, bin);
    Ok(())
}

#[test]
fn edit_and_replace_agree_with_a_simple_model() {
    let s = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Client::new(&s.url, &s.key).unwrap();
    let v = VolumeName::parse("model").unwrap();
    rt.block_on(c.create_volume(&v, &Labels::new(), false))
        .unwrap();
    let case = AtomicUsize::new(0);
    let files = prop::collection::vec("[aAb\n]{0,24}", 1..4);
    let mut runner = TestRunner::new(Config {
        cases: 50,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(files, op()), |(files, op)| {
            let dir = format!("/case{}", case.fetch_add(1, Ordering::Relaxed));
            rt.block_on(check(&c, &v, &dir, &files, &op))
        })
        .unwrap();
}
