//! Sandbox records: what the control plane knows of each sandbox and its volume attachments,
//! shared by every server on the database. The runtime's own host state (processes, cgroups,
//! writable layers) stays with the runtime of the server named by `server_id`.

use chrono::{DateTime, Utc};

/// One sandbox as the control plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    /// `sb-…`, chosen by the server that creates it.
    pub id: String,
    pub tenant_id: String,
    /// The server whose runtime runs the sandbox (see `ServerConfig::server_id`).
    pub server_id: String,
    pub name: Option<String>,
    pub template: String,
    /// `running`, `paused` or `hibernated`, as the owning server last saw it.
    pub state: String,
    /// The create-time lifetime limit in seconds, if any.
    pub timeout_secs: Option<u64>,
    /// When the sandbox is destroyed (`created_at + timeout_secs`).
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In the order they were made.
    pub attachments: Vec<AttachmentRecord>,
}

/// One volume attached to a sandbox (made at create time or later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    /// `att-…`
    pub id: String,
    pub volume_id: String,
    pub volume_name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub subpath: Option<String>,
    /// `mounted`, `released` or `failed`.
    pub state: String,
    /// Why it is `failed`.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Groups joined rows (a sandbox, then one of its attachments or none), in sandbox order with
/// each sandbox's attachments in order, into records.
pub(crate) fn group(
    rows: impl IntoIterator<Item = (SandboxRecord, Option<AttachmentRecord>)>,
) -> Vec<SandboxRecord> {
    let mut out: Vec<SandboxRecord> = Vec::new();
    for (sandbox, attachment) in rows {
        match out.last_mut() {
            Some(last) if last.id == sandbox.id => {}
            _ => out.push(sandbox),
        }
        if let (Some(a), Some(last)) = (attachment, out.last_mut()) {
            last.attachments.push(a);
        }
    }
    out
}

/// Which sandboxes a query selects.
#[derive(Clone, Copy)]
pub(crate) enum Filter<'a> {
    /// One sandbox of one tenant.
    One {
        tenant_id: &'a str,
        id: &'a str,
    },
    Tenant(&'a str),
    Server(&'a str),
    /// Sandboxes with an attachment of this volume.
    Volume(&'a str),
}

/// The joined SELECT of sandboxes and attachments; `$1`/`$2` placeholders (SQLite accepts
/// them too), ordered by creation time, then id, then attachment position.
pub(crate) fn select(filter: Filter<'_>) -> String {
    let condition = match filter {
        Filter::One { .. } => "s.tenant_id = $1 AND s.id = $2",
        Filter::Tenant(_) => "s.tenant_id = $1",
        Filter::Server(_) => "s.server_id = $1",
        Filter::Volume(_) => {
            "s.id IN (SELECT sandbox_id FROM sandbox_attachments WHERE volume_id = $1)"
        }
    };
    format!(
        "SELECT s.id, s.tenant_id, s.server_id, s.name, s.template, s.state, s.timeout_secs,
                s.expires_at, s.created_at, s.updated_at,
                a.id AS a_id, a.volume_id AS a_volume_id, a.volume_name AS a_volume_name,
                a.mount_path AS a_mount_path, a.read_only AS a_read_only,
                a.subpath AS a_subpath, a.state AS a_state, a.error AS a_error,
                a.created_at AS a_created_at, a.updated_at AS a_updated_at
         FROM sandboxes s LEFT JOIN sandbox_attachments a ON a.sandbox_id = s.id
         WHERE {condition}
         ORDER BY s.created_at, s.id, a.position"
    )
}

impl Filter<'_> {
    /// The values bound to `$1` (and `$2`).
    pub(crate) fn binds(&self) -> Vec<&str> {
        match *self {
            Filter::One { tenant_id, id } => vec![tenant_id, id],
            Filter::Tenant(t) => vec![t],
            Filter::Server(s) => vec![s],
            Filter::Volume(v) => vec![v],
        }
    }
}

pub(crate) fn sandbox_not_found(id: &str) -> crate::StateError {
    crate::StateError::NotFound(format!("sandbox {id:?}"))
}

pub(crate) fn sandbox_exists(id: &str) -> crate::StateError {
    crate::StateError::AlreadyExists(format!("sandbox {id:?}"))
}

/// Two attachments of one sandbox on one mount path.
pub(crate) fn mount_path_taken() -> crate::StateError {
    crate::StateError::AlreadyExists("an attachment at that mount path".to_owned())
}
