//! Search runs on several threads but answers in path order: the same lines, in the same
//! order, as one pass over the files in path order would give, across block, hold and
//! `max_results` boundaries; output comes in blocks of whole NDJSON lines, and a consumer that
//! stops is called no more.

use nullspace_core::VolumePath;
use nullspace_volumes::{
    DirectoryPlacement, SearchMatch, SearchOptions, VolumeHandle, VolumeStore, WriteOptions,
    HELD_PER_FILE, SEARCH_BLOCK,
};
use std::sync::Arc;

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

fn volume() -> (tempfile::TempDir, Arc<VolumeHandle>) {
    let tmp = tempfile::tempdir().unwrap();
    let store = VolumeStore::new(Box::new(
        DirectoryPlacement::open(&tmp.path().join("volumes")).unwrap(),
    ));
    store.create("v", 1 << 30).unwrap();
    let h = store.handle("v", 1 << 30).unwrap();
    (tmp, h)
}

fn write(h: &Arc<VolumeHandle>, path: &str, content: &[u8]) {
    let mut w = h.begin_write(&p(path)).unwrap();
    w.write(content).unwrap();
    w.commit(&WriteOptions::default()).unwrap();
}

/// A tree whose files differ wildly in how much they match: none, a few, and one file whose
/// answer is several times `HELD_PER_FILE` (so its thread streams or waits for its turn).
/// Returns the expected matches, found by one plain pass in path order.
fn tree(h: &Arc<VolumeHandle>) -> Vec<SearchMatch> {
    h.mkdir(&p("/a/b"), true).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        let mut text = Vec::new();
        let lines = match i {
            7 => 2 * HELD_PER_FILE / 100 + 500, // about 3x HELD_PER_FILE of answer
            13 => SEARCH_BLOCK / 120,
            _ if i % 3 == 0 => 0,
            _ => i,
        };
        for l in 0..lines {
            text.extend_from_slice(format!("line {l} of {i}: ").as_bytes());
            if l % 2 == 0 {
                text.extend_from_slice(b"\"needle\" \\ \x01 caf\xc3\xa9");
            } else {
                text.extend_from_slice(b"hay");
            }
            text.extend_from_slice(&[b'x'; 80]);
            text.push(b'\n');
        }
        let dir = ["/", "/a/", "/a/b/"][i % 3];
        files.push((format!("{dir}f{i:03}"), text));
    }
    for (path, text) in &files {
        write(h, path, text);
    }
    // Path order: a directory's entries by name, a directory's contents where it sorts.
    files.sort_by(|x, y| {
        let key = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        key(&x.0).cmp(&key(&y.0))
    });
    let mut expected = Vec::new();
    for (path, text) in &files {
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            if let Some(col) = line.windows(6).position(|w| w == b"needle") {
                expected.push(SearchMatch {
                    path: path.clone(),
                    line: n as u64 + 1,
                    column: col as u64 + 1,
                    text: String::from_utf8_lossy(line).into_owned(),
                });
            }
        }
    }
    expected
}

fn opts(max: Option<u64>) -> SearchOptions {
    SearchOptions {
        pattern: "needle".into(),
        max_results: max,
        ..SearchOptions::default()
    }
}

fn search(h: &VolumeHandle, max: Option<u64>) -> (Vec<SearchMatch>, bool) {
    let mut found = Vec::new();
    let s = h
        .search(&p("/"), &opts(max), &mut |m| {
            found.push(m);
            true
        })
        .unwrap();
    assert_eq!(s.matches, found.len() as u64);
    (found, s.truncated)
}

#[test]
fn parallel_search_answers_in_path_order_in_blocks_of_whole_lines() {
    let (_tmp, h) = volume();
    let expected = tree(&h);
    assert!(expected.len() > 2 * HELD_PER_FILE / 200);
    let (found, truncated) = search(&h, None);
    assert!(!truncated);
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);

    let mut blocks = Vec::new();
    h.search_ndjson(&p("/"), &opts(None), &mut |b| {
        blocks.push(b);
        true
    })
    .unwrap();
    assert!(blocks.len() > 1, "a large answer comes in several blocks");
    for b in &blocks {
        assert!(b.ends_with(b"\n"), "a block ends with a whole line");
        assert!(
            b.len() <= SEARCH_BLOCK + HELD_PER_FILE + 4096,
            "{}",
            b.len()
        );
    }
    let lines: Vec<SearchMatch> = blocks
        .concat()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines, expected);
}

#[test]
fn max_results_cuts_at_exactly_that_many_lines_wherever_it_falls() {
    let (_tmp, h) = volume();
    let expected = tree(&h);
    let n = expected.len() as u64;
    let first_file = expected
        .iter()
        .filter(|m| m.path == expected[0].path)
        .count() as u64;
    for max in [
        0,
        1,
        first_file - 1,
        first_file,
        first_file + 1,
        2000,
        n - 1,
        n,
        n + 1,
    ] {
        let (found, truncated) = search(&h, Some(max));
        let want = max.min(n) as usize;
        assert_eq!(found.len(), want, "max {max}");
        assert_eq!(found, expected[..want], "max {max}");
        assert_eq!(truncated, max < n, "max {max}");
    }
}

#[test]
fn a_consumer_that_stops_is_called_no_more() {
    let (_tmp, h) = volume();
    tree(&h);
    let mut calls = 0;
    h.search_ndjson(&p("/"), &opts(None), &mut |_| {
        calls += 1;
        false
    })
    .unwrap();
    assert_eq!(calls, 1);
}
