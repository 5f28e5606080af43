//! Hostile paths against every operation of the data plane: nothing outside the volume is read,
//! written, listed or removed, and nothing panics.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nullspace_core::{ErrorCode, VolumePath};
use nullspace_volumes::{DirectoryPlacement, ListOptions, VolumeHandle, VolumeStore, WriteOptions};

struct Fixture {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    data: PathBuf,
    handle: Arc<VolumeHandle>,
}

const SECRET: &str = "top secret outside the volume";

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::fs::write(outside.join("dir/inner.txt"), SECRET).unwrap();
    let store = VolumeStore::new(Box::new(
        DirectoryPlacement::open(&tmp.path().join("volumes")).unwrap(),
    ));
    store.create("vol1", 1 << 30).unwrap();
    let data = tmp.path().join("volumes/vol1/data");
    // Hostile links planted inside the volume (as sandbox code could).
    symlink(outside.join("secret.txt"), data.join("abs_file")).unwrap();
    symlink(&outside, data.join("abs_dir")).unwrap();
    symlink("../../../outside/secret.txt", data.join("rel_file")).unwrap();
    symlink("../../../outside", data.join("rel_dir")).unwrap();
    symlink("/proc/self/root/etc/passwd", data.join("proc_root")).unwrap();
    symlink(
        format!("/proc/self/root{}", outside.display()),
        data.join("proc_dir"),
    )
    .unwrap();
    symlink("loop_b", data.join("loop_a")).unwrap();
    symlink("loop_a", data.join("loop_b")).unwrap();
    symlink("self", data.join("self")).unwrap();
    std::fs::create_dir(data.join("sub")).unwrap();
    symlink("../../../../outside", data.join("sub/up")).unwrap();
    symlink("/", data.join("root_link")).unwrap();
    std::fs::write(data.join("ok.txt"), "inside").unwrap();
    symlink("ok.txt", data.join("good_link")).unwrap();
    let handle = store.handle("vol1", 1 << 30).unwrap();
    Fixture {
        _tmp: tmp,
        outside,
        data,
        handle,
    }
}

fn outside_intact(f: &Fixture) {
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        SECRET
    );
    assert_eq!(
        std::fs::read_to_string(f.outside.join("dir/inner.txt")).unwrap(),
        SECRET
    );
    let names: Vec<_> = std::fs::read_dir(&f.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "something was created outside: {names:?}");
}

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

/// Paths that lead out through a planted link, as the volume sees them.
const ESCAPES: &[&str] = &[
    "/abs_file",
    "/abs_dir/secret.txt",
    "/abs_dir/dir/inner.txt",
    "/rel_file",
    "/rel_dir/secret.txt",
    "/proc_root",
    "/proc_dir/secret.txt",
    "/sub/up/secret.txt",
    "/root_link/etc/passwd",
    "/loop_a",
    "/loop_a/x",
    "/self/x",
];

#[test]
fn parse_refuses_hostile_strings() {
    let long_name = format!("/{}", "a".repeat(256));
    let long_path = "/abc".repeat(1100);
    let cases: Vec<&str> = vec![
        "..",
        "../x",
        "/..",
        "/../x",
        "/a/../../x",
        "/a/b/../../..",
        "/./../x",
        "//..//x",
        "x",
        "",
        "a/b",
        "/a\0b",
        "/\0",
        "/a/\0/..",
        &long_name,
        &long_path,
    ];
    for c in cases {
        let e = VolumePath::parse(c).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{c:?}");
    }
}

#[test]
fn reads_never_leave_the_volume() {
    let f = fixture();
    for path in ESCAPES {
        match f.handle.open_read(&p(path)) {
            Ok((mut file, _)) => {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut file, &mut s);
                panic!("{path} was readable: {s:?}");
            }
            Err(e) => assert_ne!(e.code(), ErrorCode::Internal, "{path}: {e}"),
        }
    }
    let (mut file, _) = f.handle.open_read(&p("/good_link")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut file, &mut s).unwrap();
    assert_eq!(s, "inside");
    outside_intact(&f);
}

#[test]
fn writes_never_leave_the_volume() {
    let f = fixture();
    for path in ESCAPES.iter().chain(&[
        "/abs_dir/new.txt",
        "/rel_dir/new.txt",
        "/sub/up/new.txt",
        "/root_link/tmp/x",
    ]) {
        let r = f.handle.begin_write(&p(path)).and_then(|mut w| {
            w.write(b"pwned")?;
            w.commit(&WriteOptions {
                overwrite: true,
                if_match: None,
            })
        });
        if let Ok(st) = &r {
            // Replacing a link *itself* with a file inside the volume is fine; following it is not.
            assert!(
                !st.path.contains('/') || st.path.matches('/').count() == 1,
                "{path}: wrote {st:?}"
            );
        }
    }
    outside_intact(&f);
    // The links that were written over were replaced inside the volume, not followed.
    assert_eq!(
        std::fs::read_to_string(f.data.join("abs_file")).unwrap(),
        "pwned"
    );
}

#[test]
fn metadata_and_listing_never_leave_the_volume() {
    let f = fixture();
    for path in ESCAPES {
        if let Ok(st) = f.handle.stat(&p(path)) {
            // Only the link itself may be described (it is inside the volume).
            assert_eq!(st.file_type, nullspace_core::FileType::Symlink, "{path}");
        }
        let _ = f.handle.exists(&p(path));
        let opts = ListOptions {
            recursive: true,
            glob: None,
            limit: 1000,
            cursor: None,
            details: true,
        };
        if let Ok(page) = f.handle.list(&p(path), &opts) {
            for e in page.entries {
                assert!(
                    !e.path.contains("secret") && !e.path.contains("inner"),
                    "{path} listed {}",
                    e.path
                );
            }
        }
    }
    let all = f
        .handle
        .list(
            &p("/"),
            &ListOptions {
                recursive: true,
                glob: None,
                limit: 1000,
                cursor: None,
                details: true,
            },
        )
        .unwrap();
    for e in &all.entries {
        assert!(
            !e.path.contains("secret") && !e.path.contains("passwd"),
            "listed {}",
            e.path
        );
    }
    outside_intact(&f);
}

#[test]
fn move_copy_remove_never_leave_the_volume() {
    let f = fixture();
    for path in ESCAPES {
        let _ = f.handle.copy(&p(path), &p("/copied"), true, true);
        if let Ok(st) = f.handle.stat(&p("/copied")) {
            assert_eq!(
                st.file_type,
                nullspace_core::FileType::Symlink,
                "copy of {path} followed the link"
            );
            f.handle.remove(&p("/copied"), true).unwrap();
        }
        let _ = f.handle.copy(&p("/ok.txt"), &p(path), true, false);
        let _ = f
            .handle
            .rename(&p("/ok.txt"), &p(&format!("{path}/moved")), true);
        let _ = f.handle.remove(&p(&format!("{path}/secret.txt")), true);
        let _ = f.handle.remove(&p(&format!("{path}/dir")), true);
        let _ = f.handle.mkdir(&p(&format!("{path}/newdir")), true);
        outside_intact(&f);
    }
    // Removing a link removes the link, not its target.
    f.handle.remove(&p("/abs_dir"), true).unwrap();
    f.handle.remove(&p("/rel_file"), false).unwrap();
    outside_intact(&f);
    assert!(!f.data.join("abs_dir").exists() && Path::new(&f.outside).join("dir").exists());
}

/// One thread swaps a directory inside the volume with a symlink to a directory outside it
/// (renameat2 RENAME_EXCHANGE) while requests run through it: the kernel-confined resolver
/// must never reach outside, in 10,000 iterations.
#[test]
fn symlink_swap_race_never_escapes() {
    let f = fixture();
    std::fs::create_dir(f.data.join("race")).unwrap();
    std::fs::write(f.data.join("race/secret.txt"), "inside").unwrap();
    symlink(&f.outside, f.data.join("race_link")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, data) = (stop.clone(), f.data.clone());
        std::thread::spawn(move || {
            let dir = rustix::fs::open(
                &data,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "race",
                    &dir,
                    "race_link",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let mut inside_reads = 0;
    for i in 0..10_000 {
        if let Ok((mut file, _)) = f.handle.open_read(&p("/race/secret.txt")) {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut file, &mut s).unwrap();
            assert_eq!(s, "inside", "iteration {i}: read escaped the volume");
            inside_reads += 1;
        }
        if let Ok(page) = f.handle.list(
            &p("/race"),
            &ListOptions {
                recursive: true,
                glob: None,
                limit: 100,
                cursor: None,
                details: true,
            },
        ) {
            assert!(
                page.entries
                    .iter()
                    .all(|e| !e.path.contains("inner") && !e.path.ends_with("/dir")),
                "iteration {i}: listing escaped"
            );
        }
        let _ = f
            .handle
            .begin_write(&p(&format!("/race/w{}.txt", i % 4)))
            .and_then(|mut w| {
                w.write(b"x")?;
                w.commit(&WriteOptions {
                    overwrite: true,
                    if_match: None,
                })
            });
        let _ = f.handle.remove(&p("/race/dir"), true);
        let _ = f.handle.stat(&p("/race/dir/inner.txt"));
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 100, "the swapper barely ran ({swaps} swaps)");
    assert!(inside_reads > 0, "no read ever resolved");
    outside_intact(&f);
}
