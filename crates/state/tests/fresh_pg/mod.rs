//! Fresh PostgreSQL databases for tests: each test creates `nstest_<random>` on the server named
//! by `NULLSPACE_TEST_PG_URL` (default: the local server, trust auth) and drops it afterwards,
//! also when the test fails.

#![allow(dead_code)] // each test file uses a different part

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
    /// Creates an empty database.
    pub async fn create() -> FreshDatabase {
        let admin_url = admin_url();
        let name = format!("nstest_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
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

    /// A connection to the server's admin database (not the test database).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the admin database")
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
}

impl FreshDatabase {
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
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("cannot drop test database {}: {e}", self.name);
        }
    }
}
