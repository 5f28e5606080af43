//! The volume use cases: a caller's volumes by name, create and delete with rollback, and the
//! data-plane operations on an opened volume.
//!
//! Two hooks keep the control plane's copy of each volume's usage true, each in one place:
//! [`OpenVolume::changing`] records usage after every operation that may change a volume (the
//! only caller of [`VolumeService::record_usage`]), and [`VolumeService::remeasure`] measures
//! volumes again from disk after sandbox code ran in them (called from the sandbox service's
//! one runtime wrapper, and at most once a second before answers about attached volumes).
//! The usage itself is the data plane's (exact, shared by the servers of a data root, what
//! the cap is checked against); its copy in the control plane is written off the request path
//! by one task ([`UsageWriter`]), batched, and measured again from disk at every start.
//!
//! The hot path of a file request does no I/O to find its volume: the record is kept per
//! tenant and name under the cache generation the caller was resolved under (see
//! `StateStore::generation`: a delete or an attachment change anywhere moves it), and an open
//! handle is found in memory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nullspace_core::{
    validate_labels, Error, ErrorCode, FileStat, LabelSelector, Labels, Volume, VolumeName,
    VolumePath,
};
use nullspace_state::{Principal, StateError, StateStore};
use nullspace_volumes::archive::ArchiveFormat;
use nullspace_volumes::events::Subscription;
use nullspace_volumes::uploads::{ChunkChecksum, UploadError, UploadState};
use nullspace_volumes::{
    BatchResult, FsResult, ListOptions, ListPage, PendingWrite, ReplaceOptions, ReplaceSummary,
    SearchOptions, SearchSummary, Usage, VolumeHandle, VolumeStore, WriteOptions,
};

use crate::blocking;
use crate::signing::Signer;

/// How stale the usage of a volume that a live sandbox may be writing can be when an answer
/// shows it or a write checks the cap against it.
const SANDBOX_USAGE_MAX_AGE: Duration = Duration::from_secs(1);

/// The usage writer writes at most one batch this often: what changes meanwhile is written
/// together, once per volume.
const USAGE_WRITE_EVERY: Duration = Duration::from_millis(50);

/// Volume records kept for file requests; one more empties the cache.
pub const MAX_CACHED_RECORDS: usize = 16_384;

/// The volumes of every tenant: records in the state store, data in the volume store.
#[derive(Clone)]
pub struct VolumeService {
    store: Arc<dyn StateStore>,
    volumes: Arc<VolumeStore>,
    signer: Arc<Signer>,
    /// Every tenant's limits where it has none of its own (see [`crate::limits`]).
    tenant_defaults: nullspace_state::TenantLimits,
    /// Open watch streams per tenant (see [`MAX_WATCHES_PER_TENANT`]).
    watch_streams: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// Volume records by (tenant id, name), with the generation each was read under.
    records: Arc<Mutex<RecordCache>>,
    usage: Arc<UsageWriter>,
}

/// Volume records by (tenant id, name): the generation each was read under, and the record.
type RecordCache = HashMap<(String, String), (u64, Volume)>;

/// The control plane's copies of volume usage still to write, and what it holds: written by
/// one task ([`UsageWriter::run`]), off the request path.
struct UsageWriter {
    store: Arc<dyn StateStore>,
    copies: Mutex<UsageCopies>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct UsageCopies {
    /// The latest figure of each volume whose copy is stale.
    dirty: HashMap<String, Usage>,
    /// What the store holds (or is being given) for each volume.
    written: HashMap<String, Usage>,
}

impl UsageWriter {
    fn copies(&self) -> std::sync::MutexGuard<'_, UsageCopies> {
        self.copies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A volume's usage is `now`: its copy is written soon unless the store holds it.
    fn note(&self, volume_id: &str, now: Usage) {
        let mut c = self.copies();
        if c.written.get(volume_id) == Some(&now) {
            c.dirty.remove(volume_id);
            return;
        }
        c.dirty.insert(volume_id.to_owned(), now);
        drop(c);
        self.wake.notify_one();
    }

    /// The store holds `stored` for a volume (its record says so).
    fn holds(&self, volume_id: &str, stored: Usage) {
        self.copies().written.insert(volume_id.to_owned(), stored);
    }

    /// A deleted volume: nothing more to write.
    fn forget(&self, volume_id: &str) {
        let mut c = self.copies();
        c.dirty.remove(volume_id);
        c.written.remove(volume_id);
    }

    /// Writes every stale copy (one statement per volume); on a failure the rest waits for
    /// the next round.
    async fn flush(&self) {
        loop {
            let batch: Vec<(String, Usage)> = {
                let mut c = self.copies();
                let batch: Vec<_> = c.dirty.drain().collect();
                for (id, u) in &batch {
                    // A change back to the old figure meanwhile must be written again.
                    c.written.insert(id.clone(), *u);
                }
                batch
            };
            if batch.is_empty() {
                return;
            }
            let mut failed = Vec::new();
            for (id, u) in batch {
                if !failed.is_empty() {
                    failed.push((id, u));
                    continue;
                }
                match self
                    .store
                    .set_volume_usage(&id, u.used_bytes, u.file_count)
                    .await
                {
                    Ok(()) => {}
                    Err(StateError::NotFound(_)) => self.forget(&id),
                    Err(e) => {
                        tracing::warn!(volume = %id, error = %e, "could not record volume usage");
                        failed.push((id, u));
                    }
                }
            }
            if !failed.is_empty() {
                let mut c = self.copies();
                for (id, u) in failed {
                    c.written.remove(&id);
                    c.dirty.entry(id).or_insert(u);
                }
                drop(c);
                self.wake.notify_one();
                return;
            }
        }
    }

    /// Writes stale copies as they come, at most one batch per [`USAGE_WRITE_EVERY`], until
    /// `shutdown`; then the last ones.
    async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => break,
            }
            self.flush().await;
            tokio::select! {
                _ = tokio::time::sleep(USAGE_WRITE_EVERY) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.flush().await;
    }
}

/// Watch streams one tenant may have open on one server at once; one more is
/// `resource_exhausted`. Every stream's volume shares the server's one inotify instance, and
/// each volume has at most [`nullspace_volumes::fswatch::MAX_WATCHES`] watched directories.
pub const MAX_WATCHES_PER_TENANT: usize = 1_024;

/// One of a tenant's open watch streams (released when dropped).
pub struct WatchSlot {
    tenant: String,
    streams: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut m = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.tenant);
            }
        }
    }
}

impl VolumeService {
    pub(crate) fn new(
        store: Arc<dyn StateStore>,
        volumes: Arc<VolumeStore>,
        signer: Arc<Signer>,
        tenant_defaults: nullspace_state::TenantLimits,
    ) -> VolumeService {
        VolumeService {
            usage: Arc::new(UsageWriter {
                store: store.clone(),
                copies: Mutex::default(),
                wake: tokio::sync::Notify::new(),
            }),
            store,
            volumes,
            signer,
            tenant_defaults,
            watch_streams: Arc::default(),
            records: Arc::default(),
        }
    }

    /// Starts the task that writes usage copies to the control plane (until `shutdown`).
    pub(crate) fn start_usage_writer(&self, shutdown: tokio_util::sync::CancellationToken) {
        tokio::spawn(self.usage.clone().run(shutdown));
    }

    /// Writes the usage copies still stale (at shutdown, after the last request).
    pub async fn flush_usage(&self) {
        self.usage.flush().await;
    }

    /// Takes one of the caller's tenant's watch streams, or `resource_exhausted` when it has
    /// [`MAX_WATCHES_PER_TENANT`] open.
    pub fn watch_slot(&self, caller: &Principal) -> Result<WatchSlot, Error> {
        let mut m = self.watch_streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(caller.tenant_id.clone()).or_insert(0);
        if *n >= MAX_WATCHES_PER_TENANT {
            return Err(Error::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "the tenant has {MAX_WATCHES_PER_TENANT} watch streams open on this server \
                     (the most it may); close one first"
                ),
            ));
        }
        *n += 1;
        Ok(WatchSlot {
            tenant: caller.tenant_id.clone(),
            streams: self.watch_streams.clone(),
        })
    }

    /// Watch streams open on this server, every tenant's together (for metrics).
    pub fn open_watch_streams(&self) -> usize {
        let m = self.watch_streams.lock().unwrap_or_else(|e| e.into_inner());
        m.values().sum()
    }

    /// Every tenant's limits where it has none of its own.
    pub(crate) fn tenant_defaults(&self) -> &nullspace_state::TenantLimits {
        &self.tenant_defaults
    }

    /// The data plane (start-up, peers and the sandbox service reach it through here).
    pub(crate) fn data(&self) -> &Arc<VolumeStore> {
        &self.volumes
    }

    /// The caller's volume by name with live usage, or `not_found` (also for other tenants'
    /// volumes).
    pub async fn get(&self, caller: &Principal, name: &str) -> Result<Volume, Error> {
        let name = VolumeName::parse(name)?;
        let v = self.store.get_volume(&caller.tenant_id, &name).await?;
        // A volume token sees its one volume; any other is as absent as another tenant's.
        if caller.token.as_ref().is_some_and(|t| t.volume_id != v.id) {
            return Err(Error::not_found(format!(
                "volume {:?} not found",
                name.as_str()
            )));
        }
        self.catch_up(&v).await;
        // Opened, so that the figures are measured ones (a volume is measured from disk when
        // it is first opened after a start); one that cannot be opened shows its record's.
        match self.open_record(v.clone()).await {
            Ok(open) => Ok(open.volume),
            Err(_) => Ok(self.live(v)),
        }
    }

    /// The caller's volumes matching every selector, in name order, with live usage.
    pub async fn list(
        &self,
        caller: &Principal,
        selectors: &[LabelSelector],
    ) -> Result<Vec<Volume>, Error> {
        let vols = self
            .store
            .list_volumes(&caller.tenant_id, selectors)
            .await?;
        let mut out = Vec::with_capacity(vols.len());
        for v in vols {
            self.catch_up(&v).await;
            out.push(self.live(v));
        }
        Ok(out)
    }

    /// Creates a volume: its record, then its storage; a failure to make the storage removes
    /// the record again. With `if_not_exists`, an existing volume is returned as
    /// `(volume, false)`.
    pub async fn create(
        &self,
        caller: &Principal,
        name: &str,
        labels: &Labels,
        if_not_exists: bool,
    ) -> Result<(Volume, bool), Error> {
        let name = VolumeName::parse(name)?;
        validate_labels(labels.iter())?;
        let tenant = &caller.tenant_id;
        let created = self
            .store
            .create_volume_within(tenant, &name, labels, &self.tenant_defaults)
            .await;
        let v = match created {
            Ok(v) => v,
            Err(e) => {
                let e: Error = e.into();
                if e.code != ErrorCode::AlreadyExists {
                    return Err(e);
                }
                if if_not_exists {
                    let v = self.store.get_volume(tenant, &name).await?;
                    return Ok((self.live(v), false));
                }
                return Err(Error::new(
                    e.code,
                    format!("volume {:?} already exists", name.as_str()),
                ));
            }
        };
        let (vols, id, cap, shown) = (
            self.volumes.clone(),
            v.id.clone(),
            v.cap_bytes,
            name.as_str().to_owned(),
        );
        let made = blocking(move || vols.create(&id, cap).map_err(|e| e.in_volume(&shown))).await;
        if let Err(e) = made {
            let _ = self.store.delete_volume(tenant, &name).await;
            return Err(e);
        }
        Ok((v, true))
    }

    /// Renames the caller's volume. Its id, data, labels, usage, and the keys and tokens bound
    /// to it stay (they name the id); signed URLs made for the old name stop working (they
    /// carry the name). `volume_in_use` while any sandbox has it attached, live, paused or
    /// hibernated: a sandbox's mounts name their volume.
    pub async fn rename(
        &self,
        caller: &Principal,
        name: &str,
        new_name: &str,
    ) -> Result<Volume, Error> {
        let old = VolumeName::parse(name)?;
        let new = VolumeName::parse(new_name)?;
        let v = self
            .store
            .rename_volume(&caller.tenant_id, &old, &new)
            .await?;
        Ok(self.live(v))
    }

    /// Removes a volume's record, then its storage (the sandbox service has released its
    /// attachments first). `Ok(None)` when it did not exist and `if_exists`.
    pub(crate) async fn remove(
        &self,
        caller: &Principal,
        name: &VolumeName,
        if_exists: bool,
    ) -> Result<Option<Volume>, Error> {
        let v = match self.store.delete_volume(&caller.tenant_id, name).await {
            Ok(v) => v,
            Err(e) => {
                let e: Error = e.into();
                if e.code == ErrorCode::NotFound && if_exists {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        self.usage.forget(&v.id);
        let (vols, id, shown) = (self.volumes.clone(), v.id.clone(), name.as_str().to_owned());
        blocking(move || vols.destroy(&id).map_err(|e| e.in_volume(&shown))).await?;
        Ok(Some(v))
    }

    /// The record of the caller's volume, if it exists (no usage catch-up).
    pub(crate) async fn record(
        &self,
        caller: &Principal,
        name: &VolumeName,
    ) -> Result<Option<Volume>, Error> {
        match self.store.get_volume(&caller.tenant_id, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let e: Error = e.into();
                if e.code == ErrorCode::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The caller's volume by name, with its data-plane handle open. For a volume token with a
    /// path, the handle is scoped to that directory (opened by name now, at every request):
    /// every path outside it is `not_found`, and when the directory is gone, so is everything.
    pub async fn open(&self, caller: &Principal, name: &str) -> Result<OpenVolume, Error> {
        let name = VolumeName::parse(name)?;
        let volume = self.cached_record(caller, &name).await?;
        if caller
            .token
            .as_ref()
            .is_some_and(|t| t.volume_id != volume.id)
        {
            return Err(Error::not_found(format!(
                "volume {:?} not found",
                name.as_str()
            )));
        }
        self.catch_up(&volume).await;
        let open = self.open_record(volume).await?;
        match &caller.token {
            Some(t) if !t.path.is_root() => open.scoped(&t.path).await,
            _ => Ok(open),
        }
    }

    /// The caller's volume record by name: kept from an earlier request under the caller's
    /// generation, else read (and kept).
    async fn cached_record(&self, caller: &Principal, name: &VolumeName) -> Result<Volume, Error> {
        let key = (caller.tenant_id.clone(), name.as_str().to_owned());
        let lock = || self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = caller.generation {
            if let Some((at, v)) = lock().get(&key) {
                if *at == g {
                    return Ok(v.clone());
                }
            }
        }
        let v = self.store.get_volume(&caller.tenant_id, name).await?;
        if let Some(g) = caller.generation {
            let mut m = lock();
            if m.len() >= MAX_CACHED_RECORDS {
                m.clear();
            }
            m.insert(key, (g, v.clone()));
        }
        Ok(v)
    }

    /// Opens the data plane of a volume record: an open handle is found in memory; else it is
    /// opened (measuring usage from disk) on the blocking pool.
    pub(crate) async fn open_record(&self, volume: Volume) -> Result<OpenVolume, Error> {
        let handle = match self.volumes.open_handle(&volume.id) {
            Some(h) => h,
            None => {
                let (store, id, cap, name) = (
                    self.volumes.clone(),
                    volume.id.clone(),
                    volume.cap_bytes,
                    volume.name.clone(),
                );
                let h = blocking(move || store.handle(&id, cap).map_err(|e| e.in_volume(&name)))
                    .await?;
                // A handle opened just now measured usage from disk (sandbox writes, a
                // crash): the record gets that figure.
                self.usage.holds(
                    h.id(),
                    Usage {
                        used_bytes: volume.used_bytes,
                        file_count: volume.file_count,
                    },
                );
                self.record_usage(&h);
                h
            }
        };
        Ok(OpenVolume {
            volume: self.live(volume),
            handle,
            scope: VolumePath::root(),
            service: self.clone(),
        })
    }

    /// Signs a URL's fields for the caller's volume (see [`Signer`]), and answers the
    /// directory the URL is confined to: a volume token's path (a path outside it is
    /// `not_found`), else `/`.
    pub fn sign(
        &self,
        caller: &Principal,
        volume: &Volume,
        method: &str,
        path: &VolumePath,
        expires: i64,
    ) -> Result<(String, VolumePath), Error> {
        let scope = caller
            .token
            .as_ref()
            .map_or_else(VolumePath::root, |t| t.path.clone());
        if !path.starts_with(&scope) {
            return Err(Error::not_found(format!("{path}: not found")));
        }
        let sig = self.signer.sign(&crate::signing::Fields {
            method,
            tenant_id: &caller.tenant_id,
            volume_id: &volume.id,
            path,
            expires,
            scope: &scope,
        });
        Ok((sig, scope))
    }

    /// The volume a signed request names (`volume`, by name), opened, when its signature holds
    /// for these exact fields and it has not expired; `None` whatever the reason (a bare 403
    /// at the edge). The URL carries the name, so `url.volume_id` is not read: the id signed
    /// is the named volume's. With a scope, the volume is opened confined to it.
    pub async fn open_signed(
        &self,
        volume: &str,
        url: &crate::signing::Fields<'_>,
        signature: &str,
    ) -> Option<Result<OpenVolume, Error>> {
        let (expires, tenant_id, scope) = (url.expires, url.tenant_id, url.scope);
        let now = chrono::Utc::now().timestamp();
        if expires <= now || expires - now > crate::signing::MAX_EXPIRY_SECS as i64 + 60 {
            return None;
        }
        let name = VolumeName::parse(volume).ok()?;
        let v = self.store.get_volume(tenant_id, &name).await.ok()?;
        let fields = crate::signing::Fields {
            volume_id: &v.id,
            ..*url
        };
        if !self.signer.verify(&fields, signature) {
            return None;
        }
        let open = self.open_record(v).await;
        Some(match open {
            Ok(open) if !scope.is_root() => open.scoped(scope).await,
            other => other,
        })
    }

    /// Re-measures a volume that a live sandbox has attached, at most once per
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
    pub(crate) async fn remeasure(&self, volume_ids: Vec<String>, max_age: Duration) {
        for id in volume_ids {
            let Some(h) = self.volumes.peek(&id) else {
                // Not open: its usage is measured from disk when it is opened.
                continue;
            };
            let before = h.usage();
            let h2 = h.clone();
            match tokio::task::spawn_blocking(move || h2.remeasure_if_older(max_age)).await {
                Ok(Ok(now)) if now != before => self.record_usage(&h),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(volume = %id, error = %e, "cannot measure volume usage")
                }
                Err(e) => tracing::warn!(volume = %id, error = %e, "cannot measure volume usage"),
            }
        }
    }

    /// Has a volume's current usage copied to the control plane, off the request path, when
    /// it differs from what the store holds (best effort: it is measured again from disk at
    /// every start).
    fn record_usage(&self, h: &VolumeHandle) {
        self.usage.note(h.id(), h.usage());
    }

    /// Overlays the exact, in-process usage figures of an open volume on its stored record.
    fn live(&self, mut v: Volume) -> Volume {
        if let Some(h) = self.volumes.peek(&v.id) {
            let u = h.usage();
            v.used_bytes = u.used_bytes;
            v.file_count = u.file_count;
            v.pending_upload_bytes = h.pending_upload_bytes();
        }
        v
    }
}

/// A caller's volume, opened: its record and its data-plane handle. Every operation runs on
/// the blocking pool, and its errors name the volume.
pub struct OpenVolume {
    /// The record, with live usage.
    pub volume: Volume,
    handle: Arc<VolumeHandle>,
    /// See [`OpenVolume::scope`].
    scope: VolumePath,
    service: VolumeService,
}

impl OpenVolume {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.volume.name
    }

    /// The volume's cap in bytes.
    pub fn cap(&self) -> u64 {
        self.handle.cap()
    }

    /// The directory every path of this opened volume is confined to (`/` unless scoped).
    pub fn scope(&self) -> &VolumePath {
        &self.scope
    }

    /// This volume, confined to the directory `prefix` (see [`VolumeHandle::scoped`]).
    pub async fn scoped(self, prefix: &VolumePath) -> Result<OpenVolume, Error> {
        let (h, p) = (self.handle.clone(), prefix.clone());
        let handle = self.run(move |_| h.scoped(&p)).await?;
        Ok(OpenVolume {
            handle: Arc::new(handle),
            scope: prefix.clone(),
            ..self
        })
    }

    /// Runs a read-only data-plane operation.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&VolumeHandle) -> FsResult<T> + Send + 'static,
    ) -> Result<T, Error> {
        let (h, name) = (self.handle.clone(), self.volume.name.clone());
        blocking(move || op(&h).map_err(|e| e.in_volume(&name))).await
    }

    /// Runs an operation that may change the volume, then records its usage in the control
    /// plane: the one place where API changes reach the stored usage figure.
    async fn changing<R: Send + 'static>(
        &self,
        op: impl FnOnce(&VolumeHandle) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let h = self.handle.clone();
        let out = match tokio::task::spawn_blocking(move || op(&h)).await {
            Ok(r) => r,
            Err(e) => return Err(Error::internal(format!("blocking task failed: {e}"))),
        };
        self.service.record_usage(&self.handle);
        Ok(out)
    }

    /// [`OpenVolume::changing`] for operations with the data plane's errors.
    async fn change<T: Send + 'static>(
        &self,
        op: impl FnOnce(&VolumeHandle) -> FsResult<T> + Send + 'static,
    ) -> Result<T, Error> {
        let name = self.volume.name.clone();
        self.changing(op).await?.map_err(|e| e.in_volume(&name))
    }

    /// Opens a regular file for reading (a FIFO or device is refused), with its stat.
    pub async fn open_read(&self, path: VolumePath) -> Result<(std::fs::File, FileStat), Error> {
        self.run(move |h| h.open_read(&path)).await
    }

    /// Starts an atomic write of `path`: bytes go to a temporary file until
    /// [`OpenVolume::commit_write`].
    pub async fn begin_write(&self, path: VolumePath) -> Result<PendingWrite, Error> {
        let (h, name) = (self.handle.clone(), self.volume.name.clone());
        blocking(move || h.begin_write(&path).map_err(|e| e.in_volume(&name))).await
    }

    /// Publishes a pending write.
    pub async fn commit_write(
        &self,
        pending: PendingWrite,
        opts: WriteOptions,
    ) -> Result<FileStat, Error> {
        self.change(move |_| pending.commit(&opts)).await
    }

    /// Writes every file of a tar stream below `dest`, all or nothing.
    pub async fn write_batch(
        &self,
        tar: impl Read + Send + 'static,
        dest: VolumePath,
    ) -> Result<BatchResult, Error> {
        self.change(move |h| h.write_batch(tar, &dest)).await
    }

    pub async fn mkdir(&self, path: VolumePath, parents: bool) -> Result<FileStat, Error> {
        self.run(move |h| h.mkdir(&path, parents)).await
    }

    pub async fn rename(
        &self,
        src: VolumePath,
        dst: VolumePath,
        overwrite: bool,
    ) -> Result<FileStat, Error> {
        self.change(move |h| h.rename(&src, &dst, overwrite)).await
    }

    pub async fn copy(
        &self,
        src: VolumePath,
        dst: VolumePath,
        overwrite: bool,
        recursive: bool,
    ) -> Result<FileStat, Error> {
        self.change(move |h| h.copy(&src, &dst, overwrite, recursive))
            .await
    }

    pub async fn remove(&self, path: VolumePath, recursive: bool) -> Result<(), Error> {
        self.change(move |h| h.remove(&path, recursive)).await
    }

    pub async fn list(&self, path: VolumePath, opts: ListOptions) -> Result<ListPage, Error> {
        self.run(move |h| h.list(&path, &opts)).await
    }

    pub async fn stat(&self, path: VolumePath) -> Result<FileStat, Error> {
        self.run(move |h| h.stat(&path)).await
    }

    pub async fn exists(&self, path: VolumePath) -> Result<bool, Error> {
        self.run(move |h| h.exists(&path)).await
    }

    /// Searches file contents below `path`, handing the matches to `on_block` as NDJSON in
    /// path order, in blocks of whole lines (see `VolumeHandle::search_ndjson`; it returns
    /// `false` to stop).
    pub async fn search(
        &self,
        path: VolumePath,
        opts: SearchOptions,
        mut on_block: impl FnMut(Vec<u8>) -> bool + Send + 'static,
    ) -> Result<SearchSummary, Error> {
        self.run(move |h| h.search_ndjson(&path, &opts, &mut on_block))
            .await
    }

    pub async fn replace(
        &self,
        path: VolumePath,
        opts: ReplaceOptions,
    ) -> Result<ReplaceSummary, Error> {
        self.change(move |h| h.replace(&path, &opts)).await
    }

    pub async fn edit(
        &self,
        path: VolumePath,
        old: String,
        new: String,
        count: Option<u64>,
        if_match: Option<String>,
    ) -> Result<FileStat, Error> {
        self.change(move |h| h.edit(&path, &old, &new, count, if_match))
            .await
    }

    /// Writes the directory `path` as an archive into `out`.
    pub async fn archive(
        &self,
        path: VolumePath,
        format: ArchiveFormat,
        mut out: impl Write + Send + 'static,
    ) -> Result<(), Error> {
        self.run(move |h| {
            h.archive(&path, format, &mut out)?;
            out.flush()
                .map_err(|source| nullspace_volumes::FsError::Io {
                    path: path.to_string(),
                    source,
                })
        })
        .await
    }

    /// Subscribes to the volume's changes after `last_event_id`. The subscription holds the
    /// volume open.
    pub async fn watch(&self, last_event_id: Option<u64>) -> Result<Watching, Error> {
        let sub = self.run(move |h| h.watch(last_event_id)).await?;
        Ok(Watching {
            sub,
            guard: WatchGuard(self.handle.clone()),
        })
    }

    /// Starts a resumable upload of `length` bytes to `dest` (an empty one is published at
    /// once).
    pub async fn upload_create(
        &self,
        dest: VolumePath,
        length: u64,
        metadata: Option<String>,
        ttl: chrono::Duration,
    ) -> Result<Result<UploadState, UploadError>, Error> {
        self.changing(move |h| h.upload_create(&dest, length, metadata, ttl))
            .await
    }

    /// Appends to an upload at `offset`; the upload's file is published when the last byte
    /// arrives (and then counts in the volume's usage).
    pub async fn upload_append(
        &self,
        id: String,
        offset: u64,
        body: impl Read + Send + 'static,
        checksum: Option<ChunkChecksum>,
    ) -> Result<Result<UploadState, UploadError>, Error> {
        self.changing(move |h| h.upload_append(&id, offset, body, checksum))
            .await
    }

    pub async fn upload_state(
        &self,
        id: String,
    ) -> Result<Result<UploadState, UploadError>, Error> {
        let h = self.handle.clone();
        blocking(move || Ok(h.upload_state(&id))).await
    }

    /// The volume's uploads still waiting for bytes, oldest first.
    pub async fn pending_uploads(&self) -> Result<Vec<UploadState>, Error> {
        self.run(|h| Ok(h.pending_uploads())).await
    }

    pub async fn upload_delete(&self, id: String) -> Result<Result<(), UploadError>, Error> {
        let h = self.handle.clone();
        blocking(move || Ok(h.upload_delete(&id))).await
    }
}

/// A live subscription to a volume's changes; keeps the volume (and its file-system event
/// source) open while it lives.
pub struct Watching {
    pub sub: Subscription,
    /// Keep it as long as the subscription is used.
    pub guard: WatchGuard,
}

/// Holds a watched volume open.
pub struct WatchGuard(#[allow(dead_code)] Arc<VolumeHandle>);
