//! Running programs in a sandbox: sh and python3, results, env, cwd, stdin, timeout, and the
//! isolation every command gets (namespaces, capabilities, no host fd).

mod common;

use std::time::{Duration, Instant};

use nullspace_sandbox::{ExecRequest, SandboxSpec};

#[test]
fn sh_and_python3_run() {
    let t = common::env();
    let id = common::id("run");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    assert_eq!(t.ok(&id, "echo hi"), "hi\n");
    let r =
        t.rt.exec(&id, ExecRequest::new(["python3", "-c", "print(1)"]))
            .unwrap();
    assert_eq!(
        (r.exit_code, r.stdout.as_slice()),
        (0, &b"1\n"[..]),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(t.ok(&id, "id -u; id -g; whoami"), "0\n0\nroot\n");
    assert_eq!(
        t.ok(
            &id,
            "cd /tmp && echo x > f && cat f && ls -ld /tmp | cut -c1-10"
        ),
        "x\ndrwxrwxrwt\n"
    );
}

#[test]
fn exec_results_env_cwd_stdin() {
    let t = common::env();
    let id = common::id("res");
    let mut spec = SandboxSpec::new(&id);
    spec.env.insert("FROM_SANDBOX".into(), "s".into());
    spec.env.insert("OVERRIDDEN".into(), "sandbox".into());
    t.rt.create(spec).unwrap();

    let r = t.sh(&id, "echo out; echo err >&2; exit 3");
    assert_eq!(
        (r.exit_code, &r.stdout[..], &r.stderr[..]),
        (3, &b"out\n"[..], &b"err\n"[..])
    );

    let mut req = ExecRequest::shell("echo $FROM_SANDBOX $OVERRIDDEN $EXTRA; pwd; cat");
    req.env.insert("OVERRIDDEN".into(), "request".into());
    req.env.insert("EXTRA".into(), "e".into());
    req.cwd = Some("/usr/bin".into());
    req.stdin = Some(b"from stdin".to_vec());
    let r = t.rt.exec(&id, req).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "s request e\n/usr/bin\nfrom stdin"
    );

    // Large stdin and stdout both flow (no deadlock on full pipes).
    let big = vec![b'a'; 4 << 20];
    let mut req = ExecRequest::new(["cat"]);
    req.stdin = Some(big.clone());
    let r = t.rt.exec(&id, req).unwrap();
    assert_eq!(r.stdout.len(), big.len());

    // A missing program is a result with 127, not an error; not executable is 126.
    let r =
        t.rt.exec(&id, ExecRequest::new(["no-such-program-xyz"]))
            .unwrap();
    assert_eq!(r.exit_code, 127);
    assert!(String::from_utf8_lossy(&r.stderr).contains("not found"));
    let r = t.rt.exec(&id, ExecRequest::new(["/etc/passwd"])).unwrap();
    assert_eq!(r.exit_code, 126);

    // A signal is 128 + signal.
    let r = t.sh(&id, "kill -9 $$");
    assert_eq!((r.exit_code, r.signal), (137, Some(9)));

    // A bad cwd is a caller error naming the field.
    let mut req = ExecRequest::shell("true");
    req.cwd = Some("/no/such/dir".into());
    let e = t.rt.exec(&id, req).unwrap_err();
    assert_eq!(e.code().as_str(), "invalid_argument");
    assert!(e.to_string().contains("cwd"), "{e}");

    // Output past max_output is cut and flagged.
    let mut req = ExecRequest::shell("head -c 100000 /dev/zero");
    req.max_output = Some(1000);
    let r = t.rt.exec(&id, req).unwrap();
    assert!(r.truncated && r.stdout.len() == 1000);
}

#[test]
fn timeout_kills_the_command_and_its_group() {
    let t = common::env();
    let id = common::id("timeout");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    let mut req = ExecRequest::shell("sleep 100 & sleep 100; echo never");
    req.timeout = Some(Duration::from_millis(300));
    let start = Instant::now();
    let r = t.rt.exec(&id, req).unwrap();
    assert!(r.timed_out);
    assert_eq!(r.exit_code, 137);
    assert!(start.elapsed() < Duration::from_secs(5));
    // Both sleeps are gone (same process group).
    let left = t.ok(&id, "cat /proc/[0-9]*/comm");
    assert!(!left.contains("sleep"), "{left}");
}

#[test]
fn background_process_does_not_block_exec() {
    let t = common::env();
    let id = common::id("bg");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    let start = Instant::now();
    let r = t.sh(&id, "sleep 600 & echo started");
    assert_eq!(r.stdout, b"started\n");
    // Not a timing bound: an exec that waited for the background sleep would take 600 s; half
    // of that leaves any loaded machine room and still tells the two apart.
    assert!(start.elapsed() < Duration::from_secs(300));
    // The orphan is reaped by the sandbox's init when it ends; it is visible meanwhile (once
    // the background shell has exec'd `sleep`: until then its name is `sh`, so wait for it).
    t.ok(
        &id,
        "for i in $(seq 600); do grep -qx sleep /proc/[0-9]*/comm && exit 0; sleep 0.05; done; exit 1",
    );
}

#[test]
fn isolation_namespaces() {
    let t = common::env();
    let id = common::id("iso");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    // UTS: our own host name.
    assert_eq!(t.ok(&id, "hostname").trim(), id);
    // PID: pid 1 is the sandbox's init, no host process is visible.
    assert_eq!(t.ok(&id, "cat /proc/1/comm").trim(), "nullspace-init");
    let cmdline = t.ok(&id, "tr '\\0' ' ' < /proc/1/cmdline");
    assert_eq!(
        cmdline.trim(),
        "nullspace-init",
        "the server's command line must not show"
    );
    let pids = t.ok(&id, "ls /proc | grep '^[0-9]*$'");
    let pids: Vec<u32> = pids.lines().map(|l| l.parse().unwrap()).collect();
    assert!(pids.len() <= 4 && pids.iter().all(|p| *p < 50), "{pids:?}");
    assert!(t.ok(&id, "echo $$").trim().parse::<u32>().unwrap() < 50);
    // Network: only loopback, and it is up.
    let ifaces = t.ok(&id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    assert_eq!(ifaces.trim(), "lo");
    let r = t.rt.exec(
        &id,
        ExecRequest::new([
            "python3",
            "-c",
            "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
             c=socket.create_connection(s.getsockname()); print('lo ok')",
        ]),
    );
    assert_eq!(String::from_utf8_lossy(&r.unwrap().stdout), "lo ok\n");
    // IPC and cgroup namespaces: our own.
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_ne!(
        t.ok(&id, "readlink /proc/self/ns/ipc").trim(),
        host_ipc.to_string_lossy()
    );
    assert_eq!(
        t.ok(&id, "grep freezer /proc/self/cgroup | cut -d: -f3")
            .trim(),
        "/"
    );
    // User namespace: root inside is an unprivileged uid outside.
    assert_eq!(
        t.ok(&id, "cat /proc/self/uid_map")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
}

#[test]
fn capabilities_are_dropped_and_no_new_privs() {
    let t = common::env();
    let id = common::id("caps");
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    let status = t.ok(
        &id,
        "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status",
    );
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let bnd = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    let eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_NET_ADMIN: u64 = 12;
    const CAP_SYS_PTRACE: u64 = 19;
    for cap in [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE] {
        assert_eq!(bnd & (1 << cap), 0, "cap {cap} in bounding set {bnd:x}");
        assert_eq!(eff & (1 << cap), 0, "cap {cap} effective {eff:x}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    // No mounting, no new mount namespace, no network configuration.
    assert_ne!(t.sh(&id, "mount -t tmpfs none /mnt").exit_code, 0);
    assert_ne!(t.sh(&id, "unshare -m true").exit_code, 0);
    assert_ne!(t.sh(&id, "hostname other").exit_code, 0);
    assert_eq!(t.ok(&id, "hostname").trim(), id);
}

#[test]
fn no_host_fd_leaks_into_the_sandbox() {
    let t = common::env();
    let id = common::id("fds");
    // An fd of the host opened WITHOUT close-on-exec, and one with it: neither may show up.
    // SAFETY: plain open of a C string path.
    let leaky = unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) };
    assert!(leaky >= 0);
    let cloexec = std::fs::File::open("/etc/hostname").unwrap();
    t.rt.create(SandboxSpec::new(&id)).unwrap();
    let r = t.rt.exec(
        &id,
        ExecRequest::new([
            "python3",
            "-c",
            "import os; print(' '.join(sorted(os.listdir('/proc/self/fd'))))",
        ]),
    );
    let r = r.unwrap();
    // 0, 1, 2 and the fd python's listdir itself holds open.
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "0 1 2 3",
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let listing = t.ok(&id, "ls -l /proc/self/fd/");
    assert!(!listing.contains("hostname"), "{listing}");
    // The init holds no fd at all (it is not even readable by sandbox root: not dumpable).
    assert_ne!(t.sh(&id, "ls /proc/1/fd").exit_code, 0);
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(leaky) };
    drop(cloexec);
}
