//! "No request can reach outside its volume: … not by a symlink swapped in while the request
//! runs."
//!
//! A thread keeps swapping, with `renameat2(RENAME_EXCHANGE)`, a directory inside the volume
//! (holding `secret.txt` = "inside") with symlinks (also inside the volume) to a directory
//! outside it (holding another `secret.txt`). Meanwhile 10,000 requests read, stat, list, write,
//! remove and mkdir under the swapped name. No answer may carry anything from outside, nothing
//! outside may change, no answer may be a 500, and usage stays exact.

mod harness;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use harness::{contains, dir_names, disk_usage, enc, snapshot, Server, ADMIN_KEY};
use rustix::fs::{Mode, OFlags, RenameFlags};

const VOL: &str = "racing";
const OUTSIDE_SECRET: &str = "OUTSIDE-SECRET-5d1e0b7a";
const OUTSIDE_X: &str = "OUTSIDE-X-CONTENT-88f2";
const OUTSIDE_ONLY_NAME: &str = "outside-only-name.txt";
const REQUESTS: usize = 10_000;
const CONCURRENCY: usize = 8;

/// Swaps `race` with one of the other names, at random, until told to stop.
fn swapper(data: OwnedFd, stop: Arc<AtomicBool>, swaps: Arc<AtomicU64>) {
    let others = ["link_abs", "link_rel", "link_abs2"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let other = others[(x % others.len() as u64) as usize];
        rustix::fs::renameat_with(&data, "race", &data, other, RenameFlags::EXCHANGE)
            .expect("RENAME_EXCHANGE");
        swaps.fetch_add(1, Ordering::Relaxed);
        if x.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    ReadSecret,
    ReadX,
    Stat,
    ListR,
    WriteNew,
    WriteX,
    RemoveX,
    Mkdir,
    RemoveD,
}

const MIX: [Kind; 10] = [
    Kind::ReadSecret,
    Kind::ReadSecret,
    Kind::ReadX,
    Kind::Stat,
    Kind::ListR,
    Kind::WriteNew,
    Kind::WriteX,
    Kind::RemoveX,
    Kind::Mkdir,
    Kind::RemoveD,
];

#[test]
fn swapping_a_directory_for_an_outside_symlink_mid_request_never_escapes() {
    let srv = Server::start();
    let api = srv.api();
    api.create_volume(VOL);
    let id = api.volume_id(VOL);
    api.write(VOL, "/race/secret.txt", "inside")
        .expect(200, "write inside secret");
    api.write(VOL, "/race/x", "inside-x").expect(200, "write x");

    // Outside the volume: the decoy directory, with names the requests use.
    let outside = srv.root().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir outside");
    std::fs::write(outside.join("secret.txt"), OUTSIDE_SECRET).expect("write");
    std::fs::write(outside.join("x"), OUTSIDE_X).expect("write");
    std::fs::write(outside.join(OUTSIDE_ONLY_NAME), OUTSIDE_SECRET).expect("write");
    let before = snapshot(&outside);

    let data_path = srv.volume_data(&id);
    std::os::unix::fs::symlink(&outside, data_path.join("link_abs")).expect("symlink");
    std::os::unix::fs::symlink("../../../../outside", data_path.join("link_rel")).expect("symlink");
    std::os::unix::fs::symlink(
        format!("/proc/self/root{}", outside.display()),
        data_path.join("link_abs2"),
    )
    .expect("symlink");
    assert_eq!(
        std::fs::read_to_string(data_path.join("link_rel/secret.txt")).expect("link works"),
        OUTSIDE_SECRET
    );

    let data = rustix::fs::open(
        &data_path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open data dir");
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swap_thread = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || swapper(data, stop, swaps))
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = srv.url.clone();
    let results: Vec<(Kind, u16, Vec<u8>)> = rt.block_on(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let http = http.clone();
                let base = base.clone();
                async move {
                    let kind = MIX[(i * 7 + i / MIX.len()) % MIX.len()];
                    let files = format!("{base}/v1/volumes/{VOL}/files");
                    let req = match kind {
                        Kind::ReadSecret => {
                            http.get(format!("{files}/content?path={}", enc("/race/secret.txt")))
                        }
                        Kind::ReadX => http.get(format!("{files}/content?path={}", enc("/race/x"))),
                        Kind::Stat => {
                            http.get(format!("{files}/stat?path={}", enc("/race/secret.txt")))
                        }
                        Kind::ListR => {
                            http.get(format!("{files}/list?path={}&recursive=true", enc("/race")))
                        }
                        Kind::WriteNew => http
                            .put(format!("{files}/content?path={}", enc("/race/new.txt")))
                            .body(format!("new-{i}")),
                        Kind::WriteX => http
                            .put(format!("{files}/content?path={}", enc("/race/x")))
                            .body("inside-x"),
                        Kind::RemoveX => http.delete(format!("{files}?path={}", enc("/race/x"))),
                        Kind::Mkdir => http
                            .post(format!("{files}/mkdir"))
                            .json(&serde_json::json!({"path": "/race/d", "parents": i % 2 == 0})),
                        Kind::RemoveD => {
                            http.delete(format!("{files}?path={}&recursive=true", enc("/race/d")))
                        }
                    };
                    let resp = req
                        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("request {i} ({kind:?}): {e}"));
                    let status = resp.status().as_u16();
                    let body = resp
                        .bytes()
                        .await
                        .unwrap_or_else(|e| panic!("body {i}: {e}"))
                        .to_vec();
                    (kind, status, body)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    });
    stop.store(true, Ordering::Relaxed);
    swap_thread.join().expect("swapper");
    let swaps = swaps.load(Ordering::Relaxed);

    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for (kind, status, body) in &results {
        let text = String::from_utf8_lossy(body);
        assert_ne!(
            *status,
            500,
            "{kind:?} answered 500: {text}\nserver log:\n{}",
            srv.log_tail(30)
        );
        for needle in [OUTSIDE_SECRET, OUTSIDE_X, OUTSIDE_ONLY_NAME] {
            assert!(
                !contains(body, needle.as_bytes()),
                "{kind:?} ({status}) leaked {needle:?}: {text}"
            );
        }
        let allowed: &[u16] = match kind {
            Kind::ReadSecret | Kind::ReadX | Kind::Stat | Kind::ListR => &[200, 400, 403, 404],
            Kind::WriteNew | Kind::WriteX => &[200, 400, 403, 404],
            Kind::RemoveX | Kind::RemoveD => &[204, 400, 403, 404],
            Kind::Mkdir => &[200, 400, 403, 404, 409],
        };
        assert!(
            allowed.contains(status),
            "{kind:?} answered {status}: {text}"
        );
        if *status == 200 {
            match kind {
                Kind::ReadSecret => {
                    assert_eq!(text, "inside", "a successful read sees the inside file")
                }
                Kind::ReadX => assert_eq!(text, "inside-x"),
                _ => {}
            }
        }
        *by_outcome.entry(format!("{kind:?} {status}")).or_default() += 1;
    }
    eprintln!("{swaps} swaps; outcomes: {by_outcome:?}");
    assert_eq!(results.len(), REQUESTS);
    assert!(
        swaps > 1000,
        "the swapper should have run throughout ({swaps} swaps)"
    );
    // Both states were hit: the race was real.
    assert!(
        by_outcome.get("ReadSecret 200").copied().unwrap_or(0) > 0,
        "{by_outcome:?}"
    );
    assert!(
        by_outcome.get("ReadSecret 403").copied().unwrap_or(0) > 0,
        "{by_outcome:?}"
    );

    // Nothing outside changed, was created or removed.
    assert_eq!(
        snapshot(&outside),
        before,
        "the directory outside the volume changed"
    );
    assert!(
        srv.healthy(),
        "server unhealthy; log:\n{}",
        srv.log_tail(30)
    );
    // The volume is consistent: staging idle and empty, usage exact.
    assert!(
        dir_names(&srv.volume_staging(&id)).is_empty(),
        "staging is not empty"
    );
    assert_eq!(
        api.usage(VOL),
        disk_usage(&data_path),
        "used_bytes/file_count vs the data dir"
    );
    // The real directory still holds the inside secret, wherever the last swap left it.
    let real = ["race", "link_abs", "link_rel", "link_abs2"]
        .iter()
        .map(|n| data_path.join(n))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .expect("the real directory");
    assert_eq!(
        std::fs::read_to_string(real.join("secret.txt")).expect("inside secret"),
        "inside"
    );
}
