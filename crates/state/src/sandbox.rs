//! Sandbox records: what the control plane knows of each sandbox and its volume attachments,
//! shared by every server on the database. The runtime's own host state (processes, cgroups,
//! writable layers) stays with the runtime of the server named by `server_id`.

use chrono::{DateTime, Utc};
use nullspace_core::{AttachmentState, SandboxState};

use crate::StateError;

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
    /// As the owning server last saw it.
    pub state: SandboxState,
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
    pub state: AttachmentState,
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

/// A stored sandbox state; `Internal` naming it when it is none this build knows.
pub(crate) fn sandbox_state(stored: String) -> Result<SandboxState, StateError> {
    SandboxState::parse(&stored)
        .ok_or_else(|| StateError::Internal(format!("stored sandbox state {stored:?} is unknown")))
}

/// A stored attachment state; `Internal` naming it when it is none this build knows.
pub(crate) fn attachment_state(stored: String) -> Result<AttachmentState, StateError> {
    AttachmentState::parse(&stored).ok_or_else(|| {
        StateError::Internal(format!("stored attachment state {stored:?} is unknown"))
    })
}

pub(crate) fn sandbox_not_found(id: &str) -> StateError {
    StateError::NotFound(format!("sandbox {id:?}"))
}

pub(crate) fn sandbox_exists(id: &str) -> StateError {
    StateError::AlreadyExists(format!("sandbox {id:?}"))
}

/// Two attachments of one sandbox on one mount path.
pub(crate) fn mount_path_taken() -> StateError {
    StateError::AlreadyExists("an attachment at that mount path".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_stored_states_are_internal_and_named() {
        assert_eq!(
            sandbox_state("paused".to_owned()).unwrap(),
            SandboxState::Paused
        );
        let e = sandbox_state("deleting".to_owned()).unwrap_err();
        assert!(matches!(e, StateError::Internal(_)), "{e:?}");
        assert!(e.to_string().contains("\"deleting\""), "{e}");
        let e = attachment_state("lost".to_owned()).unwrap_err();
        assert!(matches!(e, StateError::Internal(_)), "{e:?}");
        assert!(e.to_string().contains("\"lost\""), "{e}");
    }
}
