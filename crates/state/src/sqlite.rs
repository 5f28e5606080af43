//! `StateStore` on an embedded SQLite database (sqlx), the default engine.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a call that returned has reached the disk.
//! Concurrency: writes are single statements or `BEGIN IMMEDIATE` transactions, so concurrent
//! writers queue on SQLite's write lock (for up to the busy timeout) instead of failing on a
//! stale read snapshot; uniqueness is enforced by constraints, never by a read-then-write check.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use nullspace_core::{
    LabelSelector, Labels, Tenant, TenantName, Volume, VolumeName, DEFAULT_VOLUME_CAP,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

use crate::record::{
    key_exists, new_id, now, tenant_exists, tenant_id_not_found, tenant_not_found, to_i64, to_u64,
    volume_exists, volume_id_not_found, volume_not_found,
};
use crate::sandbox::{self, mount_path_taken, sandbox_exists, sandbox_not_found, Filter};
use crate::{
    ApiKey, AttachmentRecord, Principal, SandboxRecord, StateError, StateStore, DEFAULT_TENANT,
};

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite serialises writers anyway; a few connections let reads proceed beside a write.
const MAX_CONNECTIONS: u32 = 8;

/// The volume columns, in the order `volume_from_row` reads them by name.
macro_rules! volume_columns {
    () => {
        "id, name, created_at, updated_at, cap_bytes, used_bytes, file_count, labels, state"
    };
}

/// `SELECT` of the volume columns plus `attachments`, the number of sandbox attachments of the
/// volume (whichever server runs the sandbox), from `volumes`.
macro_rules! volume_select {
    () => {
        concat!(
            "SELECT ",
            volume_columns!(),
            ", (SELECT COUNT(*) FROM sandbox_attachments a WHERE a.volume_id = volumes.id)
             AS attachments FROM volumes"
        )
    };
}

/// The control-plane store on one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StateError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| match db_error(e) {
                StateError::Unavailable(m) => StateError::Unavailable(format!(
                    "cannot open SQLite database {}: {m}",
                    path.display()
                )),
                StateError::Internal(m) => StateError::Internal(format!(
                    "cannot open SQLite database {}: {m}",
                    path.display()
                )),
                other => other,
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| {
                StateError::Internal(format!(
                    "cannot migrate SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteStore { pool })
    }

    /// Starts a transaction that holds the write lock from its first statement.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StateError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn bootstrap(
        &self,
        bootstrap_key: Option<&ApiKey>,
    ) -> Result<Option<ApiKey>, StateError> {
        let mut tx = self.begin_write().await?;
        let bootstrapped: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants)")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if bootstrapped {
            return Ok(None);
        }
        let tenant = insert_tenant(&mut tx, DEFAULT_TENANT).await?;
        let key = bootstrap_key.cloned().unwrap_or_else(ApiKey::generate);
        insert_key(&mut tx, &tenant.id, &key, true).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(key))
    }

    async fn authenticate(&self, key: &ApiKey) -> Result<Principal, StateError> {
        let rows = sqlx::query(
            "SELECT k.key_hash, k.admin, t.id AS tenant_id, t.name AS tenant_name
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.lookup_id = ?",
        )
        .bind(key.lookup_id())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in rows {
            let stored: String = row.try_get("key_hash").map_err(db_error)?;
            if key.matches_hash(&stored) {
                return Ok(Principal {
                    tenant_id: row.try_get("tenant_id").map_err(db_error)?,
                    tenant_name: row.try_get("tenant_name").map_err(db_error)?,
                    admin: row.try_get("admin").map_err(db_error)?,
                });
            }
        }
        Err(StateError::Unauthenticated)
    }

    async fn create_tenant(&self, name: &TenantName) -> Result<(Tenant, ApiKey), StateError> {
        let mut tx = self.begin_write().await?;
        let tenant = insert_tenant(&mut tx, name.as_str()).await?;
        let key = ApiKey::generate();
        insert_key(&mut tx, &tenant.id, &key, false).await?;
        tx.commit().await.map_err(db_error)?;
        Ok((tenant, key))
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Tenant, StateError> {
        let row = sqlx::query(
            "SELECT id, name, volume_cap_bytes, created_at FROM tenants WHERE name = ?",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| tenant_not_found(name.as_str()))?;
        tenant_from_row(&row)
    }

    async fn set_tenant_volume_cap(
        &self,
        name: &TenantName,
        cap_bytes: u64,
    ) -> Result<Tenant, StateError> {
        let row = sqlx::query(
            "UPDATE tenants SET volume_cap_bytes = ? WHERE name = ?
             RETURNING id, name, volume_cap_bytes, created_at",
        )
        .bind(to_i64("cap_bytes", cap_bytes)?)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| tenant_not_found(name.as_str()))?;
        tenant_from_row(&row)
    }

    async fn create_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
        labels: &Labels,
    ) -> Result<Volume, StateError> {
        let now = timestamp(now());
        let labels = serde_json::to_string(labels)
            .map_err(|e| StateError::Internal(format!("cannot encode labels: {e}")))?;
        // One statement: the tenant's cap is read and the row written under the same write
        // lock, and a duplicate name is caught by the UNIQUE constraint, not a prior SELECT.
        let row = sqlx::query(concat!(
            "INSERT INTO volumes (id, tenant_id, name, created_at, updated_at, cap_bytes,
                                  used_bytes, file_count, labels, state)
             SELECT ?, t.id, ?, ?, ?, COALESCE(t.volume_cap_bytes, ?), 0, 0, ?, 'ready'
             FROM tenants t WHERE t.id = ?
             RETURNING ",
            volume_columns!()
        ))
        .bind(new_id("vol"))
        .bind(name.as_str())
        .bind(&now)
        .bind(&now)
        .bind(to_i64("cap_bytes", DEFAULT_VOLUME_CAP)?)
        .bind(&labels)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| unique_or(e, || volume_exists(name)))?
        .ok_or_else(|| tenant_id_not_found(tenant_id))?;
        volume_from_row(&row)
    }

    async fn get_volume(&self, tenant_id: &str, name: &VolumeName) -> Result<Volume, StateError> {
        let row = sqlx::query(concat!(
            volume_select!(),
            " WHERE tenant_id = ? AND name = ?"
        ))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| volume_not_found(name))?;
        volume_from_row(&row)
    }

    async fn list_volumes(
        &self,
        tenant_id: &str,
        selectors: &[LabelSelector],
    ) -> Result<Vec<Volume>, StateError> {
        let rows = sqlx::query(concat!(
            volume_select!(),
            " WHERE tenant_id = ? ORDER BY name"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let v = volume_from_row(row)?;
            if selectors.iter().all(|s| s.matches(&v.labels)) {
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn all_volumes(&self) -> Result<Vec<Volume>, StateError> {
        let rows = sqlx::query(concat!(volume_select!(), " ORDER BY tenant_id, name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(volume_from_row).collect()
    }

    async fn delete_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
    ) -> Result<Volume, StateError> {
        let row = sqlx::query(concat!(
            "DELETE FROM volumes WHERE tenant_id = ? AND name = ? RETURNING ",
            volume_columns!()
        ))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| volume_not_found(name))?;
        volume_from_row(&row)
    }

    async fn set_volume_usage(
        &self,
        volume_id: &str,
        used_bytes: u64,
        file_count: u64,
    ) -> Result<(), StateError> {
        let done = sqlx::query(
            "UPDATE volumes SET used_bytes = ?, file_count = ?, updated_at = ? WHERE id = ?",
        )
        .bind(to_i64("used_bytes", used_bytes)?)
        .bind(to_i64("file_count", file_count)?)
        .bind(timestamp(now()))
        .bind(volume_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(volume_id_not_found(volume_id));
        }
        Ok(())
    }

    async fn create_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sandboxes (id, tenant_id, server_id, name, template, state,
                                    timeout_secs, expires_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&sandbox.id)
        .bind(&sandbox.tenant_id)
        .bind(&sandbox.server_id)
        .bind(&sandbox.name)
        .bind(&sandbox.template)
        .bind(&sandbox.state)
        .bind(
            sandbox
                .timeout_secs
                .map(|t| to_i64("timeout_secs", t))
                .transpose()?,
        )
        .bind(sandbox.expires_at.map(timestamp))
        .bind(timestamp(sandbox.created_at))
        .bind(timestamp(sandbox.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                tenant_id_not_found(&sandbox.tenant_id)
            }
            _ => unique_or(e, || sandbox_exists(&sandbox.id)),
        })?;
        insert_attachments(&mut tx, &sandbox.id, &sandbox.attachments).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_sandbox(&self, tenant_id: &str, id: &str) -> Result<SandboxRecord, StateError> {
        self.sandboxes(Filter::One { tenant_id, id })
            .await?
            .pop()
            .ok_or_else(|| sandbox_not_found(id))
    }

    async fn list_sandboxes(&self, tenant_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Filter::Tenant(tenant_id)).await
    }

    async fn server_sandboxes(&self, server_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Filter::Server(server_id)).await
    }

    async fn volume_sandboxes(&self, volume_id: &str) -> Result<Vec<SandboxRecord>, StateError> {
        self.sandboxes(Filter::Volume(volume_id)).await
    }

    async fn update_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE sandboxes SET state = ?, updated_at = ? WHERE id = ?")
            .bind(&sandbox.state)
            .bind(timestamp(sandbox.updated_at))
            .bind(&sandbox.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(sandbox_not_found(&sandbox.id));
        }
        sqlx::query("DELETE FROM sandbox_attachments WHERE sandbox_id = ?")
            .bind(&sandbox.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_attachments(&mut tx, &sandbox.id, &sandbox.attachments).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn delete_sandbox(&self, id: &str) -> Result<(), StateError> {
        let done = sqlx::query("DELETE FROM sandboxes WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(sandbox_not_found(id));
        }
        Ok(())
    }
}

impl SqliteStore {
    /// The sandboxes a filter selects, with their attachments (one statement, so one snapshot).
    async fn sandboxes(&self, filter: Filter<'_>) -> Result<Vec<SandboxRecord>, StateError> {
        let sql = sandbox::select(filter);
        let mut q = sqlx::query(&sql);
        for b in filter.binds() {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_error)?;
        let parsed = rows
            .iter()
            .map(sandbox_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sandbox::group(parsed))
    }
}

/// Inserts a sandbox's attachments in order; a volume that is gone is `NotFound`.
async fn insert_attachments(
    conn: &mut SqliteConnection,
    sandbox_id: &str,
    attachments: &[AttachmentRecord],
) -> Result<(), StateError> {
    for (position, a) in attachments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO sandbox_attachments (id, sandbox_id, position, volume_id, volume_name,
                 mount_path, read_only, subpath, state, error, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(sandbox_id)
        .bind(to_i64("position", position as u64)?)
        .bind(&a.volume_id)
        .bind(&a.volume_name)
        .bind(&a.mount_path)
        .bind(a.read_only)
        .bind(&a.subpath)
        .bind(&a.state)
        .bind(&a.error)
        .bind(timestamp(a.created_at))
        .bind(timestamp(a.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StateError::NotFound(format!("volume {:?}", a.volume_name))
            }
            _ => unique_or(e, mount_path_taken),
        })?;
    }
    Ok(())
}

/// A joined row: the sandbox, and the attachment if the row has one.
fn sandbox_from_row(
    row: &SqliteRow,
) -> Result<(SandboxRecord, Option<AttachmentRecord>), StateError> {
    let timeout: Option<i64> = row.try_get("timeout_secs").map_err(db_error)?;
    let expires: Option<String> = row.try_get("expires_at").map_err(db_error)?;
    let sandbox = SandboxRecord {
        id: row.try_get("id").map_err(db_error)?,
        tenant_id: row.try_get("tenant_id").map_err(db_error)?,
        server_id: row.try_get("server_id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        template: row.try_get("template").map_err(db_error)?,
        state: row.try_get("state").map_err(db_error)?,
        timeout_secs: timeout.map(|t| to_u64("timeout_secs", t)).transpose()?,
        expires_at: expires
            .map(|s| parse_timestamp_text("expires_at", &s))
            .transpose()?,
        created_at: parse_timestamp(row, "created_at")?,
        updated_at: parse_timestamp(row, "updated_at")?,
        attachments: Vec::new(),
    };
    let id: Option<String> = row.try_get("a_id").map_err(db_error)?;
    let attachment = match id {
        None => None,
        Some(id) => Some(AttachmentRecord {
            id,
            volume_id: row.try_get("a_volume_id").map_err(db_error)?,
            volume_name: row.try_get("a_volume_name").map_err(db_error)?,
            mount_path: row.try_get("a_mount_path").map_err(db_error)?,
            read_only: row.try_get("a_read_only").map_err(db_error)?,
            subpath: row.try_get("a_subpath").map_err(db_error)?,
            state: row.try_get("a_state").map_err(db_error)?,
            error: row.try_get("a_error").map_err(db_error)?,
            created_at: parse_timestamp(row, "a_created_at")?,
            updated_at: parse_timestamp(row, "a_updated_at")?,
        }),
    };
    Ok((sandbox, attachment))
}

/// Inserts a tenant with no cap of its own; `AlreadyExists` if the name is taken.
async fn insert_tenant(conn: &mut SqliteConnection, name: &str) -> Result<Tenant, StateError> {
    let tenant = Tenant {
        id: new_id("ten"),
        name: name.to_owned(),
        volume_cap_bytes: None,
        created_at: now(),
    };
    sqlx::query(
        "INSERT INTO tenants (id, name, volume_cap_bytes, created_at) VALUES (?, ?, NULL, ?)",
    )
    .bind(&tenant.id)
    .bind(&tenant.name)
    .bind(timestamp(tenant.created_at))
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, || tenant_exists(name)))?;
    Ok(tenant)
}

/// Stores a key's hash (never the key) for a tenant.
async fn insert_key(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    key: &ApiKey,
    admin: bool,
) -> Result<(), StateError> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, lookup_id, key_hash, admin, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(new_id("key"))
    .bind(tenant_id)
    .bind(key.lookup_id())
    .bind(key.hash())
    .bind(admin)
    .bind(timestamp(now()))
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, key_exists))?;
    Ok(())
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant, StateError> {
    let cap: Option<i64> = row.try_get("volume_cap_bytes").map_err(db_error)?;
    Ok(Tenant {
        id: row.try_get("id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        volume_cap_bytes: cap.map(|c| to_u64("volume_cap_bytes", c)).transpose()?,
        created_at: parse_timestamp(row, "created_at")?,
    })
}

fn volume_from_row(row: &SqliteRow) -> Result<Volume, StateError> {
    let labels: String = row.try_get("labels").map_err(db_error)?;
    let int = |column: &str| -> Result<u64, StateError> {
        to_u64(column, row.try_get(column).map_err(db_error)?)
    };
    Ok(Volume {
        id: row.try_get("id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        created_at: parse_timestamp(row, "created_at")?,
        updated_at: parse_timestamp(row, "updated_at")?,
        cap_bytes: int("cap_bytes")?,
        used_bytes: int("used_bytes")?,
        file_count: int("file_count")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StateError::Internal(format!("stored labels are not valid: {e}")))?,
        state: row.try_get("state").map_err(db_error)?,
        // Rows from INSERT/DELETE … RETURNING have no count: a new volume has no attachments,
        // and a deleted one has none left.
        attachments: match row.try_get::<i64, _>("attachments") {
            Ok(n) => to_u64("attachments", n)?,
            Err(sqlx::Error::ColumnNotFound(_)) => 0,
            Err(e) => return Err(db_error(e)),
        },
    })
}

/// Fixed-width RFC 3339 in UTC, e.g. `2025-01-02T03:04:05.123456Z`; sorts as text.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_timestamp(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StateError> {
    let s: String = row.try_get(column).map_err(db_error)?;
    parse_timestamp_text(column, &s)
}

fn parse_timestamp_text(column: &str, s: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StateError::Internal(format!("stored {column} {s:?} is not a timestamp: {e}")))
}

/// `on_unique()` for a unique-constraint violation, else the usual mapping.
fn unique_or(e: sqlx::Error, on_unique: impl FnOnce() -> StateError) -> StateError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => on_unique(),
        _ => db_error(e),
    }
}

/// Maps a sqlx error: conditions that may pass (pool exhausted or closed, I/O, a lock held past
/// the busy timeout, a full disk) are `Unavailable`; everything else is `Internal`.
/// sqlx's messages carry SQL and SQLite's text, never bound values, so no key can leak here.
fn db_error(e: sqlx::Error) -> StateError {
    // Primary SQLite result codes (the low byte of an extended code).
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const IOERR: i64 = 10;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    let transient = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| matches!(c & 0xff, BUSY | LOCKED | IOERR | FULL | CANTOPEN)),
        _ => false,
    };
    if transient {
        StateError::Unavailable(e.to_string())
    } else {
        StateError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_forms_never_reveal_a_key_or_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        let admin = ApiKey::new("nsk_admin_secret_for_debug_test");
        let created = store.bootstrap(Some(&admin)).await.unwrap();
        let principal = store.authenticate(&admin).await.unwrap();
        let tenant = store
            .create_tenant(&TenantName::parse("acme").unwrap())
            .await
            .unwrap();
        let wrong = store
            .authenticate(&ApiKey::new("nsk_wrong_secret"))
            .await
            .unwrap_err();

        let secrets = [
            admin.expose().to_owned(),
            admin.hash(),
            admin.lookup_id(),
            tenant.1.expose().to_owned(),
            tenant.1.hash(),
            "nsk_wrong_secret".to_owned(),
        ];
        let shown = [
            format!("{store:?}"),
            format!("{created:?}"),
            format!("{principal:?}"),
            format!("{tenant:?}"),
            format!("{wrong:?} {wrong}"),
        ];
        for text in &shown {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{text} reveals a secret");
            }
        }
    }

    #[test]
    fn timestamps_round_trip_exactly() {
        let t = now();
        let back = DateTime::parse_from_rfc3339(&timestamp(t))
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(back, t);
    }
}
