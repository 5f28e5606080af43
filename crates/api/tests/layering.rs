//! The service seam holds: `api` only translates HTTP into calls on `nullspace-node`, and the
//! node knows no HTTP. Checked from the manifests and the sources, so a shortcut across the
//! seam fails CI.

use std::path::{Path, PathBuf};

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

/// `[dependencies]` of a crate's manifest (not dev-dependencies), as dependency names.
fn dependencies(name: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(crate_dir(name).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let dep = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
            out.push(dep.to_owned());
        }
    }
    out
}

/// Every `.rs` file below a crate's `src/`, with its text.
fn sources(name: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![crate_dir(name).join("src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out
}

fn uses(name: &str, needle: &str) -> Vec<PathBuf> {
    sources(name)
        .into_iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn api_depends_on_the_node_and_never_on_what_lies_behind_it() {
    let deps = dependencies("api");
    assert!(deps.iter().any(|d| d == "nullspace-node"), "{deps:?}");
    for behind in [
        "nullspace-state",
        "nullspace-volumes",
        "nullspace-sandbox",
        "sqlx",
    ] {
        assert!(
            !deps.iter().any(|d| d == behind),
            "crates/api depends on {behind}: go through nullspace-node"
        );
    }
    for needle in [
        "sqlx",
        "nullspace_state",
        "nullspace_volumes",
        "nullspace_sandbox",
    ] {
        assert_eq!(
            uses("api", needle),
            Vec::<PathBuf>::new(),
            "{needle} in crates/api"
        );
    }
}

#[test]
fn the_node_knows_no_http() {
    let deps = dependencies("node");
    for http in ["axum", "tower", "hyper", "utoipa"] {
        assert!(
            !deps.iter().any(|d| d == http),
            "crates/node depends on {http}"
        );
    }
    assert_eq!(uses("node", "axum::"), Vec::<PathBuf>::new());
}

#[test]
fn usage_is_persisted_and_remeasured_each_in_one_place() {
    // The store's usage copy is written by one function of the node's volume service.
    let writers: Vec<PathBuf> = ["api", "node", "cli", "volumes", "sandbox"]
        .into_iter()
        .flat_map(|c| uses(c, ".set_volume_usage("))
        .collect();
    assert_eq!(writers.len(), 1, "{writers:?}");
    let text = std::fs::read_to_string(&writers[0]).unwrap();
    assert_eq!(text.matches(".set_volume_usage(").count(), 1);
    assert!(writers[0].ends_with("node/src/volumes.rs"), "{writers:?}");
    // Sandbox work is followed by a re-measure in one wrapper of the sandbox service.
    let sandboxes: String = sources("node")
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("sandboxes"))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(sandboxes.matches(".remeasure(").count(), 1);
}
