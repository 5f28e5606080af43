//! Batches: a tar stream of files and directories, staged whole, then published all or
//! nothing, across crashes too.
//!
//! The stream is unpacked into a tree in staging (`<entry>/tree`, laid out as it will be in
//! the volume), bounded by the cap as it arrives. A batch into a directory that does not exist
//! yet is published by ONE rename: its staged tree, wrapped in the missing parents, becomes
//! the first missing directory. A batch merged into an existing tree is published one rename
//! per file under a journal (see `journal`) that start-up rolls back after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nullspace_core::{FileType as StatType, VolumePath};
use rustix::fs::RenameFlags;

use super::{io_at, is_dir, lstat_opt, VolumeHandle};
use crate::error::{FsError, FsResult};
use crate::events::ChangeKind;
use crate::journal::{Journal, Place, Step};
use crate::staging::TempKind;
use crate::walk::stat_usage;
use crate::Usage;

/// Looks entries of the volume up one after another, reusing the fd of the last parent
/// directory (a tar's entries, and a sorted plan's, mostly share their parent with the
/// previous one), so that a batch of N files costs N `lstat`s, not N resolutions.
struct Lookup<'h> {
    handle: &'h VolumeHandle,
    /// The last parent, and its fd unless it does not exist (or is not a directory).
    parent: Option<(VolumePath, Option<std::os::fd::OwnedFd>)>,
}

impl<'h> Lookup<'h> {
    fn new(handle: &'h VolumeHandle) -> Lookup<'h> {
        Lookup {
            handle,
            parent: None,
        }
    }

    /// The entry at `target`, not followed; `None` when nothing is there.
    fn lstat(&mut self, target: &VolumePath) -> FsResult<Option<rustix::fs::Stat>> {
        let parent = target.parent().unwrap_or_else(VolumePath::root);
        if self.parent.as_ref().is_none_or(|(p, _)| *p != parent) {
            let fd = match self.handle.beneath().open_dir(&parent) {
                Ok(fd) => Some(fd),
                Err(FsError::NotFound(_) | FsError::NotADirectory(_)) => None,
                Err(e) => return Err(e),
            };
            self.parent = Some((parent, fd));
        }
        match self.parent.as_ref().and_then(|(_, fd)| fd.as_ref()) {
            Some(dir) => lstat_opt(dir, target.file_name().unwrap_or_default(), target.as_str()),
            None => Ok(None),
        }
    }
}

/// What a batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchResult {
    pub files: u64,
    pub bytes: u64,
}

/// A batch unpacked in staging: where each file and directory will go.
struct StagedBatch {
    /// Staged name of the batch's temporary entry (a directory in staging).
    entry: String,
    /// target -> size; a later tar entry for the same path replaced an earlier one.
    files: BTreeMap<VolumePath, u64>,
    /// Directories in the staged tree (targets), the destination included once anything is.
    dirs: BTreeSet<VolumePath>,
}

impl StagedBatch {
    /// The staged place of `target` relative to staging.
    fn staged(&self, dest: &VolumePath, target: &VolumePath) -> String {
        let rel = relative(dest, target);
        if rel.is_empty() {
            format!("{}/tree", self.entry)
        } else {
            format!("{}/tree/{rel}", self.entry)
        }
    }
}

/// `target` relative to `dest` (an ancestor or itself), without a leading slash.
fn relative(dest: &VolumePath, target: &VolumePath) -> String {
    let t = target.as_str();
    let rest = if dest.is_root() {
        t
    } else {
        &t[dest.as_str().len()..]
    };
    rest.trim_start_matches('/').to_owned()
}

fn mkdirs(p: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
}

impl VolumeHandle {
    /// Writes every regular file and directory of a tar stream below `dest`, all or nothing,
    /// across a crash too (see the module's doc). Staged bytes never pass what the cap leaves
    /// (after pending uploads' reservations).
    pub fn write_batch(&self, tar_stream: impl Read, dest: &VolumePath) -> FsResult<BatchResult> {
        self.beneath().reach(dest)?;
        let entry = self.shared.staging.temp_name(TempKind::Batch);
        let result = self
            .stage_batch(tar_stream, dest, &entry)
            .and_then(|staged| self.publish_batch(&staged, dest));
        self.shared.staging.discard(&entry);
        result
    }

    /// Unpacks the tar stream into `<entry>/tree` in staging and syncs it.
    fn stage_batch(
        &self,
        tar_stream: impl Read,
        dest: &VolumePath,
        entry: &str,
    ) -> FsResult<StagedBatch> {
        let fs_err = |p: &str, e: std::io::Error| FsError::from_io(p, e);
        let root: PathBuf = self.shared.staging.path().join(entry);
        std::fs::create_dir(&root).map_err(|e| fs_err(dest.as_str(), e))?;
        let tree = root.join("tree");
        let mut staged = StagedBatch {
            entry: entry.to_owned(),
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
        };
        // The room the cap leaves; files the batch replaces give theirs back.
        let used = self.usage().used_bytes;
        let pending = self.pending_upload_bytes();
        let mut room = self.shared.cap.saturating_sub(used).saturating_sub(pending);
        let mut total: u64 = 0;
        let quota = |total: u64| FsError::over_cap(used, pending, total, self.shared.cap);
        let conflict = |rel: &str| {
            FsError::Invalid(format!(
                "batch entry {rel:?} conflicts with another entry of the batch (a file and a \
                 directory at one path)"
            ))
        };
        let mut lookup = Lookup::new(self);
        let mut archive = tar::Archive::new(tar_stream);
        let entries = archive
            .entries()
            .map_err(|e| FsError::Invalid(format!("invalid tar stream: {e}")))?;
        for (n, e) in entries.enumerate() {
            let mut e = e.map_err(|e| FsError::Invalid(format!("invalid tar stream: {e}")))?;
            let raw = e.path_bytes().into_owned();
            let rel = std::str::from_utf8(&raw)
                .map_err(|_| FsError::Invalid(format!("batch entry {n}: path is not UTF-8")))?;
            let target = dest
                .join_relative(rel)
                .map_err(|e| FsError::Invalid(format!("batch entry {rel:?}: {}", e.message)))?;
            let kind = e.header().entry_type();
            let at = tree.join(relative(dest, &target));
            if kind.is_dir() {
                if staged.files.contains_key(&target) {
                    return Err(conflict(rel));
                }
                mkdirs(&at).map_err(|_| conflict(rel))?;
                let mut d = Some(target);
                while let Some(p) = d.filter(|p| p.starts_with(dest)) {
                    d = p.parent();
                    staged.dirs.insert(p);
                }
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
            if staged.dirs.contains(&target) {
                return Err(conflict(rel));
            }
            let parent = target.parent().unwrap_or_else(VolumePath::root);
            if !staged.dirs.contains(&parent) {
                mkdirs(at.parent().unwrap_or(&tree)).map_err(|_| conflict(rel))?;
                let mut d = Some(parent);
                while let Some(p) = d.filter(|p| p.starts_with(dest)) {
                    d = p.parent();
                    staged.dirs.insert(p);
                }
            }
            let replaced = match staged.files.remove(&target) {
                Some(size) => {
                    total -= size;
                    0
                }
                // What the volume holds there now goes when the batch lands.
                None => lookup
                    .lstat(&target)
                    .ok()
                    .flatten()
                    .map_or(0, |s| stat_usage(&s).used_bytes),
            };
            room = room.saturating_add(replaced);
            let mut f = File::create(&at).map_err(|e| fs_err(target.as_str(), e))?;
            // Never more than the room left (plus one byte, to see that it did not fit).
            let left = room.saturating_sub(total);
            let size = std::io::copy(&mut (&mut e).take(left.saturating_add(1)), &mut f)
                .map_err(|e| fs_err(target.as_str(), e))?;
            total += size;
            if size > left {
                let declared = e.header().size().unwrap_or(size);
                return Err(quota(total - size + declared.max(size)));
            }
            staged.files.insert(target, size);
        }
        self.shared.staging.sync().map_err(io_at(dest.as_str()))?;
        Ok(staged)
    }

    /// Publishes a staged batch under the commit lock: one rename into a new directory, or a
    /// journalled merge into an existing tree.
    fn publish_batch(&self, staged: &StagedBatch, dest: &VolumePath) -> FsResult<BatchResult> {
        let adding = Usage {
            used_bytes: staged.files.values().sum(),
            file_count: staged.files.len() as u64,
        };
        let result = BatchResult {
            files: adding.file_count,
            bytes: adding.used_bytes,
        };
        if staged.files.is_empty() && staged.dirs.is_empty() {
            return Ok(result);
        }
        let _change = self.shared.events.begin_change();
        let mut usage = self.lock();
        // The first directory on the way to dest that does not exist, if one does not.
        let mut missing = None;
        let mut at = Some(dest.clone());
        while let Some(p) = at {
            match self.stat(&p) {
                Ok(st) if st.file_type == StatType::Dir => break,
                Ok(_) => return Err(FsError::NotADirectory(p.to_string())),
                Err(FsError::NotFound(_)) => {
                    at = p.parent();
                    missing = Some(p);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(top) = missing {
            self.check_cap(&usage, 0, adding.used_bytes)?;
            self.publish_new_tree(staged, dest, &top)?;
            *usage += adding;
            let mut made: Vec<VolumePath> = Vec::new();
            let mut p = dest.parent();
            while let Some(d) = p.filter(|d| d.starts_with(&top)) {
                p = d.parent();
                made.push(d);
            }
            made.reverse();
            made.extend(staged.dirs.iter().cloned());
            self.created_dirs(&made);
            for target in staged.files.keys() {
                self.shared
                    .events
                    .publish(ChangeKind::Created, target.as_str(), None, false);
            }
            return Ok(result);
        }
        // A merge: plan every step, check it all, journal it, then take it.
        let mut steps = Vec::new();
        for d in &staged.dirs {
            match self.stat(d) {
                Ok(st) if st.file_type == StatType::Dir => {}
                Ok(_) => return Err(FsError::NotADirectory(d.to_string())),
                Err(FsError::NotFound(_)) => steps.push(Step::Mkdir(d.to_string())),
                Err(e) => return Err(e),
            }
        }
        let made: Vec<VolumePath> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Mkdir(d) => VolumePath::parse(d).ok(),
                Step::Rename { .. } => None,
            })
            .collect();
        let mut freed = Usage::default();
        let mut modified = BTreeSet::new();
        std::fs::create_dir(
            self.shared
                .staging
                .path()
                .join(&staged.entry)
                .join("backup"),
        )
        .map_err(|e| FsError::from_io(dest.as_str(), e))?;
        let mut lookup = Lookup::new(self);
        for (i, target) in staged.files.keys().enumerate() {
            match lookup.lstat(target)? {
                Some(st) if is_dir(&st) => return Err(FsError::IsADirectory(target.to_string())),
                Some(st) => {
                    freed += stat_usage(&st);
                    modified.insert(target);
                    steps.push(Step::Rename {
                        from: Place::Data(target.to_string()),
                        to: Place::Staging(format!("{}/backup/{i}", staged.entry)),
                    });
                }
                None => {}
            }
            steps.push(Step::Rename {
                from: Place::Staging(staged.staged(dest, target)),
                to: Place::Data(target.to_string()),
            });
        }
        self.check_cap(&usage, freed.used_bytes, adding.used_bytes)?;
        let journal = Journal::begin(&self.shared.staging, self.beneath(), &staged.entry, steps)?;
        match self.take_steps(journal.steps()) {
            Ok(()) => journal.commit()?,
            Err(e) => {
                journal.roll_back();
                return Err(e);
            }
        }
        *usage -= freed;
        *usage += adding;
        self.created_dirs(&made);
        for target in staged.files.keys() {
            let kind = if modified.contains(target) {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            self.shared
                .events
                .publish(kind, target.as_str(), None, false);
        }
        Ok(result)
    }

    /// Publishes the staged tree as `dest`, whose missing ancestor-or-self `top` is made by
    /// the same one rename (the tree is wrapped in the directories between).
    fn publish_new_tree(
        &self,
        staged: &StagedBatch,
        dest: &VolumePath,
        top: &VolumePath,
    ) -> FsResult<()> {
        let err = io_at(dest.as_str());
        let root = self.shared.staging.path().join(&staged.entry);
        std::fs::create_dir_all(root.join("tree"))
            .map_err(|e| FsError::from_io(dest.as_str(), e))?;
        let mut from = format!("{}/tree", staged.entry);
        if top != dest {
            // <entry>/wrap/<parents below top>/<dest's name> ← tree; then wrap is top.
            let inner = relative(top, dest);
            let wrapped = root.join("wrap").join(&inner);
            mkdirs(wrapped.parent().unwrap_or(&root))
                .map_err(|e| FsError::from_io(dest.as_str(), e))?;
            rustix::fs::rename(root.join("tree"), &wrapped).map_err(&err)?;
            from = format!("{}/wrap", staged.entry);
        }
        let (dir, name) = self.beneath().parent(top, None)?;
        rustix::fs::renameat_with(
            self.shared.staging.fd(),
            from.as_str(),
            &dir,
            name,
            RenameFlags::NOREPLACE,
        )
        .map_err(&err)?;
        rustix::fs::fsync(&dir).map_err(&err)
    }

    /// Takes the steps of a journal, in order, and makes them durable.
    fn take_steps(&self, steps: &[Step]) -> FsResult<()> {
        let mut parent_fd: Option<(VolumePath, std::os::fd::OwnedFd)> = None;
        for step in steps {
            match step {
                Step::Mkdir(d) => {
                    let d = VolumePath::parse(d).map_err(|e| FsError::Invalid(e.message))?;
                    let (dir, name) = self.beneath().parent(&d, None)?;
                    rustix::fs::mkdirat(&dir, name, rustix::fs::Mode::from_raw_mode(0o755))
                        .map_err(io_at(d.as_str()))?;
                }
                Step::Rename { from, to } => {
                    let (staged, data, into_data) = match (from, to) {
                        (Place::Staging(s), Place::Data(d)) => (s, d, true),
                        (Place::Data(d), Place::Staging(s)) => (s, d, false),
                        _ => return Err(FsError::Invalid("unexpected batch step".into())),
                    };
                    let target =
                        VolumePath::parse(data).map_err(|e| FsError::Invalid(e.message))?;
                    // Consecutive targets often share a parent (the plan is sorted).
                    let parent = target.parent().unwrap_or_else(VolumePath::root);
                    if parent_fd.as_ref().is_none_or(|(p, _)| *p != parent) {
                        let (dir, _) = self.beneath().parent(&target, None)?;
                        parent_fd = Some((parent, dir));
                    }
                    let dir = &parent_fd.as_ref().expect("set above").1;
                    let name = target.file_name().unwrap_or_default();
                    let err = io_at(target.as_str());
                    if into_data {
                        rustix::fs::renameat_with(
                            self.shared.staging.fd(),
                            staged.as_str(),
                            dir,
                            name,
                            RenameFlags::NOREPLACE,
                        )
                        .map_err(err)?;
                    } else {
                        rustix::fs::renameat(dir, name, self.shared.staging.fd(), staged.as_str())
                            .map_err(err)?;
                    }
                }
            }
        }
        rustix::fs::syncfs(self.beneath().root()).map_err(io_at("/"))
    }

    /// Rolls back every publish that a crashed or stopped server left journalled in staging
    /// (see `journal`); returns how many. Runs when a volume is opened, before it serves and
    /// before usage is measured.
    pub(crate) fn roll_back_interrupted(&self) -> usize {
        crate::journal::roll_back_all(&self.shared.staging, self.beneath())
    }
}
