//! The operator's side (docs/operating.md): `/metrics` checked by `promtool` and scraped by a
//! real Prometheus, one access-log line per request with its request id, JSON logs, the
//! `--config` file and `--print-config`, and the systemd unit.

mod harness;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{enc, Api, Server, ADMIN_KEY, BIN};
use serde_json::Value;

/// The metrics URL the server logged (`serving metrics metrics_url=…`).
fn metrics_url(server: &Server) -> String {
    let log = server.log();
    let at = log
        .find("http://")
        .and_then(|_| {
            log.lines()
                .find(|l| l.contains("serving metrics"))
                .and_then(|l| l.find("http://").map(|i| (l, i)))
        })
        .map(|(l, i)| {
            l[i..]
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap()
                .to_owned()
        });
    at.unwrap_or_else(|| panic!("no metrics URL in the log:\n{}", server.log_tail(20)))
}

/// One scrape of `/metrics`: the text, and each sample (`name{labels}` → value).
fn scrape(url: &str) -> (String, HashMap<String, f64>) {
    let resp = Api::new(url, None).get("");
    assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
    let ctype = resp.headers["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = resp.text();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_owned(), v.parse::<f64>().expect("sample value"))
        })
        .collect();
    (text, samples)
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

/// Runs `promtool check metrics` on `text`; panics with its complaints.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_count_requests_by_route_template() {
    let server = Server::start_with_flags(&["--metrics-listen", "127.0.0.1:0"]);
    let url = metrics_url(&server);
    let api = server.api();
    api.create_volume("metered");
    api.put(
        "/v1/volumes/metered/files/content?path=/a.txt",
        vec![7u8; 4096],
    )
    .expect(200, "write");
    let (text, before) = scrape(&url);
    promtool_check(&text);
    let get = r#"nullspace_http_requests_total{method="GET",route="/v1/volumes/{name}/files/content",status="200"}"#;
    let sent =
        r#"nullspace_http_sent_bytes_total{method="GET",route="/v1/volumes/{name}/files/content"}"#;
    let missing =
        r#"nullspace_http_requests_total{method="GET",route="/v1/volumes/{name}",status="404"}"#;
    for _ in 0..5 {
        let r = api.get("/v1/volumes/metered/files/content?path=/a.txt");
        assert_eq!((r.status, r.body.len()), (200, 4096));
    }
    // Raw paths never become labels: a thousand names would be a thousand series.
    for i in 0..3 {
        api.get(&format!("/v1/volumes/no-such-{i}"))
            .expect(404, "missing");
    }
    api.get("/v1/no/such/route").expect(404, "unmatched");
    let (text, after) = scrape(&url);
    promtool_check(&text);
    assert_eq!(sample(&after, get) - sample(&before, get), 5.0, "{text}");
    assert_eq!(sample(&after, sent) - sample(&before, sent), 5.0 * 4096.0);
    assert_eq!(sample(&after, missing) - sample(&before, missing), 3.0);
    assert!(
        !text.contains("no-such-") && !text.contains("/v1/no/such"),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched""#));
    let hist = r#"nullspace_http_request_duration_seconds_count{method="GET",route="/v1/volumes/{name}/files/content",class="2xx"}"#;
    assert!(sample(&after, hist) >= 5.0, "{text}");
    assert_eq!(sample(&after, "nullspace_volume_records"), 1.0);
    assert_eq!(sample(&after, "nullspace_volume_cap_bytes"), {
        api.volume("metered")["cap_bytes"].as_f64().unwrap()
    });
    for line in [
        r#"nullspace_server_sandboxes{state="running",runtime="namespace"}"#,
        r#"nullspace_attachments{state="mounted"}"#,
        "nullspace_watch_streams",
        "nullspace_tus_uploads_pending",
        r#"nullspace_database_connections{state="idle"}"#,
        "nullspace_database_max_connections",
        "nullspace_http_open_connections",
    ] {
        assert!(after.contains_key(line), "no {line} in:\n{text}");
    }
    // The API listener does not serve metrics.
    api.get("/metrics")
        .expect(404, "metrics on the API listener");
    server.assert_no_server_faults();
}

#[test]
fn metrics_follow_state_uploads_and_watch_streams() {
    let server = Server::start_with_flags(&["--metrics-listen", "127.0.0.1:0"]);
    let url = metrics_url(&server);
    let api = server.api();
    api.create_volume("w");
    let r = api.send(
        reqwest::Method::POST,
        "/v1/volumes/w/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "100"),
            ("Upload-Metadata", "path L3VwLmJpbg=="),
        ],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let (_, seen) = scrape(&url);
    assert_eq!(sample(&seen, "nullspace_tus_uploads_pending"), 1.0);
    // An open watch stream is counted while it is open.
    let watch = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    let mut w = &watch;
    use std::io::Write;
    write!(
        w,
        "GET /v1/volumes/w/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    (&watch).read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let (_, seen) = scrape(&url);
    assert_eq!(sample(&seen, "nullspace_watch_streams"), 1.0);
    assert!(sample(&seen, "nullspace_http_open_connections") >= 1.0);
    drop(watch);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, seen) = scrape(&url);
        if sample(&seen, "nullspace_watch_streams") == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the watch stream stays counted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Prometheus server from Debian's `prometheus` package, scraping `target` every second,
/// in its own temp dir, on a port the kernel picks; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: nullspace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/install.sh installs it)");
        let mut p = Prometheus {
            child,
            url: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // It logs the address it bound: `msg="Listening on" address=127.0.0.1:PORT`.
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find(|l| l.contains("msg=\"Listening on\""))
                .and_then(|l| l.split("address=").nth(1))
            {
                p.url = format!("http://{}", addr.split_whitespace().next().unwrap());
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of an instant query that returns one sample, if it returns one.
    fn query(&self, expr: &str) -> Option<f64> {
        let r = Api::new(&self.url, None).get(&format!("/api/v1/query?query={}", enc(expr)));
        if r.status != 200 {
            return None;
        }
        let doc = r.json();
        let v = doc["data"]["result"].get(0)?["value"][1]
            .as_str()?
            .to_owned();
        v.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it holds, for at most a minute (Prometheus scrapes once a second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_real_prometheus_scrapes_the_server_and_sees_counters_move() {
    let server = Server::start_with_flags(&["--metrics-listen", "127.0.0.1:0"]);
    let target = metrics_url(&server)
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let prom = Prometheus::start(&target);
    eventually("the target is up", || {
        prom.query("up{job=\"nullspace\"}") == Some(1.0)
    });
    let api = server.api();
    api.create_volume("scraped");
    let reads = r#"sum(nullspace_http_requests_total{route="/v1/volumes/{name}",method="GET",status="200"})"#;
    let mut before = None;
    eventually("a scrape after the first read", || {
        api.volume("scraped");
        before = prom.query(reads);
        before.is_some()
    });
    let before = before.unwrap();
    for _ in 0..10 {
        api.volume("scraped");
    }
    eventually("the ten reads are scraped", || {
        prom.query(reads).is_some_and(|v| v >= before + 10.0)
    });
    eventually("the volume count is scraped", || {
        prom.query("nullspace_volume_records") == Some(1.0)
    });
}

/// The access-log lines of a text log, each as its fields.
fn access_lines(log: &str) -> Vec<HashMap<String, String>> {
    log.lines()
        .filter(|l| l.contains("nullspace::access"))
        .map(|l| {
            let fields = l.split_once("nullspace::access: request ").unwrap().1;
            fields
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect()
        })
        .collect()
}

#[test]
fn every_request_gets_one_access_line_with_its_request_id() {
    let server = Server::start();
    let api = server.api();
    let sent_before = access_lines(&server.log()).len();
    let id = |i: usize| format!("t-{i}.req_id:x");
    let with_id = |i: usize, method: reqwest::Method, pq: &str, body: Option<Vec<u8>>| {
        let rid = id(i);
        let r = api.send(method, pq, &[("x-request-id", rid.as_str())], body);
        assert_eq!(r.headers["x-request-id"].to_str().unwrap(), rid);
        r
    };
    with_id(0, reqwest::Method::POST, "/v1/volumes", None);
    api.create_volume("private-name");
    with_id(
        1,
        reqwest::Method::PUT,
        "/v1/volumes/private-name/files/content?path=/secret-file.txt",
        Some(vec![1u8; 1000]),
    );
    with_id(
        2,
        reqwest::Method::GET,
        "/v1/volumes/private-name/files/content?path=/secret-file.txt",
        None,
    );
    let r = api
        .with_key(Some(&format!("nsk_{}", "ab".repeat(24))))
        .send(
            reqwest::Method::GET,
            "/v1/volumes",
            &[("x-request-id", &id(3))],
            None,
        );
    assert_eq!(r.status, 401);
    // An id that is not sane is replaced, and the one made is returned.
    let r = api.send(
        reqwest::Method::GET,
        "/v1/whoami",
        &[("x-request-id", "bad id with spaces")],
        None,
    );
    let made = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        made.len() == 32 && made.bytes().all(|c| c.is_ascii_hexdigit()),
        "{made}"
    );
    // The five above and the create_volume.
    let sent = 6;
    // A line is written once its response has been sent: wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines = access_lines(&server.log());
        if lines.len() >= sent_before + sent || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mine: Vec<_> = lines
        .iter()
        .filter(|l| l["route"] != "/v1/health")
        .collect();
    assert_eq!(mine.len(), sent, "{}", server.log_tail(20));
    let by_id = |rid: &str| {
        let found: Vec<_> = mine.iter().filter(|l| l["request_id"] == rid).collect();
        assert_eq!(found.len(), 1, "lines for {rid}: {found:?}");
        found[0]
    };
    let create = by_id(&id(0));
    assert_eq!(
        (
            create["method"].as_str(),
            create["route"].as_str(),
            create["status"].as_str()
        ),
        ("POST", "/v1/volumes", "400")
    );
    let write = by_id(&id(1));
    assert_eq!(write["route"], "/v1/volumes/{name}/files/content");
    assert_eq!(
        (write["status"].as_str(), write["bytes_in"].as_str()),
        ("200", "1000")
    );
    assert_eq!(write["tenant"], "default");
    let read = by_id(&id(2));
    assert_eq!(
        (read["status"].as_str(), read["bytes_out"].as_str()),
        ("200", "1000")
    );
    assert!(read["duration_ms"].parse::<f64>().unwrap() >= 0.0);
    let refused = by_id(&id(3));
    assert_eq!(
        (refused["status"].as_str(), refused["tenant"].as_str()),
        ("401", "-")
    );
    by_id(&made);
    // Route templates, never the raw path or query; and never the key (the harness checks
    // the whole log for keys again when the server stops).
    let log = server.log();
    assert!(
        !log.contains("secret-file") && !log.contains("private-name/"),
        "raw path logged"
    );
    assert!(
        !log.contains(&"ab".repeat(24)),
        "a presented key was logged"
    );
    server.assert_log_has_no_secret();
}

#[test]
fn access_logging_can_be_turned_off() {
    let server = Server::start_with_flags(&["--access-log", "false"]);
    server.api().create_volume("quiet");
    server.api().volume("quiet");
    let log = server.log();
    assert!(!log.contains("nullspace::access"), "{log}");
    assert!(log.contains("nullspace server listening"));
}

/// Writes `text` as a config file in a temp dir of its own.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nullspace.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap().to_owned();
    (dir, p)
}

#[test]
fn a_config_file_configures_the_server_and_json_lines_parse() {
    // The harness gives --listen, --data-dir and --bootstrap-key as flags; the file gives the
    // rest, and the server runs with it.
    let (_dir, path) = config_file(
        "log_format = \"json\"\nmetrics_listen = \"127.0.0.1:0\"\nmax_connections = 64\n",
    );
    let server = Server::start_with_flags(&["--config", &path]);
    let api = server.api();
    api.create_volume("configured");
    api.get("/v1/volumes/configured/files/content?path=/nope")
        .expect(404, "missing file");
    let url = metrics_url(&server);
    let (_, seen) = scrape(&url);
    assert_eq!(sample(&seen, "nullspace_volume_records"), 1.0);
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["max_connections"] == 64), "{log}");
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "nullspace::access" && l["route"] != "/v1/health")
        .collect();
    assert_eq!(access.len(), 2, "{log}");
    assert_eq!(access[1]["route"], "/v1/volumes/{name}/files/content");
    assert_eq!(access[1]["status"], 404);
    assert!(access[1]["request_id"].as_str().unwrap().len() == 32);
    for field in ["method", "bytes_in", "bytes_out", "duration_ms", "tenant"] {
        assert!(!access[1][field].is_null(), "no {field}: {}", access[1]);
    }
    server.assert_log_has_no_secret();
}

/// `nullspace server ARGS --print-config` with `env`, outside any harness server.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    for v in harness::SCRUBBED {
        cmd.env_remove(v);
    }
    cmd.env("HOME", dir.path())
        .arg("server")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn settings_rank_flag_then_environment_then_file_then_default() {
    let (_dir, path) = config_file(
        "sandbox_pids = 2048\nsandbox_memory = \"512MiB\"\nmax_connections = 100\n\
         bootstrap_key = \"nsk_file_secret_0123456789\"\n\
         database_url = \"postgres://user:pg-secret-pw@localhost/db\"\n",
    );
    let out = print_config(
        &[
            "--config",
            &path,
            "--sandbox-pids",
            "4096",
            "--print-config",
        ],
        &[("NULLSPACE_SANDBOX_MEMORY", "256MiB")],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        doc["sandbox_pids"].as_integer(),
        Some(4096),
        "flag wins: {text}"
    );
    assert_eq!(
        doc["sandbox_memory"].as_str(),
        Some("256MiB"),
        "env wins: {text}"
    );
    assert_eq!(
        doc["sandbox_disk"].as_str(),
        Some("4GiB"),
        "default: {text}"
    );
    assert!(text.contains("sandbox_pids = 4096  # --sandbox-pids"));
    assert!(text.contains("sandbox_memory = \"256MiB\"  # NULLSPACE_SANDBOX_MEMORY"));
    assert!(text.contains("sandbox_disk = \"4GiB\"  # default"));
    // Secrets are redacted (the database URL keeps its user and host).
    assert!(
        !text.contains("nsk_file_secret") && !text.contains("pg-secret-pw"),
        "{text}"
    );
    assert_eq!(doc["bootstrap_key"].as_str(), Some("<redacted>"));
    assert_eq!(
        doc["database_url"].as_str(),
        Some("postgres://user:<redacted>@localhost/db")
    );
    // What --print-config prints is a config file giving the same settings.
    let (_d2, again) = config_file(&text);
    let out = print_config(&["--config", &again, "--print-config"], &[]);
    let text2 = String::from_utf8(out.stdout).unwrap();
    let doc2: toml::Table = text2.parse().unwrap();
    for key in [
        "sandbox_pids",
        "sandbox_memory",
        "sandbox_disk",
        "max_connections",
    ] {
        assert_eq!(doc[key], doc2[key], "{key}");
    }
}

#[test]
fn a_bad_config_file_is_refused_before_anything_starts() {
    for (text, says) in [
        (
            "listen = \"127.0.0.1:0\"\nno_such_setting = 1\n",
            "unknown setting \"no_such_setting\"",
        ),
        (
            "config = \"/etc/other.toml\"\n",
            "unknown setting \"config\"",
        ),
        (
            "sandbox_pids = [1, 2]\n",
            "expected a string, a number or a boolean",
        ),
        ("sandbox_pids = 3\n", "--sandbox-pids"),
        ("listen = \n", "nullspace.toml"),
    ] {
        let (_dir, path) = config_file(text);
        let out = print_config(&["--config", &path, "--print-config"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    let out = print_config(
        &["--config", "/nonexistent/nullspace.toml", "--print-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/nullspace.service");
    let text = std::fs::read_to_string(&unit).expect("contrib/nullspace.service");
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian package systemd)");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let exec = text
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("an ExecStart line");
    let bin = exec
        .trim_start_matches("ExecStart=")
        .split_whitespace()
        .next()
        .unwrap();
    let copy = dir.path().join("nullspace.service");
    std::fs::write(&copy, text.replace(bin, BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}
