//! `StateStore` on PostgreSQL (sqlx), for several servers sharing one control plane — including a
//! hosted database such as Supabase: the schema is plain SQL (no extension, nothing that needs a
//! superuser) and the only locks taken are advisory locks, which any user may take.
//!
//! Same ids, messages and semantics as [`SqliteStore`](crate::SqliteStore), proven by the same
//! behaviour suite. Concurrency: every write is one statement or one transaction; uniqueness is
//! enforced by constraints, never by a read-then-write check, so two servers creating the same
//! name leave exactly one row and the other gets `AlreadyExists`. The store keeps no state of its
//! own beyond the connection pool: whatever one server writes, every other server reads.
//!
//! Availability: a lost connection, a server that is shutting down or restarting
//! (`57P01 admin_shutdown`, as `pg_terminate_backend` causes), a full pool — all are
//! `Unavailable` (retryable). The pool tests each connection before handing it out and opens new
//! ones as needed, so the store recovers by itself when the database comes back.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nullspace_core::{
    LabelSelector, Labels, Tenant, TenantName, Volume, VolumeName, DEFAULT_VOLUME_CAP,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, Postgres, Row};

use crate::record::{
    key_exists, new_id, now, tenant_exists, tenant_id_not_found, tenant_not_found, to_i64, to_u64,
    volume_exists, volume_id_not_found, volume_not_found,
};
use crate::sandbox::{self, mount_path_taken, sandbox_exists, sandbox_not_found, Filter};
use crate::{
    ApiKey, AttachmentRecord, PeerChannel, PeerListener, Principal, SandboxRecord, StateError,
    StateStore, DEFAULT_TENANT, MAX_PEER_MESSAGE,
};

/// How long `connect` waits for the database to answer, and a request for a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per server: enough for many concurrent requests, few enough that several
/// servers stay well below a hosted database's connection limit (Supabase's smallest: 60).
const MAX_CONNECTIONS: u32 = 16;

/// Key of the advisory lock that serialises `bootstrap` across servers (any constant works:
/// advisory locks are per database). "nsboot" in ASCII.
const BOOTSTRAP_LOCK: i64 = 0x6e73_626f_6f74;

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

/// The control-plane store on one PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// `host:port/database`, for messages; never the user's password.
    server: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.server)
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database?…`) and
    /// brings its schema up to date.
    ///
    /// Fails at once, with a message naming the host (never the password): `InvalidUrl` when
    /// the URL cannot be parsed; `Unavailable` when the server does not answer within a few
    /// seconds or refuses the connection (the message says why: no such host, wrong password,
    /// no such database, …).
    pub async fn connect(url: &str) -> Result<PostgresStore, StateError> {
        let secrets = UrlSecrets::of(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StateError::InvalidUrl(secrets.scrub(&format!(
                "cannot parse the PostgreSQL URL for host {:?}: {e}",
                host_of(url)
            )))
        })?;
        let options = if options.get_application_name().is_none() {
            options.application_name("nullspace")
        } else {
            options
        };
        let server = describe(&options);
        let failed = |doing: &str, e: StateError| {
            let context = |m: &str| secrets.scrub(&format!("cannot {doing} {server}: {m}"));
            match e {
                StateError::Unavailable(m) => StateError::Unavailable(context(&m)),
                StateError::Internal(m) => StateError::Internal(context(&m)),
                other => other,
            }
        };

        // One direct connection first, so a wrong host, password or database is reported as
        // such at once (a pool would retry a refused connection until its timeout).
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                failed(
                    "connect to PostgreSQL at",
                    StateError::Unavailable(format!(
                        "no answer within {}s",
                        CONNECT_TIMEOUT.as_secs()
                    )),
                )
            })?
            .map_err(|e| failed("connect to PostgreSQL at", unavailable(e)))?;
        // The migrator takes an advisory lock, so servers starting together migrate once.
        // (`run_direct` because `run(&mut conn)` trips sqlx's "`Acquire` is not general
        // enough" error inside a `Send` future.)
        sqlx::migrate!("migrations/postgres")
            .run_direct(&mut conn)
            .await
            .map_err(|e| {
                let e = match e {
                    sqlx::migrate::MigrateError::Execute(e) => db_error(e),
                    other => StateError::Internal(other.to_string()),
                };
                failed("migrate the PostgreSQL database at", e)
            })?;
        let _ = conn.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            // A connection the server has closed (restart, pg_terminate_backend, idle timeout
            // of a proxy) is found out and replaced before a request uses it.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Ok(PostgresStore { pool, server })
    }

    /// A pooled connection (tested before it is handed out). Failing to get one is always
    /// `Unavailable`: whatever the reason — no answer, a restart, a database not accepting
    /// connections, a password changed under the server — the request itself was fine and may
    /// succeed later.
    async fn conn(&self) -> Result<PoolConnection<Postgres>, StateError> {
        self.pool.acquire().await.map_err(unavailable)
    }
}

#[async_trait]
impl StateStore for PostgresStore {
    async fn bootstrap(
        &self,
        bootstrap_key: Option<&ApiKey>,
    ) -> Result<Option<ApiKey>, StateError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        // Servers starting together queue here; each statement after the lock sees what the
        // one before it committed (READ COMMITTED takes a new snapshot per statement).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
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
        let mut conn = self.conn().await?;
        let rows = sqlx::query(
            "SELECT k.key_hash, k.admin, t.id AS tenant_id, t.name AS tenant_name
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.lookup_id = $1",
        )
        .bind(key.lookup_id())
        .fetch_all(&mut *conn)
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
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let tenant = insert_tenant(&mut tx, name.as_str()).await?;
        let key = ApiKey::generate();
        insert_key(&mut tx, &tenant.id, &key, false).await?;
        tx.commit().await.map_err(db_error)?;
        Ok((tenant, key))
    }

    async fn get_tenant(&self, name: &TenantName) -> Result<Tenant, StateError> {
        let mut conn = self.conn().await?;
        let row = sqlx::query(
            "SELECT id, name, volume_cap_bytes, created_at FROM tenants WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
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
        let mut conn = self.conn().await?;
        let row = sqlx::query(
            "UPDATE tenants SET volume_cap_bytes = $1 WHERE name = $2
             RETURNING id, name, volume_cap_bytes, created_at",
        )
        .bind(to_i64("cap_bytes", cap_bytes)?)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
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
        let now = now();
        // One statement: the tenant's cap is read as the row is written, and a duplicate name
        // is caught by the UNIQUE constraint (a concurrent insert of the same name waits for
        // the first to commit, then does nothing), not by a prior SELECT. `ON CONFLICT DO
        // NOTHING` rather than a unique violation: a name taken is a normal answer, not an
        // ERROR line in the database's log.
        let mut conn = self.conn().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO volumes (id, tenant_id, name, created_at, updated_at, cap_bytes,
                                  used_bytes, file_count, labels, state)
             SELECT $1, t.id, $2, $3, $3, COALESCE(t.volume_cap_bytes, $4), 0, 0, $5, 'ready'
             FROM tenants t WHERE t.id = $6
             ON CONFLICT (tenant_id, name) DO NOTHING
             RETURNING ",
            volume_columns!()
        ))
        .bind(new_id("vol"))
        .bind(name.as_str())
        .bind(now)
        .bind(to_i64("cap_bytes", DEFAULT_VOLUME_CAP)?)
        .bind(Json(labels))
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| unique_or(e, || volume_exists(name)))?;
        match row {
            Some(row) => volume_from_row(&row),
            // Nothing inserted: the name was taken, or there is no such tenant (tenants are
            // never deleted, so the answer cannot change in between).
            None => {
                let tenant_known: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
                        .bind(tenant_id)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(db_error)?;
                Err(if tenant_known {
                    volume_exists(name)
                } else {
                    tenant_id_not_found(tenant_id)
                })
            }
        }
    }

    async fn get_volume(&self, tenant_id: &str, name: &VolumeName) -> Result<Volume, StateError> {
        let mut conn = self.conn().await?;
        let row = sqlx::query(concat!(
            volume_select!(),
            " WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
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
        // `name` is COLLATE "C": bytewise order, as SQLite sorts.
        let mut conn = self.conn().await?;
        let rows = sqlx::query(concat!(
            volume_select!(),
            " WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id)
        .fetch_all(&mut *conn)
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
        let mut conn = self.conn().await?;
        let rows = sqlx::query(concat!(volume_select!(), " ORDER BY tenant_id, name"))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        rows.iter().map(volume_from_row).collect()
    }

    async fn delete_volume(
        &self,
        tenant_id: &str,
        name: &VolumeName,
    ) -> Result<Volume, StateError> {
        let mut conn = self.conn().await?;
        let row = sqlx::query(concat!(
            "DELETE FROM volumes WHERE tenant_id = $1 AND name = $2 RETURNING ",
            volume_columns!()
        ))
        .bind(tenant_id)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
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
        let mut conn = self.conn().await?;
        let done = sqlx::query(
            "UPDATE volumes SET used_bytes = $1, file_count = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(to_i64("used_bytes", used_bytes)?)
        .bind(to_i64("file_count", file_count)?)
        .bind(now())
        .bind(volume_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(volume_id_not_found(volume_id));
        }
        Ok(())
    }

    async fn create_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO sandboxes (id, tenant_id, server_id, name, template, state,
                                    timeout_secs, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .bind(sandbox.expires_at)
        .bind(sandbox.created_at)
        .bind(sandbox.updated_at)
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
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let done = sqlx::query("UPDATE sandboxes SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(&sandbox.state)
            .bind(sandbox.updated_at)
            .bind(&sandbox.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(sandbox_not_found(&sandbox.id));
        }
        sqlx::query("DELETE FROM sandbox_attachments WHERE sandbox_id = $1")
            .bind(&sandbox.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_attachments(&mut tx, &sandbox.id, &sandbox.attachments).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn delete_sandbox(&self, id: &str) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let done = sqlx::query("DELETE FROM sandboxes WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(sandbox_not_found(id));
        }
        Ok(())
    }

    fn peers(&self) -> Option<Arc<dyn PeerChannel>> {
        Some(Arc::new(PgPeers {
            pool: self.pool.clone(),
        }))
    }
}

impl PostgresStore {
    /// The sandboxes a filter selects, with their attachments (one statement, so one snapshot).
    async fn sandboxes(&self, filter: Filter<'_>) -> Result<Vec<SandboxRecord>, StateError> {
        let sql = sandbox::select(filter);
        let mut q = sqlx::query(&sql);
        for b in filter.binds() {
            q = q.bind(b);
        }
        let mut conn = self.conn().await?;
        let rows = q.fetch_all(&mut *conn).await.map_err(db_error)?;
        let parsed = rows
            .iter()
            .map(sandbox_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sandbox::group(parsed))
    }
}

/// Inserts a sandbox's attachments in order; a volume that is gone is `NotFound`.
async fn insert_attachments(
    conn: &mut PgConnection,
    sandbox_id: &str,
    attachments: &[AttachmentRecord],
) -> Result<(), StateError> {
    for (position, a) in attachments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO sandbox_attachments (id, sandbox_id, position, volume_id, volume_name,
                 mount_path, read_only, subpath, state, error, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&a.id)
        .bind(sandbox_id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&a.volume_id)
        .bind(&a.volume_name)
        .bind(&a.mount_path)
        .bind(a.read_only)
        .bind(&a.subpath)
        .bind(&a.state)
        .bind(&a.error)
        .bind(a.created_at)
        .bind(a.updated_at)
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
fn sandbox_from_row(row: &PgRow) -> Result<(SandboxRecord, Option<AttachmentRecord>), StateError> {
    let timeout: Option<i64> = row.try_get("timeout_secs").map_err(db_error)?;
    let sandbox = SandboxRecord {
        id: row.try_get("id").map_err(db_error)?,
        tenant_id: row.try_get("tenant_id").map_err(db_error)?,
        server_id: row.try_get("server_id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        template: row.try_get("template").map_err(db_error)?,
        state: row.try_get("state").map_err(db_error)?,
        timeout_secs: timeout.map(|t| to_u64("timeout_secs", t)).transpose()?,
        expires_at: row.try_get("expires_at").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
        updated_at: row.try_get("updated_at").map_err(db_error)?,
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
            created_at: row.try_get("a_created_at").map_err(db_error)?,
            updated_at: row.try_get("a_updated_at").map_err(db_error)?,
        }),
    };
    Ok((sandbox, attachment))
}

/// The `NOTIFY` channel the servers of one database talk on.
pub const PEER_CHANNEL: &str = "nullspace_peers";

/// [`PeerChannel`] over `LISTEN`/`NOTIFY` (any user may use both; nothing is stored).
struct PgPeers {
    pool: PgPool,
}

#[async_trait]
impl PeerChannel for PgPeers {
    async fn send(&self, payload: &str) -> Result<(), StateError> {
        if payload.len() > MAX_PEER_MESSAGE {
            return Err(StateError::Internal(format!(
                "a message to the other servers is {} bytes, over the limit of {MAX_PEER_MESSAGE}",
                payload.len()
            )));
        }
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PEER_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn PeerListener>, StateError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(unavailable)?;
        listener.listen(PEER_CHANNEL).await.map_err(db_error)?;
        Ok(Box::new(PgPeerListener(listener)))
    }
}

struct PgPeerListener(PgListener);

#[async_trait]
impl PeerListener for PgPeerListener {
    async fn recv(&mut self) -> Result<Option<String>, StateError> {
        match self.0.try_recv().await {
            Ok(Some(n)) => Ok(Some(n.payload().to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// Inserts a tenant with no cap of its own; `AlreadyExists` if the name is taken.
async fn insert_tenant(conn: &mut PgConnection, name: &str) -> Result<Tenant, StateError> {
    let tenant = Tenant {
        id: new_id("ten"),
        name: name.to_owned(),
        volume_cap_bytes: None,
        created_at: now(),
    };
    // `ON CONFLICT DO NOTHING`: a taken name is an answer, not an ERROR in the server's log.
    let inserted = sqlx::query(
        "INSERT INTO tenants (id, name, volume_cap_bytes, created_at) VALUES ($1, $2, NULL, $3)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&tenant.id)
    .bind(&tenant.name)
    .bind(tenant.created_at)
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, || tenant_exists(name)))?;
    if inserted.rows_affected() == 0 {
        return Err(tenant_exists(name));
    }
    Ok(tenant)
}

/// Stores a key's hash (never the key) for a tenant.
async fn insert_key(
    conn: &mut PgConnection,
    tenant_id: &str,
    key: &ApiKey,
    admin: bool,
) -> Result<(), StateError> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, lookup_id, key_hash, admin, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id("key"))
    .bind(tenant_id)
    .bind(key.lookup_id())
    .bind(key.hash())
    .bind(admin)
    .bind(now())
    .execute(conn)
    .await
    .map_err(|e| unique_or(e, key_exists))?;
    Ok(())
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant, StateError> {
    let cap: Option<i64> = row.try_get("volume_cap_bytes").map_err(db_error)?;
    Ok(Tenant {
        id: row.try_get("id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        volume_cap_bytes: cap.map(|c| to_u64("volume_cap_bytes", c)).transpose()?,
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")
            .map_err(db_error)?,
    })
}

fn volume_from_row(row: &PgRow) -> Result<Volume, StateError> {
    let Json(labels): Json<Labels> = row
        .try_get("labels")
        .map_err(|e| StateError::Internal(format!("stored labels are not valid: {e}")))?;
    let int = |column: &str| -> Result<u64, StateError> {
        to_u64(column, row.try_get(column).map_err(db_error)?)
    };
    Ok(Volume {
        id: row.try_get("id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
        updated_at: row.try_get("updated_at").map_err(db_error)?,
        cap_bytes: int("cap_bytes")?,
        used_bytes: int("used_bytes")?,
        file_count: int("file_count")?,
        labels,
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

/// `host:port/database` (or the socket directory), for messages.
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None if options.get_host().contains(':') => {
            format!("[{}]:{}", options.get_host(), options.get_port())
        }
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    match options.get_database() {
        Some(db) => format!("{place}/{db}"),
        None => place,
    }
}

/// The host part of a URL, found without a URL parser (it is used when parsing failed): what
/// follows the last `@` of the authority, or the whole authority when there is no user part.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let end = after_user.find(['/', '?', '#']).unwrap_or(after_user.len());
    &after_user[..end]
}

/// The password forms a URL carries (`user:password@`, `?password=`), raw and percent-decoded,
/// so that no message built from the URL or from a driver error can show one.
struct UrlSecrets(Vec<String>);

impl UrlSecrets {
    fn of(url: &str) -> UrlSecrets {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let mut found = Vec::new();
        if let Some((user_part, _)) = rest.rsplit_once('@') {
            if let Some((_, password)) = user_part.split_once(':') {
                found.push(password.to_owned());
            }
        }
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&') {
                if let Some(("password", value)) = pair.split_once('=') {
                    found.push(value.to_owned());
                }
            }
        }
        let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
        found.extend(decoded);
        found.retain(|s| !s.is_empty());
        // Longest first, so a password containing another form is replaced whole.
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        UrlSecrets(found)
    }

    fn scrub(&self, message: &str) -> String {
        self.0.iter().fold(message.to_owned(), |m, secret| {
            m.replace(secret.as_str(), "***")
        })
    }
}

/// `%XX` sequences to bytes (invalid ones kept as they are), then lossy UTF-8.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `on_unique()` for a unique-constraint violation, else the usual mapping.
fn unique_or(e: sqlx::Error, on_unique: impl FnOnce() -> StateError) -> StateError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => on_unique(),
        _ => db_error(e),
    }
}

/// Maps a sqlx error: conditions that pass when the database or the network comes back (no
/// connection, pool exhausted, the server shutting down or restarting, too many connections,
/// a serialisation failure or deadlock to retry) are `Unavailable`; everything else is
/// `Internal`. sqlx's messages carry SQL and the server's text, never bound values, so no key
/// can leak here.
fn db_error(e: sqlx::Error) -> StateError {
    let transient = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| transient_sqlstate(&c)),
        _ => false,
    };
    if transient {
        unavailable(e)
    } else {
        StateError::Internal(e.to_string())
    }
}

/// No connection, or not one fit for use: `Unavailable`.
fn unavailable(e: sqlx::Error) -> StateError {
    match e {
        // Said to clients too: no host names here.
        sqlx::Error::PoolTimedOut => StateError::Unavailable(format!(
            "no database connection within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
        e => StateError::Unavailable(e.to_string()),
    }
}

/// SQLSTATEs after which the same request may succeed later.
fn transient_sqlstate(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources (too many connections, disk full).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            // admin_shutdown (pg_terminate_backend, fast shutdown), crash_shutdown,
            // cannot_connect_now (starting up), serialization_failure, deadlock_detected,
            // lock_not_available, query_canceled (statement timeout)
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55P03" | "57014"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password of every URL below; no message may contain it.
    const PASSWORD: &str = "s3cr3t-Pa55";

    fn assert_hidden(e: &StateError) {
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(PASSWORD), "{shown} reveals the password");
            assert!(
                !shown.contains("s3cr3t"),
                "{shown} reveals part of the password"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_named_without_the_password() {
        let url = format!("postgres://u:{PASSWORD}@127.0.0.1:1/x");
        let e = PostgresStore::connect(&url).await.unwrap_err();
        assert!(matches!(e, StateError::Unavailable(_)), "{e:?}");
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        assert_hidden(&e);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_given_up_on_within_seconds() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                open.push(conn);
            }
        });
        let url = format!("postgres://u:{PASSWORD}@127.0.0.1:{port}/x");
        let started = std::time::Instant::now();
        let e = PostgresStore::connect(&url).await.unwrap_err();
        assert!(
            started.elapsed() < CONNECT_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(e, StateError::Unavailable(_)), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.to_string().contains("no answer within"), "{e}");
        assert_hidden(&e);
        held.abort();
    }

    #[tokio::test]
    async fn an_unparseable_url_is_invalid_and_named_without_the_password() {
        for (url, host) in [
            (format!("postgres://u:{PASSWORD}@[bad"), "[bad"),
            (
                format!("postgres://u:{PASSWORD}@db.example:notaport/x"),
                "db.example:notaport",
            ),
            (
                format!("postgres://u:{PASSWORD}@db.example/x?sslmode=sometimes"),
                "db.example",
            ),
            (
                format!("postgresql://db.example/x?password={PASSWORD}&sslmode=bogus"),
                "db.example",
            ),
        ] {
            let e = PostgresStore::connect(&url).await.unwrap_err();
            assert!(matches!(e, StateError::InvalidUrl(_)), "{url}: {e:?}");
            assert!(e.to_string().contains(host), "{e}");
            assert_hidden(&e);
        }
    }

    #[test]
    fn host_of_finds_the_host_of_broken_urls() {
        assert_eq!(host_of("postgres://u:p@[bad"), "[bad");
        assert_eq!(host_of("postgres://u:p@h:5432/db?x=1"), "h:5432");
        assert_eq!(host_of("postgres://h/db"), "h");
        assert_eq!(host_of("postgres://u:p@ss@h/db"), "h");
    }

    #[test]
    fn secrets_are_scrubbed_raw_and_decoded() {
        let s = UrlSecrets::of("postgres://u:p%40ss@h/db?password=q%2Fw");
        assert_eq!(
            s.scrub("a p%40ss b p@ss c q/w d q%2Fw"),
            "a *** b *** c *** d ***"
        );
        assert_eq!(UrlSecrets::of("postgres://u@h/db").0, Vec::<String>::new());
    }

    #[test]
    fn shutdowns_and_lost_connections_are_transient() {
        for code in ["57P01", "08006", "53300", "40001"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "28P01", "3D000"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}
