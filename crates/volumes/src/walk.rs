//! Walking real directories by fd: each step opens a child relative to its parent with
//! `O_NOFOLLOW`, so a walk never leaves the tree it started in, whatever is swapped in meanwhile.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::Usage;

/// One directory entry: its raw name and its type from `lstat`.
pub(crate) struct Entry {
    pub name: CString,
    pub stat: rustix::fs::Stat,
}

impl Entry {
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }
    pub fn name_lossy(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }
}

/// The entries of a directory (without `.` and `..`), sorted by name, each `lstat`ed.
/// Entries that vanish between `readdir` and `lstat` are skipped.
pub(crate) fn read_entries(dir: impl AsFd) -> rustix::io::Result<Vec<Entry>> {
    let dir = dir.as_fd();
    let mut out = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => out.push(Entry {
                name: name.to_owned(),
                stat,
            }),
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens a child directory without following a symlink.
pub(crate) fn open_child_dir(dir: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What counts against a volume's cap: the sizes of regular files; `file_count` counts them.
pub(crate) fn stat_usage(stat: &rustix::fs::Stat) -> Usage {
    if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
        Usage {
            used_bytes: stat.st_size.max(0) as u64,
            file_count: 1,
        }
    } else {
        Usage::default()
    }
}

/// The usage of everything below a directory.
pub(crate) fn tree_usage(dir: impl AsFd) -> rustix::io::Result<Usage> {
    let mut total = Usage::default();
    for e in read_entries(&dir)? {
        if e.file_type() == FileType::Directory {
            match open_child_dir(&dir, &e.name) {
                Ok(child) => total += tree_usage(child)?,
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                Err(err) => return Err(err),
            }
        } else {
            total += stat_usage(&e.stat);
        }
    }
    Ok(total)
}

/// Usage of one entry named `name` in `dir` (a whole tree for a directory).
pub(crate) fn entry_usage(
    dir: impl AsFd,
    name: &CStr,
    stat: &rustix::fs::Stat,
) -> rustix::io::Result<Usage> {
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        tree_usage(open_child_dir(dir, name)?)
    } else {
        Ok(stat_usage(stat))
    }
}

/// Copies one entry (recursively for directories; symlinks as symlinks) from `src_dir/src_name`
/// to `dst_dir/dst_name`, which must not exist. Returns the usage copied.
pub(crate) fn copy_entry(
    src_dir: impl AsFd,
    src_name: &CStr,
    dst_dir: impl AsFd,
    dst_name: &CStr,
) -> rustix::io::Result<Usage> {
    let stat = rustix::fs::statat(&src_dir, src_name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {
            let src = open_child_dir(&src_dir, src_name)?;
            rustix::fs::mkdirat(&dst_dir, dst_name, mode | Mode::RWXU)?;
            let dst = open_child_dir(&dst_dir, dst_name)?;
            let mut total = Usage::default();
            for e in read_entries(&src)? {
                total += copy_entry(&src, &e.name, &dst, &e.name)?;
            }
            Ok(total)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&src_dir, src_name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), &dst_dir, dst_name)?;
            Ok(Usage::default())
        }
        FileType::RegularFile => {
            let src = rustix::fs::openat(
                &src_dir,
                src_name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            )?;
            let dst = rustix::fs::openat(
                &dst_dir,
                dst_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                mode,
            )?;
            let mut src = std::fs::File::from(src);
            let mut dst = std::fs::File::from(dst);
            // std::io::copy uses copy_file_range/sendfile where it can: reflinks on filesystems
            // that support them, in-kernel copies elsewhere.
            let n = std::io::copy(&mut src, &mut dst).map_err(|e| {
                e.raw_os_error()
                    .map(Errno::from_raw_os_error)
                    .unwrap_or(Errno::IO)
            })?;
            Ok(Usage {
                used_bytes: n,
                file_count: 1,
            })
        }
        // FIFOs, sockets and devices (which sandbox code could create) are not copied.
        _ => Ok(Usage::default()),
    }
}

/// One entry met by [`walk_tree`].
pub(crate) struct Visit<'a> {
    /// The entry's parent directory.
    pub dir: &'a OwnedFd,
    pub entry: &'a Entry,
    /// The entry's path in the volume.
    pub path: &'a nullspace_core::VolumePath,
    /// The entry's path below the directory the walk started from.
    pub rel: &'a str,
}

/// Walks everything below `dir` (the volume path `at`) depth-first in name order, each child
/// directory opened `O_NOFOLLOW` from its parent's fd; a directory is visited before its
/// contents. `visit` returns `false` to stop the walk, which then returns `false`.
pub(crate) fn walk_tree(
    dir: &OwnedFd,
    at: &nullspace_core::VolumePath,
    visit: &mut dyn FnMut(Visit<'_>) -> crate::FsResult<bool>,
) -> crate::FsResult<bool> {
    fn go(
        dir: &OwnedFd,
        at: &nullspace_core::VolumePath,
        rel: &str,
        visit: &mut dyn FnMut(Visit<'_>) -> crate::FsResult<bool>,
    ) -> crate::FsResult<bool> {
        let entries = read_entries(dir).map_err(|e| crate::FsError::from_errno(at.as_str(), e))?;
        for entry in &entries {
            let name = entry.name_lossy();
            let path = at.child(&name);
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if !visit(Visit {
                dir,
                entry,
                path: &path,
                rel: &rel_path,
            })? {
                return Ok(false);
            }
            if entry.file_type() == FileType::Directory {
                let child = match open_child_dir(dir, &entry.name) {
                    Ok(c) => c,
                    Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                    Err(e) => return Err(crate::FsError::from_errno(path.as_str(), e)),
                };
                if !go(&child, &path, &rel_path, visit)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
    go(dir, at, "", visit)
}

/// The names of a directory's entries with their types from `readdir` (`d_type`), sorted by
/// name, without a `stat` each: what a listing that needs no sizes or times reads.
/// Where the file system gives no type, it is looked up.
pub(crate) fn read_names(dir: impl AsFd) -> rustix::io::Result<Vec<(CString, FileType)>> {
    let dir = dir.as_fd();
    let mut out = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match item.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            },
            k => k,
        };
        out.push((name.to_owned(), kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
