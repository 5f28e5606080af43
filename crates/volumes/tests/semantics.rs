//! The data plane's promises (ARCHITECTURE.md "Invariants"), one test per claim.

use std::sync::Arc;

use nullspace_core::{ErrorCode, FileType, VolumePath};
use nullspace_volumes::{DirectoryPlacement, ListOptions, VolumeHandle, VolumeStore, WriteOptions};

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

fn volume(cap: u64) -> (tempfile::TempDir, VolumeStore, Arc<VolumeHandle>) {
    let tmp = tempfile::tempdir().unwrap();
    let store = VolumeStore::new(Box::new(DirectoryPlacement::open(tmp.path()).unwrap()));
    store.create("v", cap).unwrap();
    let h = store.handle("v", cap).unwrap();
    (tmp, store, h)
}

fn write(
    h: &Arc<VolumeHandle>,
    path: &str,
    data: &[u8],
) -> Result<nullspace_core::FileStat, nullspace_volumes::FsError> {
    let mut w = h.begin_write(&p(path))?;
    w.write(data)?;
    w.commit(&WriteOptions {
        overwrite: true,
        if_match: None,
    })
}

fn all(h: &VolumeHandle, path: &str) -> Vec<String> {
    let opts = ListOptions {
        recursive: true,
        glob: None,
        limit: 100_000,
        cursor: None,
        details: true,
    };
    h.list(&p(path), &opts)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect()
}

#[test]
fn usage_is_exact_after_every_operation() {
    let (_t, _s, h) = volume(1 << 20);
    write(&h, "/a/b/c.txt", b"12345").unwrap();
    write(&h, "/a/d.txt", b"123").unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (8, 2));
    write(&h, "/a/d.txt", b"1").unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (6, 2));
    h.copy(&p("/a"), &p("/a2"), false, true).unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (12, 4));
    h.rename(&p("/a2/d.txt"), &p("/a/b/c.txt"), true).unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (7, 3));
    h.remove(&p("/a"), true).unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (5, 1));
    h.remove(&p("/"), true).unwrap();
    assert_eq!((h.usage().used_bytes, h.usage().file_count), (0, 0));
}

#[test]
fn a_write_past_the_cap_changes_nothing() {
    let (tmp, _s, h) = volume(10);
    write(&h, "/f", b"12345678").unwrap();
    let e = write(&h, "/g", b"123").unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    // Replacing a file only needs room for the difference.
    write(&h, "/f", b"1234567890").unwrap();
    assert_eq!(h.usage().used_bytes, 10);
    assert!(!h.exists(&p("/g")).unwrap());
    let e = h.copy(&p("/f"), &p("/f2"), false, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("v/staging"))
            .unwrap()
            .count(),
        0,
        "temp files left behind"
    );
}

#[test]
fn overwrite_and_if_match_are_honoured() {
    let (_t, _s, h) = volume(1 << 20);
    let st = write(&h, "/f", b"one").unwrap();
    let mut w = h.begin_write(&p("/f")).unwrap();
    w.write(b"two").unwrap();
    assert_eq!(
        w.commit(&WriteOptions {
            overwrite: false,
            if_match: None
        })
        .unwrap_err()
        .code(),
        ErrorCode::AlreadyExists
    );
    let mut w = h.begin_write(&p("/f")).unwrap();
    w.write(b"two").unwrap();
    let st2 = w
        .commit(&WriteOptions {
            overwrite: true,
            if_match: Some(st.etag.clone()),
        })
        .unwrap();
    assert_ne!(st.etag, st2.etag);
    let mut w = h.begin_write(&p("/f")).unwrap();
    w.write(b"three").unwrap();
    assert_eq!(
        w.commit(&WriteOptions {
            overwrite: true,
            if_match: Some(st.etag)
        })
        .unwrap_err()
        .code(),
        ErrorCode::Conflict
    );
    let (mut f, _) = h.open_read(&p("/f")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "two");
}

#[test]
fn an_abandoned_write_leaves_the_old_file_and_no_temp_file() {
    let (tmp, _s, h) = volume(1 << 20);
    write(&h, "/f", b"old").unwrap();
    let mut w = h.begin_write(&p("/f")).unwrap();
    w.write(b"new but never committed").unwrap();
    drop(w);
    let (mut f, _) = h.open_read(&p("/f")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "old");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("v/staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn listing_pages_resume_exactly_where_they_stopped() {
    let (_t, _s, h) = volume(1 << 20);
    for d in ["a", "b", "b/c", "d"] {
        h.mkdir(&p(&format!("/{d}")), true).unwrap();
    }
    for f in ["a/1", "a/2", "b/3", "b/c/4", "b/c/5", "d/6", "e"] {
        write(&h, &format!("/{f}"), b"x").unwrap();
    }
    let want = all(&h, "/");
    assert_eq!(want.len(), 11);
    for limit in 1..=12 {
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let page = h
                .list(
                    &p("/"),
                    &ListOptions {
                        recursive: true,
                        glob: None,
                        limit,
                        cursor: cursor.clone(),
                        details: true,
                    },
                )
                .unwrap();
            assert!(page.entries.len() <= limit);
            got.extend(page.entries.into_iter().map(|e| e.path));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, want, "limit {limit}");
    }
}

#[test]
fn globs_match_names_or_relative_paths() {
    let (_t, _s, h) = volume(1 << 20);
    for f in ["/x.py", "/src/y.py", "/src/z.rs", "/src/deep/w.py"] {
        write(&h, f, b"x").unwrap();
    }
    let list = |glob: &str| -> Vec<String> {
        let opts = ListOptions {
            recursive: true,
            glob: Some(glob.into()),
            limit: 100,
            cursor: None,
            details: true,
        };
        h.list(&p("/"), &opts)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    assert_eq!(list("*.py"), ["/src/deep/w.py", "/src/y.py", "/x.py"]);
    assert_eq!(list("src/*.py"), ["/src/y.py"]);
    assert_eq!(list("src/**/*.py"), ["/src/deep/w.py", "/src/y.py"]);
    let e = h
        .list(
            &p("/"),
            &ListOptions {
                recursive: true,
                glob: Some("a[".into()),
                limit: 10,
                cursor: None,
                details: true,
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("a["), "{e}");
}

#[test]
fn moves_and_copies_refuse_what_they_should() {
    let (_t, _s, h) = volume(1 << 20);
    write(&h, "/d/f", b"x").unwrap();
    write(&h, "/g", b"y").unwrap();
    assert_eq!(
        h.rename(&p("/d"), &p("/d/inner"), false)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        h.rename(&p("/g"), &p("/d/f"), false).unwrap_err().code(),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        h.copy(&p("/d"), &p("/e"), false, false).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        h.rename(&p("/nope"), &p("/x"), false).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        h.remove(&p("/d"), false).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        h.remove(&p("/"), false).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    // A directory replaces a directory atomically with overwrite.
    write(&h, "/e/old", b"old").unwrap();
    h.copy(&p("/d"), &p("/e"), true, true).unwrap();
    assert_eq!(all(&h, "/e"), ["/e/f"]);
    assert_eq!(h.stat(&p("/e")).unwrap().file_type, FileType::Dir);
    assert_eq!(h.usage().file_count, 3);
}

#[test]
fn batches_are_all_or_nothing() {
    let (_t, _s, h) = volume(100);
    let tar_of = |files: &[(&str, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut hd = tar::Header::new_gnu();
            hd.set_size(data.len() as u64);
            hd.set_mode(0o644);
            hd.set_cksum();
            b.append_data(&mut hd, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    };
    let r = h
        .write_batch(
            &tar_of(&[("a.txt", b"aaaa"), ("dir/b.txt", b"bb")])[..],
            &p("/in"),
        )
        .unwrap();
    assert_eq!((r.files, r.bytes), (2, 6));
    assert_eq!(all(&h, "/in"), ["/in/a.txt", "/in/dir", "/in/dir/b.txt"]);
    // Too big as a whole: nothing of it lands.
    let big = vec![b'x'; 60];
    let e = h
        .write_batch(&tar_of(&[("c.txt", &big), ("d.txt", &big)])[..], &p("/in"))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert_eq!(all(&h, "/in"), ["/in/a.txt", "/in/dir", "/in/dir/b.txt"]);
    // A file where a directory stands: refused before anything changes.
    let e = h
        .write_batch(&tar_of(&[("new.txt", b"n"), ("dir", b"x")])[..], &p("/in"))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(!h.exists(&p("/in/new.txt")).unwrap());
    assert_eq!(h.usage().used_bytes, 6);
}
