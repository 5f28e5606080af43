//! [`StateStore`] on either engine: every statement written once, with `$n` placeholders (which
//! SQLite accepts as well). What differs between the engines is behind [`Engine`].
//!
//! Concurrency, on both: every write is one statement or one transaction, and uniqueness is
//! enforced by constraints, never by a read-then-write check, so two servers (or two requests)
//! creating the same name leave exactly one row and the other gets `AlreadyExists`. A taken name
//! is found with `ON CONFLICT DO NOTHING`, not a unique violation: a normal answer, not an ERROR
//! line in PostgreSQL's log.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nullspace_core::{
    LabelSelector, Labels, Tenant, TenantName, Volume, VolumeName, DEFAULT_VOLUME_CAP,
};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Row,
    Transaction, Type,
};

use crate::cache::{CachedKey, KeyCache};
use crate::changes::ChangeCounter;
use crate::engine::Engine;
use crate::record::{
    key_exists, key_not_found, new_id, now, tenant_exists, tenant_id_not_found, tenant_not_found,
    to_i64, to_u64, volume_exists, volume_id_not_found, volume_not_found,
};
use crate::sandbox::{
    self, check_sandbox_room, mount_path_taken, sandbox_exists, sandbox_not_found, within,
};
use crate::{
    ApiKey, AttachmentRecord, KeyInfo, NewKey, PeerChannel, Principal, Role, SandboxLimits,
    SandboxRecord, StateError, StateStore, TenantLimits, TenantUsage, TokenScope, DEFAULT_TENANT,
};

/// The control-plane store on one database of engine `DB` ([`SqliteStore`](crate::SqliteStore)
/// or [`PostgresStore`](crate::PostgresStore)). Beyond the connection pool it keeps only the
/// keys it resolved, each used while the cache generation has not moved (see `cache`): whatever
/// one server writes, every other server on the database reads.
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    /// What the store is open on, for messages: the SQLite file, or PostgreSQL's
    /// `host:port/database` (never a password).
    place: String,
    /// Resolved keys (see `cache`).
    keys: Arc<KeyCache>,
    /// SQLite: the cache generation, shared by the stores open on the file (see `changes`);
    /// PostgreSQL: `None`, the generation is a row.
    counter: Option<Arc<ChangeCounter>>,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(
        pool: Pool<DB>,
        place: String,
        counter: Option<ChangeCounter>,
    ) -> SqlStore<DB> {
        SqlStore {
            pool,
            place,
            keys: Arc::default(),
            counter: counter.map(Arc::new),
        }
    }

    /// Starts a change that bumps the cache generation (its transaction also runs
    /// [`bump_generation`]); keep the mark until after the commit.
    fn begin_change(&self) -> ChangeMark<'_> {
        if let Some(c) = &self.counter {
            c.begin();
        }
        ChangeMark {
            counter: self.counter.as_deref(),
            keys: &self.keys,
        }
    }
}

/// A change in flight (see [`SqlStore::begin_change`]): when dropped, after the commit or
/// the rollback, the generation moves on and this store's cached keys go.
struct ChangeMark<'a> {
    counter: Option<&'a ChangeCounter>,
    keys: &'a KeyCache,
}

impl Drop for ChangeMark<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.counter {
            c.end();
        }
        self.keys.clear();
    }
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            place: self.place.clone(),
            keys: self.keys.clone(),
            counter: self.counter.clone(),
        }
    }
}

/// Bumps the cache generation, in the transaction of the change that makes cached entries
/// stale (see `cache`).
async fn bump_generation<DB: Engine>(conn: &mut DB::Connection) -> Result<(), StateError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    sqlx::query("UPDATE cache_generation SET n = n + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(DB::db_error)?;
    Ok(())
}

impl<DB: Engine> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(DB::STORE_NAME)
            .field("database", &self.place)
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// A column type both engines bind and read (a bound alias: `T: Column<DB>`). Public only
/// because the `StateStore` impl names it; the module is private.
pub trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

/// The volume columns, in the order `volume_from_row` reads them by name.
/// A tenant's limit columns.
macro_rules! limit_columns {
    () => {
        "max_sandboxes, max_volumes, max_cpu_millicores, max_sandbox_memory, max_total_memory,
         max_total_disk, max_keys"
    };
}

/// A stored count that must fit 32 bits.
fn small(what: &str, v: u64) -> Result<u32, StateError> {
    u32::try_from(v).map_err(|_| StateError::Internal(format!("stored {what} {v} is too large")))
}

macro_rules! volume_columns {
    () => {
        "id, name, created_at, updated_at, cap_bytes, used_bytes, file_count, labels"
    };
}

/// The key columns, as `key_from_row` reads them.
macro_rules! key_columns {
    () => {
        "id, name, role, prefix, created_at, last_used_at, expires_at, revoked_at, volume_id, path,
         read_only"
    };
}

/// `last_used_at` is refreshed at most this often per key (seconds).
const LAST_USED_EVERY_SECS: i64 = 60;

/// Whether a key last used at `last` (as stored) should have `last_used_at` written at `now`.
fn last_use_is_due(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last.is_none_or(|t| now - t >= chrono::Duration::seconds(LAST_USED_EVERY_SECS))
}

/// The first key of a tenant (and the bootstrap key): an admin key without expiry.
fn first_key() -> NewKey {
    NewKey {
        name: Some("first key".into()),
        role: Role::Admin,
        expires_at: None,
        token: None,
    }
}

/// The one volume state: volumes are created ready and their records removed at once on
/// delete, so the schema stores no state (migration 0003 dropped the unused `deleting`).
const VOLUME_READY: &str = "ready";

/// Which volumes a query selects.
#[derive(Clone, Copy)]
enum Volumes<'a> {
    /// One of a tenant's volumes by name.
    Named {
        tenant_id: &'a str,
        name: &'a VolumeName,
    },
    /// A tenant's volumes, by name.
    Tenant(&'a str),
    /// Every volume, by tenant then name.
    All,
}

impl<'a> Volumes<'a> {
    /// The SELECT of the volume columns plus `attachments`, the number of sandbox attachments
    /// of the volume (whichever server runs the sandbox). Names are ordered bytewise on both
    /// engines (PostgreSQL's columns are `COLLATE "C"`).
    fn select(self) -> String {
        let condition = match self {
            Volumes::Named { .. } => "WHERE tenant_id = $1 AND name = $2",
            Volumes::Tenant(_) => "WHERE tenant_id = $1 ORDER BY name",
            Volumes::All => "ORDER BY tenant_id, name",
        };
        format!(
            "SELECT {}, (SELECT COUNT(*) FROM sandbox_attachments a WHERE a.volume_id = volumes.id)
                    AS attachments
             FROM volumes {condition}",
            volume_columns!()
        )
    }

    /// The values bound to `$1` (and `$2`).
    fn binds(self) -> Vec<&'a str> {
        match self {
            Volumes::Named { tenant_id, name } => vec![tenant_id, name.as_str()],
            Volumes::Tenant(t) => vec![t],
            Volumes::All => Vec::new(),
        }
    }
}

/// Which sandboxes a query selects.
#[derive(Clone, Copy)]
enum Sandboxes<'a> {
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

impl<'a> Sandboxes<'a> {
    /// The joined SELECT of sandboxes and attachments, ordered by creation time, then id, then
    /// attachment position.
    fn select(self) -> String {
        let condition = match self {
            Sandboxes::One { .. } => "s.tenant_id = $1 AND s.id = $2",
            Sandboxes::Tenant(_) => "s.tenant_id = $1",
            Sandboxes::Server(_) => "s.server_id = $1",
            Sandboxes::Volume(_) => {
                "s.id IN (SELECT sandbox_id FROM sandbox_attachments WHERE volume_id = $1)"
            }
        };
        format!(
            "SELECT s.id, s.tenant_id, s.server_id, s.name, s.template, s.state, s.timeout_secs,
                    s.expires_at, s.created_at, s.updated_at, s.cpu_millicores, s.memory_bytes,
                    s.disk_bytes, s.pids, s.runtime,
                    a.id AS a_id, a.volume_id AS a_volume_id, a.volume_name AS a_volume_name,
                    a.mount_path AS a_mount_path, a.read_only AS a_read_only,
                    a.subpath AS a_subpath, a.state AS a_state, a.error AS a_error,
                    a.created_at AS a_created_at, a.updated_at AS a_updated_at
             FROM sandboxes s LEFT JOIN sandbox_attachments a ON a.sandbox_id = s.id
             WHERE {condition}
             ORDER BY s.created_at, s.id, a.position"
        )
    }

    /// The values bound to `$1` (and `$2`).
    fn binds(self) -> Vec<&'a str> {
        match self {
            Sandboxes::One { tenant_id, id } => vec![tenant_id, id],
            Sandboxes::Tenant(t) => vec![t],
            Sandboxes::Server(s) => vec![s],
            Sandboxes::Volume(v) => vec![v],
        }
    }
}

/// Starts a transaction that writes, on a pooled connection.
async fn begin_write<DB: Engine>(
    conn: &mut PoolConnection<DB>,
) -> Result<Transaction<'_, DB>, StateError> {
    conn.begin_with(DB::BEGIN_WRITE).await.map_err(DB::db_error)
}

/// `on_foreign_key()` for a reference to a row that is not there, `on_unique()` for a
/// unique-constraint violation, else the engine's mapping.
fn constraint_error<DB: Engine>(
    e: sqlx::Error,
    on_unique: impl FnOnce() -> StateError,
    on_foreign_key: impl FnOnce() -> StateError,
) -> StateError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => on_foreign_key(),
        _ => unique_or::<DB>(e, on_unique),
    }
}

/// `on_unique()` for a unique-constraint violation, else the engine's mapping.
fn unique_or<DB: Engine>(e: sqlx::Error, on_unique: impl FnOnce() -> StateError) -> StateError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => on_unique(),
        _ => DB::db_error(e),
    }
}

impl<DB: Engine> SqlStore<DB> {
    /// A pooled connection (tested before it is handed out on PostgreSQL).
    async fn conn(&self) -> Result<PoolConnection<DB>, StateError> {
        self.pool.acquire().await.map_err(DB::acquire_error)
    }
}

/// The helpers the statements share. (Its `where` clause is the statements' needs of an
/// engine: executing on a connection, binding `$n` arguments, reading columns by name, the
/// column types; the `StateStore` impl below repeats it, as Rust implies no such bounds.)
impl<DB> SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    String: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Option<DB::Timestamp>: Column<DB>,
    bool: Column<DB>,
    Json<Labels>: Column<DB>,
{
    /// Runs a SELECT with text arguments.
    async fn fetch(&self, sql: &str, binds: Vec<&str>) -> Result<Vec<DB::Row>, StateError> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        let mut conn = self.conn().await?;
        q.fetch_all(&mut *conn).await.map_err(DB::db_error)
    }

    /// The volumes a filter selects, with their attachment counts.
    async fn volumes(&self, which: Volumes<'_>) -> Result<Vec<Volume>, StateError> {
        let rows = self.fetch(&which.select(), which.binds()).await?;
        rows.iter().map(Self::volume_from_row).collect()
    }

    /// The sandboxes a filter selects, with their attachments (one statement, so one snapshot).
    async fn sandboxes(&self, which: Sandboxes<'_>) -> Result<Vec<SandboxRecord>, StateError> {
        let rows = self.fetch(&which.select(), which.binds()).await?;
        let parsed = rows
            .iter()
            .map(Self::sandbox_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sandbox::group(parsed))
    }

    /// Runs a statement that changes rows; `unchanged()` when it changed none.
    async fn change<'q>(
        conn: &mut DB::Connection,
        statement: Query<'q, DB, DB::Arguments<'q>>,
        unchanged: impl FnOnce() -> StateError + Send,
    ) -> Result<(), StateError> {
        let done = statement.execute(conn).await.map_err(DB::db_error)?;
        if DB::rows_affected(&done) == 0 {
            return Err(unchanged());
        }
        Ok(())
    }

    /// Inserts a tenant with no cap of its own; `AlreadyExists` if the name is taken.
    async fn insert_tenant(conn: &mut DB::Connection, name: &str) -> Result<Tenant, StateError> {
        let tenant = Tenant {
            id: new_id("ten"),
            name: name.to_owned(),
            volume_cap_bytes: None,
            created_at: now(),
        };
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, name, volume_cap_bytes, created_at)
             VALUES ($1, $2, NULL, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(tenant.id.as_str())
        .bind(tenant.name.as_str())
        .bind(DB::timestamp(tenant.created_at))
        .execute(conn)
        .await
        .map_err(|e| unique_or::<DB>(e, || tenant_exists(name)))?;
        if DB::rows_affected(&inserted) == 0 {
            return Err(tenant_exists(name));
        }
        Ok(tenant)
    }

    /// Stores a key's hash (never the key) for a tenant.
    async fn insert_key(
        conn: &mut DB::Connection,
        tenant_id: &str,
        key: &ApiKey,
        new: &NewKey,
    ) -> Result<KeyInfo, StateError> {
        let info = KeyInfo {
            id: new_id("key"),
            name: new.name.clone(),
            role: new.role,
            prefix: key.display_prefix(),
            created_at: now(),
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
            volume_id: new.token.as_ref().map(|(_, t)| t.volume_id.clone()),
            path: new.token.as_ref().map(|(_, t)| t.path.to_string()),
            read_only: new.token.as_ref().is_some_and(|(_, t)| t.read_only),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, lookup_id, key_hash, admin, created_at, name,
                                   role, prefix, expires_at, parent_id, volume_id, path, read_only)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(info.id.as_str())
        .bind(tenant_id)
        .bind(key.lookup_id())
        .bind(key.hash())
        .bind(new.role == Role::Admin)
        .bind(DB::timestamp(info.created_at))
        .bind(info.name.as_deref())
        .bind(info.role.as_str())
        .bind(info.prefix.as_str())
        .bind(info.expires_at.map(DB::timestamp))
        .bind(new.token.as_ref().map(|(parent, _)| parent.as_str()))
        .bind(info.volume_id.as_deref())
        .bind(info.path.as_deref())
        .bind(info.read_only)
        .execute(conn)
        .await
        .map_err(|e| unique_or::<DB>(e, key_exists))?;
        Ok(info)
    }

    /// Inserts a sandbox's attachments in order; a volume that is gone is `NotFound`.
    async fn insert_attachments(
        conn: &mut DB::Connection,
        sandbox_id: &str,
        attachments: &[AttachmentRecord],
    ) -> Result<(), StateError> {
        for (position, a) in attachments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sandbox_attachments (id, sandbox_id, position, volume_id,
                     volume_name, mount_path, read_only, subpath, state, error, created_at,
                     updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(a.id.as_str())
            .bind(sandbox_id)
            .bind(to_i64("position", position as u64)?)
            .bind(a.volume_id.as_str())
            .bind(a.volume_name.as_str())
            .bind(a.mount_path.as_str())
            .bind(a.read_only)
            .bind(a.subpath.as_deref())
            .bind(a.state.as_str())
            .bind(a.error.as_deref())
            .bind(DB::timestamp(a.created_at))
            .bind(DB::timestamp(a.updated_at))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                constraint_error::<DB>(e, mount_path_taken, || {
                    StateError::NotFound(format!("volume {:?}", a.volume_name))
                })
            })?;
        }
        Ok(())
    }

    /// Locks the tenant's row until the transaction ends (PostgreSQL; SQLite's write
    /// transactions run one at a time anyway) and reads its own limits; `NotFound` if absent.
    /// Counting after this sees every create of the tenant that committed before.
    async fn lock_tenant(
        conn: &mut DB::Connection,
        tenant_id: &str,
    ) -> Result<TenantLimits, StateError> {
        let row = sqlx::query(concat!(
            "UPDATE tenants SET max_sandboxes = max_sandboxes WHERE id = $1 RETURNING ",
            limit_columns!()
        ))
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(DB::db_error)?
        .ok_or_else(|| tenant_id_not_found(tenant_id))?;
        Self::limits_from_row(&row)
    }

    /// What a tenant holds now.
    async fn usage(conn: &mut DB::Connection, tenant_id: &str) -> Result<TenantUsage, StateError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sandboxes WHERE tenant_id = $1) AS sandboxes,
                    (SELECT COUNT(*) FROM volumes WHERE tenant_id = $1) AS volumes,
                    CAST((SELECT COALESCE(SUM(memory_bytes), 0) FROM sandboxes
                          WHERE tenant_id = $1) AS BIGINT) AS memory_bytes,
                    CAST((SELECT COALESCE(SUM(disk_bytes), 0) FROM sandboxes
                          WHERE tenant_id = $1) AS BIGINT) AS disk_bytes,
                    (SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL
                       AND (expires_at IS NULL OR expires_at > $2)) AS keys",
        )
        .bind(tenant_id)
        .bind(DB::timestamp(now()))
        .fetch_one(&mut *conn)
        .await
        .map_err(DB::db_error)?;
        Ok(TenantUsage {
            sandboxes: Self::count(&row, "sandboxes")?,
            volumes: Self::count(&row, "volumes")?,
            memory_bytes: Self::count(&row, "memory_bytes")?,
            disk_bytes: Self::count(&row, "disk_bytes")?,
            keys: Self::count(&row, "keys")?,
        })
    }

    fn limits_from_row(row: &DB::Row) -> Result<TenantLimits, StateError> {
        let opt = |c: &str| -> Result<Option<u64>, StateError> {
            Self::get::<Option<i64>>(row, c)?
                .map(|v| to_u64(c, v))
                .transpose()
        };
        Ok(TenantLimits {
            max_sandboxes: opt("max_sandboxes")?,
            max_volumes: opt("max_volumes")?,
            max_cpu_millicores: opt("max_cpu_millicores")?,
            max_sandbox_memory: opt("max_sandbox_memory")?,
            max_total_memory: opt("max_total_memory")?,
            max_total_disk: opt("max_total_disk")?,
            max_keys: opt("max_keys")?,
        })
    }

    /// One column of a row.
    fn get<T>(row: &DB::Row, column: &str) -> Result<T, StateError>
    where
        T: for<'r> Decode<'r, DB> + Type<DB>,
    {
        row.try_get(column).map_err(DB::db_error)
    }

    /// A timestamp column.
    fn time(row: &DB::Row, column: &str) -> Result<DateTime<Utc>, StateError> {
        DB::read_timestamp(column, Self::get(row, column)?)
    }

    /// A column of a count or size.
    fn count(row: &DB::Row, column: &str) -> Result<u64, StateError> {
        to_u64(column, Self::get(row, column)?)
    }

    fn opt_time(row: &DB::Row, column: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        Self::get::<Option<DB::Timestamp>>(row, column)?
            .map(|t| DB::read_timestamp(column, t))
            .transpose()
    }

    /// The principal of a key row of `authenticate`'s statement.
    fn principal_from_row(
        &self,
        row: &DB::Row,
        generation: Option<u64>,
    ) -> Result<Principal, StateError> {
        let role: String = Self::get(row, "role")?;
        let role = Role::parse(&role)
            .map_err(|_| StateError::Internal(format!("stored key role {role:?}")))?;
        let tenant_name: String = Self::get(row, "tenant_name")?;
        let token = Self::get::<Option<String>>(row, "volume_id")?.map(|volume_id| {
            let path: Option<String> = Self::get(row, "path")?;
            Ok::<_, StateError>(TokenScope {
                volume_id,
                read_only: Self::get(row, "read_only")?,
                path: nullspace_core::VolumePath::parse(path.as_deref().unwrap_or("/"))
                    .map_err(|e| StateError::Internal(format!("stored token path: {e}")))?,
            })
        });
        let token = token.transpose()?;
        Ok(Principal {
            tenant_id: Self::get(row, "tenant_id")?,
            admin: role == Role::Admin && tenant_name == DEFAULT_TENANT && token.is_none(),
            token,
            tenant_name,
            role,
            key_id: Self::get(row, "id")?,
            generation,
        })
    }

    /// Writes a key's `last_used_at` (see [`LAST_USED_EVERY_SECS`]), never failing the
    /// request: a lost write is retried at the next use.
    async fn note_use(&self, key_id: &str, now: DateTime<Utc>) {
        let Ok(mut conn) = self.conn().await else {
            return;
        };
        let _ = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(DB::timestamp(now))
        .bind(key_id)
        .bind(DB::timestamp(
            now - chrono::Duration::seconds(LAST_USED_EVERY_SECS),
        ))
        .execute(&mut *conn)
        .await;
    }

    fn key_from_row(row: &DB::Row) -> Result<KeyInfo, StateError> {
        let role: String = Self::get(row, "role")?;
        Ok(KeyInfo {
            id: Self::get(row, "id")?,
            name: Self::get(row, "name")?,
            role: Role::parse(&role)
                .map_err(|_| StateError::Internal(format!("stored key role {role:?}")))?,
            prefix: Self::get(row, "prefix")?,
            created_at: Self::time(row, "created_at")?,
            last_used_at: Self::opt_time(row, "last_used_at")?,
            expires_at: Self::opt_time(row, "expires_at")?,
            revoked_at: Self::opt_time(row, "revoked_at")?,
            volume_id: Self::get(row, "volume_id")?,
            path: Self::get(row, "path")?,
            read_only: Self::get(row, "read_only")?,
        })
    }

    fn tenant_from_row(row: &DB::Row) -> Result<Tenant, StateError> {
        let cap: Option<i64> = Self::get(row, "volume_cap_bytes")?;
        Ok(Tenant {
            id: Self::get(row, "id")?,
            name: Self::get(row, "name")?,
            volume_cap_bytes: cap.map(|c| to_u64("volume_cap_bytes", c)).transpose()?,
            created_at: Self::time(row, "created_at")?,
        })
    }

    fn volume_from_row(row: &DB::Row) -> Result<Volume, StateError> {
        let Json(labels): Json<Labels> = row
            .try_get("labels")
            .map_err(|e| StateError::Internal(format!("stored labels are not valid: {e}")))?;
        Ok(Volume {
            id: Self::get(row, "id")?,
            name: Self::get(row, "name")?,
            created_at: Self::time(row, "created_at")?,
            updated_at: Self::time(row, "updated_at")?,
            cap_bytes: Self::count(row, "cap_bytes")?,
            used_bytes: Self::count(row, "used_bytes")?,
            file_count: Self::count(row, "file_count")?,
            labels,
            state: VOLUME_READY.to_owned(),
            // Not stored: the data plane reports it for open volumes.
            pending_upload_bytes: 0,
            // Rows from INSERT/DELETE … RETURNING have no count: a new volume has no
            // attachments, and a deleted one has none left.
            attachments: match row.try_get::<i64, _>("attachments") {
                Ok(n) => to_u64("attachments", n)?,
                Err(sqlx::Error::ColumnNotFound(_)) => 0,
                Err(e) => return Err(DB::db_error(e)),
            },
        })
    }

    /// A joined row: the sandbox, and the attachment if the row has one.
    fn sandbox_from_row(
        row: &DB::Row,
    ) -> Result<(SandboxRecord, Option<AttachmentRecord>), StateError> {
        let timeout: Option<i64> = Self::get(row, "timeout_secs")?;
        let expires: Option<DB::Timestamp> = Self::get(row, "expires_at")?;
        let sandbox = SandboxRecord {
            id: Self::get(row, "id")?,
            tenant_id: Self::get(row, "tenant_id")?,
            server_id: Self::get(row, "server_id")?,
            name: Self::get(row, "name")?,
            template: Self::get(row, "template")?,
            state: sandbox::sandbox_state(Self::get(row, "state")?)?,
            timeout_secs: timeout.map(|t| to_u64("timeout_secs", t)).transpose()?,
            expires_at: expires
                .map(|t| DB::read_timestamp("expires_at", t))
                .transpose()?,
            created_at: Self::time(row, "created_at")?,
            updated_at: Self::time(row, "updated_at")?,
            attachments: Vec::new(),
            limits: SandboxLimits {
                cpu_millicores: small("cpu_millicores", Self::count(row, "cpu_millicores")?)?,
                memory_bytes: Self::count(row, "memory_bytes")?,
                disk_bytes: Self::count(row, "disk_bytes")?,
                pids: small("pids", Self::count(row, "pids")?)?,
            },
            runtime: Self::get(row, "runtime")?,
        };
        let attachment = match Self::get::<Option<String>>(row, "a_id")? {
            None => None,
            Some(id) => Some(AttachmentRecord {
                id,
                volume_id: Self::get(row, "a_volume_id")?,
                volume_name: Self::get(row, "a_volume_name")?,
                mount_path: Self::get(row, "a_mount_path")?,
                read_only: Self::get(row, "a_read_only")?,
                subpath: Self::get(row, "a_subpath")?,
                state: sandbox::attachment_state(Self::get(row, "a_state")?)?,
                error: Self::get(row, "a_error")?,
                created_at: Self::time(row, "a_created_at")?,
                updated_at: Self::time(row, "a_updated_at")?,
            }),
        };
        Ok((sandbox, attachment))
    }
}

#[async_trait]
impl<DB> StateStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    String: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Option<DB::Timestamp>: Column<DB>,
    bool: Column<DB>,
    Json<Labels>: Column<DB>,
{
    async fn bootstrap(
        &self,
        bootstrap_key: Option<&ApiKey>,
    ) -> Result<Option<ApiKey>, StateError> {
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        // Servers starting together queue here; each statement after the lock sees what the
        // one before it committed.
        DB::lock_bootstrap(&mut tx).await?;
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM tenants) AS bootstrapped")
            .fetch_one(&mut *tx)
            .await
            .map_err(DB::db_error)?;
        if Self::get::<bool>(&row, "bootstrapped")? {
            return Ok(None);
        }
        let tenant = Self::insert_tenant(&mut tx, DEFAULT_TENANT).await?;
        let key = bootstrap_key.cloned().unwrap_or_else(ApiKey::generate);
        Self::insert_key(&mut tx, &tenant.id, &key, &first_key()).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(Some(key))
    }

    async fn authenticate(&self, key: &ApiKey) -> Result<Principal, StateError> {
        // The generation first: a key read after it is at least as new as it.
        let generation = self.generation().await?;
        let hash = key.hash();
        let now = now();
        if let Some(hit) = self.keys.get(&hash, generation) {
            if hit.expired(now) {
                return Err(StateError::Unauthenticated);
            }
            if last_use_is_due(hit.last_used_at, now) {
                self.note_use(&hit.principal.key_id, now).await;
                self.keys.used(&hash, now);
            }
            return Ok(hit.principal);
        }
        let lookup_id = key.lookup_id();
        let rows = self
            .fetch(
                "SELECT k.id, k.key_hash, k.role, k.expires_at, k.revoked_at, k.last_used_at,
                        k.volume_id, k.path, k.read_only, p.expires_at AS parent_expires_at,
                        t.id AS tenant_id, t.name AS tenant_name
                 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                 LEFT JOIN api_keys p ON p.id = k.parent_id
                 WHERE k.lookup_id = $1",
                vec![&lookup_id],
            )
            .await?;
        for row in rows {
            let stored: String = Self::get(&row, "key_hash")?;
            if !key.matches_hash(&stored) {
                continue;
            }
            let mut entry = CachedKey {
                expires_at: Self::opt_time(&row, "expires_at")?,
                parent_expires_at: Self::opt_time(&row, "parent_expires_at")?,
                last_used_at: Self::opt_time(&row, "last_used_at")?,
                principal: self.principal_from_row(&row, generation)?,
            };
            // Revoked or expired: the same answer as an unknown key.
            if Self::opt_time(&row, "revoked_at")?.is_some() || entry.expired(now) {
                return Err(StateError::Unauthenticated);
            }
            if last_use_is_due(entry.last_used_at, now) {
                self.note_use(&entry.principal.key_id, now).await;
                entry.last_used_at = Some(now);
            }
            let principal = entry.principal.clone();
            self.keys.insert(hash, entry);
            return Ok(principal);
        }
        Err(StateError::Unauthenticated)
    }

    async fn generation(&self) -> Result<Option<u64>, StateError> {
        if let Some(c) = &self.counter {
            return Ok(c.current());
        }
        let rows = self
            .fetch("SELECT n FROM cache_generation WHERE id = 1", Vec::new())
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StateError::Internal("the cache generation row is missing".into()))?;
        to_u64("cache generation", Self::get(row, "n")?).map(Some)
    }

    async fn create_key(
        &self,
        tenant_id: &str,
        new: &NewKey,
        defaults: &TenantLimits,
    ) -> Result<(KeyInfo, ApiKey), StateError> {
        // As for volumes: the tenant's row locked, so its count of live keys cannot change
        // before the insert commits (on every server of one database).
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let own = Self::lock_tenant(&mut tx, tenant_id).await?;
        let max = own.or(*defaults).max_keys;
        if max.is_some() {
            let usage = Self::usage(&mut tx, tenant_id).await?;
            within("max_keys", max, usage.keys, 1, |n| {
                format!("{n} live key(s) and volume token(s)")
            })?;
        }
        let key = ApiKey::generate();
        let info = Self::insert_key(&mut tx, tenant_id, &key, new).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok((info, key))
    }

    async fn list_keys(&self, tenant_id: &str) -> Result<Vec<KeyInfo>, StateError> {
        let rows = self
            .fetch(
                &format!(
                    "SELECT {} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
                    key_columns!()
                ),
                vec![tenant_id],
            )
            .await?;
        rows.iter().map(Self::key_from_row).collect()
    }

    async fn get_key(&self, tenant_id: &str, id: &str) -> Result<KeyInfo, StateError> {
        let rows = self
            .fetch(
                &format!(
                    "SELECT {} FROM api_keys WHERE tenant_id = $1 AND id = $2",
                    key_columns!()
                ),
                vec![tenant_id, id],
            )
            .await?;
        rows.first()
            .map(Self::key_from_row)
            .transpose()?
            .ok_or_else(|| key_not_found(id))
    }

    async fn revoke_key(&self, tenant_id: &str, id: &str) -> Result<KeyInfo, StateError> {
        let _change = self.begin_change();
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let at = DB::timestamp(now());
        // The key and whatever it made (its volume tokens), in one transaction.
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE tenant_id = $2 AND (id = $3 OR parent_id = $3) AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(DB::db_error)?;
        let row = sqlx::query(&format!(
            "SELECT {} FROM api_keys WHERE tenant_id = $1 AND id = $2",
            key_columns!()
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DB::db_error)?
        .ok_or_else(|| key_not_found(id))?;
        let info = Self::key_from_row(&row)?;
        bump_generation::<DB>(&mut tx).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(info)
    }

    async fn create_tenant(&self, name: &TenantName) -> Result<(Tenant, ApiKey), StateError> {
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let tenant = Self::insert_tenant(&mut tx, name.as_str()).await?;
        let key = ApiKey::generate();
        Self::insert_key(&mut tx, &tenant.id, &key, &first_key()).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok((tenant, key))
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Tenant, StateError> {
        let rows = self
            .fetch(
                "SELECT id, name, volume_cap_bytes, created_at FROM tenants WHERE name = $1",
                vec![name.as_str()],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| tenant_not_found(name.as_str()))?;
        Self::tenant_from_row(row)
    }

    async fn set_tenant_volume_cap(
        &self,
        name: &TenantName,
        cap_bytes: u64,
    ) -> Result<Tenant, StateError> {
        let mut conn = self.conn().await?;
        let row = sqlx::query(
            "UPDATE tenants SET volume_cap_bytes = $1 WHERE name = $2
             RETURNING id, name, volume_cap_bytes, created_at",
        )
        .bind(to_i64("cap_bytes", cap_bytes)?)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(DB::db_error)?
        .ok_or_else(|| tenant_not_found(name.as_str()))?;
        Self::tenant_from_row(&row)
    }

    async fn create_volume_within(
        &self,
        tenant_id: &str,
        name: &VolumeName,
        labels: &Labels,
        defaults: &TenantLimits,
    ) -> Result<Volume, StateError> {
        // One transaction with the tenant's row locked: the count of its volumes cannot change
        // before the insert commits. A duplicate name is still caught by the UNIQUE constraint
        // (`ON CONFLICT DO NOTHING`), not by a prior SELECT.
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let own = Self::lock_tenant(&mut tx, tenant_id).await?;
        let max = own.or(*defaults).max_volumes;
        if max.is_some() {
            let usage = Self::usage(&mut tx, tenant_id).await?;
            let taken = sqlx::query(
                "SELECT EXISTS (SELECT 1 FROM volumes WHERE tenant_id = $1 AND name = $2) AS taken",
            )
            .bind(tenant_id)
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(DB::db_error)?;
            if Self::get::<bool>(&taken, "taken")? {
                return Err(volume_exists(name));
            }
            within("max_volumes", max, usage.volumes, 1, |n| {
                format!("{n} volume(s)")
            })?;
        }
        let row = sqlx::query(concat!(
            "INSERT INTO volumes (id, tenant_id, name, created_at, updated_at, cap_bytes,
                                  used_bytes, file_count, labels)
             SELECT $1, t.id, $2, $3, $3, COALESCE(t.volume_cap_bytes, $4), 0, 0, $5
             FROM tenants t WHERE t.id = $6
             ON CONFLICT (tenant_id, name) DO NOTHING
             RETURNING ",
            volume_columns!()
        ))
        .bind(new_id("vol"))
        .bind(name.as_str())
        .bind(DB::timestamp(now()))
        .bind(to_i64("cap_bytes", DEFAULT_VOLUME_CAP)?)
        .bind(Json(labels.clone()))
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| unique_or::<DB>(e, || volume_exists(name)))?;
        // The tenant's row is locked, so nothing inserted means the name was taken.
        let row = row.ok_or_else(|| volume_exists(name))?;
        let volume = Self::volume_from_row(&row)?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(volume)
    }

    async fn tenant_limits(
        &self,
        name: &TenantName,
    ) -> Result<(Tenant, TenantLimits, TenantUsage), StateError> {
        let mut conn = self.conn().await?;
        let row = sqlx::query(concat!(
            "SELECT id, name, volume_cap_bytes, created_at, ",
            limit_columns!(),
            " FROM tenants WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(DB::db_error)?
        .ok_or_else(|| tenant_not_found(name.as_str()))?;
        let tenant = Self::tenant_from_row(&row)?;
        let limits = Self::limits_from_row(&row)?;
        let usage = Self::usage(&mut conn, &tenant.id).await?;
        Ok((tenant, limits, usage))
    }

    async fn set_tenant_limits(
        &self,
        name: &TenantName,
        limits: &TenantLimits,
    ) -> Result<(), StateError> {
        let bind = |what: &str, v: Option<u64>| v.map(|v| to_i64(what, v)).transpose();
        let statement = sqlx::query(
            "UPDATE tenants SET max_sandboxes = COALESCE($1, max_sandboxes),
                    max_volumes = COALESCE($2, max_volumes),
                    max_cpu_millicores = COALESCE($3, max_cpu_millicores),
                    max_sandbox_memory = COALESCE($4, max_sandbox_memory),
                    max_total_memory = COALESCE($5, max_total_memory),
                    max_total_disk = COALESCE($6, max_total_disk),
                    max_keys = COALESCE($7, max_keys)
             WHERE name = $8",
        )
        .bind(bind("max_sandboxes", limits.max_sandboxes)?)
        .bind(bind("max_volumes", limits.max_volumes)?)
        .bind(bind("max_cpu", limits.max_cpu_millicores)?)
        .bind(bind("max_sandbox_memory", limits.max_sandbox_memory)?)
        .bind(bind("max_total_memory", limits.max_total_memory)?)
        .bind(bind("max_total_disk", limits.max_total_disk)?)
        .bind(bind("max_keys", limits.max_keys)?)
        .bind(name.as_str());
        let mut conn = self.conn().await?;
        Self::change(&mut conn, statement, || tenant_not_found(name.as_str())).await
    }

    async fn get_volume(&self, tenant_id: &str, name: &VolumeName) -> Result<Volume, StateError> {
        self.volumes(Volumes::Named { tenant_id, name })
            .await?
            .pop()
            .ok_or_else(|| volume_not_found(name))
    }

    async fn list_volumes(
        &self,
        tenant_id: &str,
        selectors: &[LabelSelector],
    ) -> Result<Vec<Volume>, StateError> {
        let mut volumes = self.volumes(Volumes::Tenant(tenant_id)).await?;
        volumes.retain(|v| selectors.iter().all(|s| s.matches(&v.labels)));
        Ok(volumes)
    }

    async fn all_volumes(&self) -> Result<Vec<Volume>, StateError> {
        self.volumes(Volumes::All).await
    }

    async fn delete_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
    ) -> Result<Volume, StateError> {
        let _change = self.begin_change();
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let row = sqlx::query(concat!(
            "DELETE FROM volumes WHERE tenant_id = $1 AND name = $2 RETURNING ",
            volume_columns!()
        ))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(DB::db_error)?
        .ok_or_else(|| volume_not_found(name))?;
        let volume = Self::volume_from_row(&row)?;
        bump_generation::<DB>(&mut tx).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(volume)
    }

    async fn rename_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
        new_name: &VolumeName,
    ) -> Result<Volume, StateError> {
        // One statement: the attachment check and the rename cannot be split by an attach.
        // A server may hold the volume's record under its old name: the generation moves.
        let _change = self.begin_change();
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let row = sqlx::query(concat!(
            "UPDATE volumes SET name = $1, updated_at = $2
             WHERE tenant_id = $3 AND name = $4
               AND NOT EXISTS (SELECT 1 FROM sandbox_attachments a WHERE a.volume_id = volumes.id)
             RETURNING ",
            volume_columns!()
        ))
        .bind(new_name.as_str())
        .bind(DB::timestamp(now()))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| unique_or::<DB>(e, || volume_exists(new_name)))?;
        match row {
            Some(row) => {
                let volume = Self::volume_from_row(&row)?;
                bump_generation::<DB>(&mut tx).await?;
                tx.commit().await.map_err(DB::db_error)?;
                Ok(volume)
            }
            None => {
                // Nothing renamed: absent, or attached.
                drop(tx);
                drop(conn);
                let v = self.get_volume(tenant_id, name).await?;
                Err(StateError::InUse(format!(
                    "volume {:?} is attached to {} sandbox(es): detach it (or destroy them) before renaming",
                    v.name, v.attachments
                )))
            }
        }
    }

    async fn set_volume_usage(
        &self,
        volume_id: &str,
        used_bytes: u64,
        file_count: u64,
    ) -> Result<(), StateError> {
        let statement = sqlx::query(
            "UPDATE volumes SET used_bytes = $1, file_count = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(to_i64("used_bytes", used_bytes)?)
        .bind(to_i64("file_count", file_count)?)
        .bind(DB::timestamp(now()))
        .bind(volume_id);
        let mut conn = self.conn().await?;
        Self::change(&mut conn, statement, || volume_id_not_found(volume_id)).await
    }

    async fn create_sandbox_within(
        &self,
        sandbox: &SandboxRecord,
        defaults: &TenantLimits,
    ) -> Result<(), StateError> {
        let _change = self.begin_change();
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let limits = Self::lock_tenant(&mut tx, &sandbox.tenant_id)
            .await?
            .or(*defaults);
        let usage = Self::usage(&mut tx, &sandbox.tenant_id).await?;
        check_sandbox_room(&limits, &usage, &sandbox.limits)?;
        sqlx::query(
            "INSERT INTO sandboxes (id, tenant_id, server_id, name, template, state,
                                    timeout_secs, expires_at, created_at, updated_at,
                                    cpu_millicores, memory_bytes, disk_bytes, pids, runtime)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(sandbox.id.as_str())
        .bind(sandbox.tenant_id.as_str())
        .bind(sandbox.server_id.as_str())
        .bind(sandbox.name.as_deref())
        .bind(sandbox.template.as_str())
        .bind(sandbox.state.as_str())
        .bind(
            sandbox
                .timeout_secs
                .map(|t| to_i64("timeout_secs", t))
                .transpose()?,
        )
        .bind(sandbox.expires_at.map(DB::timestamp))
        .bind(DB::timestamp(sandbox.created_at))
        .bind(DB::timestamp(sandbox.updated_at))
        .bind(i64::from(sandbox.limits.cpu_millicores))
        .bind(to_i64("memory_bytes", sandbox.limits.memory_bytes)?)
        .bind(to_i64("disk_bytes", sandbox.limits.disk_bytes)?)
        .bind(i64::from(sandbox.limits.pids))
        .bind(sandbox.runtime.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            constraint_error::<DB>(
                e,
                || sandbox_exists(&sandbox.id),
                || tenant_id_not_found(&sandbox.tenant_id),
            )
        })?;
        Self::insert_attachments(&mut tx, &sandbox.id, &sandbox.attachments).await?;
        // Volume records count attachments.
        bump_generation::<DB>(&mut tx).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(())
    }

    async fn get_sandbox(&self, tenant_id: &str, id: &str) -> Result<SandboxRecord, StateError> {
        self.sandboxes(Sandboxes::One { tenant_id, id })
            .await?
            .pop()
            .ok_or_else(|| sandbox_not_found(id))
    }

    async fn list_sandboxes(&self, tenant_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Sandboxes::Tenant(tenant_id)).await
    }

    async fn server_sandboxes(&self, server_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Sandboxes::Server(server_id)).await
    }

    async fn volume_sandboxes(&self, volume_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Sandboxes::Volume(volume_id)).await
    }

    async fn update_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError> {
        let _change = self.begin_change();
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        let statement =
            sqlx::query("UPDATE sandboxes SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(sandbox.state.as_str())
                .bind(DB::timestamp(sandbox.updated_at))
                .bind(sandbox.id.as_str());
        Self::change(&mut tx, statement, || sandbox_not_found(&sandbox.id)).await?;
        sqlx::query("DELETE FROM sandbox_attachments WHERE sandbox_id = $1")
            .bind(sandbox.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DB::db_error)?;
        Self::insert_attachments(&mut tx, &sandbox.id, &sandbox.attachments).await?;
        // Volume records count attachments.
        bump_generation::<DB>(&mut tx).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(())
    }

    async fn delete_sandbox(&self, id: &str) -> Result<(), StateError> {
        let _change = self.begin_change();
        let statement = sqlx::query("DELETE FROM sandboxes WHERE id = $1").bind(id);
        let mut conn = self.conn().await?;
        let mut tx = begin_write(&mut conn).await?;
        Self::change(&mut tx, statement, || sandbox_not_found(id)).await?;
        bump_generation::<DB>(&mut tx).await?;
        tx.commit().await.map_err(DB::db_error)?;
        Ok(())
    }

    fn peers(&self) -> Option<std::sync::Arc<dyn PeerChannel>> {
        DB::peers(&self.pool)
    }

    fn pool_status(&self) -> Option<crate::PoolStatus> {
        Some(crate::PoolStatus {
            open: self.pool.size(),
            idle: self.pool.num_idle().try_into().unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        })
    }
}
