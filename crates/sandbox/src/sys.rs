//! Raw system calls that neither std nor rustix wrap (clone3, mount_setattr, capset,
//! set*id on one thread, close_range, signal resets), all safe to call in a child of a
//! multi-threaded process between clone and exec: no allocation, no lock, no glibc state.
//! Errors are raw errno values (`SysResult`).

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_int, c_long, c_uint};

/// A raw errno.
pub(crate) type SysResult<T> = Result<T, i32>;

/// The calling thread's errno.
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline]
pub(crate) fn check(ret: c_long) -> SysResult<c_long> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

#[inline]
pub(crate) fn check_int(ret: c_int) -> SysResult<c_int> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` without `CLONE_VM`: like `fork`, on a copy of the caller's stack. Returns 0 in the
/// child and the child's pid in the parent; `pidfd` receives a pidfd when `CLONE_PIDFD` is set.
///
/// # Safety
/// The child is a copy of a possibly multi-threaded process with only this thread: until it
/// execs or exits it must only make raw system calls (no allocation, no locks) and must leave
/// with `_exit`.
pub(crate) unsafe fn clone3(flags: u64, pidfd: Option<&mut c_int>) -> SysResult<i32> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(p) = pidfd {
        args.pidfd = p as *mut c_int as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; no CLONE_VM, so no stack needed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check(r).map(|p| p as i32)
}

/// `setresuid(u, u, u)` for the calling thread only (glibc's wrapper signals every thread).
pub(crate) fn set_thread_uid(uid: u32) -> SysResult<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// `setresgid(g, g, g)` for the calling thread only.
pub(crate) fn set_thread_gid(gid: u32) -> SysResult<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// `setgroups(0, NULL)` for the calling thread only.
pub(crate) fn clear_thread_groups() -> SysResult<()> {
    // SAFETY: a zero-length list with a null pointer is valid.
    check(unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) })
        .map(drop)
}

/// `setfsuid` and `setfsgid` of the calling thread (they cannot fail in a way they report).
pub(crate) fn set_thread_fs_ids(uid: u32, gid: u32) {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// The calling thread's (effective, permitted) capability masks.
pub(crate) fn thread_caps() -> SysResult<(u64, u64)> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array as capget(2) wants for version 3.
    check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    let join = |lo: u32, hi: u32| (lo as u64) | ((hi as u64) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// `capset` of the calling thread.
pub(crate) fn set_thread_caps(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and a two-element data array as capset(2) wants for version 3.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) })
        .map(drop)
}

/// Drops every capability not in `keep` from the bounding set, clears the ambient set, and sets
/// effective = permitted = `keep`, inheritable = 0.
pub(crate) fn restrict_caps(keep: u64) -> SysResult<()> {
    for cap in 0..64u64 {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments; EINVAL for caps the kernel does not know.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r < 0 && errno() != libc::EINVAL {
                return Err(errno());
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    set_thread_caps(keep, keep, 0)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub(crate) fn set_no_new_privs() -> SysResult<()> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0)`: no ptrace or /proc/<pid>/mem access without host privilege.
pub(crate) fn set_not_dumpable() -> SysResult<()> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `MOUNT_ATTR_*` of `mount_setattr`.
pub(crate) mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const IDMAP: u64 = 0x0010_0000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {set, clr, MS_PRIVATE, userns})` on one mount.
pub(crate) fn mount_setattr(fd: RawFd, set: u64, userns: Option<RawFd>) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: userns.map(|f| f as u64).unwrap_or(0),
    };
    // SAFETY: valid fd/path/attr pointer and size.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Marks every fd from `first` on close-on-exec.
pub(crate) fn cloexec_from(first: c_uint) -> SysResult<()> {
    // SAFETY: close_range with integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// Closes every fd from `first` on.
pub(crate) fn close_from(first: c_uint) {
    // SAFETY: close_range with integer arguments.
    unsafe { libc::syscall(libc::SYS_close_range, first, c_uint::MAX, 0) };
}

/// Closes every fd except those in `keep` (sorted in place). For children of a multi-threaded
/// parent: they inherit every fd of the parent, pipes of concurrent operations included, and
/// holding a copy of another operation's pipe end would keep it from seeing EOF.
pub(crate) fn close_all_except(keep: &mut [RawFd]) {
    // Insertion sort: no allocation.
    for i in 1..keep.len() {
        let mut j = i;
        while j > 0 && keep[j - 1] > keep[j] {
            keep.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut next: c_uint = 0;
    for &fd in keep.iter() {
        if fd < 0 {
            continue;
        }
        let fd = fd as c_uint;
        if fd > next {
            // SAFETY: close_range with integer arguments.
            unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0) };
        }
        next = next.max(fd + 1);
    }
    close_from(next);
}

/// Sets every signal's disposition to default and unblocks all signals.
pub(crate) fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL needs no handler; errors (reserved signals) are ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set is valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Writes all of `buf` to `fd`, retrying on EINTR.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(errno());
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes unless EOF comes first; returns how many were read.
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the rest of buf is valid for writing.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(errno());
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
}

/// `waitpid(pid, 0)` retrying on EINTR; returns the raw wait status.
pub(crate) fn wait_pid(pid: i32) -> SysResult<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r >= 0 {
            return Ok(status);
        }
        if errno() != libc::EINTR {
            return Err(errno());
        }
    }
}

/// `mount(2)` with C strings (null source/fstype/data when `None`).
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    let p = |s: Option<&CStr>| s.map(|s| s.as_ptr()).unwrap_or(std::ptr::null());
    // SAFETY: all pointers are valid C strings or null.
    check_int(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(drop)
}

/// Sends SIGKILL through a pidfd (no pid-reuse race).
pub(crate) fn pidfd_kill(pidfd: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall; a null siginfo is allowed.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Waits up to `ms` milliseconds for the process behind a pidfd to exit.
pub(crate) fn pidfd_wait_exit(pidfd: RawFd, ms: c_int) {
    let mut p = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// Whether the process behind a pidfd has exited (a pidfd polls readable once it has; a
/// zombie counts as exited).
pub(crate) fn pidfd_exited(pidfd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r != 0 && (r < 0 || p.revents != 0)
}
