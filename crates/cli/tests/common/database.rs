//! Fresh PostgreSQL databases for the server suites (shared by `common` and `support`).

use std::process::{Command, Stdio};

/// A fresh PostgreSQL database for one server, when `NULLSPACE_TEST_STATE=postgres`: created
/// with `psql` on `NULLSPACE_TEST_PG_URL` (default: the local server, trust auth) and dropped
/// (`WITH (FORCE)`) on drop. Any other value, or none, means SQLite: the server suites run on
/// one engine per run, and CI runs them once per engine.
pub struct TestDatabase {
    /// What the server gets as `--database-url`.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// `Some` when the suite runs on PostgreSQL.
    pub fn for_selected_engine() -> Option<TestDatabase> {
        let engine = std::env::var("NULLSPACE_TEST_STATE").unwrap_or_default();
        if engine.trim() != "postgres" {
            return None;
        }
        Some(TestDatabase::postgres())
    }

    /// A fresh PostgreSQL database whatever the selected engine (for suites that need
    /// PostgreSQL itself, such as several servers on one database).
    pub fn postgres() -> TestDatabase {
        let admin_url = std::env::var("NULLSPACE_TEST_PG_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/postgres".to_owned());
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "nstest_cli_{}_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or_default()
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (scheme, rest) = admin_url.split_once("://").expect("a postgres:// URL");
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        TestDatabase {
            url: format!("{scheme}://{authority}/{name}"),
            name,
            admin_url,
        }
    }

    /// Runs one SQL statement in this database (as the admin user); panics when it fails.
    pub fn execute(&self, sql: &str) {
        psql(&self.url, sql);
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one SQL statement with `psql`; panics (outside of unwinding) when it fails.
fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output();
    let failure = match out {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => format!("cannot run psql (the PostgreSQL client): {e}"),
    };
    if std::thread::panicking() {
        eprintln!("{sql}: {failure}");
    } else {
        panic!("{sql}: {failure}");
    }
}
