//! Start-up reconciliation of this server's sandbox records with its runtime, and the task
//! that destroys sandboxes past their timeout.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nullspace_core::Error;
use nullspace_sandbox::Runtime;

use super::{live_ids, records::now, SandboxService};

/// How long the expiry task sleeps at most between looks at the deadlines (a new deadline
/// wakes it at once; this only bounds the effect of a missed wake-up or a database outage).
const EXPIRY_RECHECK: Duration = Duration::from_secs(60);

impl SandboxService {
    /// Makes this server's sandbox records and its runtime agree: a record whose sandbox the
    /// runtime no longer has is removed; a runtime sandbox without a record (a crash between
    /// the two steps of create or fork) is destroyed; a sandbox past its deadline is
    /// destroyed; every other record gets the runtime's current states. Other servers'
    /// records are left alone. Then starts the expiry task.
    pub(crate) async fn reconcile(&self) -> Result<(), Error> {
        if self.inner.runtime.is_err() {
            return Ok(());
        }
        let records = self
            .inner
            .store
            .server_sandboxes(&self.inner.server_id)
            .await?;
        let live: HashSet<String> = live_ids(self.runtime(|r| Ok(r.list())).await?);
        let known: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        for id in live.iter().filter(|id| !known.contains(id.as_str())) {
            tracing::info!(sandbox = %id, "destroying a sandbox that has no record");
            let sid = id.clone();
            self.runtime(move |r| r.destroy(&sid)).await?;
        }
        let now = now();
        for rec in records {
            if !live.contains(&rec.id) {
                tracing::info!(sandbox = %rec.id, "removing the record of a sandbox the runtime no longer has");
                self.inner.store.delete_sandbox(&rec.id).await?;
            } else if rec.expires_at.is_some_and(|t| t <= now) {
                tracing::info!(sandbox = %rec.id, "destroying a sandbox past its timeout");
                self.remove(&rec).await?;
            } else {
                self.refresh(&rec.tenant_id, &rec.id).await?;
            }
        }
        tokio::spawn(self.clone().expire_forever());
        Ok(())
    }

    /// The expiry task: destroys this server's sandboxes whose deadline has passed, sleeping
    /// until the next deadline (or a new one, or [`EXPIRY_RECHECK`]). Deadlines are in the
    /// records, so they hold across restarts (reconciliation destroys what expired meanwhile).
    async fn expire_forever(self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let wait = match self.expire_due().await {
                Ok(Some(next)) => (next - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(EXPIRY_RECHECK),
                Ok(None) => EXPIRY_RECHECK,
                Err(e) => {
                    tracing::warn!(error = %e.message, "cannot expire sandboxes; retrying");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.deadlines.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Destroys the sandboxes past their deadline; returns the next deadline, if any.
    async fn expire_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let now = Utc::now();
        let mut next: Option<DateTime<Utc>> = None;
        for rec in self
            .inner
            .store
            .server_sandboxes(&self.inner.server_id)
            .await?
        {
            match rec.expires_at {
                Some(t) if t <= now => {
                    tracing::info!(sandbox = %rec.id, timeout = ?rec.timeout_secs, "sandbox timed out; destroying it");
                    self.remove(&rec).await?;
                }
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        Ok(next)
    }
}

/// Before sandbox records moved into the control-plane store, one runtime used
/// `<data>/sandboxes` itself and the records were `<data>/sandboxes/records.json`. Those
/// sandboxes have no record any server would read, so they are destroyed (their volumes are
/// untouched) and the old files removed, once, with a warning.
pub(super) fn retire_legacy_layout(root: &std::path::Path) {
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
