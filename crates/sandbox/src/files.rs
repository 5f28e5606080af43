//! Files as the sandbox sees them: paths resolve from the sandbox's own root
//! (`/proc/<init>/root`, opened as an `O_PATH` fd) with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so its symlinks cannot lead out, and its volume mounts are visible.
//! The work runs on a dedicated thread acting as the sandbox's root on files (fsuid/fsgid), so
//! what it creates belongs to the sandbox (and, in an idmapped volume, to the volume's owner).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Result, SandboxError};
use crate::mounts::act_as;
use crate::spec::DirEntry;
use crate::sys;

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Runs `f` with an fd of the sandbox's root, on a thread acting as the sandbox's root.
pub(crate) fn with_view<T: Send>(
    pid: i32,
    pidfd: BorrowedFd<'_>,
    fs_id: u32,
    f: impl FnOnce(BorrowedFd<'_>) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let p = format!("/proc/{pid}/root");
            let root = rustix::fs::open(
                &p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| SandboxError::sys("open", p, e))?;
            // The pid could have been reused between lookup and open: the pidfd says whether
            // the root we hold is still our init's.
            if sys::pidfd_exited(std::os::fd::AsRawFd::as_raw_fd(&pidfd)) {
                return Err(SandboxError::Unavailable("sandbox init exited".into()));
            }
            act_as(fs_id)?;
            f(root.as_fd())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SandboxError::Unavailable(
                "file helper thread panicked".into(),
            ))
        })
    })
}

/// Checks a sandbox path and returns it relative to `/` (`"."` for `/`).
pub(crate) fn relative(path: &str) -> Result<&str> {
    if !path.starts_with('/') {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} must be absolute"),
        ));
    }
    if path.contains('\0') {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} contains NUL"),
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} must not contain .."),
        ));
    }
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    Ok(if rel.is_empty() { "." } else { rel })
}

fn map_errno(op: &'static str, path: &str, e: Errno) -> SandboxError {
    match e {
        Errno::NOENT => SandboxError::NotFound {
            kind: "path",
            name: path.to_string(),
        },
        Errno::NOTDIR | Errno::ISDIR | Errno::LOOP => {
            SandboxError::invalid("path", format!("{path:?}: {}", std::io::Error::from(e)))
        }
        e => SandboxError::sys(op, path.to_string(), e),
    }
}

/// Kernel interface file systems (procfs, sysfs, devpts, cgroupfs…). The file API runs with
/// host privileges, and through the sandbox's /proc it would otherwise reach host-wide files
/// (`/proc/kcore`, `/proc/sys/kernel/*`): it refuses them; sandbox code can still use its own.
fn refuse_kernel_fs(fd: BorrowedFd<'_>, path: &str) -> Result<()> {
    const KERNEL_FS: [i64; 9] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x1cd1,      // devpts
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x7363_6673, // securityfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
    ];
    let st = rustix::fs::fstatfs(fd).map_err(|e| map_errno("statfs", path, e))?;
    if KERNEL_FS.contains(&(st.f_type as i64)) {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} is on a kernel file system (/proc, /sys…)"),
        ));
    }
    Ok(())
}

/// Reads a whole regular file.
pub(crate) fn read(root: BorrowedFd<'_>, path: &str) -> Result<Vec<u8>> {
    let rel = relative(path)?;
    let fd = rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
    .map_err(|e| map_errno("open", path, e))?;
    refuse_kernel_fs(fd.as_fd(), path)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| map_errno("stat", path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} is not a regular file"),
        ));
    }
    let mut out = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .read_to_end(&mut out)
        .map_err(|e| SandboxError::sys("read", path.to_string(), e))?;
    Ok(out)
}

/// Opens (creating missing directories) the parent directory of `rel`; returns it and the name.
fn open_parent<'a>(root: BorrowedFd<'_>, path: &str, rel: &'a str) -> Result<(OwnedFd, &'a str)> {
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, rel),
    };
    if name == "." || name.is_empty() {
        return Err(SandboxError::invalid(
            "path",
            format!("{path:?} names a directory"),
        ));
    }
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| SandboxError::sys("dup", "root", e))?;
    let mut prefix = String::new();
    for comp in parent
        .into_iter()
        .flat_map(|p| p.split('/'))
        .filter(|c| !c.is_empty() && *c != ".")
    {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        let mut tries = 0;
        cur = loop {
            match rustix::fs::openat2(
                root,
                &prefix,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                IN_ROOT,
            ) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if tries < 3 => {
                    tries += 1;
                    match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(map_errno("mkdir", path, e)),
                    }
                }
                Err(e) => return Err(map_errno("open", path, e)),
            }
        };
    }
    Ok((cur, name))
}

/// Writes a whole file (temporary file, fsync, rename: readers see old or new content).
pub(crate) fn write(root: BorrowedFd<'_>, path: &str, data: &[u8]) -> Result<()> {
    let rel = relative(path)?;
    let (dir, name) = open_parent(root, path, rel)?;
    refuse_kernel_fs(dir.as_fd(), path)?;
    // O_PATH fds cannot carry *at writes of file data; reopen the parent as a real directory.
    let dir = rustix::fs::openat(
        &dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| map_errno("open", path, e))?;
    let tmp = format!(".nullspace-write-{}", crate::rootfs::unique());
    let fd = rustix::fs::openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| map_errno("create", path, e))?;
    let res = (|| {
        let mut off = 0;
        while off < data.len() {
            off += rustix::io::write(&fd, &data[off..]).map_err(|e| map_errno("write", path, e))?;
        }
        rustix::fs::fsync(&fd).map_err(|e| map_errno("fsync", path, e))?;
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)
            .map_err(|e| map_errno("rename", path, e))
    })();
    if res.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    }
    res
}

/// Lists a directory (sorted by name).
pub(crate) fn list(root: BorrowedFd<'_>, path: &str) -> Result<Vec<DirEntry>> {
    let rel = relative(path)?;
    let fd = rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
    .map_err(|e| map_errno("open", path, e))?;
    refuse_kernel_fs(fd.as_fd(), path)?;
    let mut rd = rustix::fs::Dir::read_from(&fd).map_err(|e| map_errno("readdir", path, e))?;
    let mut out = Vec::new();
    while let Some(ent) = rd.read() {
        let ent = ent.map_err(|e| map_errno("readdir", path, e))?;
        let name = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => "file",
            FileType::Directory => "dir",
            FileType::Symlink => "symlink",
            _ => "other",
        };
        out.push(DirEntry {
            name: name.to_string_lossy().into_owned(),
            kind: kind.to_string(),
            size: st.st_size as u64,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/").unwrap(), ".");
        assert_eq!(relative("/a/b").unwrap(), "a/b");
        assert_eq!(relative("/a/b/").unwrap(), "a/b");
        assert!(relative("a").is_err());
        assert!(relative("/a/../b").is_err());
    }
}
