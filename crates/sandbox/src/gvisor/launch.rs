//! The launcher: `runsc run|restore` started from a child that first made itself a private
//! mount namespace holding the sandbox's mounts (the layer's file system, the overlay root
//! over the base template, one detached clone per volume at `vols/<i>`, and the attach root:
//! a small tmpfs at `attach` holding the runtime-attached volumes at `attach/<name>`). runsc's gofer
//! is a child of runsc and stays in that namespace, so the mounts live exactly as long as
//! the sandbox and nothing is ever mounted in the host's namespace.
//!
//! The server is multi-threaded: everything the child does between fork and exec is raw
//! syscalls on C strings and fds prepared by the parent (`pre_exec`, no allocation).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::{Result, SandboxError};
use crate::init::move_mount_to;
use crate::sys::{self, check_int, SysResult};

/// What the launcher mounts before it execs runsc.
pub(crate) struct Mounts {
    /// The layer's file system (a detached mount, `layer::Mounted::tree`).
    pub layer: OwnedFd,
    /// The base template (overlay lower dir).
    pub lower: CString,
    /// The bundle dir (cwd of the launcher; mount points are relative to it).
    pub bundle: CString,
    /// Detached clones of the volume directories, in `vols/<i>` order with their names.
    pub vols: Vec<(OwnedFd, CString)>,
    /// Runtime-attached volumes: detached clones and their `attach/<name>` directories.
    pub attached: Vec<(OwnedFd, CString)>,
    /// `attach/<name>` directories left empty (a volume that could not be mounted again, or
    /// a detach the restored kernel still has to undo: its bind inside must find the name).
    pub attach_empty: Vec<CString>,
    /// Whether the bundle has the attach root (bundles written before it existed do not).
    pub attach_root: bool,
}

/// Options of the attach root's tmpfs: only directories (mount points) are made there.
const ATTACH_TMPFS: &CStr = c"size=64k,nr_inodes=1024,mode=0755";

fn mount_all(m: &PreparedMounts) -> SysResult<()> {
    // SAFETY: raw syscalls on C strings prepared by the parent.
    unsafe {
        check_int(libc::unshare(libc::CLONE_NEWNS))?;
    }
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // SAFETY: chdir with a C string.
    unsafe {
        check_int(libc::chdir(m.bundle.as_ptr()))?;
    }
    move_mount_to(m.layer, c"layer")?;
    sys::mount(
        Some(c"overlay"),
        c"merged",
        Some(c"overlay"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&m.overlay_data),
    )?;
    for (fd, name) in &m.vols {
        move_mount_to(*fd, name)?;
    }
    if !m.attach_root {
        return Ok(());
    }
    sys::mount(
        Some(c"tmpfs"),
        c"attach",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(ATTACH_TMPFS),
    )?;
    for name in &m.attach_empty {
        mkdir(name)?;
    }
    for (fd, name) in &m.attached {
        mkdir(name)?;
        move_mount_to(*fd, name)?;
    }
    Ok(())
}

fn mkdir(path: &CStr) -> SysResult<()> {
    // SAFETY: mkdir with a C string.
    check_int(unsafe { libc::mkdir(path.as_ptr(), 0o755) }).map(drop)
}

struct PreparedMounts {
    layer: RawFd,
    bundle: CString,
    overlay_data: CString,
    vols: Vec<(RawFd, CString)>,
    attached: Vec<(RawFd, CString)>,
    attach_empty: Vec<CString>,
    attach_root: bool,
}

/// Starts `cmd` (a runsc command line) through the launcher and waits for it (runsc
/// `--detach` returns once the sandbox runs). Its output goes to `log` (appended); on failure
/// the error carries the log's tail.
pub(crate) fn run(mut cmd: Command, mounts: Mounts, log: &Path) -> Result<()> {
    let lower = mounts.lower.to_string_lossy().into_owned();
    if lower.contains([',', ':']) {
        return Err(SandboxError::invalid(
            "state_dir",
            format!("{lower:?} must not contain ',' or ':'"),
        ));
    }
    let prepared = PreparedMounts {
        layer: mounts.layer.as_raw_fd(),
        bundle: mounts.bundle.clone(),
        overlay_data: CString::new(format!(
            "lowerdir={lower},upperdir=layer/upper,workdir=layer/work"
        ))
        .map_err(|_| SandboxError::invalid("state_dir", "contains NUL"))?,
        vols: mounts
            .vols
            .iter()
            .map(|(fd, n)| (fd.as_raw_fd(), n.clone()))
            .collect(),
        attached: mounts
            .attached
            .iter()
            .map(|(fd, n)| (fd.as_raw_fd(), n.clone()))
            .collect(),
        attach_empty: mounts.attach_empty.clone(),
        attach_root: mounts.attach_root,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SandboxError::sys("open", log.display().to_string(), e))?;
    let err = out
        .try_clone()
        .map_err(|e| SandboxError::sys("dup", "runsc log", e))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: the closure makes raw syscalls only, on data prepared above.
    unsafe {
        cmd.pre_exec(move || mount_all(&prepared).map_err(std::io::Error::from_raw_os_error));
    }
    let status = cmd
        .status()
        .map_err(|e| SandboxError::sys("launch", "runsc", e))?;
    // The fds (held until here) are closed now: the mounts live in the launcher's namespace.
    drop(mounts);
    if status.success() {
        Ok(())
    } else {
        Err(SandboxError::Unavailable(format!(
            "runsc failed ({status}): {}",
            super::log_tail(log)
        )))
    }
}
