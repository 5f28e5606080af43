//! The disk behind the API: what a directory tree holds, and test data.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One entry of a directory tree as found on disk (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskNode {
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    File {
        mode: u32,
        mtime: (i64, i64),
        content: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    Other {
        mode: u32,
    },
}

/// Every entry below `dir` (relative paths), with file contents; symlinks are not followed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, DiskNode> {
    let mut out = BTreeMap::new();
    snapshot_into(dir, dir, &mut out);
    out
}

fn snapshot_into(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, DiskNode>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(base).expect("below base").to_owned();
        let ft = md.file_type();
        let mtime = (md.mtime(), md.mtime_nsec());
        let mode = md.mode() & 0o7777;
        if ft.is_symlink() {
            out.insert(
                rel,
                DiskNode::Symlink {
                    target: std::fs::read_link(&p).unwrap_or_default(),
                },
            );
        } else if ft.is_dir() {
            out.insert(rel, DiskNode::Dir { mode, mtime });
            snapshot_into(base, &p, out);
        } else if ft.is_file() {
            out.insert(
                rel,
                DiskNode::File {
                    mode,
                    mtime,
                    content: std::fs::read(&p).unwrap_or_default(),
                },
            );
        } else {
            let _ = ft.is_fifo();
            out.insert(rel, DiskNode::Other { mode: md.mode() });
        }
    }
}

/// `(bytes, count)` of the regular files below `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in rd.flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if md.file_type().is_dir() {
            let (b, c) = disk_usage(&e.path());
            total.0 += b;
            total.1 += c;
        } else if md.file_type().is_file() {
            total.0 += md.len();
            total.1 += 1;
        }
    }
    total
}

/// The names in a directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    v.sort();
    v
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Deterministic pseudo-random bytes (xorshift64*), for large bodies that are cheap to rebuild.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
