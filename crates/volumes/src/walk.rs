//! Walking real directories by fd: each step opens a child relative to its parent with
//! `O_NOFOLLOW`, so a walk never leaves the tree it started in, whatever is swapped in meanwhile.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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

/// How many of the deepest directories of a walk keep their fds open.
const FD_WINDOW: usize = 32;
/// Above the window, one directory in this many keeps its fd (the point a closed directory
/// is reopened from, by name).
const FD_CHECKPOINT: usize = 256;

/// The directories from a walk's start down to where it is, without recursion: each walk
/// loops over this stack, so a tree of any depth costs heap, never thread stack.
///
/// Open fds are bounded: the deepest [`FD_WINDOW`] directories and one in [`FD_CHECKPOINT`]
/// above them keep theirs (about 110 fds at a depth of 20,000); a directory whose fd was closed
/// is reopened by name, `O_NOFOLLOW` step by step, from the nearest ancestor still open when
/// the walk comes back to it. Memory is the entries of the directories on the current path.
pub(crate) struct DirStack<'r, T> {
    root: BorrowedFd<'r>,
    frames: Vec<DirFrame<T>>,
}

struct DirFrame<T> {
    fd: Option<OwnedFd>,
    /// Its name in its parent (empty for the start).
    name: CString,
    data: T,
}

impl<'r, T> DirStack<'r, T> {
    /// A stack holding the start directory `root` with its state `data`.
    pub fn new(root: BorrowedFd<'r>, data: T) -> Self {
        DirStack {
            root,
            frames: vec![DirFrame {
                fd: None,
                name: CString::default(),
                data,
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Enters the directory `name` of the current one, opened as `fd`.
    pub fn push(&mut self, fd: OwnedFd, name: CString, data: T) {
        self.frames.push(DirFrame {
            fd: Some(fd),
            name,
            data,
        });
        let depth = self.frames.len() - 1;
        if depth > FD_WINDOW {
            let j = depth - FD_WINDOW;
            if !j.is_multiple_of(FD_CHECKPOINT) {
                self.frames[j].fd = None;
            }
        }
    }

    /// Leaves the current directory: its name in its parent and its state.
    pub fn pop(&mut self) -> Option<(CString, T)> {
        self.frames.pop().map(|f| (f.name, f.data))
    }

    /// The current directory's state.
    pub fn top(&mut self) -> Option<&mut T> {
        self.frames.last_mut().map(|f| &mut f.data)
    }

    /// The current directory's fd (reopened if it was closed) and its state.
    pub fn current(&mut self) -> rustix::io::Result<(BorrowedFd<'_>, &mut T)> {
        let k = self.frames.len().checked_sub(1).ok_or(Errno::NOENT)?;
        if k > 0 && self.frames[k].fd.is_none() {
            let mut i = k;
            while i > 0 && self.frames[i].fd.is_none() {
                i -= 1;
            }
            for j in i + 1..=k {
                let parent = match &self.frames[j - 1].fd {
                    Some(fd) if j - 1 > 0 => fd.as_fd(),
                    _ => self.root,
                };
                let fd = open_child_dir(parent, &self.frames[j].name)?;
                self.frames[j].fd = Some(fd);
            }
        }
        let root = self.root;
        let f = self.frames.last_mut().ok_or(Errno::NOENT)?;
        let fd = match &f.fd {
            Some(fd) if k > 0 => fd.as_fd(),
            _ => root,
        };
        Ok((fd, &mut f.data))
    }
}

/// The entries of one directory of a walk and how far the walk is through them.
struct Level {
    entries: Vec<Entry>,
    next: usize,
    /// Length of the walk's relative path before this directory's name was added.
    rel_len: usize,
}

impl Level {
    fn new(entries: Vec<Entry>, rel_len: usize) -> Level {
        Level {
            entries,
            next: 0,
            rel_len,
        }
    }
}

/// Whether an error opening a directory met in a walk means it went away meanwhile.
fn vanished(e: Errno) -> bool {
    matches!(e, Errno::NOENT | Errno::LOOP | Errno::NOTDIR)
}

/// The usage of everything below a directory.
pub(crate) fn tree_usage(dir: impl AsFd) -> rustix::io::Result<Usage> {
    let mut total = Usage::default();
    let mut stack = DirStack::new(dir.as_fd(), Level::new(read_entries(&dir)?, 0));
    while let Some(level) = stack.top() {
        if level.next >= level.entries.len() {
            stack.pop();
            continue;
        }
        let (fd, level) = match stack.current() {
            Ok(c) => c,
            Err(e) if vanished(e) => {
                stack.pop();
                continue;
            }
            Err(e) => return Err(e),
        };
        let e = &level.entries[level.next];
        level.next += 1;
        if e.file_type() != FileType::Directory {
            total += stat_usage(&e.stat);
            continue;
        }
        let child = match open_child_dir(fd, &e.name) {
            Ok(c) => c,
            Err(err) if vanished(err) => continue,
            Err(err) => return Err(err),
        };
        let name = e.name.clone();
        let entries = read_entries(&child)?;
        stack.push(child, name, Level::new(entries, 0));
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

/// Copies one entry (the whole tree for a directory; symlinks as symlinks) from
/// `src_dir/src_name` to `dst_dir/dst_name`, which must not exist. Returns the usage copied.
/// FIFOs, sockets and devices are refused with `EINVAL` (see [`copy_leaf`]).
pub(crate) fn copy_entry(
    src_dir: impl AsFd,
    src_name: &CStr,
    dst_dir: impl AsFd,
    dst_name: &CStr,
) -> rustix::io::Result<Usage> {
    let stat = rustix::fs::statat(&src_dir, src_name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return copy_leaf(&src_dir, src_name, &stat, &dst_dir, dst_name);
    }
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    let src = open_child_dir(&src_dir, src_name)?;
    rustix::fs::mkdirat(&dst_dir, dst_name, mode | Mode::RWXU)?;
    let dst = open_child_dir(&dst_dir, dst_name)?;
    let mut total = Usage::default();
    // The two stacks move in step: a directory entered in the source is made and entered in
    // the copy.
    let mut srcs = DirStack::new(src.as_fd(), Level::new(read_entries(&src)?, 0));
    let mut dsts = DirStack::new(dst.as_fd(), ());
    while let Some(level) = srcs.top() {
        if level.next >= level.entries.len() {
            srcs.pop();
            dsts.pop();
            continue;
        }
        let (sfd, level) = srcs.current()?;
        let (dfd, ()) = dsts.current()?;
        let e = &level.entries[level.next];
        level.next += 1;
        if e.file_type() != FileType::Directory {
            total += copy_leaf(sfd, &e.name, &e.stat, dfd, &e.name)?;
            continue;
        }
        let schild = match open_child_dir(sfd, &e.name) {
            Ok(c) => c,
            Err(err) if vanished(err) => continue,
            Err(err) => return Err(err),
        };
        let mode = Mode::from_raw_mode(e.stat.st_mode & 0o7777);
        rustix::fs::mkdirat(dfd, &e.name, mode | Mode::RWXU)?;
        let dchild = open_child_dir(dfd, &e.name)?;
        let name = e.name.clone();
        let entries = read_entries(&schild)?;
        srcs.push(schild, name.clone(), Level::new(entries, 0));
        dsts.push(dchild, name, ());
    }
    Ok(total)
}

/// Copies one entry that is not a directory: a symlink as a symlink, a regular file by
/// content. Anything else (a FIFO, socket or device, which sandbox code can make) is `EINVAL`:
/// copying it would block on a FIFO or not be what was asked.
fn copy_leaf(
    src_dir: impl AsFd,
    src_name: &CStr,
    stat: &rustix::fs::Stat,
    dst_dir: impl AsFd,
    dst_name: &CStr,
) -> rustix::io::Result<Usage> {
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    match FileType::from_raw_mode(stat.st_mode) {
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
        _ => Err(Errno::INVAL),
    }
}

/// Removes the entry `name` of `dir`, a whole tree for a directory, depth first without
/// recursion. Entries that vanish meanwhile are skipped.
pub(crate) fn remove_tree(dir: impl AsFd, name: &CStr) -> rustix::io::Result<()> {
    let stat = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let gone = |r: rustix::io::Result<()>| match r {
        Err(Errno::NOENT) => Ok(()),
        r => r,
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return gone(rustix::fs::unlinkat(&dir, name, AtFlags::empty()));
    }
    let top = match open_child_dir(&dir, name) {
        Ok(fd) => fd,
        Err(e) if vanished(e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut stack = DirStack::new(top.as_fd(), (read_names(&top)?, 0usize));
    while let Some((names, next)) = stack.top() {
        if *next >= names.len() {
            let (child, _) = stack.pop().ok_or(Errno::NOENT)?;
            if stack.is_empty() {
                break;
            }
            let (fd, _) = stack.current()?;
            gone(rustix::fs::unlinkat(fd, &child, AtFlags::REMOVEDIR))?;
            continue;
        }
        let (fd, (names, next)) = stack.current()?;
        let (n, kind) = &names[*next];
        *next += 1;
        if *kind != FileType::Directory {
            gone(rustix::fs::unlinkat(fd, n, AtFlags::empty()))?;
            continue;
        }
        let child = match open_child_dir(fd, n) {
            Ok(c) => c,
            Err(e) if vanished(e) => continue,
            Err(e) => return Err(e),
        };
        let n = n.clone();
        let entries = read_names(&child)?;
        stack.push(child, n, (entries, 0));
    }
    drop(top);
    gone(rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR))
}

/// One entry met by [`walk_tree`].
pub(crate) struct Visit<'a> {
    /// The entry's parent directory.
    pub dir: BorrowedFd<'a>,
    pub entry: &'a Entry,
    /// The entry's path in the volume.
    pub path: &'a nullspace_core::VolumePath,
    /// The entry's path below the directory the walk started from.
    pub rel: &'a str,
}

/// Walks everything below `dir` (the volume path `at`) depth-first in name order, each child
/// directory opened `O_NOFOLLOW` from its parent's fd; a directory is visited before its
/// contents. `visit` returns `false` to stop the walk, which then returns `false`.
/// Iterative over a [`DirStack`]: any depth, bounded fds.
pub(crate) fn walk_tree(
    dir: &OwnedFd,
    at: &nullspace_core::VolumePath,
    visit: &mut dyn FnMut(Visit<'_>) -> crate::FsResult<bool>,
) -> crate::FsResult<bool> {
    let err = |p: &nullspace_core::VolumePath, e| crate::FsError::from_errno(p.as_str(), e);
    let entries = read_entries(dir).map_err(|e| err(at, e))?;
    let mut stack = DirStack::new(dir.as_fd(), Level::new(entries, 0));
    // The path of the directory on top of the stack, and the entry's path below `at`.
    let mut cur = at.clone();
    let mut rel = String::new();
    let leave = |cur: &mut nullspace_core::VolumePath, rel: &mut String, level: Level| {
        *cur = cur
            .parent()
            .unwrap_or_else(nullspace_core::VolumePath::root);
        rel.truncate(level.rel_len);
    };
    while let Some(level) = stack.top() {
        if level.next >= level.entries.len() {
            if let Some((_, level)) = stack.pop() {
                leave(&mut cur, &mut rel, level);
            }
            continue;
        }
        let (fd, level) = match stack.current() {
            Ok(c) => c,
            Err(e) if vanished(e) => {
                if let Some((_, level)) = stack.pop() {
                    leave(&mut cur, &mut rel, level);
                }
                continue;
            }
            Err(e) => return Err(err(&cur, e)),
        };
        let entry = &level.entries[level.next];
        level.next += 1;
        let name = entry.name_lossy();
        let path = cur.child(&name);
        let rel_len = rel.len();
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&name);
        if !visit(Visit {
            dir: fd,
            entry,
            path: &path,
            rel: &rel,
        })? {
            return Ok(false);
        }
        if entry.file_type() == FileType::Directory {
            match open_child_dir(fd, &entry.name) {
                Ok(child) => {
                    let name = entry.name.clone();
                    let entries = read_entries(&child).map_err(|e| err(&path, e))?;
                    stack.push(child, name, Level::new(entries, rel_len));
                    cur = path;
                    continue;
                }
                Err(e) if vanished(e) => {}
                Err(e) => return Err(err(&path, e)),
            }
        }
        rel.truncate(rel_len);
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `depth` nested directories `d` below `root` with a 5-byte file `f` at the bottom.
    fn deep_tree(root: &std::path::Path, depth: usize) {
        let mut dir =
            rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, c"d", Mode::RWXU).unwrap();
            dir = open_child_dir(&dir, c"d").unwrap();
        }
        let f =
            rustix::fs::openat(&dir, c"f", OFlags::WRONLY | OFlags::CREATE, Mode::RUSR).unwrap();
        rustix::io::write(&f, b"hello").unwrap();
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// Every walk of a tree 5,000 deep runs on a 256 KiB stack (no recursion) and holds a
    /// bounded number of fds.
    #[test]
    fn walks_of_a_very_deep_tree_need_no_stack_and_few_fds() {
        const DEPTH: usize = 5_000;
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        deep_tree(&src, DEPTH);
        let t = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let open = |p: &std::path::Path| {
                    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
                };
                let before = open_fds();
                let (s, d) = (open(&src), open(&dst));
                let usage = tree_usage(&s).unwrap();
                assert_eq!((usage.used_bytes, usage.file_count), (5, 1));
                let mut seen = 0;
                let mut max_fds = 0;
                let root = nullspace_core::VolumePath::root();
                walk_tree(&s, &root, &mut |v| {
                    seen += 1;
                    if v.entry.file_type() == FileType::RegularFile {
                        assert_eq!(v.rel.len(), DEPTH * 2 + 1);
                        max_fds = max_fds.max(open_fds());
                    }
                    Ok(true)
                })
                .unwrap();
                assert_eq!(seen, DEPTH + 1);
                assert!(max_fds < before + 2 + 2 * FD_WINDOW + DEPTH / FD_CHECKPOINT + 8);
                let copied = copy_entry(&s, c"d", &d, c"d").unwrap();
                assert_eq!((copied.used_bytes, copied.file_count), (5, 1));
                assert_eq!(tree_usage(&d).unwrap().used_bytes, 5);
                remove_tree(&s, c"d").unwrap();
                remove_tree(&d, c"d").unwrap();
                assert!(read_entries(&s).unwrap().is_empty());
                assert!(read_entries(&d).unwrap().is_empty());
                drop((s, d));
                assert_eq!(open_fds(), before);
            })
            .unwrap();
        t.join().unwrap();
    }

    /// A FIFO is refused by copy (it would block, and is not a file).
    #[test]
    fn copying_a_fifo_is_einval() {
        let tmp = tempfile::tempdir().unwrap();
        let d = rustix::fs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(&d, c"p", FileType::Fifo, Mode::RWXU, 0).unwrap();
        assert_eq!(copy_entry(&d, c"p", &d, c"q"), Err(Errno::INVAL));
    }
}
