//! The harness of every server-level suite: the real `nullspace server` binary on a port of its
//! own with a temporary data dir, driven through the `nullspace` CLI ([`Server::cli`]), over
//! HTTP ([`Server::api`], [`raw_request`] for requests no HTTP library would send), and looked
//! at from the disk behind the API ([`snapshot`]). A server can be stopped, killed with
//! SIGKILL and started again on the same port and data dir; several can share one data dir
//! and database ([`Cluster`], [`Server::start_beside`]).
//!
//! Servers and CLI runs see no configuration from outside: the variables in [`SCRUBBED`] are
//! removed, and `HOME`, `XDG_CONFIG_HOME` and `XDG_DATA_HOME` point into the server's temp dir.
//!
//! The control plane is SQLite in the data dir, or with `NULLSPACE_TEST_STATE=postgres` a
//! fresh PostgreSQL database per server (`nullspace_testkit`); servers that share a database
//! always use PostgreSQL, the only engine several servers can share.
//!
//! With `NULLSPACE_TEST_SERVER_LEDGER=FILE`, every server started appends a line `ENGINE SUITE
//! TEST` to FILE: `scripts/test.sh` checks from it that every server test ran on both engines.

#![allow(dead_code)] // each suite uses a different part of the harness

pub mod cli;
pub mod disk;
pub mod hostile;
pub mod http;
pub mod launch;

// Re-exported for the suites; each uses some.
#[allow(unused_imports)]
pub use cli::{json, write_local, OutputExt};
#[allow(unused_imports)]
pub use disk::{contains, dir_names, disk_usage, pseudo_random, snapshot, DiskNode};
#[allow(unused_imports)]
pub use http::{enc, enc_bytes, parse_response, raw_request, Api, RawResponse, Resp};

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nullspace_testkit::{Engine, FreshDatabase, Selection};

/// The nullspace binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nullspace");

/// The admin key the default tenant is bootstrapped with.
pub const ADMIN_KEY: &str = "nsk_test_admin_key_0123456789abcdef";

/// Environment variables that could leak configuration in from the outside.
pub const SCRUBBED: [&str; 24] = [
    "NULLSPACE_API_URL",
    "NULLSPACE_API_KEY",
    "NULLSPACE_LISTEN",
    "NULLSPACE_DATA_DIR",
    "NULLSPACE_DATABASE_URL",
    "NULLSPACE_BOOTSTRAP_KEY",
    "NULLSPACE_SERVER_ID",
    "NULLSPACE_VOLUME_BACKEND",
    "NULLSPACE_SANDBOX_CPU",
    "NULLSPACE_SANDBOX_MEMORY",
    "NULLSPACE_SANDBOX_DISK",
    "NULLSPACE_SANDBOX_PIDS",
    "NULLSPACE_CONFIG",
    "NULLSPACE_LOG_FORMAT",
    "NULLSPACE_ACCESS_LOG",
    "NULLSPACE_METRICS_LISTEN",
    "NULLSPACE_CORS_ORIGIN",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "XDG_CACHE_HOME",
];

/// Removes [`SCRUBBED`] from `cmd`'s environment and points `HOME`, `XDG_CONFIG_HOME` and
/// `XDG_DATA_HOME` at `home/`, `config/` and `xdg-data/` below `dir`.
fn hermetic(cmd: &mut Command, dir: &Path) {
    for v in SCRUBBED {
        cmd.env_remove(v);
    }
    cmd.env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .stdin(Stdio::null());
}

/// A running `nullspace server` in its own temp dir, stopped on drop.
///
/// Layout of the temp dir: `data/` (the server's data dir, unless it shares another's), `cwd/`
/// (the server's working directory, so that `/proc/self/cwd` leads somewhere known), `home/`,
/// `config/`, `xdg-data/` (of the server and the CLI runs), `scratch/` (see
/// [`Server::scratch`]), `server.log`; tests may add their own entries (for example a
/// directory "outside" every volume).
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The default tenant's admin key ([`ADMIN_KEY`]).
    pub key: String,
    pub port: u16,
    root: tempfile::TempDir,
    child: Option<Child>,
    /// Configure the server through `NULLSPACE_*` env vars instead of flags.
    via_env: bool,
    /// The server's PostgreSQL database, when it runs on PostgreSQL; dropped after the server
    /// has stopped (fields drop after `Drop::drop`) — after every server sharing it.
    database: Option<Arc<FreshDatabase>>,
    /// The data dir when it is another server's (see [`Server::start_beside`], [`Cluster`]).
    shared_data: Option<PathBuf>,
    /// More environment of the server process (see [`Server::start_with_env`]).
    extra_env: Vec<(String, String)>,
    /// More `nullspace server` flags (see [`Server::start_with_flags`]).
    flags: Vec<String>,
    /// The server's open-file limit, soft and hard (see [`Server::start_with_fd_limit`]).
    nofile: Option<u64>,
}

impl Server {
    /// Starts a server on the selected engine, on a port the kernel picks, in a fresh temp
    /// dir, and waits until it serves.
    pub fn start() -> Server {
        Server::start_on(false, Server::database_of_selected_engine(), None)
    }

    /// Like [`Server::start`], with more `nullspace server` flags (kept for restarts).
    pub fn start_with_flags(flags: &[&str]) -> Server {
        Server::start_configured(
            false,
            Server::database_of_selected_engine(),
            None,
            Vec::new(),
            flags.iter().map(|f| f.to_string()).collect(),
            None,
        )
    }

    /// Like [`Server::start`], configuring the server with `NULLSPACE_LISTEN`,
    /// `NULLSPACE_DATA_DIR`, `NULLSPACE_BOOTSTRAP_KEY` (and `NULLSPACE_DATABASE_URL`) instead
    /// of flags.
    pub fn start_via_env() -> Server {
        Server::start_on(true, Server::database_of_selected_engine(), None)
    }

    /// Like [`Server::start`], with more environment for the server process (e.g.
    /// `NULLSPACE_SANDBOX_MEMORY`); kept across restarts.
    pub fn start_with_env(vars: &[(&str, &str)]) -> Server {
        let extra = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Server::start_configured(
            false,
            Server::database_of_selected_engine(),
            None,
            extra,
            Vec::new(),
            None,
        )
    }

    /// Like [`Server::start_with_env`], under an open-file limit of `nofile` — soft and hard,
    /// so that the server cannot raise it — kept across restarts.
    pub fn start_with_fd_limit(nofile: u64, vars: &[(&str, &str)]) -> Server {
        let extra = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Server::start_configured(
            false,
            Server::database_of_selected_engine(),
            None,
            extra,
            Vec::new(),
            Some(nofile),
        )
    }

    /// Starts a server on a fresh PostgreSQL database whatever the selected engine (for tests
    /// of several servers on one database).
    pub fn start_postgres() -> Server {
        Server::start_on(
            false,
            Some(Arc::new(FreshDatabase::create_blocking())),
            None,
        )
    }

    /// Starts a second server on this one's database and data dir — several servers over one
    /// database and one data root — with its own port, log, home and config dirs.
    pub fn start_beside(&self) -> Server {
        Server::start_on(false, self.database.clone(), Some(self.data_dir()))
    }

    fn database_of_selected_engine() -> Option<Arc<FreshDatabase>> {
        match Selection::from_env().server_engine() {
            Engine::Sqlite => None,
            Engine::Postgres => Some(Arc::new(FreshDatabase::create_blocking())),
        }
    }

    fn start_on(
        via_env: bool,
        database: Option<Arc<FreshDatabase>>,
        shared_data: Option<PathBuf>,
    ) -> Server {
        Server::start_configured(via_env, database, shared_data, Vec::new(), Vec::new(), None)
    }

    fn start_configured(
        via_env: bool,
        database: Option<Arc<FreshDatabase>>,
        shared_data: Option<PathBuf>,
        extra_env: Vec<(String, String)>,
        flags: Vec<String>,
        nofile: Option<u64>,
    ) -> Server {
        let root = tempfile::Builder::new()
            .prefix("nullspace-test-")
            .tempdir()
            .expect("temp dir");
        for d in ["data", "cwd", "home", "config", "xdg-data"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        let mut server = Server {
            url: String::new(),
            key: ADMIN_KEY.to_owned(),
            port: 0,
            root,
            child: None,
            via_env,
            database,
            shared_data,
            extra_env,
            flags,
            nofile,
        };
        if let Err(e) = server.spawn() {
            panic!("cannot start the server: {e}");
        }
        server.enter_in_ledger();
        server
    }

    /// The engine of the server's control plane.
    pub fn engine(&self) -> Engine {
        match self.database {
            Some(_) => Engine::Postgres,
            None => Engine::Sqlite,
        }
    }

    /// The server's PostgreSQL database, when it runs on one.
    pub fn database(&self) -> Option<&FreshDatabase> {
        self.database.as_deref()
    }

    /// Appends `ENGINE SUITE TEST` to the file named by `NULLSPACE_TEST_SERVER_LEDGER`.
    fn enter_in_ledger(&self) {
        let Some(ledger) = std::env::var_os("NULLSPACE_TEST_SERVER_LEDGER") else {
            return;
        };
        // The test runner names each test's thread after the test; run on the main thread
        // (one test per process), the test's name is the first free argument.
        let thread = std::thread::current();
        let test = match thread.name() {
            Some(name) if name != "main" => name.to_owned(),
            _ => std::env::args()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .unwrap_or_else(|| "?".to_owned()),
        };
        let line = format!(
            "{} {} {test}\n",
            self.engine().name(),
            env!("CARGO_CRATE_NAME")
        );
        // One short O_APPEND write per line: lines of parallel tests do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot write the server ledger {}: {e}",
                ledger.to_string_lossy()
            );
        }
    }

    /// The temp dir everything of this server lives in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's data dir (holds `client.json`).
    pub fn data_dir(&self) -> PathBuf {
        match &self.shared_data {
            Some(d) => d.clone(),
            None => self.root.path().join("data"),
        }
    }

    /// The server's working directory.
    pub fn cwd(&self) -> PathBuf {
        self.root.path().join("cwd")
    }

    /// `HOME` of the server and the CLI runs.
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

    /// `DIR/volumes/ID`: holds `data/` (the user tree) and `staging/`.
    pub fn volume_root(&self, id: &str) -> PathBuf {
        self.data_dir().join("volumes").join(id)
    }

    /// `DIR/volumes/ID/data`.
    pub fn volume_data(&self, id: &str) -> PathBuf {
        self.volume_root(id).join("data")
    }

    /// `DIR/volumes/ID/staging`.
    pub fn volume_staging(&self, id: &str) -> PathBuf {
        self.volume_root(id).join("staging")
    }

    /// What the server wrote to stderr so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Fails the test if the server logged a fault: a 5xx it answered (`request failed`, how
    /// every `internal` and `unavailable` answer is logged) or a panic.
    pub fn assert_no_server_faults(&self) {
        let log = self.log();
        let faults: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("request failed") || l.contains("panicked"))
            .take(5)
            .collect();
        assert!(
            faults.is_empty(),
            "the server logged faults:\n{}",
            faults.join("\n")
        );
    }

    /// Panics if the server's log holds anything shaped like a key or token (`nsk_` and 48 hex
    /// digits), whoever made it: secrets are never logged. The message shows only where.
    #[track_caller]
    pub fn assert_log_has_no_secret(&self) {
        let log = self.log();
        let b = log.as_bytes();
        for (at, _) in log.match_indices("nsk_") {
            let tail = &b[at + 4..];
            let hex = tail.iter().take_while(|c| c.is_ascii_hexdigit()).count();
            assert!(hex < 48, "the server log holds a key at byte {at}");
        }
        assert!(
            !log.contains(&self.key),
            "the server log holds the bootstrap key"
        );
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A blocking HTTP client with the admin key.
    pub fn api(&self) -> Api {
        Api::new(&self.url, Some(&self.key))
    }

    /// Whether `GET /v1/health` answers 200 right now.
    pub fn healthy(&self) -> bool {
        launch::health(self.port)
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
        hermetic(&mut cmd, self.root.path());
        let listen = format!("127.0.0.1:{}", self.port);
        cmd.arg("server");
        if self.via_env {
            cmd.env("NULLSPACE_LISTEN", listen)
                .env("NULLSPACE_BOOTSTRAP_KEY", ADMIN_KEY)
                .env("NULLSPACE_DATA_DIR", self.data_dir());
        } else {
            cmd.args(["--listen", &listen, "--bootstrap-key", ADMIN_KEY])
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
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.flags);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            let lim = rustix::process::Rlimit {
                current: Some(n),
                maximum: Some(n),
            };
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim)
                        .map_err(std::io::Error::from)
                });
            }
        }
        cmd.current_dir(self.cwd())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        let port = launch::wait_until_serving(&mut child, &self.data_dir(), || self.log_tail(40))?;
        self.child = Some(child);
        self.port = port;
        self.url = format!("http://127.0.0.1:{port}");
        Ok(())
    }

    /// `kill -9` the server and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
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

    /// Starts the server again on the same port and data dir (after [`Server::kill9`] or
    /// [`Server::stop`]). Retries for a while in case the port is still held.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        panic!("cannot restart the server on port {}: {last}", self.port);
    }

    /// Stops the server gracefully and starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// A `nullspace` command with this server's URL and key in the environment and every
    /// config location inside the temp dir.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        hermetic(&mut cmd, self.root.path());
        cmd.env("NULLSPACE_API_URL", &self.url)
            .env("NULLSPACE_API_KEY", &self.key);
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

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // Secrets are never logged, by any server of any suite (issue 17).
        if !std::thread::panicking() {
            self.assert_log_has_no_secret();
        }
        // Volume file systems stay mounted after the server stops; the temp dir goes next.
        launch::unmount_all_below(self.root.path());
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run nullspace")
}

/// A `nullspace` command with no server behind it: `HOME` and XDG dirs inside `dir`,
/// `NULLSPACE_API_URL` set to `url` and no key.
pub fn command_without_server(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    hermetic(&mut cmd, dir);
    cmd.env("NULLSPACE_API_URL", url);
    cmd
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A server that destroys the listed sandboxes before it stops, also when an assertion fails:
/// sandboxes outlive server processes.
pub struct SandboxServer(pub Server, pub Vec<String>);

impl Drop for SandboxServer {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.cli(&["sandbox", "destroy", id]);
        }
    }
}

impl std::ops::Deref for SandboxServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl std::ops::DerefMut for SandboxServer {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

/// Several servers on one data dir and one fresh PostgreSQL database — the deployment of
/// issue 7 — each with its own port, log and working directory. Servers start one after the
/// other (each writes its URL into the shared `client.json` once it has bound, which is how the
/// harness learns its port).
pub struct Cluster {
    pub servers: Vec<Server>,
    /// Dropped after the servers have stopped (fields drop in order, and each server holds it).
    pub database: Arc<FreshDatabase>,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` servers.
    pub fn start(n: usize) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("nullspace-cluster-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("mkdir");
        let mut cluster = Cluster {
            servers: Vec::new(),
            database: Arc::new(FreshDatabase::create_blocking()),
            root,
        };
        for _ in 0..n {
            cluster.add_server();
        }
        cluster
    }

    /// Starts one more server on the shared data dir and database.
    pub fn add_server(&mut self) -> &mut Server {
        let s = Server::start_on(false, Some(self.database.clone()), Some(self.data_dir()));
        self.servers.push(s);
        self.servers.last_mut().expect("just pushed")
    }

    /// The shared `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The ids of every volume with storage.
    pub fn volume_dirs(&self) -> Vec<String> {
        let mut ids: Vec<String> = dir_names(&self.data_dir().join("volumes"))
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.kill9();
        }
        // The shared data dir is the cluster's: its volume file systems stay mounted after
        // the servers die, and the temp dir goes next.
        launch::unmount_all_below(self.root.path());
    }
}

/// The sandbox runtimes a server-level suite runs over: `namespace` always, `gvisor` when
/// runsc is installed (else the test says the gvisor case was skipped and why).
#[allow(dead_code)]
pub fn sandbox_runtimes(test: &str) -> Vec<&'static str> {
    let found = std::env::var_os("NULLSPACE_RUNSC")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/runsc".into(), "/usr/local/bin/runsc".into()])
        .any(|p: PathBuf| p.is_file());
    if found {
        vec!["namespace", "gvisor"]
    } else {
        eprintln!("{test}: gvisor case skipped: runsc is not installed (apt-get install runsc)");
        vec!["namespace"]
    }
}
