//! The PostgreSQL engine of [`SqlStore`], for several servers sharing one control plane —
//! including a hosted database such as Supabase: the schema is plain SQL (no extension, nothing
//! that needs a superuser) and the only locks taken are advisory locks, which any user may take.
//!
//! Same ids, messages and semantics as the SQLite engine, proven by the same behaviour suite
//! (the statements are the same: `store.rs`).
//!
//! Availability: a lost connection, a server that is shutting down or restarting
//! (`57P01 admin_shutdown`, as `pg_terminate_backend` causes), a full pool — all are
//! `Unavailable` (retryable). The pool tests each connection before handing it out and opens new
//! ones as needed, so the store recovers by itself when the database comes back.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, Pool, Postgres};

use crate::engine::Engine;
use crate::{PeerChannel, PeerListener, SqlStore, StateError, MAX_PEER_MESSAGE};

/// How long `connect` waits for the database to answer, and a request for a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per server: enough for many concurrent requests, few enough that several
/// servers stay well below a hosted database's connection limit (Supabase's smallest: 60).
const MAX_CONNECTIONS: u32 = 16;

/// Key of the advisory lock that serialises `bootstrap` across servers (any constant works:
/// advisory locks are per database). "nsboot" in ASCII.
const BOOTSTRAP_LOCK: i64 = 0x6e73_626f_6f74;

/// The control-plane store on one PostgreSQL database.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
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
            e.with_context(|m| secrets.scrub(&format!("cannot {doing} {server}: {m}")))
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
                    sqlx::migrate::MigrateError::Execute(e) => Postgres::db_error(e),
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
        Ok(SqlStore::new(pool, server, None))
    }
}

#[async_trait]
impl Engine for Postgres {
    const STORE_NAME: &'static str = "PostgresStore";

    /// READ COMMITTED: each statement sees what committed before it.
    const BEGIN_WRITE: &'static str = "BEGIN";

    /// TIMESTAMPTZ, microseconds.
    type Timestamp = DateTime<Utc>;

    fn timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }

    fn read_timestamp(_column: &str, stored: DateTime<Utc>) -> Result<DateTime<Utc>, StateError> {
        Ok(stored)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// A transaction-scoped advisory lock: released by the commit or rollback.
    async fn lock_bootstrap(conn: &mut PgConnection) -> Result<(), StateError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(conn)
            .await
            .map_err(Postgres::db_error)?;
        Ok(())
    }

    /// Conditions that pass when the database or the network comes back (no connection, pool
    /// exhausted, the server shutting down or restarting, too many connections, a
    /// serialisation failure or deadlock to retry) are `Unavailable`. sqlx's messages carry SQL
    /// and the server's text, never bound values, so no key can leak here.
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

    /// Failing to get a connection is always `Unavailable`: whatever the reason — no answer,
    /// a restart, a database not accepting connections, a password changed under the server —
    /// the request itself was fine and may succeed later.
    fn acquire_error(e: sqlx::Error) -> StateError {
        unavailable(e)
    }

    fn peers(pool: &Pool<Postgres>) -> Option<Arc<dyn PeerChannel>> {
        Some(Arc::new(PgPeers { pool: pool.clone() }))
    }
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
            .map_err(Postgres::db_error)?;
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn PeerListener>, StateError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(unavailable)?;
        listener
            .listen(PEER_CHANNEL)
            .await
            .map_err(Postgres::db_error)?;
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
