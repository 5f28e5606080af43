//! "Writes are atomic: a reader sees the old or the new content, never a torn file, and a crash
//! never leaves a partial file at the target path. A write that returned success is durable."
//!
//! `kill -9` the server at several points of a large streamed write; after a restart on the same
//! data dir the target holds exactly the old or exactly the new content (or, for a new file,
//! nothing or the new content), `used_bytes`/`file_count` match the regular files on disk, and
//! staging is empty.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::{dir_names, disk_usage, parse_response, pseudo_random, Api, Server, ADMIN_KEY};

const VOL: &str = "crashy";
const SIZE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;

/// Where the server dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// After this many body bytes were sent (the server had time to take them in).
    After(usize),
    /// This many milliseconds after the last body byte was sent, without waiting for an
    /// answer: the server is somewhere in fsync, rename or answering.
    AfterBody(u64),
    /// After the server answered.
    AfterAnswer,
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
}

/// Waits (up to 30 s) until a temp file of a write in `staging` holds at least `min` bytes;
/// returns its size.
fn wait_for_staged_bytes(staging: &std::path::Path, min: usize) -> Option<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let biggest = std::fs::read_dir(staging)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .max();
        if let Some(size) = biggest.filter(|&s| s >= min as u64) {
            std::thread::sleep(Duration::from_millis(50));
            return Some(size);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Sets up a volume with two other files and (if `initial`) the target, then runs one crash
/// round per kill point. Returns which rounds ended with the new content.
fn crash_rounds(
    target: &str,
    initial: Option<&[u8]>,
    points: &[KillPoint],
    seed: u64,
) -> Vec<bool> {
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    api.write(VOL, "/other/a.txt", "aaaa").expect(200, "write");
    api.write(VOL, "/other/deep/b.bin", pseudo_random(seed, 300_000))
        .expect(200, "write");
    if let Some(old) = initial {
        api.write(VOL, target, old.to_vec())
            .expect(200, "write old content");
    }
    drop(api);

    let mut current: Option<Vec<u8>> = initial.map(<[u8]>::to_vec);
    let mut outcomes = Vec::new();
    for (round, &point) in points.iter().enumerate() {
        let new = pseudo_random(seed * 1000 + round as u64, SIZE);
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let head = format!(
            "PUT /v1/volumes/{VOL}/files/content?path={target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {SIZE}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("send head");
        let send_upto = match point {
            KillPoint::After(n) => n,
            KillPoint::AfterBody(_) | KillPoint::AfterAnswer => SIZE,
        };
        for chunk in new[..send_upto].chunks(CHUNK) {
            s.write_all(chunk).expect("send body");
        }
        match point {
            KillPoint::After(n) => {
                // Wait until the server has taken in (nearly) all that was sent: the temp file
                // of the write is in staging and has grown, so the kill lands mid-write.
                let staged =
                    wait_for_staged_bytes(&srv.volume_staging(&id), n.saturating_sub(8 << 20));
                assert!(
                    staged.is_some(),
                    "round {round}: no write in progress in staging at {point:?}"
                );
            }
            KillPoint::AfterBody(ms) => std::thread::sleep(Duration::from_millis(ms)),
            KillPoint::AfterAnswer => {
                let mut raw = Vec::new();
                s.read_to_end(&mut raw).expect("read answer");
                let r = parse_response(&raw).expect("answer");
                assert_eq!(
                    r.status,
                    200,
                    "round {round}: the write should succeed: {}",
                    r.text()
                );
            }
        }
        srv.kill9();
        drop(s);
        srv.start_again();
        let api = Api::new(&srv.url, Some(ADMIN_KEY));

        let on_disk = std::fs::read(srv.volume_data(&id).join(&target[1..])).ok();
        let read = api.read(VOL, target);
        let via_api = (read.status == 200).then_some(read.body.clone());
        assert!(
            read.status == 200 || read.error_code().as_deref() == Some("not_found"),
            "round {round}: read after restart: {} {}",
            read.status,
            read.text()
        );
        assert!(
            on_disk == via_api,
            "round {round}: the API and the disk disagree"
        );
        let is_new = on_disk.as_deref() == Some(&new[..]);
        let is_old = on_disk == current;
        assert!(
            is_old || is_new,
            "round {round} ({point:?}): the target is torn: {:?} bytes; first difference from the old content at {:?}, from the new at {:?}",
            on_disk.as_ref().map(Vec::len),
            on_disk.as_deref().zip(current.as_deref()).and_then(|(a, b)| first_difference(a, b)),
            on_disk.as_deref().and_then(|a| first_difference(a, &new)),
        );
        match point {
            KillPoint::After(_) => assert!(
                is_old,
                "round {round}: an incomplete body must not replace the file"
            ),
            KillPoint::AfterAnswer => assert!(
                is_new,
                "round {round}: a write that returned success is durable"
            ),
            KillPoint::AfterBody(_) => {}
        }
        eprintln!(
            "round {round} ({point:?}): {}",
            if is_new { "new content" } else { "old content" }
        );
        if is_new {
            current = Some(new);
        }
        outcomes.push(is_new);

        assert!(
            dir_names(&srv.volume_staging(&id)).is_empty(),
            "round {round}: staging not emptied at restart: {:?}",
            dir_names(&srv.volume_staging(&id))
        );
        let data = srv.volume_data(&id);
        assert_eq!(
            api.usage(VOL),
            disk_usage(&data),
            "round {round}: (used_bytes, file_count) vs the data dir"
        );
        let listed = api.list(VOL, "/", true).expect(200, "list").json();
        let files: Vec<&str> = listed["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["type"] == "file")
            .filter_map(|e| e["path"].as_str())
            .collect();
        let mut want = vec!["/other/a.txt", "/other/deep/b.bin"];
        if current.is_some() {
            want.push(target);
            want.sort();
        }
        assert_eq!(files, want, "round {round}: exactly these files");
        assert_eq!(
            api.read(VOL, "/other/a.txt").expect(200, "read").body,
            b"aaaa"
        );
    }
    outcomes
}

#[test]
fn kill_9_during_a_streamed_overwrite_leaves_old_or_new_content_and_exact_usage() {
    crash_rounds(
        "/big/target.bin",
        Some(b"old content"),
        &[
            KillPoint::After(0),
            KillPoint::After(CHUNK),
            KillPoint::After(SIZE / 2),
            KillPoint::After(SIZE - 1),
            KillPoint::AfterBody(0),
            KillPoint::AfterBody(5),
            KillPoint::AfterBody(25),
            KillPoint::AfterBody(100),
            KillPoint::AfterAnswer,
        ],
        1,
    );
}

#[test]
fn kill_9_during_a_streamed_write_of_a_new_file_leaves_nothing_or_all_of_it() {
    let outcomes = crash_rounds(
        "/fresh/new.bin",
        None,
        &[
            KillPoint::After(SIZE / 3),
            KillPoint::AfterBody(0),
            KillPoint::AfterBody(10),
            KillPoint::AfterAnswer,
        ],
        2,
    );
    assert_eq!(outcomes.last(), Some(&true));
}

/// One durable write of `body` at `path` on its own connection; `Some(status)`, or `None`
/// when the server was gone before it answered.
fn put_once(port: u16, path: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let head = format!(
        "PUT /v1/volumes/{VOL}/files/content?path={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    parse_response(&raw).ok().map(|r| r.status)
}

/// Group commit (SEMANTICS.md "Durability"): writers of one volume share directory fsyncs, and
/// each still answers only once its own rename is durable. Eight writers of small files in
/// three directories; `kill -9` while they run; after a restart every acknowledged write is
/// there with its content, every other file is whole, and usage matches the disk. (A kill
/// keeps the page cache: this holds the answer-after-rename order and the bookkeeping of the
/// rounds; that the fsync reaches the disk is the kernel's part.)
// SEMANTICS: Group commit
#[test]
fn kill_9_under_concurrent_small_writers_keeps_every_acknowledged_write() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    const WRITERS: usize = 8;
    const ACKED_BEFORE_KILL: usize = 200;
    let mut srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    drop(api);
    let content = |w: usize, n: usize| format!("writer {w} file {n} ").repeat(6).into_bytes();
    let acked = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let port = srv.port;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acked, count) = (acked.clone(), count.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    let path = format!("/d{}/w{w}-{n}.txt", w % 3);
                    let body = content(w, n);
                    match put_once(port, &path, &body) {
                        Some(200) => {
                            acked.lock().unwrap().push((path, body));
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(s) => panic!("writer {w}: {path}: status {s}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    let start = std::time::Instant::now();
    while count.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} writes were acknowledged",
            count.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.kill9();
    for w in writers {
        w.join().expect("writer");
    }
    srv.start_again();
    let api = Api::new(&srv.url, Some(ADMIN_KEY));
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);
    let data = srv.volume_data(&id);
    for (path, body) in &acked {
        let r = api.read(VOL, path);
        assert_eq!(r.status, 200, "acknowledged {path} is gone after kill -9");
        assert_eq!(&r.body, body, "acknowledged {path} changed");
    }
    // Every file there is whole: an acknowledged one, or one whose answer the kill cut off.
    let mut on_disk = 0;
    for d in 0..3 {
        for name in dir_names(&data.join(format!("d{d}"))) {
            let name = name.to_string_lossy().into_owned();
            let (w, n) = name
                .trim_end_matches(".txt")
                .trim_start_matches('w')
                .split_once('-')
                .map(|(w, n)| (w.parse().unwrap(), n.parse().unwrap()))
                .unwrap_or_else(|| panic!("unexpected file {name}"));
            let got = std::fs::read(data.join(format!("d{d}")).join(&name)).unwrap();
            assert_eq!(got, content(w, n), "{name} is torn");
            on_disk += 1;
        }
    }
    assert!(on_disk >= acked.len() && on_disk <= acked.len() + WRITERS);
    assert!(
        dir_names(&srv.volume_staging(&id)).is_empty(),
        "staging not emptied at restart"
    );
    assert_eq!(api.usage(VOL), disk_usage(&data), "usage vs the data dir");
}
