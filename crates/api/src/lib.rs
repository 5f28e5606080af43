//! The HTTP API of `nullspace server`: axum routes under `/v1`, auth, error mapping, OpenAPI.
//!
//! Architecture invariant: only this crate knows HTTP statuses and wire formats. Handlers are
//! thin: parse and validate input (core types), call the state store or the data plane, shape
//! the answer. Blocking file-system work runs on tokio's blocking pool.

mod admin;
mod auth;
mod config;
mod content;
mod error;
mod files;
mod openapi;
mod peers;
mod sandboxes;
mod server;
mod signed;
mod tus;
mod volumes;
mod watch;

use std::sync::Arc;

use nullspace_core::{Error, Volume, VolumeName};
use nullspace_state::{Principal, StateStore};
use nullspace_volumes::{VolumeHandle, VolumeStore};

pub use config::{ServerConfig, VolumeBackend};
pub use error::status_of;
pub use openapi::{openapi_document, router};
pub use sandboxes::SandboxRuntimeState;
pub use server::run;
pub use signed::Signer;

use crate::error::ApiResult;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn StateStore>,
    pub volumes: Arc<VolumeStore>,
    /// Signs and verifies signed URLs.
    pub signer: Arc<Signer>,
    /// The sandbox runtime; `None` when it could not start (sandbox routes answer `unavailable`).
    pub sandboxes: Option<Arc<SandboxRuntimeState>>,
}

impl AppState {
    /// The caller's volume by name, or `not_found` (also for other tenants' volumes).
    async fn volume(&self, caller: &Principal, name: &str) -> ApiResult<Volume> {
        let name = VolumeName::parse(name)?;
        let v = self.store.get_volume(&caller.tenant_id, &name).await?;
        self.catch_up(&v).await;
        Ok(self.live(v))
    }

    /// Re-measures a volume that a live sandbox has attached read-write, at most once per
    /// [`SANDBOX_USAGE_MAX_AGE`]: sandbox code changes it behind the data plane's back.
    async fn catch_up(&self, v: &Volume) {
        // The record counts every server's attachments (read-only ones too): re-measuring at
        // most once a second while any exists is cheaper than asking which are read-write.
        if v.attachments > 0 {
            self.remeasure(vec![v.id.clone()], SANDBOX_USAGE_MAX_AGE)
                .await;
        }
    }

    /// Measures the usage of the open ones of `volume_ids` from disk again (unless measured
    /// less than `max_age` ago) and records it. Failures are logged: the figure stays as it
    /// was, and the file system still stops writes at the cap.
    async fn remeasure(&self, volume_ids: Vec<String>, max_age: std::time::Duration) {
        for id in volume_ids {
            let Some(h) = self.volumes.peek(&id) else {
                // Not open: its usage is measured from disk when it is opened.
                continue;
            };
            let before = h.usage();
            let h2 = h.clone();
            match tokio::task::spawn_blocking(move || h2.remeasure_if_older(max_age)).await {
                Ok(Ok(now)) if now != before => self.persist_usage(&h).await,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(volume = %id, error = %e, "cannot measure volume usage")
                }
                Err(e) => tracing::warn!(volume = %id, error = %e, "cannot measure volume usage"),
            }
        }
    }

    /// The caller's volume by name, with its data-plane handle open.
    async fn open(&self, caller: &Principal, name: &str) -> ApiResult<OpenVolume> {
        let volume = self.volume(caller, name).await?;
        let handle = self.handle(&volume).await?;
        Ok(OpenVolume { volume, handle })
    }

    /// Overlays the exact, in-process usage figures of an open volume on its stored record.
    fn live(&self, mut v: Volume) -> Volume {
        if let Some(h) = self.volumes.peek(&v.id) {
            let u = h.usage();
            v.used_bytes = u.used_bytes;
            v.file_count = u.file_count;
        }
        v
    }

    /// The open data-plane handle of a volume.
    async fn handle(&self, v: &Volume) -> ApiResult<Arc<VolumeHandle>> {
        let (store, id, cap, name) = (
            self.volumes.clone(),
            v.id.clone(),
            v.cap_bytes,
            v.name.clone(),
        );
        blocking(move || store.handle(&id, cap).map_err(|e| e.in_volume(&name))).await
    }

    /// Writes a volume's current usage to the control plane (best effort: it is recomputed
    /// from disk on every start).
    async fn persist_usage(&self, h: &VolumeHandle) {
        let u = h.usage();
        if let Err(e) = self
            .store
            .set_volume_usage(h.id(), u.used_bytes, u.file_count)
            .await
        {
            tracing::warn!(volume = h.id(), error = %e, "could not record volume usage");
        }
    }
}

/// How stale the usage of a volume that a live sandbox may be writing can be when an API
/// answer shows it or a write checks the cap against it.
const SANDBOX_USAGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Cancelled when the server starts shutting down: long-lived streams (watch) end on it.
pub(crate) fn shutdown_token() -> &'static tokio_util::sync::CancellationToken {
    static TOKEN: std::sync::OnceLock<tokio_util::sync::CancellationToken> =
        std::sync::OnceLock::new();
    TOKEN.get_or_init(tokio_util::sync::CancellationToken::new)
}

/// A caller's volume, opened: its record and its data-plane handle.
pub(crate) struct OpenVolume {
    pub volume: Volume,
    pub handle: Arc<VolumeHandle>,
}

impl OpenVolume {
    /// Runs a data-plane operation on the blocking pool; its errors name the volume.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&VolumeHandle) -> nullspace_volumes::FsResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let (h, name) = (self.handle.clone(), self.volume.name.clone());
        blocking(move || op(&h).map_err(|e| e.in_volume(&name))).await
    }

    /// Like [`OpenVolume::run`] for an operation that changes the volume: its usage is then
    /// recorded in the control plane.
    async fn change<T: Send + 'static>(
        &self,
        app: &AppState,
        op: impl FnOnce(&VolumeHandle) -> nullspace_volumes::FsResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let out = self.run(op).await?;
        app.persist_usage(&self.handle).await;
        Ok(out)
    }
}

/// Runs blocking work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(Error::internal(format!("blocking task failed: {e}")).into()),
    }
}
