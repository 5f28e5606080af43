//! Control-plane state: tenants, API keys, volume and sandbox records, behind one trait.
//!
//! Architecture invariant: only this crate knows SQL. Callers hold an `Arc<dyn StateStore>` and
//! never learn which engine is behind it ([`open`] picks it from the database URL). Two engines
//! implement it, each with its own migrations: SQLite (embedded, the default) and PostgreSQL
//! (several servers sharing one control plane). Every statement is written once, for both
//! (`store.rs`); what differs is behind a small engine trait (`engine.rs`). Both pass the same
//! behaviour suite (`tests/behaviour.rs`).

mod engine;
mod error;
pub mod keys;
mod postgres;
mod record;
mod sandbox;
mod sqlite;
mod store;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use nullspace_core::{LabelSelector, Labels, Tenant, TenantName, Volume, VolumeName};

pub use error::StateError;
pub use keys::ApiKey;
pub use postgres::{PostgresStore, PEER_CHANNEL};
pub use sandbox::{
    check_sandbox_room, AttachmentRecord, SandboxLimits, SandboxRecord, TenantLimits, TenantUsage,
};
pub use sqlite::SqliteStore;
pub use store::SqlStore;

/// Opens the store `database_url` names, bringing its schema up to date: none, SQLite at
/// `data_dir/nullspace.db`; `sqlite:PATH` or `sqlite://PATH`, SQLite at PATH;
/// `postgres://…` or `postgresql://…`, PostgreSQL (see [`PostgresStore::connect`]). Any other
/// scheme is `InvalidUrl`.
pub async fn open(
    database_url: Option<&str>,
    data_dir: &Path,
) -> Result<Arc<dyn StateStore>, StateError> {
    let Some(url) = database_url else {
        return Ok(Arc::new(
            SqliteStore::open(&data_dir.join("nullspace.db")).await?,
        ));
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(StateError::InvalidUrl(format!(
                "{url:?} names no file: use sqlite:PATH"
            )));
        }
        return Ok(Arc::new(SqliteStore::open(Path::new(path)).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The error names the server, never the password.
        return Ok(Arc::new(PostgresStore::connect(url).await?));
    }
    let scheme = url.split(':').next().unwrap_or("");
    Err(StateError::InvalidUrl(format!(
        "unsupported --database-url scheme {scheme:?}: use sqlite:PATH or \
         postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )))
}

/// Who is calling: resolved from an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub tenant_name: String,
    /// Admin keys may run `nullspace admin …` verbs (create tenants, set caps).
    pub admin: bool,
}

/// Name of the tenant created on first start.
pub const DEFAULT_TENANT: &str = "default";

/// Longest message [`PeerChannel::send`] takes, in bytes (PostgreSQL's NOTIFY payload limit is
/// 8000 bytes).
pub const MAX_PEER_MESSAGE: usize = 7_999;

/// Messages between the servers sharing one control plane (PostgreSQL `LISTEN`/`NOTIFY`):
/// best effort and not stored, so a listener is told when it may have missed some.
#[async_trait]
pub trait PeerChannel: Send + Sync + 'static {
    /// Sends one message to every listening server (the sender's own listener included).
    /// `Internal` for a payload over [`MAX_PEER_MESSAGE`] bytes (callers split or drop).
    async fn send(&self, payload: &str) -> Result<(), StateError>;

    /// Starts listening to what every server sends.
    async fn listen(&self) -> Result<Box<dyn PeerListener>, StateError>;
}

/// One server's subscription to the [`PeerChannel`].
#[async_trait]
pub trait PeerListener: Send {
    /// The next message. `Ok(None)` when the connection was lost and messages sent meanwhile
    /// are gone; listening goes on, reconnecting on the next call (an error while the
    /// database is away).
    async fn recv(&mut self) -> Result<Option<String>, StateError>;
}

/// The control plane's durable state. Every method is one transaction.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// On first start (no tenant exists yet) creates the `default` tenant with an admin key:
    /// `bootstrap_key` if given, else a random one. Returns the key when one was created, `None`
    /// when the store was already bootstrapped (the given key is then ignored).
    async fn bootstrap(&self, bootstrap_key: Option<&ApiKey>)
        -> Result<Option<ApiKey>, StateError>;

    /// Resolves a presented key; `Unauthenticated` when it matches no stored key.
    /// Keys are stored hashed and compared in constant time.
    async fn authenticate(&self, key: &ApiKey) -> Result<Principal, StateError>;

    /// Creates a tenant and its first (non-admin) key, returned in plain text once.
    async fn create_tenant(&self, name: &TenantName) -> Result<(Tenant, ApiKey), StateError>;

    /// Looks a tenant up by name.
    async fn get_tenant(&self, name: &TenantName) -> Result<Tenant, StateError>;

    /// Sets the cap that this tenant's new volumes get.
    async fn set_tenant_volume_cap(
        &self,
        name: &TenantName,
        cap_bytes: u64,
    ) -> Result<Tenant, StateError>;

    /// Creates a volume record (state `ready`, usage zero, cap from the tenant's default).
    /// `AlreadyExists` when the tenant has a volume of that name.
    async fn create_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
        labels: &Labels,
    ) -> Result<Volume, StateError> {
        self.create_volume_within(tenant_id, name, labels, &TenantLimits::default())
            .await
    }

    /// One of a tenant's volumes by name; `NotFound` otherwise (also for other tenants' volumes).
    async fn get_volume(&self, tenant_id: &str, name: &VolumeName) -> Result<Volume, StateError>;

    /// A tenant's volumes whose labels match every selector, sorted by name.
    async fn list_volumes(
        &self,
        tenant_id: &str,
        selectors: &[LabelSelector],
    ) -> Result<Vec<Volume>, StateError>;

    /// Every volume of every tenant (for reconciliation on start).
    async fn all_volumes(&self) -> Result<Vec<Volume>, StateError>;

    /// Removes a volume record and returns it; `NotFound` if absent.
    async fn delete_volume(&self, tenant_id: &str, name: &VolumeName)
        -> Result<Volume, StateError>;

    /// Records a volume's usage (absolute figures) and bumps `updated_at`.
    async fn set_volume_usage(
        &self,
        volume_id: &str,
        used_bytes: u64,
        file_count: u64,
    ) -> Result<(), StateError>;

    /// Records a new sandbox with its attachments. `AlreadyExists` for a taken id (or two
    /// attachments on one mount path), `NotFound` for an unknown tenant or volume.
    async fn create_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError> {
        self.create_sandbox_within(sandbox, &TenantLimits::default())
            .await
    }

    /// [`StateStore::create_sandbox`] within the tenant's limits (its own, else `defaults`;
    /// `None` in both: no limit) on sandboxes, total memory and total disk, counted in the
    /// same transaction that inserts, with the tenant's row locked: concurrent creates of one
    /// tenant, on any server sharing the database, are counted one after the other.
    /// `Exhausted` naming the limit, and nothing stored, when the new sandbox would pass one.
    async fn create_sandbox_within(
        &self,
        sandbox: &SandboxRecord,
        defaults: &TenantLimits,
    ) -> Result<(), StateError>;

    /// [`StateStore::create_volume`] within the tenant's `max_volumes` (its own, else
    /// `defaults`), counted like [`StateStore::create_sandbox_within`].
    async fn create_volume_within(
        &self,
        tenant_id: &str,
        name: &VolumeName,
        labels: &Labels,
        defaults: &TenantLimits,
    ) -> Result<Volume, StateError>;

    /// A tenant's own limits (`None`: the server's default) and what it holds now.
    async fn tenant_limits(
        &self,
        name: &TenantName,
    ) -> Result<(Tenant, TenantLimits, TenantUsage), StateError>;

    /// Sets the given limits of a tenant (the `None` ones stay as they are).
    async fn set_tenant_limits(
        &self,
        name: &TenantName,
        limits: &TenantLimits,
    ) -> Result<(), StateError>;

    /// One of a tenant's sandboxes; `NotFound` otherwise (also for other tenants' sandboxes).
    async fn get_sandbox(&self, tenant_id: &str, id: &str) -> Result<SandboxRecord, StateError>;

    /// A tenant's sandboxes, whichever server runs them, oldest first.
    async fn list_sandboxes(&self, tenant_id: &str) -> Result<Vec<SandboxRecord>, StateError>;

    /// Every sandbox run by one server (for its reconciliation and expiry), oldest first.
    async fn server_sandboxes(&self, server_id: &str) -> Result<Vec<SandboxRecord>, StateError>;

    /// Every sandbox that has the volume attached, oldest first.
    async fn volume_sandboxes(&self, volume_id: &str) -> Result<Vec<SandboxRecord>, StateError>;

    /// Replaces a sandbox's state, `updated_at` and attachments (matched by id; the given list
    /// becomes the whole list, in order). Tenant, server, template, timeout and creation time
    /// never change. `NotFound` if the sandbox is gone.
    async fn update_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError>;

    /// Removes a sandbox record and its attachments; `NotFound` if absent.
    async fn delete_sandbox(&self, id: &str) -> Result<(), StateError>;

    /// The channel to the other servers sharing this store; `None` for a store only one
    /// server can use (SQLite).
    fn peers(&self) -> Option<Arc<dyn PeerChannel>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use nullspace_core::{Error, ErrorCode};

    use super::*;

    /// What `open` made of `url` (the store itself has no `Debug` behind `dyn`).
    async fn opened(url: Option<&str>, data_dir: &Path) -> Result<(), StateError> {
        open(url, data_dir).await.map(drop)
    }

    #[tokio::test]
    async fn no_url_is_sqlite_in_the_data_dir_and_sqlite_urls_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        opened(None, dir.path()).await.unwrap();
        assert!(dir.path().join("nullspace.db").is_file());
        for (url, file) in [("sqlite:", "a.db"), ("sqlite://", "b.db")] {
            let path = dir.path().join(file);
            opened(Some(&format!("{url}{}", path.display())), dir.path())
                .await
                .unwrap();
            assert!(path.is_file(), "{url}");
        }
        let e = opened(Some("sqlite:"), dir.path()).await.unwrap_err();
        assert!(matches!(e, StateError::InvalidUrl(_)), "{e:?}");
    }

    #[tokio::test]
    async fn postgres_urls_connect_and_other_schemes_are_invalid_arguments() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "postgres://u:p@127.0.0.1:1/x",
            "postgresql://u:p@127.0.0.1:1/x",
        ] {
            let e = opened(Some(url), dir.path()).await.unwrap_err();
            assert!(matches!(e, StateError::Unavailable(_)), "{url}: {e:?}");
        }
        let e = opened(Some("mysql://h/db"), dir.path()).await.unwrap_err();
        assert!(
            e.to_string().contains(
                "unsupported --database-url scheme \"mysql\": use sqlite:PATH or \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ),
            "{e}"
        );
        assert_eq!(Error::from(e).code, ErrorCode::InvalidArgument);
    }
}
