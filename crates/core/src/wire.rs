//! The JSON shapes of the HTTP API, defined once for the server (`api`, which also documents
//! them in OpenAPI) and the Rust client. Core records that are already wire shapes
//! (`Volume`, `FileStat`, `Tenant`) live in `model`; docs/API.md describes every route.
//!
//! Request bodies refuse unknown fields, so a misspelt option is an `invalid_argument`, never
//! silently ignored.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AttachmentState, FileStat, FileType, Labels, SandboxState, Tenant, Volume};

fn yes() -> bool {
    true
}

fn root() -> String {
    "/".into()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

// ---- errors and service ----

/// The body of every error answer: `{"error": {code, message, retryable}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Code, message and whether a retry may succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub retryable: bool,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `GET /v1/whoami`: who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Tenant name.
    pub tenant: String,
    pub tenant_id: String,
    /// Whether the key may run admin verbs.
    pub admin: bool,
    /// The key's role.
    pub role: Role,
    /// The key's id (`key_…`).
    pub key_id: String,
}

// ---- keys ----

/// What a key may do within its tenant (docs/operating.md "Keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything in the tenant, keys included; operator verbs when the tenant is `default`.
    Admin,
    /// Everything on the tenant's volumes and sandboxes; member and read-only keys.
    Member,
    /// Reads, lists, stats, search, watch and downloads only.
    ReadOnly,
}

impl Role {
    /// The wire spelling: `admin`, `member`, `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::ReadOnly => "read-only",
        }
    }

    /// Parses the wire spelling; `invalid_argument` naming `role` otherwise.
    pub fn parse(s: &str) -> crate::Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "read-only" => Ok(Role::ReadOnly),
            _ => Err(crate::Error::invalid_argument(format!(
                "role must be admin, member or read-only, not {s:?}"
            ))),
        }
    }

    /// Rank for "may make keys of this role": a key makes keys of its own role or lower.
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin => 2,
            Role::Member => 1,
            Role::ReadOnly => 0,
        }
    }
}

/// A stored key as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: Option<String>,
    pub role: Role,
    /// The first characters of the key, for recognising it (`nsk_1a2b3c4d`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// For a volume token: the one volume it acts on (`vol_…`); `None` for a key.
    pub volume_id: Option<String>,
    /// For a volume token: the directory it is confined to (`/`: the whole volume).
    #[serde(default)]
    pub path: Option<String>,
    /// A volume token that only reads.
    pub read_only: bool,
}

/// Body of `POST /v1/volumes/{name}/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The directory of the volume the token is confined to (default `/`, the whole volume);
    /// it must exist and be a directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Only reads (default false).
    #[serde(default)]
    pub read_only: bool,
    /// Lifetime in seconds, 1 to 604800 (7 days, like signed URLs); default 3600.
    #[serde(default = "an_hour")]
    pub expires_in: u64,
}

fn an_hour() -> u64 {
    3600
}

/// Body of `POST /v1/keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Up to 100 characters, for people.
    #[serde(default)]
    pub name: Option<String>,
    /// Default `member`.
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime in seconds (at most 10 years); none: the key lives until revoked.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Make the key in this tenant (admin keys of the `default` tenant only).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A new key, shown only once. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The secret: send it as `Authorization: Bearer <key>`.
    pub key: String,
    pub info: KeyInfo,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

// ---- uploads ----

/// A resumable upload still waiting for bytes (`GET /v1/volumes/{name}/uploads`). Its
/// declared `length` is reserved against the volume's cap until it completes, is cancelled
/// (`DELETE /v1/volumes/{name}/uploads/{id}`) or expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadInfo {
    pub id: String,
    /// Destination path in the volume.
    pub path: String,
    /// Bytes stored durably so far.
    pub offset: u64,
    /// Declared total length (what is reserved).
    pub length: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `GET /v1/volumes/{name}/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadList {
    pub uploads: Vec<UploadInfo>,
}

// ---- operators ----

/// Body of `POST /v1/admin/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
}

/// A new tenant and its first key, shown only once. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub key: String,
}

impl fmt::Debug for CreatedTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedTenant")
            .field("tenant", &self.tenant)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Body of `PUT /v1/admin/tenants/{tenant}/volume-cap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVolumeCap {
    /// Cap in bytes for the tenant's new volumes.
    pub cap_bytes: u64,
}

/// A size in a request: a byte count, or a string such as `"512MiB"` or `"2GiB"` (see
/// [`crate::parse_size`]). Requests carry it as raw JSON so that errors name the field; this
/// type gives the OpenAPI document its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// Body of `PUT /v1/admin/tenants/{tenant}/limits`: the limits to change (the others stay).
/// Sizes are byte counts or size strings (`"8GiB"`); `max_cpu` is a number of cores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTenantLimits {
    /// Most sandboxes (any state) the tenant may have at once.
    #[serde(default)]
    pub max_sandboxes: Option<u64>,
    /// Most volumes the tenant may have.
    #[serde(default)]
    pub max_volumes: Option<u64>,
    /// Largest CPU quota of one sandbox, in cores.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub max_cpu: Option<serde_json::Value>,
    /// Largest memory limit of one sandbox (bytes or a size string).
    #[serde(default)]
    #[schema(value_type = Option<SizeValue>)]
    pub max_sandbox_memory: Option<serde_json::Value>,
    /// Most memory all the tenant's sandboxes may hold together (bytes or a size string).
    #[serde(default)]
    #[schema(value_type = Option<SizeValue>)]
    pub max_total_memory: Option<serde_json::Value>,
    /// Most writable-layer disk all the tenant's sandboxes may hold together.
    #[serde(default)]
    #[schema(value_type = Option<SizeValue>)]
    pub max_total_disk: Option<serde_json::Value>,
    /// Most live (neither revoked nor expired) keys and volume tokens the tenant may hold.
    #[serde(default)]
    pub max_keys: Option<u64>,
}

/// A tenant's limits in force (its own where an operator set them, else the server's
/// defaults), and what its sandboxes and volumes hold now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantLimits {
    pub tenant: String,
    pub max_sandboxes: u64,
    pub max_volumes: u64,
    /// Cores.
    pub max_cpu: f64,
    pub max_sandbox_memory: u64,
    pub max_total_memory: u64,
    pub max_total_disk: u64,
    /// Live keys and volume tokens together.
    #[serde(default)]
    pub max_keys: u64,
    /// The limits an operator set for this tenant (the others are the server's defaults).
    pub custom: Vec<String>,
    /// What the tenant holds now.
    pub usage: TenantUsage,
}

/// What a tenant's sandboxes and volumes hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantUsage {
    pub sandboxes: u64,
    pub volumes: u64,
    /// Sum of the memory limits of the tenant's sandboxes.
    pub memory_bytes: u64,
    /// Sum of the writable-layer caps of the tenant's sandboxes.
    pub disk_bytes: u64,
    /// Live (neither revoked nor expired) keys and volume tokens.
    #[serde(default)]
    pub keys: u64,
}

// ---- volumes ----

/// Body of `POST /v1/volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// 1-63 chars of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    /// Return the existing volume (200) instead of `already_exists`.
    #[serde(default)]
    pub if_not_exists: bool,
}

/// Body of `POST /v1/volumes/{name}/rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameVolume {
    /// The volume's new name (the same rules as at creation); unique in the tenant.
    pub new_name: String,
}

/// `{"volumes": [...]}` (each volume with the selected fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeList<T = Volume> {
    pub volumes: Vec<T>,
}

// ---- files ----

/// Body of `POST …/files/mkdir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
    #[serde(default = "yes")]
    pub parents: bool,
}

/// Body of `POST …/files/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub src: String,
    pub dst: String,
    #[serde(default)]
    pub overwrite: bool,
}

/// Body of `POST …/files/copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    pub src: String,
    pub dst: String,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub recursive: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListPage<T = FileStat> {
    pub entries: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A listed entry when only paths and types were asked for (no `stat` on the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PathEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// The path's exact bytes (base64) when they are not UTF-8; see `FileStat::path_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_base64: Option<String>,
}

/// `{"exists": bool}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exists {
    pub exists: bool,
}

/// What a batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Body of `POST …/files/url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub path: String,
    /// `GET` (download) or `PUT` (upload of this path).
    #[serde(default = "get")]
    pub method: String,
    /// Seconds until the URL stops working: 1 to 604800 (7 days).
    pub expires_in: u64,
}

fn get() -> String {
    "GET".into()
}

/// A signed URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedUrl {
    pub url: String,
    pub method: String,
    pub expires_at: DateTime<Utc>,
}

// ---- contents ----

/// Body of `POST …/files/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub pattern: String,
    #[serde(default = "root")]
    pub path: String,
    pub glob: Option<String>,
    #[serde(default = "yes")]
    pub regex: bool,
    #[serde(default)]
    pub ignore_case: bool,
    pub max_results: Option<u64>,
}

/// One matching line (one NDJSON line of a search answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchMatch {
    /// Absolute path of the file.
    pub path: String,
    /// 1-based line number.
    pub line: u64,
    /// 1-based byte column of the first match on the line.
    pub column: u64,
    /// The line without its newline, cut at 1000 bytes (invalid UTF-8 replaced).
    pub text: String,
}

/// How many lines matched, and whether `max_results` cut the search short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchSummary {
    pub matches: u64,
    pub truncated: bool,
}

/// One NDJSON line of a search answer: matches, then `{"done": true, …}` or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SearchLine {
    /// The search failed after the answer had started.
    Failed {
        error: ErrorDetail,
    },
    /// The last line.
    Done {
        done: bool,
        #[serde(flatten)]
        summary: SearchSummary,
    },
    Match(SearchMatch),
}

/// Body of `POST …/files/replace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    pub pattern: String,
    pub replacement: String,
    #[serde(default = "root")]
    pub path: String,
    pub glob: Option<String>,
    #[serde(default = "yes")]
    pub regex: bool,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// One file in which the pattern was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplacedFile {
    pub path: String,
    /// Matches replaced (or, with `dry_run`, that would be).
    pub replacements: u64,
    /// Why the file was left alone: `conflict` when it changed while being rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What a replace did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplaceSummary {
    /// Files with matches, in path order.
    pub files: Vec<ReplacedFile>,
    pub files_changed: u64,
    pub replacements: u64,
    pub dry_run: bool,
}

/// Body of `POST …/files/edit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub path: String,
    pub old: String,
    pub new: String,
    /// Occurrences that must be found; `null` replaces all.
    #[serde(default = "one")]
    pub count: Option<u64>,
    pub if_match: Option<String>,
}

fn one() -> Option<u64> {
    Some(1)
}

// ---- watch ----

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    Moved,
}

/// One change (`event: change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeEvent {
    /// Increasing id; resume after it with `Last-Event-ID`.
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub path: String,
    /// The previous path of a `moved` entry.
    pub old_path: Option<String>,
    pub is_dir: bool,
    pub time: DateTime<Utc>,
}

/// Changes after `last_event_id` may be missing (`event: gap`): events before
/// `oldest_available` are no longer retained, or changes went unobserved. The watcher must
/// re-list what it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchGap {
    pub last_event_id: u64,
    pub oldest_available: u64,
}

/// The last event of a connection the server ends (`event: overflow`): the client fell behind,
/// or changes made through another server may have been missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchOverflow {
    /// Events the server could not deliver; absent (0) when it does not know.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
    #[serde(default)]
    pub message: String,
}

// ---- sandboxes ----

/// A volume to mount: `{volume, mount_path, read_only, subpath}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// CPU quota in cores (fractions allowed, e.g. 0.5); default: the server's `--sandbox-cpu`.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub cpu: Option<serde_json::Value>,
    /// Hard memory limit: a byte count or a size string (`"512MiB"`); at least 16 MiB;
    /// default: the server's `--sandbox-memory`.
    #[serde(default)]
    #[schema(value_type = Option<SizeValue>)]
    pub memory: Option<serde_json::Value>,
    /// Cap of the sandbox's own writable layer: a byte count or a size string; at least
    /// 16 MiB; default: the server's `--sandbox-disk`.
    #[serde(default)]
    #[schema(value_type = Option<SizeValue>)]
    pub disk: Option<serde_json::Value>,
    /// `namespace` or `gvisor` (hibernate keeps memory and processes); default: the
    /// server's `--sandbox-runtime`. A runtime the server cannot run is `unavailable`.
    #[serde(default)]
    pub runtime: Option<String>,
}

fn base() -> String {
    "base".into()
}

/// One attachment of a volume to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub id: String,
    pub sandbox_id: String,
    pub volume: String,
    pub mount_path: String,
    pub read_only: bool,
    pub subpath: Option<String>,
    pub state: AttachmentState,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sandbox {
    pub id: String,
    pub name: Option<String>,
    pub template: String,
    pub state: SandboxState,
    /// The server that runs the sandbox; operations on it through any other server sharing
    /// the database are `unavailable`, naming this server.
    pub server_id: String,
    /// Lifetime in seconds given at create, if any.
    pub timeout: Option<u64>,
    /// When the sandbox will be destroyed (`created_at + timeout`).
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub attachments: Vec<Attachment>,
    /// CPU quota in cores.
    pub cpu: f64,
    /// Hard memory limit of all its processes together.
    pub memory_bytes: u64,
    /// Cap of its own writable layer (everything outside its volume mounts).
    pub disk_bytes: u64,
    /// Most processes and threads alive at once.
    pub pids: u32,
    /// The runtime that runs it: `namespace` or `gvisor`.
    pub runtime: String,
}

/// `{"sandboxes": [...]}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxList {
    pub sandboxes: Vec<Sandbox>,
}

/// `{"attachments": [...]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentList {
    pub attachments: Vec<Attachment>,
}

/// A command: an argument list, or a string run by `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

/// Body of `POST /v1/sandboxes/{id}/exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
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

/// What a command did. Each stream is carried as text in `stdout`/`stderr` when it is valid
/// UTF-8 without NUL bytes; otherwise that field is empty and the bytes are in
/// `stdout_base64`/`stderr_base64` (standard base64, padded). Both streams together take at most
/// [`EXEC_OUTPUT_BUDGET`] bytes of the answer as encoded (JSON escapes or base64 counted);
/// past it the output is cut and `truncated` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Standard output when it is not UTF-8 text (`stdout` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    /// Standard error when it is not UTF-8 text (`stderr` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    pub exit_code: i32,
    #[serde(default)]
    pub timed_out: bool,
    /// The output was longer than the answer's budget (or than the server keeps) and was cut.
    #[serde(default)]
    pub truncated: bool,
    /// The sandbox's memory limit was reached while the command ran and the kernel killed a
    /// process of the sandbox.
    #[serde(default)]
    pub oom_killed: bool,
}

/// Encoded bytes an exec answer may spend on stdout and stderr together (8 MiB).
pub const EXEC_OUTPUT_BUDGET: usize = 8 << 20;

/// One stream as it goes on the wire.
enum StreamForm<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> StreamForm<'a> {
    /// Text when `raw` is UTF-8 without NUL; an incomplete last character of a stream that was
    /// cut is dropped rather than turning the whole stream into bytes.
    fn of(raw: &'a [u8], cut: bool) -> StreamForm<'a> {
        let text = match std::str::from_utf8(raw) {
            Ok(t) => Some(t),
            Err(e) if cut && e.error_len().is_none() => {
                std::str::from_utf8(&raw[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        match text {
            Some(t) if !t.contains('\0') => StreamForm::Text(t),
            _ => StreamForm::Bytes(raw),
        }
    }

    /// Bytes it takes in the JSON answer (without the quotes).
    fn encoded_len(&self) -> usize {
        match self {
            StreamForm::Text(t) => t.bytes().map(json_escaped_len).sum(),
            StreamForm::Bytes(b) => b.len().div_ceil(3) * 4,
        }
    }

    /// The longest prefix that encodes within `budget` bytes (whole characters for text).
    fn cut_to(self, budget: usize) -> (StreamForm<'a>, bool) {
        if self.encoded_len() <= budget {
            return (self, false);
        }
        match self {
            StreamForm::Text(t) => {
                let mut used = 0;
                let mut end = 0;
                for (i, c) in t.char_indices() {
                    let mut buf = [0u8; 4];
                    let n: usize = c.encode_utf8(&mut buf).bytes().map(json_escaped_len).sum();
                    if used + n > budget {
                        break;
                    }
                    used += n;
                    end = i + c.len_utf8();
                }
                (StreamForm::Text(&t[..end]), true)
            }
            StreamForm::Bytes(b) => (StreamForm::Bytes(&b[..budget / 4 * 3]), true),
        }
    }

    fn into_fields(self) -> (String, Option<String>) {
        use base64::Engine as _;
        match self {
            StreamForm::Text(t) => (t.to_owned(), None),
            StreamForm::Bytes(b) => (
                String::new(),
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        }
    }
}

/// Length of one byte inside a JSON string as serde_json writes it.
fn json_escaped_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    }
}

impl ExecOutput {
    /// The answer for a command's raw output: each stream as text or base64, both within
    /// `budget` encoded bytes (a stream that needs less than half keeps all of it, the other
    /// gets the rest). `cut`: the runtime already dropped output past what it keeps.
    pub fn encode(stdout: &[u8], stderr: &[u8], cut: bool, budget: usize) -> ExecOutput {
        let out = StreamForm::of(stdout, cut);
        let err = StreamForm::of(stderr, cut);
        let (out_len, err_len) = (out.encoded_len(), err.encoded_len());
        let (out_budget, err_budget) = if out_len + err_len <= budget {
            (out_len, err_len)
        } else if err_len <= budget / 2 {
            (budget - err_len, err_len)
        } else if out_len <= budget / 2 {
            (out_len, budget - out_len)
        } else {
            (budget - budget / 2, budget / 2)
        };
        let (out, out_cut) = out.cut_to(out_budget);
        let (err, err_cut) = err.cut_to(err_budget);
        let (stdout, stdout_base64) = out.into_fields();
        let (stderr, stderr_base64) = err.into_fields();
        ExecOutput {
            stdout,
            stderr,
            stdout_base64,
            stderr_base64,
            exit_code: 0,
            timed_out: false,
            truncated: cut || out_cut || err_cut,
            oom_killed: false,
        }
    }

    /// Standard output's bytes, whichever way they were carried.
    pub fn stdout_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        stream_bytes(&self.stdout, self.stdout_base64.as_deref())
    }

    /// Standard error's bytes, whichever way they were carried.
    pub fn stderr_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        stream_bytes(&self.stderr, self.stderr_base64.as_deref())
    }
}

fn stream_bytes(text: &str, b64: Option<&str>) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    match b64 {
        Some(b) => base64::engine::general_purpose::STANDARD.decode(b),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// One directory entry inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxDirEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
}

/// `{"entries": [...]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxDirList {
    pub entries: Vec<SandboxDirEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_lines_round_trip() {
        let done = SearchLine::Done {
            done: true,
            summary: SearchSummary {
                matches: 3,
                truncated: false,
            },
        };
        let text = serde_json::to_string(&done).unwrap();
        assert_eq!(text, r#"{"done":true,"matches":3,"truncated":false}"#);
        assert_eq!(serde_json::from_str::<SearchLine>(&text).unwrap(), done);
        let m: SearchLine =
            serde_json::from_str(r#"{"path":"/a","line":1,"column":2,"text":"x"}"#).unwrap();
        assert!(matches!(m, SearchLine::Match(_)));
        let e: SearchLine =
            serde_json::from_str(r#"{"error":{"code":"internal","message":"m"}}"#).unwrap();
        assert!(matches!(e, SearchLine::Failed { .. }));
    }

    #[test]
    fn request_bodies_refuse_unknown_fields_and_take_defaults() {
        assert!(serde_json::from_str::<MkdirRequest>(r#"{"path":"/a","parent":true}"#).is_err());
        let m: MkdirRequest = serde_json::from_str(r#"{"path":"/a"}"#).unwrap();
        assert!(m.parents);
        let e: EditRequest = serde_json::from_str(r#"{"path":"/a","old":"x","new":"y"}"#).unwrap();
        assert_eq!(e.count, Some(1));
        let e: EditRequest =
            serde_json::from_str(r#"{"path":"/a","old":"x","new":"y","count":null}"#).unwrap();
        assert_eq!(e.count, None);
    }
}
