//! Issue 5, "Done when": "Crash-resume: `kill -9` the server at random points of a 200 MiB
//! upload, 20 times, restart and resume each time: the final file's hash matches and the offset
//! never ran ahead of stored data."
//!
//! This test is the tus client (raw tus 1.0 requests through reqwest, bodies streamed so that a
//! PATCH can be cut at any byte). A 200 MiB pseudo-random file is sent in PATCHes of random size;
//! the server is killed with SIGKILL 20 times at random points, in four ways:
//!
//! - `MidPatch`: in the middle of a PATCH body, the connection still open, after a random pause
//!   (the server may or may not have taken in and written what was sent);
//! - `ClientGone`: the client drops the connection in the middle of a PATCH (the server keeps what
//!   arrived), then the server is killed after a random pause (before, during or after it saved it);
//! - `AfterBody`: right after the last byte of a PATCH, without waiting for the answer (the server
//!   is in fsync, in writing the state or answering); the last of these is on the final PATCH,
//!   while the server syncs and publishes the file;
//! - `BetweenPatches`: after the server answered 204 (the offset must then be exactly there).
//!
//! After each restart on the same data dir: `HEAD` gives the offset, which must be at most what
//! was sent, at least what the server acknowledged before, equal to the state file's offset, and
//! name a durable prefix: the upload's data file (read straight from disk) is at least that long
//! and its bytes `[0, offset)` are the source's (compared byte for byte, which is stricter than
//! comparing hashes and much cheaper in a debug build). `used_bytes`/`file_count` count nothing
//! until the file is published. The upload resumes from that offset. At the end: the file's
//! SHA-256 (on disk and downloaded) is the source's, `used_bytes`/`file_count` are exact (also
//! after one more restart), and staging holds nothing but the finished upload's record.
//!
//! A second test aims at the window the random kills rarely hit: SIGKILL while the last PATCH is
//! synced, recorded and published, swept in 0.5 ms steps. An upload whose offset is its full
//! length must have its file at its path after the restart.
//!
//! The seed is random and printed; `TUS_CRASH_SEED=<n>` replays the same kill plan and PATCH sizes
//! (not the timing).

mod harness;

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use harness::{dir_names, pseudo_random, Server, ADMIN_KEY};
use sha2::{Digest, Sha256};

const VOL: &str = "tus-crash";
const DEST: &str = "/incoming/big.bin";
const SIZE: u64 = 200 << 20;
const KILLS: usize = 20;
const MIB: u64 = 1 << 20;
/// How much of a PATCH body is handed to the HTTP client at a time.
const PIECE: u64 = MIB;

/// A small deterministic generator (xorshift64*) for the kill plan.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// How the server dies at a kill point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// `ms` after the client sent the body up to the kill point, in the middle of a PATCH.
    MidPatch { ms: u64 },
    /// The client drops the connection in the middle of a PATCH; the kill follows `ms` later.
    ClientGone { ms: u64 },
    /// `ms` after the last byte of a PATCH ending at the kill point, its answer not awaited.
    AfterBody { ms: u64 },
    /// After the 204 of a PATCH ending at the kill point.
    BetweenPatches,
}

/// Kill `KILLS` times: one kill point per session of the server, in increasing order. The
/// positions are absolute upload offsets, at least 1 MiB apart; the last kill is always on the
/// final PATCH, after its last byte.
fn plan(rng: &mut Rng) -> Vec<(u64, Kill)> {
    let mut positions: Vec<u64> = Vec::new();
    while positions.len() < KILLS - 1 {
        let p = rng.range(MIB, SIZE - MIB);
        if positions.iter().all(|q| q.abs_diff(p) >= MIB) {
            positions.push(p);
        }
    }
    positions.sort_unstable();
    // Each way of dying the same number of times (the final kill is an `AfterBody` one), shuffled.
    let mut kinds: Vec<u8> = (0..KILLS as u8 - 1).map(|i| i % 4).collect();
    for i in (1..kinds.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        kinds.swap(i, j);
    }
    let mut out: Vec<(u64, Kill)> = positions
        .into_iter()
        .zip(kinds)
        .map(|(p, k)| {
            let kill = match k {
                0 => Kill::MidPatch {
                    ms: rng.range(0, 250),
                },
                1 => Kill::ClientGone {
                    ms: rng.range(0, 250),
                },
                2 => Kill::AfterBody {
                    ms: rng.range(0, 40),
                },
                _ => Kill::BetweenPatches,
            };
            (p, kill)
        })
        .collect();
    out.push((
        SIZE,
        Kill::AfterBody {
            ms: rng.range(0, 40),
        },
    ));
    out
}

/// Standard base64 (for `Upload-Metadata`).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> String {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// Length of the file at `path` and whether its first `len` bytes are `want[..len]` (compared
/// byte for byte, block by block). `None` when the file does not exist.
fn prefix_matches(path: &Path, want: &[u8], len: u64) -> Option<(u64, Result<(), u64>)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("open {}: {e}", path.display()),
    };
    let file_len = f.metadata().expect("metadata").len();
    if file_len < len {
        return Some((file_len, Err(file_len)));
    }
    let mut buf = vec![0u8; 8 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..n]).expect("read data file");
        let w = &want[pos as usize..pos as usize + n];
        if buf[..n] != *w {
            let at = buf[..n]
                .iter()
                .zip(w)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some((file_len, Err(pos + at as u64)));
        }
        pos += n as u64;
    }
    Some((file_len, Ok(())))
}

/// The tus side: raw requests through reqwest on a multi-threaded runtime, so that a PATCH
/// body can be fed piece by piece from the test thread.
struct Tus {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// A PATCH in flight: the body is fed through `tx`; `answer` resolves when the server answers.
struct Patch {
    tx: futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>,
    answer: tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
}

impl Tus {
    fn new() -> Tus {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // No connection reuse: every server life starts with fresh connections.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        Tus { rt, http }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("Authorization", format!("Bearer {ADMIN_KEY}"))
            .header("Tus-Resumable", "1.0.0")
    }

    /// `POST` (creation): returns the upload's URL.
    fn create(&self, base: &str, length: u64, dest: &str) -> String {
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("{base}/v1/volumes/{VOL}/uploads"),
            )
            .header("Upload-Length", length.to_string())
            .header(
                "Upload-Metadata",
                format!("path {}", base64(dest.as_bytes())),
            )
            .header("Content-Length", "0");
        let resp = self
            .rt
            .block_on(async { req.send().await })
            .expect("POST uploads");
        assert_eq!(resp.status().as_u16(), 201, "creation: {resp:?}");
        let loc = resp.headers()["location"].to_str().expect("location");
        assert_eq!(resp.headers()["upload-offset"], "0");
        format!("{base}{loc}")
    }

    /// `HEAD`: `(Upload-Offset, Upload-Length)`.
    fn head(&self, url: &str) -> (u64, u64) {
        let resp = self
            .rt
            .block_on(async { self.request(reqwest::Method::HEAD, url).send().await })
            .expect("HEAD upload");
        assert_eq!(resp.status().as_u16(), 200, "HEAD: {resp:?}");
        let num = |h: &str| -> u64 {
            resp.headers()[h]
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{h} of {resp:?}"))
        };
        assert_eq!(resp.headers()["cache-control"], "no-store");
        (num("upload-offset"), num("upload-length"))
    }

    /// Starts a PATCH of `len` bytes at `offset`; feed it with [`Tus::feed`].
    fn start_patch(&self, url: &str, offset: u64, len: u64) -> Patch {
        let (tx, rx) = futures::channel::mpsc::channel(1);
        let req = self
            .request(reqwest::Method::PATCH, url)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", len.to_string())
            .body(reqwest::Body::wrap_stream(rx));
        let answer = self.rt.spawn(async move { req.send().await });
        Patch { tx, answer }
    }

    /// Hands `src[from..to]` to the PATCH body, piece by piece.
    fn feed(&self, p: &mut Patch, src: &Bytes, from: u64, to: u64) {
        let mut at = from;
        while at < to {
            let end = (at + PIECE).min(to);
            let piece = Ok(src.slice(at as usize..end as usize));
            if self.rt.block_on(p.tx.send(piece)).is_err() {
                let answer = self.rt.block_on(&mut p.answer);
                panic!("the PATCH stopped taking its body at {at}: {answer:?}");
            }
            at = end;
        }
    }

    /// Waits for the answer of a PATCH whose whole body was fed: requires 204, returns the new
    /// offset.
    fn finish(&self, p: Patch) -> u64 {
        drop(p.tx);
        let resp = self
            .rt
            .block_on(p.answer)
            .expect("PATCH task")
            .expect("PATCH answer");
        assert_eq!(resp.status().as_u16(), 204, "PATCH: {resp:?}");
        resp.headers()["upload-offset"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("Upload-Offset of the PATCH answer")
    }

    /// One whole PATCH of `src[offset..offset + len]`.
    fn patch(&self, url: &str, src: &Bytes, offset: u64, len: u64) -> u64 {
        let mut p = self.start_patch(url, offset, len);
        self.feed(&mut p, src, offset, offset + len);
        self.finish(p)
    }
}

/// One upload under test: its URL, id, destination and where that is on disk.
struct Upload {
    url: String,
    id: String,
    dest: String,
    length: u64,
    /// `DATA/volumes/<id>/staging/uploads`
    uploads: PathBuf,
    /// The destination on disk.
    target: PathBuf,
}

impl Upload {
    fn create(tus: &Tus, srv: &Server, vol_id: &str, dest: &str, length: u64) -> Upload {
        let url = tus.create(&srv.url, length, dest);
        let id = url.rsplit('/').next().expect("upload id").to_owned();
        let uploads = srv.volume_staging(vol_id).join("uploads");
        assert!(uploads.join(format!("{id}.data")).exists(), "data file");
        Upload {
            url,
            id,
            dest: dest.to_owned(),
            length,
            uploads,
            target: srv.volume_data(vol_id).join(dest.trim_start_matches('/')),
        }
    }
}

/// What the disk and the API say after a restart.
struct Observed {
    offset: u64,
    published: bool,
}

/// The checks after each restart; `sent` is the end of the furthest byte handed to a PATCH,
/// `acked` the furthest offset the server confirmed (in a 204 or a HEAD after a restart);
/// `others` is the usage of the volume's other files.
#[allow(clippy::too_many_arguments)]
fn check_after_restart(
    srv: &Server,
    tus: &Tus,
    up: &Upload,
    src: &[u8],
    sent: u64,
    acked: u64,
    others: (u64, u64),
    what: &str,
) -> Observed {
    let (offset, length) = tus.head(&up.url);
    assert_eq!(length, up.length, "{what}: Upload-Length");
    assert!(
        offset <= sent,
        "{what}: the offset {offset} ran ahead of the {sent} bytes sent"
    );
    assert!(
        offset >= acked,
        "{what}: the offset {offset} went back behind the acknowledged {acked}"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(up.uploads.join(format!("{}.json", up.id)))
            .expect("read the upload's state"),
    )
    .expect("state is JSON");
    assert_eq!(
        state["offset"].as_u64(),
        Some(offset),
        "{what}: HEAD and the state file disagree: {state}"
    );
    let completed = !state["completed"].is_null();
    match prefix_matches(&up.uploads.join(format!("{}.data", up.id)), src, offset) {
        Some((len, Ok(()))) => {
            assert!(!completed, "{what}: a completed upload kept its data file");
            assert!(len >= offset);
        }
        Some((len, Err(at))) if len < offset => panic!(
            "{what}: the data file holds {len} bytes, less than the offset {offset} (diverges at {at})"
        ),
        Some((_, Err(at))) => {
            panic!("{what}: the data file differs from the source at byte {at} < offset {offset}")
        }
        None => {
            // The data file is gone only once it was moved to its path: the offset must say
            // the upload is complete (the file itself is checked below).
            assert_eq!(
                offset, up.length,
                "{what}: data file missing while the offset is {offset} (state {state})"
            );
            if !completed {
                eprintln!(
                    "{what}: published, but the state does not say completed (killed between \
                     the rename and the state update)"
                );
            }
        }
    }
    let published = up.target.exists();
    if published {
        let (len, same) = prefix_matches(&up.target, src, up.length).expect("target");
        assert_eq!(len, up.length, "{what}: published file's length");
        assert_eq!(same, Ok(()), "{what}: published file's content");
    }
    if completed {
        assert!(published, "{what}: completed but no file at {}", up.dest);
    }
    assert!(
        offset < up.length || published,
        "{what}: HEAD says the upload is at its full length {} but nothing was published at {}: \
         a tus client stops here, so the file never appears (state {state}; data file in staging: {})",
        up.length,
        up.dest,
        up.uploads.join(format!("{}.data", up.id)).exists()
    );
    let (used, count) = srv.api().usage(VOL);
    let want = if published {
        (others.0 + up.length, others.1 + 1)
    } else {
        others
    };
    assert_eq!((used, count), want, "{what}: used_bytes/file_count");
    Observed { offset, published }
}

fn seed() -> u64 {
    let seed = std::env::var("TUS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("TUS_CRASH_SEED={seed}");
    seed
}

#[test]
fn kill_9_twenty_times_during_a_200_mib_tus_upload_resumes_exactly() {
    let started = Instant::now();
    let seed = seed();
    let mut rng = Rng(seed | 1);
    let src = Bytes::from(pseudo_random(seed, SIZE as usize));
    let src_sha = hex(&Sha256::digest(&src));

    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let vol_id = api.volume_id(VOL);
    drop(api);
    let staging = srv.volume_staging(&vol_id);
    let tus = Tus::new();
    let up = Upload::create(&tus, &srv, &vol_id, DEST, SIZE);

    let plan = plan(&mut rng);
    let mut offset = 0u64; // where the next PATCH starts
    let mut acked = 0u64; // furthest offset the server confirmed
    let mut sent = 0u64; // furthest byte handed to a PATCH
    let mut published = false;
    let mut kept_partial = 0; // client drops after which the server kept part of the PATCH
    for (round, &(pos, kill)) in plan.iter().enumerate() {
        let what = format!(
            "kill {} of {KILLS} ({kill:?} at {pos}, seed {seed})",
            round + 1
        );
        assert!(pos > offset, "{what}: plan behind the offset {offset}");
        // PATCHes of 2..24 MiB until the one that reaches the kill point.
        loop {
            let len = rng.range(2 * MIB, 24 * MIB).min(SIZE - offset);
            let end = offset + len;
            if end < pos {
                let o = tus.patch(&up.url, &src, offset, len);
                assert_eq!(o, end, "{what}: 204 offset");
                (offset, acked, sent) = (end, end, sent.max(end));
                continue;
            }
            match kill {
                Kill::MidPatch { ms } | Kill::ClientGone { ms } => {
                    // A PATCH that reaches past the kill point; the body stops there.
                    let end = end.max(pos + MIB).min(SIZE);
                    let mut p = tus.start_patch(&up.url, offset, end - offset);
                    tus.feed(&mut p, &src, offset, pos);
                    sent = sent.max(pos);
                    if matches!(kill, Kill::ClientGone { .. }) {
                        p.answer.abort();
                        drop(p);
                        std::thread::sleep(Duration::from_millis(ms));
                        srv.kill9();
                    } else {
                        std::thread::sleep(Duration::from_millis(ms));
                        srv.kill9();
                        drop(p);
                    }
                }
                Kill::AfterBody { ms } => {
                    let mut p = tus.start_patch(&up.url, offset, pos - offset);
                    tus.feed(&mut p, &src, offset, pos);
                    sent = sent.max(pos);
                    std::thread::sleep(Duration::from_millis(ms));
                    srv.kill9();
                    drop(p);
                }
                Kill::BetweenPatches => {
                    let o = tus.patch(&up.url, &src, offset, pos - offset);
                    assert_eq!(o, pos, "{what}: 204 offset");
                    (acked, sent) = (pos, sent.max(pos));
                    srv.kill9();
                }
            }
            break;
        }
        srv.start_again();
        let seen = check_after_restart(&srv, &tus, &up, &src, sent, acked, (0, 0), &what);
        if kill == Kill::BetweenPatches {
            assert_eq!(seen.offset, pos, "{what}: an acknowledged offset was lost");
        }
        if matches!(kill, Kill::ClientGone { .. }) && seen.offset > offset {
            kept_partial += 1;
        }
        eprintln!(
            "{what}: resumed at {} (the PATCH started at {offset}){}",
            seen.offset,
            if seen.published { ", published" } else { "" }
        );
        (offset, acked, published) = (seen.offset, seen.offset, seen.published);
    }
    assert!(published || offset < SIZE);

    // The rest, without crashes.
    while offset < SIZE {
        let len = rng.range(2 * MIB, 24 * MIB).min(SIZE - offset);
        let o = tus.patch(&up.url, &src, offset, len);
        assert_eq!(o, offset + len, "204 offset");
        offset = o;
    }

    // The file is in place, whole; the upload says so; usage counts it; staging is clean.
    assert_eq!(tus.head(&up.url), (SIZE, SIZE));
    assert_eq!(
        sha256_file(&up.target),
        src_sha,
        "sha256 of the published file"
    );
    let api = srv.api();
    let got = api.read(VOL, DEST).expect(200, "download");
    assert_eq!(
        hex(&Sha256::digest(&got.body)),
        src_sha,
        "sha256 downloaded"
    );
    drop(got);
    assert_eq!(api.usage(VOL), (SIZE, 1), "used_bytes/file_count");
    drop(api);
    let check_staging = |when: &str| {
        assert_eq!(
            dir_names(&staging),
            vec![OsString::from("uploads")],
            "{when}: staging holds only the uploads directory"
        );
        assert_eq!(
            dir_names(&up.uploads),
            vec![OsString::from(format!("{}.json", up.id))],
            "{when}: only the finished upload's record is left (no data, no temp state)"
        );
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(up.uploads.join(format!("{}.json", up.id))).expect("state"),
        )
        .expect("JSON");
        assert!(!state["completed"].is_null(), "{when}: {state}");
    };
    check_staging("after the upload");
    // And after one more crash: usage re-measured from disk agrees.
    srv.kill9();
    srv.start_again();
    assert_eq!(srv.api().usage(VOL), (SIZE, 1), "usage after a restart");
    assert_eq!(tus.head(&up.url), (SIZE, SIZE));
    check_staging("after a restart");
    eprintln!(
        "done in {:.1} s; after {kept_partial} of the client drops the server had kept part of \
         the PATCH",
        started.elapsed().as_secs_f64()
    );
}

/// The window the random kills above rarely hit: the server dies while the *last* PATCH is
/// synced, recorded and published. Whatever instant it dies at, a restart must never leave an
/// upload whose offset is its full length but whose file is not at its path (a tus client that
/// sees `Upload-Offset == Upload-Length` is done and sends nothing more). The kill moves through
/// the first 20 ms after the last byte in 0.5 ms steps, one 2 MiB upload per step.
#[test]
fn kill_9_while_the_last_patch_is_published_never_strands_the_upload() {
    const LEN: u64 = 2 * MIB;
    let seed = seed();
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let vol_id = api.volume_id(VOL);
    drop(api);
    let tus = Tus::new();
    let mut done = (0u64, 0u64);
    let mut outcomes: std::collections::BTreeMap<&str, u32> = Default::default();
    for step in 0..40u64 {
        let src = Bytes::from(pseudo_random(seed + step, LEN as usize));
        let up = Upload::create(&tus, &srv, &vol_id, &format!("/last/f{step}.bin"), LEN);
        assert_eq!(tus.patch(&up.url, &src, 0, LEN / 2), LEN / 2);
        let mut p = tus.start_patch(&up.url, LEN / 2, LEN / 2);
        tus.feed(&mut p, &src, LEN / 2, LEN);
        std::thread::sleep(Duration::from_micros(500 * step));
        srv.kill9();
        drop(p);
        srv.start_again();
        let what = format!("kill {:.1} ms after the last byte", step as f64 / 2.0);
        // Where the server died, as the disk tells before anyone asks.
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(up.uploads.join(format!("{}.json", up.id))).expect("state"),
        )
        .expect("JSON");
        let where_ = if !state["completed"].is_null() {
            "finished"
        } else if state["offset"].as_u64() != Some(LEN) {
            "before the state said complete"
        } else if up.target.exists() {
            "after the rename, before the state said finished"
        } else {
            "after the state said complete, before the rename"
        };
        *outcomes.entry(where_).or_insert(0) += 1;
        let seen = check_after_restart(&srv, &tus, &up, &src, LEN, LEN / 2, done, &what);
        if seen.offset < LEN {
            let o = tus.patch(&up.url, &src, seen.offset, LEN - seen.offset);
            assert_eq!(o, LEN, "{what}: resumed PATCH");
        }
        let (len, same) = prefix_matches(&up.target, &src, LEN).expect("published");
        assert_eq!((len, same), (LEN, Ok(())), "{what}: published content");
        done = (done.0 + LEN, done.1 + 1);
        assert_eq!(srv.api().usage(VOL), done, "{what}: usage");
    }
    eprintln!("where the 40 kills landed: {outcomes:?}");
}
