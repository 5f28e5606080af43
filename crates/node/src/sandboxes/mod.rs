//! The sandbox use cases: the tenant-facing face of this server's sandbox runtime.
//!
//! The runtime knows sandboxes and mounts (by host path) and keeps its own host state
//! (processes, cgroups, writable layers) under `<data>/sandboxes/servers/<server-id>/`. What the
//! product needs on top — owning tenant, the server that runs it, volume names, attachment ids,
//! states and timestamps, the timeout's deadline — is a `SandboxRecord` in the control-plane
//! store, so every server sharing the database lists and shows every sandbox. Only the server
//! named in a record runs it: an operation that needs the runtime, sent to another server, is
//! `unavailable` naming the server that runs it (see ARCHITECTURE.md for why not forwarding).
//! After each operation the owning server writes what its runtime now says (state, attachment
//! states) to the record. Every runtime call blocks and runs on the blocking pool, through
//! [`SandboxService::runtime`] or, when sandbox code may have written to volumes,
//! [`SandboxService::work`] — the one place that re-measures those volumes afterwards.

mod expiry;
mod records;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nullspace_core::wire::{
    Attachment, Command, CreateSandbox, ExecOutput, ExecRequest, Sandbox, SandboxDirEntry,
    VolumeMount, EXEC_OUTPUT_BUDGET,
};
use nullspace_core::{AttachmentState, Error, ErrorCode, SandboxState, VolumePath};
use nullspace_sandbox::{MountSpec, Runtime, SandboxError, SandboxInfo, SandboxSpec};
use nullspace_state::{AttachmentRecord, Principal, SandboxRecord, StateStore};
use tokio_util::sync::CancellationToken;

use crate::limits;
use crate::volumes::VolumeService;
use records::{apply, deadline, new_id, now, written_volumes};

/// The longest an exec may run, in seconds; longer timeouts are cut to it.
pub const MAX_EXEC_TIMEOUT_SECS: f64 = 86_400.0;

/// A lifecycle operation that keeps the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Pause,
    Resume,
    Hibernate,
}

/// This server's sandboxes and their records. Cheap to clone.
#[derive(Clone)]
pub struct SandboxService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StateStore>,
    volumes: VolumeService,
    /// This server's id: the `server_id` of the records of the sandboxes it runs.
    server_id: String,
    /// The runtime, or why it is not running (routes that need it answer `unavailable`).
    runtime: Result<Runtime, String>,
    /// Serialises read-modify-write of this server's sandbox records (only the owning server
    /// changes a record, so a per-process lock is enough).
    records: tokio::sync::Mutex<()>,
    /// Wakes the expiry task when a sandbox with a deadline is created.
    deadlines: tokio::sync::Notify,
    shutdown: CancellationToken,
    /// What a sandbox gets when its create does not say.
    server_limits: nullspace_sandbox::Limits,
    /// The runtime of a sandbox whose create does not say.
    server_runtime: nullspace_sandbox::SandboxRuntime,
}

impl SandboxService {
    /// Starts the runtime in `root/servers/<server_id>` (blocking: it adopts the sandboxes an
    /// earlier run of this server left). When it cannot start, sandboxes are unavailable on
    /// this server and the reason is logged and kept. Records are reconciled by
    /// [`SandboxService::reconcile`] afterwards.
    pub(crate) async fn start(
        root: &Path,
        server_id: String,
        store: Arc<dyn StateStore>,
        volumes: VolumeService,
        server_limits: nullspace_sandbox::Limits,
        server_runtime: nullspace_sandbox::SandboxRuntime,
        shutdown: CancellationToken,
    ) -> SandboxService {
        let root = root.to_owned();
        let sid = server_id.clone();
        let runtime = match tokio::task::spawn_blocking(move || {
            expiry::retire_legacy_layout(&root);
            Runtime::new(root.join("servers").join(&sid)).map_err(|e| e.to_string())
        })
        .await
        {
            Ok(r) => r,
            Err(e) => Err(format!("the sandbox runtime failed to start: {e}")),
        };
        if let Err(why) = &runtime {
            tracing::warn!(reason = %why, "sandboxes are unavailable");
        }
        SandboxService {
            inner: Arc::new(Inner {
                store,
                volumes,
                server_id,
                runtime,
                records: tokio::sync::Mutex::new(()),
                deadlines: tokio::sync::Notify::new(),
                shutdown,
                server_limits,
                server_runtime,
            }),
        }
    }

    /// This server's id (the `server_id` of the records of the sandboxes it runs).
    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    /// Creates a sandbox for the caller, with its create-time volume mounts.
    pub async fn create(&self, caller: &Principal, req: CreateSandbox) -> Result<Sandbox, Error> {
        self.available()?;
        deadline(chrono::Utc::now(), req.timeout)?;
        let runtime = match req.runtime.as_deref() {
            None => self.inner.server_runtime,
            Some(r) => nullspace_sandbox::SandboxRuntime::parse(r).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "runtime must be \"namespace\" or \"gvisor\", not {r:?}"
                ))
            })?,
        };
        let defaults = *self.inner.volumes.tenant_defaults();
        let (tenant, usage) = limits::in_force(&*self.inner.store, caller, &defaults).await?;
        let chosen = limits::choose(&req, &self.inner.server_limits, &tenant)?;
        limits::room_for(&tenant, &usage, &limits::recorded(&chosen))?;
        let id = new_id("sb");
        let mut spec = SandboxSpec::new(id.clone());
        spec.template = req.template;
        spec.env = req.env;
        spec.limits = chosen;
        spec.runtime = runtime;
        let mut atts = Vec::new();
        for (i, m) in req.volumes.iter().enumerate() {
            let (mount, att) = self
                .resolve_mount(caller, m, &format!("volumes[{i}]"))
                .await?;
            spec.mounts.push(mount);
            atts.push(att);
        }
        let info = self.runtime(move |r| r.create(spec)).await?;
        let created_at = now();
        let mut rec = SandboxRecord {
            id,
            tenant_id: caller.tenant_id.clone(),
            server_id: self.inner.server_id.clone(),
            name: req.name,
            template: info.template.clone(),
            state: info.state,
            timeout_secs: req.timeout,
            expires_at: deadline(created_at, req.timeout)?,
            created_at,
            updated_at: created_at,
            attachments: atts,
            limits: limits::recorded(&chosen),
            runtime: info.runtime.as_str().to_string(),
        };
        apply(&mut rec, &info, created_at);
        self.store_new(&rec).await?;
        Ok(records::sandbox(&rec))
    }

    /// The caller's sandboxes (every server's), those this server runs as its runtime sees
    /// them now.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Sandbox>, Error> {
        let mut recs = self.inner.store.list_sandboxes(&caller.tenant_id).await?;
        if self.inner.runtime.is_ok() {
            let infos = self.runtime(|r| Ok(r.list())).await?;
            let now = now();
            for rec in recs
                .iter_mut()
                .filter(|r| r.server_id == self.inner.server_id)
            {
                if let Some(info) = infos.iter().find(|i| i.id == rec.id) {
                    apply(rec, info, now);
                }
            }
        }
        Ok(recs.iter().map(records::sandbox).collect())
    }

    /// The caller's sandbox.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Sandbox, Error> {
        Ok(records::sandbox(&self.current(caller, id).await?))
    }

    /// The caller's sandbox's attachments.
    pub async fn attachments(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<Vec<Attachment>, Error> {
        let rec = self.current(caller, id).await?;
        Ok(rec
            .attachments
            .iter()
            .map(|a| records::attachment(id, a))
            .collect())
    }

    /// Destroys the caller's sandbox; its volumes and their data stay.
    pub async fn destroy(&self, caller: &Principal, id: &str) -> Result<(), Error> {
        let rec = self.owned(caller, id).await?;
        self.remove(&rec).await
    }

    /// Runs a command in the caller's sandbox (waking it if hibernated).
    pub async fn exec(
        &self,
        caller: &Principal,
        id: &str,
        body: ExecRequest,
    ) -> Result<ExecOutput, Error> {
        let rec = self.owned(caller, id).await?;
        let mut req = match body.cmd {
            Command::Argv(a) if a.is_empty() => {
                return Err(Error::invalid_argument("cmd must not be empty"))
            }
            Command::Argv(a) => nullspace_sandbox::ExecRequest::new(a),
            Command::Shell(c) => nullspace_sandbox::ExecRequest::shell(c),
        };
        req.env = body.env;
        req.cwd = body.cwd;
        req.stdin = body.stdin.map(String::into_bytes);
        if let Some(t) = body.timeout {
            if !(t.is_finite() && t > 0.0 && t <= MAX_EXEC_TIMEOUT_SECS) {
                return Err(Error::invalid_argument(format!(
                    "timeout must be a positive number of seconds, at most {MAX_EXEC_TIMEOUT_SECS} (one day)"
                )));
            }
            req.timeout = Some(Duration::from_secs_f64(t));
        }
        // No stream can need more raw bytes than the answer's encoded budget, so the runtime
        // keeps at most that much of each: server memory per exec stays within about three
        // budgets (two streams and the answer).
        req.max_output = Some(EXEC_OUTPUT_BUDGET);
        let sid = id.to_owned();
        let out = self.work(&rec, move |r| r.exec(&sid, req)).await?;
        self.woken(&rec).await?;
        Ok(ExecOutput {
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            oom_killed: out.oom_killed,
            ..ExecOutput::encode(&out.stdout, &out.stderr, out.truncated, EXEC_OUTPUT_BUDGET)
        })
    }

    /// A file as the sandbox sees it.
    pub async fn read_file(
        &self,
        caller: &Principal,
        id: &str,
        path: String,
    ) -> Result<Vec<u8>, Error> {
        let rec = self.owned(caller, id).await?;
        let sid = id.to_owned();
        let data = self.runtime(move |r| r.read_file(&sid, &path)).await?;
        self.woken(&rec).await?;
        Ok(data)
    }

    /// Writes (replaces) a file inside the sandbox.
    pub async fn write_file(
        &self,
        caller: &Principal,
        id: &str,
        path: String,
        data: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<(), Error> {
        let rec = self.owned(caller, id).await?;
        let sid = id.to_owned();
        self.work(&rec, move |r| r.write_file(&sid, &path, data.as_ref()))
            .await?;
        self.woken(&rec).await
    }

    /// A directory's entries as the sandbox sees it.
    pub async fn list_files(
        &self,
        caller: &Principal,
        id: &str,
        path: String,
    ) -> Result<Vec<SandboxDirEntry>, Error> {
        let rec = self.owned(caller, id).await?;
        let sid = id.to_owned();
        let entries = self.runtime(move |r| r.list_dir(&sid, &path)).await?;
        self.woken(&rec).await?;
        Ok(entries
            .into_iter()
            .map(|e| SandboxDirEntry {
                name: e.name,
                kind: e.kind,
                size: e.size,
            })
            .collect())
    }

    /// Attaches one of the caller's volumes to a sandbox; the record says whether it mounted.
    pub async fn attach(
        &self,
        caller: &Principal,
        id: &str,
        m: VolumeMount,
    ) -> Result<Attachment, Error> {
        self.owned(caller, id).await?;
        let (spec, att) = self.resolve_mount(caller, &m, "").await?;
        let sid = id.to_owned();
        self.runtime(move |r| r.attach(&sid, spec)).await?;
        let att_id = att.id.clone();
        let rec = match self
            .update(&caller.tenant_id, id, |rec| rec.attachments.push(att))
            .await
        {
            Ok(rec) => rec,
            Err(e) => {
                // No mount without a record (e.g. the volume was deleted meanwhile).
                let (sid, path) = (id.to_owned(), m.mount_path.clone());
                let _ = self.runtime(move |r| r.detach(&sid, &path)).await;
                return Err(e);
            }
        };
        let att = rec
            .attachments
            .iter()
            .find(|a| a.id == att_id)
            .ok_or_else(|| Error::internal(format!("attachment {att_id} vanished from {id}")))?;
        Ok(records::attachment(id, att))
    }

    /// Detaches the volume at `mount_path`; answers the released record.
    pub async fn detach(
        &self,
        caller: &Principal,
        id: &str,
        mount_path: &str,
    ) -> Result<Attachment, Error> {
        let rec = self.owned(caller, id).await?;
        let Some(mut att) = rec
            .attachments
            .iter()
            .find(|a| a.mount_path == mount_path)
            .cloned()
        else {
            return Err(Error::not_found(format!(
                "sandbox {id:?} has no attachment at {mount_path:?}"
            )));
        };
        let written = if att.read_only {
            Vec::new()
        } else {
            vec![att.volume_id.clone()]
        };
        let (sid, path) = (id.to_owned(), mount_path.to_owned());
        self.work_on(written, move |r| r.detach(&sid, &path))
            .await?;
        self.update(&caller.tenant_id, id, |rec| {
            rec.attachments.retain(|a| a.mount_path != mount_path)
        })
        .await?;
        att.state = AttachmentState::Released;
        att.error = None;
        att.updated_at = now();
        Ok(records::attachment(id, &att))
    }

    /// Pauses, resumes or hibernates the caller's sandbox; answers its record.
    pub async fn lifecycle(
        &self,
        caller: &Principal,
        id: &str,
        op: Lifecycle,
    ) -> Result<Sandbox, Error> {
        let before = self.owned(caller, id).await?;
        let sid = id.to_owned();
        // Paused or hibernated processes write no more: `work` takes stock of what they wrote.
        self.work(&before, move |r| match op {
            Lifecycle::Pause => r.pause(&sid),
            Lifecycle::Resume => r.resume(&sid),
            Lifecycle::Hibernate => r.hibernate(&sid),
        })
        .await?;
        let rec = self.refresh(&caller.tenant_id, id).await?;
        Ok(records::sandbox(&rec))
    }

    /// Forks the caller's sandbox: a copy of its own file system, with the same volumes
    /// attached again. Answers the new sandbox's record.
    pub async fn fork(&self, caller: &Principal, id: &str) -> Result<Sandbox, Error> {
        let src = self.owned(caller, id).await?;
        // A fork is a new sandbox with its source's limits.
        let defaults = *self.inner.volumes.tenant_defaults();
        let (tenant, usage) = limits::in_force(&*self.inner.store, caller, &defaults).await?;
        limits::room_for(&tenant, &usage, &src.limits)?;
        let new_id = new_id("sb");
        let (sid, nid) = (id.to_owned(), new_id.clone());
        let info = self.runtime(move |r| r.fork(&sid, &nid)).await?;
        let created_at = now();
        let mut rec = SandboxRecord {
            id: new_id,
            name: None,
            state: info.state,
            expires_at: deadline(created_at, src.timeout_secs)?,
            created_at,
            updated_at: created_at,
            attachments: src
                .attachments
                .iter()
                .map(|a| AttachmentRecord {
                    id: records::new_id("att"),
                    created_at,
                    updated_at: created_at,
                    ..a.clone()
                })
                .collect(),
            ..src
        };
        apply(&mut rec, &info, created_at);
        self.store_new(&rec).await?;
        Ok(records::sandbox(&rec))
    }

    /// For a volume's delete: fails with `volume_in_use` when a sandbox (on any server) has
    /// the volume attached, unless `force`, which detaches it from every such sandbox first —
    /// possible only when this server runs them all (else `unavailable` naming the server).
    pub(crate) async fn release_volume(
        &self,
        volume_id: &str,
        volume_name: &str,
        force: bool,
    ) -> Result<(), Error> {
        let users = self.inner.store.volume_sandboxes(volume_id).await?;
        if users.is_empty() {
            return Ok(());
        }
        if !force {
            let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
            return Err(Error::volume_in_use(format!(
                "volume {volume_name:?} is attached to sandbox(es) {}; detach it or delete with force",
                ids.join(", ")
            )));
        }
        for rec in &users {
            self.owner(rec).map_err(|_| {
                Error::unavailable(format!(
                    "volume {volume_name:?} is attached to sandbox {:?}, which runs on server {:?}; \
                     delete the volume through that server",
                    rec.id, rec.server_id
                ))
            })?;
        }
        for rec in &users {
            for a in rec.attachments.iter().filter(|a| a.volume_id == volume_id) {
                let (sid, p) = (rec.id.clone(), a.mount_path.clone());
                match self.runtime(move |r| r.detach(&sid, &p)).await {
                    Ok(()) => {}
                    Err(e) if e.code == ErrorCode::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            self.update(&rec.tenant_id, &rec.id, |r| {
                r.attachments.retain(|a| a.volume_id != volume_id)
            })
            .await?;
        }
        Ok(())
    }

    // ---- records and the runtime ----

    fn available(&self) -> Result<&Runtime, Error> {
        self.inner
            .runtime
            .as_ref()
            .map_err(|why| Error::unavailable(format!("sandboxes are unavailable: {why}")))
    }

    /// Runs `f` on the runtime on the blocking pool.
    async fn runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, Error> {
        self.available()?;
        let inner = self.inner.clone();
        crate::blocking(move || match &inner.runtime {
            Ok(r) => f(r).map_err(runtime_error),
            Err(why) => Err(Error::unavailable(format!(
                "sandboxes are unavailable: {why}"
            ))),
        })
        .await
    }

    /// Runs sandbox work that may write to the volumes `rec` has attached read-write.
    async fn work<T: Send + 'static>(
        &self,
        rec: &SandboxRecord,
        f: impl FnOnce(&Runtime) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, Error> {
        self.work_on(written_volumes(rec), f).await
    }

    /// Runs sandbox work, then measures the volumes `written` again: what sandbox code wrote
    /// to them counts now, also when the work failed or timed out. The one place where
    /// sandbox work reaches volume usage.
    async fn work_on<T: Send + 'static>(
        &self,
        written: Vec<String>,
        f: impl FnOnce(&Runtime) -> Result<T, SandboxError> + Send + 'static,
    ) -> Result<T, Error> {
        let out = self.runtime(f).await;
        self.inner.volumes.remeasure(written, Duration::ZERO).await;
        out
    }

    /// The caller's sandbox record (whichever server runs it), or `not_found`.
    async fn record(&self, caller: &Principal, id: &str) -> Result<SandboxRecord, Error> {
        Ok(self.inner.store.get_sandbox(&caller.tenant_id, id).await?)
    }

    /// Whether this server runs `rec`; otherwise `unavailable` naming the server that does.
    fn owner(&self, rec: &SandboxRecord) -> Result<(), Error> {
        match &self.inner.runtime {
            Ok(_) if self.inner.server_id == rec.server_id => Ok(()),
            Ok(_) => Err(Error::unavailable(format!(
                "sandbox {:?} runs on server {:?}; send this request to that server",
                rec.id, rec.server_id
            ))),
            Err(why) => Err(Error::unavailable(format!(
                "sandbox {:?} runs on server {:?}, and sandboxes are unavailable on this one: {why}",
                rec.id, rec.server_id
            ))),
        }
    }

    /// The caller's sandbox, if this server runs it.
    async fn owned(&self, caller: &Principal, id: &str) -> Result<SandboxRecord, Error> {
        let rec = self.record(caller, id).await?;
        self.owner(&rec)?;
        Ok(rec)
    }

    /// The caller's sandbox record, brought up to date first when this server runs it.
    async fn current(&self, caller: &Principal, id: &str) -> Result<SandboxRecord, Error> {
        let rec = self.record(caller, id).await?;
        match self.owner(&rec) {
            Ok(()) => self.refresh(&caller.tenant_id, id).await,
            Err(_) => Ok(rec),
        }
    }

    /// After exec or files, which wake a hibernated sandbox: records its new state.
    async fn woken(&self, rec: &SandboxRecord) -> Result<(), Error> {
        if rec.state != SandboxState::Running {
            self.refresh(&rec.tenant_id, &rec.id).await?;
        }
        Ok(())
    }

    /// Changes this server's record of sandbox `id` under the records lock: `f` gets the
    /// stored record, then the runtime's view of the sandbox is applied (when the runtime
    /// still has it), and the result is stored when it differs. Returns the stored record.
    async fn update(
        &self,
        tenant_id: &str,
        id: &str,
        f: impl FnOnce(&mut SandboxRecord),
    ) -> Result<SandboxRecord, Error> {
        let _guard = self.inner.records.lock().await;
        let mut rec = self.inner.store.get_sandbox(tenant_id, id).await?;
        let before = rec.clone();
        f(&mut rec);
        let sid = id.to_owned();
        if let Ok(info) = self.runtime(move |r| r.info(&sid)).await {
            apply(&mut rec, &info, now());
        }
        if rec != before {
            self.inner.store.update_sandbox(&rec).await?;
        }
        Ok(rec)
    }

    /// Re-reads the runtime's view of sandbox `id` into its record.
    async fn refresh(&self, tenant_id: &str, id: &str) -> Result<SandboxRecord, Error> {
        self.update(tenant_id, id, |_| {}).await
    }

    /// Destroys a sandbox in the runtime (already gone is fine) and removes its record.
    async fn remove(&self, rec: &SandboxRecord) -> Result<(), Error> {
        let sid = rec.id.clone();
        match self.work(rec, move |r| r.destroy(&sid)).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
        let _guard = self.inner.records.lock().await;
        match self.inner.store.delete_sandbox(&rec.id).await {
            Ok(()) | Err(nullspace_state::StateError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves one requested mount: the caller's volume, its data directory and the
    /// attachment record it will have. `field` names the mount in errors (`volumes[0]`).
    async fn resolve_mount(
        &self,
        caller: &Principal,
        m: &VolumeMount,
        field: &str,
    ) -> Result<(MountSpec, AttachmentRecord), Error> {
        let subpath = match m.subpath.as_deref() {
            None => None,
            Some(s) => {
                let abs = if s.starts_with('/') {
                    s.to_owned()
                } else {
                    format!("/{s}")
                };
                let p = VolumePath::parse(&abs).map_err(|e| {
                    let at = if field.is_empty() {
                        "subpath".to_owned()
                    } else {
                        format!("{field}.subpath")
                    };
                    Error::invalid_argument(format!("invalid {at}: {}", e.message))
                })?;
                Some(p)
            }
        };
        // Opening it now also measures it, so that what the sandbox writes is measured later.
        let vol = self.inner.volumes.open(caller, &m.volume).await?;
        let v = vol.volume.clone();
        let (data, id, name) = (
            self.inner.volumes.data().clone(),
            v.id.clone(),
            v.name.clone(),
        );
        let dir =
            crate::blocking(move || data.data_dir(&id).map_err(|e| e.in_volume(&name))).await?;
        let mut spec = MountSpec::new(dir, m.mount_path.clone());
        spec.read_only = m.read_only;
        spec.subpath = subpath.filter(|p| !p.is_root());
        let now = now();
        let att = AttachmentRecord {
            id: new_id("att"),
            volume_id: v.id.clone(),
            volume_name: v.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only,
            subpath: spec.subpath.as_ref().map(|p| p.relative().to_owned()),
            state: AttachmentState::Mounted,
            error: None,
            created_at: now,
            updated_at: now,
        };
        Ok((spec, att))
    }

    /// Stores the record of a sandbox the runtime just made; if that fails, the sandbox is
    /// destroyed again (no sandbox without a record).
    async fn store_new(&self, rec: &SandboxRecord) -> Result<(), Error> {
        let stored = {
            let _guard = self.inner.records.lock().await;
            let defaults = self.inner.volumes.tenant_defaults();
            self.inner.store.create_sandbox_within(rec, defaults).await
        };
        if let Err(e) = stored {
            let id = rec.id.clone();
            let _ = self.runtime(move |r| r.destroy(&id)).await;
            return Err(e.into());
        }
        if rec.expires_at.is_some() {
            self.inner.deadlines.notify_one();
        }
        Ok(())
    }
}

/// What the runtime says of one sandbox, for reconciliation.
fn live_ids(infos: Vec<SandboxInfo>) -> std::collections::HashSet<String> {
    infos.into_iter().map(|i| i.id).collect()
}

/// A runtime error as the API says it. A write into a read-only place (a read-only mount, the
/// sandbox's read-only `/usr`) is `permission_denied`, as is a permission error: the caller
/// asked for something the sandbox does not allow, not a server fault.
fn runtime_error(e: SandboxError) -> Error {
    if let SandboxError::Sys { source, .. } = &e {
        match source.raw_os_error() {
            Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => {
                return Error::new(
                    ErrorCode::PermissionDenied,
                    format!("{e}: the file system is read-only"),
                );
            }
            Some(code)
                if code == rustix::io::Errno::ACCESS.raw_os_error()
                    || code == rustix::io::Errno::PERM.raw_os_error() =>
            {
                return Error::new(ErrorCode::PermissionDenied, e.to_string());
            }
            _ => {}
        }
    }
    Error::from(e)
}
