//! What a server holds right now, counted for its metrics: volumes and their usage against
//! their caps, this server's sandboxes by state and runtime, their attachments by state, open
//! watch streams, pending resumable uploads, the database pool. Only aggregates: a figure per
//! volume or per tenant would let whoever may create volumes grow the metrics without bound.

use std::collections::BTreeMap;

use nullspace_core::{AttachmentState, Error, SandboxState};
use nullspace_state::PoolStatus;

use crate::Node;

/// The counts of one moment (see [`Node::observe`]).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Volumes of every tenant.
    pub volumes: u64,
    /// Their recorded usage, summed.
    pub volume_used_bytes: u64,
    /// Their caps, summed.
    pub volume_cap_bytes: u64,
    /// Volumes using at least 90 % of their cap.
    pub volumes_near_cap: u64,
    /// Volumes using all of their cap (or more: a cap lowered below usage).
    pub volumes_full: u64,
    /// This server's sandboxes by (state, runtime); every state of every runtime seen, zeros
    /// included, so that a series drops to 0 instead of vanishing.
    pub sandboxes: BTreeMap<(&'static str, String), u64>,
    /// The attachments of this server's sandboxes by state (every state, zeros included).
    pub attachments: BTreeMap<&'static str, u64>,
    /// Watch streams open on this server.
    pub watch_streams: u64,
    /// Resumable uploads neither complete nor expired, in the volumes open on this server.
    pub pending_uploads: u64,
    /// Volumes open on this server.
    pub open_volumes: u64,
    /// The control-plane database's connection pool.
    pub pool: Option<PoolStatus>,
}

/// Runtimes always reported (others appear when a record names them).
const RUNTIMES: [&str; 2] = ["namespace", "gvisor"];

impl Node {
    /// Counts what the server holds now (two queries and a look at the open volumes).
    pub async fn observe(&self) -> Result<Observed, Error> {
        let store = &self.inner.store;
        let mut seen = Observed {
            pool: store.pool_status(),
            watch_streams: self.volumes().open_watch_streams() as u64,
            ..Observed::default()
        };
        for v in store.all_volumes().await? {
            seen.volumes += 1;
            seen.volume_used_bytes = seen.volume_used_bytes.saturating_add(v.used_bytes);
            seen.volume_cap_bytes = seen.volume_cap_bytes.saturating_add(v.cap_bytes);
            // used/cap >= 0.9 without floating point: 10 * used >= 9 * cap.
            if u128::from(v.used_bytes) * 10 >= u128::from(v.cap_bytes) * 9 {
                seen.volumes_near_cap += 1;
            }
            if v.used_bytes >= v.cap_bytes {
                seen.volumes_full += 1;
            }
        }
        for state in AttachmentState::ALL {
            seen.attachments.insert(state.as_str(), 0);
        }
        for runtime in RUNTIMES {
            for state in SandboxState::ALL {
                seen.sandboxes
                    .insert((state.as_str(), runtime.to_owned()), 0);
            }
        }
        let server_id = self.sandboxes().server_id();
        for sb in store.server_sandboxes(server_id).await? {
            // A runtime name comes from this server's own code, but a record is data: one the
            // code does not know is counted under `other`, so it cannot add series.
            let runtime = if RUNTIMES.contains(&sb.runtime.as_str()) {
                sb.runtime.clone()
            } else {
                "other".to_owned()
            };
            *seen
                .sandboxes
                .entry((sb.state.as_str(), runtime))
                .or_default() += 1;
            for a in &sb.attachments {
                *seen.attachments.entry(a.state.as_str()).or_default() += 1;
            }
        }
        let handles = self.volumes().data().open_handles();
        seen.open_volumes = handles.len() as u64;
        seen.pending_uploads = crate::blocking(move || {
            Ok(handles
                .iter()
                .map(|h| h.pending_uploads().len() as u64)
                .sum())
        })
        .await?;
        Ok(seen)
    }
}
