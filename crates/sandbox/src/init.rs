//! Starting a sandbox: its user namespace, and its init (pid 1), which builds the root
//! filesystem in fresh mount/PID/UTS/IPC/network/cgroup namespaces, pivots into it, joins the
//! user namespace and then only reaps zombies.
//!
//! Everything the child does is prepared by the parent (`InitPlan`: C strings, fds), because
//! the child of a multi-threaded server may only make raw system calls until it exits.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Result, SandboxError};
use crate::sys::{self, check_int, SysResult};

/// Steps of the init's setup, reported back with an errno when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    JoinCgroup = 1,
    CgroupNs,
    PrivateRoot,
    Overlay,
    EnterRootfs,
    Usr,
    Dev,
    DevNode,
    DevPts,
    DevShm,
    Proc,
    Hostname,
    Loopback,
    PivotRoot,
    UserNs,
    Ids,
    Caps,
    Seccomp,
    Ready = 0xffff,
}

impl Stage {
    fn from_u32(v: u32) -> &'static str {
        const ALL: [(Stage, &str); 19] = [
            (Stage::JoinCgroup, "join cgroup"),
            (Stage::CgroupNs, "unshare cgroup namespace"),
            (Stage::PrivateRoot, "make / private"),
            (Stage::Overlay, "mount overlay root"),
            (Stage::EnterRootfs, "enter root"),
            (Stage::Usr, "mount /usr"),
            (Stage::Dev, "mount /dev"),
            (Stage::DevNode, "bind /dev node"),
            (Stage::DevPts, "mount /dev/pts"),
            (Stage::DevShm, "mount /dev/shm"),
            (Stage::Proc, "mount /proc"),
            (Stage::Hostname, "sethostname"),
            (Stage::Loopback, "bring up lo"),
            (Stage::PivotRoot, "pivot_root"),
            (Stage::UserNs, "enter user namespace"),
            (Stage::Ids, "set ids"),
            (Stage::Caps, "drop capabilities"),
            (Stage::Seccomp, "install the seccomp filter"),
            (Stage::Ready, "ready"),
        ];
        ALL.iter()
            .find(|(s, _)| *s as u32 == v)
            .map(|(_, n)| *n)
            .unwrap_or("init setup")
    }
}

/// Host devices bound into the sandbox's /dev.
const DEV_NODES: [(&CStr, &CStr); 6] = [
    (c"/dev/null", c"dev/null"),
    (c"/dev/zero", c"dev/zero"),
    (c"/dev/full", c"dev/full"),
    (c"/dev/random", c"dev/random"),
    (c"/dev/urandom", c"dev/urandom"),
    (c"/dev/tty", c"dev/tty"),
];

/// Symlinks in the sandbox's /dev.
const DEV_LINKS: [(&CStr, &CStr); 5] = [
    (c"/proc/self/fd", c"dev/fd"),
    (c"/proc/self/fd/0", c"dev/stdin"),
    (c"/proc/self/fd/1", c"dev/stdout"),
    (c"/proc/self/fd/2", c"dev/stderr"),
    (c"pts/ptmx", c"dev/ptmx"),
];

/// Everything the init child needs, prepared by the parent.
pub(crate) struct InitPlan {
    /// `cgroup.procs` of each controller's sandbox cgroup, open for writing.
    pub cgroup_procs: Vec<OwnedFd>,
    /// Host path where the overlay root is mounted (inside the new mount namespace only).
    pub rootfs: CString,
    /// An empty host directory where the init stages the overlay's layers on a private tmpfs
    /// under the names `lower` and `layer`, so that the overlay's options (which
    /// `/proc/self/mountinfo` shows inside) name no host path.
    pub stage: CString,
    /// The template directory: the overlay's lower layer.
    pub lower: CString,
    /// Holds the writable layer's `upper` and `work`.
    pub layer: LayerSource,
    /// A detached, read-only, idmapped clone of the host's /usr.
    pub usr_tree: OwnedFd,
    /// The sandbox's user namespace.
    pub userns: OwnedFd,
    pub hostname: CString,
    /// tmpfs options of /dev and /dev/shm (owned by the sandbox's root).
    pub dev_data: CString,
    pub shm_data: CString,
    /// Where this process's argv and environment strings live (`/proc/self/stat` fields
    /// 48-51): the init overwrites its copy, so `/proc/1/cmdline` inside the sandbox does not
    /// show the server's command line (which may carry secrets).
    pub arg_areas: [(usize, usize); 2],
    /// The seccomp filter of pid 1 (`None` only when the runtime is configured without).
    pub seccomp: Option<Vec<seccompiler::sock_filter>>,
}

/// Where the writable layer's file system comes from.
pub(crate) enum LayerSource {
    /// A detached mount of its own file system (the capped image).
    Tree(OwnedFd),
    /// A host directory (a sandbox made before layers were capped).
    Dir(CString),
}

/// The overlay's options, relative to the stage (the init's working directory then).
const OVERLAY_DATA: &CStr = c"lowerdir=lower,upperdir=layer/upper,workdir=layer/work";

/// Overwrites this (cloned) process's argv/env strings; the first area gets `name`.
pub(crate) fn scrub_args(areas: &[(usize, usize); 2], name: &[u8]) {
    for (i, &(start, end)) in areas.iter().enumerate() {
        if start != 0 && end > start {
            // SAFETY: [start, end) is our own (copied) argv/env string area, mapped writable.
            unsafe {
                std::ptr::write_bytes(start as *mut u8, 0, end - start);
                if i == 0 && end - start >= name.len() {
                    std::ptr::copy_nonoverlapping(name.as_ptr(), start as *mut u8, name.len());
                }
            }
        }
    }
}

/// The argv and environment areas of the calling process.
pub(crate) fn arg_areas() -> [(usize, usize); 2] {
    static AREAS: std::sync::OnceLock<[(usize, usize); 2]> = std::sync::OnceLock::new();
    *AREAS.get_or_init(read_arg_areas)
}

fn read_arg_areas() -> [(usize, usize); 2] {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let f: Vec<usize> = rest
        .split(' ')
        .map(|x| x.trim().parse().unwrap_or(0))
        .collect();
    let get = |field: usize| f.get(field - 3).copied().unwrap_or(0);
    [(get(48), get(49)), (get(50), get(51))]
}

/// The running init, as its parent sees it.
pub(crate) struct InitProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Creates a user namespace mapping uid/gid 0..count inside to base..base+count outside:
/// a short-lived child unshares it, we write its maps and keep an fd of the namespace.
pub(crate) fn new_userns(base: u32, count: u32) -> Result<OwnedFd> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SandboxError::sys("pipe", "user namespace helper", e))?;
    let r_raw = r.as_raw_fd();
    // SAFETY: the child only makes raw syscalls and leaves with _exit.
    let pid = unsafe { sys::clone3(libc::CLONE_NEWUSER as u64, None) }
        .map_err(|e| SandboxError::errno("clone3(CLONE_NEWUSER)", "user namespace helper", e))?;
    if pid == 0 {
        sys::close_all_except(&mut [r_raw]);
        // SAFETY: raw syscalls only; wait until the parent closes its end, then leave.
        unsafe {
            let mut b = [0u8; 1];
            libc::read(r_raw, b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    drop(r);
    let map = format!("0 {base} {count}\n");
    let res = (|| -> Result<OwnedFd> {
        for file in ["uid_map", "gid_map"] {
            let p = format!("/proc/{pid}/{file}");
            std::fs::write(&p, &map).map_err(|e| SandboxError::sys("write", p, e))?;
        }
        let p = format!("/proc/{pid}/ns/user");
        let f = std::fs::File::open(&p).map_err(|e| SandboxError::sys("open", p, e))?;
        Ok(OwnedFd::from(f))
    })();
    drop(w);
    let _ = sys::wait_pid(pid);
    res
}

/// Starts the init of a sandbox and waits until it is ready (or reports the failed step).
pub(crate) fn start_init(plan: &InitPlan) -> Result<InitProcess> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SandboxError::sys("pipe", "init", e))?;
    let w_raw = w.as_raw_fd();
    let r_raw = r.as_raw_fd();
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_PIDFD;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the child runs `init_main`, which only makes raw syscalls and never returns.
    let pid = unsafe { sys::clone3(flags as u64, Some(&mut pidfd)) }
        .map_err(|e| SandboxError::errno("clone3", "sandbox init", e))?;
    if pid == 0 {
        // SAFETY: closing our copy of the read end; raw syscall.
        unsafe { libc::close(r_raw) };
        init_main(plan, w_raw);
    }
    // SAFETY: clone3 gave us a fresh pidfd we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(w);
    let mut msg = [0u8; 8];
    let n = sys::read_full(r.as_raw_fd(), &mut msg).unwrap_or(0);
    let stage = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let err = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if n == 8 && stage == Stage::Ready as u32 {
        return Ok(InitProcess { pid, pidfd });
    }
    let _ = sys::pidfd_kill(pidfd.as_raw_fd());
    let _ = sys::wait_pid(pid);
    if n < 8 {
        return Err(SandboxError::Unavailable(
            "sandbox init exited during setup".into(),
        ));
    }
    Err(SandboxError::errno(
        "sandbox init",
        Stage::from_u32(stage),
        err,
    ))
}

fn report(fd: RawFd, stage: Stage, err: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    let _ = sys::write_all(fd, &msg);
}

/// The init child: set up, report, then reap forever.
fn init_main(plan: &InitPlan, ready: RawFd) -> ! {
    let mut keep = [-1; 10];
    keep[0] = ready;
    keep[1] = plan.usr_tree.as_raw_fd();
    keep[2] = plan.userns.as_raw_fd();
    if let LayerSource::Tree(fd) = &plan.layer {
        keep[3] = fd.as_raw_fd();
    }
    for (slot, fd) in keep[4..].iter_mut().zip(&plan.cgroup_procs) {
        *slot = fd.as_raw_fd();
    }
    sys::close_all_except(&mut keep);
    sys::reset_signals();
    if let Err((stage, err)) = init_setup(plan) {
        report(ready, stage, err);
        // SAFETY: leaving the child without running any destructor.
        unsafe { libc::_exit(1) };
    }
    // Block SIGCHLD before announcing readiness so no child's exit is missed.
    // SAFETY: signal-set manipulation on stack values.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    report(ready, Stage::Ready, 0);
    // No host fd stays open in the sandbox's pid 1.
    sys::close_from(0);
    loop {
        // SAFETY: waiting for SIGCHLD, then reaping every exited child (orphans included).
        unsafe {
            libc::sigwaitinfo(&set, std::ptr::null_mut());
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG | libc::__WALL) > 0 {}
        }
    }
}

fn at(stage: Stage) -> impl Fn(i32) -> (Stage, i32) {
    move |e| (stage, e)
}

fn init_setup(plan: &InitPlan) -> Result<(), (Stage, i32)> {
    scrub_args(&plan.arg_areas, b"nullspace-init\0");
    // SAFETY: prctl with a C string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"nullspace-init".as_ptr(), 0, 0, 0) };
    for fd in &plan.cgroup_procs {
        sys::write_all(fd.as_raw_fd(), b"0").map_err(at(Stage::JoinCgroup))?;
    }
    // SAFETY: unshare with a flag; we are single-threaded.
    check_int(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }).map_err(at(Stage::CgroupNs))?;
    // Nothing we mount may propagate back to the host, nor host mounts into the sandbox.
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(at(Stage::PrivateRoot))?;
    stage_layers(plan).map_err(at(Stage::Overlay))?;
    sys::mount(
        Some(c"overlay"),
        &plan.rootfs,
        Some(c"overlay"),
        libc::MS_NODEV,
        Some(OVERLAY_DATA),
    )
    .map_err(at(Stage::Overlay))?;
    // SAFETY: chdir to a C string path.
    check_int(unsafe { libc::chdir(plan.rootfs.as_ptr()) }).map_err(at(Stage::EnterRootfs))?;
    // From here on relative paths are inside the new root.
    move_mount_to(plan.usr_tree.as_raw_fd(), c"usr").map_err(at(Stage::Usr))?;
    sys::mount(
        Some(c"tmpfs"),
        c"dev",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&plan.dev_data),
    )
    .map_err(at(Stage::Dev))?;
    for (host, name) in DEV_NODES {
        // SAFETY: creating an empty file as a bind target; raw syscalls.
        let fd = unsafe {
            libc::open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o666,
            )
        };
        if fd < 0 {
            return Err((Stage::DevNode, sys::errno()));
        }
        // SAFETY: fd was just opened.
        unsafe { libc::close(fd) };
        sys::mount(Some(host), name, None, libc::MS_BIND, None).map_err(at(Stage::DevNode))?;
    }
    for (target, name) in DEV_LINKS {
        // SAFETY: C strings.
        check_int(unsafe { libc::symlink(target.as_ptr(), name.as_ptr()) })
            .map_err(at(Stage::Dev))?;
    }
    for dir in [c"dev/pts", c"dev/shm"] {
        // SAFETY: C string.
        check_int(unsafe { libc::mkdir(dir.as_ptr(), 0o755) }).map_err(at(Stage::Dev))?;
    }
    sys::mount(
        Some(c"devpts"),
        c"dev/pts",
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(at(Stage::DevPts))?;
    sys::mount(
        Some(c"shm"),
        c"dev/shm",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&plan.shm_data),
    )
    .map_err(at(Stage::DevShm))?;
    // We are pid 1 of the new PID namespace, so this proc shows the sandbox's processes only.
    sys::mount(
        Some(c"proc"),
        c"proc",
        Some(c"proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(at(Stage::Proc))?;
    let host = plan.hostname.as_bytes();
    // SAFETY: pointer and length of a byte string.
    check_int(unsafe { libc::sethostname(host.as_ptr().cast(), host.len()) })
        .map_err(at(Stage::Hostname))?;
    loopback_up().map_err(at(Stage::Loopback))?;
    // pivot_root(".", ".") stacks the old root on the new one; detaching "." drops it.
    // SAFETY: C strings; raw syscall.
    sys::check(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })
        .map_err(at(Stage::PivotRoot))?;
    // SAFETY: C strings.
    check_int(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })
        .map_err(at(Stage::PivotRoot))?;
    // SAFETY: C string.
    check_int(unsafe { libc::chdir(c"/".as_ptr()) }).map_err(at(Stage::PivotRoot))?;
    // Last: the user namespace. Every other namespace stays owned by the host's user
    // namespace, so nothing in the sandbox ever holds mount or network privilege over them.
    sys::set_not_dumpable().map_err(at(Stage::UserNs))?;
    // SAFETY: setns with an fd we own; we are single-threaded.
    check_int(unsafe { libc::setns(plan.userns.as_raw_fd(), libc::CLONE_NEWUSER) })
        .map_err(at(Stage::UserNs))?;
    sys::clear_thread_groups().map_err(at(Stage::Ids))?;
    sys::set_thread_gid(0).map_err(at(Stage::Ids))?;
    sys::set_thread_uid(0).map_err(at(Stage::Ids))?;
    sys::set_not_dumpable().map_err(at(Stage::Ids))?;
    // pid 1 only reaps: it keeps no capability at all.
    sys::set_no_new_privs().map_err(at(Stage::Caps))?;
    sys::restrict_caps(0).map_err(at(Stage::Caps))?;
    if let Some(prog) = &plan.seccomp {
        crate::seccomp::install(prog).map_err(at(Stage::Seccomp))?;
    }
    Ok(())
}

/// Mounts a private tmpfs on the stage, makes it the working directory and puts the lower
/// layer at `lower` and the writable layer's file system at `layer` (see `OVERLAY_DATA`).
/// All of it lies outside the new root, so `pivot_root` drops it; the overlay keeps its own
/// references to its layers.
fn stage_layers(plan: &InitPlan) -> SysResult<()> {
    sys::mount(
        Some(c"tmpfs"),
        &plan.stage,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"size=16k,mode=700"),
    )?;
    // SAFETY: chdir and mkdir with C strings; raw syscalls.
    unsafe {
        check_int(libc::chdir(plan.stage.as_ptr()))?;
        check_int(libc::mkdir(c"lower".as_ptr(), 0o700))?;
        check_int(libc::mkdir(c"layer".as_ptr(), 0o700))?;
    }
    sys::mount(Some(&plan.lower), c"lower", None, libc::MS_BIND, None)?;
    match &plan.layer {
        LayerSource::Tree(fd) => move_mount_to(fd.as_raw_fd(), c"layer"),
        LayerSource::Dir(dir) => sys::mount(Some(dir), c"layer", None, libc::MS_BIND, None),
    }
}

pub(crate) fn move_mount_to(tree: RawFd, target: &CStr) -> SysResult<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // SAFETY: raw syscall with valid fds and C strings.
    sys::check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

fn loopback_up() -> SysResult<()> {
    // SAFETY: socket/ioctl with a zeroed ifreq naming "lo"; raw syscalls.
    unsafe {
        let s = check_int(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let r = (|| {
            check_int(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr))?;
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            check_int(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr))
        })();
        libc::close(s);
        r.map(drop)
    }
}
