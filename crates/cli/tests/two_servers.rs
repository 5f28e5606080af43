//! Several servers on one PostgreSQL database and one data root (issue 7): two real server
//! processes on different ports, a fresh database, one `--data-dir`.
//!
//! - every tenant, key and volume is visible from each server (and a URL signed by one is
//!   honoured by the other);
//! - concurrent creates of one name through the two servers leave exactly one volume (and one
//!   volume directory); the other gets `already_exists`;
//! - an upload started through one server resumes through the other; a write in flight through
//!   one server survives the other starting, and a crashed server's leftovers are cleaned
//!   without touching a live server's;
//! - a watch through one server sees changes made through the other; a broken link between the
//!   servers is reported (overflow, then a gap), never silent;
//! - the volume cap holds under concurrent writers on both servers, and `used_bytes` from
//!   either server is the real total.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::StreamExt;
use harness::{
    dir_names, disk_usage, parse_response, pseudo_random, Api, Cluster, Resp, ADMIN_KEY,
};
use nullspace_client::{ChangeKind, Client, WatchEvent, WatchOptions};
use nullspace_core::{Labels, VolumeName, VolumePath};
use serde_json::json;

fn names_of(list: &Resp) -> Vec<String> {
    let mut names: Vec<String> = list.json()["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_tenant_key_and_volume_is_visible_from_each_server() {
    let c = Cluster::start(2);
    let (a, b) = (c.servers[0].api(), c.servers[1].api());
    assert_ne!(c.servers[0].port, c.servers[1].port);

    // A tenant made through one server; its key works on the other.
    let made = a
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "create tenant through A")
        .json();
    let key = made["key"].as_str().expect("key").to_owned();
    let (acme_a, acme_b) = (a.with_key(Some(&key)), b.with_key(Some(&key)));
    let who = acme_b.get("/v1/whoami").expect(200, "whoami on B").json();
    assert_eq!(who["tenant"], "acme");

    // Volumes made through either are listed by both.
    acme_a.create_volume("from-a");
    acme_b.create_volume("from-b");
    for api in [&acme_a, &acme_b] {
        let list = api.get("/v1/volumes").expect(200, "list");
        assert_eq!(names_of(&list), ["from-a", "from-b"], "on {}", api.base);
    }
    assert_eq!(acme_a.volume_id("from-b"), acme_b.volume_id("from-b"));
    // The default tenant sees none of them, from either server.
    for api in [&a, &b] {
        let list = api.get("/v1/volumes").expect(200, "list");
        assert!(names_of(&list).is_empty(), "on {}", api.base);
    }

    // Files written through one are read through the other.
    acme_a
        .write("from-b", "/docs/x.txt", "hello")
        .expect(200, "write on A");
    assert_eq!(acme_b.read("from-b", "/docs/x.txt").body, b"hello");
    // A URL signed by one server is honoured by the other (one signing key in the data root).
    let signed = acme_a
        .post_json(
            "/v1/volumes/from-b/files/url",
            &json!({"path": "/docs/x.txt", "method": "GET", "expires_in": 600}),
        )
        .expect(200, "sign through A")
        .json();
    let url = signed["url"].as_str().expect("url");
    let target = &url[url.find("/v1/signed/").expect("a signed URL")..];
    let got = b
        .with_key(None)
        .get(target)
        .expect(200, "signed GET through B");
    assert_eq!(got.body, b"hello");

    // A cap set through one applies to volumes created through the other.
    a.put_json(
        "/v1/admin/tenants/acme/volume-cap",
        &json!({"cap_bytes": 4096}),
    )
    .expect(200, "set cap through A");
    let capped = acme_b.create_volume("capped");
    assert_eq!(capped["cap_bytes"], 4096);

    // Deleted through one, gone on the other.
    acme_b
        .delete("/v1/volumes/from-a")
        .expect(204, "delete through B");
    acme_a
        .get("/v1/volumes/from-a")
        .expect_err(404, "not_found", "get through A");
    // A new key made on B is not needed: keys are rows, and both servers read the same ones.
    let ids: Vec<String> = ["from-b", "capped"]
        .iter()
        .map(|n| acme_a.volume_id(n))
        .collect();
    let mut ids = ids;
    ids.sort();
    assert_eq!(c.volume_dirs(), ids, "one volume directory per volume");
}

#[test]
fn concurrent_creates_of_one_name_leave_exactly_one_volume() {
    const ROUNDS: usize = 30;
    let c = Cluster::start(2);
    let urls: Vec<String> = c.servers.iter().map(|s| s.url.clone()).collect();
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(urls.len()));
        let racers: Vec<_> = urls
            .iter()
            .map(|url| {
                let (url, name, barrier) = (url.clone(), name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let api = Api::new(&url, Some(ADMIN_KEY));
                    barrier.wait();
                    api.post_json("/v1/volumes", &json!({ "name": name }))
                })
            })
            .collect();
        let answers: Vec<Resp> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [201, 409],
            "round {round}: {:?}",
            answers.iter().map(Resp::text).collect::<Vec<_>>()
        );
        let winner = answers.iter().find(|r| r.status == 201).unwrap().json();
        let loser = answers.iter().find(|r| r.status == 409).unwrap();
        assert_eq!(loser.error_code().as_deref(), Some("already_exists"));
        assert!(loser.text().contains(&name), "{}", loser.text());
        let id = winner["id"].as_str().unwrap().to_owned();
        for url in &urls {
            assert_eq!(Api::new(url, Some(ADMIN_KEY)).volume_id(&name), id);
        }
        ids.push(id);
    }
    ids.sort();
    assert_eq!(
        c.volume_dirs(),
        ids,
        "exactly one volume directory per name"
    );
    for id in &ids {
        assert_eq!(
            dir_names(&c.servers[0].volume_root(id)),
            ["data", "staging"],
            "volume {id}"
        );
    }
}

/// `POST` of a tus upload of `len` bytes to `/in/big.bin`; returns its URL path.
fn tus_create(api: &Api, vol: &str, len: usize) -> String {
    // "path " + base64("/in/big.bin")
    let meta = "path L2luL2JpZy5iaW4=";
    let r = api.send(
        reqwest::Method::POST,
        &format!("/v1/volumes/{vol}/uploads"),
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &len.to_string()),
            ("Upload-Metadata", meta),
        ],
        None,
    );
    let r = r.expect(201, "tus create");
    let loc = r.headers["location"].to_str().unwrap().to_owned();
    loc.strip_prefix(&api.base).unwrap_or(&loc).to_owned()
}

fn tus_patch(api: &Api, upload: &str, offset: usize, chunk: &[u8]) -> Resp {
    api.send(
        reqwest::Method::PATCH,
        upload,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", &offset.to_string()),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        Some(chunk.to_vec()),
    )
}

fn tus_offset(api: &Api, upload: &str) -> (u64, u64) {
    let r = api
        .send(
            reqwest::Method::HEAD,
            upload,
            &[("Tus-Resumable", "1.0.0")],
            None,
        )
        .expect(200, "tus HEAD");
    let h = |n: &str| r.headers[n].to_str().unwrap().parse::<u64>().unwrap();
    (h("upload-offset"), h("upload-length"))
}

#[test]
fn an_upload_started_through_one_server_resumes_through_the_other() {
    let c = Cluster::start(2);
    let (a, b) = (c.servers[0].api(), c.servers[1].api());
    a.create_volume("up");
    let data = pseudo_random(7, (3 << 20) + 123);
    let upload = tus_create(&a, "up", data.len());
    let first = 1 << 20;
    tus_patch(&a, &upload, 0, &data[..first]).expect(204, "first chunk through A");
    assert_eq!(tus_offset(&b, &upload), (first as u64, data.len() as u64));
    // The wrong offset through B is refused as it would be through A.
    tus_patch(&b, &upload, 0, &data[..10]).expect(409, "stale offset through B");
    tus_patch(&b, &upload, first, &data[first..]).expect(204, "the rest through B");
    assert_eq!(
        tus_offset(&a, &upload),
        (data.len() as u64, data.len() as u64)
    );
    for api in [&a, &b] {
        let got = api.read("up", "/in/big.bin").expect(200, "read");
        assert!(got.body == data, "content read through {}", api.base);
        assert_eq!(api.usage("up"), (data.len() as u64, 1), "on {}", api.base);
    }
    let id = a.volume_id("up");
    assert_eq!(
        disk_usage(&c.servers[0].volume_data(&id)),
        (data.len() as u64, 1),
        "on disk"
    );
}

/// A `PUT` through the server on `port` that has sent `sent` of `body`'s bytes.
struct SlowPut {
    sock: TcpStream,
    body: Vec<u8>,
    sent: usize,
}

impl SlowPut {
    fn start(port: u16, vol: &str, path: &str, body: Vec<u8>, sent: usize) -> SlowPut {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let head = format!(
            "PUT /v1/volumes/{vol}/files/content?path={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).unwrap();
        sock.write_all(&body[..sent]).unwrap();
        SlowPut { sock, body, sent }
    }

    fn finish(mut self) -> u16 {
        self.sock.write_all(&self.body[self.sent..]).unwrap();
        let mut raw = Vec::new();
        self.sock.read_to_end(&mut raw).unwrap();
        let r = parse_response(&raw).expect("an answer");
        assert_eq!(r.status, 200, "{}", r.text());
        r.status
    }
}

/// Waits until staging holds `n` temporary files of at least `min` bytes each; returns their
/// names.
fn staged_files(staging: &std::path::Path, n: usize, min: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut files: Vec<String> = std::fs::read_dir(staging)
            .unwrap()
            .flatten()
            .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() >= min))
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        if files.len() >= n {
            files.sort();
            return files;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {n} writes in progress in staging: {files:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn staging_cleanup_never_takes_a_live_servers_write_in_flight() {
    const SIZE: usize = 6 << 20;
    let mut c = Cluster::start(1);
    let a = c.servers[0].api();
    a.create_volume("v");
    let id = a.volume_id("v");
    let staging = c.servers[0].volume_staging(&id);

    // A write is in flight through A when B starts (and cleans staging as it opens volumes).
    let one = pseudo_random(1, SIZE);
    let put1 = SlowPut::start(c.servers[0].port, "v", "/one", one.clone(), SIZE / 2);
    let before = staged_files(&staging, 1, 1);
    c.add_server();
    let b = c.servers[1].api();
    assert_eq!(b.stat("v", "/").status, 200);
    assert_eq!(
        dir_names(&staging),
        before
            .iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>(),
        "B's start removed A's write in progress"
    );
    put1.finish();
    assert!(b.read("v", "/one").body == one);

    // A crashes in the middle of a write while B has one in flight; A starts again: A's
    // leftover goes, B's write stays and completes.
    let two = pseudo_random(2, SIZE);
    let three = pseudo_random(3, SIZE);
    let put2 = SlowPut::start(c.servers[1].port, "v", "/two", two.clone(), SIZE / 2);
    let of_b = staged_files(&staging, 1, 1);
    let put3 = SlowPut::start(c.servers[0].port, "v", "/three", three, SIZE / 2);
    let both = staged_files(&staging, 2, 1);
    c.servers[0].kill9();
    drop(put3);
    c.servers[0].start_again();
    assert_eq!(
        dir_names(&staging),
        of_b.iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>(),
        "after A's restart only B's write in progress is left (was {both:?})"
    );
    put2.finish();
    let a = c.servers[0].api();
    assert!(a.read("v", "/two").body == two);
    a.read("v", "/three")
        .expect_err(404, "not_found", "the interrupted write");
    assert!(
        dir_names(&staging).is_empty(),
        "staging is empty at the end"
    );
    let want = (2 * SIZE as u64, 2);
    assert_eq!(disk_usage(&c.servers[0].volume_data(&id)), want);
    assert_eq!(a.usage("v"), want);
    assert_eq!(b.usage("v"), want);
}

fn vol(s: &str) -> VolumeName {
    VolumeName::parse(s).unwrap()
}

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

async fn next_event(
    s: &mut (impl futures::Stream<Item = nullspace_core::Result<WatchEvent>> + Unpin),
) -> Option<WatchEvent> {
    tokio::time::timeout(Duration::from_secs(30), s.next())
        .await
        .expect("an event (or the end) within 30s")
        .map(|r| r.expect("no error"))
}

async fn next_change(
    s: &mut (impl futures::Stream<Item = nullspace_core::Result<WatchEvent>> + Unpin),
) -> (ChangeKind, String, Option<String>, u64) {
    match next_event(s).await {
        Some(WatchEvent::Change(c)) => (c.kind, c.path, c.old_path, c.id),
        other => panic!("expected a change, got {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_watch_through_one_server_sees_changes_made_through_the_other() {
    let c = Cluster::start(2);
    runtime().block_on(async {
        let a = Client::new(&c.servers[0].url, ADMIN_KEY).unwrap();
        let b = Client::new(&c.servers[1].url, ADMIN_KEY).unwrap();
        let v = vol("w");
        a.create_volume(&v, &Labels::new(), false).await.unwrap();
        a.mkdir(&v, &p("/d"), true).await.unwrap();
        let mut on_b = b
            .watch_once(&v, &p("/"), &WatchOptions::default())
            .await
            .unwrap();
        let mut on_a = a
            .watch_once(&v, &p("/"), &WatchOptions::default())
            .await
            .unwrap();

        a.write_bytes(&v, &p("/d/f"), &b"one"[..], &Default::default())
            .await
            .unwrap();
        a.write_bytes(&v, &p("/d/f"), &b"two"[..], &Default::default())
            .await
            .unwrap();
        a.rename(&v, &p("/d/f"), &p("/d/g"), false).await.unwrap();
        a.remove(&v, &p("/d/g"), false).await.unwrap();
        b.write_bytes(&v, &p("/d/h"), &b"b"[..], &Default::default())
            .await
            .unwrap();
        use ChangeKind::*;
        let want = [
            (Created, "/d/f", None),
            (Modified, "/d/f", None),
            (Moved, "/d/g", Some("/d/f")),
            (Deleted, "/d/g", None),
        ];
        let mut last_b = 0;
        for (kind, path, old) in want {
            let (k, got, o, id) = next_change(&mut on_b).await;
            assert_eq!(
                (k, got.as_str(), o.as_deref()),
                (kind, path, old),
                "through B"
            );
            last_b = id;
        }
        // B's own change, on B at once; and on A through the database.
        assert_eq!(next_change(&mut on_b).await.1, "/d/h");
        for (kind, path, old) in want {
            let (k, got, o, _) = next_change(&mut on_a).await;
            assert_eq!(
                (k, got.as_str(), o.as_deref()),
                (kind, path, old),
                "through A"
            );
        }
        let (k, got, _, _) = next_change(&mut on_a).await;
        assert_eq!((k, got.as_str()), (Created, "/d/h"), "B's change through A");

        // Ids are per server: B's id means nothing to A, which says so with a gap.
        let mut resumed = a
            .watch_once(
                &v,
                &p("/"),
                &WatchOptions {
                    recursive: true,
                    last_event_id: Some(last_b),
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(next_event(&mut resumed).await, Some(WatchEvent::Gap(_))),
            "a resume through another server starts with a gap"
        );

        // Deleted through A: the watch through B ends.
        a.delete_volume(&v, false, false).await.unwrap();
        loop {
            match next_event(&mut on_b).await {
                None => break,
                Some(WatchEvent::Change(_)) => continue,
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
    });
}

#[test]
fn a_broken_link_between_the_servers_is_reported_never_silent() {
    let c = Cluster::start(2);
    runtime().block_on(async {
        let a = Client::new(&c.servers[0].url, ADMIN_KEY).unwrap();
        let b = Client::new(&c.servers[1].url, ADMIN_KEY).unwrap();
        let v = vol("l");
        a.create_volume(&v, &Labels::new(), false).await.unwrap();
        let mut on_b = b
            .watch_once(&v, &p("/"), &WatchOptions::default())
            .await
            .unwrap();
        a.write_bytes(&v, &p("/before"), &b"x"[..], &Default::default())
            .await
            .unwrap();
        let (_, path, _, last) = next_change(&mut on_b).await;
        assert_eq!(path, "/before");

        // Every connection to the database is cut (as a restart or a proxy would).
        c.database.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        match next_event(&mut on_b).await {
            Some(WatchEvent::Overflow(o)) => {
                assert!(o.message.contains("another server"), "{o:?}")
            }
            other => panic!("expected an overflow, got {other:?}"),
        }
        // Resuming through B from before the break: a gap, as changes may be missing.
        let mut resumed = b
            .watch_once(
                &v,
                &p("/"),
                &WatchOptions {
                    recursive: true,
                    last_event_id: Some(last),
                },
            )
            .await
            .unwrap();
        let Some(WatchEvent::Gap(g)) = next_event(&mut resumed).await else {
            panic!("expected a gap")
        };
        assert_eq!(g.last_event_id, last);
        // And the link works again: a change through A reaches the watch through B.
        for i in 0.. {
            let f = format!("/after-{i}");
            a.write_bytes(&v, &p(&f), &b"y"[..], &Default::default())
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(2), resumed.next()).await;
            if let Ok(Some(Ok(WatchEvent::Change(ch)))) = got {
                assert!(ch.path.starts_with("/after-"), "{ch:?}");
                break;
            }
            assert!(i < 30, "changes through A never reached B again");
        }
    });
}

#[test]
fn the_cap_holds_under_concurrent_writers_on_both_servers() {
    const FILE: usize = 4096;
    const CAP: u64 = 16 * FILE as u64;
    const WRITERS_PER_SERVER: usize = 6;
    const FILES_PER_WRITER: usize = 8;
    let c = Cluster::start(2);
    let a = c.servers[0].api();
    a.put_json(
        "/v1/admin/tenants/default/volume-cap",
        &json!({ "cap_bytes": CAP }),
    )
    .expect(200, "set the tenant's cap");
    let created = c.servers[1].api().create_volume("capped");
    assert_eq!(created["cap_bytes"], CAP);
    let id = created["id"].as_str().unwrap().to_owned();

    let barrier = Arc::new(Barrier::new(2 * WRITERS_PER_SERVER));
    let writers: Vec<_> = (0..2 * WRITERS_PER_SERVER)
        .map(|w| {
            let url = c.servers[w % 2].url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let api = Api::new(&url, Some(ADMIN_KEY));
                barrier.wait();
                (0..FILES_PER_WRITER)
                    .map(|i| {
                        let r = api.write("capped", &format!("/w{w}-{i}"), vec![b'x'; FILE]);
                        match r.status {
                            200 => true,
                            507 => {
                                assert_eq!(r.error_code().as_deref(), Some("quota_exceeded"));
                                false
                            }
                            other => panic!("writer {w}: unexpected {other}: {}", r.text()),
                        }
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let outcomes: Vec<bool> = writers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let ok = outcomes.iter().filter(|o| **o).count() as u64;
    let real = disk_usage(&c.servers[0].volume_data(&id));
    assert_eq!(
        real,
        (ok * FILE as u64, ok),
        "what succeeded is what is on disk"
    );
    assert!(
        real.0 <= CAP,
        "{} bytes on disk over the cap of {CAP}",
        real.0
    );
    // Writes fail only when they do not fit, so the volume is exactly full.
    assert_eq!(real.0, CAP, "{ok} writes succeeded");
    for s in &c.servers {
        assert_eq!(
            s.api().usage("capped"),
            real,
            "used_bytes through {}",
            s.url
        );
    }
}

#[test]
fn a_key_revoked_through_one_server_is_refused_by_the_other_within_a_second() {
    let c = Cluster::start(2);
    let (a, b) = (c.servers[0].api(), c.servers[1].api());
    let made = a
        .post_json("/v1/keys", &json!({"role": "member", "name": "leaked"}))
        .expect(201, "create key through A")
        .json();
    let key = made["key"].as_str().expect("key").to_owned();
    let id = made["info"]["id"].as_str().expect("id").to_owned();
    let on_b = b.with_key(Some(&key));
    on_b.get("/v1/whoami").expect(200, "the new key works on B");
    a.delete(&format!("/v1/keys/{id}"))
        .expect(200, "revoke through A");
    // A cached key is used only while the cache generation (bumped by the revocation's
    // transaction) has not moved, so the very first request after the acknowledgement is
    // already refused (stricter than the contract's second).
    let r = on_b.get("/v1/whoami");
    assert_eq!(r.status, 401, "B after the revocation: {}", r.text());
    on_b.get("/v1/volumes").expect_err(
        401,
        "unauthenticated",
        "B lists volumes with a revoked key",
    );
    assert!(!c.servers[1].log().contains(&key), "B's log shows the key");
    assert!(!c.servers[0].log().contains(&key), "A's log shows the key");
}
