//! "A batch (and a recursive copy) is all or nothing across kill -9 too", "batch and tus
//! never stage more than the cap plus a stated slack", "an abandoned upload's bytes are shown
//! and can be cancelled" and "a long PATCH makes its offset durable as it goes" (issue 12).
//!
//! The crash suite kills the real server (SIGKILL) at 20 points of each kind of operation,
//! each chosen by progress seen on disk (files staged, files published), never by a sleep:
//! during batches of 3,000 files into a new directory and merged into an existing tree, and
//! during recursive copies. After
//! each restart the volume holds all of the operation or none of it, usage equals a fresh
//! measurement of the data directory, and staging is empty.

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::{dir_names, disk_usage, parse_response, pseudo_random, Api, Server, ADMIN_KEY};
use serde_json::json;
use sha2::Digest;

const VOL: &str = "atomic";
const FILES: usize = 3_000;
const DIRS: usize = 30;
const MIB: u64 = 1 << 20;
/// What the server may stage beyond the cap: nothing but what one read of the body can hold
/// before the bound is checked (see docs/SEMANTICS.md, "The cap").
const SLACK: u64 = MIB;

/// The relative path of file `i` of a batch.
fn rel(i: usize) -> String {
    format!("d{:02}/f{i:04}.txt", i % DIRS)
}

/// A tar of `files` (relative path, content).
fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &content[..])
            .expect("tar entry");
    }
    b.into_inner().expect("tar")
}

/// The 3,000 files of round `round` (contents differ per round).
fn batch_files(round: usize) -> Vec<(String, Vec<u8>)> {
    (0..FILES)
        .map(|i| (rel(i), format!("round {round} file {i}\n").into_bytes()))
        .collect()
}

/// Regular files below `dir` (recursively), counted.
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Every regular file below `dir`: relative path -> content.
fn files_below(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(base, &p, out),
                Ok(t) if t.is_file() => {
                    let r = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                    out.insert(r, std::fs::read(&p).unwrap_or_default());
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Bytes of regular files below `dir` (what staging holds).
fn bytes_below(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_below(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Sends one raw request on its own thread; the thread returns the answer, if one came.
fn send_raw(port: u16, head: String, body: Vec<u8>) -> JoinHandle<Option<harness::RawResponse>> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
        s.write_all(head.as_bytes()).ok()?;
        // A refusal may come (and the connection close) before the whole body is sent.
        for chunk in body.chunks(64 << 10) {
            if s.write_all(chunk).is_err() {
                break;
            }
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse_response(&raw).ok()
    })
}

fn batch_request(port: u16, dest: &str, tar: Vec<u8>) -> JoinHandle<Option<harness::RawResponse>> {
    let head = format!(
        "POST /v1/volumes/{VOL}/files/batch?path={dest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/x-tar\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    );
    send_raw(port, head, tar)
}

fn copy_request(port: u16, src: &str, dst: &str) -> JoinHandle<Option<harness::RawResponse>> {
    let body = serde_json::to_vec(&json!({"src": src, "dst": dst, "recursive": true})).unwrap();
    let head = format!(
        "POST /v1/volumes/{VOL}/files/copy HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    send_raw(port, head, body)
}

/// Where a round's kill lands.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// Once this many files of the operation sit in staging.
    Staged(usize),
    /// Once this many of the batch's new files are in the destination (a merge publishing).
    Published(usize),
    /// After the answer (which must be a success).
    Answered,
}

/// Waits (bounded) until `ready` holds, polling without pause; whether it did.
fn wait_for(mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Kills the server at `point` of the operation `op` started; restarts it. Returns whether
/// the operation answered success before the kill.
fn kill_at(
    srv: &mut Server,
    id: &str,
    point: Point,
    op: JoinHandle<Option<harness::RawResponse>>,
    published_in: &Path,
) -> bool {
    let staging = srv.volume_staging(id);
    let answered = match point {
        Point::Staged(n) => {
            assert!(
                wait_for(|| count_files(&staging) >= n || op.is_finished()),
                "{point:?}: never reached"
            );
            false
        }
        Point::Published(n) => {
            assert!(
                wait_for(|| count_files(published_in) >= n || op.is_finished()),
                "{point:?}: never reached"
            );
            false
        }
        Point::Answered => {
            let r = op.join().expect("request thread").expect("an answer");
            assert_eq!(r.status, 200, "the operation succeeds: {}", r.text());
            srv.kill9();
            srv.start_again();
            return true;
        }
    };
    srv.kill9();
    let _ = op.join();
    srv.start_again();
    answered
}

/// After a restart: usage is a fresh measurement and staging is empty.
fn check_volume(srv: &Server, id: &str, what: &str) {
    let api = Api::new(&srv.url, Some(ADMIN_KEY));
    assert_eq!(
        api.usage(VOL),
        disk_usage(&srv.volume_data(id)),
        "{what}: (used_bytes, file_count) vs the data dir"
    );
    let left: Vec<_> = dir_names(&srv.volume_staging(id))
        .into_iter()
        .filter(|n| n != "uploads")
        .collect();
    assert!(left.is_empty(), "{what}: staging leftovers {left:?}");
}

fn expected(files: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    files.iter().cloned().collect()
}

/// SEMANTICS: Crash atomicity
#[test]
fn kill_9_during_batches_into_a_new_directory_leaves_all_or_none() {
    let mut srv = Server::start();
    srv.api().create_volume(VOL);
    let id = srv.api().volume_id(VOL);
    // 20 points: staging under way, staging done (publishing: one rename), answered.
    let points: Vec<Point> = std::iter::once(Point::Staged(1))
        .chain((1..=15).map(|k| Point::Staged(FILES * k / 15)))
        .chain([Point::Staged(FILES); 3])
        .chain([Point::Answered])
        .collect();
    assert_eq!(points.len(), 20);
    for (round, &point) in points.iter().enumerate() {
        let files = batch_files(round);
        // The destination and its parent are new: one rename makes both.
        let dest = format!("/n{round}/batch");
        let op = batch_request(srv.port, &dest, tar_of(&files));
        let data = srv.volume_data(&id);
        let answered = kill_at(&mut srv, &id, point, op, &data);
        let got = files_below(&data.join(format!("n{round}/batch")));
        let all = got == expected(&files);
        assert!(
            all || (got.is_empty() && !data.join(format!("n{round}")).exists()),
            "round {round} ({point:?}): {} of {FILES} files published",
            got.len()
        );
        assert!(
            !answered || all,
            "round {round}: an answered batch is durable"
        );
        eprintln!("new directory, round {round} ({point:?}): all={all}");
        check_volume(&srv, &id, &format!("round {round}"));
    }
    srv.assert_no_server_faults();
}

#[test]
fn kill_9_during_batches_merged_into_an_existing_tree_leaves_all_or_none() {
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    // The existing tree: every other file of the batch, with other content, plus one more.
    let old: Vec<(String, Vec<u8>)> = (0..FILES)
        .step_by(2)
        .map(|i| (rel(i), b"old\n".to_vec()))
        .chain([("keep.txt".to_owned(), b"kept".to_vec())])
        .collect();
    let r = api.send(
        reqwest::Method::POST,
        &format!("/v1/volumes/{VOL}/files/batch?path=/m"),
        &[("content-type", "application/x-tar")],
        Some(tar_of(&old)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(api);
    let mut current = expected(&old);
    // 20 points: staging under way, then publishing (the batch's new files appearing one by
    // one in the tree), then answered.
    let points: Vec<Point> = std::iter::once(Point::Staged(1))
        .chain((1..=8).map(|k| Point::Staged(FILES * k / 8)))
        .chain((0..10).map(|k| Point::Published(old.len() + 1 + (FILES / 2 - 10) * k / 9)))
        .chain([Point::Answered])
        .collect();
    assert_eq!(points.len(), 20);
    for (round, &point) in points.iter().enumerate() {
        let files = batch_files(round);
        let op = batch_request(srv.port, "/m", tar_of(&files));
        let data = srv.volume_data(&id);
        let m = data.join("m");
        let answered = kill_at(&mut srv, &id, point, op, &m);
        let got = files_below(&m);
        let mut after = current.clone();
        after.extend(expected(&files));
        let all = got == after;
        assert!(
            all || got == current,
            "round {round} ({point:?}): the tree is neither before nor after the batch \
             ({} files, {} of them the batch's)",
            got.len(),
            files.iter().filter(|(p, c)| got.get(p) == Some(c)).count()
        );
        assert!(
            !answered || all,
            "round {round}: an answered batch is durable"
        );
        eprintln!("merge, round {round} ({point:?}): all={all}");
        if all {
            current = after;
        }
        check_volume(&srv, &id, &format!("round {round}"));
    }
    srv.assert_no_server_faults();
}

#[test]
fn kill_9_during_recursive_copies_leaves_all_or_none() {
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    let files = batch_files(0);
    let r = api.send(
        reqwest::Method::POST,
        &format!("/v1/volumes/{VOL}/files/batch?path=/src"),
        &[("content-type", "application/x-tar")],
        Some(tar_of(&files)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(api);
    // 20 points: copying into staging under way, copied (publishing: one rename), answered.
    let points: Vec<Point> = std::iter::once(Point::Staged(1))
        .chain((1..=15).map(|k| Point::Staged(FILES * k / 16)))
        .chain([
            Point::Staged(FILES - 1),
            Point::Staged(FILES),
            Point::Staged(FILES),
        ])
        .chain([Point::Answered])
        .collect();
    assert_eq!(points.len(), 20);
    for (round, &point) in points.iter().enumerate() {
        let dst = format!("/copy{round}");
        let op = copy_request(srv.port, "/src", &dst);
        let data = srv.volume_data(&id);
        let answered = kill_at(&mut srv, &id, point, op, &data);
        let got = files_below(&data.join(&dst[1..]));
        let all = got == expected(&files);
        assert!(
            all || (got.is_empty() && !data.join(&dst[1..]).exists()),
            "round {round} ({point:?}): {} of {FILES} files copied",
            got.len()
        );
        assert!(
            !answered || all,
            "round {round}: an answered copy is durable"
        );
        eprintln!("copy, round {round} ({point:?}): all={all}");
        check_volume(&srv, &id, &format!("round {round}"));
    }
    srv.assert_no_server_faults();
}

fn set_cap(api: &Api, cap: u64) {
    api.put_json(
        "/v1/admin/tenants/default/volume-cap",
        &json!({ "cap_bytes": cap }),
    )
    .expect(200, "set the cap");
}

fn tus_create(api: &Api, path: &str, length: u64) -> harness::Resp {
    let meta = format!("path {}", base64(path.as_bytes()));
    api.send(
        reqwest::Method::POST,
        &format!("/v1/volumes/{VOL}/uploads"),
        &[
            ("tus-resumable", "1.0.0"),
            ("upload-length", &length.to_string()),
            ("upload-metadata", &meta),
        ],
        None,
    )
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Streams `body` as the batch (or PATCH) body while measuring what staging holds; returns
/// the answer's status (none when the server refused early and the connection was reset
/// before the answer could be read) and the most staging held.
fn staged_peak(srv: &Server, id: &str, head: String, body: Vec<u8>) -> (Option<u16>, u64) {
    let op = send_raw(srv.port, head, body);
    let staging: PathBuf = srv.volume_staging(id);
    let mut peak = 0;
    while !op.is_finished() {
        peak = peak.max(bytes_below(&staging));
        std::thread::yield_now();
    }
    (op.join().unwrap().map(|r| r.status), peak)
}

/// On both backends: a batch far past the cap is refused having staged at most the cap plus
/// the slack; a tus upload cannot reserve past the cap.
fn staging_stays_within_the_cap(flags: &[&str]) {
    let srv = Server::start_with_flags(flags);
    let api = srv.api();
    let cap = 8 * MIB;
    set_cap(&api, cap);
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    // Four files of 1 MiB, then one of 32 MiB: four times the cap in one entry.
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            let size = if i == 4 { 32 * MIB } else { MIB };
            (format!("big/{i}.bin"), pseudo_random(i, size as usize))
        })
        .collect();
    let tar = tar_of(&files);
    let head = format!(
        "POST /v1/volumes/{VOL}/files/batch?path=/b HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/x-tar\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    );
    let (status, peak) = staged_peak(&srv, &id, head, tar);
    assert!(
        matches!(status, None | Some(507)),
        "a batch past the cap is quota_exceeded: {status:?}"
    );
    assert!(
        peak <= cap + SLACK,
        "staging held {peak} bytes for a cap of {cap}"
    );
    assert_eq!(api.usage(VOL), (0, 0), "nothing of the batch landed");
    // Upload bytes count against the cap as they arrive: two uploads of 5 and 6 MiB may
    // start under an 8 MiB cap, but the second cannot store what the first left no room for.
    let first = tus_create(&api, "/u1", 6 * MIB).expect(201, "first upload");
    let second = tus_create(&api, "/u2", 5 * MIB).expect(201, "second upload");
    let patch_head = |r: &harness::Resp| {
        format!(
            "PATCH {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
             Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            r.headers["location"].to_str().unwrap(),
            5 * MIB
        )
    };
    let body = pseudo_random(99, 5 * MIB as usize);
    let (status, peak) = staged_peak(&srv, &id, patch_head(&first), body.clone());
    assert_eq!(status, Some(204));
    assert!(peak <= cap + SLACK, "staging held {peak} bytes");
    let (status, peak) = staged_peak(&srv, &id, patch_head(&second), body);
    assert!(
        matches!(status, None | Some(507)),
        "no room is left for the second upload's bytes: {status:?}"
    );
    assert!(
        peak <= cap + SLACK,
        "staging held {peak} bytes for a cap of {cap}"
    );
    assert_eq!(api.volume(VOL)["pending_upload_bytes"], 5 * MIB);
    srv.assert_no_server_faults();
}

#[test]
fn batches_and_uploads_never_stage_more_than_the_cap_on_the_directory_backend() {
    staging_stays_within_the_cap(&["--volume-backend", "directory"]);
}

#[test]
fn batches_and_uploads_never_stage_more_than_the_cap_on_the_loop_backend() {
    staging_stays_within_the_cap(&["--volume-backend", "loop"]);
}

/// On both backends: an abandoned upload shows as `pending_upload_bytes` and in the uploads
/// list; a write it leaves no room for says why; cancelled, a 5-byte write succeeds.
/// SEMANTICS: Pending uploads
fn an_abandoned_upload_is_shown_and_cancelled(flags: &[&str]) {
    let srv = Server::start_with_flags(flags);
    let api = srv.api();
    let cap = 8 * MIB;
    set_cap(&api, cap);
    api.create_volume(VOL);
    let r = tus_create(&api, "/abandoned.bin", cap).expect(201, "an upload of the whole cap");
    let location = r.headers["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    // All but 2 bytes arrive, then the client goes away.
    let arrived = cap - 2;
    api.send(
        reqwest::Method::PATCH,
        &location,
        &[
            ("tus-resumable", "1.0.0"),
            ("upload-offset", "0"),
            ("content-type", "application/offset+octet-stream"),
        ],
        Some(vec![7u8; arrived as usize]),
    )
    .expect(204, "most of the upload");
    let vol = api.volume(VOL);
    assert_eq!(vol["pending_upload_bytes"], arrived, "{vol}");
    assert_eq!(vol["used_bytes"], 0);
    let out = srv.cli(&["volume", "uploads", VOL, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = &doc["uploads"];
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["path"], "/abandoned.bin");
    assert_eq!(list[0]["offset"], arrived);
    assert_eq!(list[0]["length"], cap);
    assert!(list[0]["expires_at"].is_string());
    let r = api.write(VOL, "/small.txt", "hello");
    assert_eq!(r.status, 507, "{}", r.text());
    let msg = r.text();
    assert!(
        msg.contains("pending uploads") && msg.contains(&arrived.to_string()),
        "the refusal names the pending bytes: {msg}"
    );
    let out = srv.cli(&["volume", "uploads", "cancel", VOL, &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(api.volume(VOL)["pending_upload_bytes"], 0);
    api.write(VOL, "/small.txt", "hello")
        .expect(200, "a 5-byte write after the cancel");
    let out = srv.cli(&["volume", "uploads", VOL, "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        json!({"uploads": []})
    );
    srv.assert_no_server_faults();
}

#[test]
fn an_abandoned_upload_is_shown_and_cancelled_on_the_directory_backend() {
    an_abandoned_upload_is_shown_and_cancelled(&["--volume-backend", "directory"]);
}

#[test]
fn an_abandoned_upload_is_shown_and_cancelled_on_the_loop_backend() {
    an_abandoned_upload_is_shown_and_cancelled(&["--volume-backend", "loop"]);
}

/// The checkpoint interval of a long PATCH (crates/volumes/src/uploads.rs `CHECKPOINT_STEP`).
const CHECKPOINT: u64 = 16 * MIB;

#[test]
fn a_crash_32_mib_into_one_long_patch_resumes_near_where_it_stopped() {
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let vid = api.volume_id(VOL);
    let size = 64 * MIB;
    let content = pseudo_random(12, size as usize);
    let r = tus_create(&api, "/long.bin", size).expect(201, "create");
    let location = r.headers["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    drop(api);
    // One PATCH of the whole file; the server dies once 40 MiB are in its data file.
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {size}\r\n\r\n"
    );
    let sent = 40 * MIB;
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&content[..sent as usize]).unwrap();
    let data = srv
        .volume_staging(&vid)
        .join("uploads")
        .join(format!("{id}.data"));
    let arrived = {
        let mut got = 0;
        assert!(
            wait_for(|| {
                got = std::fs::metadata(&data).map_or(0, |m| m.len());
                got >= sent - MIB
            }),
            "the data file never grew"
        );
        got
    };
    assert!(arrived >= 32 * MIB);
    srv.kill9();
    drop(s);
    srv.start_again();
    let api = Api::new(&srv.url, Some(ADMIN_KEY));
    let r = api.send(
        reqwest::Method::HEAD,
        &location,
        &[("tus-resumable", "1.0.0")],
        None,
    );
    assert_eq!(r.status, 200);
    let offset: u64 = r.headers["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        offset > 0 && offset + CHECKPOINT >= arrived && offset <= sent,
        "resumes at {offset} after {arrived} bytes arrived"
    );
    api.send(
        reqwest::Method::PATCH,
        &location,
        &[
            ("tus-resumable", "1.0.0"),
            ("upload-offset", &offset.to_string()),
            ("content-type", "application/offset+octet-stream"),
        ],
        Some(content[offset as usize..].to_vec()),
    )
    .expect(204, "the rest");
    let got = api.read(VOL, "/long.bin").expect(200, "read").body;
    assert_eq!(
        hex(&sha2::Sha256::digest(&got)),
        hex(&sha2::Sha256::digest(&content)),
        "the final sha256"
    );
    check_volume(&srv, &vid, "after the upload");
    srv.assert_no_server_faults();
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
