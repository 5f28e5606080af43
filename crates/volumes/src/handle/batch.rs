//! Batches: a tar stream of files and directories, staged and synced whole, then published.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nullspace_core::VolumePath;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::{io_at, is_dir, lstat_opt, VolumeHandle};
use crate::error::{FsError, FsResult};
use crate::events::ChangeKind;
use crate::staging::TempKind;
use crate::walk::stat_usage;
use crate::Usage;

/// What a batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchResult {
    pub files: u64,
    pub bytes: u64,
}

impl VolumeHandle {
    /// Writes every regular file and directory of a tar stream below `dest`, all or nothing
    /// for every failure this process sees: everything is staged and synced first, then
    /// checked against the cap, then published one rename per file (undone on a failure). A
    /// crash in the middle of publishing can leave part of the batch published.
    pub fn write_batch(&self, tar_stream: impl Read, dest: &VolumePath) -> FsResult<BatchResult> {
        self.beneath().reach(dest)?;
        let staged_root = self.shared.staging.temp_name(TempKind::Batch);
        let result = self.write_batch_staged(tar_stream, dest, &staged_root);
        self.shared.staging.discard(&staged_root);
        result
    }

    fn write_batch_staged(
        &self,
        tar_stream: impl Read,
        dest: &VolumePath,
        staged_root: &str,
    ) -> FsResult<BatchResult> {
        let root = self.shared.staging.path().join(staged_root);
        fn fs_err(p: &str) -> impl Fn(std::io::Error) -> FsError + '_ {
            move |e| FsError::from_io(p, e)
        }
        std::fs::create_dir(&root).map_err(fs_err(dest.as_str()))?;
        // target path -> (staged file, size); a later entry for the same path wins.
        let mut files: BTreeMap<VolumePath, (PathBuf, u64)> = BTreeMap::new();
        let mut dirs: Vec<VolumePath> = Vec::new();
        let mut total: u64 = 0;
        let mut archive = tar::Archive::new(tar_stream);
        let entries = archive
            .entries()
            .map_err(|e| FsError::Invalid(format!("invalid tar stream: {e}")))?;
        for (n, entry) in entries.enumerate() {
            let mut entry =
                entry.map_err(|e| FsError::Invalid(format!("invalid tar stream: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let rel = std::str::from_utf8(&raw)
                .map_err(|_| FsError::Invalid(format!("batch entry {n}: path is not UTF-8")))?;
            let target = dest
                .join_relative(rel)
                .map_err(|e| FsError::Invalid(format!("batch entry {rel:?}: {}", e.message)))?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                dirs.push(target);
                continue;
            }
            if !(kind.is_file() || kind == tar::EntryType::Continuous) {
                return Err(FsError::Invalid(format!(
                    "batch entry {rel:?}: only regular files and directories are allowed"
                )));
            }
            if target == *dest {
                return Err(FsError::Invalid(format!(
                    "batch entry {rel:?} names the destination directory"
                )));
            }
            let staged = root.join(format!("{n}"));
            let mut f = File::options()
                .write(true)
                .create_new(true)
                .open(&staged)
                .map_err(fs_err(target.as_str()))?;
            let size = std::io::copy(&mut entry, &mut f).map_err(fs_err(target.as_str()))?;
            total += size;
            if total > self.shared.cap {
                return Err(FsError::QuotaExceeded {
                    used: self.usage().used_bytes,
                    adding: total,
                    cap: self.shared.cap,
                });
            }
            if let Some((old, old_size)) = files.insert(target, (staged, size)) {
                total -= old_size;
                let _ = std::fs::remove_file(old);
            }
        }
        self.shared.staging.sync().map_err(io_at(dest.as_str()))?;

        let mut usage = self.lock();
        // Check everything before changing anything.
        let mut freed = Usage::default();
        let mut adding = Usage::default();
        for (target, (_, size)) in &files {
            adding += Usage {
                used_bytes: *size,
                file_count: 1,
            };
            let parent_ok = match self.beneath().parent(target, None) {
                Ok((dir, name)) => lstat_opt(&dir, name, target.as_str())?,
                Err(FsError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            if let Some(old) = parent_ok {
                if is_dir(&old) {
                    return Err(FsError::IsADirectory(target.to_string()));
                }
                freed += stat_usage(&old);
            }
        }
        self.check_cap(&usage, freed.used_bytes, adding.used_bytes)?;
        let _change = self.shared.events.begin_change();
        let mut created = Vec::new();
        for d in &dirs {
            self.beneath().ensure_dir(d, &mut created)?;
        }
        // Publish; on failure put back what was replaced.
        let backup = root.join("backup");
        std::fs::create_dir(&backup).map_err(fs_err(dest.as_str()))?;
        let backup_fd = rustix::fs::open(
            &backup,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at(dest.as_str()))?;
        // Published targets and the backup name of what each replaced. Directory fds are not
        // kept per file (a batch can hold more files than the process may open); the parent
        // of consecutive targets, which the sorted map makes common, is reused.
        let mut done: Vec<(&VolumePath, Option<String>)> = Vec::new();
        let mut parent_fd: Option<(VolumePath, OwnedFd)> = None;
        let mut failure = None;
        for (i, (target, (staged, _))) in files.iter().enumerate() {
            let step = (|| -> FsResult<Option<String>> {
                let parent = target.parent().unwrap_or_else(VolumePath::root);
                if parent_fd.as_ref().is_none_or(|(p, _)| *p != parent) {
                    let (dir, _) = self.beneath().parent(target, Some(&mut created))?;
                    parent_fd = Some((parent, dir));
                }
                let dir = &parent_fd.as_ref().expect("set above").1;
                let name = target.file_name().unwrap_or_default();
                let err = io_at(target.as_str());
                let saved = match lstat_opt(dir, name, target.as_str())? {
                    Some(_) => {
                        let b = format!("{i}");
                        rustix::fs::renameat(dir, name, &backup_fd, b.as_str()).map_err(&err)?;
                        Some(b)
                    }
                    None => None,
                };
                let staged_rel = staged
                    .strip_prefix(self.shared.staging.path())
                    .unwrap_or(staged);
                if let Err(e) =
                    rustix::fs::renameat(self.shared.staging.fd(), staged_rel, dir, name)
                {
                    if let Some(b) = &saved {
                        let _ = rustix::fs::renameat(&backup_fd, b.as_str(), dir, name);
                    }
                    return Err(err(e));
                }
                Ok(saved)
            })();
            match step {
                Ok(saved) => done.push((target, saved)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (target, saved) in done.into_iter().rev() {
                if let Ok((dir, name)) = self.beneath().parent(target, None) {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
                    if let Some(b) = saved {
                        let _ = rustix::fs::renameat(&backup_fd, b.as_str(), &dir, name);
                    }
                }
            }
            return Err(e);
        }
        rustix::fs::syncfs(self.beneath().root()).map_err(io_at(dest.as_str()))?;
        *usage -= freed;
        *usage += adding;
        self.created_dirs(&created);
        for (target, saved) in &done {
            let kind = if saved.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            self.shared
                .events
                .publish(kind, target.as_str(), None, false);
        }
        Ok(BatchResult {
            files: adding.file_count,
            bytes: adding.used_bytes,
        })
    }
}
