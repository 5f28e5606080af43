//! Volume mounts: resolving a volume directory (and subpath) to an fd without ever leaving the
//! volume, cloning it as a detached mount from that fd, and attaching/detaching it inside a
//! running sandbox's mount namespace.
//!
//! 1. `resolve_source`: `open(source, O_PATH)`, then each prefix of the subpath with
//!    `openat2(volume_fd, prefix, O_PATH|O_DIRECTORY, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS)`,
//!    creating missing directories with `mkdirat` relative to the parent's fd. The kernel checks
//!    every step, so `..`, absolute or climbing symlinks and a directory swapped for a symlink
//!    mid-walk all fail (`EXDEV`) instead of escaping (CVE-2017-1002101, CVE-2021-30465).
//! 2. `prepare_tree`: `open_tree(fd, "", OPEN_TREE_CLONE|AT_EMPTY_PATH)` clones exactly the
//!    directory the fd names — no path is resolved again — then `mount_setattr` makes it
//!    nosuid, nodev, private, idmapped to the sandbox's user namespace (so volume files owned by
//!    host root are root's inside, and what the sandbox writes is host root's on disk), and
//!    read-only if asked, all while it is still detached.
//! 3. `attach`: a dedicated thread `unshare(CLONE_FS)`s, `setns` into the sandbox's mount
//!    namespace, walks to the mount point from the sandbox's `/` without following any
//!    symlink (creating missing directories as the sandbox's root), and `move_mount`s the tree
//!    onto that fd. One call: either the mount is there or nothing is.
//! 4. `detach`: the same thread trick; the mount point is found by mount id, re-checked with
//!    statx, and unmounted through an fd (`fchdir` + `umount2(".", MNT_DETACH)`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::error::{Result, SandboxError};
use crate::spec::MountSpec;
use crate::sys;

const EAGAIN_RETRIES: usize = 64;

fn openat2_retry(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    how: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), how) {
            Err(Errno::AGAIN | Errno::INTR) if tries < EAGAIN_RETRIES => tries += 1,
            r => return r,
        }
    }
}

/// Opens the directory a mount exposes: the volume dir, or its subpath (created if missing),
/// as an `O_PATH` fd that is guaranteed to lie inside the volume.
/// `field` prefixes the field named in errors (`mounts[0]` → `mounts[0].subpath`; empty →
/// `subpath`).
pub(crate) fn resolve_source(spec: &MountSpec, field: &str) -> Result<OwnedFd> {
    let sub_field = if field.is_empty() {
        "subpath".to_string()
    } else {
        format!("{field}.subpath")
    };
    let vol = rustix::fs::open(
        &spec.source,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => SandboxError::NotFound {
            kind: "volume directory",
            name: spec.source.display().to_string(),
        },
        e => SandboxError::sys("open", spec.source.display().to_string(), e),
    })?;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut cur = vol
        .try_clone()
        .map_err(|e| SandboxError::sys("dup", "volume", e))?;
    let mut prefix = String::new();
    for comp in spec.subpath_components() {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        let mut attempts = 0;
        cur = loop {
            match openat2_retry(vol.as_fd(), &prefix, OFlags::PATH | OFlags::DIRECTORY, how) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if attempts < 3 => {
                    attempts += 1;
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(SandboxError::sys(
                                "mkdirat",
                                format!("subpath {prefix}"),
                                e,
                            ))
                        }
                    }
                }
                Err(Errno::XDEV) => {
                    return Err(SandboxError::invalid(
                        sub_field.clone(),
                        format!("{prefix:?} leads outside the volume (through a symlink)"),
                    ))
                }
                Err(Errno::NOTDIR) => {
                    return Err(SandboxError::invalid(
                        sub_field.clone(),
                        format!("{prefix:?} is not a directory"),
                    ))
                }
                Err(Errno::LOOP) => {
                    return Err(SandboxError::invalid(
                        sub_field.clone(),
                        format!("{prefix:?}: too many symlinks"),
                    ))
                }
                Err(Errno::NOENT) => {
                    return Err(SandboxError::invalid(
                        sub_field.clone(),
                        format!("{prefix:?} is a dangling symlink"),
                    ))
                }
                Err(e) => return Err(SandboxError::sys("openat2", format!("subpath {prefix}"), e)),
            }
        };
    }
    Ok(cur)
}

/// Clones the directory behind `dir` as a detached mount with the mount's attributes set.
pub(crate) fn prepare_tree(
    dir: BorrowedFd<'_>,
    read_only: bool,
    userns: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        dir,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| SandboxError::sys("open_tree", "volume", e))?;
    let mut set = sys::attr::NOSUID | sys::attr::NODEV | sys::attr::IDMAP;
    if read_only {
        set |= sys::attr::RDONLY;
    }
    sys::mount_setattr(tree.as_raw_fd(), set, Some(userns.as_raw_fd())).map_err(|e| {
        if e == libc::EINVAL {
            SandboxError::Unavailable(
                "mount_setattr(MOUNT_ATTR_IDMAP) refused: the volume's file system must support idmapped mounts"
                    .into(),
            )
        } else {
            SandboxError::errno("mount_setattr", "volume", e)
        }
    })?;
    Ok(tree)
}

/// A clone of the host's `/usr`: read-only, nosuid, nodev, idmapped.
pub(crate) fn usr_tree(userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/usr",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| SandboxError::sys("open_tree", "/usr", e))?;
    sys::mount_setattr(
        tree.as_raw_fd(),
        sys::attr::RDONLY | sys::attr::NOSUID | sys::attr::NODEV | sys::attr::IDMAP,
        Some(userns.as_raw_fd()),
    )
    .map_err(|e| SandboxError::errno("mount_setattr", "/usr", e))?;
    Ok(tree)
}

/// Runs `f` on a fresh thread that has its own fs_struct and is inside the mount namespace of
/// the process behind `pidfd`, acting on files as the sandbox's root (`fs_id`), with the
/// thread's capabilities kept. `f` gets an fd of the sandbox's `/`.
pub(crate) fn in_mount_ns<T: Send>(
    pidfd: BorrowedFd<'_>,
    fs_id: u32,
    f: impl FnOnce(BorrowedFd<'_>) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: CLONE_FS on this thread only; no other code shares its fs_struct.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(|e| SandboxError::sys("unshare(CLONE_FS)", "mount helper thread", e))?;
            rustix::thread::move_into_thread_name_spaces(
                pidfd,
                rustix::thread::ThreadNameSpaceType::MOUNT,
            )
            .map_err(|e| SandboxError::sys("setns(CLONE_NEWNS)", "sandbox", e))?;
            act_as(fs_id)?;
            let root = rustix::fs::open(
                "/",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| SandboxError::sys("open", "/ of sandbox", e))?;
            f(root.as_fd())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SandboxError::Unavailable(
                "mount helper thread panicked".into(),
            ))
        })
    })
}

/// Makes the calling (dedicated) thread create files as `id`, keeping its capabilities.
pub(crate) fn act_as(id: u32) -> Result<()> {
    sys::set_thread_fs_ids(id, id);
    // Changing fsuid from 0 clears the file capabilities from the effective set: restore them.
    let (_, permitted) =
        sys::thread_caps().map_err(|e| SandboxError::errno("capget", "helper thread", e))?;
    sys::set_thread_caps(permitted, permitted, 0)
        .map_err(|e| SandboxError::errno("capset", "helper thread", e))
}

/// Walks `target` (absolute, validated) from `root` without following any symlink, creating
/// missing directories; returns an `O_PATH` fd of the final directory.
pub(crate) fn open_mount_point(
    root: BorrowedFd<'_>,
    target: &str,
    create: bool,
) -> Result<OwnedFd> {
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| SandboxError::sys("dup", "root", e))?;
    for comp in target.trim_start_matches('/').split('/') {
        let mut attempts = 0;
        cur = loop {
            match openat2_retry(
                cur.as_fd(),
                comp,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                how,
            ) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if create && attempts < 3 => {
                    attempts += 1;
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(SandboxError::sys(
                                "mkdirat",
                                format!("mount point {target} at {comp:?}"),
                                e,
                            ))
                        }
                    }
                }
                Err(Errno::LOOP | Errno::XDEV) => {
                    return Err(SandboxError::invalid(
                        "target",
                        format!("{target:?}: {comp:?} is a symlink inside the sandbox"),
                    ))
                }
                Err(Errno::NOTDIR) => {
                    return Err(SandboxError::invalid(
                        "target",
                        format!("{target:?}: {comp:?} is not a directory"),
                    ))
                }
                Err(e) => {
                    return Err(SandboxError::sys(
                        "openat2",
                        format!("mount point {target}"),
                        e,
                    ))
                }
            }
        };
    }
    Ok(cur)
}

/// Attaches a prepared tree at `target` inside the current (sandbox) mount namespace; returns
/// the new mount's id.
pub(crate) fn attach_here(root: BorrowedFd<'_>, tree: BorrowedFd<'_>, target: &str) -> Result<u64> {
    let point = open_mount_point(root, target, true)?;
    rustix::mount::move_mount(
        tree,
        "",
        point.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| SandboxError::sys("move_mount", format!("volume onto {target}"), e))?;
    let st = rustix::fs::statx(tree, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(|e| SandboxError::sys("statx", target.to_string(), e))?;
    Ok(st.stx_mnt_id)
}

/// Unmounts the mount `mnt_id` (mounted at `mount_point` as seen from the sandbox's root)
/// inside the current mount namespace. A mount that is already gone is fine.
pub(crate) fn detach_here(root: BorrowedFd<'_>, mount_point: &str, mnt_id: u64) -> Result<()> {
    let fd = match open_mount_point(root, mount_point, false) {
        Ok(fd) => fd,
        Err(SandboxError::Sys { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let st = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(|e| SandboxError::sys("statx", mount_point.to_string(), e))?;
    let is_root = st
        .stx_attributes
        .contains(rustix::fs::StatxAttributes::MOUNT_ROOT);
    if st.stx_mnt_id != mnt_id || !is_root {
        return Ok(());
    }
    rustix::process::fchdir(&fd)
        .map_err(|e| SandboxError::sys("fchdir", mount_point.to_string(), e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| SandboxError::sys("umount2", mount_point.to_string(), e))?;
    let _ = rustix::process::fchdir(root);
    Ok(())
}

/// One line of /proc/<pid>/mountinfo: the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u64,
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    pub options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space…).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            if f.len() < 6 || g.len() < 2 {
                return None;
            }
            Some(MountInfo {
                id: f[0].parse().ok()?,
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                options: f[5].to_string(),
                fs_type: g[0].to_string(),
                source: unescape(g[1]),
            })
        })
        .collect()
}

/// The mounts of a process's mount namespace.
pub fn mountinfo_of(pid: Option<i32>) -> std::io::Result<Vec<MountInfo>> {
    let p = match pid {
        Some(pid) => format!("/proc/{pid}/mountinfo"),
        None => "/proc/self/mountinfo".to_string(),
    };
    Ok(parse_mountinfo(&std::fs::read_to_string(Path::new(&p))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    bad line\n\
                    40 36 0:5 / /proc rw - proc proc rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, 36);
        assert_eq!(m[0].mount_point, "/mnt/a b");
        assert_eq!(m[0].root, "/mnt1");
        assert_eq!(m[0].fs_type, "ext3");
        assert_eq!(m[1].mount_point, "/proc");
    }
}
