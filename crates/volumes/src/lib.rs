//! The data plane: where each volume's files live, and every operation on them.
//!
//! Architecture invariants:
//! - Every user-supplied path reaches the file system through [`resolve::Beneath`], the one
//!   resolver (openat2 with RESOLVE_BENEATH); after that, work continues relative to fds.
//! - A volume's root holds two directories: `data` (the tree users see, and that sandboxes will
//!   mount) and `staging` (temporary files of atomic writes, on the same file system so that
//!   `rename` can publish them, but invisible to listings and mounts).
//! - Writes are published by `rename` after `fsync`, then the directory is `fsync`ed: a reader
//!   sees the old or the new content, and a write that returned is durable.
//! - Usage (bytes of regular files, and their count) is measured from disk when a volume is
//!   first opened and then kept exact by every operation, under the volume's commit lock. The
//!   lock and the figure are shared by every server on the data root (`shared_usage`), and
//!   temporary files in staging are named after the server that owns them (`staging`, with
//!   `instance` telling which servers run), so several servers can serve one volume at once.
//! - Handles are opened on first use and closed when idle (see [`VolumeStore`]): a server
//!   holds open descriptors for a bounded number of volumes, whatever their count.
//! - Only `staging` knows the layout of a volume's staging directory (temporary names,
//!   `uploads/`, what cleaning removes); `handle` and `uploads` both go through it.

pub mod archive;
mod dir_sync;
mod error;
pub mod events;
pub mod fswatch;
mod handle;
mod instance;
mod journal;
mod loop_image;
mod placement;
pub mod resolve;
mod rewrite;
mod search;
mod shared_usage;
mod staging;
pub mod uploads;
mod walk;

use std::collections::{HashMap, HashSet};
use std::ops::{AddAssign, SubAssign};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use error::{FsError, FsResult};
pub use fswatch::FsHub;
pub use handle::{
    BatchResult, ListEntry, ListOptions, ListPage, PendingWrite, VolumeHandle, WriteOptions,
};
pub use instance::ServerInstance;
pub use loop_image::{image_size, loop_unavailable, LoopPlacement, MIN_FS_BYTES, SLACK_BYTES};
pub use placement::{DirectoryPlacement, VolumePlacement};
pub use search::{
    ReplaceOptions, ReplaceSummary, ReplacedFile, SearchMatch, SearchOptions, SearchSummary,
    HELD_PER_FILE, MAX_REWRITE_BYTES, MAX_SEARCH_THREADS, SEARCH_BLOCK, SEARCH_WINDOW_PER_THREAD,
};

/// Bytes and regular files a volume holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub file_count: u64,
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.used_bytes += o.used_bytes;
        self.file_count += o.file_count;
    }
}

impl SubAssign for Usage {
    fn sub_assign(&mut self, o: Usage) {
        self.used_bytes = self.used_bytes.saturating_sub(o.used_bytes);
        self.file_count = self.file_count.saturating_sub(o.file_count);
    }
}

/// Descriptors one open volume handle holds: its `data/` and `staging/` directories and its
/// usage file.
pub const FDS_PER_HANDLE: u64 = 3;
/// Descriptors kept for everything but connections and volume handles: the state store's
/// pool (SQLite: 8 connections of up to 3 files; PostgreSQL: 16 sockets), the runtime's
/// epoll and eventfds, the inotify instance, logs, and what requests and sandboxes open for
/// a moment (files being read or written, tree walks, loop set-up, sandbox start-up).
pub const RESERVED_FDS: u64 = 64;
/// Open handles at least, whatever the limit.
pub const MIN_HANDLES: usize = 8;

/// How many volume handles a server keeps open under an open-file limit of `nofile`, when
/// up to `connections` descriptors go to HTTP connections:
/// `max(MIN_HANDLES, (nofile - connections - RESERVED_FDS) / FDS_PER_HANDLE)`.
/// With `nofile = 256` and connections capped at half of it that is 21; with 1,048,576 and
/// 4,096 connections, 348,138.
pub fn handle_budget(nofile: u64, connections: u64) -> usize {
    let free = nofile
        .saturating_sub(connections)
        .saturating_sub(RESERVED_FDS);
    ((free / FDS_PER_HANDLE) as usize).max(MIN_HANDLES)
}

/// All volumes of one server: their placement, and the open handles (one per open volume,
/// shared by every request so that commits to one volume are serialised).
///
/// Handles are opened on first use (which removes crashed servers' temporary files from the
/// volume's staging and measures its usage) and kept in a least-recently-used set of at most
/// the budget (see [`handle_budget`]): opening one more closes the least recently used idle
/// one, and the periodic sweep closes those idle for longer than the caller says. A handle is
/// idle when nothing else holds it — no request in flight, no watcher (a watcher holds it), no
/// file-system source lingering after its last watcher. When every handle is busy, a new one
/// is opened past the budget (the budget leaves room); when the descriptors are truly used up,
/// the caller gets [`FsError::Exhausted`] (`resource_exhausted`), never another's handle.
pub struct VolumeStore {
    placement: Box<dyn VolumePlacement>,
    handles: Mutex<Handles>,
    owner: Arc<ServerInstance>,
    sink: Option<events::ChangeSink>,
    hub: FsHub,
    /// Volumes whose storage could not be opened (logged once until it opens again).
    broken: Mutex<HashSet<String>>,
}

struct Handles {
    open: HashMap<String, Entry>,
    budget: usize,
}

struct Entry {
    handle: Arc<VolumeHandle>,
    used: Instant,
}

impl Entry {
    /// Whether nothing but the store holds the handle (and no file-system source runs).
    fn idle(&self) -> bool {
        Arc::strong_count(&self.handle) == 1 && !self.handle.fs_source_running()
    }
}

impl Handles {
    /// Closes idle handles, least recently used first, until fewer than the budget are open.
    fn make_room(&mut self) {
        if self.open.len() < self.budget {
            return;
        }
        let mut idle: Vec<(Instant, String)> = self
            .open
            .iter()
            .filter(|(_, e)| e.idle())
            .map(|(id, e)| (e.used, id.clone()))
            .collect();
        idle.sort();
        let excess = self.open.len() + 1 - self.budget;
        for (_, id) in idle.into_iter().take(excess) {
            self.open.remove(&id);
        }
    }
}

impl VolumeStore {
    /// A store over the given placement, for a process alone on its data root.
    pub fn new(placement: Box<dyn VolumePlacement>) -> VolumeStore {
        VolumeStore::shared(placement, ServerInstance::solo(), None)
    }

    /// A store over a data root that other servers may share: `owner` tells whose temporary
    /// files are whose; local change events of every volume also go to `sink`, when given.
    pub fn shared(
        placement: Box<dyn VolumePlacement>,
        owner: ServerInstance,
        sink: Option<events::ChangeSink>,
    ) -> VolumeStore {
        VolumeStore {
            placement,
            handles: Mutex::new(Handles {
                open: HashMap::new(),
                budget: usize::MAX,
            }),
            owner: Arc::new(owner),
            sink,
            hub: FsHub::default(),
            broken: Mutex::default(),
        }
    }

    /// Keeps at most `budget` handles open (see [`handle_budget`]); closes idle ones now.
    pub fn set_handle_budget(&self, budget: usize) {
        let mut h = self.lock();
        h.budget = budget.max(1);
        while h.open.len() > h.budget {
            let before = h.open.len();
            h.make_room();
            if h.open.len() == before {
                break;
            }
        }
    }

    /// How many handles are open now.
    pub fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// Closes the handles idle since longer than `max_idle`; returns how many.
    pub fn close_idle(&self, max_idle: Duration) -> usize {
        let mut h = self.lock();
        let before = h.open.len();
        h.open
            .retain(|_, e| !(e.idle() && e.used.elapsed() >= max_idle));
        before - h.open.len()
    }

    /// The server's file-system event source (one inotify instance for every volume).
    pub fn fs_hub(&self) -> &FsHub {
        &self.hub
    }

    fn lock(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This server's identity on the data root.
    pub fn owner(&self) -> &ServerInstance {
        &self.owner
    }

    /// Makes the storage of a new, empty volume capped at `cap_bytes`.
    pub fn create(&self, volume_id: &str, cap_bytes: u64) -> FsResult<()> {
        self.placement.create(volume_id, cap_bytes).map(|_| ())
    }

    /// Whether the storage stops sandbox writes at the cap (see [`VolumePlacement`]).
    pub fn caps_sandbox_writes(&self) -> bool {
        self.placement.caps_sandbox_writes()
    }

    /// Removes a volume's storage and everything in it.
    pub fn destroy(&self, volume_id: &str) -> FsResult<()> {
        let handle = self.lock().open.remove(volume_id);
        if let Some(e) = handle {
            e.handle.stop_watching();
            e.handle.events().close();
        }
        self.placement.destroy(volume_id)
    }

    /// Closes this process's handle of a volume another server deleted (its watchers end).
    pub fn forget(&self, volume_id: &str) {
        let handle = self.lock().open.remove(volume_id);
        if let Some(e) = handle {
            e.handle.events().close();
        }
    }

    /// The ids of every volume with storage (to find orphans on start).
    pub fn volume_ids(&self) -> FsResult<Vec<String>> {
        self.placement.list()
    }

    /// Every open handle (for periodic housekeeping).
    pub fn open_handles(&self) -> Vec<Arc<VolumeHandle>> {
        self.lock()
            .open
            .values()
            .map(|e| e.handle.clone())
            .collect()
    }

    /// The handle of a volume if it is already open, marked used (a request's fast path: no
    /// I/O).
    pub fn open_handle(&self, volume_id: &str) -> Option<Arc<VolumeHandle>> {
        let mut h = self.lock();
        let e = h.open.get_mut(volume_id)?;
        e.used = Instant::now();
        Some(e.handle.clone())
    }

    /// The handle of a volume if it is already open (for live usage figures).
    pub fn peek(&self, volume_id: &str) -> Option<Arc<VolumeHandle>> {
        self.lock().open.get(volume_id).map(|e| e.handle.clone())
    }

    /// The host directory holding a volume's files (what a sandbox mount exposes).
    pub fn data_dir(&self, volume_id: &str) -> FsResult<std::path::PathBuf> {
        Ok(self.placement.locate(volume_id)?.join("data"))
    }

    /// Removes from a volume's staging what no running server uses (temporary files of
    /// servers that stopped or crashed), without opening the volume; returns how many entries
    /// went. Start-up does this for every volume, holding one descriptor at a time.
    /// Publishes those servers left journalled are rolled back first (see `journal`), since
    /// cleaning would remove their journals.
    pub fn clean_staging(&self, volume_id: &str) -> FsResult<usize> {
        let root = self.placement.locate(volume_id)?;
        let open_dir = |path: &std::path::Path| {
            rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| FsError::from_errno(&path.display().to_string(), e))
        };
        let path = root.join("staging");
        let staging = staging::Staging::new(open_dir(&path)?, path, self.owner.clone());
        let data = resolve::Beneath::new(open_dir(&root.join("data"))?);
        journal::roll_back_all(&staging, &data);
        Ok(staging.clean())
    }

    /// The open handle of a volume, opening it (and measuring its usage) on first use.
    pub fn handle(&self, volume_id: &str, cap_bytes: u64) -> FsResult<Arc<VolumeHandle>> {
        if let Some(e) = self.lock().open.get_mut(volume_id) {
            e.used = Instant::now();
            return Ok(e.handle.clone());
        }
        // Room first (closing idle handles frees their descriptors for this one).
        self.lock().make_room();
        // Opening scans the tree: do it outside the map lock, then keep whichever handle won.
        let fresh = self.open(volume_id, cap_bytes);
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match fresh {
            Ok(h) => {
                broken.remove(volume_id);
                h
            }
            Err(e) => {
                if !matches!(e, FsError::NotFound(_)) && broken.insert(volume_id.to_owned()) {
                    tracing::error!(volume = volume_id, error = %e, "cannot open volume");
                }
                return Err(e);
            }
        };
        drop(broken);
        let mut map = self.lock();
        let e = map.open.entry(volume_id.to_owned()).or_insert(Entry {
            handle: Arc::new(fresh),
            used: Instant::now(),
        });
        Ok(e.handle.clone())
    }

    fn open(&self, volume_id: &str, cap_bytes: u64) -> FsResult<VolumeHandle> {
        let root = self.placement.locate(volume_id)?;
        let usage_file = self.placement.usage_file(volume_id)?;
        let fresh = VolumeHandle::open(
            volume_id,
            &root,
            cap_bytes,
            &usage_file,
            self.owner.clone(),
            self.sink.clone(),
            &self.hub,
        )?;
        // Expired uploads of earlier runs go now; the server sweeps open volumes later on.
        fresh.upload_sweep();
        Ok(fresh)
    }
}
