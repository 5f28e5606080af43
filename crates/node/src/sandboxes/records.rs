//! Sandbox records: how a record follows what the runtime says, and how it reads on the wire.

use chrono::{DateTime, Utc};
use nullspace_core::wire::{Attachment, Sandbox};
use nullspace_core::{AttachmentState, Error};
use nullspace_sandbox::SandboxInfo;
use nullspace_state::{AttachmentRecord, SandboxRecord};

/// The longest sandbox timeout accepted: one year.
pub(crate) const MAX_TIMEOUT_SECS: u64 = 366 * 86_400;

/// The current time at the precision the store keeps (microseconds), so records read back
/// equal what was written.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// A new id with a prefix (`sb-…`, `att-…`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// `created_at + timeout`, or `invalid_argument` for a timeout of zero or beyond a year.
pub(crate) fn deadline(
    created_at: DateTime<Utc>,
    timeout: Option<u64>,
) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(t) = timeout else {
        return Ok(None);
    };
    if t == 0 || t > MAX_TIMEOUT_SECS {
        return Err(Error::invalid_argument(format!(
            "timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds, not {t}"
        )));
    }
    Ok(Some(created_at + chrono::Duration::seconds(t as i64)))
}

/// Ids of the volumes a sandbox has attached read-write: what its code may have changed.
pub(crate) fn written_volumes(rec: &SandboxRecord) -> Vec<String> {
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

/// Brings a record in line with what the runtime says (sandbox state, each attachment's state
/// and error); timestamps move only where something changed. Returns whether it changed.
pub(crate) fn apply(rec: &mut SandboxRecord, info: &SandboxInfo, now: DateTime<Utc>) -> bool {
    let mut changed = false;
    if rec.state != info.state {
        rec.state = info.state;
        changed = true;
    }
    for a in &mut rec.attachments {
        let (state, error) = match info.mounts.iter().find(|m| m.spec.target == a.mount_path) {
            Some(m) => (m.state, m.error.clone()),
            None => (AttachmentState::Released, None),
        };
        if a.state != state || a.error != error {
            a.state = state;
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

/// An attachment record as the API shows it.
pub(crate) fn attachment(sandbox_id: &str, a: &AttachmentRecord) -> Attachment {
    Attachment {
        id: a.id.clone(),
        sandbox_id: sandbox_id.to_owned(),
        volume: a.volume_name.clone(),
        mount_path: a.mount_path.clone(),
        read_only: a.read_only,
        subpath: a.subpath.clone(),
        state: a.state,
        error: a.error.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

/// A sandbox record as the API shows it.
pub(crate) fn sandbox(rec: &SandboxRecord) -> Sandbox {
    Sandbox {
        id: rec.id.clone(),
        name: rec.name.clone(),
        template: rec.template.clone(),
        state: rec.state,
        server_id: rec.server_id.clone(),
        timeout: rec.timeout_secs,
        expires_at: rec.expires_at,
        created_at: rec.created_at,
        attachments: rec
            .attachments
            .iter()
            .map(|a| attachment(&rec.id, a))
            .collect(),
        cpu: nullspace_core::limits::cores(rec.limits.cpu_millicores),
        memory_bytes: rec.limits.memory_bytes,
        disk_bytes: rec.limits.disk_bytes,
        pids: rec.limits.pids,
        runtime: rec.runtime.clone(),
    }
}
