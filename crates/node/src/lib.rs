//! The nullspace server as a library, with no HTTP: start-up (data dir, state store, volume
//! backend, reconciliation), the use cases of volumes and sandboxes, the servers' peer
//! channel, and the configuration.
//!
//! Architecture invariant: `api` parses a request into a call on a [`Node`] and shapes the
//! answer; everything the call does — which records and files change, in which order, what is
//! rolled back, which usage is recorded — happens here. Nothing here knows HTTP, and
//! every error is a `nullspace_core::Error`. Callers are identified by a [`Principal`], the
//! resolved API key. There is no process-wide state: everything hangs off a `Node`.

mod config;
pub mod limits;
mod observe;
mod peers;
mod sandboxes;
mod signing;
mod start;
mod tenants;
mod volumes;

use std::sync::Arc;

use nullspace_core::{Error, VolumeName};
use nullspace_state::StateStore;
use tokio_util::sync::CancellationToken;

pub use config::{
    default_server_id, valid_server_id, ConnectionLimits, ServerConfig, VolumeBackend,
};
/// Per-sandbox limits (the runtime's type), as `ServerConfig::sandbox_limits` holds them.
pub use nullspace_sandbox::Limits as SandboxLimits;
pub use nullspace_sandbox::SandboxRuntime;
pub use nullspace_state::Principal;
pub use observe::Observed;
pub use sandboxes::{Lifecycle, SandboxService, MAX_EXEC_TIMEOUT_SECS};
pub use signing::{Fields as SignedFields, Signer, MAX_EXPIRY_SECS};
pub use tenants::{authorize, Permission, MAX_KEY_EXPIRY_SECS, MAX_KEY_NAME};
pub use volumes::{
    OpenVolume, VolumeService, WatchGuard, WatchSlot, Watching, MAX_WATCHES_PER_TENANT,
};

/// The data-plane types callers pass to and get from an [`OpenVolume`].
pub mod data {
    pub use nullspace_volumes::archive::ArchiveFormat;
    pub use nullspace_volumes::events::{Live, Subscription};
    pub use nullspace_volumes::uploads::{ChunkChecksum, UploadError, UploadState};
    pub use nullspace_volumes::{
        FsError, ListEntry, ListOptions, ListPage, PendingWrite, ReplaceOptions, SearchOptions,
        WriteOptions,
    };
}

/// One server: its state store, volumes and sandboxes. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StateStore>,
    volumes: VolumeService,
    sandboxes: SandboxService,
    /// Cancelled when the server starts shutting down: long-lived work (watch streams, the
    /// expiry task) ends on it.
    shutdown: CancellationToken,
}

impl Node {
    /// The volume use cases.
    pub fn volumes(&self) -> &VolumeService {
        &self.inner.volumes
    }

    /// The sandbox use cases.
    pub fn sandboxes(&self) -> &SandboxService {
        &self.inner.sandboxes
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Deletes the caller's volume: fails with `volume_in_use` while a live sandbox has it
    /// attached, unless `force`, which detaches it from every such sandbox first; then the
    /// record, then the storage, then the other servers are told.
    pub async fn delete_volume(
        &self,
        caller: &Principal,
        name: &str,
        force: bool,
        if_exists: bool,
    ) -> Result<(), Error> {
        let vname = VolumeName::parse(name)?;
        if let Some(v) = self.volumes().record(caller, &vname).await? {
            self.sandboxes().release_volume(&v.id, name, force).await?;
        }
        if let Some(v) = self.volumes().remove(caller, &vname, if_exists).await? {
            peers::volume_deleted(&self.inner.store, self.volumes().data(), &v.id).await;
        }
        Ok(())
    }

    /// Writes what the control plane still lacks (usage copies): call after the last request.
    pub async fn flush(&self) {
        self.volumes().flush_usage().await;
    }

    /// Stops what runs in the background: long-lived streams end, and the file-system event
    /// sources of watched volumes stop.
    pub fn stop(&self) {
        self.inner.shutdown.cancel();
        for h in self.volumes().data().open_handles() {
            h.stop_watching();
        }
    }
}

/// Runs blocking work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::internal(format!("blocking task failed: {e}"))),
    }
}
