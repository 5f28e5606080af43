//! Fresh PostgreSQL databases: each test (or server) gets `nstest_<random>` on the server named
//! by `NULLSPACE_TEST_PG_URL` (default: the local server, trust auth), dropped afterwards, also
//! when the test fails.

use std::future::Future;
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The server the tests use when `NULLSPACE_TEST_PG_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

/// A URL of the test server with a database in which databases may be created.
pub fn admin_url() -> String {
    std::env::var("NULLSPACE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Whether something answers on the test server's host and port (checked once per process).
pub fn server_answers() -> bool {
    static ANSWERS: OnceLock<bool> = OnceLock::new();
    *ANSWERS.get_or_init(|| {
        let Ok(options) = PgConnectOptions::from_str(&admin_url()) else {
            return false;
        };
        let Ok(addrs) = (options.get_host(), options.get_port()).to_socket_addrs() else {
            return false;
        };
        addrs
            .into_iter()
            .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
    })
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{database}{query}")
}

/// A database created for one test, dropped (`WITH (FORCE)`, which ends its connections) when
/// this value is dropped.
pub struct FreshDatabase {
    /// `nstest_<random>`.
    pub name: String,
    /// URL of the new database, for `PostgresStore::connect` or `--database-url`.
    pub url: String,
    admin_url: String,
}

impl FreshDatabase {
    /// Creates an empty database; panics when the test server does not answer.
    pub async fn create() -> FreshDatabase {
        let admin_url = admin_url();
        let name = format!("nstest_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("cannot connect to the test PostgreSQL server at {admin_url}: {e}")
        });
        // A locale-aware default collation where the server has ICU (as hosted databases
        // usually have en_US), so that nothing passes only because the locale is C.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        if admin.execute(icu.as_str()).await.is_err() {
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        }
        let _ = admin.close().await;
        FreshDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// [`FreshDatabase::create`] for code that is not async (or runs inside another runtime).
    pub fn create_blocking() -> FreshDatabase {
        on_own_runtime(FreshDatabase::create())
    }

    /// A connection to the server's admin database (not the test database).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the admin database")
    }

    /// Runs one SQL statement in the test database (as the admin user); panics when it fails.
    /// Blocks, also inside a runtime.
    pub fn execute(&self, sql: &str) {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_runtime(async move {
            let mut conn = PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
            conn.execute(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = conn.close().await;
        })
    }

    /// Ends every connection to the test database, as a database restart or an operator's
    /// `pg_terminate_backend` would; returns how many there were.
    pub async fn terminate_backends(&self) -> i64 {
        let mut admin = self.admin().await;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("terminate backends");
        let _ = admin.close().await;
        ended
    }

    /// Lets new connections in, or refuses them (`ALTER DATABASE … ALLOW_CONNECTIONS`), as
    /// an operator does during maintenance; existing connections are not touched.
    pub async fn allow_connections(&self, allow: bool) {
        let mut admin = self.admin().await;
        admin
            .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allow}", self.name).as_str())
            .await
            .expect("alter database");
        let _ = admin.close().await;
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Not `on_own_runtime`: a drop may run while the test panics, and must not panic again.
        let dropped = joined_on_own_runtime(async move {
            let mut admin = PgConnection::connect(&admin_url).await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
            admin.close().await
        });
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("cannot drop test database {}", self.name),
        }
    }
}

/// Runs `work` to completion on a thread with a runtime of its own: a test's runtime cannot be
/// blocked on from inside, and sync code has none.
fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    joined_on_own_runtime(work).unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// [`on_own_runtime`], handing back a panic of `work` instead of resuming it.
fn joined_on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> std::thread::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    })
    .join()
}
