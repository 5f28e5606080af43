//! "No request can reach outside its volume: not by `..`, not by absolute or symlink targets."
//!
//! Hostile paths against every file route of the HTTP API (read, write, list, stat, exists,
//! move, copy, remove, mkdir, batch), sent over a raw socket so that percent-encoding and odd
//! bytes reach the server exactly as written. Symlinks that point out of the volume are planted
//! directly in the volume's data directory, as sandbox code could.
//!
//! After every single request: no answer is a 500 or carries a secret from outside the volume,
//! nothing outside the volume changed (files, contents, modes, mtimes, no new entries), the
//! volume's root holds only `data` and `staging`, staging is empty, and the server is healthy.

mod harness;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use harness::hostile::{
    files_url, json_req, request, tar_of, Op, Req, ALL_OPS, ESCAPING_READS, LINKS, PASSWD_NEEDLE,
    SECRET, SECRET_CWD, SECRET_DEEP, SECRET_OTHER, VOL,
};
use harness::{
    contains, dir_names, enc, raw_request, snapshot, Api, DiskNode, RawResponse, Server, ADMIN_KEY,
};
use serde_json::{json, Value};

/// Shortens long labels and bodies for failure messages.
fn clip(s: &str) -> String {
    if s.chars().count() <= 300 {
        s.to_owned()
    } else {
        format!(
            "{}…[{} chars]",
            s.chars().take(300).collect::<String>(),
            s.chars().count()
        )
    }
}

/// Percent-decodes (once) and replaces invalid UTF-8, as a form decoder does.
fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The server, two tenants' volumes, a directory outside every volume, and the invariants.
struct World {
    srv: Server,
    api: Api,
    id: String,
    other_id: String,
    outside: PathBuf,
    /// Directories that no request may change, with their contents before the first request.
    guarded: Vec<(PathBuf, BTreeMap<PathBuf, DiskNode>)>,
    volumes_dir_names: Vec<std::ffi::OsString>,
    cases: usize,
}

impl World {
    fn new() -> World {
        let srv = Server::start();
        let api = srv.api();
        let root = srv.root().to_owned();

        // Outside every volume: a directory with a secret and a subdirectory, and the server's cwd.
        let outside = root.join("outside");
        std::fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
        std::fs::write(outside.join("secret.txt"), SECRET).expect("write secret");
        std::fs::write(outside.join("sub/deeper.txt"), SECRET_DEEP).expect("write secret");
        std::fs::write(srv.cwd().join("secret.txt"), SECRET_CWD).expect("write secret");
        assert!(
            std::fs::read_to_string("/etc/passwd")
                .unwrap_or_default()
                .contains(PASSWD_NEEDLE),
            "the host's /etc/passwd should hold {PASSWD_NEEDLE:?}"
        );

        // Another tenant's volume with its own secret.
        let created = api
            .post_json("/v1/admin/tenants", &json!({"name": "victim"}))
            .expect(201, "create tenant");
        let victim = api.with_key(Some(created.json()["key"].as_str().expect("key")));
        victim.create_volume("other");
        victim
            .write("other", "/other-secret.txt", SECRET_OTHER)
            .expect(200, "write other secret");
        let other_id = victim.volume_id("other");

        api.create_volume(VOL);
        let id = api.volume_id(VOL);
        let mut w = World {
            srv,
            api,
            id,
            other_id: other_id.clone(),
            outside: outside.clone(),
            guarded: Vec::new(),
            volumes_dir_names: Vec::new(),
            cases: 0,
        };
        w.plant();
        w.guarded = vec![
            (outside.clone(), snapshot(&outside)),
            (w.srv.cwd(), snapshot(&w.srv.cwd())),
            (
                w.srv.volume_root(&other_id),
                snapshot(&w.srv.volume_root(&other_id)),
            ),
        ];
        w.volumes_dir_names = dir_names(&w.srv.data_dir().join("volumes"));
        w
    }

    fn data(&self) -> PathBuf {
        self.srv.volume_data(&self.id)
    }

    /// (Re)creates the volume's regular content through the API and the hostile entries on disk.
    fn plant(&self) {
        let data = self.data();
        for (p, content) in [
            ("/hello.txt", "hello"),
            ("/victim.txt", "victim"),
            ("/dir/inner.txt", "inner"),
        ] {
            if std::fs::symlink_metadata(data.join(&p[1..]))
                .map(|m| !m.is_file())
                .unwrap_or(true)
            {
                let _ = std::fs::remove_dir_all(data.join(&p[1..]));
                let _ = std::fs::remove_file(data.join(&p[1..]));
                self.api
                    .write(VOL, p, content)
                    .expect(200, &format!("plant {p}"));
            }
        }
        let out = self.outside.display().to_string();
        for (name, target) in LINKS {
            let target = target
                .replace("{OUT_REL}", out.trim_start_matches('/'))
                .replace("{OUT}", &out)
                .replace("{OTHER}", &self.other_id);
            let at = data.join(name);
            if std::fs::read_link(&at).is_ok_and(|t| t == Path::new(&target)) {
                continue;
            }
            let _ = std::fs::remove_file(&at);
            let _ = std::fs::remove_dir_all(&at);
            std::os::unix::fs::symlink(&target, &at)
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
        let fifo = data.join("fifo");
        if std::fs::symlink_metadata(&fifo).is_err() {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .expect("mkfifo");
        }
    }

    /// Sends a request and checks every invariant; `allowed` are the acceptable statuses.
    #[track_caller]
    fn send(&mut self, label: &str, req: &Req, allowed: &[u16]) -> RawResponse {
        self.cases += 1;
        let auth = format!("Bearer {ADMIN_KEY}");
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(req.headers.iter().copied());
        let resp = raw_request(self.srv.port, req.method, &req.target, &headers, &req.body)
            .unwrap_or_else(|e| {
                panic!(
                    "{label}: request failed: {e}\nserver log:\n{}",
                    self.srv.log_tail(30)
                )
            });
        let shown = format!(
            "{}: {} {} -> {} {}",
            clip(label),
            req.method,
            clip(&String::from_utf8_lossy(&req.target)),
            resp.status,
            clip(&resp.text())
        );
        assert_ne!(
            resp.status,
            500,
            "{shown}\nserver log:\n{}",
            self.srv.log_tail(30)
        );
        assert!(
            allowed.contains(&resp.status),
            "{shown}\nexpected one of {allowed:?}"
        );
        for needle in [SECRET, SECRET_DEEP, SECRET_CWD, SECRET_OTHER, PASSWD_NEEDLE] {
            assert!(
                !contains(&resp.body, needle.as_bytes()) && !resp.head.contains(needle),
                "{shown}\nthe answer leaks {needle:?} from outside the volume"
            );
        }
        if let Some(code) = resp.error_code() {
            let want = match resp.status {
                400 => &["invalid_argument"][..],
                401 => &["unauthenticated"][..],
                403 => &["permission_denied"][..],
                404 => &["not_found"][..],
                409 => &["already_exists", "conflict"][..],
                413 => &["payload_too_large"][..],
                _ => &[][..],
            };
            assert!(
                want.is_empty() || want.contains(&code.as_str()),
                "{shown}\nerror code {code:?} does not match the status"
            );
        }
        self.check_world(&shown);
        resp
    }

    /// Like [`World::send`], and the answer must be the JSON error `invalid_argument`.
    #[track_caller]
    fn send_invalid(&mut self, label: &str, req: &Req) {
        let r = self.send(label, req, &[400]);
        assert_eq!(
            r.error_code().as_deref(),
            Some("invalid_argument"),
            "{}: {} {}: want a JSON invalid_argument, got {}",
            clip(label),
            req.method,
            clip(&String::from_utf8_lossy(&req.target)),
            clip(&r.text())
        );
    }

    #[track_caller]
    fn check_world(&mut self, shown: &str) {
        for (dir, before) in &self.guarded {
            let now = snapshot(dir);
            if &now != before {
                let changed: Vec<_> = before
                    .keys()
                    .chain(now.keys())
                    .filter(|k| before.get(*k) != now.get(*k))
                    .collect();
                panic!(
                    "{shown}\nsomething outside the volume changed in {}: {changed:?}",
                    dir.display()
                );
            }
        }
        assert_eq!(
            dir_names(&self.srv.data_dir().join("volumes")),
            self.volumes_dir_names,
            "{shown}\nthe volumes directory changed"
        );
        let vroot = self.srv.volume_root(&self.id);
        assert_eq!(
            dir_names(&vroot),
            ["data", "staging"],
            "{shown}\nthe volume root gained entries"
        );
        assert!(
            dir_names(&self.srv.volume_staging(&self.id)).is_empty(),
            "{shown}\nstaging is not empty after the request"
        );
        assert!(
            self.srv.healthy(),
            "{shown}\nthe server is no longer healthy; log:\n{}",
            self.srv.log_tail(30)
        );
    }

    /// Every route with a path form that must be refused as `invalid_argument`.
    fn all_routes_invalid(&mut self, group: &str, q: &str, p: Option<&str>) {
        for op in ALL_OPS {
            if let Some(req) = request(op, q, p) {
                self.plant();
                self.send_invalid(&format!("{group} {op:?} {q:?}"), &req);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn dot_dot_in_every_form_is_invalid_argument_on_every_route() {
    let mut w = World::new();
    let forms = [
        "/..",
        "/../",
        "..",
        "./..",
        "../",
        "/a/../..",
        "/hello.txt/..",
        "/dir/..",
        "/dir/../hello.txt",
        "/../../../../etc/passwd",
        "//..//",
        "/./../",
        "/dir/./../../x",
        "/..//..//etc/passwd",
        "/dir/inner.txt/../../..",
        "/abs_dir/../../outside/secret.txt",
        "/../outside/secret.txt",
        "/.././.././proc/self/root/etc/passwd",
    ];
    for f in forms {
        w.all_routes_invalid("dotdot", &enc(f), Some(f));
    }
    // `..` in a batch entry name, in every position.
    for name in [
        &b"../escape.txt"[..],
        b"a/../../escape.txt",
        b"../../../../outside/pwned.txt",
        b"..",
    ] {
        let req = Req {
            method: "POST",
            target: files_url("batch", "path=/"),
            headers: vec![("Content-Type", "application/x-tar")],
            body: tar_of(&[(name, b"pwned", tar::EntryType::Regular)]),
        };
        w.plant();
        w.send_invalid(
            &format!("batch entry {:?}", String::from_utf8_lossy(name)),
            &req,
        );
    }
    eprintln!("dot_dot: {} requests", w.cases);
}

#[test]
fn relative_and_odd_paths_are_invalid_argument() {
    let mut w = World::new();
    let forms = [
        "etc/passwd",
        "hello.txt",
        "",
        "~/x",
        "\\..\\",
        "\\..\\..\\etc\\passwd",
        " /hello.txt",
        "dir/../..",
        "%2e%2e",
        ".",
    ];
    for f in forms {
        w.all_routes_invalid("relative", &enc(f), Some(f));
    }
    // A path query parameter that is missing altogether, or given twice.
    for (route, method) in [
        ("content", "GET"),
        ("stat", "GET"),
        ("exists", "GET"),
        ("content", "PUT"),
    ] {
        let req = Req {
            method,
            target: files_url(route, "recursive=true"),
            headers: vec![],
            body: vec![],
        };
        w.send_invalid(&format!("missing path {method} {route}"), &req);
        let req = Req {
            method,
            target: files_url(route, "path=/hello.txt&path=/.."),
            headers: vec![],
            body: vec![],
        };
        w.send(
            &format!("duplicate path {method} {route}"),
            &req,
            &[400, 200, 404],
        );
    }
    // Paths that are not strings in JSON bodies.
    for body in [
        json!({"path": 1}),
        json!({"path": null}),
        json!({"path": ["/a"]}),
        json!({"path": {"..": 1}}),
    ] {
        w.send_invalid(
            &format!("mkdir body {body}"),
            &json_req("mkdir", body.clone()),
        );
    }
    for body in [
        json!({"src": "/hello.txt", "dst": 5}),
        json!({"src": "/hello.txt"}),
        json!({"src": "/hello.txt", "dst": "/x", "extra": "../.."}),
    ] {
        w.send_invalid(
            &format!("move body {body}"),
            &json_req("move", body.clone()),
        );
        w.send_invalid(
            &format!("copy body {body}"),
            &json_req("copy", body.clone()),
        );
    }
    eprintln!("relative: {} requests", w.cases);
}

#[test]
fn percent_encoding_sent_raw_decodes_once_and_stays_in_the_volume() {
    let mut w = World::new();
    // Forms that decode (once) to `..`, NUL, or a relative path: refused everywhere.
    let refused = [
        "%2e%2e%2f",
        "%2E%2E/",
        "%2e%2e",
        "/%2e%2e",
        "/%2E%2E",
        "/%2e%2e%2f",
        "/%2e%2e%2fetc%2fpasswd",
        "%2f%2e%2e%2f%2e%2e",
        "/.%2e/x",
        "/%2e./x",
        "%2F..%2F..%2Fetc%2Fpasswd",
        "..%2f..%2fetc%2fpasswd",
        "/%2E%2E%2F%2E%2E%2Fproc%2Fself%2Froot%2Fetc%2Fpasswd",
        "%252e%252e%252f",
        "%00",
        "/%00",
        "/a%00b",
        "/hello.txt%00.png",
        "/%00/../..",
        "/dir/%2e%2e/%2e%2e/outside",
    ];
    for q in refused {
        let p = percent_decode_lossy(q);
        w.all_routes_invalid("percent", q, Some(&p));
    }

    // Not UTF-8 once decoded (invalid bytes, overlong forms of `.` and `/`): refused on every
    // route that takes a path in the query, never read as U+FFFD (which would make `/%ff` and
    // `/%fe` one name; issue 12). (A JSON body cannot carry such a name.)
    for q in [
        "/%ff",
        "/%fe%ff/x.txt",
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/x.txt",
        "/%c0%af%c0%ae%c0%ae",
        "/%e0%80%ae%e0%80%ae/y.txt",
    ] {
        let p = percent_decode_lossy(q);
        for method in ["PUT", "GET"] {
            let req = Req {
                method,
                target: files_url("content", &format!("path={q}")),
                headers: vec![],
                body: b"x".to_vec(),
            };
            let r = w.send(&format!("not UTF-8 {method} {q:?}"), &req, &[400]);
            assert_eq!(r.error_code().as_deref(), Some("invalid_argument"), "{q:?}");
        }
        for op in [Op::Stat, Op::Exists, Op::List, Op::ListR, Op::Remove] {
            let req = request(op, q, Some(&p)).expect("query op");
            let r = w.send(&format!("not UTF-8 {op:?} {q:?}"), &req, &[400]);
            assert_eq!(r.error_code().as_deref(), Some("invalid_argument"), "{q:?}");
        }
    }

    // Forms that decode to odd but legitimate names: they must land inside the volume, exactly
    // under the once-decoded name (a double decode would turn `%252e` into `..`).
    let inside = [
        "/%252e%252e%252f",
        "/%252e%252e%252f%252e%252e%252fescaped.txt",
        "/%252e%252e/%252e%252e/x.txt",
        "/%2e%2e%5c",
        "/%5c%2e%2e%5c%2e%2e%5cz.txt",
        "/%EF%BC%8E%EF%BC%8E/fullwidth.txt",
        "/%u002e%u002e/iis.txt",
        "/..%20",
        "/%20..",
        "/....",
        "/.../x.txt",
        "/a%2fb%2fc.txt",
        "/%2e%2e%2e%2e%2e",
    ];
    for (i, q) in inside.into_iter().enumerate() {
        let p = percent_decode_lossy(q);
        let rel = p.trim_start_matches('/').to_owned();
        let content = format!("inside-{i}");
        let put = Req {
            method: "PUT",
            target: files_url("content", &format!("path={q}")),
            headers: vec![],
            body: content.clone().into_bytes(),
        };
        w.plant();
        w.send(&format!("inside write {q:?}"), &put, &[200]);
        let on_disk = std::fs::read(w.data().join(&rel)).unwrap_or_else(|e| {
            panic!(
                "write {q:?} should create {:?} inside the data dir: {e}",
                rel
            )
        });
        assert_eq!(on_disk, content.as_bytes(), "write {q:?}: content on disk");
        let get = Req {
            method: "GET",
            target: files_url("content", &format!("path={q}")),
            headers: vec![],
            body: vec![],
        };
        let r = w.send(&format!("inside read {q:?}"), &get, &[200]);
        assert_eq!(r.body, content.as_bytes(), "read {q:?}");
        for op in [Op::Stat, Op::Exists, Op::List, Op::ListR] {
            let req = request(op, q, Some(&p)).expect("query op");
            w.send(&format!("inside {op:?} {q:?}"), &req, &[200]);
        }
        let req = request(Op::Remove, q, Some(&p)).expect("remove");
        w.send(&format!("inside remove {q:?}"), &req, &[204]);
        assert!(
            std::fs::symlink_metadata(w.data().join(&rel)).is_err(),
            "remove {q:?} should remove {rel:?}"
        );
    }

    // Bytes no client should send raw: the HTTP layer may refuse them, nothing may break.
    let raw_targets: [&[u8]; 10] = [
        b"/v1/volumes/vol/files/content?path=/\xff",
        b"/v1/volumes/vol/files/content?path=/..\xc0\xae/secret.txt",
        b"/v1/volumes/vol/files/content?path=/hello.txt#/../../etc/passwd",
        b"/v1/volumes/vol/files/content?path=/abs_dir/secret.txt\x00",
        b"/v1/volumes/vol/files/content?path=/\\..\\..\\outside\\secret.txt",
        b"/v1/volumes/../../files/content?path=/etc/passwd",
        b"/v1/volumes/%2e%2e/files/content?path=/other-secret.txt",
        b"/v1/volumes/..%2fvictim/files/content?path=/other-secret.txt",
        b"/v1/volumes/vol/../other/files/content?path=/other-secret.txt",
        b"/v1/volumes/vol%2f..%2fother/files/content?path=/other-secret.txt",
    ];
    for t in raw_targets {
        let req = Req {
            method: "GET",
            target: t.to_vec(),
            headers: vec![],
            body: vec![],
        };
        // Whatever the HTTP layer makes of these, the invariants in `send` must hold.
        w.send(
            &format!("raw target {:?}", String::from_utf8_lossy(t)),
            &req,
            &[200, 400, 403, 404],
        );
    }
    eprintln!("percent: {} requests", w.cases);
}

#[test]
fn symlinks_planted_in_the_volume_never_lead_out() {
    let mut w = World::new();
    let forbidden = [403, 404, 400];

    // Positive controls: links that stay inside work.
    w.plant();
    let r = w.send(
        "read inside link",
        &request(Op::Read, "/inside_ok", None).expect("req"),
        &[200],
    );
    assert_eq!(r.body, b"hello");
    let r = w.send(
        "read through inside dir link",
        &request(Op::Read, "/inside_dir_ok/inner.txt", None).expect("req"),
        &[200],
    );
    assert_eq!(r.body, b"inner");

    // Reads through every kind of escaping link: refused as permission_denied.
    for &p in ESCAPING_READS {
        w.plant();
        let r = w.send(
            &format!("read {p}"),
            &request(Op::Read, &enc(p), Some(p)).expect("req"),
            &forbidden,
        );
        if !p.contains("..") && p != "/staging_link/anything" {
            assert_eq!(
                r.status,
                403,
                "read {p}: an escaping link is permission_denied: {}",
                r.text()
            );
        }
    }
    // Loops, dangling links, FIFOs and directories: refused, nothing hangs.
    for (p, want) in [
        ("/loop_a", 400),
        ("/self_loop", 400),
        ("/loop_a/x", 400),
        ("/self_loop/x/y", 400),
        ("/dangling_rel", 404),
        ("/fifo", 400),
        ("/dir", 400),
        ("/abs_dir", 403),
    ] {
        w.plant();
        let r = w.send(
            &format!("read {p}"),
            &request(Op::Read, &enc(p), Some(p)).expect("req"),
            &forbidden,
        );
        assert_eq!(r.status, want, "read {p}: {}", r.text());
    }

    // stat and exists report links without following them, and refuse to look through them.
    for link in [
        "/abs_dir",
        "/abs_file",
        "/proc_cwd",
        "/self_loop",
        "/dangling_abs",
        "/volroot",
        "/other_vol",
    ] {
        w.plant();
        let r = w.send(
            &format!("stat {link}"),
            &request(Op::Stat, &enc(link), None).expect("req"),
            &[200],
        );
        let st: Value = serde_json::from_slice(&r.body).expect("stat json");
        assert_eq!(st["type"], "symlink", "stat {link}: {st}");
    }
    for p in [
        "/abs_dir/secret.txt",
        "/proc_cwd/secret.txt",
        "/other_vol/other-secret.txt",
        "/volroot/data",
        "/loop_a/x",
        "/chain1/sub",
    ] {
        w.plant();
        w.send(
            &format!("stat {p}"),
            &request(Op::Stat, &enc(p), None).expect("req"),
            &forbidden,
        );
        let r = w.send(
            &format!("exists {p}"),
            &request(Op::Exists, &enc(p), None).expect("req"),
            &[200, 400, 403],
        );
        assert!(
            !r.text().contains("true"),
            "exists {p} must not see through the link: {}",
            r.text()
        );
    }

    // Listing shows links as links and never descends into them.
    for p in [
        "/abs_dir",
        "/rel_dir",
        "/proc_root",
        "/volroot",
        "/other_vol",
        "/root_link",
        "/abs_dir/",
        "/proc_cwd/.",
    ] {
        for op in [Op::List, Op::ListR] {
            w.plant();
            let r = w.send(
                &format!("{op:?} {p}"),
                &request(op, &enc(p), None).expect("req"),
                &[200],
            );
            let v: Value = serde_json::from_slice(&r.body).expect("list json");
            let entries = v["entries"].as_array().expect("entries");
            assert_eq!(entries.len(), 1, "{op:?} {p} lists just the link: {v}");
            assert_eq!(entries[0]["type"], "symlink", "{op:?} {p}: {v}");
        }
    }
    for p in [
        "/abs_dir/sub",
        "/rel_dir/sub",
        "/other_vol/x",
        "/volroot/data",
        "/dir/up/staging",
    ] {
        w.plant();
        w.send(
            &format!("list {p}"),
            &request(Op::ListR, &enc(p), None).expect("req"),
            &forbidden,
        );
    }
    for q in ["/", "/dir", "/inside_dir_ok"] {
        for glob in ["", "&glob=**", "&glob=*secret*", "&glob=**/*.txt"] {
            w.plant();
            let req = Req {
                method: "GET",
                target: files_url("list", &format!("path={}&recursive=true{glob}", enc(q))),
                headers: vec![],
                body: vec![],
            };
            let r = w.send(&format!("list -r {q} {glob}"), &req, &[200]);
            let v: Value = serde_json::from_slice(&r.body).expect("list json");
            let entries = v["entries"].as_array().expect("entries");
            let links: Vec<&str> = entries
                .iter()
                .filter(|e| e["type"] == "symlink")
                .filter_map(|e| e["path"].as_str())
                .collect();
            for e in entries {
                let path = e["path"].as_str().expect("path");
                assert!(
                    !path.contains("secret.txt") && !path.contains("deeper.txt"),
                    "list -r {q} {glob} shows an outside name: {path}"
                );
                for l in &links {
                    assert!(
                        !path.starts_with(&format!("{l}/")),
                        "list -r {q} {glob} descended into link {l}: {path}"
                    );
                }
            }
        }
    }

    // Writes and mkdirs through escaping links are refused.
    let through = [
        "/abs_dir/pwned.txt",
        "/abs_dir/sub/pwned.txt",
        "/abs_dir/newsub/deeper/pwned.txt",
        "/rel_dir/pwned.txt",
        "/deep_rel/pwned.txt",
        "/proc_cwd/pwned.txt",
        "/proc_root/pwned.txt",
        "/root_link/tmp/nullspace-e2e-pwned.txt",
        "/chain1/pwned.txt",
        "/chain1/newdir/pwned.txt",
        "/other_vol/pwned.txt",
        "/volroot/pwned.txt",
        "/volroot/staging/pwned.txt",
        "/staging_link/pwned.txt",
        "/dir/up/pwned.txt",
        "/dir/up/data/pwned.txt",
        "/loop_a/pwned.txt",
        "/dangling_abs/pwned.txt",
    ];
    for p in through {
        for op in [
            Op::Write,
            Op::Mkdir,
            Op::MkdirP,
            Op::MoveDst,
            Op::CopyDst,
            Op::BatchDest,
        ] {
            w.plant();
            w.send(
                &format!("{op:?} {p}"),
                &request(op, &enc(p), Some(p)).expect("req"),
                &forbidden,
            );
        }
    }
    // A write, move or copy onto a link's own name replaces the link, never its target.
    for p in [
        "/abs_file",
        "/dangling_abs",
        "/rel_file",
        "/chain_file",
        "/proc_cwd",
    ] {
        for op in [Op::Write, Op::MoveDst, Op::CopyDst] {
            w.plant();
            let r = w.send(
                &format!("{op:?} onto link {p}"),
                &request(op, &enc(p), Some(p)).expect("req"),
                &[200, 400, 403, 409],
            );
            if r.status == 200 {
                let md = std::fs::symlink_metadata(w.data().join(&p[1..])).expect("replaced entry");
                assert!(
                    md.is_file(),
                    "{op:?} onto link {p}: the link should be replaced by a regular file"
                );
            }
        }
    }
    // Moving, copying or removing through links: refused; acting on the link itself: only the
    // link is touched.
    for p in [
        "/abs_dir/secret.txt",
        "/abs_dir/sub",
        "/rel_file/x",
        "/proc_cwd/secret.txt",
        "/other_vol/other-secret.txt",
        "/volroot/data",
        "/volroot/staging",
        "/dir/up/data/hello.txt",
        "/chain1/sub",
    ] {
        for op in [Op::MoveSrc, Op::CopySrc, Op::Remove, Op::RemoveR] {
            w.plant();
            w.send(
                &format!("{op:?} {p}"),
                &request(op, &enc(p), Some(p)).expect("req"),
                &forbidden,
            );
        }
    }
    for p in [
        "/abs_dir",
        "/rel_dir",
        "/proc_cwd",
        "/volroot",
        "/other_vol",
        "/root_link",
        "/self_loop",
    ] {
        w.plant();
        w.send(
            &format!("copy link {p}"),
            &request(Op::CopySrc, &enc(p), Some(p)).expect("req"),
            &[200],
        );
        let md = std::fs::symlink_metadata(w.data().join("copied-here")).expect("copy made");
        assert!(md.file_type().is_symlink(), "copy of link {p} is a link");
        w.send(
            &format!("read through copied link {p}"),
            &request(Op::Read, &enc("/copied-here/secret.txt"), None).expect("req"),
            &forbidden,
        );
        w.send(
            &format!("move link {p}"),
            &request(Op::MoveSrc, &enc(p), Some(p)).expect("req"),
            &[200],
        );
        w.plant();
        w.send(
            &format!("remove link {p}"),
            &request(Op::RemoveR, &enc(p), Some(p)).expect("req"),
            &[204],
        );
        w.plant();
        w.send(
            &format!("remove link {p} non-recursively"),
            &request(Op::Remove, &enc(p), Some(p)).expect("req"),
            &[204],
        );
    }
    // A directory holding a link that climbs out: copied with the link as a link, removed
    // without following it.
    w.plant();
    w.send(
        "clear copy target",
        &request(Op::RemoveR, "/copied-here", None).expect("req"),
        &[204, 404],
    );
    w.send(
        "copy -r /dir",
        &request(Op::CopySrc, "/dir", Some("/dir")).expect("req"),
        &[200],
    );
    assert!(std::fs::symlink_metadata(w.data().join("copied-here/up"))
        .expect("copied link")
        .file_type()
        .is_symlink());
    w.send(
        "read via copied up link",
        &request(Op::Read, "/copied-here/up/data/hello.txt", None).expect("req"),
        &forbidden,
    );
    w.send(
        "rm -r copied dir",
        &request(Op::RemoveR, "/copied-here", None).expect("req"),
        &[204],
    );
    w.send(
        "rm -r /dir",
        &request(Op::RemoveR, "/dir", None).expect("req"),
        &[204],
    );
    w.plant();
    w.send(
        "rm /dir non-recursive",
        &request(Op::Remove, "/dir", None).expect("req"),
        &[400],
    );

    // Batch entries that pass through links, or are links themselves.
    let batches: [(&str, &[u8], tar::EntryType, &[u16]); 7] = [
        (
            "through abs link",
            b"abs_dir/pwned.txt",
            tar::EntryType::Regular,
            &forbidden,
        ),
        (
            "absolute entry through link",
            b"/abs_dir/pwned.txt",
            tar::EntryType::Regular,
            &forbidden,
        ),
        (
            "through up link",
            b"dir/up/data/pwned.txt",
            tar::EntryType::Regular,
            &forbidden,
        ),
        (
            "through other volume link",
            b"other_vol/pwned.txt",
            tar::EntryType::Regular,
            &forbidden,
        ),
        (
            "symlink entry",
            b"evil-link",
            tar::EntryType::Symlink,
            &[400],
        ),
        (
            "hard link entry",
            b"evil-hardlink",
            tar::EntryType::Link,
            &[400],
        ),
        ("fifo entry", b"evil-fifo", tar::EntryType::Fifo, &[400]),
    ];
    for (label, name, kind, allowed) in batches {
        w.plant();
        let req = Req {
            method: "POST",
            target: files_url("batch", "path=/"),
            headers: vec![("Content-Type", "application/x-tar")],
            body: tar_of(&[
                (b"ok-first.txt", b"fine", tar::EntryType::Regular),
                (name, b"pwned", kind),
            ]),
        };
        w.send(&format!("batch {label}"), &req, allowed);
        assert!(
            std::fs::symlink_metadata(w.data().join("ok-first.txt")).is_err(),
            "batch {label}: all or nothing, the first entry must not be written"
        );
    }
    eprintln!("symlinks: {} requests", w.cases);
}

#[test]
fn nul_bytes_and_overlong_names_and_paths_are_invalid_argument() {
    let mut w = World::new();
    let long_name = format!("/{}", "n".repeat(256));
    let long_utf8_name = format!("/{}", "é".repeat(128)); // 256 bytes
    let long_path = format!("/{}", vec!["d".repeat(200); 21].join("/")); // 4221 bytes
    let many_components = "/a".repeat(2049); // 4098 bytes
    for p in [
        long_name.as_str(),
        &long_utf8_name,
        &long_path,
        &many_components,
        &format!("{long_name}/x"),
        &format!("/dir/{}", "y".repeat(300)),
    ] {
        w.all_routes_invalid("overlong", &enc(p), Some(p));
    }
    // Far past the limit: in a URL the HTTP layer may refuse it first (414); in JSON, 400.
    let huge = format!("/{}", "x/".repeat(40_000));
    for op in ALL_OPS {
        let req = request(op, &enc(&huge), Some(&huge)).expect("req");
        w.send(&format!("huge {op:?}"), &req, &[400, 414]);
    }
    for p in [
        "/a\0b",
        "\0",
        "/\0",
        "/dir/\0/..",
        "/hello.txt\0.jpg",
        "/abs_dir\0/secret.txt",
    ] {
        w.all_routes_invalid("nul", &enc(p), Some(p));
    }
    // At the limits: accepted (or refused cleanly), never an internal error.
    let name_255 = format!("/{}", "m".repeat(255));
    let r = w.send(
        "255-byte name write",
        &request(Op::Write, &enc(&name_255), None).expect("req"),
        &[200],
    );
    assert_eq!(r.status, 200);
    let r = w.send(
        "255-byte name read",
        &request(Op::Read, &enc(&name_255), None).expect("req"),
        &[200],
    );
    assert_eq!(r.body, b"pwned");
    let path_4096 = {
        let mut s = String::new();
        while s.len() + 201 <= 4096 {
            s.push('/');
            s.push_str(&"p".repeat(200));
        }
        let rest = 4096 - s.len() - 1;
        s.push('/');
        s.push_str(&"q".repeat(rest));
        s
    };
    assert_eq!(path_4096.len(), 4096);
    w.send(
        "4096-byte path write",
        &request(Op::Write, &enc(&path_4096), None).expect("req"),
        &[200, 400],
    );
    w.send(
        "4096-byte path read",
        &request(Op::Read, &enc(&path_4096), None).expect("req"),
        &[200, 400, 404],
    );
    w.send(
        "4096-byte path list",
        &request(Op::ListR, "/", None).expect("req"),
        &[200],
    );
    // Volume names that are not names.
    for name in [
        "..",
        "%2e%2e",
        "VOL",
        "v%00l",
        &"v".repeat(300),
        "vol%2f..%2f..",
        ".hidden",
        "-dash",
    ] {
        let req = Req {
            method: "GET",
            target: format!("/v1/volumes/{name}/files/content?path=/hello.txt").into_bytes(),
            headers: vec![],
            body: vec![],
        };
        w.send(&format!("volume name {name:?}"), &req, &[400, 404]);
    }
    eprintln!("nul/overlong: {} requests", w.cases);
}

fn plant_non_utf8(data: &Path) {
    let name = |b: &[u8]| data.join(OsStr::from_bytes(b));
    std::fs::write(name(b"bad\xffname.txt"), b"latin").expect("non-utf8 file");
    std::fs::write(name(b"\xc0\xae\xc0\xae"), b"overlong").expect("non-utf8 file");
    std::fs::create_dir(name(b"dir\xfe\xfd")).expect("non-utf8 dir");
    std::fs::write(name(b"dir\xfe\xfd/inner\x80.txt"), b"inner").expect("non-utf8 file");
    std::fs::create_dir_all(data.join("plain/sub")).expect("dir");
    std::fs::write(data.join("plain").join(OsStr::from_bytes(b"x\xff")), b"x")
        .expect("non-utf8 file");
    std::os::unix::fs::symlink(OsStr::from_bytes(b"../../\xff\xfe"), name(b"link\xff"))
        .expect("non-utf8 link");
}

#[test]
fn non_utf8_names_on_disk_are_listed_without_failing() {
    let mut w = World::new();
    let data = w.data();
    plant_non_utf8(&data);
    for q in ["/", "/plain", "/plain/sub"] {
        for op in [Op::List, Op::ListR] {
            w.plant();
            let r = w.send(
                &format!("{op:?} {q} with non-UTF-8 names"),
                &request(op, &enc(q), None).expect("req"),
                &[200],
            );
            let v: Value = serde_json::from_slice(&r.body).expect("list answers JSON");
            assert!(v["entries"].is_array(), "{v}");
        }
    }
    let r = w.send(
        "list -r / glob",
        &Req {
            method: "GET",
            target: files_url("list", "path=/&recursive=true&glob=**"),
            headers: vec![],
            body: vec![],
        },
        &[200],
    );
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    let all = v["entries"].as_array().expect("entries").len();
    assert!(all >= 6, "the non-UTF-8 entries are listed (lossily): {v}");
    // Paging through them with the smallest page ends.
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= all + 2, "paging with limit=1 does not end");
        let mut q = "path=/&recursive=true&limit=1".to_owned();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = w.send(
            "page",
            &Req {
                method: "GET",
                target: files_url("list", &q),
                headers: vec![],
                body: vec![],
            },
            &[200],
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // The lossy names lead nowhere harmful.
    for p in [
        "/bad\u{fffd}name.txt",
        "/\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
        "/dir\u{fffd}\u{fffd}/inner\u{fffd}.txt",
        "/link\u{fffd}",
    ] {
        for op in [Op::Read, Op::Stat, Op::Exists, Op::List, Op::CopySrc] {
            w.send(
                &format!("{op:?} lossy {p:?}"),
                &request(op, &enc(p), Some(p)).expect("req"),
                &[200, 400, 403, 404],
            );
        }
    }
    // Copying and removing trees that hold such names works on the real entries.
    w.send(
        "cp -r /plain",
        &json_req(
            "copy",
            json!({"src": "/plain", "dst": "/plain2", "recursive": true}),
        ),
        &[200],
    );
    assert!(
        w.data()
            .join("plain2")
            .join(OsStr::from_bytes(b"x\xff"))
            .exists(),
        "the copy keeps the raw name"
    );
    w.send(
        "rm -r /plain2",
        &request(Op::RemoveR, "/plain2", None).expect("req"),
        &[204],
    );
    w.send(
        "mv /plain",
        &json_req("move", json!({"src": "/plain", "dst": "/plain3"})),
        &[200],
    );
    w.send(
        "rm -r /plain3",
        &request(Op::RemoveR, "/plain3", None).expect("req"),
        &[204],
    );
    assert!(!w.data().join("plain3").exists());
    eprintln!("non-utf8: {} requests", w.cases);
}

#[test]
fn removing_the_root_recursively_empties_a_volume_with_non_utf8_names() {
    let mut w = World::new();
    let data = w.data();
    plant_non_utf8(&data);
    w.send(
        "rm -r /",
        &request(Op::RemoveR, "/", None).expect("req"),
        &[204],
    );
    let left: Vec<_> = dir_names(&data);
    assert!(
        left.is_empty(),
        "DELETE / recursive should empty the volume; left: {left:?}"
    );
    let (used, count) = w.api.usage(VOL);
    assert_eq!((used, count), (0, 0), "usage of an emptied volume");
}

#[test]
fn paging_returns_every_entry_even_when_non_utf8_names_look_alike() {
    let mut w = World::new();
    let data = w.data();
    // Two raw names with the same lossy form ("x\u{fffd}"), and one that really is that form.
    for raw in [&b"x\xff"[..], b"x\xfe", "x\u{fffd}".as_bytes(), b"y"] {
        std::fs::write(data.join(OsStr::from_bytes(raw)), b"1").expect("write");
    }
    let full = w.api.list(VOL, "/", true).expect(200, "full list").json();
    let all: Vec<String> = full["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_owned())
        .collect();
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut cursors = Vec::new();
    loop {
        assert!(
            paged.len() <= all.len(),
            "paging with limit=1 does not end: the cursors so far are {cursors:?}; entries {paged:?}; one page has {all:?}"
        );
        let mut q = "path=/&recursive=true&limit=1".to_owned();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = w.send(
            "page",
            &Req {
                method: "GET",
                target: files_url("list", &q),
                headers: vec![],
                body: vec![],
            },
            &[200],
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        paged.extend(
            v["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| e["path"].as_str().expect("path").to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => {
                cursors.push(c.to_owned());
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(
        paged, all,
        "paging with limit=1 must return the same entries as one big page"
    );
}

#[test]
fn search_replace_edit_and_archive_do_not_follow_links_out() {
    let mut w = World::new();
    let secret_words = "S3CRET";
    let forbidden = [400, 403, 404];
    // Search and replace walk the tree without following links, so they find nothing outside.
    for path in [
        "/",
        "/abs_dir",
        "/rel_dir",
        "/dir",
        "/proc_cwd",
        "/other_vol",
        "/volroot",
    ] {
        w.plant();
        let r = w.send(
            &format!("search {path}"),
            &json_req(
                "search",
                json!({"pattern": secret_words, "path": path, "regex": false}),
            ),
            &[200, 400, 403, 404],
        );
        if r.status == 200 {
            assert!(
                !r.text().contains("secret.txt"),
                "search {path} found an outside file: {}",
                r.text()
            );
        }
        w.plant();
        w.send(
            &format!("replace {path}"),
            &json_req("replace", json!({"pattern": secret_words, "replacement": "PWNED", "path": path, "regex": false})),
            &[200, 400, 403, 404],
        );
        w.plant();
        w.send(
            &format!("replace {path} with a glob"),
            &json_req("replace", json!({"pattern": ".*", "replacement": "PWNED", "path": path, "glob": "**/secret*"})),
            &[200, 400, 403, 404],
        );
    }
    // Edit through or onto a link that leads out: refused, the outside file untouched.
    for path in [
        "/abs_file",
        "/rel_file",
        "/chain_file",
        "/abs_dir/secret.txt",
        "/proc_cwd/secret.txt",
        "/other_vol/other-secret.txt",
    ] {
        w.plant();
        w.send(
            &format!("edit {path}"),
            &json_req(
                "edit",
                json!({"path": path, "old": secret_words, "new": "PWNED"}),
            ),
            &forbidden,
        );
    }
    // Archives carry links as links (or leave them out), never what they point to.
    for path in ["/", "/dir"] {
        w.plant();
        let target = files_url("archive", &format!("path={}&format=tar", enc(path)));
        w.send(
            &format!("archive {path}"),
            &Req {
                method: "GET",
                target,
                headers: vec![],
                body: vec![],
            },
            &[200],
        );
    }
    for path in [
        "/abs_dir",
        "/rel_dir",
        "/dir/up",
        "/volroot",
        "/other_vol",
        "/loop_a",
        "/fifo",
        "/inside_dir_ok",
    ] {
        for format in ["tar", "tar.gz", "zip"] {
            w.plant();
            let target = files_url("archive", &format!("path={}&format={format}", enc(path)));
            w.send(
                &format!("archive {path} {format}"),
                &Req {
                    method: "GET",
                    target,
                    headers: vec![],
                    body: vec![],
                },
                &[200, 400, 403, 404],
            );
        }
    }
}
