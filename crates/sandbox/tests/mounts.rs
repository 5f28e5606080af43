//! Volume mounts: sharing, read-only (create-time and runtime), subpaths that cannot leave the
//! volume (including a symlink swapped in while mounting), runtime attach/detach, bad specs.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::sub;
use nullspace_sandbox::{AttachmentState, MountSpec, SandboxSpec};

// SEMANTICS: Mounts are the volume
#[test]
fn two_sandboxes_share_one_volume_at_once() {
    for rt in common::runtimes("two_sandboxes_share_one_volume_at_once") {
        let t = common::env();
        let vol = t.volume("shared");
        let (a, b) = (common::id("sha"), common::id("shb"));
        t.rt.create(
            SandboxSpec::new(&a)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/workspace/shared")),
        )
        .unwrap();
        t.rt.create(
            SandboxSpec::new(&b)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/data")),
        )
        .unwrap();
        t.ok(&a, "echo from-a > /workspace/shared/x.txt");
        assert_eq!(t.ok(&b, "cat /data/x.txt"), "from-a\n");
        assert_eq!(
            std::fs::read_to_string(vol.join("x.txt")).unwrap(),
            "from-a\n"
        );
        // Written inside as root: owned by root on the host too (idmapped mount), not by 100000.
        assert_eq!(std::fs::metadata(vol.join("x.txt")).unwrap().uid(), 0);
        std::fs::write(vol.join("host.txt"), "from-host\n").unwrap();
        assert_eq!(t.ok(&a, "cat /workspace/shared/host.txt"), "from-host\n");
        // A host-root-owned file is root's inside, so sandbox root may change it.
        assert_eq!(
            t.ok(&a, "find /workspace/shared/host.txt -printf '%u:%g\\n'"),
            "root:root\n"
        );
        t.ok(&b, "echo more >> /data/host.txt");
        assert_eq!(
            std::fs::read_to_string(vol.join("host.txt")).unwrap(),
            "from-host\nmore\n"
        );
        // The file API sees the sandbox's view, mounts included, in both directions.
        assert_eq!(
            t.rt.read_file(&a, "/workspace/shared/x.txt").unwrap(),
            b"from-a\n"
        );
        t.rt.write_file(&a, "/workspace/shared/sub/api.txt", b"api")
            .unwrap();
        assert_eq!(t.ok(&b, "cat /data/sub/api.txt"), "api");
        assert_eq!(std::fs::metadata(vol.join("sub/api.txt")).unwrap().uid(), 0);
        let names: Vec<String> =
            t.rt.list_dir(&b, "/data")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
        assert_eq!(names, ["host.txt", "sub", "x.txt"]);
    }
}

fn assert_read_only(t: &common::TestEnv, id: &str, path: &str) {
    let r = t.sh(id, &format!("echo x > {path}/new.txt"));
    assert_ne!(r.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("Read-only file system"),
        "{r:?}"
    );
    let py = format!(
        "import errno\ntry:\n    open('{path}/f', 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"
    );
    let r =
        t.rt.exec(
            id,
            nullspace_sandbox::ExecRequest::new(["python3", "-c", &py]),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "EROFS");
    // Remounting read-write from inside fails: with mount(8), with the raw syscall, and from a
    // fresh user + mount namespace (where the mount is locked read-only).
    assert_ne!(
        t.sh(id, &format!("mount -o remount,rw {path}")).exit_code,
        0
    );
    assert_ne!(
        t.sh(id, &format!("mount -o remount,bind,rw {path}"))
            .exit_code,
        0
    );
    let raw = format!(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.mount(None, b'{path}', None, 32 | 4096, None)\nprint(r, os.strerror(ctypes.get_errno()))"
    );
    let r =
        t.rt.exec(
            id,
            nullspace_sandbox::ExecRequest::new(["python3", "-c", &raw]),
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&r.stdout).starts_with("-1 "),
        "{r:?}"
    );
    let r = t.sh(
        id,
        &format!("unshare -Urm sh -c 'mount -o remount,bind,rw {path} && echo x > {path}/escaped'"),
    );
    assert_ne!(r.exit_code, 0, "{r:?}");
    // Still read-only afterwards.
    assert_ne!(t.sh(id, &format!("touch {path}/later")).exit_code, 0);
    assert!(t
        .ok(id, "cat /proc/self/mountinfo")
        .lines()
        .any(|l| l.contains(&format!(" {path} ")) && l.contains(" ro,")));
}

// SEMANTICS: Read-only mounts
#[test]
fn read_only_mounts_stay_read_only() {
    for rt in common::runtimes("read_only_mounts_stay_read_only") {
        let t = common::env();
        let vol = t.volume("ro");
        std::fs::write(vol.join("data.txt"), "readable\n").unwrap();
        let id = common::id("ro");
        t.rt.create(
            SandboxSpec::new(&id)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/ro").read_only()),
        )
        .unwrap();
        assert_eq!(t.ok(&id, "cat /ro/data.txt"), "readable\n");
        assert_read_only(&t, &id, "/ro");
        // The same for a mount attached at run time.
        let st =
            t.rt.attach(&id, MountSpec::new(&vol, "/late/ro").read_only())
                .unwrap();
        assert_eq!(st.state, AttachmentState::Mounted);
        assert_eq!(t.ok(&id, "cat /late/ro/data.txt"), "readable\n");
        assert_read_only(&t, &id, "/late/ro");
        assert!(
            !vol.join("new.txt").exists()
                && !vol.join("escaped").exists()
                && !vol.join("later").exists()
        );
    }
}

// SEMANTICS: Subpath mounts
#[test]
fn subpath_exposes_only_that_directory() {
    let t = common::env();
    let vol = t.volume("sub");
    let outside = t.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "HOST-SECRET").unwrap();
    std::fs::write(vol.join("top-secret"), "VOLUME-TOP").unwrap();
    std::fs::create_dir_all(vol.join("proj/src")).unwrap();
    std::fs::write(vol.join("proj/src/main.py"), "print('hi')").unwrap();
    std::os::unix::fs::symlink("../top-secret", vol.join("proj/up")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), vol.join("proj/abs")).unwrap();
    std::os::unix::fs::symlink(&outside, vol.join("escape-abs")).unwrap();
    std::os::unix::fs::symlink("../../outside", vol.join("escape-rel")).unwrap();
    std::os::unix::fs::symlink("proj", vol.join("inside-link")).unwrap();

    let id = common::id("sub");
    let spec = SandboxSpec::new(&id)
        .mount(MountSpec::new(&vol, "/work").subpath(sub("proj")))
        .mount(MountSpec::new(&vol, "/fresh").subpath(sub("/new/dir")))
        .mount(MountSpec::new(&vol, "/via-link").subpath(sub("inside-link/src")));
    t.rt.create(spec).unwrap();
    assert_eq!(t.ok(&id, "ls /work"), "abs\nsrc\nup\n");
    assert_eq!(t.ok(&id, "cat /work/src/main.py"), "print('hi')");
    // Nothing above the subpath: not by .., not by a relative or an absolute symlink.
    assert_eq!(t.ok(&id, "ls /work/.."), t.ok(&id, "ls /"));
    assert_ne!(t.sh(&id, "cat /work/up").exit_code, 0);
    assert_ne!(t.sh(&id, "cat /work/abs").exit_code, 0);
    let everything = t.ok(&id, "grep -rs -l -e VOLUME-TOP -e HOST-SECRET / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; true");
    assert_eq!(everything, "", "reachable: {everything}");
    // A missing subpath is created (in the volume), a symlink inside the volume is followed.
    assert!(vol.join("new/dir").is_dir());
    t.ok(&id, "touch /fresh/made-inside");
    assert!(vol.join("new/dir/made-inside").exists());
    assert_eq!(t.ok(&id, "ls /via-link"), "main.py\n");

    // Subpaths that leave the volume are refused, naming the field.
    for (sp, what) in [
        ("escape-abs", "absolute symlink"),
        ("escape-rel", "relative symlink"),
        ("proj/abs", "file symlink"),
    ] {
        let e =
            t.rt.attach(&id, MountSpec::new(&vol, "/bad").subpath(sub(sp)))
                .unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_argument", "{what}: {e}");
        assert!(e.to_string().contains("subpath"), "{e}");
    }
    // `..` cannot even be said: a subpath is a `VolumePath`, whose parser refuses it.
    for sp in ["/..", "/proj/../..", "/a/../b"] {
        let e = nullspace_core::VolumePath::parse(sp).unwrap_err();
        assert_eq!(e.code.as_str(), "invalid_argument", "{sp}");
    }
    assert!(!outside.join("bad").exists());
    assert_eq!(
        t.rt.info(&id).unwrap().mounts.len(),
        3,
        "refused attachments leave no record"
    );
}

// SEMANTICS: Subpath mounts
#[test]
fn subpath_symlink_swapped_in_while_mounting_never_escapes() {
    let t = common::env();
    let vol = t.volume("race");
    let outside = t.dir.path().join("outside-race");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("HOST-SECRET"), "x").unwrap();
    std::fs::create_dir_all(vol.join("target")).unwrap();
    std::fs::write(vol.join("target/inside-marker"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, vol.join("evil")).unwrap();

    let id = common::id("race");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let vol = vol.clone();
        std::thread::spawn(move || {
            let dir = rustix::fs::open(
                &vol,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "target",
                    &dir,
                    "evil",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut mounted, mut refused) = (0, 0);
    for i in 0..300 {
        let target = format!("/m{i}");
        match t
            .rt
            .attach(&id, MountSpec::new(&vol, &target).subpath(sub("target")))
        {
            Ok(_) => {
                mounted += 1;
                let names: Vec<String> =
                    t.rt.list_dir(&id, &target)
                        .unwrap()
                        .into_iter()
                        .map(|e| e.name)
                        .collect();
                assert_eq!(
                    names,
                    ["inside-marker"],
                    "attempt {i} mounted something else"
                );
                t.rt.detach(&id, &target).unwrap();
            }
            Err(e) => {
                assert_eq!(e.code().as_str(), "invalid_argument", "attempt {i}: {e}");
                refused += 1;
            }
        }
    }
    // And at create time.
    for i in 0..20 {
        let cid = common::id("racec");
        match t
            .rt
            .create(SandboxSpec::new(&cid).mount(MountSpec::new(&vol, "/m").subpath(sub("target"))))
        {
            Ok(_) => {
                mounted += 1;
                let names: Vec<String> =
                    t.rt.list_dir(&cid, "/m")
                        .unwrap()
                        .into_iter()
                        .map(|e| e.name)
                        .collect();
                assert_eq!(names, ["inside-marker"], "create {i}");
                t.rt.destroy(&cid).unwrap();
            }
            Err(e) => {
                assert_eq!(e.code().as_str(), "invalid_argument", "create {i}: {e}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("race: {swaps} swaps, {mounted} mounted, {refused} refused");
    assert!(swaps > 100, "the race must actually race ({swaps} swaps)");
    assert_eq!(mounted + refused, 320);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing created outside"
    );
    // Once the swapping stops, whichever name holds the directory mounts it, the other is refused.
    let (dir_name, link_name) = if vol.join("target").symlink_metadata().unwrap().is_dir() {
        ("target", "evil")
    } else {
        ("evil", "target")
    };
    t.rt.attach(&id, MountSpec::new(&vol, "/final").subpath(sub(dir_name)))
        .unwrap();
    assert_eq!(t.ok(&id, "ls /final"), "inside-marker\n");
    assert_eq!(
        t.rt.attach(&id, MountSpec::new(&vol, "/final2").subpath(sub(link_name)))
            .unwrap_err()
            .code()
            .as_str(),
        "invalid_argument"
    );
}

// SEMANTICS: Attach and detach
#[test]
fn runtime_attach_shows_in_mountinfo_and_detach_removes_it() {
    for rt in common::runtimes("runtime_attach_shows_in_mountinfo_and_detach_removes_it") {
        let t = common::env();
        let vol = t.volume("rt");
        std::fs::write(vol.join("before"), "b").unwrap();
        let id = common::id("rt");
        t.rt.create(SandboxSpec::new(&id).runtime(rt)).unwrap();
        assert!(!t.ok(&id, "cat /proc/self/mountinfo").contains(" /mnt/vol "));
        let st = t.rt.attach(&id, MountSpec::new(&vol, "/mnt/vol")).unwrap();
        assert_eq!((st.state, st.error), (AttachmentState::Mounted, None));
        assert!(t.ok(&id, "cat /proc/self/mountinfo").contains(" /mnt/vol "));
        assert_eq!(t.ok(&id, "cat /mnt/vol/before"), "b");
        t.ok(&id, "echo attached > /mnt/vol/f");
        assert_eq!(
            std::fs::read_to_string(vol.join("f")).unwrap(),
            "attached\n"
        );
        std::fs::write(vol.join("from-host"), "h").unwrap();
        assert_eq!(t.ok(&id, "cat /mnt/vol/from-host"), "h");
        // A second mount on the same path is refused; the first stays.
        let e =
            t.rt.attach(&id, MountSpec::new(&vol, "/mnt/vol"))
                .unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        t.rt.detach(&id, "/mnt/vol").unwrap();
        assert!(!t.ok(&id, "cat /proc/self/mountinfo").contains(" /mnt/vol "));
        // (find, not ls: this gVisor refuses the statx flags of the host's ls.)
        assert_eq!(
            t.ok(&id, "test -d /mnt/vol && find /mnt/vol -mindepth 1"),
            "",
            "the mount point is an empty dir again"
        );
        // Not reachable by another path inside either (gvisor: its attach roots).
        let seen = t.ok(&id, "find / -xdev -name from-host 2>/dev/null; find /.nullspace -name from-host 2>/dev/null; true");
        assert_eq!(
            seen, "",
            "after detach the volume is still reachable at {seen}"
        );
        assert!(t.rt.info(&id).unwrap().mounts.is_empty());
        assert_eq!(
            t.rt.detach(&id, "/mnt/vol").unwrap_err().code().as_str(),
            "not_found"
        );
        // A mount point through a symlink made inside the sandbox is refused, nothing is mounted.
        t.ok(&id, "ln -s /etc /linked");
        let e =
            t.rt.attach(&id, MountSpec::new(&vol, "/linked/x"))
                .unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_argument", "{e}");
        assert!(!t.ok(&id, "cat /proc/self/mountinfo").contains("/etc/x"));
        assert!(
            t.rt.info(&id).unwrap().mounts.is_empty(),
            "refused: no record"
        );
        // Nothing of the sandbox is ever mounted in the host's mount namespace.
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!host.contains(&t.dir.path().to_string_lossy().into_owned()));
    }
}

#[test]
fn bad_mount_specs_are_refused_naming_the_field() {
    let t = common::env();
    let vol = t.volume("bad");
    let id = common::id("bad");
    for target in [
        "relative/path",
        "/a/../b",
        "/proc/x",
        "/proc",
        "/sys",
        "/sys/fs",
        "/dev/x",
        "/dev",
        "/",
        "/a//b",
        "/a/",
    ] {
        let e =
            t.rt.create(SandboxSpec::new(&id).mount(MountSpec::new(&vol, target)))
                .unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_argument", "{target}");
        assert!(e.to_string().contains("mounts[0].target"), "{target}: {e}");
    }
    let dup = SandboxSpec::new(&id)
        .mount(MountSpec::new(&vol, "/d"))
        .mount(MountSpec::new(&vol, "/d"));
    let e = t.rt.create(dup).unwrap_err();
    assert!(e.to_string().contains("mounts[1].target"), "{e}");
    assert!(nullspace_core::VolumePath::parse("/x/../..").is_err());
    std::os::unix::fs::symlink("/etc", vol.join("etc-link")).unwrap();
    let e = t
        .rt
        .create(SandboxSpec::new(&id).mount(MountSpec::new(&vol, "/d").subpath(sub("etc-link"))))
        .unwrap_err();
    assert_eq!(e.code().as_str(), "invalid_argument");
    assert!(e.to_string().contains("mounts[0].subpath"), "{e}");
    let e =
        t.rt.create(SandboxSpec::new(&id).mount(MountSpec::new(t.dir.path().join("nope"), "/d")))
            .unwrap_err();
    assert_eq!(e.code().as_str(), "not_found");
    let mut spec = SandboxSpec::new(&id);
    spec.template = "ubuntu".into();
    assert!(t
        .rt
        .create(spec)
        .unwrap_err()
        .to_string()
        .contains("template"));
    // None of the failures left anything behind: the id is free.
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    for target in ["rel", "/proc/1", "/"] {
        let e = t.rt.attach(&id, MountSpec::new(&vol, target)).unwrap_err();
        assert_eq!(e.code().as_str(), "invalid_argument");
        assert!(e.to_string().contains("invalid target"), "{e}");
    }
    assert_eq!(
        t.rt.attach("no-such-sandbox", MountSpec::new(&vol, "/x"))
            .unwrap_err()
            .code()
            .as_str(),
        "not_found"
    );
}
