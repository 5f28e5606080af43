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
//! - Only `staging` knows the layout of a volume's staging directory (temporary names,
//!   `uploads/`, what cleaning removes); `handle` and `uploads` both go through it.

pub mod archive;
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

use std::collections::HashMap;
use std::ops::{AddAssign, SubAssign};
use std::sync::{Arc, Mutex};

pub use error::{FsError, FsResult};
pub use handle::{
    BatchResult, ListEntry, ListOptions, ListPage, PendingWrite, VolumeHandle, WriteOptions,
};
pub use instance::ServerInstance;
pub use loop_image::{image_size, loop_unavailable, LoopPlacement, MIN_FS_BYTES, SLACK_BYTES};
pub use placement::{DirectoryPlacement, VolumePlacement};
pub use search::{
    ReplaceOptions, ReplaceSummary, ReplacedFile, SearchMatch, SearchOptions, SearchSummary,
    MAX_REWRITE_BYTES,
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

/// All volumes of one server: their placement, and the open handles (one per volume, shared
/// by every request so that commits to one volume are serialised).
pub struct VolumeStore {
    placement: Box<dyn VolumePlacement>,
    handles: Mutex<HashMap<String, Arc<VolumeHandle>>>,
    owner: Arc<ServerInstance>,
    sink: Option<events::ChangeSink>,
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
            handles: Mutex::new(HashMap::new()),
            owner: Arc::new(owner),
            sink,
        }
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
        let handle = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(volume_id);
        if let Some(h) = handle {
            h.stop_watching();
            h.events().close();
        }
        self.placement.destroy(volume_id)
    }

    /// Closes this process's handle of a volume another server deleted (its watchers end).
    pub fn forget(&self, volume_id: &str) {
        let handle = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(volume_id);
        if let Some(h) = handle {
            h.events().close();
        }
    }

    /// The ids of every volume with storage (to find orphans on start).
    pub fn volume_ids(&self) -> FsResult<Vec<String>> {
        self.placement.list()
    }

    /// Every open handle (for periodic housekeeping).
    pub fn open_handles(&self) -> Vec<Arc<VolumeHandle>> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The handle of a volume if it is already open (for live usage figures).
    pub fn peek(&self, volume_id: &str) -> Option<Arc<VolumeHandle>> {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(volume_id)
            .cloned()
    }

    /// The host directory holding a volume's files (what a sandbox mount exposes).
    pub fn data_dir(&self, volume_id: &str) -> FsResult<std::path::PathBuf> {
        Ok(self.placement.locate(volume_id)?.join("data"))
    }

    /// The open handle of a volume, opening it (and measuring its usage) on first use.
    pub fn handle(&self, volume_id: &str, cap_bytes: u64) -> FsResult<Arc<VolumeHandle>> {
        if let Some(h) = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(volume_id)
        {
            return Ok(h.clone());
        }
        // Opening scans the tree: do it outside the map lock, then keep whichever handle won.
        let root = self.placement.locate(volume_id)?;
        let usage_file = self.placement.usage_file(volume_id)?;
        let fresh = Arc::new(VolumeHandle::open(
            volume_id,
            &root,
            cap_bytes,
            &usage_file,
            self.owner.clone(),
            self.sink.clone(),
        )?);
        // Expired uploads of earlier runs go now; the server sweeps open volumes later on.
        fresh.upload_sweep();
        let mut map = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.entry(volume_id.to_owned()).or_insert(fresh).clone())
    }
}
