//! Sandbox routes: the tenant-facing face of the local sandbox runtime (`nullspace-sandbox`).
//!
//! The runtime knows sandboxes and mounts (by host path) and keeps its own host state
//! (processes, cgroups, writable layers) under `<data>/sandboxes/servers/<server-id>/`. What the product
//! needs on top — owning tenant, the server that runs it, volume names, attachment ids, states
//! and timestamps, the timeout's deadline — is a `SandboxRecord` in the control-plane store, so
//! every server sharing the database lists and shows every sandbox. Only the server named in a
//! record runs it: an operation that needs the runtime, sent to another server, is
//! `unavailable` naming the server that runs it (see ARCHITECTURE.md for why not forwarding).
//! After each operation the owning server writes what its runtime now says (state, attachment
//! states) to the record. Every runtime call blocks and runs on the blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use nullspace_core::{Error, ErrorCode};
use nullspace_sandbox::{
    ExecRequest, MountSpec, MountState, Runtime, SandboxError, SandboxInfo, SandboxSpec,
    SandboxState,
};
use nullspace_state::{AttachmentRecord, SandboxRecord};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::{blocking, AppState};

/// Why the runtime is not running (set by the server when it could not start it).
static UNAVAILABLE: OnceLock<String> = OnceLock::new();

/// Records why sandboxes are unavailable on this server.
pub(crate) fn set_unavailable_reason(reason: String) {
    let _ = UNAVAILABLE.set(reason);
}

/// How long the expiry task sleeps at most between looks at the deadlines (a new deadline
/// wakes it at once; this only bounds the effect of a missed wake-up or a database outage).
const EXPIRY_RECHECK: Duration = Duration::from_secs(60);

/// The sandbox runtime of this server and its identity.
pub struct SandboxRuntimeState {
    runtime: Runtime,
    /// This server's id: the `server_id` of the records of the sandboxes it runs.
    server_id: String,
    /// Serialises read-modify-write of this server's sandbox records (only the owning server
    /// changes a record, so a per-process lock is enough).
    records: tokio::sync::Mutex<()>,
    /// Wakes the expiry task when a sandbox with a deadline is created.
    deadlines: tokio::sync::Notify,
}

impl SandboxRuntimeState {
    /// Starts the runtime over `state_dir` (blocking: the runtime adopts the sandboxes an
    /// earlier run of this server left). Records are reconciled by [`reconcile`] afterwards.
    pub fn open(state_dir: PathBuf, server_id: String) -> Result<SandboxRuntimeState, String> {
        let runtime = Runtime::new(&state_dir).map_err(|e| e.to_string())?;
        Ok(SandboxRuntimeState {
            runtime,
            server_id,
            records: tokio::sync::Mutex::new(()),
            deadlines: tokio::sync::Notify::new(),
        })
    }
}

/// Before sandbox records moved into the control-plane store, one runtime used
/// `<data>/sandboxes` itself and the records were `<data>/sandboxes/records.json`. Those
/// sandboxes have no record any server would read, so they are destroyed (their volumes are
/// untouched) and the old files removed, once, with a warning.
pub(crate) fn retire_legacy_layout(root: &std::path::Path) {
    if !root.join("sandboxes").is_dir() {
        return;
    }
    tracing::warn!(dir = %root.display(), "destroying the sandboxes of the old single-server layout (their records were not in the database)");
    match Runtime::new(root) {
        Ok(rt) => {
            if let Err(e) = rt.destroy_all() {
                tracing::warn!(error = %e, "could not destroy every old sandbox");
                return;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not open the old sandbox layout");
            return;
        }
    }
    for old in ["sandboxes", "templates"] {
        let _ = std::fs::remove_dir_all(root.join(old));
    }
    let _ = std::fs::remove_file(root.join("records.json"));
}

/// Ids of the volumes a sandbox has attached read-write: what its code may have changed.
fn written_volumes(rec: &SandboxRecord) -> Vec<String> {
    let mut ids: Vec<String> = rec
        .attachments
        .iter()
        .filter(|a| !a.read_only)
        .map(|a| a.volume_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A runtime error in the API's taxonomy.
fn sb_err(e: SandboxError) -> Error {
    let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::Internal);
    Error::new(code, e.to_string())
}

fn why_unavailable() -> &'static str {
    UNAVAILABLE
        .get()
        .map(String::as_str)
        .unwrap_or("the sandbox runtime is not running on this server")
}

impl AppState {
    fn sandboxes(&self) -> ApiResult<Arc<SandboxRuntimeState>> {
        self.sandboxes.clone().ok_or_else(|| {
            Error::unavailable(format!("sandboxes are unavailable: {}", why_unavailable())).into()
        })
    }

    /// The caller's sandbox record (whichever server runs it), or `not_found`.
    async fn sandbox_record(&self, caller: &Caller, id: &str) -> ApiResult<SandboxRecord> {
        Ok(self.store.get_sandbox(&caller.0.tenant_id, id).await?)
    }

    /// This server's runtime when it runs `rec`; otherwise `unavailable` naming the server
    /// that does.
    fn owner(&self, rec: &SandboxRecord) -> ApiResult<Arc<SandboxRuntimeState>> {
        match &self.sandboxes {
            Some(s) if s.server_id == rec.server_id => Ok(s.clone()),
            Some(_) => Err(Error::unavailable(format!(
                "sandbox {:?} runs on server {:?}; send this request to that server",
                rec.id, rec.server_id
            ))
            .into()),
            None => Err(Error::unavailable(format!(
                "sandbox {:?} runs on server {:?}, and sandboxes are unavailable on this one: {}",
                rec.id,
                rec.server_id,
                why_unavailable()
            ))
            .into()),
        }
    }

    /// The caller's sandbox, if this server runs it: its record and the runtime.
    async fn owned(
        &self,
        caller: &Caller,
        id: &str,
    ) -> ApiResult<(SandboxRecord, Arc<SandboxRuntimeState>)> {
        let rec = self.sandbox_record(caller, id).await?;
        let s = self.owner(&rec)?;
        Ok((rec, s))
    }
}

fn state_str(s: SandboxState) -> &'static str {
    match s {
        SandboxState::Running => "running",
        SandboxState::Paused => "paused",
        SandboxState::Hibernated => "hibernated",
    }
}

/// Brings a record in line with what the runtime says (sandbox state, each attachment's state
/// and error); timestamps move only where something changed. Returns whether it changed.
fn apply(rec: &mut SandboxRecord, info: &SandboxInfo, now: DateTime<Utc>) -> bool {
    let mut changed = false;
    let state = state_str(info.state);
    if rec.state != state {
        rec.state = state.to_owned();
        changed = true;
    }
    for a in &mut rec.attachments {
        let (state, error) = match info.mounts.iter().find(|m| m.spec.target == a.mount_path) {
            Some(m) => (
                match m.state {
                    MountState::Mounted => "mounted",
                    MountState::Released => "released",
                    MountState::Failed => "failed",
                },
                m.error.clone(),
            ),
            None => ("released", None),
        };
        if a.state != state || a.error != error {
            a.state = state.to_owned();
            a.error = error;
            a.updated_at = now;
            changed = true;
        }
    }
    if changed {
        rec.updated_at = now;
    }
    changed
}

/// The current time at the precision the store keeps (microseconds), so records read back
/// equal what was written.
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

impl SandboxRuntimeState {
    /// Changes this server's record of sandbox `id` under the records lock: `f` gets the
    /// stored record and the runtime's view of the sandbox (`None` when the runtime no longer
    /// has it), and the result is stored when it differs. Returns the stored record.
    async fn update(
        self: &Arc<Self>,
        app: &AppState,
        tenant_id: &str,
        id: &str,
        f: impl FnOnce(&mut SandboxRecord),
    ) -> ApiResult<SandboxRecord> {
        let _guard = self.records.lock().await;
        let mut rec = app.store.get_sandbox(tenant_id, id).await?;
        let before = rec.clone();
        f(&mut rec);
        let sid = id.to_owned();
        if let Ok(info) = rt(self, move |r| r.info(&sid)).await {
            apply(&mut rec, &info, now());
        }
        if rec != before {
            app.store.update_sandbox(&rec).await?;
        }
        Ok(rec)
    }

    /// Re-reads the runtime's view of sandbox `id` into its record.
    async fn refresh(
        self: &Arc<Self>,
        app: &AppState,
        tenant_id: &str,
        id: &str,
    ) -> ApiResult<SandboxRecord> {
        self.update(app, tenant_id, id, |_| {}).await
    }

    /// Destroys sandbox `id` in the runtime (already gone is fine) and removes its record.
    async fn remove(self: &Arc<Self>, app: &AppState, id: &str) -> ApiResult<()> {
        let sid = id.to_owned();
        match rt(self, move |r| r.destroy(&sid)).await {
            Ok(()) => {}
            Err(e) if e.0.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
        let _guard = self.records.lock().await;
        match app.store.delete_sandbox(id).await {
            Ok(()) | Err(nullspace_state::StateError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Start-up reconciliation of this server's sandbox records with its runtime: a record whose
/// sandbox the runtime no longer has is removed; a runtime sandbox without a record (a crash
/// between the two steps of create or fork) is destroyed; a sandbox past its deadline is
/// destroyed; every other record gets the runtime's current states. Other servers' records
/// are left alone. Then starts the expiry task.
pub(crate) async fn reconcile(app: &AppState) -> anyhow::Result<()> {
    let Some(s) = app.sandboxes.clone() else {
        return Ok(());
    };
    let records = app.store.server_sandboxes(&s.server_id).await?;
    let live: HashSet<String> = rt(&s, |r| Ok(r.list()))
        .await
        .map_err(|e| anyhow::anyhow!(e.0.message))?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let known: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    for id in live.iter().filter(|id| !known.contains(id.as_str())) {
        tracing::info!(sandbox = %id, "destroying a sandbox that has no record");
        let sid = id.clone();
        rt(&s, move |r| r.destroy(&sid))
            .await
            .map_err(|e| anyhow::anyhow!(e.0.message))?;
    }
    let now = now();
    for rec in records {
        if !live.contains(&rec.id) {
            tracing::info!(sandbox = %rec.id, "removing the record of a sandbox the runtime no longer has");
            app.store.delete_sandbox(&rec.id).await?;
        } else if rec.expires_at.is_some_and(|t| t <= now) {
            tracing::info!(sandbox = %rec.id, "destroying a sandbox past its timeout");
            s.remove(app, &rec.id)
                .await
                .map_err(|e| anyhow::anyhow!(e.0.message))?;
        } else {
            s.refresh(app, &rec.tenant_id, &rec.id)
                .await
                .map_err(|e| anyhow::anyhow!(e.0.message))?;
        }
    }
    tokio::spawn(expire_forever(app.clone(), s));
    Ok(())
}

/// The expiry task: destroys this server's sandboxes whose deadline has passed, sleeping until
/// the next deadline (or a new one, or [`EXPIRY_RECHECK`]). Deadlines are in the records, so
/// they hold across restarts (start-up reconciliation destroys what expired meanwhile).
async fn expire_forever(app: AppState, s: Arc<SandboxRuntimeState>) {
    let shutdown = crate::shutdown_token().clone();
    loop {
        let wait = match expire_due(&app, &s).await {
            Ok(Some(next)) => (next - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(EXPIRY_RECHECK),
            Ok(None) => EXPIRY_RECHECK,
            Err(e) => {
                tracing::warn!(error = %e.0.message, "cannot expire sandboxes; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = s.deadlines.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Destroys the sandboxes past their deadline; returns the next deadline, if any.
async fn expire_due(
    app: &AppState,
    s: &Arc<SandboxRuntimeState>,
) -> ApiResult<Option<DateTime<Utc>>> {
    let now = Utc::now();
    let mut next: Option<DateTime<Utc>> = None;
    for rec in app.store.server_sandboxes(&s.server_id).await? {
        match rec.expires_at {
            Some(t) if t <= now => {
                tracing::info!(sandbox = %rec.id, timeout = ?rec.timeout_secs, "sandbox timed out; destroying it");
                s.remove(app, &rec.id).await?;
            }
            Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
            None => {}
        }
    }
    Ok(next)
}

/// A volume to mount: `{volume, mount_path, read_only, subpath}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// Name of one of the caller's volumes.
    pub volume: String,
    /// Absolute path inside the sandbox.
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    /// Mount only this directory of the volume (created if missing).
    #[serde(default)]
    pub subpath: Option<String>,
}

/// Body of `POST /v1/sandboxes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    #[serde(default = "base")]
    pub template: String,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Lifetime in seconds: the sandbox is destroyed this long after it was created (its
    /// attachments released, its volumes kept), whatever its state, across server restarts.
    #[serde(default)]
    pub timeout: Option<u64>,
}

fn base() -> String {
    "base".into()
}

/// The longest sandbox timeout accepted: one year.
const MAX_TIMEOUT_SECS: u64 = 366 * 86_400;

/// One attachment of a volume to a sandbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Attachment {
    pub id: String,
    pub sandbox_id: String,
    pub volume: String,
    pub mount_path: String,
    pub read_only: bool,
    pub subpath: Option<String>,
    /// `mounted`, `released` or `failed`.
    pub state: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sandbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Sandbox {
    pub id: String,
    pub name: Option<String>,
    pub template: String,
    /// `running`, `paused` or `hibernated`.
    pub state: String,
    /// The server that runs the sandbox; operations on it through any other server sharing
    /// the database are `unavailable`, naming this server.
    pub server_id: String,
    /// Lifetime in seconds given at create, if any.
    pub timeout: Option<u64>,
    /// When the sandbox will be destroyed (`created_at + timeout`).
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub attachments: Vec<Attachment>,
}

/// `{"sandboxes": [...]}`
#[derive(Serialize, utoipa::ToSchema)]
pub struct SandboxList {
    pub sandboxes: Vec<Sandbox>,
}

/// `{"attachments": [...]}`
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttachmentList {
    pub attachments: Vec<Attachment>,
}

fn attachment(sandbox_id: &str, a: &AttachmentRecord) -> Attachment {
    Attachment {
        id: a.id.clone(),
        sandbox_id: sandbox_id.to_owned(),
        volume: a.volume_name.clone(),
        mount_path: a.mount_path.clone(),
        read_only: a.read_only,
        subpath: a.subpath.clone(),
        state: a.state.clone(),
        error: a.error.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

fn record(rec: &SandboxRecord) -> Sandbox {
    Sandbox {
        id: rec.id.clone(),
        name: rec.name.clone(),
        template: rec.template.clone(),
        state: rec.state.clone(),
        server_id: rec.server_id.clone(),
        timeout: rec.timeout_secs,
        expires_at: rec.expires_at,
        created_at: rec.created_at,
        attachments: rec
            .attachments
            .iter()
            .map(|a| attachment(&rec.id, a))
            .collect(),
    }
}

/// Runs `f` on the runtime on the blocking pool.
async fn rt<T: Send + 'static>(
    s: &Arc<SandboxRuntimeState>,
    f: impl FnOnce(&Runtime) -> Result<T, SandboxError> + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    blocking(move || f(&s.runtime).map_err(sb_err)).await
}

/// Resolves one requested mount: the caller's volume and its data directory.
async fn resolve_mount(
    app: &AppState,
    caller: &Caller,
    m: &VolumeMount,
) -> ApiResult<(MountSpec, AttachmentRecord)> {
    let v = app.volume(&caller.0, &m.volume).await?;
    // Open (and measure) it now, so that what the sandbox writes is re-measured later on.
    app.handle(&v).await?;
    let (vols, id, name) = (app.volumes.clone(), v.id.clone(), v.name.clone());
    let dir = blocking(move || vols.data_dir(&id).map_err(|e| e.in_volume(&name))).await?;
    let mut spec = MountSpec::new(dir, m.mount_path.clone());
    spec.read_only = m.read_only;
    spec.subpath = m.subpath.clone();
    let now = now();
    let att = AttachmentRecord {
        id: format!("att-{}", uuid::Uuid::new_v4().simple()),
        volume_id: v.id.clone(),
        volume_name: v.name.clone(),
        mount_path: m.mount_path.clone(),
        read_only: m.read_only,
        subpath: m.subpath.clone(),
        state: "mounted".into(),
        error: None,
        created_at: now,
        updated_at: now,
    };
    Ok((spec, att))
}

/// Stores the record of a sandbox the runtime just made; if that fails, the sandbox is
/// destroyed again (no sandbox without a record).
async fn store_new(
    app: &AppState,
    s: &Arc<SandboxRuntimeState>,
    rec: &SandboxRecord,
) -> ApiResult<()> {
    let stored = {
        let _guard = s.records.lock().await;
        app.store.create_sandbox(rec).await
    };
    if let Err(e) = stored {
        let id = rec.id.clone();
        let _ = rt(s, move |r| r.destroy(&id)).await;
        return Err(e.into());
    }
    if rec.expires_at.is_some() {
        s.deadlines.notify_one();
    }
    Ok(())
}

/// `created_at + timeout`, or `invalid_argument` for a timeout of zero or beyond a year.
fn deadline(created_at: DateTime<Utc>, timeout: Option<u64>) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(t) = timeout else {
        return Ok(None);
    };
    if t == 0 || t > MAX_TIMEOUT_SECS {
        return Err(Error::invalid_argument(format!(
            "timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds, not {t}"
        ))
        .into());
    }
    Ok(Some(created_at + chrono::Duration::seconds(t as i64)))
}

#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = Sandbox), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn create_sandbox(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateSandbox>,
) -> ApiResult<Response> {
    let s = app.sandboxes()?;
    deadline(Utc::now(), req.timeout)?;
    let id = format!("sb-{}", uuid::Uuid::new_v4().simple());
    let mut spec = SandboxSpec::new(id.clone());
    spec.template = req.template;
    spec.env = req.env;
    let mut atts = Vec::new();
    for m in &req.volumes {
        let (mount, att) = resolve_mount(&app, &caller, m).await?;
        spec.mounts.push(mount);
        atts.push(att);
    }
    let info = rt(&s, move |r| r.create(spec)).await?;
    let created_at = now();
    let mut rec = SandboxRecord {
        id,
        tenant_id: caller.0.tenant_id.clone(),
        server_id: s.server_id.clone(),
        name: req.name,
        template: info.template.clone(),
        state: state_str(info.state).into(),
        timeout_secs: req.timeout,
        expires_at: deadline(created_at, req.timeout)?,
        created_at,
        updated_at: created_at,
        attachments: atts,
    };
    apply(&mut rec, &info, created_at);
    store_new(&app, &s, &rec).await?;
    Ok((StatusCode::CREATED, axum::Json(record(&rec))).into_response())
}

#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes",
    responses((status = 200, body = SandboxList), (status = 503, body = ErrorBody)))]
pub async fn list_sandboxes(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SandboxList>> {
    let mut recs = app.store.list_sandboxes(&caller.0.tenant_id).await?;
    // The ones this server runs are shown as its runtime sees them now.
    if let Some(s) = &app.sandboxes {
        let infos = rt(s, |r| Ok(r.list())).await?;
        let now = now();
        for rec in recs.iter_mut().filter(|r| r.server_id == s.server_id) {
            if let Some(info) = infos.iter().find(|i| i.id == rec.id) {
                apply(rec, info, now);
            }
        }
    }
    Ok(axum::Json(SandboxList {
        sandboxes: recs.iter().map(record).collect(),
    }))
}

/// The caller's sandbox record, brought up to date first when this server runs it.
async fn current(app: &AppState, caller: &Caller, id: &str) -> ApiResult<SandboxRecord> {
    let rec = app.sandbox_record(caller, id).await?;
    match app.owner(&rec) {
        Ok(s) => s.refresh(app, &caller.0.tenant_id, id).await,
        Err(_) => Ok(rec),
    }
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody)))]
pub async fn get_sandbox(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    Ok(axum::Json(record(&current(&app, &caller, &id).await?)))
}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn destroy_sandbox(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (rec, s) = app.owned(&caller, &id).await?;
    s.remove(&app, &id).await?;
    app.remeasure(written_volumes(&rec), Duration::ZERO).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A command: an argument list, or a string run by `sh -c`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

/// Body of `POST /v1/sandboxes/{id}/exec`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    pub cmd: Command,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Text for standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Seconds; the command is killed after this long.
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// What a command did (output decoded as UTF-8, invalid bytes replaced).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    pub timed_out: bool,
    pub truncated: bool,
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/exec", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ExecBody,
    responses((status = 200, body = ExecOutput), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ExecBody>,
) -> ApiResult<axum::Json<ExecOutput>> {
    let (rec, s) = app.owned(&caller, &id).await?;
    let mut req = match body.cmd {
        Command::Argv(a) if a.is_empty() => {
            return Err(Error::invalid_argument("cmd must not be empty").into())
        }
        Command::Argv(a) => ExecRequest::new(a),
        Command::Shell(c) => ExecRequest::shell(c),
    };
    req.env = body.env;
    req.cwd = body.cwd;
    req.stdin = body.stdin.map(String::into_bytes);
    if let Some(t) = body.timeout {
        if !(t.is_finite() && t > 0.0) {
            return Err(Error::invalid_argument("timeout must be a positive number").into());
        }
        req.timeout = Some(Duration::from_secs_f64(t.min(86_400.0)));
    }
    let written = written_volumes(&rec);
    let sid = id.clone();
    let out = rt(&s, move |r| r.exec(&sid, req)).await;
    // What the command wrote to its volumes counts now (also when it failed or timed out).
    app.remeasure(written, Duration::ZERO).await;
    let out = out?;
    woken(&app, &s, &rec).await?;
    Ok(axum::Json(ExecOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit_code: out.exit_code,
        timed_out: out.timed_out,
        truncated: out.truncated,
    }))
}

/// After exec or files, which wake a hibernated sandbox: records its new state.
async fn woken(app: &AppState, s: &Arc<SandboxRuntimeState>, rec: &SandboxRecord) -> ApiResult<()> {
    if rec.state != "running" {
        s.refresh(app, &rec.tenant_id, &rec.id).await?;
    }
    Ok(())
}

/// `?path=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// Absolute path inside the sandbox.
    pub path: String,
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/content", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn read_file(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let (rec, s) = app.owned(&caller, &id).await?;
    let data = rt(&s, move |r| r.read_file(&id, &q.path)).await?;
    woken(&app, &s, &rec).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        data,
    )
        .into_response())
}

#[utoipa::path(put, path = "/v1/sandboxes/{id}/files/content", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn write_file(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let (rec, s) = app.owned(&caller, &id).await?;
    let out = rt(&s, move |r| r.write_file(&id, &q.path, &body)).await;
    app.remeasure(written_volumes(&rec), Duration::ZERO).await;
    out?;
    woken(&app, &s, &rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One directory entry inside a sandbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SandboxDirEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
}

/// `{"entries": [...]}`
#[derive(Serialize, utoipa::ToSchema)]
pub struct SandboxDirList {
    pub entries: Vec<SandboxDirEntry>,
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/list", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    responses((status = 200, body = SandboxDirList), (status = 404, body = ErrorBody)))]
pub async fn list_files(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<axum::Json<SandboxDirList>> {
    let (rec, s) = app.owned(&caller, &id).await?;
    let entries = rt(&s, move |r| r.list_dir(&id, &q.path)).await?;
    woken(&app, &s, &rec).await?;
    Ok(axum::Json(SandboxDirList {
        entries: entries
            .into_iter()
            .map(|e| SandboxDirEntry {
                name: e.name,
                kind: e.kind,
                size: e.size,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/attachments", tag = "sandboxes", params(("id" = String, Path)),
    request_body = VolumeMount,
    responses((status = 201, body = Attachment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn attach(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(m): Json<VolumeMount>,
) -> ApiResult<Response> {
    let (_, s) = app.owned(&caller, &id).await?;
    let (spec, att) = resolve_mount(&app, &caller, &m).await?;
    let sid = id.clone();
    rt(&s, move |r| r.attach(&sid, spec)).await?;
    let att_id = att.id.clone();
    let rec = match s
        .update(&app, &caller.0.tenant_id, &id, |rec| {
            rec.attachments.push(att)
        })
        .await
    {
        Ok(rec) => rec,
        Err(e) => {
            // No mount without a record (e.g. the volume was deleted meanwhile).
            let (sid, path) = (id.clone(), m.mount_path.clone());
            let _ = rt(&s, move |r| r.detach(&sid, &path)).await;
            return Err(e);
        }
    };
    let att = rec
        .attachments
        .iter()
        .find(|a| a.id == att_id)
        .ok_or_else(|| Error::internal(format!("attachment {att_id} vanished from {id}")))?;
    Ok((StatusCode::CREATED, axum::Json(attachment(&id, att))).into_response())
}

/// `?mount_path=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetachQuery {
    /// The mount path of the attachment to release.
    pub mount_path: String,
}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}/attachments", tag = "sandboxes", params(("id" = String, Path), DetachQuery),
    responses((status = 200, body = Attachment), (status = 404, body = ErrorBody)))]
pub async fn detach(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DetachQuery>,
) -> ApiResult<axum::Json<Attachment>> {
    let (rec, s) = app.owned(&caller, &id).await?;
    let Some(mut att) = rec
        .attachments
        .iter()
        .find(|a| a.mount_path == q.mount_path)
        .cloned()
    else {
        return Err(Error::not_found(format!(
            "sandbox {id:?} has no attachment at {:?}",
            q.mount_path
        ))
        .into());
    };
    let (sid, path) = (id.clone(), q.mount_path.clone());
    rt(&s, move |r| r.detach(&sid, &path)).await?;
    s.update(&app, &caller.0.tenant_id, &id, |rec| {
        rec.attachments.retain(|a| a.mount_path != q.mount_path)
    })
    .await?;
    if !att.read_only {
        app.remeasure(vec![att.volume_id.clone()], Duration::ZERO)
            .await;
    }
    att.state = "released".into();
    att.error = None;
    att.updated_at = now();
    Ok(axum::Json(attachment(&id, &att)))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/attachments", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = AttachmentList), (status = 404, body = ErrorBody)))]
pub async fn list_attachments(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AttachmentList>> {
    let rec = current(&app, &caller, &id).await?;
    Ok(axum::Json(AttachmentList {
        attachments: rec.attachments.iter().map(|a| attachment(&id, a)).collect(),
    }))
}

/// Runs a lifecycle operation and answers the sandbox record.
async fn lifecycle(
    app: AppState,
    caller: Caller,
    id: String,
    op: fn(&Runtime, &str) -> Result<SandboxInfo, SandboxError>,
) -> ApiResult<axum::Json<Sandbox>> {
    let (before, s) = app.owned(&caller, &id).await?;
    let sid = id.clone();
    rt(&s, move |r| op(r, &sid)).await?;
    // Paused or hibernated processes write no more: take stock of what they wrote.
    app.remeasure(written_volumes(&before), Duration::ZERO)
        .await;
    let rec = s.refresh(&app, &caller.0.tenant_id, &id).await?;
    Ok(axum::Json(record(&rec)))
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(app, caller, id, |r, id| r.pause(id)).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(app, caller, id, |r, id| r.resume(id)).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/hibernate", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn hibernate(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(app, caller, id, |r, id| r.hibernate(id)).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/fork", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 201, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn fork(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (src, s) = app.owned(&caller, &id).await?;
    let new_id = format!("sb-{}", uuid::Uuid::new_v4().simple());
    let nid = new_id.clone();
    let info = rt(&s, move |r| r.fork(&id, &nid)).await?;
    let created_at = now();
    let mut rec = SandboxRecord {
        id: new_id,
        name: None,
        state: state_str(info.state).into(),
        expires_at: deadline(created_at, src.timeout_secs)?,
        created_at,
        updated_at: created_at,
        attachments: src
            .attachments
            .iter()
            .map(|a| AttachmentRecord {
                id: format!("att-{}", uuid::Uuid::new_v4().simple()),
                created_at,
                updated_at: created_at,
                ..a.clone()
            })
            .collect(),
        ..src
    };
    apply(&mut rec, &info, created_at);
    store_new(&app, &s, &rec).await?;
    Ok((StatusCode::CREATED, axum::Json(record(&rec))).into_response())
}

/// For `DELETE /v1/volumes/{name}`: fails with `volume_in_use` when a sandbox (on any server)
/// has the volume attached, unless `force`, which detaches it from every such sandbox first —
/// possible only when this server runs them all (else `unavailable` naming the server).
pub(crate) async fn release_volume(
    app: &AppState,
    volume_id: &str,
    volume_name: &str,
    force: bool,
) -> ApiResult<()> {
    let users = app.store.volume_sandboxes(volume_id).await?;
    if users.is_empty() {
        return Ok(());
    }
    if !force {
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        return Err(Error::volume_in_use(format!(
            "volume {volume_name:?} is attached to sandbox(es) {}; detach it or delete with force",
            ids.join(", ")
        ))
        .into());
    }
    let mut owned = Vec::new();
    for rec in &users {
        let s = app.owner(rec).map_err(|_| {
            Error::unavailable(format!(
                "volume {volume_name:?} is attached to sandbox {:?}, which runs on server {:?}; \
                 delete the volume through that server",
                rec.id, rec.server_id
            ))
        })?;
        owned.push((rec, s));
    }
    for (rec, s) in owned {
        let paths: Vec<String> = rec
            .attachments
            .iter()
            .filter(|a| a.volume_id == volume_id)
            .map(|a| a.mount_path.clone())
            .collect();
        for path in &paths {
            let (sid, p) = (rec.id.clone(), path.clone());
            match rt(&s, move |r| r.detach(&sid, &p)).await {
                Ok(()) => {}
                Err(e) if e.0.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        s.update(app, &rec.tenant_id, &rec.id, |r| {
            r.attachments.retain(|a| a.volume_id != volume_id)
        })
        .await?;
    }
    Ok(())
}
