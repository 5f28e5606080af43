//! Model test of the direct file API: random sequences of write, mkdir, move, copy and remove
//! over a small path alphabet are applied to a volume through HTTP and to an in-memory model of
//! the documented semantics (docs/API.md). After every operation the outcome (success, or the
//! error code) must agree, and the volume's recursive listing (paths, types, file sizes) and
//! its `used_bytes`/`file_count` must equal the model's.

mod harness;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::{enc, Api, Resp, Server};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

const INVALID: &str = "invalid_argument";
const NOT_FOUND: &str = "not_found";
const EXISTS: &str = "already_exists";
const CONFLICT: &str = "conflict";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

/// Every entry but the root (which always exists), by absolute path.
type Tree = BTreeMap<String, Node>;

#[derive(Clone)]
enum Op {
    Write {
        path: String,
        content: Vec<u8>,
        overwrite: bool,
    },
    /// A write with `If-Match` of an etag no file has.
    WriteStale {
        path: String,
    },
    Mkdir {
        path: String,
        parents: bool,
    },
    Move {
        src: String,
        dst: String,
        overwrite: bool,
    },
    Copy {
        src: String,
        dst: String,
        overwrite: bool,
        recursive: bool,
    },
    Remove {
        path: String,
        recursive: bool,
    },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write {
                path,
                content,
                overwrite,
            } => write!(
                f,
                "write {path} ({} bytes) overwrite={overwrite}",
                content.len()
            ),
            Op::WriteStale { path } => write!(f, "write {path} If-Match=stale"),
            Op::Mkdir { path, parents } => write!(f, "mkdir {path} parents={parents}"),
            Op::Move {
                src,
                dst,
                overwrite,
            } => write!(f, "move {src} {dst} overwrite={overwrite}"),
            Op::Copy {
                src,
                dst,
                overwrite,
                recursive,
            } => {
                write!(
                    f,
                    "copy {src} {dst} overwrite={overwrite} recursive={recursive}"
                )
            }
            Op::Remove { path, recursive } => write!(f, "remove {path} recursive={recursive}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// The proper ancestors of a path, top-down, without the root: `/a/b/c` → `/a`, `/a/b`.
fn ancestors(p: &str) -> Vec<String> {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    (1..parts.len())
        .map(|n| format!("/{}", parts[..n].join("/")))
        .collect()
}

/// Whether `p` lies strictly below `dir`.
fn strictly_under(p: &str, dir: &str) -> bool {
    dir == "/" && p != "/" || p.starts_with(&format!("{dir}/"))
}

/// Resolving the parents of `p`: a file on the way is `invalid_argument` (not a directory); a
/// missing one is `not_found`, unless `create` (then it will be made).
fn check_parents(t: &Tree, p: &str, create: bool) -> Result<(), &'static str> {
    for a in ancestors(p) {
        match t.get(&a) {
            Some(Node::Dir) => {}
            Some(Node::File(_)) => return Err(INVALID),
            None if create => return Ok(()), // everything below is missing too
            None => return Err(NOT_FOUND),
        }
    }
    Ok(())
}

fn make_parents(t: &mut Tree, p: &str) {
    for a in ancestors(p) {
        t.entry(a).or_insert(Node::Dir);
    }
}

/// `p` and everything below it, keyed relative to `p` ("" for `p` itself).
fn subtree(t: &Tree, p: &str) -> Vec<(String, Node)> {
    t.iter()
        .filter(|(k, _)| k.as_str() == p || strictly_under(k, p))
        .map(|(k, v)| (k[p.len()..].to_owned(), v.clone()))
        .collect()
}

fn remove_subtree(t: &mut Tree, p: &str) {
    t.retain(|k, _| !(k == p || strictly_under(k, p)));
}

fn insert_subtree(t: &mut Tree, at: &str, nodes: Vec<(String, Node)>) {
    for (rel, n) in nodes {
        t.insert(format!("{at}{rel}"), n);
    }
}

/// Applies an operation to the model: `Ok` with the new tree, or the error code (the tree is
/// then unchanged).
fn apply(t: &Tree, op: &Op) -> Result<Tree, &'static str> {
    let mut t = t.clone();
    match op {
        Op::Write {
            path,
            content,
            overwrite,
        } => {
            if path == "/" {
                return Err(INVALID);
            }
            check_parents(&t, path, true)?;
            match t.get(path) {
                Some(_) if !overwrite => return Err(EXISTS),
                Some(Node::Dir) => return Err(INVALID),
                _ => {}
            }
            make_parents(&mut t, path);
            t.insert(path.clone(), Node::File(content.clone()));
        }
        Op::WriteStale { path } => {
            if path == "/" {
                return Err(INVALID);
            }
            check_parents(&t, path, true)?;
            return Err(match t.get(path) {
                Some(Node::Dir) => INVALID,
                _ => CONFLICT,
            });
        }
        Op::Mkdir {
            path,
            parents: true,
        } => {
            if path == "/" {
                return Ok(t);
            }
            match t.get(path) {
                Some(Node::File(_)) => return Err(EXISTS),
                Some(Node::Dir) => return Ok(t),
                None => {}
            }
            check_parents(&t, path, true)?;
            make_parents(&mut t, path);
            t.insert(path.clone(), Node::Dir);
        }
        Op::Mkdir {
            path,
            parents: false,
        } => {
            if path == "/" {
                return Err(EXISTS);
            }
            check_parents(&t, path, false)?;
            if t.contains_key(path) {
                return Err(EXISTS);
            }
            t.insert(path.clone(), Node::Dir);
        }
        Op::Move {
            src,
            dst,
            overwrite,
        } => {
            if src == "/" || dst == "/" || strictly_under(dst, src) {
                return Err(INVALID);
            }
            check_parents(&t, src, false)?;
            let s = t.get(src).cloned().ok_or(NOT_FOUND)?;
            if src == dst {
                return Ok(t);
            }
            check_parents(&t, dst, true)?;
            match (t.get(dst), &s) {
                (None, _) => {}
                (Some(_), _) if !overwrite => return Err(EXISTS),
                (Some(Node::Dir), Node::File(_)) | (Some(Node::File(_)), Node::Dir) => {
                    return Err(INVALID)
                }
                // Replacing a directory with one of its own descendants.
                (Some(Node::Dir), Node::Dir) if strictly_under(src, dst) => return Err(INVALID),
                _ => {}
            }
            let moved = subtree(&t, src);
            make_parents(&mut t, dst);
            remove_subtree(&mut t, src);
            remove_subtree(&mut t, dst);
            insert_subtree(&mut t, dst, moved);
        }
        Op::Copy {
            src,
            dst,
            overwrite,
            recursive,
        } => {
            if src == "/" || dst == "/" || src == dst || strictly_under(dst, src) {
                return Err(INVALID);
            }
            check_parents(&t, src, false)?;
            let s = t.get(src).cloned().ok_or(NOT_FOUND)?;
            if s == Node::Dir && !recursive {
                return Err(INVALID);
            }
            check_parents(&t, dst, true)?;
            match (t.get(dst), &s) {
                (None, _) => {}
                (Some(_), _) if !overwrite => return Err(EXISTS),
                (Some(Node::Dir), Node::File(_)) | (Some(Node::File(_)), Node::Dir) => {
                    return Err(INVALID)
                }
                _ => {}
            }
            let copied = subtree(&t, src);
            make_parents(&mut t, dst);
            remove_subtree(&mut t, dst);
            insert_subtree(&mut t, dst, copied);
        }
        Op::Remove { path, recursive } => {
            if path == "/" {
                if !recursive {
                    return Err(INVALID);
                }
                t.clear();
                return Ok(t);
            }
            check_parents(&t, path, false)?;
            match t.get(path) {
                None => return Err(NOT_FOUND),
                Some(Node::Dir) if !recursive && t.keys().any(|k| strictly_under(k, path)) => {
                    return Err(INVALID)
                }
                _ => remove_subtree(&mut t, path),
            }
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// The system.

fn run(api: &Api, vol: &str, op: &Op) -> Resp {
    match op {
        Op::Write {
            path,
            content,
            overwrite,
        } => api.put(
            &format!(
                "/v1/volumes/{vol}/files/content?path={}&overwrite={overwrite}",
                enc(path)
            ),
            content.clone(),
        ),
        Op::WriteStale { path } => api.send(
            reqwest::Method::PUT,
            &format!("/v1/volumes/{vol}/files/content?path={}", enc(path)),
            &[("If-Match", "\"00000000000000000000000000000000\"")],
            Some(b"stale".to_vec()),
        ),
        Op::Mkdir { path, parents } => api.mkdir(vol, path, *parents),
        Op::Move {
            src,
            dst,
            overwrite,
        } => api.mv(vol, src, dst, *overwrite),
        Op::Copy {
            src,
            dst,
            overwrite,
            recursive,
        } => api.cp(vol, src, dst, *overwrite, *recursive),
        Op::Remove { path, recursive } => api.remove(vol, path, *recursive),
    }
}

/// The volume as (path, type, size of files) from a recursive listing.
fn listed(api: &Api, vol: &str) -> Vec<(String, String, Option<u64>)> {
    let r = api.list(vol, "/", true);
    assert_eq!(r.status, 200, "list: {}", r.text());
    let v: Value = r.json();
    assert!(v["next_cursor"].is_null(), "one page: {v}");
    v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let ty = e["type"].as_str().expect("type").to_owned();
            let size = (ty == "file").then(|| e["size"].as_u64().expect("size"));
            (e["path"].as_str().expect("path").to_owned(), ty, size)
        })
        .collect()
}

fn modelled(t: &Tree) -> Vec<(String, String, Option<u64>)> {
    t.iter()
        .map(|(p, n)| match n {
            Node::Dir => (p.clone(), "dir".to_owned(), None),
            Node::File(c) => (p.clone(), "file".to_owned(), Some(c.len() as u64)),
        })
        .collect()
}

fn model_usage(t: &Tree) -> (u64, u64) {
    t.values().fold((0, 0), |(b, n), node| match node {
        Node::File(c) => (b + c.len() as u64, n + 1),
        Node::Dir => (b, n),
    })
}

/// Runs `ops` on a fresh volume and on the model; the first disagreement is the error.
fn check_sequence(api: &Api, vol: &str, ops: &[Op]) -> Result<(), String> {
    api.create_volume(vol);
    let mut model = Tree::new();
    let mut log = Vec::new();
    let result = (|| {
        for op in ops {
            log.push(format!("{op:?}"));
            let want = apply(&model, op);
            let got = run(api, vol, op);
            let outcome = match (&want, got.status) {
                (_, 500) => Err(format!("the server answered 500: {}", got.text())),
                (Ok(_), 200 | 204) => Ok(()),
                (Ok(_), s) => Err(format!(
                    "the model succeeds, the server answered {s}: {}",
                    got.text()
                )),
                (Err(code), s) if s >= 400 && got.error_code().as_deref() == Some(*code) => Ok(()),
                (Err(code), s) => Err(format!(
                    "the model fails with {code}, the server answered {s}: {}",
                    got.text()
                )),
            };
            outcome.map_err(|e| format!("{e}\nafter: {}", log.join("; ")))?;
            if let Ok(t) = want {
                model = t;
            }
            let (have, expect) = (listed(api, vol), modelled(&model));
            if have != expect {
                return Err(format!(
                    "the volume differs from the model after: {}\nserver: {have:?}\nmodel:  {expect:?}",
                    log.join("; ")
                ));
            }
            for (path, node) in &model {
                if let Node::File(c) = node {
                    let r = api.read(vol, path);
                    if r.status != 200 || &r.body != c {
                        return Err(format!(
                            "content of {path} differs after: {}: {} {:?}",
                            log.join("; "),
                            r.status,
                            r.text()
                        ));
                    }
                }
            }
            let usage = api.usage(vol);
            if usage != model_usage(&model) {
                return Err(format!(
                    "(used_bytes, file_count) {usage:?} != model {:?} after: {}",
                    model_usage(&model),
                    log.join("; ")
                ));
            }
        }
        Ok(())
    })();
    api.delete(&format!("/v1/volumes/{vol}"))
        .expect(204, "delete volume");
    result
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("/".to_owned()),
        24 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
            .prop_map(|v| format!("/{}", v.join("/"))),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = path_strategy;
    prop_oneof![
        6 => (p(), prop::collection::vec(any::<u8>(), 0..40), prop::bool::weighted(0.8))
            .prop_map(|(path, content, overwrite)| Op::Write { path, content, overwrite }),
        1 => p().prop_map(|path| Op::WriteStale { path }),
        3 => (p(), any::<bool>()).prop_map(|(path, parents)| Op::Mkdir { path, parents }),
        4 => (p(), p(), any::<bool>()).prop_map(|(src, dst, overwrite)| Op::Move { src, dst, overwrite }),
        4 => (p(), p(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(src, dst, overwrite, recursive)| Op::Copy { src, dst, overwrite, recursive }),
        3 => (p(), prop::bool::weighted(0.7)).prop_map(|(path, recursive)| Op::Remove { path, recursive }),
    ]
}

static VOLUMES: AtomicUsize = AtomicUsize::new(0);

fn fresh_volume() -> String {
    format!("model-{}", VOLUMES.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn random_operation_sequences_match_the_model() {
    let srv = Server::start();
    let api = srv.api();
    // A fixed seed and 24 cases by default, so that every run checks the same sequences; set
    // NULLSPACE_MODEL_SEED (a number) and NULLSPACE_MODEL_CASES to hunt with others.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("NULLSPACE_MODEL_CASES").unwrap_or(24) as u32;
    let seed = env("NULLSPACE_MODEL_SEED").unwrap_or(7);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..=25), |ops| {
        check_sequence(&api, &fresh_volume(), &ops).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", srv.log_tail(20));
    }
}

fn w(path: &str, content: &str) -> Op {
    Op::Write {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        overwrite: true,
    }
}

/// Fixed sequences for the corners the random ones reach only sometimes.
#[test]
fn corner_sequences_match_the_model() {
    let srv = Server::start();
    let api = srv.api();
    let mv = |s: &str, d: &str, o: bool| Op::Move {
        src: s.into(),
        dst: d.into(),
        overwrite: o,
    };
    let cp = |s: &str, d: &str, o: bool, r: bool| Op::Copy {
        src: s.into(),
        dst: d.into(),
        overwrite: o,
        recursive: r,
    };
    let rm = |p: &str, r: bool| Op::Remove {
        path: p.into(),
        recursive: r,
    };
    let mk = |p: &str, parents: bool| Op::Mkdir {
        path: p.into(),
        parents,
    };
    let cases: Vec<(&str, Vec<Op>)> = vec![
        ("parents are created on write", vec![w("/a/b/c", "x")]),
        (
            "write through a file",
            vec![w("/a", "x"), w("/a/b", "y"), w("/a/b/c", "y")],
        ),
        ("write onto a directory", vec![w("/a/b", "x"), w("/a", "y")]),
        (
            "no overwrite",
            vec![
                w("/a", "x"),
                Op::Write {
                    path: "/a".into(),
                    content: b"y".to_vec(),
                    overwrite: false,
                },
            ],
        ),
        (
            "mkdir variants",
            vec![
                mk("/a/b", false),
                mk("/a/b", true),
                mk("/a", false),
                mk("/a/b/c", true),
                mk("/a/b/c", false),
            ],
        ),
        (
            "mkdir onto a file",
            vec![
                w("/a", "x"),
                mk("/a", true),
                mk("/a", false),
                mk("/a/b", true),
                mk("/a/b", false),
            ],
        ),
        ("mkdir root", vec![mk("/", true), mk("/", false)]),
        (
            "move refuses an existing dst",
            vec![
                w("/a", "x"),
                w("/b", "y"),
                mv("/a", "/b", false),
                mv("/a", "/b", true),
            ],
        ),
        (
            "move a dir into itself",
            vec![
                w("/a/b", "x"),
                mv("/a", "/a/b/c", false),
                mv("/a", "/a/c", true),
                mv("/a", "/a", false),
            ],
        ),
        (
            "move a dir over a dir",
            vec![
                w("/a/x", "1"),
                w("/b/y", "22"),
                mv("/a", "/b", false),
                mv("/a", "/b", true),
            ],
        ),
        (
            "move file over dir and back",
            vec![
                w("/a", "1"),
                w("/b/c", "2"),
                mv("/a", "/b", true),
                mv("/b", "/a", true),
            ],
        ),
        (
            "move creates dst parents",
            vec![w("/a", "1"), mv("/a", "/b/c/a", false)],
        ),
        (
            "move onto own ancestor",
            vec![w("/a/b/c", "1"), mv("/a/b", "/a", true)],
        ),
        (
            "move a file onto own ancestor",
            vec![w("/a/b", "1"), mv("/a/b", "/a", true)],
        ),
        (
            "copy file and dir",
            vec![
                w("/a/b", "12"),
                cp("/a", "/c", false, false),
                cp("/a", "/c", false, true),
                cp("/a/b", "/c/b", false, false),
            ],
        ),
        (
            "copy onto itself and into itself",
            vec![
                w("/a/b", "1"),
                cp("/a", "/a", true, true),
                cp("/a", "/a/c", true, true),
                cp("/a/b", "/a/b", true, false),
            ],
        ),
        (
            "copy over dir",
            vec![
                w("/a/x", "1"),
                w("/b/y", "2"),
                cp("/a", "/b", true, true),
                cp("/a/x", "/b", true, false),
            ],
        ),
        (
            "copy onto own ancestor",
            vec![
                w("/a/b/c", "1"),
                w("/a/d", "22"),
                cp("/a/b", "/a", true, true),
            ],
        ),
        (
            "remove variants",
            vec![
                w("/a/b", "1"),
                rm("/a", false),
                rm("/a/b/c", false),
                rm("/a/b", false),
                rm("/a", false),
                rm("/a", false),
            ],
        ),
        (
            "remove root",
            vec![
                w("/a/b", "1"),
                w("/c", "2"),
                rm("/", false),
                rm("/", true),
                rm("/", true),
            ],
        ),
        (
            "remove through a file",
            vec![w("/a", "1"), rm("/a/b", false), rm("/a/b", true)],
        ),
        (
            "missing sources",
            vec![
                mv("/a", "/b", false),
                cp("/a", "/b", false, true),
                mv("/a/b", "/c", true),
                rm("/a/b/c", true),
            ],
        ),
        (
            "stale if-match on a missing path",
            vec![Op::WriteStale {
                path: "/a/b/c".into(),
            }],
        ),
        (
            "stale if-match on a file",
            vec![w("/a", "1"), Op::WriteStale { path: "/a".into() }],
        ),
    ];
    let mut failures = Vec::new();
    for (name, ops) in cases {
        if let Err(e) = check_sequence(&api, &fresh_volume(), &ops) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} corner sequence(s) disagree with the model:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
