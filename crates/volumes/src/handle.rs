//! Operations on one open volume.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nullspace_core::{FileStat, FileType as StatType, VolumePath};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::error::{FsError, FsResult};
use crate::events::{ChangeKind, ChangeSink, EventLog};
use crate::instance::ServerInstance;
use crate::resolve::Beneath;
use crate::shared_usage::{CommitGuard, SharedUsage};
use crate::walk::{
    copy_entry, entry_usage, open_child_dir, read_entries, read_names, stat_usage, tree_usage,
};
use crate::Usage;

/// Conditions on a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Replace an existing file (default in the API); `false` gives `already_exists`.
    pub overwrite: bool,
    /// Only write if the current file's etag is this one (`conflict` otherwise).
    pub if_match: Option<String>,
}

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
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    pub next_cursor: Option<String>,
}

/// What a batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchResult {
    pub files: u64,
    pub bytes: u64,
}

/// One open volume: its confined root, its staging directory, its cap and usage.
#[derive(Debug)]
pub struct VolumeHandle {
    id: String,
    beneath: Beneath,
    staging: OwnedFd,
    staging_path: PathBuf,
    cap: u64,
    /// Current usage, shared with the other servers on the data root; its lock is what
    /// serialises commits to the volume, in this process and across processes.
    usage: SharedUsage,
    /// When usage was last measured from disk (see [`VolumeHandle::remeasure`]).
    measured_at: Mutex<Instant>,
    /// Whose temporary files are whose in staging.
    owner: Arc<ServerInstance>,
    events: Arc<EventLog>,
    /// Feeds `events` with changes made by sandbox code (inotify), while the volume is watched.
    fs_source: crate::fswatch::FsSource,
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

fn io_at(path: &str) -> impl Fn(Errno) -> FsError + '_ {
    move |e| FsError::from_errno(path, e)
}

/// The etag of an entry: a digest of identity and change times. Every API write makes a new
/// inode; in-place writes (from sandboxes) change size, mtime and ctime.
pub(crate) fn etag_of(st: &Stat) -> String {
    let mut h = Sha256::new();
    h.update(
        format!(
            "{}:{}:{}:{}.{}:{}.{}",
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime,
            st.st_mtime_nsec,
            st.st_ctime,
            st.st_ctime_nsec
        )
        .as_bytes(),
    );
    hex::encode(&h.finalize()[..16])
}

fn file_stat(path: String, st: &Stat) -> FileStat {
    let file_type = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => StatType::Dir,
        FileType::Symlink => StatType::Symlink,
        _ => StatType::File,
    };
    FileStat {
        path,
        file_type,
        size: st.st_size.max(0) as u64,
        mode: st.st_mode & 0o7777,
        mtime: DateTime::<Utc>::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
            .unwrap_or_default(),
        etag: etag_of(st),
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn cname(name: &str) -> CString {
    // Names come from VolumePath, which refuses NUL bytes.
    CString::new(name).unwrap_or_default()
}

fn lstat_opt(dir: impl AsFd, name: &str, path: &str) -> FsResult<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(FsError::from_errno(path, e)),
    }
}

impl VolumeHandle {
    /// Opens the volume rooted at `root` (with `data/` and `staging/`): removes leftovers of
    /// crashed servers from staging and measures usage into the shared `usage_file`. Local
    /// change events go to `sink` too, when given.
    pub(crate) fn open(
        id: &str,
        root: &Path,
        cap: u64,
        usage_file: &Path,
        owner: Arc<ServerInstance>,
        sink: Option<ChangeSink>,
    ) -> FsResult<VolumeHandle> {
        let open_dir = |p: &Path| -> FsResult<OwnedFd> {
            rustix::fs::open(
                p,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_at(&p.display().to_string()))
        };
        let data = open_dir(&root.join("data"))?;
        let staging_path = root.join("staging");
        let staging = open_dir(&staging_path)?;
        let usage = SharedUsage::open(usage_file)
            .map_err(|e| FsError::from_io(&usage_file.display().to_string(), e))?;
        let handle = VolumeHandle {
            id: id.to_owned(),
            beneath: Beneath::new(data),
            staging,
            staging_path,
            cap,
            usage,
            measured_at: Mutex::new(Instant::now()),
            owner: owner.clone(),
            events: Arc::new(match sink {
                Some(sink) => EventLog::forwarding(id, sink, owner.clone()),
                None => EventLog::new(),
            }),
            fs_source: crate::fswatch::FsSource::new(root.join("data")),
        };
        handle.clean_staging();
        // Measured under the commit lock, so that no server commits to the volume meanwhile.
        let mut usage = handle.lock();
        usage.set_measured(tree_usage(handle.beneath.root()).map_err(io_at("/"))?);
        drop(usage);
        Ok(handle)
    }

    /// Removes from staging what no running server uses: temporary files of servers that
    /// stopped or crashed (see [`ServerInstance`]). Resumable uploads are kept (they expire on
    /// their own). Returns how many entries went.
    pub fn clean_staging(&self) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.staging_path) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name == crate::uploads::UPLOADS_DIR || !self.owner.is_leftover(&name) {
                continue;
            }
            let p = e.path();
            let gone = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed += usize::from(gone.is_ok());
        }
        removed
    }

    fn temp_name(&self, prefix: &str) -> String {
        self.owner.temp_name(prefix)
    }

    /// The volume's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The volume's cap in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The volume's change events.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Subscribes to the volume's changes, made through the API or by sandbox code in a mount
    /// (the file-system source runs while the subscription lives, and a while after).
    pub fn watch(&self, last_event_id: Option<u64>) -> FsResult<crate::events::Subscription> {
        let attached = self.fs_source.attach(&self.events)?;
        let mut sub = self.events.subscribe(last_event_id);
        sub.source = Some(attached);
        Ok(sub)
    }

    /// Stops the file-system source (the server stops or the volume is deleted).
    pub fn stop_watching(&self) {
        self.fs_source.stop();
    }

    /// Whether the file-system source runs.
    pub fn fs_source_running(&self) -> bool {
        self.fs_source.running()
    }

    pub(crate) fn staging_path(&self) -> &Path {
        &self.staging_path
    }

    pub(crate) fn beneath(&self) -> &Beneath {
        &self.beneath
    }

    fn created_dirs(&self, dirs: &[VolumePath]) {
        for d in dirs {
            self.events
                .publish(ChangeKind::Created, d.as_str(), None, true);
        }
    }

    /// Current usage (as of the last commit through any server).
    pub fn usage(&self) -> Usage {
        self.usage.current()
    }

    /// Measures usage from disk again, under the commit lock, and keeps it: sandbox code
    /// writes to a mounted volume behind the data plane's back. Afterwards the cap check of
    /// the next write uses the new figure.
    pub fn remeasure(&self) -> FsResult<Usage> {
        let mut usage = self.lock();
        let fresh = tree_usage(self.beneath.root()).map_err(io_at("/"))?;
        usage.set_measured(fresh);
        *self.measured_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(fresh)
    }

    /// [`VolumeHandle::remeasure`] unless usage was measured less than `max_age` ago.
    pub fn remeasure_if_older(&self, max_age: Duration) -> FsResult<Usage> {
        let at = *self.measured_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.elapsed() < max_age {
            return Ok(self.usage());
        }
        self.remeasure()
    }

    /// Enters the volume's commit critical section (see `shared_usage`).
    fn lock(&self) -> CommitGuard<'_> {
        self.usage.lock()
    }

    pub(crate) fn check_cap(&self, usage: &Usage, freed: u64, adding: u64) -> FsResult<()> {
        let after = usage
            .used_bytes
            .saturating_sub(freed)
            .saturating_add(adding);
        if after > self.cap {
            return Err(FsError::QuotaExceeded {
                used: usage.used_bytes,
                adding,
                cap: self.cap,
            });
        }
        Ok(())
    }

    /// `stat` without following a final symlink.
    pub fn stat(&self, path: &VolumePath) -> FsResult<FileStat> {
        if path.is_root() {
            let st = rustix::fs::fstat(self.beneath.root()).map_err(io_at("/"))?;
            return Ok(file_stat("/".into(), &st));
        }
        let (dir, name) = self.beneath.parent(path, None)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(path.as_str()))?;
        Ok(file_stat(path.to_string(), &st))
    }

    /// Whether the path names an entry (a dangling symlink counts).
    pub fn exists(&self, path: &VolumePath) -> FsResult<bool> {
        match self.stat(path) {
            Ok(_) => Ok(true),
            Err(FsError::NotFound(_) | FsError::NotADirectory(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens a regular file for reading (symlinks followed, within the volume).
    pub fn open_read(&self, path: &VolumePath) -> FsResult<(File, FileStat)> {
        // O_NONBLOCK so that a FIFO planted by sandbox code cannot hang the request.
        let fd = self
            .beneath
            .open(path, OFlags::RDONLY | OFlags::NONBLOCK, true)?;
        let st = rustix::fs::fstat(&fd).map_err(io_at(path.as_str()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(FsError::IsADirectory(path.to_string())),
            _ => return Err(FsError::NotAFile(path.to_string())),
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(io_at(path.as_str()))?;
        Ok((File::from(fd), file_stat(path.to_string(), &st)))
    }

    /// Starts an atomic write of `path`: data goes to a temporary file in staging, published by
    /// [`PendingWrite::commit`]. Dropping the `PendingWrite` removes the temporary file.
    pub fn begin_write(self: &Arc<Self>, path: &VolumePath) -> FsResult<PendingWrite> {
        if path.is_root() {
            return Err(FsError::IsADirectory("/".into()));
        }
        // An early bound so that a stream that can never fit stops as soon as it passes it.
        let existing = self
            .stat(path)
            .ok()
            .filter(|s| s.file_type == StatType::File)
            .map_or(0, |s| s.size);
        let limit = self
            .cap
            .saturating_sub(self.usage().used_bytes)
            .saturating_add(existing);
        let name = self.temp_name("w");
        let fd = rustix::fs::openat(
            &self.staging,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(io_at(path.as_str()))?;
        Ok(PendingWrite {
            handle: self.clone(),
            file: BufWriter::with_capacity(1 << 20, File::from(fd)),
            name,
            path: path.clone(),
            written: 0,
            flushed: 0,
            limit,
            done: false,
        })
    }

    /// Publishes a staged entry `staged` (in staging) at `path`, under the commit lock:
    /// checks overwrite, if-match and the cap, renames, fsyncs the directory.
    pub(crate) fn publish(
        &self,
        staged: &str,
        path: &VolumePath,
        adding: Usage,
        staged_dir: bool,
        opts: &WriteOptions,
    ) -> FsResult<FileStat> {
        let _change = self.events.begin_change();
        let mut created = Vec::new();
        let (dir, name) = match self.beneath.parent(path, None) {
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
                self.beneath.parent(path, Some(&mut created))?
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
            if now.as_deref() != Some(want.as_str()) {
                return Err(FsError::Conflict(format!(
                    "{path} changed since etag {want:?} was read (current etag: {})",
                    now.as_deref().unwrap_or("none, the file does not exist")
                )));
            }
        }
        self.check_cap(&usage, freed.used_bytes, adding.used_bytes)?;
        self.swap_in(staged, &dir, name, old.as_ref(), path)?;
        rustix::fs::fsync(&dir).map_err(io_at(path.as_str()))?;
        *usage -= freed;
        *usage += adding;
        let kind = if old.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Created
        };
        self.events.publish(kind, path.as_str(), None, staged_dir);
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(path.as_str()))?;
        Ok(file_stat(path.to_string(), &st))
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
                rustix::fs::renameat_with(&self.staging, staged, dir, name, RenameFlags::EXCHANGE)
                    .map_err(&err)?;
                // The old tree now sits at the staged name: remove it.
                let _ = std::fs::remove_dir_all(self.staging_path.join(staged));
                Ok(())
            }
            Some(_) => rustix::fs::renameat(&self.staging, staged, dir, name).map_err(err),
            None => {
                rustix::fs::renameat_with(&self.staging, staged, dir, name, RenameFlags::NOREPLACE)
                    .map_err(err)
            }
        }
    }

    /// Writes a whole buffer atomically at `path` (used by edit and replace).
    pub(crate) fn write_bytes(
        &self,
        path: &VolumePath,
        data: &[u8],
        opts: &WriteOptions,
    ) -> FsResult<FileStat> {
        let staged = self.temp_name("w");
        let result = (|| {
            let fd = rustix::fs::openat(
                &self.staging,
                staged.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(io_at(path.as_str()))?;
            let mut f = File::from(fd);
            f.write_all(data)
                .and_then(|_| f.sync_all())
                .map_err(|e| FsError::from_io(path.as_str(), e))?;
            self.publish(
                &staged,
                path,
                Usage {
                    used_bytes: data.len() as u64,
                    file_count: 1,
                },
                false,
                opts,
            )
        })();
        if result.is_err() {
            self.discard_staged(&staged);
        }
        result
    }

    pub(crate) fn discard_staged(&self, staged: &str) {
        let p = self.staging_path.join(staged);
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }

    /// Makes a directory (`parents`: also its parents, and an existing directory is fine).
    pub fn mkdir(&self, path: &VolumePath, parents: bool) -> FsResult<FileStat> {
        let _change = self.events.begin_change();
        if parents {
            if let Ok(st) = self.stat(path) {
                if st.file_type != StatType::Dir {
                    return Err(FsError::AlreadyExists(path.to_string()));
                }
            }
            let mut created = Vec::new();
            let fd = self.beneath.ensure_dir(path, &mut created)?;
            rustix::fs::fsync(&fd).map_err(io_at(path.as_str()))?;
            self.created_dirs(&created);
        } else {
            if path.is_root() {
                return Err(FsError::AlreadyExists("/".into()));
            }
            let (dir, name) = self.beneath.parent(path, None)?;
            rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
                .map_err(io_at(path.as_str()))?;
            rustix::fs::fsync(&dir).map_err(io_at(path.as_str()))?;
            self.events
                .publish(ChangeKind::Created, path.as_str(), None, true);
        }
        self.stat(path)
    }

    /// Moves or renames `src` to `dst`.
    pub fn rename(
        &self,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
    ) -> FsResult<FileStat> {
        if src.is_root() || dst.is_root() {
            return Err(FsError::Invalid(
                "the volume root cannot be moved or replaced".into(),
            ));
        }
        if dst.starts_with(src) && dst != src {
            return Err(FsError::Invalid(format!(
                "cannot move {src} into itself ({dst})"
            )));
        }
        let (sdir, sname) = self.beneath.parent(src, None)?;
        let sst = rustix::fs::statat(&sdir, sname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(src.as_str()))?;
        if src == dst {
            return Ok(file_stat(dst.to_string(), &sst));
        }
        let _change = self.events.begin_change();
        let mut created = Vec::new();
        let (ddir, dname) = self.beneath.parent(dst, Some(&mut created))?;
        let mut usage = self.lock();
        self.created_dirs(&created);
        let old = lstat_opt(&ddir, dname, dst.as_str())?;
        let mut freed = Usage::default();
        let err = io_at(dst.as_str());
        match &old {
            None => {
                rustix::fs::renameat_with(&sdir, sname, &ddir, dname, RenameFlags::NOREPLACE)
                    .map_err(&err)?;
            }
            Some(_) if !overwrite => return Err(FsError::AlreadyExists(dst.to_string())),
            Some(o) if is_dir(o) && !is_dir(&sst) => {
                return Err(FsError::IsADirectory(dst.to_string()))
            }
            Some(o) if !is_dir(o) && is_dir(&sst) => {
                return Err(FsError::NotADirectory(dst.to_string()))
            }
            Some(_) if src.starts_with(dst) => {
                return Err(FsError::Invalid(format!(
                    "cannot move {src} onto its own ancestor {dst}"
                )))
            }
            Some(o) => {
                freed = entry_usage(&ddir, &cname(dname), o).map_err(&err)?;
                if is_dir(o) {
                    rustix::fs::renameat_with(&sdir, sname, &ddir, dname, RenameFlags::EXCHANGE)
                        .map_err(&err)?;
                    let trash = self.temp_name("t");
                    rustix::fs::renameat(&sdir, sname, &self.staging, trash.as_str())
                        .map_err(&err)?;
                    self.discard_staged(&trash);
                } else {
                    rustix::fs::renameat(&sdir, sname, &ddir, dname).map_err(&err)?;
                }
            }
        }
        rustix::fs::fsync(&ddir).map_err(&err)?;
        rustix::fs::fsync(&sdir).map_err(&err)?;
        *usage -= freed;
        self.events.publish(
            ChangeKind::Moved,
            dst.as_str(),
            Some(src.as_str()),
            is_dir(&sst),
        );
        drop(usage);
        let st = rustix::fs::statat(&ddir, dname, AtFlags::SYMLINK_NOFOLLOW).map_err(&err)?;
        Ok(file_stat(dst.to_string(), &st))
    }

    /// Copies `src` to `dst` (a directory only with `recursive`; symlinks are copied as links).
    /// The copy is built in staging and published in one rename.
    pub fn copy(
        &self,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
        recursive: bool,
    ) -> FsResult<FileStat> {
        if src.is_root() || dst.is_root() {
            return Err(FsError::Invalid(
                "the volume root cannot be copied or replaced".into(),
            ));
        }
        if dst.starts_with(src) {
            return Err(FsError::Invalid(format!(
                "cannot copy {src} into itself ({dst})"
            )));
        }
        let (sdir, sname) = self.beneath.parent(src, None)?;
        let sst = rustix::fs::statat(&sdir, sname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(src.as_str()))?;
        if is_dir(&sst) && !recursive {
            return Err(FsError::Invalid(format!(
                "{src} is a directory: copy it recursively"
            )));
        }
        let size = entry_usage(&sdir, &cname(sname), &sst).map_err(io_at(src.as_str()))?;
        self.check_cap(&self.usage(), 0, size.used_bytes)?;
        let staged = self.temp_name("c");
        let result = (|| {
            let copied = copy_entry(&sdir, &cname(sname), &self.staging, &cname(&staged))
                .map_err(io_at(src.as_str()))?;
            rustix::fs::syncfs(&self.staging).map_err(io_at(dst.as_str()))?;
            let opts = WriteOptions {
                overwrite,
                if_match: None,
            };
            self.publish(&staged, dst, copied, is_dir(&sst), &opts)
        })();
        if result.is_err() {
            self.discard_staged(&staged);
        }
        result
    }

    /// Removes a file, symlink or empty directory; with `recursive`, a whole tree (moved out of
    /// sight in one rename, then deleted). `/` with `recursive` empties the volume.
    pub fn remove(&self, path: &VolumePath, recursive: bool) -> FsResult<()> {
        if path.is_root() {
            if !recursive {
                return Err(FsError::Invalid(
                    "the volume root cannot be removed (empty it recursively)".into(),
                ));
            }
            // By raw names, relative to the root fd: names need not be UTF-8.
            let root = self.beneath.open_dir(path)?;
            for e in read_entries(&root).map_err(io_at("/"))? {
                let shown = VolumePath::root().child(&e.name_lossy());
                self.remove_at(&root, &e.name, shown.as_str(), true)?;
            }
            return Ok(());
        }
        let (dir, name) = self.beneath.parent(path, None)?;
        self.remove_at(&dir, &cname(name), path.as_str(), recursive)
    }

    /// Removes the entry `name` of `dir`; `shown` is its path for errors and events.
    fn remove_at(
        &self,
        dir: &OwnedFd,
        name: &std::ffi::CStr,
        shown: &str,
        recursive: bool,
    ) -> FsResult<()> {
        let err = io_at(shown);
        let _change = self.events.begin_change();
        let mut usage = self.lock();
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(&err)?;
        if !is_dir(&st) {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(&err)?;
            rustix::fs::fsync(dir).map_err(&err)?;
            *usage -= stat_usage(&st);
            self.events.publish(ChangeKind::Deleted, shown, None, false);
            return Ok(());
        }
        if !recursive {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(&err)?;
            rustix::fs::fsync(dir).map_err(&err)?;
            self.events.publish(ChangeKind::Deleted, shown, None, true);
            return Ok(());
        }
        let freed = entry_usage(dir, name, &st).map_err(&err)?;
        let trash = self.temp_name("t");
        rustix::fs::renameat(dir, name, &self.staging, trash.as_str()).map_err(&err)?;
        rustix::fs::fsync(dir).map_err(&err)?;
        *usage -= freed;
        self.events.publish(ChangeKind::Deleted, shown, None, true);
        drop(usage);
        self.discard_staged(&trash);
        Ok(())
    }

    /// Lists a directory (or the one entry a file path names), sorted depth-first by name.
    pub fn list(&self, path: &VolumePath, opts: &ListOptions) -> FsResult<ListPage> {
        let glob = NameGlob::compile(opts.glob.as_deref())?;
        let top = self.stat(path)?;
        if top.file_type != StatType::Dir {
            let entry = ListEntry {
                path: top.path.clone(),
                file_type: top.file_type,
                stat: Some(top),
            };
            return Ok(ListPage {
                entries: vec![entry],
                next_cursor: None,
            });
        }
        let dir = self
            .beneath
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
        walk.dir(&dir, path, "", b"", cursor.as_deref())
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

    /// Writes every regular file and directory of a tar stream below `dest`, all or nothing:
    /// everything is staged and synced first, then checked against the cap, then published.
    pub fn write_batch(&self, tar_stream: impl Read, dest: &VolumePath) -> FsResult<BatchResult> {
        let staged_root = self.temp_name("b");
        let result = self.write_batch_staged(tar_stream, dest, &staged_root);
        self.discard_staged(&staged_root);
        result
    }

    fn write_batch_staged(
        &self,
        tar_stream: impl Read,
        dest: &VolumePath,
        staged_root: &str,
    ) -> FsResult<BatchResult> {
        let root = self.staging_path.join(staged_root);
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
            if total > self.cap {
                return Err(FsError::QuotaExceeded {
                    used: self.usage().used_bytes,
                    adding: total,
                    cap: self.cap,
                });
            }
            if let Some((old, old_size)) = files.insert(target, (staged, size)) {
                total -= old_size;
                let _ = std::fs::remove_file(old);
            }
        }
        rustix::fs::syncfs(&self.staging).map_err(io_at(dest.as_str()))?;

        let mut usage = self.lock();
        // Check everything before changing anything.
        let mut freed = Usage::default();
        let mut adding = Usage::default();
        for (target, (_, size)) in &files {
            adding += Usage {
                used_bytes: *size,
                file_count: 1,
            };
            let parent_ok = match self.beneath.parent(target, None) {
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
        let _change = self.events.begin_change();
        let mut created = Vec::new();
        for d in &dirs {
            self.beneath.ensure_dir(d, &mut created)?;
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
                    let (dir, _) = self.beneath.parent(target, Some(&mut created))?;
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
                let staged_rel = staged.strip_prefix(&self.staging_path).unwrap_or(staged);
                if let Err(e) = rustix::fs::renameat(&self.staging, staged_rel, dir, name) {
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
                if let Ok((dir, name)) = self.beneath.parent(target, None) {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
                    if let Some(b) = saved {
                        let _ = rustix::fs::renameat(&backup_fd, b.as_str(), &dir, name);
                    }
                }
            }
            return Err(e);
        }
        rustix::fs::syncfs(self.beneath.root()).map_err(io_at(dest.as_str()))?;
        *usage -= freed;
        *usage += adding;
        self.created_dirs(&created);
        for (target, saved) in &done {
            let kind = if saved.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Created
            };
            self.events.publish(kind, target.as_str(), None, false);
        }
        Ok(BatchResult {
            files: adding.file_count,
            bytes: adding.used_bytes,
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

impl ListWalk<'_> {
    /// Walks `dir` (at volume path `at`, `rel` below the listed directory). `cursor` holds the
    /// remaining names of the previous page's last path: everything up to it is skipped.
    /// Returns `true` once more than `limit` entries are collected.
    fn dir(
        &mut self,
        dir: &OwnedFd,
        at: &VolumePath,
        rel: &str,
        raw_rel: &[u8],
        cursor: Option<&[Vec<u8>]>,
    ) -> rustix::io::Result<bool> {
        let mut cursor = cursor.filter(|c| !c.is_empty());
        for (raw_name, kind) in read_names(dir)? {
            let name = raw_name.to_string_lossy().into_owned();
            let mut emit = true;
            let mut child_cursor = None;
            // Entries are sorted by raw bytes; compare raw bytes too.
            if let Some(c) = cursor {
                match raw_name.as_bytes().cmp(c[0].as_slice()) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => {
                        emit = false;
                        child_cursor = Some(&c[1..]);
                    }
                    std::cmp::Ordering::Greater => {}
                }
                cursor = None;
            }
            let path = at.child(&name);
            let rel_path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let mut raw_path = raw_rel.to_vec();
            if !raw_path.is_empty() {
                raw_path.push(b'/');
            }
            raw_path.extend_from_slice(raw_name.as_bytes());
            if emit {
                let matches = self.glob.is_none_or(|g| g.matches(&name, &rel_path));
                if matches {
                    let stat = if self.details {
                        match rustix::fs::statat(dir, &raw_name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => Some(file_stat(path.to_string(), &st)),
                            Err(Errno::NOENT) => continue,
                            Err(err) => return Err(err),
                        }
                    } else {
                        None
                    };
                    let file_type = match kind {
                        FileType::Directory => StatType::Dir,
                        FileType::Symlink => StatType::Symlink,
                        _ => StatType::File,
                    };
                    self.out.push(ListEntry {
                        path: path.to_string(),
                        file_type,
                        stat,
                    });
                    self.raw.push(raw_path.clone());
                    if self.out.len() > self.limit {
                        return Ok(true);
                    }
                }
            }
            if self.recursive && kind == FileType::Directory {
                let child = match open_child_dir(dir, &raw_name) {
                    Ok(c) => c,
                    Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
                    Err(err) => return Err(err),
                };
                if self.dir(&child, &path, &rel_path, &raw_path, child_cursor)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
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

/// Every this many bytes, a write asks the kernel to start writing its data back
/// (`sync_file_range`, no waiting), so that the final `fsync` finds little left to do and the
/// disk works while the network is still sending.
pub(crate) const WRITEBACK_STEP: u64 = 32 << 20;

impl PendingWrite {
    /// Appends bytes; fails with `quota_exceeded` as soon as the file can no longer fit.
    pub fn write(&mut self, buf: &[u8]) -> FsResult<()> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            let used = self.handle.usage().used_bytes;
            return Err(FsError::QuotaExceeded {
                used,
                adding: self.written,
                cap: self.handle.cap,
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

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.done {
            let _ =
                rustix::fs::unlinkat(&self.handle.staging, self.name.as_str(), AtFlags::empty());
        }
    }
}
