//! Shared harness: starts the real `nullspace server` binary on a free port with a temporary
//! data dir and drives the `nullspace` CLI against it.
//!
//! Every CLI run gets `HOME`, `XDG_CONFIG_HOME` and `XDG_DATA_HOME` inside the test's temp
//! dir, so no real profile or data dir is ever read or written.
//!
//! The control plane is SQLite in the data dir, or with `NULLSPACE_TEST_STATE=postgres` a fresh
//! PostgreSQL database per server (see [`TestDatabase`]).

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod database;
pub mod launch;

pub use database::TestDatabase;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The nullspace binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nullspace");

/// The admin key the default tenant is bootstrapped with.
pub const BOOTSTRAP_KEY: &str = "nsk_test_bootstrap_key_0123456789";

/// Environment variables that could leak configuration in from the outside.
const SCRUBBED: [&str; 11] = [
    "NULLSPACE_API_URL",
    "NULLSPACE_API_KEY",
    "NULLSPACE_LISTEN",
    "NULLSPACE_DATA_DIR",
    "NULLSPACE_DATABASE_URL",
    "NULLSPACE_BOOTSTRAP_KEY",
    "NULLSPACE_SERVER_ID",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A running `nullspace server`, killed on drop.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The default tenant's admin key.
    pub key: String,
    pub port: u16,
    root: tempfile::TempDir,
    child: Option<Child>,
    /// Configure the server through `NULLSPACE_*` env vars instead of flags.
    via_env: bool,
    /// The server's PostgreSQL database, when the suite runs on PostgreSQL; dropped after the
    /// server has stopped (fields drop after `Drop::drop`) — after every server sharing it.
    database: Option<Arc<TestDatabase>>,
    /// The data dir when it is another server's (see [`TestServer::start_beside`]).
    shared_data: Option<PathBuf>,
}

impl TestServer {
    /// Starts a server on a free port in a fresh temp dir and waits until it is healthy.
    pub fn start() -> TestServer {
        TestServer::start_with(false)
    }

    /// Like [`TestServer::start`], configuring the server with `NULLSPACE_LISTEN`,
    /// `NULLSPACE_DATA_DIR` and `NULLSPACE_BOOTSTRAP_KEY` instead of flags.
    pub fn start_via_env() -> TestServer {
        TestServer::start_with(true)
    }

    fn start_with(via_env: bool) -> TestServer {
        TestServer::start_on(
            via_env,
            TestDatabase::for_selected_engine().map(Arc::new),
            None,
        )
    }

    /// Starts a server on a fresh PostgreSQL database whatever the suite's engine (for tests
    /// of several servers on one database).
    pub fn start_postgres() -> TestServer {
        TestServer::start_on(false, Some(Arc::new(TestDatabase::postgres())), None)
    }

    /// Starts a second server on this one's database and data dir — several servers over one
    /// database and one data root — with its own port, log, home and config dirs.
    pub fn start_beside(&self) -> TestServer {
        TestServer::start_on(false, self.database.clone(), Some(self.data_dir()))
    }

    fn start_on(
        via_env: bool,
        database: Option<Arc<TestDatabase>>,
        shared_data: Option<PathBuf>,
    ) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("nullspace-cli-test-")
            .tempdir()
            .expect("temp dir");
        for d in ["data", "home", "config", "xdg-data"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        let mut server = TestServer {
            url: String::new(),
            key: BOOTSTRAP_KEY.to_owned(),
            port: 0,
            root,
            child: None,
            via_env,
            database,
            shared_data,
        };
        if let Err(e) = server.spawn() {
            panic!("cannot start the server: {e}");
        }
        server
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's data dir (holds `client.json`).
    pub fn data_dir(&self) -> PathBuf {
        match &self.shared_data {
            Some(d) => d.clone(),
            None => self.root.path().join("data"),
        }
    }

    /// `HOME` of the CLI runs.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// `XDG_CONFIG_HOME` of the CLI runs (the profile goes to `nullspace/config.json` in it).
    pub fn config_home(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// A scratch directory for the test's local files.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.root.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).expect("mkdir scratch");
        p
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Starts the server on `self.port` (0 the first time: the kernel picks one) and waits
    /// until it serves; then `self.port` and `self.url` are its own.
    fn spawn(&mut self) -> Result<(), String> {
        launch::forget_url(&self.data_dir());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("server.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(BIN);
        for v in SCRUBBED {
            cmd.env_remove(v);
        }
        let listen = format!("127.0.0.1:{}", self.port);
        cmd.arg("server");
        if self.via_env {
            cmd.env("NULLSPACE_LISTEN", listen)
                .env("NULLSPACE_BOOTSTRAP_KEY", BOOTSTRAP_KEY)
                .env("NULLSPACE_DATA_DIR", self.data_dir());
        } else {
            cmd.args(["--listen", &listen, "--bootstrap-key", BOOTSTRAP_KEY])
                .arg("--data-dir")
                .arg(self.data_dir());
        }
        if let Some(db) = &self.database {
            if self.via_env {
                cmd.env("NULLSPACE_DATABASE_URL", &db.url);
            } else {
                cmd.arg("--database-url").arg(&db.url);
            }
        }
        cmd.env("HOME", self.home())
            .env("XDG_DATA_HOME", self.root.path().join("xdg-data"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        let port = launch::wait_until_serving(&mut child, &self.data_dir(), || self.log())?;
        self.child = Some(child);
        self.port = port;
        self.url = format!("http://127.0.0.1:{port}");
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts the server again on the same port and data dir.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("cannot restart the server: {e}");
        }
    }

    /// A `nullspace` command with this server's URL and key in the environment and every
    /// config location inside the temp dir.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for v in SCRUBBED {
            cmd.env_remove(v);
        }
        cmd.env("NULLSPACE_API_URL", &self.url)
            .env("NULLSPACE_API_KEY", &self.key)
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_DATA_HOME", self.root.path().join("xdg-data"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the CLI with `args`.
    pub fn cli(&self, args: &[&str]) -> Output {
        run(self.command().args(args))
    }

    /// Runs the CLI with another key.
    pub fn cli_as(&self, key: &str, args: &[&str]) -> Output {
        run(self.command().env("NULLSPACE_API_KEY", key).args(args))
    }

    /// Runs the CLI with `input` on stdin.
    pub fn cli_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nullspace");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // Feed stdin from a thread so a large input cannot deadlock against a full stdout.
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait nullspace");
        let _ = feeder.join();
        out
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.cli(args).assert_ok(args)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        // Volume file systems stay mounted after the server stops; the temp dir goes next.
        launch::unmount_all_below(self.root.path());
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run nullspace")
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Assertions on a CLI run.
pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    /// The exit code (-1 if killed by a signal).
    fn code(&self) -> i32;
    /// Requires exit 0 and an empty stderr; returns stdout.
    fn assert_ok(&self, what: &[&str]) -> String;
    /// Requires exit `code`, nothing on stdout, and exactly one stderr line
    /// `error: …` containing `needle`. Returns that line.
    fn assert_err(&self, code: i32, needle: &str) -> String;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    fn assert_ok(&self, what: &[&str]) -> String {
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "`nullspace {}` failed ({}):\nstdout: {}\nstderr: {}",
            what.join(" "),
            self.status,
            self.stdout_str(),
            self.stderr_str()
        );
        self.stdout_str()
    }

    fn assert_err(&self, code: i32, needle: &str) -> String {
        let err = self.stderr_str();
        assert_eq!(
            self.code(),
            code,
            "exit code; stdout: {:?} stderr: {err:?}",
            self.stdout_str()
        );
        assert!(
            self.stdout.is_empty(),
            "stdout should be empty on error: {:?}",
            self.stdout_str()
        );
        assert!(err.starts_with("error: "), "stderr: {err:?}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line of stderr: {err:?}"
        );
        assert!(err.ends_with('\n'), "stderr ends with a newline: {err:?}");
        assert!(
            err.contains(needle),
            "stderr {err:?} should contain {needle:?}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err:?}"
        );
        err.trim_end().to_owned()
    }
}

/// Parses stdout as JSON.
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// Writes a local file, creating parents.
pub fn write_local(path: &Path, content: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, content).expect("write local file");
}

/// A `nullspace` command with no server behind it: `HOME` and XDG dirs inside `dir`,
/// `NULLSPACE_API_URL` set to `url` and no key.
pub fn command_without_server(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for v in SCRUBBED {
        cmd.env_remove(v);
    }
    cmd.env("NULLSPACE_API_URL", url)
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .stdin(Stdio::null());
    cmd
}

/// A server that destroys the listed sandboxes before it stops, also when an assertion fails:
/// sandboxes outlive server processes.
pub struct SandboxServer(pub TestServer, pub Vec<String>);

impl Drop for SandboxServer {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.cli(&["sandbox", "destroy", id]);
        }
    }
}

impl std::ops::Deref for SandboxServer {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl std::ops::DerefMut for SandboxServer {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.0
    }
}
