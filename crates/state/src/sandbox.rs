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
    /// What the sandbox may use (set at create; a fork inherits its source's).
    pub limits: SandboxLimits,
    /// The runtime that runs it (`namespace`, `gvisor`; rows from before: `namespace`).
    pub runtime: String,
}

/// The resources one sandbox was given, as recorded (the runtime applies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Thousandths of a core.
    pub cpu_millicores: u32,
    pub memory_bytes: u64,
    /// Cap of its writable layer.
    pub disk_bytes: u64,
    pub pids: u32,
}

impl Default for SandboxLimits {
    /// What records from before limits existed read as: 1 core, 1 GiB, 4 GiB, 1,024 pids.
    fn default() -> SandboxLimits {
        SandboxLimits {
            cpu_millicores: 1000,
            memory_bytes: 1 << 30,
            disk_bytes: 4 << 30,
            pids: 1024,
        }
    }
}

/// A tenant's limits. As stored, `None` is "the server's default"; as defaults passed to
/// the store, `None` is "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    pub max_sandboxes: Option<u64>,
    pub max_volumes: Option<u64>,
    pub max_cpu_millicores: Option<u64>,
    pub max_sandbox_memory: Option<u64>,
    pub max_total_memory: Option<u64>,
    pub max_total_disk: Option<u64>,
    /// Most live (neither revoked nor expired) keys and volume tokens, together.
    pub max_keys: Option<u64>,
}

impl TenantLimits {
    /// These limits, each missing one taken from `defaults`.
    pub fn or(self, defaults: TenantLimits) -> TenantLimits {
        TenantLimits {
            max_sandboxes: self.max_sandboxes.or(defaults.max_sandboxes),
            max_volumes: self.max_volumes.or(defaults.max_volumes),
            max_cpu_millicores: self.max_cpu_millicores.or(defaults.max_cpu_millicores),
            max_sandbox_memory: self.max_sandbox_memory.or(defaults.max_sandbox_memory),
            max_total_memory: self.max_total_memory.or(defaults.max_total_memory),
            max_total_disk: self.max_total_disk.or(defaults.max_total_disk),
            max_keys: self.max_keys.or(defaults.max_keys),
        }
    }

    /// The names of the limits that are set.
    pub fn set_names(&self) -> Vec<String> {
        [
            ("max_sandboxes", self.max_sandboxes),
            ("max_volumes", self.max_volumes),
            ("max_cpu", self.max_cpu_millicores),
            ("max_sandbox_memory", self.max_sandbox_memory),
            ("max_total_memory", self.max_total_memory),
            ("max_total_disk", self.max_total_disk),
            ("max_keys", self.max_keys),
        ]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| (*n).to_owned())
        .collect()
    }
}

/// `Exhausted` when `holds + adding` would pass `limit`: names the limit, the tenant's figure
/// and the limit's value.
pub(crate) fn within(
    limit: &str,
    max: Option<u64>,
    holds: u64,
    adding: u64,
    what: impl Fn(u64) -> String,
) -> Result<(), StateError> {
    match max {
        Some(max) if holds.saturating_add(adding) > max => Err(StateError::Exhausted(format!(
            "tenant limit {limit} is {}; the tenant holds {} and this needs {} more",
            what(max),
            what(holds),
            what(adding)
        ))),
        _ => Ok(()),
    }
}

/// `Exhausted` naming the limit when one more sandbox given `adding` would pass the tenant's
/// `max_sandboxes`, `max_total_memory` or `max_total_disk` (`None`: no limit).
pub fn check_sandbox_room(
    limits: &TenantLimits,
    usage: &TenantUsage,
    adding: &SandboxLimits,
) -> Result<(), StateError> {
    let sized = nullspace_core::format_size;
    within(
        "max_sandboxes",
        limits.max_sandboxes,
        usage.sandboxes,
        1,
        |n| format!("{n} sandbox(es)"),
    )?;
    within(
        "max_total_memory",
        limits.max_total_memory,
        usage.memory_bytes,
        adding.memory_bytes,
        sized,
    )?;
    within(
        "max_total_disk",
        limits.max_total_disk,
        usage.disk_bytes,
        adding.disk_bytes,
        sized,
    )
}

/// What a tenant holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    pub sandboxes: u64,
    pub volumes: u64,
    /// Sum of its sandboxes' memory limits.
    pub memory_bytes: u64,
    /// Sum of its sandboxes' writable-layer caps.
    pub disk_bytes: u64,
    /// Its live keys and volume tokens (neither revoked nor expired).
    pub keys: u64,
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
