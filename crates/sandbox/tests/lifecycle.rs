//! Lifecycle: pause/resume (freezer; mounts released and made again), hibernate (processes
//! gone, writable layer kept, exec wakes it), fork, destroy (volume data stays, nothing left
//! mounted anywhere), reconcile after a restart.

mod common;

use std::time::Duration;

use nullspace_sandbox::{
    AttachmentState, MountSpec, Runtime, SandboxRuntime, SandboxSpec, SandboxState,
};

fn counter(t: &common::TestEnv, id: &str) -> u64 {
    String::from_utf8(t.rt.read_file(id, "/tmp/counter").unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_continues() {
    for rt in common::runtimes("pause_freezes_and_resume_continues") {
        let t = common::env();
        let vol = t.volume("p");
        let id = common::id("pause");
        t.rt.create(
            SandboxSpec::new(&id)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/data")),
        )
        .unwrap();
        // namespace: read through the file API (it works on a frozen sandbox); gvisor: runsc
        // cannot exec in a paused container, so the counter lives on the volume and the host
        // reads it.
        let (dir, read): (&str, Box<dyn Fn() -> u64>) = match rt {
            SandboxRuntime::Namespace => ("/tmp", Box::new(|| counter(&t, &id))),
            SandboxRuntime::Gvisor => (
                "/data",
                Box::new(|| {
                    std::fs::read_to_string(vol.join("counter"))
                        .unwrap_or_default()
                        .trim()
                        .parse()
                        .unwrap_or(0)
                }),
            ),
        };
        t.ok(&id, &format!("(i=0; while true; do i=$((i+1)); echo $i > {dir}/counter.new; mv {dir}/counter.new {dir}/counter; sleep 0.01; done) >/dev/null 2>&1 &"));
        std::thread::sleep(Duration::from_millis(300));
        let before = read();
        assert!(before > 0);
        let info = t.rt.pause(&id).unwrap();
        assert_eq!(info.state, SandboxState::Paused);
        // gvisor keeps its binds while frozen (its gofer serves them); namespace releases them.
        let held = match rt {
            SandboxRuntime::Namespace => AttachmentState::Released,
            SandboxRuntime::Gvisor => AttachmentState::Mounted,
        };
        assert_eq!(info.mounts[0].state, held);
        let frozen = read();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(read(), frozen, "counter advanced while paused");
        assert_eq!(
            t.rt.exec(&id, nullspace_sandbox::ExecRequest::shell("true"))
                .unwrap_err()
                .code()
                .as_str(),
            "conflict"
        );
        std::fs::write(vol.join("while-paused"), "p").unwrap();
        let info = t.rt.resume(&id).unwrap();
        assert_eq!(info.state, SandboxState::Running);
        assert_eq!(info.mounts[0].state, AttachmentState::Mounted);
        std::thread::sleep(Duration::from_millis(300));
        assert!(read() > frozen, "counter did not advance after resume");
        assert_eq!(t.ok(&id, "cat /data/while-paused"), "p");
        assert_eq!(
            t.ok(&id, "grep -c ' /data ' /proc/self/mountinfo").trim(),
            "1"
        );
    }
}

#[test]
fn hibernate_keeps_the_layer_and_exec_wakes_it() {
    for rt in common::runtimes("hibernate_keeps_the_layer_and_exec_wakes_it") {
        let t = common::env();
        let keep = t.volume("keep");
        let doomed = t.volume("doomed");
        let id = common::id("hib");
        let spec = SandboxSpec::new(&id)
            .runtime(rt)
            .mount(MountSpec::new(&keep, "/keep"))
            .mount(MountSpec::new(&doomed, "/doomed"));
        t.rt.create(spec).unwrap();
        t.ok(
            &id,
            "echo layer > /root/file; echo vol > /keep/v; sleep 100 >/dev/null 2>&1 </dev/null &",
        );
        let info = t.rt.hibernate(&id).unwrap();
        assert_eq!(info.state, SandboxState::Hibernated);
        assert_eq!(info.init_pid, None);
        assert!(info
            .mounts
            .iter()
            .all(|m| m.state == AttachmentState::Released));
        // The volume was deleted while the sandbox slept: that mount fails, the rest resumes.
        std::fs::remove_dir_all(&doomed).unwrap();
        // exec wakes it (auto-resume) with the writable layer intact and the processes gone
        // (namespace) or going on where they were (gvisor: memory and processes were checkpointed).
        assert_eq!(t.ok(&id, "cat /root/file; cat /keep/v"), "layer\nvol\n");
        assert_eq!(
            t.ok(&id, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
                .contains("sleep 100 "),
            rt == SandboxRuntime::Gvisor
        );
        let info = t.rt.info(&id).unwrap();
        assert_eq!(info.state, SandboxState::Running);
        assert_eq!(info.mounts[0].state, AttachmentState::Mounted);
        assert_eq!(info.mounts[1].state, AttachmentState::Failed);
        assert!(
            info.mounts[1]
                .error
                .as_deref()
                .unwrap()
                .contains("not found"),
            "{:?}",
            info.mounts[1]
        );
        // The file API acts with host privileges: it refuses the sandbox's kernel file systems,
        // through which it would reach host-wide files. (gvisor's file API runs inside, and its
        // /proc is gVisor's own kernel's: no host-wide file behind it.)
        if rt == SandboxRuntime::Namespace {
            for p in [
                "/proc/meminfo",
                "/proc/sys/kernel/core_pattern",
                "/proc/1/status",
            ] {
                assert_eq!(
                    t.rt.read_file(&id, p).unwrap_err().code().as_str(),
                    "invalid_argument",
                    "{p}"
                );
            }
            assert_eq!(
                t.rt.write_file(&id, "/proc/sys/kernel/core_pattern", b"|/x")
                    .unwrap_err()
                    .code()
                    .as_str(),
                "invalid_argument"
            );
            assert_eq!(
                t.rt.list_dir(&id, "/proc").unwrap_err().code().as_str(),
                "invalid_argument"
            );
            assert_eq!(
                t.rt.list_dir(&id, "/dev/pts").unwrap_err().code().as_str(),
                "invalid_argument"
            );
        }
        // Hibernated → files also wake it.
        t.rt.hibernate(&id).unwrap();
        assert_eq!(t.rt.read_file(&id, "/root/file").unwrap(), b"layer\n");
        assert_eq!(t.rt.info(&id).unwrap().state, SandboxState::Running);
    }
}

#[test]
fn fork_copies_the_layer_and_mounts_the_same_volumes() {
    for rt in common::runtimes("fork_copies_the_layer_and_mounts_the_same_volumes") {
        let t = common::env();
        let vol = t.volume("f");
        let (src, dst) = (common::id("fsrc"), common::id("fdst"));
        t.rt.create(
            SandboxSpec::new(&src)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/data").read_only()),
        )
        .unwrap();
        t.ok(&src, "echo mine > /root/a; mkdir -p /opt/x && echo deep > /opt/x/y; rm /etc/nsswitch.conf; ln -s /root/a /root/link");
        std::fs::write(vol.join("shared"), "s").unwrap();
        let info = t.rt.fork(&src, &dst).unwrap();
        assert_eq!(info.mounts[0].state, AttachmentState::Mounted);
        assert!(info.mounts[0].spec.read_only);
        assert_eq!(
            t.ok(&dst, "cat /root/a /opt/x/y /root/link /data/shared"),
            "mine\ndeep\nmine\ns"
        );
        // The deletion (an overlayfs whiteout) was copied too.
        assert_ne!(t.sh(&dst, "test -e /etc/nsswitch.conf").exit_code, 0);
        assert_eq!(t.ok(&dst, "hostname").trim(), dst);
        // (find, not stat: this runsc refuses the statx flag AT_NO_AUTOMOUNT that stat(1) uses.)
        assert_eq!(t.ok(&dst, "find /root/a -printf %u").trim(), "root");
        // Independent afterwards; the source still runs.
        t.ok(&dst, "echo theirs > /root/a");
        assert_eq!(t.ok(&src, "cat /root/a"), "mine\n");
        assert_ne!(t.sh(&dst, "touch /data/nope").exit_code, 0);
        assert_eq!(
            t.rt.fork(&src, &dst).unwrap_err().code().as_str(),
            "already_exists"
        );
    }
}

#[test]
fn destroy_keeps_volume_data_and_leaves_no_mount() {
    for rt in common::runtimes("destroy_keeps_volume_data_and_leaves_no_mount") {
        let t = common::env();
        let vol = t.volume("d");
        let id = common::id("destroy");
        t.rt.create(
            SandboxSpec::new(&id)
                .runtime(rt)
                .mount(MountSpec::new(&vol, "/data")),
        )
        .unwrap();
        t.ok(&id, "echo kept > /data/kept; sleep 1000 &");
        let pid = t.rt.info(&id).unwrap().init_pid.unwrap();
        t.rt.destroy(&id).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("kept")).unwrap(), "kept\n");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        // No mount of the volume or of the sandbox's layer anywhere: not in the host's table, and
        // not in any process's (the sandbox's mount namespace is gone).
        let vol_s = vol.to_string_lossy().into_owned();
        let state_s = t.dir.path().to_string_lossy().into_owned();
        for ent in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(mi) = std::fs::read_to_string(ent.path().join("mountinfo")) {
                assert!(
                    !mi.contains(&state_s) && !mi.contains(&vol_s),
                    "{:?} still mounts it",
                    ent.path()
                );
            }
        }
        assert!(!t.dir.path().join("state/sandboxes").join(&id).exists());
        assert!(!std::path::Path::new("/sys/fs/cgroup/freezer/nullspace")
            .join(&id)
            .exists());
        assert_eq!(t.rt.info(&id).unwrap_err().code().as_str(), "not_found");
        assert_eq!(
            t.rt.exec(&id, nullspace_sandbox::ExecRequest::shell("true"))
                .unwrap_err()
                .code()
                .as_str(),
            "not_found"
        );
        assert_eq!(t.rt.destroy(&id).unwrap_err().code().as_str(), "not_found");
    }
}

#[test]
fn reconcile_adopts_live_sandboxes_and_cleans_dead_ones() {
    let t = common::env();
    let vol = t.volume("r");
    let (live, dead) = (common::id("live"), common::id("dead"));
    t.rt.create(SandboxSpec::new(&live).mount(MountSpec::new(&vol, "/data")))
        .unwrap();
    t.rt.create(SandboxSpec::new(&dead).mount(MountSpec::new(&vol, "/data")))
        .unwrap();
    t.ok(&dead, "echo before > /root/f");
    let dead_pid = t.rt.info(&dead).unwrap().init_pid.unwrap();
    let state = t.dir.path().join("state");
    // A "restart": a second runtime over the same state dir, after the dead one's init died
    // and with a stray mount and a half-created sandbox directory left behind.
    // SAFETY: killing a process we started.
    unsafe { libc::kill(dead_pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    let stray = state.join("sandboxes").join(&live).join("rootfs");
    rustix::mount::mount_bind(&vol, &stray).unwrap();
    std::fs::create_dir_all(state.join("sandboxes/half-made/upper")).unwrap();
    let rt2 = Runtime::new(&state).unwrap();
    let guard = Guard(&rt2);
    let report = rt2.reconcile().unwrap();
    assert!(
        report.adopted.is_empty(),
        "already adopted by new(): {report:?}"
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains(&state.to_string_lossy().into_owned()),
        "stray mount left on the host"
    );
    assert!(!state.join("sandboxes/half-made").exists());
    let info = rt2.info(&live).unwrap();
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(info.mounts[0].state, AttachmentState::Mounted);
    let r = rt2
        .exec(
            &live,
            nullspace_sandbox::ExecRequest::shell("cat /proc/1/comm; ls /data"),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "nullspace-init\n");
    let info = rt2.info(&dead).unwrap();
    assert_eq!(info.state, SandboxState::Hibernated);
    assert_eq!(info.mounts[0].state, AttachmentState::Released);
    let r = rt2
        .exec(
            &dead,
            nullspace_sandbox::ExecRequest::shell("cat /root/f; ls /data"),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "before\n");
    // Operations on the adopted sandbox work (detach by mount id, destroy without reaping).
    rt2.detach(&live, "/data").unwrap();
    rt2.destroy(&live).unwrap();
    drop(guard);
}

struct Guard<'a>(&'a Runtime);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy_all();
    }
}
