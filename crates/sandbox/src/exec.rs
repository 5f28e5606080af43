//! Running a command in a sandbox.
//!
//! The parent prepares everything (`ExecPlan`), then clones a helper E. E joins the sandbox's
//! cgroups, enters its mount/UTS/IPC/network/PID/cgroup namespaces through the init's pidfd
//! while still privileged on the host, then its user namespace, and becomes root there; it
//! clones X, which is in the sandbox's PID namespace. X starts a new session, wires stdio,
//! changes directory, drops every dangerous capability (bounding set included), sets
//! no_new_privs, marks every inherited fd close-on-exec and execs. E reports X's pid and wait
//! status through a pipe. The parent pumps stdin/stdout/stderr with poll and kills X's process
//! group at the timeout.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use crate::error::{Result, SandboxError};
use crate::spec::{exec_env, program_candidates, ExecRequest, ExecResult};
use crate::sys::{self, check_int};

/// Capabilities sandbox processes keep (Docker's default set); all others, CAP_SYS_ADMIN
/// first, are dropped from every set including the bounding set.
pub(crate) const KEEP_CAPS: u64 = {
    const CHOWN: u64 = 0;
    const DAC_OVERRIDE: u64 = 1;
    const FOWNER: u64 = 3;
    const FSETID: u64 = 4;
    const KILL: u64 = 5;
    const SETGID: u64 = 6;
    const SETUID: u64 = 7;
    const SETPCAP: u64 = 8;
    const NET_BIND_SERVICE: u64 = 10;
    const NET_RAW: u64 = 13;
    const SYS_CHROOT: u64 = 18;
    const MKNOD: u64 = 27;
    const AUDIT_WRITE: u64 = 29;
    const SETFCAP: u64 = 31;
    let keep = [
        CHOWN,
        DAC_OVERRIDE,
        FOWNER,
        FSETID,
        KILL,
        SETGID,
        SETUID,
        SETPCAP,
        NET_BIND_SERVICE,
        NET_RAW,
        SYS_CHROOT,
        MKNOD,
        AUDIT_WRITE,
        SETFCAP,
    ];
    let mut mask = 0u64;
    let mut i = 0;
    while i < keep.len() {
        mask |= 1 << keep[i];
        i += 1;
    }
    mask
};

/// Bytes kept of each of stdout and stderr unless the request says otherwise (the API's
/// answer budget: no stream needs more raw bytes than that to fill it).
pub(crate) const DEFAULT_MAX_OUTPUT: usize = nullspace_core::wire::EXEC_OUTPUT_BUDGET;

/// Failure points of the helper and the command before exec.
#[repr(u32)]
#[derive(Clone, Copy)]
enum Step {
    Cgroup = 1,
    Setns,
    UserNs,
    Ids,
    Clone,
    Stdio,
    Chdir,
    Caps,
    Seccomp,
}

fn step_name(v: u32) -> &'static str {
    match v {
        1 => "join cgroup",
        2 => "enter namespaces",
        3 => "enter user namespace",
        4 => "set ids",
        5 => "clone",
        6 => "set up stdio",
        7 => "chdir",
        8 => "drop capabilities",
        9 => "install the seccomp filter",
        _ => "exec setup",
    }
}

/// The sandbox a command runs in.
pub(crate) struct Target<'a> {
    pub pidfd: &'a OwnedFd,
    pub cgroup_procs: &'a [OwnedFd],
    pub sandbox_env: &'a BTreeMap<String, String>,
    /// The filter the command runs under (`None` only when the runtime is configured without).
    pub seccomp: Option<&'a [seccompiler::sock_filter]>,
}

struct ExecPlan {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    not_found: Vec<u8>,
    not_executable: Vec<u8>,
    arg_areas: [(usize, usize); 2],
    seccomp: Option<Vec<seccompiler::sock_filter>>,
}

/// Runs one command; see the module doc.
pub(crate) fn run(target: &Target<'_>, req: &ExecRequest) -> Result<ExecResult> {
    let plan = build_plan(target, req)?;
    let argv_ptrs: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();

    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| SandboxError::sys("pipe", "exec", e))
    };
    let (stdin_r, stdin_w) = match &req.stdin {
        Some(_) => {
            let (r, w) = pipe()?;
            (r, Some(w))
        }
        None => {
            let f = std::fs::File::open("/dev/null")
                .map_err(|e| SandboxError::sys("open", "/dev/null", e))?;
            (OwnedFd::from(f), None)
        }
    };
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let (err_r, err_w) = pipe()?;

    let fds = ChildFds {
        pidfd: target.pidfd.as_raw_fd(),
        stdin: stdin_r.as_raw_fd(),
        stdout: stdout_w.as_raw_fd(),
        stderr: stderr_w.as_raw_fd(),
        status: status_w.as_raw_fd(),
        err: err_w.as_raw_fd(),
    };
    let cgroup_fds: Vec<RawFd> = target.cgroup_procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the child runs `helper_main`, raw syscalls only, and leaves with _exit.
    let helper = unsafe { sys::clone3(0, None) }
        .map_err(|e| SandboxError::errno("clone3", "exec helper", e))?;
    if helper == 0 {
        helper_main(&plan, &argv_ptrs, &envp_ptrs, &cgroup_fds, &fds);
    }
    drop((stdin_r, stdout_w, stderr_w, status_w, err_w));

    let result = pump(req, stdin_w, stdout_r, stderr_r, status_r);
    let _ = sys::wait_pid(helper);
    let (out, status) = result?;
    // A setup failure of the helper or the command (cwd, namespaces…) came through `err`.
    let mut msg = [0u8; 8];
    let n = sys::read_full(err_r.as_raw_fd(), &mut msg).unwrap_or(0);
    if n == 8 {
        let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        if step == Step::Chdir as u32 {
            return Err(SandboxError::invalid(
                "cwd",
                format!(
                    "{:?}: {}",
                    req.cwd.as_deref().unwrap_or("/"),
                    std::io::Error::from_raw_os_error(errno)
                ),
            ));
        }
        return Err(SandboxError::errno("exec", step_name(step), errno));
    }
    let Some(status) = status else {
        return Err(SandboxError::Unavailable(
            "exec helper ended without a status (sandbox gone?)".into(),
        ));
    };
    let (exit_code, signal) = if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    };
    Ok(ExecResult {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code,
        signal,
        timed_out: out.timed_out,
        truncated: out.truncated,
        oom_killed: false,
    })
}

fn cstring(field: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| SandboxError::invalid(field, "contains NUL"))
}

fn build_plan(target: &Target<'_>, req: &ExecRequest) -> Result<ExecPlan> {
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(SandboxError::invalid("argv", "must name a program"));
    }
    crate::spec::validate_env("env", &req.env)?;
    let env = exec_env(target.sandbox_env, &req.env);
    let argv = req
        .argv
        .iter()
        .map(|a| cstring("argv", a))
        .collect::<Result<Vec<_>>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring("env", &format!("{k}={v}")))
        .collect::<Result<Vec<_>>>()?;
    let candidates = program_candidates(&req.argv[0], env.get("PATH").map(String::as_str))
        .iter()
        .map(|c| cstring("argv", c))
        .collect::<Result<Vec<_>>>()?;
    let cwd = req.cwd.as_deref().unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(SandboxError::invalid(
            "cwd",
            format!("{cwd:?} must be an absolute path"),
        ));
    }
    Ok(ExecPlan {
        candidates,
        argv,
        envp,
        cwd: cstring("cwd", cwd)?,
        not_found: format!("{}: command not found\n", req.argv[0]).into_bytes(),
        not_executable: format!("{}: permission denied\n", req.argv[0]).into_bytes(),
        arg_areas: crate::init::arg_areas(),
        seccomp: target.seccomp.map(<[_]>::to_vec),
    })
}

struct ChildFds {
    pidfd: RawFd,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    status: RawFd,
    err: RawFd,
}

fn fail(fd: RawFd, step: Step, errno: i32) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    let _ = sys::write_all(fd, &msg);
    // SAFETY: leaving the child.
    unsafe { libc::_exit(125) }
}

/// Helper E: enter the sandbox, clone the command, report its pid and status.
fn helper_main(
    plan: &ExecPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    cgroup_fds: &[RawFd],
    fds: &ChildFds,
) -> ! {
    let _ = sys::set_not_dumpable();
    let mut keep = [-1; 16];
    let mine = [
        fds.pidfd, fds.stdin, fds.stdout, fds.stderr, fds.status, fds.err, 0, 1, 2,
    ];
    keep[..mine.len()].copy_from_slice(&mine);
    for (slot, &fd) in keep[mine.len()..].iter_mut().zip(cgroup_fds) {
        *slot = fd;
    }
    sys::close_all_except(&mut keep);
    for &fd in cgroup_fds {
        if let Err(e) = sys::write_all(fd, b"0") {
            fail(fds.err, Step::Cgroup, e);
        }
    }
    let ns = libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWCGROUP;
    // SAFETY: setns with a pidfd; single-threaded child.
    if let Err(e) = check_int(unsafe { libc::setns(fds.pidfd, ns) }) {
        fail(fds.err, Step::Setns, e);
    }
    // SAFETY: as above; the user namespace comes last (the others are owned by the host's).
    if let Err(e) = check_int(unsafe { libc::setns(fds.pidfd, libc::CLONE_NEWUSER) }) {
        fail(fds.err, Step::UserNs, e);
    }
    if let Err(e) = sys::clear_thread_groups()
        .and(sys::set_thread_gid(0))
        .and(sys::set_thread_uid(0))
    {
        fail(fds.err, Step::Ids, e);
    }
    let _ = sys::set_not_dumpable();
    // SAFETY: fork-like clone; the child runs `command_main`.
    let pid = match unsafe { sys::clone3(0, None) } {
        Ok(p) => p,
        Err(e) => fail(fds.err, Step::Clone, e),
    };
    if pid == 0 {
        command_main(plan, argv, envp, fds);
    }
    let _ = sys::write_all(fds.status, &pid.to_ne_bytes());
    let status = sys::wait_pid(pid).unwrap_or(0);
    let _ = sys::write_all(fds.status, &status.to_ne_bytes());
    // SAFETY: leaving the child.
    unsafe { libc::_exit(0) }
}

/// Command X: pid namespace member; wire stdio, drop privileges, exec.
fn command_main(
    plan: &ExecPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: &ChildFds,
) -> ! {
    crate::init::scrub_args(&plan.arg_areas, b"nullspace-exec\0");
    // SAFETY: raw syscalls on our own fds and process.
    unsafe {
        libc::setsid();
        sys::reset_signals();
        // Move the sources above 2 first, so no dup2 overwrites a source still to be copied.
        let mut high = [fds.stdin, fds.stdout, fds.stderr];
        for fd in high.iter_mut() {
            *fd = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3);
            if *fd < 0 {
                fail(fds.err, Step::Stdio, sys::errno());
            }
        }
        for (to, from) in high.into_iter().enumerate() {
            if libc::dup2(from, to as libc::c_int) < 0 {
                fail(fds.err, Step::Stdio, sys::errno());
            }
        }
        if libc::chdir(plan.cwd.as_ptr()) < 0 {
            fail(fds.err, Step::Chdir, sys::errno());
        }
    }
    // No fd of the server crosses exec, whatever flags it was opened with.
    if let Err(e) = sys::cloexec_from(3) {
        fail(fds.err, Step::Stdio, e);
    }
    if let Err(e) = sys::restrict_caps(KEEP_CAPS).and(sys::set_no_new_privs()) {
        fail(fds.err, Step::Caps, e);
    }
    // Last before exec: from here on the command and all it starts are filtered.
    if let Some(prog) = &plan.seccomp {
        if let Err(e) = crate::seccomp::install(prog) {
            fail(fds.err, Step::Seccomp, e);
        }
    }
    let mut last = libc::ENOENT;
    for c in &plan.candidates {
        // SAFETY: NUL-terminated argv/envp arrays of valid C strings.
        unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = sys::errno();
        // Like a shell: keep looking past missing or unusable entries; remember EACCES.
        if e != libc::ENOENT && e != libc::ENOTDIR {
            last = e;
        }
    }
    let (msg, code) = if last == libc::ENOENT {
        (&plan.not_found, 127)
    } else {
        (&plan.not_executable, 126)
    };
    let _ = sys::write_all(2, msg);
    // SAFETY: leaving the child.
    unsafe { libc::_exit(code) }
}

struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
    truncated: bool,
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(fl) = rustix::fs::fcntl_getfl(fd) {
        let _ = rustix::fs::fcntl_setfl(fd, fl | rustix::fs::OFlags::NONBLOCK);
    }
}

/// Waits until `first` is readable, one of the open output streams is readable, `stdin`
/// takes more, or `timeout` passes (EINTR counts as a wake-up).
pub(crate) fn wait_for_streams(
    first: &OwnedFd,
    outputs: [(bool, &OwnedFd); 2],
    stdin: Option<&OwnedFd>,
    timeout: Option<Duration>,
) -> Result<()> {
    let ts = timeout.map(|t| rustix::event::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: t.subsec_nanos() as i64,
    });
    let mut pfds = Vec::with_capacity(4);
    pfds.push(PollFd::new(first, PollFlags::IN));
    for (open, fd) in outputs {
        if open {
            pfds.push(PollFd::new(fd, PollFlags::IN));
        }
    }
    if let Some(w) = stdin {
        pfds.push(PollFd::new(w, PollFlags::OUT));
    }
    match poll(&mut pfds, ts.as_ref()) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(SandboxError::sys("poll", "exec output", e)),
    }
}

/// Reads what is available from `fd` into `buf` (up to `max`); returns false at EOF.
pub(crate) fn drain(fd: &OwnedFd, buf: &mut Vec<u8>, max: usize, truncated: &mut bool) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                let room = max.saturating_sub(buf.len());
                if n > room {
                    *truncated = true;
                }
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(Errno::AGAIN) => return true,
            Err(Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// The parent's side: feed stdin, collect output, watch the status pipe, enforce the timeout.
/// Returns the output and X's wait status (None if the helper died before reporting it).
fn pump(
    req: &ExecRequest,
    mut stdin_w: Option<OwnedFd>,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    status_r: OwnedFd,
) -> Result<(Output, Option<i32>)> {
    let max = req.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
    let deadline = req.timeout.map(|t| Instant::now() + t);
    let stdin_data: &[u8] = req.stdin.as_deref().unwrap_or(&[]);
    let mut stdin_off = 0;
    for fd in [&stdout_r, &stderr_r, &status_r] {
        set_nonblocking(fd);
    }
    if let Some(w) = &stdin_w {
        set_nonblocking(w);
        if stdin_data.is_empty() {
            stdin_w = None;
        }
    }
    let mut out = Output {
        stdout: Vec::new(),
        stderr: Vec::new(),
        timed_out: false,
        truncated: false,
    };
    let mut status_buf = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    let mut command_pid: Option<i32> = None;
    loop {
        if command_pid.is_none() && status_buf.len() >= 4 {
            command_pid = Some(i32::from_ne_bytes([
                status_buf[0],
                status_buf[1],
                status_buf[2],
                status_buf[3],
            ]));
        }
        let timeout = match deadline {
            Some(d) if !out.timed_out => {
                let now = Instant::now();
                if now >= d {
                    out.timed_out = true;
                    if let Some(pid) = command_pid {
                        // The command leads its own session and process group: kill them all.
                        let _ = rustix::process::kill_process_group(
                            rustix::process::Pid::from_raw(pid).expect("pid > 0"),
                            rustix::process::Signal::KILL,
                        );
                    }
                    Some(Duration::from_millis(50))
                } else {
                    Some(d - now)
                }
            }
            Some(_) if command_pid.is_none() => Some(Duration::from_millis(50)),
            _ => None,
        };
        let open = [(out_open, &stdout_r), (err_open, &stderr_r)];
        wait_for_streams(&status_r, open, stdin_w.as_ref(), timeout)?;
        if out_open {
            out_open = drain(&stdout_r, &mut out.stdout, max, &mut out.truncated);
        }
        if err_open {
            err_open = drain(&stderr_r, &mut out.stderr, max, &mut out.truncated);
        }
        if let Some(w) = &stdin_w {
            match rustix::io::write(w, &stdin_data[stdin_off..]) {
                Ok(n) => stdin_off += n,
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => stdin_off = stdin_data.len(),
            }
            if stdin_off >= stdin_data.len() {
                stdin_w = None;
            }
        }
        let mut sink = false;
        if !drain(&status_r, &mut status_buf, 8, &mut sink) {
            // The helper is gone (and the command with it): take what is left in the pipes.
            // Background processes that still hold stdout do not keep us waiting.
            if out_open {
                drain(&stdout_r, &mut out.stdout, max, &mut out.truncated);
            }
            if err_open {
                drain(&stderr_r, &mut out.stderr, max, &mut out.truncated);
            }
            let status = (status_buf.len() >= 8).then(|| {
                i32::from_ne_bytes([status_buf[4], status_buf[5], status_buf[6], status_buf[7]])
            });
            return Ok((out, status));
        }
    }
}
