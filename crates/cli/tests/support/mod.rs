//! Harness of the end-to-end "Done when" suites of the volumes core: the real `nullspace server`
//! binary on a free port with a temporary data dir, spoken to over HTTP (reqwest, or raw bytes
//! on a TCP socket for requests no HTTP library would send), and helpers that look at the disk
//! behind the API. The server can be killed with SIGKILL and started again on the same port and
//! data dir.

#![allow(dead_code)] // each suite uses a different part of the harness

#[path = "../common/launch.rs"]
pub mod launch;

#[path = "../common/database.rs"]
pub mod database;

pub use database::TestDatabase;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nullspace");

/// The admin key of the default tenant.
pub const ADMIN_KEY: &str = "nsk_e2e_admin_key_0123456789abcdef";

/// Environment variables that could leak configuration in from the outside.
const SCRUBBED: [&str; 8] = [
    "NULLSPACE_API_URL",
    "NULLSPACE_API_KEY",
    "NULLSPACE_LISTEN",
    "NULLSPACE_DATA_DIR",
    "NULLSPACE_DATABASE_URL",
    "NULLSPACE_BOOTSTRAP_KEY",
    "HTTP_PROXY",
    "http_proxy",
];

/// A running `nullspace server` in its own temp dir, killed on drop.
///
/// Layout of the temp dir: `data/` (the server's data dir), `cwd/` (the server's working
/// directory, so that `/proc/self/cwd` leads somewhere known), `server.log`; tests may add
/// their own entries (for example a directory "outside" every volume).
pub struct Server {
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    root: tempfile::TempDir,
    child: Option<Child>,
    /// A data dir shared with other servers (see [`Cluster`]) instead of `root/data`.
    shared_data: Option<PathBuf>,
    /// `--database-url`, when not the default SQLite in the data dir.
    database_url: Option<String>,
}

impl Server {
    /// Starts a server on a free port and waits until it answers `/v1/health`.
    pub fn start() -> Server {
        Server::start_with(None, None)
    }

    fn start_with(shared_data: Option<PathBuf>, database_url: Option<String>) -> Server {
        let root = tempfile::Builder::new()
            .prefix("nullspace-e2e-")
            .tempdir()
            .expect("temp dir");
        for d in ["data", "cwd", "home"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        let mut server = Server {
            port: 0,
            url: String::new(),
            root,
            child: None,
            shared_data,
            database_url,
        };
        if let Err(e) = server.spawn() {
            panic!("cannot start the server: {e}");
        }
        server
    }

    /// The temp dir everything of this server lives in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The server's `--data-dir`.
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

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A blocking HTTP client with the admin key.
    pub fn api(&self) -> Api {
        Api::new(&self.url, Some(ADMIN_KEY))
    }

    /// Whether `GET /v1/health` answers 200 right now.
    pub fn healthy(&self) -> bool {
        launch::health(self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
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
        cmd.args([
            "server",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--bootstrap-key",
            ADMIN_KEY,
        ])
        .arg("--data-dir")
        .arg(self.data_dir())
        .args(
            self.database_url
                .iter()
                .flat_map(|u| ["--database-url", u.as_str()]),
        )
        .current_dir(self.cwd())
        .env("HOME", self.root.path().join("home"))
        .env("XDG_DATA_HOME", self.root.path().join("home"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        let port = launch::wait_until_serving(&mut child, &self.data_dir(), || self.log_tail(20))?;
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // Volume file systems stay mounted after the server dies; the temp dir goes next.
        launch::unmount_all_below(self.root.path());
    }
}

/// Several servers on one data dir and one fresh PostgreSQL database — the deployment of
/// issue 7 — each with its own port, log and working directory. Servers start one after the
/// other (each writes its URL into the shared `client.json` once it has bound, which is how the
/// harness learns its port).
pub struct Cluster {
    pub servers: Vec<Server>,
    /// Dropped after the servers have stopped (fields drop in order).
    pub database: TestDatabase,
    root: tempfile::TempDir,
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
            database: TestDatabase::postgres(),
            root,
        };
        for _ in 0..n {
            cluster.add_server();
        }
        cluster
    }

    /// Starts one more server on the shared data dir and database.
    pub fn add_server(&mut self) -> &mut Server {
        let s = Server::start_with(Some(self.data_dir()), Some(self.database.url.clone()));
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

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ---------------------------------------------------------------------------------------------
// HTTP through reqwest, behind a blocking facade.

/// An answer: status, headers, whole body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.text()))
    }

    /// `error.code` of an error answer.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.get("code")?.as_str().map(str::to_owned)
    }

    /// Requires `status`; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16, what: &str) -> Resp {
        assert_eq!(
            self.status,
            status,
            "{what}: unexpected answer {:?}",
            self.text()
        );
        self
    }

    /// Requires an error with `status` and `code`.
    #[track_caller]
    pub fn expect_err(self, status: u16, code: &str, what: &str) -> Resp {
        assert_eq!(
            self.status,
            status,
            "{what}: unexpected answer {:?}",
            self.text()
        );
        assert_eq!(
            self.error_code().as_deref(),
            Some(code),
            "{what}: error code of {:?}",
            self.text()
        );
        self
    }
}

/// A blocking HTTP client of one server with one key (or none). Cheap to clone.
#[derive(Clone)]
pub struct Api {
    rt: Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
    pub base: String,
    key: Option<String>,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`).
    pub fn new(base: &str, key: Option<&str>) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        Api {
            rt: Arc::new(rt),
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
        }
    }

    /// The same server with another key (`None`: no `Authorization` header).
    pub fn with_key(&self, key: Option<&str>) -> Api {
        Api {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends one request; `path_and_query` is sent as written (encode with [`enc`]).
    pub fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = format!("{}{path_and_query}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: body: {e}"))
                .to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }

    pub fn get(&self, pq: &str) -> Resp {
        self.send(reqwest::Method::GET, pq, &[], None)
    }

    pub fn delete(&self, pq: &str) -> Resp {
        self.send(reqwest::Method::DELETE, pq, &[], None)
    }

    pub fn put(&self, pq: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.send(reqwest::Method::PUT, pq, &[], Some(body.into()))
    }

    pub fn post_json(&self, pq: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.send(
            reqwest::Method::POST,
            pq,
            &[("Content-Type", "application/json")],
            Some(b),
        )
    }

    pub fn put_json(&self, pq: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.send(
            reqwest::Method::PUT,
            pq,
            &[("Content-Type", "application/json")],
            Some(b),
        )
    }

    // -- conveniences over the documented routes ----------------------------------------------

    /// Creates a volume (requires 201) and returns it.
    #[track_caller]
    pub fn create_volume(&self, name: &str) -> Value {
        self.post_json("/v1/volumes", &serde_json::json!({ "name": name }))
            .expect(201, &format!("create volume {name}"))
            .json()
    }

    /// `GET /v1/volumes/{name}` (requires 200).
    #[track_caller]
    pub fn volume(&self, name: &str) -> Value {
        self.get(&format!("/v1/volumes/{name}"))
            .expect(200, &format!("get volume {name}"))
            .json()
    }

    /// The id of a volume.
    #[track_caller]
    pub fn volume_id(&self, name: &str) -> String {
        self.volume(name)["id"]
            .as_str()
            .expect("id is a string")
            .to_owned()
    }

    /// `(used_bytes, file_count)` of a volume.
    #[track_caller]
    pub fn usage(&self, name: &str) -> (u64, u64) {
        let v = self.volume(name);
        (
            v["used_bytes"].as_u64().expect("used_bytes"),
            v["file_count"].as_u64().expect("file_count"),
        )
    }

    pub fn read(&self, vol: &str, path: &str) -> Resp {
        self.get(&format!(
            "/v1/volumes/{vol}/files/content?path={}",
            enc(path)
        ))
    }

    pub fn write(&self, vol: &str, path: &str, content: impl Into<Vec<u8>>) -> Resp {
        self.put(
            &format!("/v1/volumes/{vol}/files/content?path={}", enc(path)),
            content,
        )
    }

    pub fn stat(&self, vol: &str, path: &str) -> Resp {
        self.get(&format!("/v1/volumes/{vol}/files/stat?path={}", enc(path)))
    }

    pub fn list(&self, vol: &str, path: &str, recursive: bool) -> Resp {
        self.get(&format!(
            "/v1/volumes/{vol}/files/list?path={}&recursive={recursive}&limit=100000",
            enc(path)
        ))
    }

    pub fn remove(&self, vol: &str, path: &str, recursive: bool) -> Resp {
        self.delete(&format!(
            "/v1/volumes/{vol}/files?path={}&recursive={recursive}",
            enc(path)
        ))
    }

    pub fn mkdir(&self, vol: &str, path: &str, parents: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/mkdir"),
            &serde_json::json!({"path": path, "parents": parents}),
        )
    }

    pub fn mv(&self, vol: &str, src: &str, dst: &str, overwrite: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/move"),
            &serde_json::json!({"src": src, "dst": dst, "overwrite": overwrite}),
        )
    }

    pub fn cp(&self, vol: &str, src: &str, dst: &str, overwrite: bool, recursive: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/copy"),
            &serde_json::json!({"src": src, "dst": dst, "overwrite": overwrite, "recursive": recursive}),
        )
    }
}

/// Percent-encodes a query value: everything but unreserved characters and `/`.
pub fn enc(s: &str) -> String {
    enc_bytes(s.as_bytes())
}

/// Percent-encodes raw bytes (which need not be UTF-8) as a query value.
pub fn enc_bytes(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a TCP socket: the request target goes out byte for byte.

/// A raw answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of a JSON error answer.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.get("code")?.as_str().map(str::to_owned)
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn raw_request(
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    raw_request_timeout(port, method, target, headers, body, Duration::from_secs(60))
}

fn raw_request_timeout(
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        timeout,
    )?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n").as_bytes(),
    );
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    s.write_all(&req)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 answer (content-length, chunked or read-to-close body).
pub fn parse_response(raw: &[u8]) -> std::io::Result<RawResponse> {
    let bad = |m: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{m}: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let rest = &raw[end + 4..];
    let mut r = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?
                + pos;
            let size_str = String::from_utf8_lossy(&rest[pos..line_end]);
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            let chunk = rest
                .get(pos..pos + size)
                .ok_or_else(|| bad("short chunk"))?;
            r.body.extend_from_slice(chunk);
            pos += size + 2;
        }
    } else if let Some(len) = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        r.body = rest.get(..len).ok_or_else(|| bad("short body"))?.to_vec();
    } else {
        r.body = rest.to_vec();
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// The disk behind the API.

/// One entry of a directory tree as found on disk (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskNode {
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    File {
        mode: u32,
        mtime: (i64, i64),
        content: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    Other {
        mode: u32,
    },
}

/// Every entry below `dir` (relative paths), with file contents; symlinks are not followed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, DiskNode> {
    let mut out = BTreeMap::new();
    snapshot_into(dir, dir, &mut out);
    out
}

fn snapshot_into(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, DiskNode>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(base).expect("below base").to_owned();
        let ft = md.file_type();
        let mtime = (md.mtime(), md.mtime_nsec());
        let mode = md.mode() & 0o7777;
        if ft.is_symlink() {
            out.insert(
                rel,
                DiskNode::Symlink {
                    target: std::fs::read_link(&p).unwrap_or_default(),
                },
            );
        } else if ft.is_dir() {
            out.insert(rel, DiskNode::Dir { mode, mtime });
            snapshot_into(base, &p, out);
        } else if ft.is_file() {
            out.insert(
                rel,
                DiskNode::File {
                    mode,
                    mtime,
                    content: std::fs::read(&p).unwrap_or_default(),
                },
            );
        } else {
            let _ = ft.is_fifo();
            out.insert(rel, DiskNode::Other { mode: md.mode() });
        }
    }
}

/// `(bytes, count)` of the regular files below `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in rd.flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if md.file_type().is_dir() {
            let (b, c) = disk_usage(&e.path());
            total.0 += b;
            total.1 += c;
        } else if md.file_type().is_file() {
            total.0 += md.len();
            total.1 += 1;
        }
    }
    total
}

/// The names in a directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    v.sort();
    v
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Deterministic pseudo-random bytes (xorshift64*), for large bodies that are cheap to rebuild.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
