//! Control-plane benchmark (issue 7): operations per second with 16 concurrent clients —
//! create, get, list of 10,000 volumes, stat — SQLite against PostgreSQL, and one server
//! against two (PostgreSQL, one data root). Run as root with PostgreSQL on 127.0.0.1:5432:
//!
//! ```sh
//! cargo build --release -p nullspace-cli
//! cargo build --release -p nullspace-volumes --example commit_lock_bench
//! cargo run --release -p nullspace-cli --example control_plane_bench [-- OUT.md]
//! ```
//!
//! Three set-ups live side by side for the whole run, each with its own data dir under
//! /work/benchtmp and (for PostgreSQL) its own fresh database: `sqlite` (one server), `pg` (one
//! server), `pg×2` (two servers on one database and one data dir; clients split 8/8). Each client
//! is its own tokio task with its own HTTP connection (keep-alive); the clients run truly
//! concurrently on a multi-threaded runtime. Measured, in rounds that rotate the order of the
//! set-ups:
//! - create: `POST /v1/volumes` — 10,000 volumes per set-up, made in `ROUNDS` rounds;
//! - get: `GET /v1/volumes/{name}` of random volumes;
//! - list: `GET /v1/volumes` (all 10,000);
//! - stat: `GET /v1/volumes/{name}/files/stat?path=/` of random volumes among the first 1,000
//!   (each server keeps an open handle per volume it has served; see ARCHITECTURE.md).
//!
//! Figures are medians over the rounds of (operations / wall time). Then runs
//! `commit_lock_bench` (bench/commit_lock.rs: the cost of the shared commit lock on the
//! single-server write path) if it is built. Writes a Markdown table to `bench/notes/issue7.md` (or
//! the path given).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const CLIENTS: usize = 16;
const VOLUMES: usize = 10_000;
const ROUNDS: usize = 3;
const GETS_PER_CLIENT: usize = 400;
const LISTS_PER_CLIENT: usize = 3;
const STATS_PER_CLIENT: usize = 400;
const STAT_VOLUMES: usize = 1_000;
const KEY: &str = "nsk_bench_control_plane_key_0123456789";
const PG_ADMIN: &str = "postgres://root@127.0.0.1:5432/postgres";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    name: &'static str,
    servers: Vec<Server>,
    database: Option<String>,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.servers.clear();
        if let Some(db) = &self.database {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn psql(sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            PG_ADMIN,
            "-c",
            sql,
        ])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn server_binary() -> Result<PathBuf> {
    // target/release/examples/control_plane_bench -> target/release/nullspace
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("no target dir")?
        .join("nullspace");
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release -p nullspace-cli",
            bin.display()
        );
    }
    Ok(bin)
}

fn client_url(data: &Path) -> Option<String> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("client.json")).ok()?).ok()?;
    doc["url"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

/// Starts one server on port 0 and waits for the URL it writes into `client.json`.
fn start_server(bin: &Path, data: &Path, database: Option<&str>, log: &Path) -> Result<Server> {
    // Servers sharing the data dir start one after the other: blank the previous one's URL.
    if let Ok(bytes) = std::fs::read(data.join("client.json")) {
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes)?;
        doc["url"] = "".into();
        std::fs::write(data.join("client.json"), doc.to_string())?;
    }
    let mut cmd = Command::new(bin);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--bootstrap-key", KEY])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    if let Some(db) = database {
        cmd.args(["--database-url", db]);
    }
    let mut child = cmd.spawn().context("spawn the server")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(url) = client_url(data) {
            return Ok(Server { child, url });
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "server exited with {status}: {}",
                std::fs::read_to_string(log)?
            );
        }
        if Instant::now() > deadline {
            bail!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn setup(name: &'static str, bin: &Path, base: &Path, pg: bool, servers: usize) -> Result<Setup> {
    let dir = base.join(name.replace('×', "x"));
    std::fs::create_dir_all(dir.join("data"))?;
    let database = if pg {
        let db = format!("nsbench_{}_{}", std::process::id(), name.replace('×', "x"));
        psql(&format!("CREATE DATABASE {db}"))?;
        Some(db)
    } else {
        None
    };
    let url = database
        .as_ref()
        .map(|db| format!("postgres://root@127.0.0.1:5432/{db}"));
    let mut s = Setup {
        name,
        servers: Vec::new(),
        database,
        dir: dir.clone(),
    };
    for i in 0..servers {
        let log = dir.join(format!("server{i}.log"));
        s.servers
            .push(start_server(bin, &dir.join("data"), url.as_deref(), &log)?);
    }
    Ok(s)
}

/// One HTTP client per task (its own connection), with the key.
fn http() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {KEY}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(h)
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

/// A small deterministic generator (xorshift), so every run asks for the same volumes.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Create { round: usize },
    Get,
    List,
    Stat,
}

/// Runs `CLIENTS` concurrent clients, client `i` on server `i % n`; returns operations per
/// second.
async fn run(s: &Setup, op: Op) -> Result<f64> {
    let urls: Arc<Vec<String>> = Arc::new(s.servers.iter().map(|x| x.url.clone()).collect());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            let base = &urls[c % urls.len()];
            let h = http();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            let mut done = 0usize;
            match op {
                Op::Create { round } => {
                    let per_round = VOLUMES / ROUNDS + usize::from(round < VOLUMES % ROUNDS);
                    let mine = (0..per_round).filter(|k| k % CLIENTS == c);
                    for k in mine {
                        let name = format!("v{round}-{k:05}");
                        let r = h
                            .post(format!("{base}/v1/volumes"))
                            .json(&serde_json::json!({ "name": name }))
                            .send()
                            .await?;
                        if r.status() != 201 {
                            bail!("create {name}: {} {}", r.status(), r.text().await?);
                        }
                        done += 1;
                    }
                }
                Op::Get => {
                    for _ in 0..GETS_PER_CLIENT {
                        let n = volume_name((next(&mut seed) as usize) % VOLUMES);
                        let r = h.get(format!("{base}/v1/volumes/{n}")).send().await?;
                        if r.status() != 200 {
                            bail!("get {n}: {}", r.status());
                        }
                        r.bytes().await?;
                        done += 1;
                    }
                }
                Op::List => {
                    for _ in 0..LISTS_PER_CLIENT {
                        let r = h.get(format!("{base}/v1/volumes")).send().await?;
                        if r.status() != 200 {
                            bail!("list: {}", r.status());
                        }
                        let v: serde_json::Value = r.json().await?;
                        let n = v["volumes"].as_array().map_or(0, Vec::len);
                        if n != VOLUMES {
                            bail!("list returned {n} volumes");
                        }
                        done += 1;
                    }
                }
                Op::Stat => {
                    for _ in 0..STATS_PER_CLIENT {
                        let n = volume_name((next(&mut seed) as usize) % STAT_VOLUMES);
                        let r = h
                            .get(format!("{base}/v1/volumes/{n}/files/stat?path=/"))
                            .send()
                            .await?;
                        if r.status() != 200 {
                            bail!("stat {n}: {}", r.status());
                        }
                        r.bytes().await?;
                        done += 1;
                    }
                }
            }
            Ok::<usize, anyhow::Error>(done)
        }));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await??;
    }
    Ok(ops as f64 / start.elapsed().as_secs_f64())
}

/// The name of the `i`-th volume made by the create rounds.
fn volume_name(i: usize) -> String {
    // Round r made the indices [sum of earlier rounds, …) under the name v{r}-{k}.
    let mut k = i;
    for r in 0..ROUNDS {
        let n = VOLUMES / ROUNDS + usize::from(r < VOLUMES % ROUNDS);
        if k < n {
            return format!("v{r}-{k:05}");
        }
        k -= n;
    }
    unreachable!("i < VOLUMES")
}

const NOTES: &str = "
Notes:
- Both servers of `pg×2` run on this one 2-core machine, next to the clients and PostgreSQL:
  a second server adds no CPU here, so the `2 servers/1` column shows what sharing costs (the
  peer event channel, two pools, the shared commit lock), not the scale-out a second machine
  would give. Each server has its own pool of up to 16 connections.
- get and stat are two queries each (the key by its hash prefix, then the volume by name); on
  PostgreSQL each query is a round trip to another process where SQLite is a function call,
  hence PG/SQLite below 1. list of 10,000 is dominated by reading the 10,000 rows and building
  the JSON answer, about the same work on both engines (its ratio moved between 0.98x and 1.9x
  across runs: at 5-12 lists/s, a few slow lists decide the median).
- create writes one row and makes the volume's directories (and fsyncs the data root), the
  same on every engine.
";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/notes/issue7.md"));
    let bin = server_binary()?;
    std::fs::create_dir_all("/work/benchtmp")?;
    let base = tempfile::Builder::new()
        .prefix("issue7-")
        .tempdir_in("/work/benchtmp")?;
    let setups = vec![
        setup("sqlite", &bin, base.path(), false, 1)?,
        setup("pg", &bin, base.path(), true, 1)?,
        setup("pg×2", &bin, base.path(), true, 2)?,
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ops = ["create", "get", "list", "stat"];
    // results[op][setup] = one figure per round
    let mut results = vec![vec![Vec::new(); setups.len()]; ops.len()];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for round in 0..ROUNDS {
        for i in 0..setups.len() {
            let s = &setups[(i + round) % setups.len()];
            let idx = (i + round) % setups.len();
            let r = rt.block_on(run(s, Op::Create { round }))?;
            eprintln!("round {round} {}: create {r:.0}/s", s.name);
            results[0][idx].push(r);
        }
    }
    // Warm-up: every server opens the handles of the volumes stat will touch.
    for s in &setups {
        rt.block_on(run(s, Op::Stat))?;
    }
    for round in 0..ROUNDS {
        for i in 0..setups.len() {
            let idx = (i + round) % setups.len();
            let s = &setups[idx];
            for (o, op) in [(1, Op::Get), (2, Op::List), (3, Op::Stat)] {
                let r = rt.block_on(run(s, op))?;
                eprintln!("round {round} {}: {} {r:.1}/s", s.name, ops[o]);
                results[o][idx].push(r);
            }
        }
    }
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let m = |o: usize, s: usize| median(results[o][s].clone());
    let fmt = |x: f64| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    let mut md = String::new();
    md.push_str("## Issue 7 — control plane on PostgreSQL, several servers\n\n");
    md.push_str(&format!(
        "Measured {} by `cargo run --release -p nullspace-cli --example control_plane_bench` \
         (bench/control_plane.rs; release build), 16 concurrent clients (each its own keep-alive \
         connection, tokio tasks on a multi-threaded runtime), {VOLUMES} volumes per set-up. \
         Operations per second, median of {ROUNDS} rounds; the set-ups ran side by side and \
         their order rotated each round. Load average at start {}, at end {} (2 shared cores: \
         the clients, the servers and PostgreSQL share them, so absolute figures are low and \
         noisy; the ratios are the result).\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_end
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    md.push_str(
        "| operation | SQLite, 1 server | PostgreSQL, 1 server | PostgreSQL, 2 servers | PG/SQLite | 2 servers/1 |\n|---|---|---|---|---|---|\n",
    );
    let what = [
        "create (`POST /v1/volumes`)",
        "get (`GET /v1/volumes/{name}`)",
        "list of 10,000 volumes (`GET /v1/volumes`)",
        "stat (`GET …/files/stat?path=/`)",
    ];
    for (o, what) in what.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {}/s | {}/s | {}/s | {:.2}x | {:.2}x |\n",
            what,
            fmt(m(o, 0)),
            fmt(m(o, 1)),
            fmt(m(o, 2)),
            m(o, 1) / m(o, 0),
            m(o, 2) / m(o, 1),
        ));
    }
    md.push_str("\nEvery round (ops/s):\n\n");
    for (o, op) in ops.iter().enumerate() {
        let rounds: Vec<String> = setups
            .iter()
            .enumerate()
            .map(|(s, x)| {
                let v: Vec<String> = results[o][s].iter().map(|r| fmt(*r)).collect();
                format!("{} [{}]", x.name, v.join(", "))
            })
            .collect();
        md.push_str(&format!("- {op}: {}\n", rounds.join("; ")));
    }
    md.push_str(NOTES);
    let lock_bench = bin.with_file_name("examples").join("commit_lock_bench");
    md.push_str(
        "\n### Cost of the shared commit lock on the single-server write path\n\n\
         `cargo run --release -p nullspace-volumes --example commit_lock_bench` (bench/commit_lock.rs, \
         run by this benchmark): a 4 KiB write through the data plane (temp file, fsync, rename, \
         directory fsync) against the work the shared usage file adds to each write, done alone \
         with the same calls (`flock`, `pread`, `pwrite`, unlock, and the two lock-free reads \
         around a request); medians of 7 alternating rounds, on /work/benchtmp:\n\n",
    );
    match Command::new(&lock_bench).output() {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                md.push_str(&format!("- {line}\n"));
            }
        }
        _ => md.push_str(&format!(
            "- not measured: {} is not built\n",
            lock_bench.display()
        )),
    }
    std::fs::write(&out, &md)?;
    print!("{md}");
    Ok(())
}
