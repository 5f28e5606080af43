//! Atomic writes: data is staged, synced, then published by one rename under the commit lock.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use nullspace_core::{FileStat, FileType as StatType, VolumePath};
use rustix::fs::{AtFlags, RenameFlags, Stat};

use super::{cname, etag_of, file_stat, io_at, is_dir, lstat_opt, VolumeHandle};
use crate::error::{FsError, FsResult};
use crate::events::ChangeKind;
use crate::staging::{start_writeback, TempKind, WRITEBACK_STEP};
use crate::walk::entry_usage;
use crate::Usage;

/// Conditions on a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Replace an existing file (default in the API); `false` gives `already_exists`.
    pub overwrite: bool,
    /// Only write if the current file's etag is this one, or if a file exists at all for
    /// `*` (`conflict` otherwise).
    pub if_match: Option<String>,
}

/// The `if_match` that any existing file matches (HTTP's `If-Match: *`).
const ANY_ETAG: &str = "*";

impl VolumeHandle {
    /// The most bytes a new file at `path` can hold under the cap: what is left, plus what the
    /// file it replaces gives back (an early bound; the commit checks again).
    fn room_for(&self, path: &VolumePath) -> u64 {
        let existing = self
            .stat(path)
            .ok()
            .filter(|s| s.file_type == StatType::File)
            .map_or(0, |s| s.size);
        self.shared
            .cap
            .saturating_sub(self.usage().used_bytes)
            .saturating_add(existing)
    }

    /// Starts an atomic write of `path`: data goes to a temporary file in staging, published by
    /// [`PendingWrite::commit`]. Dropping the `PendingWrite` removes the temporary file.
    pub fn begin_write(self: &Arc<Self>, path: &VolumePath) -> FsResult<PendingWrite> {
        self.beneath().reach(path)?;
        if path.is_root() {
            return Err(FsError::IsADirectory("/".into()));
        }
        // An early bound so that a stream that can never fit stops as soon as it passes it.
        let limit = self.room_for(path);
        let name = self.shared.staging.temp_name(TempKind::Write);
        let file = self
            .shared
            .staging
            .create_file(&name)
            .map_err(io_at(path.as_str()))?;
        Ok(PendingWrite {
            handle: self.clone(),
            file: BufWriter::with_capacity(1 << 20, file),
            name,
            path: path.clone(),
            written: 0,
            flushed: 0,
            limit,
            done: false,
        })
    }

    /// Publishes a staged entry `staged` (in staging) at `path`, under the commit lock:
    /// checks overwrite, if-match and the cap, renames; then, after the lock, fsyncs the
    /// directory together with concurrent writers (group commit, see `dir_sync`) before it
    /// returns.
    pub(crate) fn publish(
        &self,
        staged: &str,
        path: &VolumePath,
        adding: Usage,
        staged_dir: bool,
        opts: &WriteOptions,
    ) -> FsResult<FileStat> {
        let (dir, stat) = self.publish_unsynced(staged, path, adding, staged_dir, opts)?;
        self.shared
            .dir_sync
            .sync(dir)
            .map_err(io_at(path.as_str()))?;
        Ok(stat)
    }

    /// [`VolumeHandle::publish`] up to the rename: returns the directory to fsync.
    fn publish_unsynced(
        &self,
        staged: &str,
        path: &VolumePath,
        adding: Usage,
        staged_dir: bool,
        opts: &WriteOptions,
    ) -> FsResult<(OwnedFd, FileStat)> {
        let _change = self.shared.events.begin_change();
        let mut created = Vec::new();
        let (dir, name) = match self.beneath().parent(path, None) {
            Ok(found) => found,
            Err(FsError::NotFound(_)) => {
                // Nothing is at the target yet: refuse what can be refused before making parents,
                // so that a refused write leaves no directories behind.
                if opts.if_match.is_some() {
                    return Err(FsError::Conflict(format!(
                        "{path} does not exist, so it cannot match an etag"
                    )));
                }
                self.check_cap(&self.usage(), 0, adding.used_bytes)?;
                self.beneath().parent(path, Some(&mut created))?
            }
            Err(e) => return Err(e),
        };
        let mut usage = self.lock();
        self.created_dirs(&created);
        let old = lstat_opt(&dir, name, path.as_str())?;
        let mut freed = Usage::default();
        if let Some(old) = &old {
            if !opts.overwrite {
                return Err(FsError::AlreadyExists(path.to_string()));
            }
            if is_dir(old) != staged_dir {
                return Err(if is_dir(old) {
                    FsError::IsADirectory(path.to_string())
                } else {
                    FsError::NotADirectory(path.to_string())
                });
            }
            freed = entry_usage(&dir, &cname(name), old).map_err(io_at(path.as_str()))?;
        }
        if let Some(want) = &opts.if_match {
            let now = old.as_ref().filter(|s| !is_dir(s)).map(etag_of);
            // `*` (RFC 9110 §13.1.1): any current file matches.
            let matches = match now.as_deref() {
                Some(_) if want == ANY_ETAG => true,
                now => now == Some(want.as_str()),
            };
            if !matches {
                return Err(FsError::Conflict(format!(
                    "{path} changed since etag {want:?} was read (current etag: {})",
                    now.as_deref().unwrap_or("none, the file does not exist")
                )));
            }
        }
        self.check_cap(&usage, freed.used_bytes, adding.used_bytes)?;
        self.swap_in(staged, &dir, name, old.as_ref(), path)?;
        *usage -= freed;
        *usage += adding;
        let kind = if old.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Created
        };
        self.shared
            .events
            .publish(kind, path.as_str(), None, staged_dir);
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(path.as_str()))?;
        Ok((dir, file_stat(path.to_string(), &st)))
    }

    /// Moves `staged` over `dir/name`. A directory replacing a directory is swapped in
    /// atomically (RENAME_EXCHANGE) and the old tree removed afterwards.
    fn swap_in(
        &self,
        staged: &str,
        dir: &OwnedFd,
        name: &str,
        old: Option<&Stat>,
        path: &VolumePath,
    ) -> FsResult<()> {
        let err = io_at(path.as_str());
        match old {
            Some(old) if is_dir(old) => {
                rustix::fs::renameat_with(
                    self.shared.staging.fd(),
                    staged,
                    dir,
                    name,
                    RenameFlags::EXCHANGE,
                )
                .map_err(&err)?;
                // The old tree now sits at the staged name: remove it.
                self.shared.staging.discard(staged);
                Ok(())
            }
            Some(_) => {
                rustix::fs::renameat(self.shared.staging.fd(), staged, dir, name).map_err(err)
            }
            None => rustix::fs::renameat_with(
                self.shared.staging.fd(),
                staged,
                dir,
                name,
                RenameFlags::NOREPLACE,
            )
            .map_err(err),
        }
    }

    /// Writes a file atomically at `path` from what `produce` writes into staging (edit and
    /// replace stream their rewrite through it). Fails with `quota_exceeded` as soon as the file
    /// can no longer fit under the cap, before the rest is produced.
    pub(crate) fn write_with<T>(
        &self,
        path: &VolumePath,
        opts: &WriteOptions,
        produce: impl FnOnce(&mut dyn Write) -> FsResult<T>,
    ) -> FsResult<(FileStat, T)> {
        let limit = self.room_for(path);
        let staged = self.shared.staging.temp_name(TempKind::Write);
        let result = (|| {
            let f = self
                .shared
                .staging
                .create_file(&staged)
                .map_err(io_at(path.as_str()))?;
            let mut out = Capped {
                file: BufWriter::with_capacity(64 << 10, f),
                written: 0,
                limit,
                over: false,
            };
            let produced = produce(&mut out);
            if out.over {
                return Err(FsError::QuotaExceeded {
                    used: self.usage().used_bytes,
                    adding: out.written,
                    cap: self.shared.cap,
                });
            }
            let produced = produced?;
            out.file
                .flush()
                .and_then(|_| out.file.get_ref().sync_all())
                .map_err(|e| FsError::from_io(path.as_str(), e))?;
            let adding = Usage {
                used_bytes: out.written,
                file_count: 1,
            };
            let st = self.publish(&staged, path, adding, false, opts)?;
            Ok((st, produced))
        })();
        if result.is_err() {
            self.shared.staging.discard(&staged);
        }
        result
    }
}

/// A staging file that refuses bytes past `limit` (the room left under the cap).
struct Capped {
    file: BufWriter<File>,
    written: u64,
    limit: u64,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            self.over = true;
            self.written += buf.len() as u64;
            return Err(std::io::Error::other("the volume's cap is reached"));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// An atomic write in progress: bytes go to a temporary file in staging.
#[derive(Debug)]
pub struct PendingWrite {
    handle: Arc<VolumeHandle>,
    file: BufWriter<File>,
    name: String,
    path: VolumePath,
    written: u64,
    /// Bytes handed to the kernel's writeback so far (see `WRITEBACK_STEP`).
    flushed: u64,
    limit: u64,
    done: bool,
}

impl PendingWrite {
    /// Appends bytes; fails with `quota_exceeded` as soon as the file can no longer fit.
    pub fn write(&mut self, buf: &[u8]) -> FsResult<()> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            let used = self.handle.usage().used_bytes;
            return Err(FsError::QuotaExceeded {
                used,
                adding: self.written,
                cap: self.handle.shared.cap,
            });
        }
        self.file
            .write_all(buf)
            .map_err(|e| FsError::from_io(self.path.as_str(), e))?;
        if self.written - self.flushed >= WRITEBACK_STEP {
            self.file
                .flush()
                .map_err(|e| FsError::from_io(self.path.as_str(), e))?;
            start_writeback(
                self.file.get_ref(),
                self.flushed,
                self.written - self.flushed,
            );
            self.flushed = self.written;
        }
        Ok(())
    }

    /// Appends several buffers at once: large ones go to the file in one `writev` each
    /// round, not copied through the write buffer first (what a network body hands over).
    pub fn write_all_of(&mut self, bufs: &[&[u8]]) -> FsResult<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total < self.file.capacity() {
            for b in bufs {
                self.write(b)?;
            }
            return Ok(());
        }
        self.written += total as u64;
        if self.written > self.limit {
            let used = self.handle.usage().used_bytes;
            return Err(FsError::QuotaExceeded {
                used,
                adding: self.written,
                cap: self.handle.shared.cap,
            });
        }
        let io = |e| FsError::from_io(self.path.as_str(), e);
        self.file.flush().map_err(io)?;
        let mut slices: Vec<std::io::IoSlice<'_>> =
            bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            match self.file.get_mut().write_vectored(left) {
                Ok(0) => return Err(io(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => std::io::IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        if self.written - self.flushed >= WRITEBACK_STEP {
            start_writeback(
                self.file.get_ref(),
                self.flushed,
                self.written - self.flushed,
            );
            self.flushed = self.written;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Syncs the data, then publishes it at the target path (see [`WriteOptions`]).
    pub fn commit(mut self, opts: &WriteOptions) -> FsResult<FileStat> {
        let io = |e| FsError::from_io(self.path.as_str(), e);
        self.file.flush().map_err(io)?;
        self.file.get_ref().sync_all().map_err(io)?;
        let adding = Usage {
            used_bytes: self.written,
            file_count: 1,
        };
        let result = self
            .handle
            .publish(&self.name, &self.path, adding, false, opts);
        self.done = result.is_ok();
        result
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.done {
            self.handle.shared.staging.remove_file(&self.name);
        }
    }
}
