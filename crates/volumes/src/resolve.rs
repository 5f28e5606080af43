//! The one resolver: every user-supplied path is opened through `Beneath`.
//!
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` makes the kernel refuse any resolution that
//! would leave the volume's data directory — by `..`, an absolute symlink, a relative symlink
//! that climbs out, `/proc/self/root`-style magic links, or a directory swapped for a symlink
//! while the request runs (the check happens at every step of the walk, atomically). What we
//! get back is an fd, and every later step works relative to fds, never re-resolving a path.
//!
//! A resolver may be rooted at a directory of the volume instead ([`Beneath::scoped`], for
//! volume tokens with a path): the kernel then confines every lookup below that directory, and
//! a path outside it is `NotFound` before any lookup. Paths stay volume paths (`/dir/x`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nullspace_core::VolumePath;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{FsError, FsResult};

/// How often a resolution is retried when the kernel reports a concurrent rename (`EAGAIN`).
const EAGAIN_RETRIES: usize = 64;

/// The data directory of one volume (or one directory of it), as an fd that confines every
/// lookup below it.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
    /// The volume path of `root`: `/` for the volume's data directory.
    scope: VolumePath,
}

impl Beneath {
    /// Wraps an fd of the volume's data directory.
    pub fn new(root: OwnedFd) -> Beneath {
        Beneath {
            root,
            scope: VolumePath::root(),
        }
    }

    /// A resolver rooted at the directory `prefix` (a volume path below this one's scope):
    /// opened without following any symlink on the way, so that a prefix replaced by a symlink
    /// (to `/`, say) is refused rather than followed. A prefix that is missing, not a
    /// directory or a symlink is `NotFound`.
    pub fn scoped(&self, prefix: &VolumePath) -> FsResult<Beneath> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        match self.open_with(prefix, flags, ResolveFlags::NO_SYMLINKS) {
            Ok(root) => Ok(Beneath {
                root,
                scope: prefix.clone(),
            }),
            Err(FsError::NotFound(_) | FsError::NotADirectory(_) | FsError::SymlinkLoop(_)) => {
                Err(FsError::NotFound(prefix.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// The root directory fd.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The volume path of the root directory (`/` unless [`Beneath::scoped`]).
    pub fn scope(&self) -> &VolumePath {
        &self.scope
    }

    /// Whether `path` is this resolver's root directory.
    pub fn is_root(&self, path: &VolumePath) -> bool {
        path == &self.scope
    }

    /// Whether `path` is within reach: the root directory or below it.
    pub fn contains(&self, path: &VolumePath) -> bool {
        path.starts_with(&self.scope)
    }

    /// `NotFound` unless `path` is within reach (for operations that would otherwise only
    /// touch `path` later, like a batch into an empty tar or an upload's first byte).
    pub fn reach(&self, path: &VolumePath) -> FsResult<()> {
        if self.contains(path) {
            Ok(())
        } else {
            Err(FsError::NotFound(path.to_string()))
        }
    }

    /// Opens `path` confined to the volume. `follow_final` decides whether a symlink as the last
    /// component is followed (still confined) or refused with `ELOOP`.
    pub fn open(&self, path: &VolumePath, flags: OFlags, follow_final: bool) -> FsResult<OwnedFd> {
        let flags = if follow_final {
            flags
        } else {
            flags | OFlags::NOFOLLOW
        };
        self.open_with(path, flags, ResolveFlags::empty())
    }

    /// [`Beneath::open`] with more resolve flags. A path outside the scope is `NotFound`
    /// without a lookup.
    fn open_with(
        &self,
        path: &VolumePath,
        flags: OFlags,
        extra: ResolveFlags,
    ) -> FsResult<OwnedFd> {
        let Some(rel) = path.strip_prefix(&self.scope) else {
            return Err(FsError::NotFound(path.to_string()));
        };
        let rel = if rel.is_empty() { "." } else { rel };
        let flags = flags | OFlags::CLOEXEC | OFlags::NOCTTY;
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | extra;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.root, rel, flags, Mode::from_raw_mode(0), how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN | Errno::INTR) if tries < EAGAIN_RETRIES => tries += 1,
                Err(e) => return Err(FsError::from_errno(path.as_str(), e)),
            }
        }
    }

    /// Opens a directory for reading entries or as the base of `*at` calls.
    pub fn open_dir(&self, path: &VolumePath) -> FsResult<OwnedFd> {
        self.open(path, OFlags::RDONLY | OFlags::DIRECTORY, true)
    }

    /// Opens the parent directory of `path` and returns it with the last name, for operations
    /// that act on a name without following it (create, rename, unlink, lstat).
    /// With `create`, missing parent directories are made (like `mkdir -p`) and their paths
    /// appended to it.
    pub fn parent<'p>(
        &self,
        path: &'p VolumePath,
        create: Option<&mut Vec<VolumePath>>,
    ) -> FsResult<(OwnedFd, &'p str)> {
        self.reach(path)?;
        if self.is_root(path) && !path.is_root() {
            return Err(FsError::Invalid(format!(
                "{path}, the root of this token's directory, cannot be used here"
            )));
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(FsError::Invalid(
                "the volume root cannot be used here".into(),
            ));
        };
        let dir = match create {
            Some(created) => self.ensure_dir(&parent, created)?,
            None => self.open_dir(&parent)?,
        };
        Ok((dir, name))
    }

    /// Opens `path` as a directory, creating it and its missing parents; every directory made
    /// is appended to `created`, outermost first.
    pub fn ensure_dir(
        &self,
        path: &VolumePath,
        created: &mut Vec<VolumePath>,
    ) -> FsResult<OwnedFd> {
        // Up from `path` to the deepest directory that exists (a loop, not recursion: paths
        // may be thousands of levels deep), then each missing one made on the way down.
        let mut missing = Vec::new();
        let mut at = path.clone();
        loop {
            match self.open_dir(&at) {
                Ok(fd) if missing.is_empty() => return Ok(fd),
                Ok(_) => break,
                Err(FsError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            // As `parent` refuses: a path out of reach, the root (of the volume or scope).
            let (Some(up), true) = (at.parent(), self.contains(&at) && !self.is_root(&at)) else {
                return Err(FsError::NotFound(at.to_string()));
            };
            missing.push(at);
            at = up;
        }
        for dir in missing.into_iter().rev() {
            let (parent, name) = self.parent(&dir, None)?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => created.push(dir.clone()),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(FsError::from_errno(dir.as_str(), e)),
            }
        }
        self.open_dir(path)
    }
}
