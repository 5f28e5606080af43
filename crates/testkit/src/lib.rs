//! Test support shared by the state behaviour suite (`crates/state/tests`) and the server
//! suites (`crates/cli/tests/harness`): which control-plane engine a test run uses, and fresh
//! PostgreSQL databases to run it on. One selector, so that `NULLSPACE_TEST_STATE` means the
//! same thing to every suite.
//!
//! `NULLSPACE_TEST_STATE`:
//! - unset or empty: SQLite, and PostgreSQL when its server answers at the test URL
//!   (`NULLSPACE_TEST_PG_URL`, default [`DEFAULT_ADMIN_URL`]). In CI (`CI=true`) PostgreSQL is
//!   required; elsewhere its tests are skipped with a notice when nothing answers. The servers
//!   of the server suites run on SQLite.
//! - `sqlite`, `postgres`, a comma-separated list, or `all`: those engines, each required.
//!   The server suites start their servers on one engine per run, so they accept one name.

mod database;

pub use database::{admin_url, server_answers, with_database, FreshDatabase, DEFAULT_ADMIN_URL};

/// The environment variable that selects the engines.
pub const SELECTOR: &str = "NULLSPACE_TEST_STATE";

/// A control-plane engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

    /// The engine's name in `NULLSPACE_TEST_STATE`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    fn parse(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What `NULLSPACE_TEST_STATE` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The variable as set (trimmed; empty when unset).
    value: String,
    /// The engines named; empty for the default.
    named: Vec<Engine>,
}

impl Selection {
    /// The selection of this process's environment; panics on a name that is no engine.
    pub fn from_env() -> Selection {
        let value = std::env::var(SELECTOR).unwrap_or_default();
        Selection::parse(&value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses a value of `NULLSPACE_TEST_STATE`.
    pub fn parse(value: &str) -> Result<Selection, String> {
        let value = value.trim().to_owned();
        if value == "all" {
            return Ok(Selection {
                value,
                named: Engine::ALL.to_vec(),
            });
        }
        let mut named = Vec::new();
        for n in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let engine = Engine::parse(n).ok_or_else(|| {
                let names: Vec<&str> = Engine::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "{SELECTOR} names {n:?}, but the engines are: {} (or \"all\")",
                    names.join(", ")
                )
            })?;
            if !named.contains(&engine) {
                named.push(engine);
            }
        }
        Ok(Selection { value, named })
    }

    /// Whether `engine` must answer: it is named, or it is PostgreSQL by default in CI.
    pub fn requires(&self, engine: Engine) -> bool {
        if self.named.is_empty() {
            engine == Engine::Sqlite || in_ci()
        } else {
            self.named.contains(&engine)
        }
    }

    /// Whether the tests of `engine` run; when they do not, prints why (on stderr, which the
    /// test runner shows for a skipped run).
    pub fn runs(&self, engine: Engine) -> bool {
        if self.requires(engine) {
            return true;
        }
        if !self.named.is_empty() {
            eprintln!(
                "notice: {SELECTOR}={:?} does not select {}; skipped",
                self.value,
                engine.name()
            );
            return false;
        }
        self.postgres_answers_or_says_so()
    }

    /// Whether a test that needs PostgreSQL whatever the engine (several servers on one
    /// database) runs: when PostgreSQL is required or answers; else it says it is skipped.
    pub fn runs_postgres_only_test(&self) -> bool {
        self.requires(Engine::Postgres) || self.postgres_answers_or_says_so()
    }

    fn postgres_answers_or_says_so(&self) -> bool {
        if server_answers() {
            return true;
        }
        eprintln!(
            "notice: no PostgreSQL server answers at {}; skipped (set {SELECTOR}=postgres, or \
             CI=true, to require it)",
            admin_url()
        );
        false
    }

    /// The engine the server suites start their servers on: SQLite by default, else the one
    /// engine named (a server runs on one engine, and a run of the suites on one).
    pub fn server_engine(&self) -> Engine {
        match self.named.as_slice() {
            [] => Engine::Sqlite,
            [one] => *one,
            _ => panic!(
                "{SELECTOR}={:?} names several engines, but the server suites run on one per \
                 run: set it to sqlite or postgres (scripts/test.sh runs them once per engine)",
                self.value
            ),
        }
    }
}

/// Whether this is a CI run (`CI=true`, as CI services set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.trim() == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_select_engines() {
        let named = |v: &str| Selection::parse(v).unwrap().named;
        assert_eq!(named(""), []);
        assert_eq!(named("  "), []);
        assert_eq!(named("sqlite"), [Engine::Sqlite]);
        assert_eq!(named(" postgres "), [Engine::Postgres]);
        assert_eq!(named("postgres,sqlite"), [Engine::Postgres, Engine::Sqlite]);
        assert_eq!(named("all"), Engine::ALL);
        assert!(Selection::parse("mysql").unwrap_err().contains("mysql"));
        assert!(Selection::parse("sqlite,pg").is_err());
    }

    #[test]
    fn named_engines_are_required_and_others_skipped() {
        let s = Selection::parse("postgres").unwrap();
        assert!(s.requires(Engine::Postgres) && s.runs(Engine::Postgres));
        assert!(!s.requires(Engine::Sqlite) && !s.runs(Engine::Sqlite));
        assert_eq!(s.server_engine(), Engine::Postgres);
        let s = Selection::parse("sqlite").unwrap();
        assert!(s.runs(Engine::Sqlite) && !s.runs(Engine::Postgres));
        assert_eq!(s.server_engine(), Engine::Sqlite);
        // The default always requires SQLite, and serves from it.
        let s = Selection::parse("").unwrap();
        assert!(s.requires(Engine::Sqlite));
        assert_eq!(s.server_engine(), Engine::Sqlite);
    }

    #[test]
    #[should_panic(expected = "names several engines")]
    fn servers_run_on_one_engine() {
        Selection::parse("all").unwrap().server_engine();
    }
}
