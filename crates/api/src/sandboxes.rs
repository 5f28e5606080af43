//! Sandbox routes: the tenant-facing face of the local sandbox runtime (`nullspace-sandbox`).
//!
//! The runtime knows sandboxes and mounts (by host path); this module adds what the product
//! needs on top: the owning tenant, volume names, attachment ids and timestamps. Those live in
//! one JSON file next to the runtime's state (`<data_dir>/sandboxes/records.json`), rewritten
//! atomically on each change, so a restart keeps them; the control-plane database does not know
//! sandboxes yet. Every runtime call blocks and runs on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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

/// The sandbox runtime plus the product's records of its sandboxes.
pub struct SandboxRuntimeState {
    runtime: Runtime,
    records_path: PathBuf,
    records: Mutex<HashMap<String, SandboxMeta>>,
}

/// What the API remembers of one sandbox beyond the runtime's own state.
#[derive(Clone, Serialize, Deserialize)]
struct SandboxMeta {
    tenant_id: String,
    name: Option<String>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    timeout: Option<u64>,
    attachments: Vec<AttachMeta>,
}

#[derive(Clone, Serialize, Deserialize)]
struct AttachMeta {
    id: String,
    volume: String,
    volume_id: String,
    mount_path: String,
    read_only: bool,
    subpath: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SandboxRuntimeState {
    /// Starts the runtime over `state_dir` (blocking: reconciles) and loads the records; records
    /// of sandboxes the runtime no longer has are dropped.
    pub fn open(state_dir: PathBuf) -> Result<SandboxRuntimeState, String> {
        let runtime = Runtime::new(&state_dir).map_err(|e| e.to_string())?;
        let records_path = state_dir.join("records.json");
        let mut records: HashMap<String, SandboxMeta> = match std::fs::read(&records_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("cannot parse {}: {e}", records_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", records_path.display())),
        };
        let live: std::collections::HashSet<String> =
            runtime.list().into_iter().map(|i| i.id).collect();
        records.retain(|id, _| live.contains(id));
        let st = SandboxRuntimeState {
            runtime,
            records_path,
            records: Mutex::new(records),
        };
        st.save(&st.lock()).map_err(|e| e.message)?;
        Ok(st)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SandboxMeta>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, records: &HashMap<String, SandboxMeta>) -> Result<(), Error> {
        let tmp = self.records_path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(records)
            .map_err(|e| Error::internal(format!("cannot encode sandbox records: {e}")))?;
        let io = |e: std::io::Error| Error::internal(format!("cannot save sandbox records: {e}"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.records_path).map_err(io)
    }

    /// The caller's sandbox meta, or `not_found` (also for other tenants' sandboxes).
    fn meta(&self, tenant: &str, id: &str) -> Result<SandboxMeta, Error> {
        match self.lock().get(id) {
            Some(m) if m.tenant_id == tenant => Ok(m.clone()),
            _ => Err(Error::not_found(format!("sandbox {id:?} not found"))),
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SandboxMeta)) -> Result<(), Error> {
        let mut recs = self.lock();
        if let Some(m) = recs.get_mut(id) {
            f(m);
        }
        self.save(&recs)
    }

    /// How many sandbox attachments of `volume_id` exist (the volume's `attachments` field).
    pub(crate) fn attachment_count(&self, volume_id: &str) -> u64 {
        self.users_of(volume_id)
            .iter()
            .map(|(_, paths)| paths.len() as u64)
            .sum()
    }

    /// Whether a live sandbox has `volume_id` attached read-write.
    pub(crate) fn written_by_sandboxes(&self, volume_id: &str) -> bool {
        self.lock().values().any(|m| {
            m.attachments
                .iter()
                .any(|a| a.volume_id == volume_id && !a.read_only)
        })
    }

    /// Ids of the volumes sandbox `id` has attached read-write.
    fn written_volumes(&self, id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .get(id)
            .map(|m| {
                m.attachments
                    .iter()
                    .filter(|a| !a.read_only)
                    .map(|a| a.volume_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Live sandboxes (id, attachment mount paths) that have `volume_id` attached.
    fn users_of(&self, volume_id: &str) -> Vec<(String, Vec<String>)> {
        self.lock()
            .iter()
            .filter_map(|(id, m)| {
                let paths: Vec<String> = m
                    .attachments
                    .iter()
                    .filter(|a| a.volume_id == volume_id)
                    .map(|a| a.mount_path.clone())
                    .collect();
                (!paths.is_empty()).then(|| (id.clone(), paths))
            })
            .collect()
    }
}

/// A runtime error in the API's taxonomy.
fn sb_err(e: SandboxError) -> Error {
    let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::Internal);
    Error::new(code, e.to_string())
}

impl AppState {
    fn sandboxes(&self) -> ApiResult<Arc<SandboxRuntimeState>> {
        self.sandboxes.clone().ok_or_else(|| {
            let why = UNAVAILABLE
                .get()
                .map(String::as_str)
                .unwrap_or("the sandbox runtime is not running on this server");
            Error::unavailable(format!("sandboxes are unavailable: {why}")).into()
        })
    }
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
    /// Seconds (recorded; not enforced yet).
    #[serde(default)]
    pub timeout: Option<u64>,
}

fn base() -> String {
    "base".into()
}

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

fn state_str(s: SandboxState) -> &'static str {
    match s {
        SandboxState::Running => "running",
        SandboxState::Paused => "paused",
        SandboxState::Hibernated => "hibernated",
    }
}

fn attachment(info: &SandboxInfo, a: &AttachMeta) -> Attachment {
    let status = info.mounts.iter().find(|m| m.spec.target == a.mount_path);
    let (state, error) = match status {
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
    Attachment {
        id: a.id.clone(),
        sandbox_id: info.id.clone(),
        volume: a.volume.clone(),
        mount_path: a.mount_path.clone(),
        read_only: a.read_only,
        subpath: a.subpath.clone(),
        state: state.into(),
        error,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

fn record(info: &SandboxInfo, m: &SandboxMeta) -> Sandbox {
    Sandbox {
        id: info.id.clone(),
        name: m.name.clone(),
        template: info.template.clone(),
        state: state_str(info.state).into(),
        created_at: m.created_at,
        attachments: m.attachments.iter().map(|a| attachment(info, a)).collect(),
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
) -> ApiResult<(MountSpec, AttachMeta)> {
    let v = app.volume(&caller.0, &m.volume).await?;
    // Open (and measure) it now, so that what the sandbox writes is re-measured later on.
    app.handle(&v).await?;
    let (vols, id, name) = (app.volumes.clone(), v.id.clone(), v.name.clone());
    let dir = blocking(move || vols.data_dir(&id).map_err(|e| e.in_volume(&name))).await?;
    let mut spec = MountSpec::new(dir, m.mount_path.clone());
    spec.read_only = m.read_only;
    spec.subpath = m.subpath.clone();
    let now = Utc::now();
    let meta = AttachMeta {
        id: format!("att-{}", uuid::Uuid::new_v4().simple()),
        volume: v.name.clone(),
        volume_id: v.id.clone(),
        mount_path: m.mount_path.clone(),
        read_only: m.read_only,
        subpath: m.subpath.clone(),
        created_at: now,
        updated_at: now,
    };
    Ok((spec, meta))
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
    let id = format!("sb-{}", uuid::Uuid::new_v4().simple());
    let mut spec = SandboxSpec::new(id.clone());
    spec.template = req.template;
    spec.env = req.env;
    let mut atts = Vec::new();
    for m in &req.volumes {
        let (mount, meta) = resolve_mount(&app, &caller, m).await?;
        spec.mounts.push(mount);
        atts.push(meta);
    }
    let info = rt(&s, move |r| r.create(spec)).await?;
    let meta = SandboxMeta {
        tenant_id: caller.0.tenant_id.clone(),
        name: req.name,
        created_at: Utc::now(),
        timeout: req.timeout,
        attachments: atts,
    };
    let saved = {
        let mut recs = s.lock();
        recs.insert(id.clone(), meta.clone());
        s.save(&recs)
    };
    if let Err(e) = saved {
        let _ = rt(&s, move |r| r.destroy(&id)).await;
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, axum::Json(record(&info, &meta))).into_response())
}

#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes",
    responses((status = 200, body = SandboxList), (status = 503, body = ErrorBody)))]
pub async fn list_sandboxes(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SandboxList>> {
    let s = app.sandboxes()?;
    let infos = rt(&s, |r| Ok(r.list())).await?;
    let recs = s.lock().clone();
    let mut out: Vec<(DateTime<Utc>, Sandbox)> = infos
        .iter()
        .filter_map(|i| {
            let m = recs.get(&i.id)?;
            (m.tenant_id == caller.0.tenant_id).then(|| (m.created_at, record(i, m)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    Ok(axum::Json(SandboxList {
        sandboxes: out.into_iter().map(|x| x.1).collect(),
    }))
}

/// The caller's sandbox: its runtime info and record.
async fn current(
    s: &Arc<SandboxRuntimeState>,
    caller: &Caller,
    id: &str,
) -> ApiResult<(SandboxInfo, SandboxMeta)> {
    let meta = s.meta(&caller.0.tenant_id, id)?;
    let sid = id.to_owned();
    let info = rt(s, move |r| r.info(&sid)).await?;
    Ok((info, meta))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody)))]
pub async fn get_sandbox(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    let s = app.sandboxes()?;
    let (info, meta) = current(&s, &caller, &id).await?;
    Ok(axum::Json(record(&info, &meta)))
}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn destroy_sandbox(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let written = s.written_volumes(&id);
    let sid = id.clone();
    rt(&s, move |r| r.destroy(&sid)).await?;
    {
        let mut recs = s.lock();
        recs.remove(&id);
        s.save(&recs)?;
    }
    app.remeasure(written, Duration::ZERO).await;
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
    responses((status = 200, body = ExecOutput), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ExecBody>,
) -> ApiResult<axum::Json<ExecOutput>> {
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
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
    let written = s.written_volumes(&id);
    let out = rt(&s, move |r| r.exec(&id, req)).await;
    // What the command wrote to its volumes counts now (also when it failed or timed out).
    app.remeasure(written, Duration::ZERO).await;
    let out = out?;
    Ok(axum::Json(ExecOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit_code: out.exit_code,
        timed_out: out.timed_out,
        truncated: out.truncated,
    }))
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
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let data = rt(&s, move |r| r.read_file(&id, &q.path)).await?;
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
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let written = s.written_volumes(&id);
    let out = rt(&s, move |r| r.write_file(&id, &q.path, &body)).await;
    app.remeasure(written, Duration::ZERO).await;
    out?;
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
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let entries = rt(&s, move |r| r.list_dir(&id, &q.path)).await?;
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
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let (spec, meta) = resolve_mount(&app, &caller, &m).await?;
    let sid = id.clone();
    rt(&s, move |r| r.attach(&sid, spec)).await?;
    s.update(&id, |rec| rec.attachments.push(meta.clone()))?;
    let sid = id.clone();
    let info = rt(&s, move |r| r.info(&sid)).await?;
    Ok((StatusCode::CREATED, axum::Json(attachment(&info, &meta))).into_response())
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
    let s = app.sandboxes()?;
    let meta = s.meta(&caller.0.tenant_id, &id)?;
    let Some(mut att) = meta
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
    s.update(&id, |rec| {
        rec.attachments.retain(|a| a.mount_path != q.mount_path)
    })?;
    att.updated_at = Utc::now();
    if !att.read_only {
        app.remeasure(vec![att.volume_id.clone()], Duration::ZERO)
            .await;
    }
    let sid = id.clone();
    let info = rt(&s, move |r| r.info(&sid)).await?;
    let mut out = attachment(&info, &att);
    out.state = "released".into();
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/attachments", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = AttachmentList), (status = 404, body = ErrorBody)))]
pub async fn list_attachments(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AttachmentList>> {
    let s = app.sandboxes()?;
    let (info, meta) = current(&s, &caller, &id).await?;
    Ok(axum::Json(AttachmentList {
        attachments: meta
            .attachments
            .iter()
            .map(|a| attachment(&info, a))
            .collect(),
    }))
}

/// Runs a lifecycle operation and answers the sandbox record.
async fn lifecycle(
    app: AppState,
    caller: Caller,
    id: String,
    op: fn(&Runtime, &str) -> Result<SandboxInfo, SandboxError>,
) -> ApiResult<axum::Json<Sandbox>> {
    let s = app.sandboxes()?;
    s.meta(&caller.0.tenant_id, &id)?;
    let sid = id.clone();
    let info = rt(&s, move |r| op(r, &sid)).await?;
    // Paused or hibernated processes write no more: take stock of what they wrote.
    app.remeasure(s.written_volumes(&id), Duration::ZERO).await;
    let now = Utc::now();
    s.update(&id, |m| {
        for a in &mut m.attachments {
            a.updated_at = now;
        }
    })?;
    let meta = s.meta(&caller.0.tenant_id, &id)?;
    Ok(axum::Json(record(&info, &meta)))
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
    let s = app.sandboxes()?;
    let src = s.meta(&caller.0.tenant_id, &id)?;
    let new_id = format!("sb-{}", uuid::Uuid::new_v4().simple());
    let nid = new_id.clone();
    let info = rt(&s, move |r| r.fork(&id, &nid)).await?;
    let now = Utc::now();
    let meta = SandboxMeta {
        tenant_id: src.tenant_id.clone(),
        name: None,
        created_at: now,
        timeout: src.timeout,
        attachments: src
            .attachments
            .iter()
            .map(|a| AttachMeta {
                id: format!("att-{}", uuid::Uuid::new_v4().simple()),
                created_at: now,
                updated_at: now,
                ..a.clone()
            })
            .collect(),
    };
    {
        let mut recs = s.lock();
        recs.insert(new_id.clone(), meta.clone());
        s.save(&recs)?;
    }
    Ok((StatusCode::CREATED, axum::Json(record(&info, &meta))).into_response())
}

/// For `DELETE /v1/volumes/{name}`: fails with `volume_in_use` when a sandbox has the volume
/// attached, unless `force`, which detaches it from every such sandbox first.
pub(crate) async fn release_volume(
    app: &AppState,
    volume_id: &str,
    volume_name: &str,
    force: bool,
) -> ApiResult<()> {
    let Some(s) = app.sandboxes.clone() else {
        return Ok(());
    };
    let users = s.users_of(volume_id);
    if users.is_empty() {
        return Ok(());
    }
    if !force {
        let ids: Vec<&str> = users.iter().map(|u| u.0.as_str()).collect();
        return Err(Error::volume_in_use(format!(
            "volume {volume_name:?} is attached to sandbox(es) {}; detach it or delete with force",
            ids.join(", ")
        ))
        .into());
    }
    for (id, paths) in users {
        for path in paths {
            let (sid, p) = (id.clone(), path.clone());
            match rt(&s, move |r| r.detach(&sid, &p)).await {
                Ok(()) => {}
                Err(e) if e.0.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
            s.update(&id, |m| m.attachments.retain(|a| a.mount_path != path))?;
        }
    }
    Ok(())
}
