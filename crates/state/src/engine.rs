//! What truly differs between the two engines; every statement is written once, in
//! [`queries`](crate::queries), over any [`Engine`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Decode, Encode, Pool, Type};

use crate::{PeerChannel, StateError};

/// One database engine under [`SqlStore`](crate::SqlStore): its column encodings, transaction
/// start, locking and error codes.
#[async_trait]
pub trait Engine: Database {
    /// The type name of the store on this engine, for `Debug` (`SqliteStore`, `PostgresStore`).
    const STORE_NAME: &'static str;

    /// The statement that opens a transaction that writes.
    const BEGIN_WRITE: &'static str;

    /// How a timestamp column is bound and read.
    type Timestamp: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send + Sync;

    /// A timestamp as this engine stores it.
    fn timestamp(t: DateTime<Utc>) -> Self::Timestamp;

    /// A stored timestamp back; `Internal` naming the column if it is not one.
    fn read_timestamp(column: &str, stored: Self::Timestamp) -> Result<DateTime<Utc>, StateError>;

    /// Rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Makes concurrent `bootstrap` transactions (of any server on the database) run one after
    /// the other; called first in the transaction.
    async fn lock_bootstrap(conn: &mut Self::Connection) -> Result<(), StateError>;

    /// Maps a statement's error: what may pass when retried is `Unavailable`, the rest
    /// `Internal`.
    fn db_error(e: sqlx::Error) -> StateError;

    /// Maps a failure to get a connection from the pool.
    fn acquire_error(e: sqlx::Error) -> StateError;

    /// The channel to the other servers on the database, if the engine has one.
    fn peers(_pool: &Pool<Self>) -> Option<Arc<dyn PeerChannel>> {
        None
    }
}
