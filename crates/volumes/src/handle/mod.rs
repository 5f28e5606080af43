//! Operations on one open volume, one file per seam:
//! - here: opening, usage and the cap, the commit lock, change events and watching;
//! - `read`: stat and reads; `write`: atomic writes and publishing a staged entry;
//! - `tree`: mkdir, move, copy, remove; `list`: listings; `batch`: tar batches;
//! - `upload`: resumable uploads (their records live in `uploads`).
//!
//! Every temporary entry is made and removed through the volume's [`Staging`].

mod batch;
mod list;
mod read;
mod tree;
mod upload;
mod write;

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nullspace_core::{FileStat, FileType as StatType, VolumePath};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::error::{FsError, FsResult};
use crate::events::{ChangeKind, ChangeSink, EventLog};
use crate::instance::ServerInstance;
use crate::resolve::Beneath;
use crate::shared_usage::{CommitGuard, SharedUsage};
use crate::staging::Staging;
use crate::walk::tree_usage;
use crate::Usage;

pub use batch::BatchResult;
pub(crate) use list::NameGlob;
pub use list::{ListEntry, ListOptions, ListPage};
pub use write::{PendingWrite, WriteOptions};

/// One open volume: its confined root, its staging directory, its cap and usage. A handle
/// [`VolumeHandle::scoped`] to a directory shares all of that but resolves every user path
/// below the directory.
#[derive(Debug)]
pub struct VolumeHandle {
    shared: Arc<Shared>,
    /// Where user paths resolve when scoped; else the volume's data directory.
    scope: Option<Beneath>,
}

/// What every handle of one volume shares.
#[derive(Debug)]
pub struct Shared {
    id: String,
    /// The volume's data directory (usage is measured over all of it).
    data: Beneath,
    /// Where data waits before a rename publishes it (and whose temporary files are whose).
    staging: Staging,
    cap: u64,
    /// Current usage, shared with the other servers on the data root; its lock is what
    /// serialises commits to the volume, in this process and across processes.
    usage: SharedUsage,
    /// When usage was last measured from disk (see [`VolumeHandle::remeasure`]).
    measured_at: Mutex<Instant>,
    events: Arc<EventLog>,
    /// The group commit of the directory fsyncs of writes (see `dir_sync`).
    dir_sync: crate::dir_sync::DirSync,
    /// Feeds `events` with changes made by sandbox code (inotify), while the volume is watched.
    fs_source: crate::fswatch::FsSource,
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
    let file_type = StatType::from_mode(st.st_mode);
    FileStat {
        path,
        file_type,
        size: st.st_size.max(0) as u64,
        mode: st.st_mode & 0o7777,
        mtime: DateTime::<Utc>::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
            .unwrap_or_default(),
        etag: etag_of(st),
        path_base64: None,
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
        hub: &crate::fswatch::FsHub,
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
        let staging = Staging::new(open_dir(&staging_path)?, staging_path, owner.clone());
        let usage = SharedUsage::open(usage_file)
            .map_err(|e| FsError::from_io(&usage_file.display().to_string(), e))?;
        let shared = Shared {
            id: id.to_owned(),
            data: Beneath::new(data),
            staging,
            cap,
            usage,
            measured_at: Mutex::new(Instant::now()),
            events: Arc::new(match sink {
                Some(sink) => EventLog::forwarding(id, sink, owner),
                None => EventLog::new(),
            }),
            fs_source: crate::fswatch::FsSource::new(root.join("data"), hub),
            dir_sync: Default::default(),
        };
        let handle = VolumeHandle {
            shared: Arc::new(shared),
            scope: None,
        };
        // Before anything else looks at the tree: undo publishes a crash interrupted.
        handle.roll_back_interrupted();
        handle.clean_staging();
        // Measured under the commit lock, so that no server commits to the volume meanwhile.
        let mut usage = handle.lock();
        usage.set_measured(tree_usage(handle.shared.data.root()).map_err(io_at("/"))?);
        drop(usage);
        Ok(handle)
    }

    /// Removes from staging what no running server uses: temporary files of servers that
    /// stopped or crashed (see [`ServerInstance`]). Resumable uploads are kept (they expire on
    /// their own). Returns how many entries went.
    pub fn clean_staging(&self) -> usize {
        self.shared.staging.clean()
    }

    /// The volume's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The volume's cap in bytes.
    pub fn cap(&self) -> u64 {
        self.shared.cap
    }

    /// The volume's change events.
    pub fn events(&self) -> &EventLog {
        &self.shared.events
    }

    /// Subscribes to the volume's changes, made through the API or by sandbox code in a mount
    /// (the file-system source runs while the subscription lives, and a while after).
    pub fn watch(&self, last_event_id: Option<u64>) -> FsResult<crate::events::Subscription> {
        let (attached, observed) = self.shared.fs_source.attach(&self.shared.events)?;
        let mut sub = self.shared.events.subscribe(last_event_id);
        if !observed && sub.gap.is_none() {
            // No inotify to be had: changes by sandbox code go unseen, and the watcher knows.
            let next = self.shared.events.next_id();
            sub.gap = Some(crate::events::Gap {
                last_event_id: last_event_id.unwrap_or(next.saturating_sub(1)),
                oldest_available: next,
            });
        }
        sub.source = Some(attached);
        Ok(sub)
    }

    /// Stops the file-system source (the server stops or the volume is deleted).
    pub fn stop_watching(&self) {
        self.shared.fs_source.stop();
    }

    /// Whether the file-system source runs.
    pub fn fs_source_running(&self) -> bool {
        self.shared.fs_source.running()
    }

    /// This handle confined to the directory `prefix` (a volume token's path): every user path
    /// resolves below that directory, and one outside it is `NotFound`; the rest (usage,
    /// staging, events) is the volume's. A prefix that is missing, not a directory or a
    /// symlink is `NotFound`.
    pub fn scoped(&self, prefix: &VolumePath) -> FsResult<VolumeHandle> {
        Ok(VolumeHandle {
            shared: self.shared.clone(),
            scope: Some(self.beneath().scoped(prefix)?),
        })
    }

    /// The resolver of user paths: the scope's, else the volume's.
    pub(crate) fn beneath(&self) -> &Beneath {
        self.scope.as_ref().unwrap_or(&self.shared.data)
    }

    fn created_dirs(&self, dirs: &[VolumePath]) {
        for d in dirs {
            self.shared
                .events
                .publish(ChangeKind::Created, d.as_str(), None, true);
        }
    }

    /// Current usage (as of the last commit through any server).
    pub fn usage(&self) -> Usage {
        self.shared.usage.current()
    }

    /// Measures usage from disk again, under the commit lock, and keeps it: sandbox code
    /// writes to a mounted volume behind the data plane's back. Afterwards the cap check of
    /// the next write uses the new figure.
    pub fn remeasure(&self) -> FsResult<Usage> {
        let mut usage = self.lock();
        let fresh = tree_usage(self.shared.data.root()).map_err(io_at("/"))?;
        usage.set_measured(fresh);
        *self
            .shared
            .measured_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(fresh)
    }

    /// [`VolumeHandle::remeasure`] unless usage was measured less than `max_age` ago.
    pub fn remeasure_if_older(&self, max_age: Duration) -> FsResult<Usage> {
        let at = *self
            .shared
            .measured_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if at.elapsed() < max_age {
            return Ok(self.usage());
        }
        self.remeasure()
    }

    /// Enters the volume's commit critical section (see `shared_usage`).
    fn lock(&self) -> CommitGuard<'_> {
        self.shared.usage.lock()
    }

    /// Refuses a change that would take `usage` past the cap: `adding` bytes, `freed` going.
    /// Bytes reserved by pending uploads count too (and the refusal then says so).
    pub(crate) fn check_cap(&self, usage: &Usage, freed: u64, adding: u64) -> FsResult<()> {
        let after = usage
            .used_bytes
            .saturating_sub(freed)
            .saturating_add(adding);
        if after > self.shared.cap {
            return Err(FsError::QuotaExceeded {
                used: usage.used_bytes,
                adding,
                cap: self.shared.cap,
            });
        }
        if adding > freed {
            let pending = self.pending_upload_bytes();
            if after.saturating_add(pending) > self.shared.cap {
                return Err(FsError::over_cap(
                    usage.used_bytes,
                    pending,
                    adding,
                    self.shared.cap,
                ));
            }
        }
        Ok(())
    }
}
