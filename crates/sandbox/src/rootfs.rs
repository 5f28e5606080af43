//! The sandbox's own filesystem on the host: the `base` template skeleton (overlayfs lower
//! layer), each sandbox's writable layer (`upper`, `work`), and the fd-based tree copy used to
//! build the skeleton and to fork a sandbox's writable layer.
//!
//! Layout under the state dir:
//! `templates/base-v1/` (skeleton, owned by the sandbox's root uid on the host),
//! `sandboxes/<id>/{layer.ext4,rootfs,sandbox.json}` (`upper` and `work` live on the layer's own
//! file system, see layer.rs; sandboxes made before that have them here).

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Result, SandboxError};

/// Name of the base template's directory; bump when its contents change.
const BASE_DIR: &str = "base-v1";

/// Top-level entries of the base skeleton: (name, mode).
const BASE_DIRS: &[(&str, u32)] = &[
    ("usr", 0o755),
    ("etc", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("run", 0o755),
    ("proc", 0o555),
    ("dev", 0o755),
    ("sys", 0o555),
    ("mnt", 0o755),
    ("opt", 0o755),
    ("srv", 0o755),
];

/// Host /etc entries copied into the skeleton: what the loader, shells and Python read, and
/// nothing secret (no shadow, no keys, no host names or resolver of the host).
const HOST_ETC: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "os-release",
    "debian_version",
    "profile",
    "bash.bashrc",
    "inputrc",
    "mime.types",
    "ssl/certs",
];

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";
const NSSWITCH: &str =
    "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n";

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |e| SandboxError::sys(op, path.display().to_string(), e)
}

/// Makes sure the `base` skeleton exists under `state_dir/templates` and returns its path.
/// Built once into a temporary directory and renamed into place, never changed afterwards
/// (live overlays use it as their lower layer).
pub(crate) fn ensure_base_template(state_dir: &Path, uid: u32) -> Result<PathBuf> {
    let templates = state_dir.join("templates");
    let dest = templates.join(BASE_DIR);
    if dest.is_dir() {
        return Ok(dest);
    }
    fs::create_dir_all(&templates).map_err(io_err("mkdir", &templates))?;
    let tmp = templates.join(format!(".build-{}-{}", std::process::id(), unique()));
    let built = build_base(&tmp, uid);
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another runtime built it at the same time: use theirs.
        Err(_) if dest.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => Err(SandboxError::sys("rename", dest.display().to_string(), e)),
    }
}

pub(crate) fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn build_base(root: &Path, uid: u32) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(root)
        .map_err(io_err("mkdir", root))?;
    for (name, mode) in BASE_DIRS {
        let p = root.join(name);
        fs::create_dir(&p).map_err(io_err("mkdir", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).map_err(io_err("chmod", &p))?;
    }
    // Merged /usr: /bin, /lib… are links into usr/ exactly as on the host.
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        if let Ok(target) = fs::read_link(&host) {
            std::os::unix::fs::symlink(&target, root.join(name))
                .map_err(io_err("symlink", &host))?;
        } else if host.is_dir() {
            // A host without merged /usr: the directory itself is not reachable; keep the name.
            fs::create_dir(root.join(name)).map_err(io_err("mkdir", &host))?;
        }
    }
    let etc = root.join("etc");
    for (name, text) in [
        ("passwd", PASSWD),
        ("group", GROUP),
        ("nsswitch.conf", NSSWITCH),
    ] {
        let p = etc.join(name);
        fs::write(&p, text).map_err(io_err("write", &p))?;
    }
    fs::write(etc.join("hosts"), hosts_file("localhost")).map_err(io_err("write", &etc))?;
    fs::write(etc.join("resolv.conf"), "").map_err(io_err("write", &etc))?;
    for name in HOST_ETC {
        let src = Path::new("/etc").join(name);
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        };
        let dst = etc.join(name);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
        }
        if meta.file_type().is_symlink() {
            let t = fs::read_link(&src).map_err(io_err("readlink", &src))?;
            std::os::unix::fs::symlink(t, &dst).map_err(io_err("symlink", &dst))?;
        } else if meta.is_dir() {
            fs::create_dir(&dst).map_err(io_err("mkdir", &dst))?;
            let s = open_dir(&src)?;
            let d = open_dir(&dst)?;
            copy_tree(s.as_fd(), d.as_fd()).map_err(io_err("copy", &src))?;
        } else if meta.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
        }
    }
    let r = open_dir(root)?;
    chown_tree(r.as_fd(), uid).map_err(io_err("chown", root))?;
    rustix::fs::fchown(&r, Some(uid_of(uid)), Some(gid_of(uid)))
        .map_err(|e| SandboxError::sys("chown", "template", e))?;
    Ok(())
}

/// /etc/hosts of a sandbox named `hostname`.
pub(crate) fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    )
}

fn uid_of(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

fn gid_of(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

pub(crate) fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| SandboxError::sys("open", p.display().to_string(), e))
}

/// Makes the `rootfs` mount point in the sandbox's directory and gives a fresh `upper` (on
/// the layer's file system) its own /etc/hostname and /etc/hosts, owned by the sandbox's root.
pub(crate) fn create_layer(dir: &Path, upper: &Path, uid: u32, hostname: &str) -> Result<()> {
    make_mount_point(dir)?;
    write_identity(upper, uid, hostname)
}

/// The `rootfs` directory the init mounts the overlay on (in its own mount namespace).
pub(crate) fn make_mount_point(dir: &Path) -> Result<()> {
    let p = dir.join("rootfs");
    match fs::DirBuilder::new().mode(0o755).create(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(SandboxError::sys("mkdir", p.display().to_string(), e)),
    }
}

/// Writes /etc/hostname and /etc/hosts into an upper layer.
pub(crate) fn write_identity(upper: &Path, uid: u32, hostname: &str) -> Result<()> {
    let etc = upper.join("etc");
    if !etc.is_dir() {
        fs::create_dir(&etc).map_err(io_err("mkdir", &etc))?;
    }
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts_file(hostname)),
    ] {
        let p = etc.join(name);
        let _ = fs::remove_file(&p);
        fs::write(&p, text).map_err(io_err("write", &p))?;
    }
    let u = open_dir(upper)?;
    for p in ["etc", "etc/hostname", "etc/hosts"] {
        rustix::fs::chownat(
            &u,
            p,
            Some(uid_of(uid)),
            Some(gid_of(uid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| SandboxError::sys("chown", p, e))?;
    }
    rustix::fs::fchown(&u, Some(uid_of(uid)), Some(gid_of(uid)))
        .map_err(|e| SandboxError::sys("chown", "upper", e))
}

/// Before reusing an upper layer (wake, fork): the entries we mount over must be plain
/// directories (or absent), never a symlink, file or whiteout the sandbox left behind.
pub(crate) fn sanitize_upper(upper: &Path) -> Result<()> {
    let u = open_dir(upper)?;
    for name in ["usr", "dev", "proc"] {
        match rustix::fs::statat(&u, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(_) => rustix::fs::unlinkat(&u, name, AtFlags::empty())
                .map_err(|e| SandboxError::sys("unlink", format!("upper/{name}"), e))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(SandboxError::sys("stat", format!("upper/{name}"), e)),
        }
    }
    Ok(())
}

fn chown_tree(dir: BorrowedFd<'_>, id: u32) -> io::Result<()> {
    let mut rd = rustix::fs::Dir::read_from(dir)?;
    while let Some(ent) = rd.read() {
        let ent = ent?;
        let name = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        rustix::fs::chownat(
            dir,
            name,
            Some(uid_of(id)),
            Some(gid_of(id)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if ent.file_type() == FileType::Directory {
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            chown_tree(sub.as_fd(), id)?;
        }
    }
    Ok(())
}

fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    // SAFETY: buffer pointer and length are valid.
    let n = unsafe { libc::flistxattr(src.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Ok(());
    }
    let mut value = vec![0u8; 65536];
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        // SAFETY: valid C string and buffer.
        let len = unsafe {
            libc::fgetxattr(
                src.as_raw_fd(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            continue;
        }
        // SAFETY: valid C string and buffer.
        let r = unsafe {
            libc::fsetxattr(
                dst.as_raw_fd(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                len as usize,
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOTSUP) {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn copy_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match rustix::fs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = rustix::io::read(src, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off < n {
            off += rustix::io::write(dst, &buf[off..n])?;
        }
    }
}

fn copy_meta(fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> io::Result<()> {
    rustix::fs::fchown(fd, Some(uid_of(st.st_uid)), Some(gid_of(st.st_gid)))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(fd, &times)?;
    Ok(())
}

/// Copies the contents of `src` into the (existing, empty) directory `dst` by fds, never
/// following a symlink: regular files, directories, symlinks, device nodes (overlayfs
/// whiteouts), fifos; owners, modes, times and extended attributes (overlayfs `trusted.*`
/// included). Hard links become separate files.
pub(crate) fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let mut rd = rustix::fs::Dir::read_from(src)?;
    while let Some(ent) = rd.read() {
        let ent = ent?;
        let name: &CStr = ent.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let ro = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match ft {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
                let s = rustix::fs::openat(src, name, ro | OFlags::DIRECTORY, Mode::empty())?;
                let d = rustix::fs::openat(dst, name, ro | OFlags::DIRECTORY, Mode::empty())?;
                copy_tree(s.as_fd(), d.as_fd())?;
                copy_xattrs(s.as_fd(), d.as_fd())?;
                copy_meta(d.as_fd(), &st)?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(src, name, ro, Mode::empty())?;
                let d = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                copy_data(s.as_fd(), d.as_fd())?;
                copy_xattrs(s.as_fd(), d.as_fd())?;
                copy_meta(d.as_fd(), &st)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
                rustix::fs::chownat(
                    dst,
                    name,
                    Some(uid_of(st.st_uid)),
                    Some(gid_of(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            _ => {
                rustix::fs::mknodat(
                    dst,
                    name,
                    ft,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                )?;
                rustix::fs::chownat(
                    dst,
                    name,
                    Some(uid_of(st.st_uid)),
                    Some(gid_of(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
        }
    }
    Ok(())
}

/// Copies an (old, host-directory) upper layer into a new layer's `upper`.
pub(crate) fn copy_upper(src_upper: &Path, dst_upper: &Path) -> Result<()> {
    let s = open_dir(src_upper)?;
    let d = open_dir(dst_upper)?;
    copy_tree(s.as_fd(), d.as_fd()).map_err(io_err("copy", src_upper))?;
    let st = rustix::fs::fstat(&s).map_err(|e| SandboxError::sys("stat", "upper", e))?;
    copy_xattrs(s.as_fd(), d.as_fd()).map_err(io_err("copy xattrs", src_upper))?;
    copy_meta(d.as_fd(), &st).map_err(io_err("chown", dst_upper))
}
