//! HTTP semantics browsers and foreign clients rely on (issue 15), against the real server:
//! CORS (`--cors-origin`: off by default, preflight, exposed headers, tus discovery untouched),
//! tus's `X-HTTP-Method-Override` and its refusal of `Upload-Concat`, and RFC 9110
//! conditionals (`If-Match: *`, `If-None-Match` → 304 on GET/HEAD, `If-None-Match: *` on PUT).
//! The browser side of CORS (a page on another origin, tus-js-client) is tests/browser/.

mod harness;

use harness::{enc, Api, Server};
use reqwest::Method;

const PAGE: &str = "http://page.example.com:8080";

fn header(r: &harness::Resp, name: &str) -> Option<String> {
    r.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn content(vol: &str, path: &str) -> String {
    format!("/v1/volumes/{vol}/files/content?path={}", enc(path))
}

fn preflight(api: &Api, origin: &str, path: &str) -> harness::Resp {
    api.with_key(None).send(
        Method::OPTIONS,
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", "PATCH"),
            (
                "access-control-request-headers",
                "authorization, tus-resumable, upload-offset, content-type",
            ),
        ],
        None,
    )
}

#[test]
fn cors_is_off_by_default() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("v");
    let r = api.send(Method::GET, "/v1/volumes/v", &[("origin", PAGE)], None);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let r = preflight(&api, PAGE, "/v1/volumes/v/uploads/x");
    assert_eq!(header(&r, "access-control-allow-origin"), None, "{r:?}");
}

#[test]
fn cors_origin_allows_that_origin_only() {
    let s = Server::start_with_flags(&[
        "--cors-origin",
        PAGE,
        "--cors-origin",
        "https://other.example.com",
    ]);
    let api = s.api();
    api.create_volume("v");
    api.write("v", "/a.txt", "hello").expect(200, "write");

    // A preflight is answered at the edge, with no key, whatever the route's methods.
    for path in [
        "/v1/volumes/v/uploads/some-id",
        &content("v", "/a.txt"),
        "/v1/volumes",
    ] {
        let r = preflight(&api, PAGE, path).expect(204, "preflight");
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(PAGE)
        );
        let methods = header(&r, "access-control-allow-methods").unwrap();
        for m in ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"] {
            assert!(methods.contains(m), "{methods}");
        }
        let allowed = header(&r, "access-control-allow-headers").unwrap();
        for h in [
            "authorization",
            "tus-resumable",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "range",
            "if-match",
            "if-none-match",
            "x-http-method-override",
        ] {
            assert!(allowed.contains(h), "{h} not in {allowed}");
        }
        assert!(header(&r, "vary").unwrap().contains("origin"));
    }

    // A real request gets the origin back and the headers a page may read.
    let r = api.send(
        Method::GET,
        &content("v", "/a.txt"),
        &[("origin", PAGE), ("range", "bytes=0-1")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    let exposed = header(&r, "access-control-expose-headers").unwrap();
    for h in [
        "location",
        "upload-offset",
        "upload-length",
        "tus-resumable",
        "tus-version",
        "tus-extension",
        "etag",
        "content-range",
        "upload-expires",
    ] {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
    // Errors carry the CORS headers too (a page can read why it failed).
    let r = api.send(
        Method::GET,
        &content("v", "/missing"),
        &[("origin", PAGE)],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );

    // Another origin is not allowed, on preflights or requests.
    let evil = "http://evil.example.net";
    let r = preflight(&api, evil, "/v1/volumes");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(header(&r, "access-control-allow-methods"), None);
    let r = api.send(Method::GET, "/v1/volumes/v", &[("origin", evil)], None);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    // tus discovery (OPTIONS without Access-Control-Request-Method) still reaches tus.
    let r = api.send(
        Method::OPTIONS,
        "/v1/volumes/v/uploads",
        &[("origin", PAGE)],
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
    assert!(header(&r, "tus-extension").unwrap().contains("creation"));
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
}

#[test]
fn cors_origin_star_allows_any_origin_and_bad_origins_are_refused_at_start() {
    let s = Server::start_with_flags(&["--cors-origin", "*"]);
    let api = s.api();
    let r = preflight(&api, "http://anything.example.org", "/v1/volumes").expect(204, "preflight");
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let r = api.send(
        Method::GET,
        "/v1/health",
        &[("origin", "http://x.example.org")],
        None,
    );
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );

    let out = std::process::Command::new(harness::BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--cors-origin",
            "example.com/app",
        ])
        .env("NULLSPACE_DATA_DIR", s.scratch("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cors-origin"), "{err}");
}

fn tus_create(
    api: &Api,
    vol: &str,
    path: &str,
    len: usize,
    extra: &[(&str, &str)],
) -> harness::Resp {
    use base64::Engine;
    let meta = format!(
        "path {}",
        base64::engine::general_purpose::STANDARD.encode(path)
    );
    let len = len.to_string();
    let mut headers = vec![
        ("tus-resumable", "1.0.0"),
        ("upload-length", len.as_str()),
        ("upload-metadata", meta.as_str()),
    ];
    headers.extend_from_slice(extra);
    api.send(
        Method::POST,
        &format!("/v1/volumes/{vol}/uploads"),
        &headers,
        None,
    )
}

#[test]
fn tus_x_http_method_override_is_the_method_it_names() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("v");
    let r = tus_create(&api, "v", "/up.bin", 10, &[]).expect(201, "create");
    let loc = header(&r, "location").unwrap();

    let post_as = |method: &str, offset: Option<&str>, body: Option<&[u8]>| {
        let mut h = vec![
            ("tus-resumable", "1.0.0"),
            ("x-http-method-override", method),
        ];
        if let Some(o) = offset {
            h.push(("upload-offset", o));
            h.push(("content-type", "application/offset+octet-stream"));
        }
        api.send(Method::POST, &loc, &h, body.map(<[u8]>::to_vec))
    };
    let r = post_as("PATCH", Some("0"), Some(b"01234")).expect(204, "POST as PATCH");
    assert_eq!(header(&r, "upload-offset").as_deref(), Some("5"));
    let r = post_as("HEAD", None, None).expect(200, "POST as HEAD");
    assert_eq!(header(&r, "upload-offset").as_deref(), Some("5"));
    assert_eq!(header(&r, "upload-length").as_deref(), Some("10"));
    post_as("PATCH", Some("5"), Some(b"56789")).expect(204, "POST as PATCH");
    assert_eq!(
        api.read("v", "/up.bin").expect(200, "read").body,
        b"0123456789"
    );

    // DELETE through the override terminates.
    let r = tus_create(&api, "v", "/gone.bin", 4, &[]).expect(201, "create");
    let loc2 = header(&r, "location").unwrap();
    api.send(
        Method::POST,
        &loc2,
        &[
            ("tus-resumable", "1.0.0"),
            ("x-http-method-override", "DELETE"),
        ],
        None,
    )
    .expect(204, "POST as DELETE");
    api.send(Method::HEAD, &loc2, &[("tus-resumable", "1.0.0")], None)
        .expect(404, "terminated");

    // The override changes nothing elsewhere: a POST to a file route stays a POST (405).
    let r = api.send(
        Method::POST,
        &content("v", "/up.bin"),
        &[("x-http-method-override", "DELETE")],
        None,
    );
    assert_eq!(r.status, 405);
    assert_eq!(api.read("v", "/up.bin").status, 200);
}

#[test]
fn tus_upload_concat_is_refused_and_creates_nothing() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("v");
    for concat in [
        "partial",
        "final;/v1/volumes/v/uploads/a /v1/volumes/v/uploads/b",
    ] {
        tus_create(&api, "v", "/part.bin", 10, &[("upload-concat", concat)]).expect_err(
            400,
            "invalid_argument",
            "Upload-Concat",
        );
    }
    let uploads = api.get("/v1/volumes/v/uploads").expect(200, "list").json();
    assert_eq!(uploads["uploads"].as_array().unwrap().len(), 0, "{uploads}");
    let r = api.send(Method::OPTIONS, "/v1/volumes/v/uploads", &[], None);
    assert!(!header(&r, "tus-extension")
        .unwrap()
        .contains("concatenation"));
}

#[test]
fn if_match_star_means_the_file_exists() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("v");
    let put = |path: &str, h: &[(&str, &str)], body: &str| {
        api.send(
            Method::PUT,
            &content("v", path),
            h,
            Some(body.as_bytes().to_vec()),
        )
    };
    put("/a.txt", &[("if-match", "*")], "new").expect_err(
        409,
        "conflict",
        "If-Match: * on a missing file",
    );
    assert_eq!(api.read("v", "/a.txt").status, 404, "nothing was written");
    api.write("v", "/a.txt", "one").expect(200, "write");
    put("/a.txt", &[("if-match", "*")], "two").expect(200, "If-Match: * on an existing file");
    assert_eq!(api.read("v", "/a.txt").text(), "two");
    // A stale etag is still the SPEC's conflict; the current one writes.
    let etag = api.stat("v", "/a.txt").json()["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    put("/a.txt", &[("if-match", "\"stale\"")], "x").expect_err(409, "conflict", "stale etag");
    put("/a.txt", &[("if-match", &format!("\"{etag}\""))], "three").expect(200, "current etag");
    put("/a.txt", &[("if-match", "\"a\", \"b\"")], "x").expect_err(
        400,
        "invalid_argument",
        "a list",
    );
    assert_eq!(api.read("v", "/a.txt").text(), "three");

    // If-None-Match: * writes only a new file.
    put("/a.txt", &[("if-none-match", "*")], "x").expect_err(
        409,
        "already_exists",
        "If-None-Match: *",
    );
    put("/b.txt", &[("if-none-match", "*")], "b").expect(200, "If-None-Match: * on a new file");
    assert_eq!(api.read("v", "/b.txt").text(), "b");
    assert_eq!(api.read("v", "/a.txt").text(), "three");
}

#[test]
fn if_none_match_on_get_and_head_gives_304() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("v");
    api.write("v", "/a.txt", "hello").expect(200, "write");
    let r = api.read("v", "/a.txt").expect(200, "read");
    let etag = header(&r, "etag").unwrap();
    let url = content("v", "/a.txt");

    for method in [Method::GET, Method::HEAD] {
        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".into(),
        ] {
            let r = api.send(
                method.clone(),
                &url,
                &[("if-none-match", &inm), ("range", "bytes=0-1")],
                None,
            );
            assert_eq!(r.status, 304, "{method} If-None-Match: {inm}");
            assert!(r.body.is_empty());
            assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()));
        }
        let r = api.send(
            method.clone(),
            &url,
            &[("if-none-match", "\"other\"")],
            None,
        );
        assert_eq!(r.status, 200, "{method} with a non-matching etag");
    }
    // After a change the old etag no longer matches.
    api.write("v", "/a.txt", "changed").expect(200, "write");
    let r = api
        .send(Method::GET, &url, &[("if-none-match", &etag)], None)
        .expect(200, "changed");
    assert_eq!(r.text(), "changed");
    // A missing file is still 404, whatever the condition.
    api.send(
        Method::GET,
        &content("v", "/none"),
        &[("if-none-match", "*")],
        None,
    )
    .expect_err(404, "not_found", "missing");
    // Signed URLs answer conditionals the same way.
    let signed = api
        .post_json(
            "/v1/volumes/v/files/url",
            &serde_json::json!({"path": "/a.txt", "expires_in": 60}),
        )
        .expect(200, "sign")
        .json();
    let surl = signed["url"].as_str().unwrap();
    let path = surl.strip_prefix(&api.base).unwrap_or(surl);
    let now = header(&api.read("v", "/a.txt"), "etag").unwrap();
    let r = api
        .with_key(None)
        .send(Method::GET, path, &[("if-none-match", &now)], None);
    assert_eq!(r.status, 304);
}
