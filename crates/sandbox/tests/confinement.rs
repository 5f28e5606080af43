//! Confinement of sandbox code (issue 11): the seccomp filter refuses new namespaces (nested
//! user namespaces above all), keyrings, BPF, mounts and the rest of its deny list with EPERM;
//! everyday developer work still runs; and nothing inside shows a host path. Each check runs
//! on a fresh sandbox and again after pause/resume, hibernate/resume and on a fork.

mod common;

use nullspace_sandbox::{MountSpec, Runtime, RuntimeConfig, SandboxSpec};

/// A Python program that makes one raw system call per line of `CALLS` and prints
/// `name errno` (0 when it succeeded), so a test sees the kernel's answer, not a tool's.
const PROBE: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x20000, 0x40000000
CALLS = {
    "unshare_user": (272, CLONE_NEWUSER),
    "unshare_user_mount": (272, CLONE_NEWUSER | CLONE_NEWNS),
    "unshare_net": (272, CLONE_NEWNET),
    "keyctl": (250, 0, -3, 0, 0, 0),          # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": (248, 0, 0, 0, 0, 0),
    "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "umount2": (166, 0, 0),
    "pivot_root": (155, 0, 0),
    "fsopen": (430, 0, 0),
    "open_tree": (428, -100, 0, 0),
    "setns": (308, -1, 0),
    "init_module": (175, 0, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "swapon": (167, 0, 0),
    "reboot": (169, 0, 0, 0, 0),
    "open_by_handle_at": (304, -1, 0, 0),
    "userfaultfd": (323, 0),
    "syslog": (103, 3, 0, 0),
    "settimeofday": (164, 0, 0),
    "personality_odd": (135, 0x0040000),     # ADDR_NO_RANDOMIZE: not an allowed value
    "clone3": (435, 0, 0),
    "io_uring_setup": (425, 1, 0),
    "x32_getpid": (0x40000000 + 39,),
    "getpid": (39,),
    "personality_query": (135, 0xffffffff),
}
for name, (nr, *args) in CALLS.items():
    ctypes.set_errno(0)
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    print(name, ctypes.get_errno() if r == -1 else 0)
"#;

/// What each probe must answer (errno): EPERM for the deny list, ENOSYS for what libc falls
/// back from, 0 for the calls that must keep working.
const EXPECTED: [(&str, i32); 27] = [
    ("unshare_user", libc::EPERM),
    ("unshare_user_mount", libc::EPERM),
    ("unshare_net", libc::EPERM),
    ("keyctl", libc::EPERM),
    ("add_key", libc::EPERM),
    ("bpf", libc::EPERM),
    ("perf_event_open", libc::EPERM),
    ("mount", libc::EPERM),
    ("umount2", libc::EPERM),
    ("pivot_root", libc::EPERM),
    ("fsopen", libc::EPERM),
    ("open_tree", libc::EPERM),
    ("setns", libc::EPERM),
    ("init_module", libc::EPERM),
    ("kexec_load", libc::EPERM),
    ("swapon", libc::EPERM),
    ("reboot", libc::EPERM),
    ("open_by_handle_at", libc::EPERM),
    ("userfaultfd", libc::EPERM),
    ("syslog", libc::EPERM),
    ("settimeofday", libc::EPERM),
    ("personality_odd", libc::EPERM),
    ("clone3", libc::ENOSYS),
    ("io_uring_setup", libc::ENOSYS),
    ("x32_getpid", libc::EPERM),
    ("getpid", 0),
    ("personality_query", 0),
];

/// Everyday developer work, as one shell script that stops at the first failure.
const EVERYDAY: &str = r#"set -eu
cd /tmp
sh -c 'echo shell ok'
python3 -c 'import json, sqlite3, subprocess; print(subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip())'
printf '#include <stdio.h>\n#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); puts("cc ok"); return 0; }\n' > hello.c
cc -O1 -pthread -o hello hello.c
./hello
rm -rf repo && mkdir repo && cd repo
git init -q .
git -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m first
echo data > f.txt && git add f.txt
git -c user.name=t -c user.email=t@example.com commit -q -m second
test "$(git rev-list --count HEAD)" = 2
cd /tmp
tar -cf repo.tar repo && rm -rf repo && tar -xf repo.tar && test -f repo/f.txt
python3 - <<'PY'
import zipfile, hashlib, base64
name = "probe_pkg-1.0-py3-none-any.whl"
files = {
    "probe_pkg/__init__.py": b"VALUE = 42\n",
    "probe_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: probe-pkg\nVersion: 1.0\n",
    "probe_pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(name, "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("probe_pkg-1.0.dist-info/RECORD,,")
    z.writestr("probe_pkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
PY
python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target /tmp/site ./probe_pkg-1.0-py3-none-any.whl
PYTHONPATH=/tmp/site python3 -c 'import probe_pkg; assert probe_pkg.VALUE == 42; print("pip ok")'
echo everyday ok
"#;

/// Runs the probe in `id` and checks every answer.
fn check_filter(t: &common::TestEnv, id: &str) {
    t.rt.write_file(id, "/tmp/probe.py", PROBE.as_bytes())
        .unwrap();
    let out = t.ok(id, "python3 /tmp/probe.py");
    let got: Vec<(String, i32)> = out
        .lines()
        .map(|l| {
            let (n, e) = l.split_once(' ').unwrap();
            (n.to_string(), e.parse().unwrap())
        })
        .collect();
    let want: Vec<(String, i32)> = EXPECTED.iter().map(|(n, e)| (n.to_string(), *e)).collect();
    assert_eq!(got, want, "{id}: system call answers inside the sandbox");
    // And through the tools a user would reach for.
    for cmd in ["unshare -U true", "unshare -Urm true", "unshare -r true"] {
        let r = t.sh(id, cmd);
        assert_ne!(r.exit_code, 0, "{id}: `{cmd}` must fail");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("Operation not permitted"),
            "{id}: `{cmd}` must fail with EPERM, said {err:?}"
        );
    }
}

fn check_everyday(t: &common::TestEnv, id: &str) {
    let out = t.ok(id, EVERYDAY);
    for word in ["shell ok", "sub", "cc ok", "pip ok", "everyday ok"] {
        assert!(out.contains(word), "{id}: {word:?} missing from {out:?}");
    }
}

/// No line of mountinfo or mounts inside names a host path of this test (its temp dir, the
/// state dir, the templates) or the server's /proc.
fn check_no_host_paths(t: &common::TestEnv, id: &str) {
    let host = t.dir.path().to_string_lossy().into_owned();
    for file in [
        "/proc/self/mountinfo",
        "/proc/self/mounts",
        "/proc/1/mountinfo",
    ] {
        let text = t.ok(id, &format!("cat {file}"));
        assert!(!text.is_empty(), "{id}: {file} is empty");
        for line in text.lines() {
            assert!(
                !line.contains(&host) && !line.contains("/proc/") && !line.contains("nsbx"),
                "{id}: {file} shows a host path: {line}"
            );
        }
        assert!(
            text.contains("lowerdir=lower,upperdir=layer/upper,workdir=layer/work"),
            "{id}: the root overlay's options are the staged names: {text}"
        );
    }
}

/// A volume on its own file system (a tmpfs, as loop volumes are their own ext4), so its
/// bind mount's root is `/` of that file system; unmounted when the test ends.
struct OwnFs(std::path::PathBuf);

impl OwnFs {
    fn new(t: &common::TestEnv, name: &str) -> OwnFs {
        let dir = t.volume(name);
        rustix::mount::mount(
            "tmpfs",
            &dir,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        OwnFs(dir)
    }
}

impl Drop for OwnFs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn check_all(t: &common::TestEnv, id: &str) {
    check_filter(t, id);
    check_no_host_paths(t, id);
}

// SEMANTICS: Confinement of sandbox code
#[test]
fn the_filter_refuses_namespaces_keys_bpf_and_mounts_with_eperm() {
    let t = common::env();
    let id = common::id("filter");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    check_filter(&t, &id);
    // pid 1 of the sandbox runs under the filter too (mode 2: a filter).
    let status = t.ok(&id, "cat /proc/1/status");
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
        "the sandbox's init is filtered: {status}"
    );
    let own = t.ok(&id, "grep Seccomp: /proc/self/status");
    assert!(own.contains('2'), "exec'd commands are filtered: {own}");
}

#[test]
fn everyday_developer_work_runs_under_the_filter() {
    let t = common::env();
    let id = common::id("everyday");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    check_everyday(&t, &id);
}

// SEMANTICS: Confinement of sandbox code
#[test]
fn mountinfo_inside_shows_no_host_path() {
    let t = common::env();
    let vol = OwnFs::new(&t, "own");
    let id = common::id("mountinfo");
    let spec = SandboxSpec::new(&id)
        .mount(MountSpec::new(vol.0.clone(), "/data"))
        .mount(MountSpec {
            subpath: Some(common::sub("sub")),
            ..MountSpec::new(vol.0.clone(), "/sub")
        });
    t.rt.create(spec).unwrap();
    check_no_host_paths(&t, &id);
    let text = t.ok(&id, "cat /proc/self/mountinfo");
    assert!(text.contains(" /data "), "the volume is mounted: {text}");
    // Attached at run time too.
    t.rt.attach(&id, MountSpec::new(vol.0.clone(), "/later"))
        .unwrap();
    check_no_host_paths(&t, &id);
}

#[test]
fn the_filter_and_the_clean_mount_table_survive_pause_hibernate_and_fork() {
    let t = common::env();
    let id = common::id("life");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    t.rt.pause(&id).unwrap();
    t.rt.resume(&id).unwrap();
    check_all(&t, &id);
    t.rt.hibernate(&id).unwrap();
    t.rt.resume(&id).unwrap();
    check_all(&t, &id);
    let fork = common::id("forked");
    t.rt.fork(&id, &fork).unwrap();
    check_all(&t, &fork);
    check_everyday(&t, &fork);
    // A hibernated source forks too.
    t.rt.hibernate(&id).unwrap();
    let fork2 = common::id("forked");
    t.rt.fork(&id, &fork2).unwrap();
    check_all(&t, &fork2);
}

/// The checks can fail: without the filter (the benchmark's switch) a nested user namespace
/// is created, which is what the filter prevents.
#[test]
fn without_the_filter_nested_user_namespaces_work() {
    let dir = tempfile::Builder::new().prefix("nsbx").tempdir().unwrap();
    let mut cfg = RuntimeConfig::new(dir.path().join("state"));
    cfg.seccomp = false;
    let t = common::TestEnv {
        rt: Runtime::with_config(cfg).unwrap(),
        dir,
    };
    let id = common::id("nofilter");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    assert_eq!(t.ok(&id, "unshare -U id -u"), "65534\n");
}
