//! "The server holds under hostile input: no tree, socket or request can crash it, starve it
//! or make it lie" (issue 12).
//!
//! Deep trees: a 20,000-level tree made through the API (a 2,000-level `mkdir`, then moves
//! that hang it below another 2,000-level chain) and one made directly on the volume's file
//! system, as sandbox code would; then search, recursive listing, archive download, copy,
//! usage, remove and a restart — each answers (a success or a clear 4xx, never a 5xx) and the
//! server starts again.

mod harness;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use harness::{enc, Api, SandboxServer, Server};
use rustix::fs::{Mode, OFlags};
use serde_json::json;

const VOL: &str = "deep";
/// Levels added by one API `mkdir` (its path stays below the 4,096-byte limit).
const CHAIN: usize = 2_000;
/// Depth of each deep tree.
const DEPTH: usize = 20_000;
const NEEDLE: &[u8] = b"needle-at-the-bottom\n";

fn chain(levels: usize) -> String {
    "/d".repeat(levels)
}

/// Builds `/c` as a chain of `DEPTH` directories with the file `f` at the bottom, through the
/// API only: `/c` is a 2,000-level chain with the file, then, nine times, a fresh 2,000-level
/// chain `/n…` gets `/c` moved to its bottom and is renamed `/c`.
fn deep_tree_through_the_api(api: &Api) {
    let top = format!("/c{}", chain(CHAIN - 1));
    api.mkdir(VOL, &top, true)
        .expect(200, "mkdir of the first chain");
    api.write(VOL, &format!("{top}/f"), NEEDLE)
        .expect(200, "the file at the bottom");
    for i in 1..DEPTH / CHAIN {
        let n = format!("/n{}", chain(CHAIN - 1));
        api.mkdir(VOL, &n, true).expect(200, "mkdir of a chain");
        api.mv(VOL, "/c", &format!("{n}/c"), false)
            .expect(200, &format!("move {i} of /c to the bottom of a chain"));
        api.mv(VOL, "/n", "/c", false)
            .expect(200, &format!("rename {i} of the chain to /c"));
    }
}

/// Makes `DEPTH` nested directories `s/d/d/…` in `data` with the file `f` at the bottom,
/// directly on the file system (as sandbox code does with `mkdir d; cd d`).
fn deep_tree_on_disk(data: &std::path::Path) {
    let mut dir: OwnedFd =
        rustix::fs::open(data, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut name = c"s";
    for _ in 0..DEPTH {
        rustix::fs::mkdirat(&dir, name, Mode::RWXU).unwrap();
        dir = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        name = c"d";
    }
    let f = rustix::fs::openat(
        &dir,
        c"f",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&f, NEEDLE).unwrap();
}

/// A GET whose (possibly huge) body is counted, not kept: the status, the body's length and
/// whether the chunked stream ended properly (a broken stream has no final chunk).
fn get_streamed(s: &Server, path_and_query: &str) -> (u16, u64, bool) {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        sock,
        "GET {path_and_query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.key
    )
    .unwrap();
    let mut total = 0u64;
    let mut tail = Vec::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = sock.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if head.len() < 64 {
            head.extend_from_slice(&buf[..n.min(64)]);
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(16);
        tail.drain(..keep);
    }
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
    (status, total, tail.ends_with(b"\r\n0\r\n\r\n"))
}

/// Everything a deep tree meets answers, and nothing is a 5xx.
/// `bottom_file` is the path of the one file, at the bottom. (Paths this long are compared,
/// never printed.)
fn every_route_answers_on(s: &Server, top: &str, bottom_file: &str) {
    let api = s.api();

    // Search walks to the bottom and finds the one match there.
    let r = api
        .post_json(
            &format!("/v1/volumes/{VOL}/files/search"),
            &json!({"pattern": "needle", "path": top, "regex": false}),
        )
        .expect(200, "search of a deep tree");
    let lines: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one match and the summary");
    assert!(
        lines[0]["path"] == bottom_file,
        "search finds the file at the bottom"
    );
    assert_eq!(lines[1]["matches"], 1);

    // A recursive listing: the first page, the next, and a glob that walks it all.
    let r = api
        .get(&format!(
            "/v1/volumes/{VOL}/files/list?path={}&recursive=true&limit=100&fields=path,type",
            enc(top)
        ))
        .expect(200, "recursive list of a deep tree");
    let page = r.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 100);
    let cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
    let r = api
        .get(&format!(
            "/v1/volumes/{VOL}/files/list?path={}&recursive=true&limit=100&fields=path,type&cursor={cursor}",
            enc(top)
        ))
        .expect(200, "the second page");
    let second = r.json();
    assert_eq!(
        second["entries"][0]["path"].as_str().unwrap().len(),
        top.len() + 101 * 2,
        "the second page goes on one level deeper"
    );
    let r = api
        .get(&format!(
            "/v1/volumes/{VOL}/files/list?path={}&recursive=true&glob=f&fields=path,type",
            enc(top)
        ))
        .expect(200, "recursive list with a glob");
    let found = r.json();
    assert_eq!(found["entries"].as_array().unwrap().len(), 1);
    assert!(
        found["entries"][0]["path"] == bottom_file,
        "the glob finds the file at the bottom"
    );

    // The archive streams to its end (a failed walk would break the stream).
    let (status, bytes, complete) = get_streamed(
        s,
        &format!(
            "/v1/volumes/{VOL}/files/archive?path={}&format=tar",
            enc(top)
        ),
    );
    assert_eq!(status, 200, "archive of a deep tree");
    assert!(complete, "the archive stream ends properly ({bytes} bytes)");

    // Copy, usage and remove.
    let (used, files) = api.usage(VOL);
    let copy = format!("{top}-copy");
    api.cp(VOL, top, &copy, false, true)
        .expect(200, "copy of a deep tree");
    assert_eq!(
        api.usage(VOL),
        (used + NEEDLE.len() as u64, files + 1),
        "the copy is counted"
    );
    api.remove(VOL, &copy, true)
        .expect(204, "remove of the deep copy");
    assert_eq!(api.usage(VOL), (used, files), "the removal is counted");
}

// SEMANTICS: Trees of any depth
#[test]
fn a_20000_level_tree_made_through_the_api_or_on_disk_is_walked_and_the_server_restarts() {
    let mut s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    deep_tree_through_the_api(&api);
    let links = format!("{}/c", chain(CHAIN - 1)).repeat(DEPTH / CHAIN - 1);
    let bottom = format!("/c{links}{}/f", chain(CHAIN - 1));
    every_route_answers_on(&s, "/c", &bottom);

    // A tree the API never saw, made on the volume's file system; a restart measures it.
    let data = s.volume_data(&api.volume_id(VOL));
    deep_tree_on_disk(&data);
    s.restart();
    let api = s.api();
    assert_eq!(
        api.usage(VOL),
        (2 * NEEDLE.len() as u64, 2),
        "the restart measured both trees"
    );
    every_route_answers_on(&s, "/s", &format!("/s{}/f", chain(DEPTH - 1)));

    // Removing both trees empties the volume; the server starts again afterwards too.
    api.remove(VOL, "/c", true).expect(204, "remove of /c");
    api.remove(VOL, "/s", true).expect(204, "remove of /s");
    assert_eq!(api.usage(VOL), (0, 0));
    s.restart();
    assert!(s.healthy());
    assert_eq!(s.api().usage(VOL), (0, 0));
    s.assert_no_server_faults();
}

// SEMANTICS: Trees of any depth
#[test]
fn a_20000_level_tree_made_by_sandbox_code_is_measured_after_exec_walked_and_survives_a_restart() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    s.ok(&["volume", "create", VOL]);
    let id = s
        .ok(&[
            "sandbox",
            "create",
            "--volume",
            &format!("ref={VOL},mount=/data"),
        ])
        .trim()
        .to_owned();
    s.1.push(id.clone());
    // `mkdir d; cd d` in a loop, without a process per level.
    let script = format!(
        "chdir '/data' or die; mkdir 'p' or die; chdir 'p' or die; \
         for (2..{DEPTH}) {{ mkdir 'd' or die \"mkdir: $!\"; chdir 'd' or die \"chdir: $!\" }} \
         open(F, '>', 'f') or die; print F 'needle-at-the-bottom'; print F \"\\n\"; close F or die;"
    );
    assert_eq!(
        s.ok(&["sandbox", "exec", &id, "--", "perl", "-e", &script]),
        ""
    );
    // The usage walk after exec measured the whole tree.
    let api = s.api();
    assert_eq!(
        api.usage(VOL),
        (NEEDLE.len() as u64, 1),
        "usage after the exec"
    );
    let bottom = format!("/p{}/f", chain(DEPTH - 1));
    every_route_answers_on(&s, "/p", &bottom);
    s.restart();
    assert_eq!(
        s.api().usage(VOL),
        (NEEDLE.len() as u64, 1),
        "usage after a restart"
    );
    every_route_answers_on(&s, "/p", &bottom);
    s.assert_no_server_faults();
}

/// Raises this test process's open-file limit to its hard limit (1,000 sockets need it).
fn raise_own_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    )
    .unwrap();
}

fn connect(s: &Server) -> std::net::TcpStream {
    let sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    // A bound on the test, not on the server: a socket the server should close but does
    // not fails the test instead of hanging it.
    sock.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    sock
}

/// Reads until the server closes the connection; what it sent before.
fn read_to_eof(sock: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    match sock.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out,
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
}

// SEMANTICS: Connections
#[test]
fn a_thousand_idle_sockets_then_a_normal_request_succeeds() {
    raise_own_nofile();
    let s = Server::start();
    let idle: Vec<std::net::TcpStream> = (0..1000).map(|_| connect(&s)).collect();
    let api = s.api();
    api.create_volume(VOL);
    api.write(VOL, "/a.txt", "hello").expect(200, "a write");
    assert_eq!(
        api.read(VOL, "/a.txt").expect(200, "a read").text(),
        "hello"
    );
    // The idle sockets are still open (not refused): one of them still serves a request.
    let mut first = idle.into_iter().next().unwrap();
    write!(
        first,
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let answer = read_to_eof(&mut first);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "an idle socket serves");
    s.assert_no_server_faults();
}

#[test]
fn a_connection_over_the_bound_is_answered_503_and_a_freed_slot_serves_again() {
    let s = Server::start_with_flags(&["--max-connections", "4"]);
    // Accepted in order: these four take every slot before the fifth is accepted.
    let mut held: Vec<std::net::TcpStream> = (0..4).map(|_| connect(&s)).collect();
    let mut fifth = connect(&s);
    write!(fifth, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut fifth)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "refused: {answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Closing one frees its slot once the server has seen the close.
    drop(held.pop());
    loop {
        let mut sock = connect(&s);
        write!(
            sock,
            "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let answer = read_to_eof(&mut sock);
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with(b"HTTP/1.1 503"), "only 503 or 200");
        std::thread::yield_now();
    }
    s.assert_no_server_faults();
}

#[test]
fn idle_and_slow_header_connections_are_closed_after_the_idle_timeout() {
    let s = Server::start_with_flags(&["--idle-timeout", "0.5"]);
    // A socket that never sends anything.
    let mut silent = connect(&s);
    assert!(
        read_to_eof(&mut silent).is_empty(),
        "closed without an answer"
    );
    // A keep-alive connection after its request.
    let mut kept = connect(&s);
    write!(kept, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = read_to_eof(&mut kept);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "served, then closed when idle"
    );
    // Headers that never end.
    let mut slow = connect(&s);
    write!(slow, "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let answer = read_to_eof(&mut slow);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "an unfinished head is closed"
    );
    assert!(s.healthy());
    s.assert_no_server_faults();
}

#[test]
fn a_slow_but_live_upload_succeeds_and_a_stalled_one_fails() {
    let s = Server::start_with_flags(&["--body-timeout", "2"]);
    let api = s.api();
    api.create_volume(VOL);
    // 16 chunks, 150 ms apart: three times longer than the body timeout in all, never idle
    // for long.
    let chunk = vec![b'x'; 4096];
    let mut sock = connect(&s);
    write!(
        sock,
        "PUT /v1/volumes/{VOL}/files/content?path=/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.key,
        chunk.len() * 16
    )
    .unwrap();
    for _ in 0..16 {
        sock.write_all(&chunk).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let answer = read_to_eof(&mut sock);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the slow upload is stored"
    );
    assert_eq!(
        api.read(VOL, "/slow.bin").expect(200, "read").body.len(),
        16 * 4096
    );

    // A body that stops arriving: the request fails and stores nothing.
    let mut stalled = connect(&s);
    write!(
        stalled,
        "PUT /v1/volumes/{VOL}/files/content?path=/stalled.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
        s.key
    )
    .unwrap();
    stalled.write_all(&chunk).unwrap();
    let answer = String::from_utf8_lossy(&read_to_eof(&mut stalled)).into_owned();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a stalled body is a 4xx or a closed connection, never a 5xx: {answer}"
    );
    api.stat(VOL, "/stalled.bin")
        .expect_err(404, "not_found", "nothing stored");
    assert!(s.healthy());
    s.assert_no_server_faults();
}

fn header(r: &harness::Resp, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

// SEMANTICS: HTTP edges
#[test]
fn ranges_follow_rfc_9110_and_never_lie_about_their_length() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    api.write(VOL, "/ten", "0123456789").expect(200, "write");
    let get = |range: &str| {
        api.send(
            reqwest::Method::GET,
            &format!("/v1/volumes/{VOL}/files/content?path=/ten"),
            &[("Range", range)],
            None,
        )
    };
    for (range, body, content_range) in [
        ("bytes=3-18446744073709551615", "3456789", "bytes 3-9/10"),
        ("bytes=3-99999999999999999999999", "3456789", "bytes 3-9/10"),
        ("bytes=0-0", "0", "bytes 0-0/10"),
        ("bytes=9-", "9", "bytes 9-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=-18446744073709551615", "0123456789", "bytes 0-9/10"),
    ] {
        let r = get(range).expect(206, range);
        assert_eq!(r.text(), body, "{range}");
        assert_eq!(
            header(&r, "content-length"),
            body.len().to_string(),
            "{range}"
        );
        assert_eq!(header(&r, "content-range"), content_range, "{range}");
    }
    for range in [
        "bytes=10-",
        "bytes=10-20",
        "bytes=18446744073709551615-",
        "bytes=-0",
    ] {
        let r = get(range).expect(416, range);
        assert_eq!(header(&r, "content-range"), "bytes */10", "{range}");
    }
    for range in ["bytes=5-3", "bytes=a-", "items=0-1", "bytes=0-1,3-4"] {
        get(range).expect_err(400, "invalid_argument", range);
    }
    s.assert_no_server_faults();
}

#[test]
fn archive_names_strict_json_labels_and_utf8_names_are_4xx_never_5xx() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);

    // RFC 6266: a directory named with CR, LF, a control character and a quote.
    let odd = "/a\r\nb\"c\u{1}d é";
    api.mkdir(VOL, odd, true)
        .expect(200, "mkdir of an odd name");
    let r = api
        .get(&format!(
            "/v1/volumes/{VOL}/files/archive?path={}&format=tar",
            enc(odd)
        ))
        .expect(200, "archive of an odd name");
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename=\"a__b_c_d _.tar\"; filename*=UTF-8''a%0D%0Ab%22c%01d%20%C3%A9.tar"
    );

    // Objects only; unknown fields are refused.
    for body in [json!([]), json!("x"), json!(1), json!(null)] {
        api.post_json("/v1/volumes", &body).expect_err(
            400,
            "invalid_argument",
            &format!("create volume from {body}"),
        );
        api.post_json(&format!("/v1/volumes/{VOL}/files/mkdir"), &body)
            .expect_err(400, "invalid_argument", &format!("mkdir from {body}"));
    }
    api.post_json("/v1/volumes", &json!({"name": "x", "colour": "red"}))
        .expect_err(400, "invalid_argument", "an unknown field");

    // Labels: at most 64, keys 1-63 characters, values at most 255.
    let labels = |n: usize| -> serde_json::Map<String, serde_json::Value> {
        (0..n).map(|i| (format!("k{i}"), json!("v"))).collect()
    };
    api.post_json(
        "/v1/volumes",
        &json!({"name": "many", "labels": labels(65)}),
    )
    .expect_err(400, "invalid_argument", "65 labels");
    api.post_json(
        "/v1/volumes",
        &json!({"name": "many", "labels": labels(64)}),
    )
    .expect(201, "64 labels");
    api.post_json(
        "/v1/volumes",
        &json!({"name": "big", "labels": {"k": "v".repeat(256)}}),
    )
    .expect_err(400, "invalid_argument", "a 256-character value");
    api.post_json(
        "/v1/volumes",
        &json!({"name": "big", "labels": {"k".repeat(64): "v"}}),
    )
    .expect_err(400, "invalid_argument", "a 64-character key");

    // Names that are not UTF-8 are refused, never read as U+FFFD.
    api.write(VOL, "/a\u{FFFD}", "replacement")
        .expect(200, "write");
    for pq in [
        format!("/v1/volumes/{VOL}/files/stat?path=/a%ff"),
        format!("/v1/volumes/{VOL}/files/content?path=/a%fe"),
        format!("/v1/volumes/{VOL}/files/list?path=/%c3"),
    ] {
        api.get(&pq).expect_err(400, "invalid_argument", &pq);
    }
    api.put(&format!("/v1/volumes/{VOL}/files/content?path=/a%ff"), "x")
        .expect_err(400, "invalid_argument", "a write to a non-UTF-8 name");
    assert_eq!(
        api.read(VOL, "/a\u{FFFD}").expect(200, "read").text(),
        "replacement"
    );
    s.assert_no_server_faults();
}

#[test]
fn signed_urls_are_canonical_and_special_files_are_reported_and_refused() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    api.write(VOL, "/f", "signed").expect(200, "write");
    let url = api
        .post_json(
            &format!("/v1/volumes/{VOL}/files/url"),
            &json!({"path": "/f", "expires_in": 600}),
        )
        .expect(200, "sign")
        .json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let pq = &url[url.find("/v1/").unwrap()..];
    let anon = api.with_key(None);
    assert_eq!(anon.get(pq).expect(200, "the signed URL").text(), "signed");
    let padded = pq.replace("expires=", "expires=0");
    assert_ne!(padded, pq);
    anon.get(&padded).expect(403, "a leading zero in expires");

    // A FIFO made by sandbox code (here: on the volume's file system).
    let data = s.volume_data(&api.volume_id(VOL));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        data.join("pipe"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let st = api.stat(VOL, "/pipe").expect(200, "stat of a FIFO").json();
    assert_eq!(st["type"], "fifo");
    let listed = api.list(VOL, "/", false).expect(200, "list").json();
    assert!(listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "/pipe" && e["type"] == "fifo"));
    api.cp(VOL, "/pipe", "/pipe2", false, false).expect_err(
        400,
        "invalid_argument",
        "copy of a FIFO",
    );
    api.mkdir(VOL, "/t", true).expect(200, "mkdir");
    api.mv(VOL, "/pipe", "/t/pipe", false)
        .expect(200, "a FIFO can be moved");
    api.cp(VOL, "/t", "/t2", false, true).expect_err(
        400,
        "invalid_argument",
        "copy of a tree holding a FIFO",
    );
    let r = api.read(VOL, "/t/pipe");
    assert!(
        (400..500).contains(&r.status),
        "a FIFO is not read: {}",
        r.status
    );
    assert!(s.healthy());
    s.assert_no_server_faults();
}

#[test]
fn sandbox_file_writes_into_read_only_places_and_over_long_exec_timeouts_are_4xx() {
    let mut s = harness::SandboxServer(Server::start(), Vec::new());
    let api = s.api();
    api.create_volume(VOL);
    let sb = api
        .post_json(
            "/v1/sandboxes",
            &json!({"volumes": [{"volume": VOL, "mount_path": "/ro", "read_only": true}]}),
        )
        .expect(201, "create a sandbox")
        .json();
    let id = sb["id"].as_str().unwrap().to_owned();
    s.1.push(id.clone());
    // A JSON array where the create body is expected creates nothing.
    api.post_json("/v1/sandboxes", &json!([]))
        .expect_err(400, "invalid_argument", "an array body");
    for path in ["/ro/x.txt", "/usr/x.txt"] {
        api.put(
            &format!("/v1/sandboxes/{id}/files/content?path={}", enc(path)),
            "x",
        )
        .expect_err(403, "permission_denied", &format!("a write to {path}"));
    }
    for timeout in [1e9, 86_400.5, 0.0, -1.0] {
        api.post_json(
            &format!("/v1/sandboxes/{id}/exec"),
            &json!({"cmd": ["true"], "timeout": timeout}),
        )
        .expect_err(400, "invalid_argument", &format!("timeout {timeout}"));
    }
    api.post_json(
        &format!("/v1/sandboxes/{id}/exec"),
        &json!({"cmd": ["true"], "timeout": 86_400}),
    )
    .expect(200, "the maximum timeout");
    let listed = api.get("/v1/sandboxes").expect(200, "list").json();
    let n = listed["sandboxes"]
        .as_array()
        .or_else(|| listed.as_array())
        .map_or(0, Vec::len);
    assert_eq!(n, 1, "the array body created no sandbox");
    s.assert_no_server_faults();
}
