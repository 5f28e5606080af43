//! Resource limits applied by the runtime (issue 11): memory (OOM kills stay inside and exec
//! says so), pids (a fork bomb stays inside its cgroup), CPU (a CFS quota; a spinning
//! neighbour leaves work for the others), and that the limits hold after pause/resume,
//! hibernate/resume and fork. Limits are checked in the cgroup files of the sandbox's live
//! init, found through `/proc/<init>/cgroup` (so the process is really in them).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use nullspace_sandbox::{ExecRequest, Limits, SandboxSpec};

const MIB: u64 = 1 << 20;

fn spec(id: &str, limits: Limits) -> SandboxSpec {
    let mut s = SandboxSpec::new(id);
    s.limits = limits;
    s
}

/// The v1 cgroup directory of controller `c` that holds process `pid`.
fn cgroup_dir(pid: i32, c: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        if ctl.split(',').any(|x| x == c) {
            return PathBuf::from("/sys/fs/cgroup")
                .join(ctl)
                .join(path.trim_start_matches('/'));
        }
    }
    panic!("process {pid} is in no {c} cgroup: {text}");
}

fn read(pid: i32, c: &str, file: &str) -> String {
    let p = cgroup_dir(pid, c).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// CPU time (user + system, seconds) used so far by the threads listed in `tasks` (a cgroup's
/// `tasks` file), from `/proc/<tid>/stat`; threads gone since count as zero.
fn cpu_seconds(tasks: &str) -> f64 {
    let hz = 100.0; // USER_HZ: the unit of /proc's utime and stime on Linux
    tasks
        .split_whitespace()
        .filter_map(|tid| std::fs::read_to_string(format!("/proc/{tid}/stat")).ok())
        .map(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            // Fields 14 and 15 of stat, counted from the state (field 3).
            (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / hz
        })
        .sum()
}

fn init_pid(t: &common::TestEnv, id: &str) -> i32 {
    t.rt.info(id).unwrap().init_pid.expect("running")
}

/// Allocates and touches `mib` MiB.
fn hog(mib: u64) -> ExecRequest {
    ExecRequest::new([
        "python3".to_string(),
        "-c".to_string(),
        format!("x = b'a' * ({mib} << 20); print(len(x))"),
    ])
}

/// Checks the memory and pids limits of `id`'s live cgroups, and that a hog past the memory
/// limit is killed there with `oom_killed`.
fn assert_limited(t: &common::TestEnv, id: &str, limits: &Limits) {
    let pid = init_pid(t, id);
    assert!(
        cgroup_dir(pid, "memory").ends_with(format!("nullspace/{id}")),
        "init of {id} is not in its own memory cgroup: {}",
        cgroup_dir(pid, "memory").display()
    );
    assert_eq!(
        read(pid, "memory", "memory.limit_in_bytes"),
        limits.memory_bytes.to_string()
    );
    assert_eq!(read(pid, "pids", "pids.max"), limits.pids.to_string());
    assert_eq!(
        read(pid, "cpu", "cpu.cfs_quota_us"),
        (u64::from(limits.cpu_millicores) * 100).to_string()
    );
    let r = t.rt.exec(id, hog(limits.memory_bytes / MIB * 2)).unwrap();
    assert!(r.oom_killed, "{id}: hog not OOM-killed: {r:?}");
    assert_eq!(r.signal, Some(libc::SIGKILL), "{r:?}");
    assert_eq!(r.exit_code, 128 + libc::SIGKILL);
    assert_eq!(t.ok(id, "echo alive"), "alive\n");
}

fn small() -> Limits {
    Limits {
        cpu_millicores: 500,
        memory_bytes: 64 * MIB,
        disk_bytes: 64 * MIB,
        pids: 64,
    }
}

// SEMANTICS: Limits inside a sandbox
#[test]
fn memory_hog_is_killed_alone_and_exec_says_so() {
    let t = common::env();
    let (a, b) = (common::id("hog"), common::id("neighbour"));
    t.rt.create(spec(&a, small())).unwrap();
    t.rt.create(spec(&b, Limits::default())).unwrap();
    // Something long-lived beside the hog: the OOM killer must pick the hog, not pid 1.
    t.ok(&a, "sleep 1000 >/dev/null 2>&1 &");
    let r = t.rt.exec(&a, hog(256)).unwrap();
    assert!(r.oom_killed, "{r:?}");
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert!(r.stdout.is_empty(), "the hog finished: {r:?}");
    // Under the limit: runs, and no OOM is reported.
    let r = t.rt.exec(&a, hog(16)).unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert!(!r.oom_killed);
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "16777216");
    // The sandbox itself lives on; the neighbour never noticed.
    assert_eq!(t.ok(&a, "echo ok"), "ok\n");
    let r = t.rt.exec(&b, ExecRequest::shell("echo fine")).unwrap();
    assert_eq!(r.stdout, b"fine\n");
    assert!(!r.oom_killed);
    assert_eq!(
        keyed(
            &read(init_pid(&t, &b), "memory", "memory.oom_control"),
            "oom_kill"
        ),
        0
    );
    // This test process (standing in for the server) was not in the sandbox's cgroup.
    assert_ne!(
        cgroup_dir(std::process::id() as i32, "memory"),
        cgroup_dir(init_pid(&t, &a), "memory")
    );
}

#[test]
fn fork_bomb_stays_inside_its_pids_limit() {
    let t = common::env();
    let (a, b) = (common::id("bomb"), common::id("calm"));
    let bomb = Limits {
        memory_bytes: 512 * MIB,
        ..small()
    };
    t.rt.create(spec(&a, bomb)).unwrap();
    t.rt.create(spec(&b, Limits::default())).unwrap();
    let pid = init_pid(&t, &a);
    // A bomb that keeps trying for as long as the exec's timeout lets it.
    // (Every process forks forever and shrugs off EAGAIN, so the bomb never dies out.)
    let mut req = ExecRequest::new([
        "python3",
        "-c",
        "import os, time\nwhile True:\n try: os.fork()\n except OSError: time.sleep(0.001)",
    ]);
    req.timeout = Some(Duration::from_secs(3));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (r, peak, neighbour) = std::thread::scope(|s| {
        let bomb = s.spawn(|| {
            let r = t.rt.exec(&a, req);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        // While it runs: the cgroup's tasks, sampled (pids.current itself may read one above
        // the limit for an instant: the kernel charges, compares, then takes back), and the
        // neighbour's work.
        let mut peak = 0u64;
        let mut neighbour = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(c) = std::fs::read_to_string(cgroup_dir(pid, "pids").join("tasks")) {
                peak = peak.max(c.lines().count() as u64);
            }
            if neighbour.len() < 5 {
                neighbour.push(t.ok(&b, "sh -c 'echo $((6*7))'"));
            }
        }
        (bomb.join().unwrap(), peak, neighbour)
    });
    let r = r.unwrap();
    assert!(r.timed_out, "{r:?}");
    // The kernel refused forks at the limit, and the cgroup never held more.
    assert!(keyed(&read(pid, "pids", "pids.events"), "max") > 0);
    assert!(peak <= 64, "the cgroup held {peak} tasks");
    assert!(peak > 8, "the bomb never got going (peak {peak})");
    assert_eq!(read(pid, "pids", "pids.max"), "64");
    // The neighbour ran new processes while the bomb went off, and still does.
    assert!(!neighbour.is_empty());
    assert!(neighbour.iter().all(|o| o == "42\n"), "{neighbour:?}");
    assert_eq!(t.ok(&b, "sh -c 'echo $((6*7))'"), "42\n");
    // And the bomb's sandbox can be cleaned up.
    t.rt.hibernate(&a).unwrap();
    t.rt.destroy(&a).unwrap();
}

fn gvisor_spec(id: &str, limits: Limits) -> SandboxSpec {
    spec(id, limits).runtime(nullspace_sandbox::SandboxRuntime::Gvisor)
}

/// gvisor: the sandbox's processes live in gVisor's kernel, which runs as one host process;
/// past the memory limit the host kills that process (every process of the sandbox, and no
/// other), exec says `oom_killed`, and the next exec boots the sandbox afresh from its layer.
// SEMANTICS: Limits inside a sandbox
#[test]
fn memory_hog_on_gvisor_ends_only_its_sandbox_and_exec_says_so() {
    if !common::gvisor_or_skip("memory_hog_on_gvisor_ends_only_its_sandbox_and_exec_says_so") {
        return;
    }
    let t = common::env();
    let (a, b) = (common::id("gvhog"), common::id("gvneighbour"));
    t.rt.create(gvisor_spec(&a, small())).unwrap();
    t.rt.create(gvisor_spec(&b, Limits::default())).unwrap();
    t.ok(&a, "echo kept > /root/f; sync");
    let neighbour_pid = init_pid(&t, &b);
    // Under the limit: runs, and no OOM is reported.
    let r = t.rt.exec(&a, hog(16)).unwrap();
    assert_eq!((r.exit_code, r.oom_killed), (0, false), "{r:?}");
    let r = t.rt.exec(&a, hog(256)).unwrap();
    assert!(r.oom_killed, "{r:?}");
    assert!(r.stdout.is_empty(), "the hog finished: {r:?}");
    assert_ne!(r.exit_code, 0);
    // The neighbour never noticed (same process, no OOM kill in its cgroup).
    let r = t.rt.exec(&b, ExecRequest::shell("echo fine")).unwrap();
    assert_eq!((r.stdout.as_slice(), r.oom_killed), (&b"fine\n"[..], false));
    assert_eq!(init_pid(&t, &b), neighbour_pid);
    assert_eq!(
        keyed(
            &read(neighbour_pid, "memory", "memory.oom_control"),
            "oom_kill"
        ),
        0
    );
    // The hog's sandbox runs again, with its files.
    assert_eq!(t.ok(&a, "cat /root/f"), "kept\n");
    let r = t.rt.exec(&a, hog(16)).unwrap();
    assert_eq!((r.exit_code, r.oom_killed), (0, false), "{r:?}");
    assert_ne!(
        cgroup_dir(std::process::id() as i32, "memory"),
        cgroup_dir(init_pid(&t, &a), "memory")
    );
}

/// gvisor: the pids limit is gVisor's RLIMIT_NPROC inside (a fork past it is EAGAIN), and
/// the host's pids cgroup holds the sentry's threads to a bound made from it.
#[test]
fn fork_bomb_on_gvisor_stays_inside_its_limit() {
    if !common::gvisor_or_skip("fork_bomb_on_gvisor_stays_inside_its_limit") {
        return;
    }
    let t = common::env();
    let (a, b) = (common::id("gvbomb"), common::id("gvcalm"));
    // (64 Python processes take about 350 MiB in gVisor's kernel.)
    let bomb = Limits {
        memory_bytes: 1024 * MIB,
        ..small()
    };
    t.rt.create(gvisor_spec(&a, bomb)).unwrap();
    t.rt.create(gvisor_spec(&b, Limits::default())).unwrap();
    assert_eq!(
        t.ok(
            &a,
            "python3 -c 'import resource; print(resource.getrlimit(resource.RLIMIT_NPROC))'"
        ),
        "(64, 64)\n"
    );
    let pid = init_pid(&t, &a);
    let host_max: u64 = read(pid, "pids", "pids.max").parse().unwrap();
    assert!(
        host_max > 64,
        "the host bound leaves room for the sentry: {host_max}"
    );
    // Each process forks forever and shrugs off EAGAIN; it counts how often it was refused.
    let mut req = ExecRequest::new([
        "python3",
        "-c",
        "import os, time\nwhile True:\n try: os.fork()\n except OSError: time.sleep(0.001)",
    ]);
    req.timeout = Some(Duration::from_secs(3));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (r, neighbour) = std::thread::scope(|s| {
        let bomb = s.spawn(|| {
            let r = t.rt.exec(&a, req);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        let mut neighbour = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) && neighbour.len() < 3 {
            neighbour.push(t.ok(&b, "sh -c 'echo $((6*7))'"));
        }
        (bomb.join().unwrap(), neighbour)
    });
    let r = r.unwrap();
    assert!(r.timed_out, "{r:?}");
    // The bomb is still trying, held at the limit: its sandbox lives and the host bound held.
    assert_eq!(
        t.rt.info(&a).unwrap().state,
        nullspace_sandbox::SandboxState::Running
    );
    assert_eq!(init_pid(&t, &a), pid, "the sandbox was not restarted");
    let tasks = std::fs::read_to_string(cgroup_dir(pid, "pids").join("tasks")).unwrap();
    assert!(tasks.lines().count() as u64 <= host_max);
    assert!(!neighbour.is_empty());
    assert!(neighbour.iter().all(|o| o == "42\n"), "{neighbour:?}");
    assert_eq!(t.ok(&b, "sh -c 'echo $((6*7))'"), "42\n");
    t.rt.destroy(&a).unwrap();
}

/// Loop iterations python manages in a one-second window of its own clock.
fn work_in_one_second(t: &common::TestEnv, id: &str) -> u64 {
    let out = t.ok(
        id,
        "python3 -c 'import time\nn = 0\nend = time.monotonic() + 1\nwhile time.monotonic() < end: n += 1\nprint(n)'",
    );
    out.trim().parse().unwrap()
}

#[test]
fn cpu_quota_throttles_a_busy_loop_and_spares_the_neighbour() {
    let t = common::env();
    let (a, b) = (common::id("spin"), common::id("worker"));
    let spin = Limits {
        cpu_millicores: 500,
        ..Limits::default()
    };
    t.rt.create(spec(&a, spin)).unwrap();
    t.rt.create(spec(&b, Limits::default())).unwrap();
    let idle = work_in_one_second(&t, &b);
    let pid = init_pid(&t, &a);
    assert_eq!(read(pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(pid, "cpu", "cpu.cfs_period_us"), "100000");
    let throttled = |k: &str| keyed(&read(pid, "cpu", "cpu.stat"), k);
    let before = throttled("nr_throttled");
    t.ok(
        &a,
        "for i in 1 2 3 4; do (while :; do :; done) >/dev/null 2>&1 & done",
    );
    // The kernel holds the spinners to their quota (waited for: on a loaded machine they may
    // take a while to use up half a core within one period)…
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while throttled("nr_throttled") == before {
        assert!(
            std::time::Instant::now() < deadline,
            "busy loop never throttled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The spinners' CPU time over a window never passes the quota: at most half a core of the
    // window plus one period, however loaded the machine (load only lowers it). Unthrottled,
    // four spinners on this machine's cores would take several times that.
    let tasks = read(pid, "cpu", "tasks");
    let window = std::time::Instant::now();
    let used_before = cpu_seconds(&tasks);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(&tasks) - used_before;
    let wall = window.elapsed().as_secs_f64();
    assert!(
        used <= 0.5 * wall + 0.1 + 0.05,
        "the spinners used {used:.2} s of CPU in {wall:.2} s under a half-core quota"
    );
    assert!(throttled("nr_throttled") > before);
    // The neighbour works beside them. How much it keeps of its idle pace is the benchmark's
    // figure (bench/sandbox_limits.rs); a test cannot tell the quota from the machine's
    // other load by wall-clock work.
    let busy = work_in_one_second(&t, &b);
    assert!(
        busy > 0 && idle > 0,
        "neighbour did {busy} iterations, {idle} idle"
    );
    t.rt.destroy(&a).unwrap();
}

#[test]
fn limits_survive_pause_hibernate_and_fork() {
    let t = common::env();
    let id = common::id("keep");
    let l = small();
    t.rt.create(spec(&id, l)).unwrap();
    assert_limited(&t, &id, &l);
    t.rt.pause(&id).unwrap();
    t.rt.resume(&id).unwrap();
    assert_limited(&t, &id, &l);
    t.rt.hibernate(&id).unwrap();
    t.rt.resume(&id).unwrap();
    assert_limited(&t, &id, &l);
    let child = common::id("keep-fork");
    let info = t.rt.fork(&id, &child).unwrap();
    assert_eq!(info.limits, l);
    assert_limited(&t, &child, &l);
}

#[test]
fn bad_limits_are_refused_naming_the_field() {
    let t = common::env();
    let id = common::id("bad");
    let err =
        t.rt.create(spec(
            &id,
            Limits {
                memory_bytes: 0,
                ..Limits::default()
            },
        ))
        .unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_argument");
    assert!(err.to_string().contains("limits.memory_bytes"), "{err}");
    assert!(t.rt.info(&id).is_err(), "nothing was created");
}

// ---------------------------------------------------------------------------------------------
// The capped writable layer.

/// A runtime whose state dir is a private tmpfs, so its free space moves only with what the
/// test's sandboxes write (the machine's disk is shared with other work).
struct TmpfsEnv {
    t: Option<common::TestEnv>,
    fs: PathBuf,
    state: PathBuf,
}

impl Drop for TmpfsEnv {
    fn drop(&mut self) {
        drop(self.t.take());
        let _ = rustix::mount::unmount(&self.fs, rustix::mount::UnmountFlags::DETACH);
    }
}

impl TmpfsEnv {
    fn new() -> TmpfsEnv {
        let dir = tempfile::Builder::new().prefix("nsbx").tempdir().unwrap();
        // The state dir inside the tmpfs (reconcile detaches mounts at or under the state dir).
        let fs = dir.path().join("fs");
        let state = fs.join("state");
        std::fs::create_dir(&fs).unwrap();
        rustix::mount::mount(
            "nsbx-tmpfs",
            &fs,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(c"size=1g,mode=755"),
        )
        .unwrap();
        let rt = nullspace_sandbox::Runtime::new(&state).unwrap();
        TmpfsEnv {
            t: Some(common::TestEnv { rt, dir }),
            fs,
            state,
        }
    }

    fn t(&self) -> &common::TestEnv {
        self.t.as_ref().unwrap()
    }

    fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.state).unwrap();
        s.f_bavail * s.f_frsize
    }
}

/// Loop devices whose backing file is under `dir` (what `losetup -a` would list).
fn loops_under(dir: &std::path::Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|b| b.starts_with(&d))
        .collect()
}

// SEMANTICS: Limits inside a sandbox
#[test]
fn writes_past_the_disk_cap_get_enospc_and_spare_the_host() {
    let env = TmpfsEnv::new();
    let t = env.t();
    let vol = t.volume("v");
    let id = common::id("disk");
    let cap = 64 * MIB;
    let mut s = spec(
        &id,
        Limits {
            disk_bytes: cap,
            ..Limits::default()
        },
    );
    s.mounts
        .push(nullspace_sandbox::MountSpec::new(&vol, "/data"));
    t.rt.create(s).unwrap();
    let before = env.free();
    let r = t.sh(
        &id,
        "dd if=/dev/zero of=/tmp/big bs=1M count=200 conv=fsync 2>&1; echo rc=$?",
    );
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(out.contains("No space left on device"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    let written: u64 = t.ok(&id, "stat -c %s /tmp/big").trim().parse().unwrap();
    assert!(
        written >= cap,
        "only {written} bytes fit under a {cap}-byte cap"
    );
    assert!(
        written <= nullspace_blockimage::image_size(cap),
        "{written} bytes written past the cap"
    );
    let dropped = before.saturating_sub(env.free());
    assert!(
        dropped <= nullspace_blockimage::image_size(cap),
        "the host lost {dropped} bytes for a {cap}-byte layer"
    );
    // The rest of the sandbox goes on: volume writes, and the layer again once space is freed.
    assert_eq!(
        t.ok(&id, "echo v > /data/after && cat /data/after && rm /tmp/big && echo ok > /tmp/small && cat /tmp/small"),
        "v\nok\n"
    );
    assert_eq!(std::fs::read_to_string(vol.join("after")).unwrap(), "v\n");
    // Destroy frees the image and its loop device.
    t.rt.destroy(&id).unwrap();
    assert_eq!(loops_under(&env.state), Vec::<String>::new());
    assert!(!env.state.join("sandboxes").join(&id).exists());
}

#[test]
fn the_layer_survives_hibernate_and_fork_copies_it_with_its_cap() {
    let t = common::env();
    let id = common::id("layer");
    let l = Limits {
        disk_bytes: 32 * MIB,
        ..Limits::default()
    };
    t.rt.create(spec(&id, l)).unwrap();
    let sum = t.ok(
        &id,
        "head -c 4000000 /dev/urandom > /root/blob && md5sum < /root/blob",
    );
    t.rt.pause(&id).unwrap();
    t.rt.resume(&id).unwrap();
    assert_eq!(t.ok(&id, "md5sum < /root/blob"), sum);
    t.rt.hibernate(&id).unwrap();
    t.rt.resume(&id).unwrap();
    assert_eq!(t.ok(&id, "md5sum < /root/blob"), sum);
    // Fork a running source: its last write (not synced by anyone) is in the copy.
    t.ok(&id, "echo late > /root/late");
    let child = common::id("layer-fork");
    t.rt.fork(&id, &child).unwrap();
    assert_eq!(t.ok(&child, "md5sum < /root/blob"), sum);
    assert_eq!(t.ok(&child, "cat /root/late"), "late\n");
    assert_eq!(t.ok(&child, "hostname"), format!("{child}\n"));
    // Separate copies…
    t.ok(&child, "echo mine > /root/child-only");
    assert_ne!(t.sh(&id, "test -e /root/child-only").exit_code, 0);
    // …each under the same cap.
    let r = t.sh(&child, "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1");
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("No space left on device"),
        "{r:?}"
    );
    // A fork of a hibernated source too.
    t.rt.hibernate(&id).unwrap();
    let cold = common::id("layer-cold");
    t.rt.fork(&id, &cold).unwrap();
    assert_eq!(t.ok(&cold, "md5sum < /root/blob"), sum);
    let state = t.dir.path().join("state");
    for x in [&id, &child, &cold] {
        t.rt.destroy(x).unwrap();
    }
    assert_eq!(loops_under(&state), Vec::<String>::new());
}

#[test]
fn layer_and_limits_survive_a_restart() {
    let t = common::env();
    let (run, cold) = (common::id("rs-run"), common::id("rs-cold"));
    let l = small();
    for id in [&run, &cold] {
        t.rt.create(spec(id, l)).unwrap();
        t.ok(id, "echo kept > /root/f");
    }
    t.rt.hibernate(&cold).unwrap();
    // A "restart": a second runtime over the same state dir adopts both.
    let rt2 = nullspace_sandbox::Runtime::new(t.dir.path().join("state")).unwrap();
    let t2 = common::TestEnv {
        rt: rt2,
        dir: tempfile::tempdir().unwrap(),
    };
    for id in [&run, &cold] {
        assert_eq!(t2.ok(id, "cat /root/f"), "kept\n");
        assert_eq!(t2.rt.info(id).unwrap().limits, l);
        assert_limited(&t2, id, &l);
        let r = t2.sh(id, "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1");
        assert!(
            String::from_utf8_lossy(&r.stdout).contains("No space left on device"),
            "{id}: {r:?}"
        );
    }
    // t2 destroys both (and t finds nothing left to do).
}
