//! Host budgets (issue 12): a server's open files and inotify instances are bounded however
//! many volumes a tenant makes or watches, and one tenant using them up never breaks another.
//!
//! - Under a 256-fd limit (soft and hard), one tenant makes 300 volumes and writes and reads
//!   each while another tenant keeps working; then the server restarts under the same limit
//!   and every volume reads back. On the default backend and on `directory`.
//! - 200 watched volumes hold one inotify instance, and a change made on disk in the last one
//!   reaches its watcher.
//! - A tenant holds at most 1,024 watch streams on a server; one more is `resource_exhausted`,
//!   and another tenant still watches.

mod harness;

use std::time::Duration;

use futures::StreamExt;
use harness::{Api, Resp, Server};
use nullspace_client::{Client, WatchEvent, WatchOptions, WriteOptions};
use nullspace_core::{ErrorCode, Labels, TenantName, VolumeName, VolumePath};
use serde_json::json;

const NOFILE: u64 = 256;
const VOLUMES: usize = 300;

/// Fails on any 5xx (and on any status but `want`), naming what was asked.
#[track_caller]
fn ok(r: Resp, want: u16, what: &str) -> Resp {
    assert!(
        r.status < 500,
        "{what}: {} {} (no 5xx under a low fd limit)",
        r.status,
        r.text()
    );
    r.expect(want, what)
}

/// The other tenant's round: a new file in its volume, read back, and its listing.
fn tenant_b_works(b: &Api, round: usize) {
    let path = format!("/b{round}.txt");
    let body = format!("b says {round}");
    ok(b.write("bvol", &path, body.clone()), 200, "tenant B writes");
    let r = ok(b.read("bvol", &path), 200, "tenant B reads");
    assert_eq!(r.text(), body);
    ok(b.list("bvol", "/", false), 200, "tenant B lists");
    if round.is_multiple_of(100) {
        ok(
            b.post_json("/v1/volumes", &json!({ "name": format!("b{round}") })),
            201,
            "tenant B creates a volume",
        );
    }
}

fn many_volumes_under_a_low_fd_limit(env: &[(&str, &str)]) {
    let mut s = Server::start_with_fd_limit(NOFILE, env);
    let a = s.api();
    ok(
        a.put_json(
            "/v1/admin/tenants/default/limits",
            &json!({ "max_volumes": VOLUMES + 10 }),
        ),
        200,
        "raise tenant A's max_volumes",
    );
    // Small volumes: 300 loop images stay cheap.
    ok(
        a.put_json(
            "/v1/admin/tenants/default/volume-cap",
            &json!({ "cap_bytes": 64 << 20 }),
        ),
        200,
        "tenant A's volume cap",
    );
    let created = ok(
        a.post_json("/v1/admin/tenants", &json!({ "name": "other" })),
        201,
        "create tenant B",
    )
    .json();
    let b_key = created["key"].as_str().expect("key").to_owned();
    let b = a.with_key(Some(&b_key));
    ok(
        b.post_json("/v1/volumes", &json!({ "name": "bvol" })),
        201,
        "tenant B's volume",
    );
    for i in 0..VOLUMES {
        let name = format!("v{i}");
        ok(
            a.post_json("/v1/volumes", &json!({ "name": name })),
            201,
            &format!("create {name}"),
        );
        ok(
            a.write(&name, "/f.txt", format!("volume {i}")),
            200,
            &format!("write to {name}"),
        );
        let r = ok(a.read(&name, "/f.txt"), 200, &format!("read {name}"));
        assert_eq!(r.text(), format!("volume {i}"));
        if i.is_multiple_of(10) {
            tenant_b_works(&b, i);
        }
    }
    // The earliest volumes were closed to make room; they open again.
    for i in [0, 1, VOLUMES / 2] {
        let r = ok(
            a.read(&format!("v{i}"), "/f.txt"),
            200,
            "read an early volume",
        );
        assert_eq!(r.text(), format!("volume {i}"));
    }
    let listed = ok(a.get("/v1/volumes"), 200, "list volumes").json();
    let n = listed["volumes"].as_array().map_or(0, Vec::len);
    assert_eq!(n, VOLUMES, "every volume is listed");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", s.pid().unwrap()))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    assert!((fds.len() as u64) < NOFILE, "{} fds open", fds.len());
    // A mounted loop volume holds no fd of its device.
    assert!(
        !fds.iter().any(|t| t.starts_with("/dev/loop")),
        "loop devices held open: {fds:?}"
    );

    s.restart();
    // New clients: the old ones' pooled connections went with the old process.
    let (a, b) = (s.api(), s.api().with_key(Some(&b_key)));
    assert!(
        s.log().contains("open volume handles bounded"),
        "the budget is logged"
    );
    for i in 0..VOLUMES {
        let r = ok(
            a.read(&format!("v{i}"), "/f.txt"),
            200,
            &format!("read v{i} after the restart"),
        );
        assert_eq!(r.text(), format!("volume {i}"));
        if i.is_multiple_of(50) {
            tenant_b_works(&b, VOLUMES + i);
        }
    }
    let (used, files) = a.usage("v7");
    assert_eq!((used, files), ("volume 7".len() as u64, 1));
}

#[test]
fn three_hundred_volumes_under_a_256_fd_limit_and_another_tenant_keeps_working() {
    many_volumes_under_a_low_fd_limit(&[]);
}

#[test]
fn three_hundred_directory_volumes_under_a_256_fd_limit_and_another_tenant_keeps_working() {
    many_volumes_under_a_low_fd_limit(&[("NULLSPACE_VOLUME_BACKEND", "directory")]);
}

/// The server's inotify instances (from /proc).
fn inotify_instances(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify")
        })
        .count()
}

const WATCHED: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_watched_volumes_hold_one_inotify_instance() {
    let s = Server::start();
    let c = Client::new(&s.url, &s.key).unwrap();
    let pid = s.pid().unwrap();
    let mut streams = Vec::new();
    let mut ids = Vec::new();
    for i in 0..WATCHED {
        let v = VolumeName::parse(&format!("w{i}")).unwrap();
        ids.push(
            c.create_volume(&v, &Labels::new(), false)
                .await
                .unwrap()
                .0
                .id,
        );
        let events = c
            .watch(&v, &VolumePath::root(), &WatchOptions::default())
            .await
            .unwrap();
        streams.push(events);
    }
    assert_eq!(
        inotify_instances(pid),
        1,
        "one instance for {WATCHED} watches"
    );
    // Made on disk, as sandbox code would: only the file-system source can see it.
    std::fs::write(
        s.volume_data(&ids[WATCHED - 1]).join("from-disk.txt"),
        b"hello",
    )
    .unwrap();
    let last = streams.last_mut().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), last.next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("no error");
    match got {
        WatchEvent::Change(e) => assert_eq!(e.path, "/from-disk.txt"),
        other => panic!("expected a change, got {other:?}"),
    }
    // The first volume's watch sees its own change through the same instance.
    std::fs::create_dir(s.volume_data(&ids[0]).join("made-here")).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), streams[0].next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("no error");
    match got {
        WatchEvent::Change(e) => assert_eq!((e.path.as_str(), e.is_dir), ("/made-here", true)),
        other => panic!("expected a change, got {other:?}"),
    }
    assert_eq!(inotify_instances(pid), 1);
}

/// `MAX_WATCHES_PER_TENANT` (crates/node/src/volumes.rs).
const STREAMS_PER_TENANT: usize = 1_024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_watch_streams_is_resource_exhausted_and_another_still_watches() {
    let s = Server::start();
    let c = Client::new(&s.url, &s.key).unwrap();
    let v = VolumeName::parse("w").unwrap();
    c.create_volume(&v, &Labels::new(), false).await.unwrap();
    let root = VolumePath::parse("/").unwrap();
    let mut streams = Vec::new();
    for _ in 0..STREAMS_PER_TENANT {
        streams.push(c.watch(&v, &root, &WatchOptions::default()).await.unwrap());
    }
    let Err(e) = c.watch(&v, &root, &WatchOptions::default()).await else {
        panic!("one stream past the bound is refused");
    };
    assert_eq!(e.code, ErrorCode::ResourceExhausted, "{e:?}");
    // Another tenant is not affected.
    let made = c
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    let acme = Client::new(&s.url, &made.key).unwrap();
    acme.create_volume(&v, &Labels::new(), false).await.unwrap();
    let mut theirs = acme
        .watch(&v, &root, &WatchOptions::default())
        .await
        .unwrap();
    let x = VolumePath::parse("/x").unwrap();
    acme.write_bytes(&v, &x, b"x".to_vec(), &WriteOptions::default())
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), theirs.next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("no error");
    assert!(matches!(got, WatchEvent::Change(e) if e.path == "/x"));
    // A stream that ends gives its slot back.
    drop(streams.pop());
    let mut again = None;
    for _ in 0..300 {
        match c.watch(&v, &root, &WatchOptions::default()).await {
            Ok(w) => {
                again = Some(w);
                break;
            }
            Err(e) if e.code == ErrorCode::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(again.is_some(), "a closed stream's slot is given back");
}
