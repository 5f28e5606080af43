//! Listings: sorted depth first by raw name bytes, paged by an opaque cursor.

use std::os::fd::{AsFd, OwnedFd};

use nullspace_core::{FileStat, FileType as StatType, VolumePath};
use rustix::fs::{AtFlags, FileType, OFlags};
use rustix::io::Errno;

use super::{file_stat, io_at, VolumeHandle};
use crate::error::{FsError, FsResult};
use crate::walk::{open_child_dir, read_names, DirStack};

/// What to list.
#[derive(Debug, Clone)]
pub struct ListOptions {
    pub recursive: bool,
    /// Shell glob: without `/` it matches entry names, with `/` paths relative to the listed dir.
    pub glob: Option<String>,
    pub limit: usize,
    /// The last path of the previous page.
    pub cursor: Option<String>,
    /// Stat every entry (size, mode, mtime, etag). Without it only paths and types are
    /// read, from the directory itself, as `find` does.
    pub details: bool,
}

/// One listed entry; `stat` is there when the listing asked for details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub path: String,
    pub file_type: StatType,
    pub stat: Option<FileStat>,
    /// The path's exact bytes, base64, when they are not UTF-8 (`path` is then lossy).
    pub path_base64: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    pub next_cursor: Option<String>,
}

/// A shell glob over names (no `/` in it) or over paths relative to a listed directory.
pub(crate) struct NameGlob {
    matcher: globset::GlobMatcher,
    on_path: bool,
}

impl NameGlob {
    /// Compiles a user glob; a bad one is `invalid_argument` quoting the parser.
    pub(crate) fn compile(glob: Option<&str>) -> FsResult<Option<NameGlob>> {
        let Some(g) = glob else { return Ok(None) };
        let matcher = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| FsError::Invalid(format!("invalid glob {g:?}: {}", e.kind())))?
            .compile_matcher();
        Ok(Some(NameGlob {
            matcher,
            on_path: g.contains('/'),
        }))
    }

    pub(crate) fn matches(&self, name: &str, rel_path: &str) -> bool {
        self.matcher
            .is_match(if self.on_path { rel_path } else { name })
    }
}

impl VolumeHandle {
    /// Lists a directory (or the one entry a file path names), sorted depth-first by name.
    pub fn list(&self, path: &VolumePath, opts: &ListOptions) -> FsResult<ListPage> {
        let glob = NameGlob::compile(opts.glob.as_deref())?;
        let top = self.stat(path)?;
        if top.file_type != StatType::Dir {
            let entry = ListEntry {
                path: top.path.clone(),
                file_type: top.file_type,
                stat: Some(top),
                path_base64: None,
            };
            return Ok(ListPage {
                entries: vec![entry],
                next_cursor: None,
            });
        }
        let dir = self
            .beneath()
            .open(path, OFlags::RDONLY | OFlags::DIRECTORY, false)?;
        // The cursor is opaque: the previous page's last entry as raw name bytes below the
        // listed directory, base64url-encoded (names need not be UTF-8).
        let cursor: Option<Vec<Vec<u8>>> = match &opts.cursor {
            Some(c) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .map_err(|_| FsError::Invalid(format!("invalid cursor {c:?}")))?;
                Some(
                    raw.split(|b| *b == b'/')
                        .filter(|s| !s.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect(),
                )
            }
            None => None,
        };
        let mut walk = ListWalk {
            details: opts.details,
            recursive: opts.recursive,
            glob: glob.as_ref(),
            limit: opts.limit.max(1),
            out: Vec::new(),
            raw: Vec::new(),
        };
        walk.dir(&dir, path, cursor.as_deref())
            .map_err(io_at(path.as_str()))?;
        let mut entries = walk.out;
        let next_cursor = if entries.len() > opts.limit.max(1) {
            use base64::Engine;
            entries.truncate(opts.limit.max(1));
            let last = &walk.raw[opts.limit.max(1) - 1];
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last))
        } else {
            None
        };
        Ok(ListPage {
            entries,
            next_cursor,
        })
    }
}
struct ListWalk<'g> {
    details: bool,
    recursive: bool,
    glob: Option<&'g NameGlob>,
    limit: usize,
    out: Vec<ListEntry>,
    /// Raw relative path of each entry in `out`, for the cursor.
    raw: Vec<Vec<u8>>,
}

/// One directory of a listing walk.
struct ListLevel {
    names: Vec<(std::ffi::CString, FileType)>,
    next: usize,
    /// Lengths of the relative and raw paths before this directory's name was added.
    rel_len: usize,
    raw_len: usize,
    /// While the walk is still on the previous page's last path: which of its names this
    /// directory's entries are compared with.
    cursor: Option<usize>,
}

impl ListWalk<'_> {
    /// Walks `dir` (at volume path `at`) depth first without recursion (a [`DirStack`]).
    /// `cursor` holds the names of the previous page's last path below `dir`: everything up
    /// to it is skipped. Returns `true` once more than `limit` entries are collected.
    fn dir(
        &mut self,
        dir: &OwnedFd,
        at: &VolumePath,
        cursor: Option<&[Vec<u8>]>,
    ) -> rustix::io::Result<bool> {
        let cursor = cursor.unwrap_or_default();
        let level = ListLevel {
            names: read_names(dir)?,
            next: 0,
            rel_len: 0,
            raw_len: 0,
            cursor: (!cursor.is_empty()).then_some(0),
        };
        let mut stack = DirStack::new(dir.as_fd(), level);
        let mut cur = at.clone();
        let mut rel = String::new();
        let mut raw_path: Vec<u8> = Vec::new();
        while let Some(level) = stack.top() {
            if level.next >= level.names.len() {
                if let Some((_, level)) = stack.pop() {
                    cur = cur.parent().unwrap_or_else(VolumePath::root);
                    rel.truncate(level.rel_len);
                    raw_path.truncate(level.raw_len);
                }
                continue;
            }
            let (fd, level) = match stack.current() {
                Ok(c) => c,
                Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => {
                    if let Some((_, level)) = stack.pop() {
                        cur = cur.parent().unwrap_or_else(VolumePath::root);
                        rel.truncate(level.rel_len);
                        raw_path.truncate(level.raw_len);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (raw_name, kind) = &level.names[level.next];
            let kind = *kind;
            level.next += 1;
            let mut emit = true;
            let mut child_cursor = None;
            // Entries are sorted by raw bytes; compare raw bytes too.
            if let Some(k) = level.cursor {
                match raw_name.as_bytes().cmp(cursor[k].as_slice()) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => {
                        emit = false;
                        child_cursor = Some(k + 1).filter(|&c| c < cursor.len());
                    }
                    std::cmp::Ordering::Greater => {}
                }
                level.cursor = None;
            }
            let name = raw_name.to_string_lossy().into_owned();
            let path = cur.child(&name);
            let (rel_len, raw_len) = (rel.len(), raw_path.len());
            if !rel.is_empty() {
                rel.push('/');
                raw_path.push(b'/');
            }
            rel.push_str(&name);
            raw_path.extend_from_slice(raw_name.as_bytes());
            if emit && self.glob.is_none_or(|g| g.matches(&name, &rel)) {
                let stat = if self.details {
                    match rustix::fs::statat(fd, raw_name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => Some(file_stat(path.to_string(), &st)),
                        Err(Errno::NOENT) => {
                            rel.truncate(rel_len);
                            raw_path.truncate(raw_len);
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                } else {
                    None
                };
                // Not UTF-8 (sandbox code made it): the exact bytes go along, so that two
                // names that display alike (`a\xff`, `a\xfe`) stay two distinct entries.
                let path_base64 = std::str::from_utf8(&raw_path).is_err().then(|| {
                    use base64::Engine;
                    let mut full = at.as_str().as_bytes().to_vec();
                    if !at.is_root() {
                        full.push(b'/');
                    }
                    full.extend_from_slice(&raw_path);
                    base64::engine::general_purpose::STANDARD.encode(full)
                });
                let stat = stat.map(|st| FileStat {
                    path_base64: path_base64.clone(),
                    ..st
                });
                let file_type = match kind {
                    FileType::Directory => StatType::Dir,
                    FileType::Symlink => StatType::Symlink,
                    FileType::Fifo => StatType::Fifo,
                    FileType::Socket => StatType::Socket,
                    FileType::CharacterDevice | FileType::BlockDevice => StatType::Device,
                    _ => StatType::File,
                };
                self.out.push(ListEntry {
                    path: path.to_string(),
                    file_type,
                    stat,
                    path_base64,
                });
                self.raw.push(raw_path.clone());
                if self.out.len() > self.limit {
                    return Ok(true);
                }
            }
            if self.recursive && kind == FileType::Directory {
                match open_child_dir(fd, raw_name) {
                    Ok(child) => {
                        let name = raw_name.clone();
                        let level = ListLevel {
                            names: read_names(&child)?,
                            next: 0,
                            rel_len,
                            raw_len,
                            cursor: child_cursor,
                        };
                        stack.push(child, name, level);
                        cur = path;
                        continue;
                    }
                    Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => {}
                    Err(err) => return Err(err),
                }
            }
            rel.truncate(rel_len);
            raw_path.truncate(raw_len);
        }
        Ok(false)
    }
}
