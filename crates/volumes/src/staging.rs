//! A volume's staging directory: where data waits until a `rename` publishes it into `data/`.
//!
//! This module is the one that knows what lies in staging:
//! - `<kind>-<server id>-<random>`: a temporary entry of one server ([`TempKind`]): the file
//!   of a write in progress, a batch or a copy being built, a tree on its way out. The server
//!   id names the owner, so cleaning removes only the entries of servers that no longer run
//!   ([`ServerInstance::is_live`]) and never a live server's write in flight.
//! - `uploads/` ([`UPLOADS_DIR`]): resumable uploads (see `uploads`), kept across restarts and
//!   left alone by cleaning (they expire on their own).
//!
//! Staging is on the volume's file system next to `data/`, so one rename publishes an entry,
//! and outside `data/`, so listings, watches and sandbox mounts never see what it holds.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::instance::ServerInstance;

/// Name of the uploads directory inside staging (kept across restarts).
pub const UPLOADS_DIR: &str = "uploads";

/// Every this many bytes, staged data is handed to the kernel's writeback
/// ([`start_writeback`]), so that the final `fsync` finds little left to do and the disk works
/// while the network is still sending.
pub(crate) const WRITEBACK_STEP: u64 = 32 << 20;

/// What a temporary entry in staging is for (the first part of its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TempKind {
    /// The file of one write.
    Write,
    /// The tree of a batch being staged.
    Batch,
    /// A copy being built.
    Copy,
    /// A tree moved out of `data/` to be removed.
    Trash,
}

impl TempKind {
    fn prefix(self) -> &'static str {
        match self {
            TempKind::Write => "w",
            TempKind::Batch => "b",
            TempKind::Copy => "c",
            TempKind::Trash => "t",
        }
    }
}

/// The staging directory of one open volume.
#[derive(Debug)]
pub(crate) struct Staging {
    fd: OwnedFd,
    path: PathBuf,
    /// Whose temporary entries are whose.
    owner: Arc<ServerInstance>,
}

impl Staging {
    /// Staging at `path`, already open as `fd`, for this server `owner`.
    pub(crate) fn new(fd: OwnedFd, path: PathBuf, owner: Arc<ServerInstance>) -> Staging {
        Staging { fd, path, owner }
    }

    /// The directory fd (renames into and out of staging are relative to it).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's path on the host.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The resumable uploads' directory (not created here).
    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.path.join(UPLOADS_DIR)
    }

    /// A fresh name for a temporary entry of this server.
    pub(crate) fn temp_name(&self, kind: TempKind) -> String {
        temp_name(&self.owner, kind)
    }

    /// Creates the temporary file `name` (it must not exist), close-on-exec.
    pub(crate) fn create_file(&self, name: &str) -> rustix::io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        Ok(File::from(fd))
    }

    /// Moves the entry `name` of `dir` into staging under a fresh temporary name, which it
    /// returns (a tree leaves `data/` in one rename before it is removed).
    pub(crate) fn move_in(
        &self,
        dir: impl AsFd,
        name: impl rustix::path::Arg,
        kind: TempKind,
    ) -> rustix::io::Result<String> {
        let temp = self.temp_name(kind);
        rustix::fs::renameat(dir, name, &self.fd, temp.as_str())?;
        Ok(temp)
    }

    /// Removes the temporary file `name`, if it is there.
    pub(crate) fn remove_file(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::empty());
    }

    /// Removes the temporary entry `name`, a file or a whole tree, if it is there.
    pub(crate) fn discard(&self, name: &str) {
        if let Ok(name) = std::ffi::CString::new(name) {
            let _ = crate::walk::remove_tree(&self.fd, &name);
        }
    }

    /// Syncs the file system staging is on (every staged file of a batch or copy at once).
    pub(crate) fn sync(&self) -> rustix::io::Result<()> {
        rustix::fs::syncfs(&self.fd)
    }

    /// Removes the entry `name` (a file or a whole tree); whether it went.
    fn remove_entry(&self, name: &std::ffi::OsStr) -> bool {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(name.as_bytes())
            .is_ok_and(|n| crate::walk::remove_tree(&self.fd, &n).is_ok())
    }

    /// The temporary entries no running server uses (what [`Staging::clean`] removes).
    pub(crate) fn leftovers(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name != UPLOADS_DIR && is_leftover(&self.owner, name))
            .collect()
    }

    /// Removes what no running server uses: the temporary entries of servers that stopped or
    /// crashed. Uploads are kept. Returns how many entries went.
    pub(crate) fn clean(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.path) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name == UPLOADS_DIR || !is_leftover(&self.owner, &name) {
                continue;
            }
            removed += usize::from(self.remove_entry(&e.file_name()));
        }
        removed
    }
}

/// A fresh temporary name of the server `owner`: `<kind>-<server id>-<random>`.
fn temp_name(owner: &ServerInstance, kind: TempKind) -> String {
    format!(
        "{}-{}-{}",
        kind.prefix(),
        owner.id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether the staging entry `name` is a leftover: not a temporary entry of a live server.
fn is_leftover(owner: &ServerInstance, name: &str) -> bool {
    let mut parts = name.splitn(3, '-');
    let (_, server) = (parts.next(), parts.next());
    !server.is_some_and(|s| owner.is_live(s))
}

/// Starts asynchronous writeback of a byte range; a hint only, so failures are ignored (the
/// final `fsync` reports any real error).
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid, owned fd; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_the_files_of_servers_that_are_not_running() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ServerInstance::register(tmp.path()).unwrap();
        let b = ServerInstance::register(tmp.path()).unwrap();
        let of_a = temp_name(&a, TempKind::Write);
        assert!(!is_leftover(&b, &of_a), "a live server's file");
        assert!(!is_leftover(&a, &of_a), "its own file");
        assert!(
            is_leftover(&b, "w-0123456789abcdef-00"),
            "a server never registered"
        );
        assert!(
            is_leftover(&b, "w-5d0c1c7a3e0b4f9e8a7b6c5d4e3f2a1b"),
            "the old format"
        );
        assert!(is_leftover(&b, "stray"));
        drop(a);
        assert!(is_leftover(&b, &of_a), "a server that stopped");
        // A new server removes the lock files of stopped ones.
        let _c = ServerInstance::register(tmp.path()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&format!("{}.lock", b.id())));
        // Alone on a data root, every file but its own is a leftover.
        let solo = ServerInstance::solo();
        assert!(is_leftover(&solo, &temp_name(&b, TempKind::Write)));
        assert!(!is_leftover(&solo, &temp_name(&solo, TempKind::Write)));
    }

    #[test]
    fn temp_names_start_with_their_kind_and_owner() {
        let owner = ServerInstance::solo();
        for (kind, prefix) in [
            (TempKind::Write, "w-"),
            (TempKind::Batch, "b-"),
            (TempKind::Copy, "c-"),
            (TempKind::Trash, "t-"),
        ] {
            let name = temp_name(&owner, kind);
            assert!(
                name.starts_with(&format!("{prefix}{}-", owner.id())),
                "{name}"
            );
        }
    }
}
