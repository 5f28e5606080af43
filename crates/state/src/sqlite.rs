//! The SQLite engine of [`SqlStore`]: an embedded database, the default.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a call that returned has reached the disk.
//! Concurrency: writes are single statements or `BEGIN IMMEDIATE` transactions, so concurrent
//! writers queue on SQLite's write lock (for up to the busy timeout) instead of failing on a
//! stale read snapshot.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection};

use crate::changes::ChangeCounter;
use crate::engine::Engine;
use crate::{SqlStore, StateError};

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite serialises writers anyway; a few connections let reads proceed beside a write.
const MAX_CONNECTIONS: u32 = 8;

/// The control-plane store on one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
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
            .map_err(|e| {
                Sqlite::db_error(e).with_context(|m| {
                    format!("cannot open SQLite database {}: {m}", path.display())
                })
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
        let counter = ChangeCounter::open(path).map_err(|e| {
            StateError::Internal(format!(
                "cannot open the change counter of SQLite database {}: {e}",
                path.display()
            ))
        })?;
        Ok(SqlStore::new(
            pool,
            path.display().to_string(),
            Some(counter),
        ))
    }
}

#[async_trait]
impl Engine for Sqlite {
    const STORE_NAME: &'static str = "SqliteStore";

    /// Takes the write lock at once, so the transaction never reads a snapshot that a
    /// concurrent writer has made stale.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// Fixed-width RFC 3339 text in UTC, e.g. `2025-01-02T03:04:05.123456Z`: sorts as text.
    type Timestamp = String;

    fn timestamp(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn read_timestamp(column: &str, stored: String) -> Result<DateTime<Utc>, StateError> {
        DateTime::parse_from_rfc3339(&stored)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                StateError::Internal(format!(
                    "stored {column} {stored:?} is not a timestamp: {e}"
                ))
            })
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// `BEGIN IMMEDIATE` already holds the database's one write lock.
    async fn lock_bootstrap(_conn: &mut SqliteConnection) -> Result<(), StateError> {
        Ok(())
    }

    /// Conditions that may pass (pool exhausted or closed, I/O, a lock held past the busy
    /// timeout, a full disk) are `Unavailable`. sqlx's messages carry SQL and SQLite's text,
    /// never bound values, so no key can leak here.
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

    fn acquire_error(e: sqlx::Error) -> StateError {
        Sqlite::db_error(e)
    }
}

#[cfg(test)]
mod tests {
    use nullspace_core::TenantName;

    use super::*;
    use crate::{ApiKey, StateStore};

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
        let t = crate::record::now();
        let back = Sqlite::read_timestamp("t", Sqlite::timestamp(t)).unwrap();
        assert_eq!(back, t);
    }
}
