//! "A key belongs to one tenant; a tenant sees only its own volumes. A volume of another tenant
//! is `not_found`, exactly as if it did not exist." Admin routes need an admin key; every route
//! but health and the OpenAPI document (and the public ones the document declares, each with a
//! reason) needs a key.

mod harness;

use harness::{enc, snapshot, Api, Resp, Server, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};

const VOL: &str = "team-data";

/// One request.
struct Route {
    label: &'static str,
    method: Method,
    /// Path and query, sent as written.
    pq: String,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
}

impl Route {
    fn new(label: &'static str, method: Method, pq: String) -> Route {
        Route {
            label,
            method,
            pq,
            body: None,
            headers: Vec::new(),
        }
    }

    fn json(mut self, v: Value) -> Route {
        self.body = Some(serde_json::to_vec(&v).expect("json"));
        self.headers
            .push(("Content-Type", "application/json".into()));
        self
    }

    fn body(mut self, b: Vec<u8>, content_type: &str) -> Route {
        self.body = Some(b);
        self.headers.push(("Content-Type", content_type.into()));
        self
    }

    fn header(mut self, k: &'static str, v: &str) -> Route {
        self.headers.push((k, v.into()));
        self
    }

    fn send(&self, api: &Api, extra: &[(&str, &str)]) -> Resp {
        let mut headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.extend_from_slice(extra);
        api.send(self.method.clone(), &self.pq, &headers, self.body.clone())
    }
}

/// A tar with one regular file.
fn one_file_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "batch.txt", &b"batch"[..])
        .expect("tar");
    b.into_inner().expect("tar")
}

/// Every route that names a volume, with a valid request for each.
fn volume_routes(vol: &str) -> Vec<Route> {
    use Method as M;
    let v = format!("/v1/volumes/{vol}");
    let p = enc("/f.txt");
    // base64 of "/tus.txt"
    let tus_meta = "path L3R1cy50eHQ=";
    vec![
        Route::new("get", M::GET, v.clone()),
        Route::new(
            "get fields",
            M::GET,
            format!("{v}?fields=name,id,used_bytes"),
        ),
        Route::new("get one field", M::GET, format!("{v}?fields=labels")),
        Route::new("delete", M::DELETE, v.clone()),
        Route::new("delete force", M::DELETE, format!("{v}?force=true")),
        Route::new("read", M::GET, format!("{v}/files/content?path={p}")),
        Route::new(
            "read range",
            M::GET,
            format!("{v}/files/content?path={p}&offset=1&length=2"),
        ),
        Route::new(
            "read Range header",
            M::GET,
            format!("{v}/files/content?path={p}"),
        )
        .header("Range", "bytes=0-1"),
        Route::new("write", M::PUT, format!("{v}/files/content?path={p}"))
            .body(b"evil".to_vec(), "application/octet-stream"),
        Route::new(
            "write new",
            M::PUT,
            format!("{v}/files/content?path={}", enc("/new.txt")),
        )
        .body(b"evil".to_vec(), "application/octet-stream"),
        Route::new(
            "write no overwrite",
            M::PUT,
            format!("{v}/files/content?path={p}&overwrite=false"),
        )
        .body(b"e".to_vec(), "application/octet-stream"),
        Route::new("batch", M::POST, format!("{v}/files/batch?path=/"))
            .body(one_file_tar(), "application/x-tar"),
        Route::new("mkdir", M::POST, format!("{v}/files/mkdir")).json(json!({"path": "/evil-dir"})),
        Route::new("move", M::POST, format!("{v}/files/move"))
            .json(json!({"src": "/f.txt", "dst": "/g.txt"})),
        Route::new("copy", M::POST, format!("{v}/files/copy"))
            .json(json!({"src": "/d", "dst": "/e", "recursive": true})),
        Route::new("remove", M::DELETE, format!("{v}/files?path={p}")),
        Route::new(
            "remove recursive",
            M::DELETE,
            format!("{v}/files?path=/d&recursive=true"),
        ),
        Route::new(
            "remove root",
            M::DELETE,
            format!("{v}/files?path=/&recursive=true"),
        ),
        Route::new("list", M::GET, format!("{v}/files/list")),
        Route::new(
            "list recursive",
            M::GET,
            format!("{v}/files/list?path=/&recursive=true&glob=**"),
        ),
        Route::new("stat", M::GET, format!("{v}/files/stat?path={p}")),
        Route::new("stat root", M::GET, format!("{v}/files/stat?path=/")),
        Route::new("exists", M::GET, format!("{v}/files/exists?path={p}")),
        Route::new(
            "archive",
            M::GET,
            format!("{v}/files/archive?path=/&format=tar"),
        ),
        Route::new("search", M::POST, format!("{v}/files/search")).json(json!({"pattern": "data"})),
        Route::new("replace", M::POST, format!("{v}/files/replace"))
            .json(json!({"pattern": "data", "replacement": "evil"})),
        Route::new("edit", M::POST, format!("{v}/files/edit"))
            .json(json!({"path": "/f.txt", "old": "data", "new": "evil"})),
        Route::new("signed url", M::POST, format!("{v}/files/url"))
            .json(json!({"path": "/f.txt", "method": "GET", "expires_in": 600})),
        Route::new("watch", M::GET, format!("{v}/watch?path=/")),
        Route::new("tus create", M::POST, format!("{v}/uploads"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "4")
            .header("Upload-Metadata", tus_meta),
        Route::new("tus create with upload", M::POST, format!("{v}/uploads"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "4")
            .header("Upload-Metadata", tus_meta)
            .body(b"evil".to_vec(), "application/offset+octet-stream"),
        Route::new("tus head", M::HEAD, format!("{v}/uploads/0123456789abcdef"))
            .header("Tus-Resumable", "1.0.0"),
        Route::new(
            "tus patch",
            M::PATCH,
            format!("{v}/uploads/0123456789abcdef"),
        )
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .body(b"evil".to_vec(), "application/offset+octet-stream"),
        Route::new(
            "tus delete",
            M::DELETE,
            format!("{v}/uploads/0123456789abcdef"),
        )
        .header("Tus-Resumable", "1.0.0"),
    ]
}

fn names(list: &Value) -> Vec<String> {
    list["volumes"]
        .as_array()
        .expect("volumes array")
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn message(r: &Resp) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn another_tenants_volume_is_not_found_on_every_route() {
    let srv = Server::start();
    let admin = srv.api();
    admin
        .post_json(
            "/v1/volumes",
            &json!({"name": VOL, "labels": {"team": "ml"}}),
        )
        .expect(201, "create volume");
    admin
        .write(VOL, "/f.txt", "default's data")
        .expect(200, "write");
    admin
        .write(VOL, "/d/inner.txt", "inner")
        .expect(200, "write");
    let vol = admin.volume(VOL);
    let id = vol["id"].as_str().expect("id").to_owned();
    let data = srv.volume_data(&id);
    let before = snapshot(&data);

    let created = admin
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "create tenant")
        .json();
    let acme_key = created["key"].as_str().expect("key").to_owned();
    let acme = admin.with_key(Some(&acme_key));
    let me = acme.get("/v1/whoami").expect(200, "whoami").json();
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["admin"], false);

    // Every route on the other tenant's volume: not_found, worded exactly as for a volume
    // that does not exist at all.
    for (real, ghost) in volume_routes(VOL)
        .iter()
        .zip(volume_routes("no-such-volume"))
    {
        let label = real.label;
        let r = real.send(&acme, &[]);
        let g = ghost.send(&acme, &[]);
        assert_eq!(r.status, 404, "acme: {label} {}: {}", real.pq, r.text());
        assert_eq!(g.status, 404, "acme: {label} {}: {}", ghost.pq, g.text());
        if real.method != Method::HEAD {
            assert_eq!(
                r.error_code().as_deref(),
                Some("not_found"),
                "acme: {label}: {}",
                r.text()
            );
            assert_eq!(
                message(&r).replace(VOL, "X"),
                message(&g).replace("no-such-volume", "X"),
                "{label}: the answer must not reveal that {VOL} exists"
            );
        }
        assert!(
            !r.text().contains(&id),
            "{label}: the answer names the volume id"
        );
        assert!(
            !r.text().contains("default's data"),
            "{label}: the answer shows the data"
        );
        assert_eq!(
            snapshot(&data),
            before,
            "{label}: acme changed the default tenant's volume"
        );
    }
    // `if_exists` deletes nothing that the caller cannot see.
    acme.delete(&format!("/v1/volumes/{VOL}?if_exists=true"))
        .expect(204, "delete if_exists");
    acme.delete(&format!("/v1/volumes/{VOL}?if_exists=true&force=true"))
        .expect(204, "delete if_exists force");
    // Not by id either.
    acme.get(&format!("/v1/volumes/{id}"))
        .expect_err(404, "not_found", "get by id");
    assert_eq!(
        admin.volume(VOL)["id"],
        id.as_str(),
        "the volume is still there"
    );
    assert_eq!(
        snapshot(&data),
        before,
        "the default tenant's data is untouched"
    );

    // Listings never show it: plain, with fields, with label filters.
    for q in [
        "",
        "?fields=name",
        "?fields=name,id,labels",
        "?label=team=ml",
        "?label=team=ml&fields=name,id",
        "?label=team=ml&label=team=ml",
    ] {
        let l = acme
            .get(&format!("/v1/volumes{q}"))
            .expect(200, &format!("acme list {q}"))
            .json();
        assert_eq!(
            l["volumes"].as_array().map(Vec::len),
            Some(0),
            "acme list {q}: {l}"
        );
        assert!(!l.to_string().contains(&id), "acme list {q}: {l}");
        let l = admin
            .get(&format!("/v1/volumes{q}"))
            .expect(200, &format!("default list {q}"))
            .json();
        assert_eq!(names(&l).len(), 1, "default list {q}: {l}");
    }

    // acme makes a volume of the same name: a different volume, each sees its own.
    let acme_vol = acme
        .post_json(
            "/v1/volumes",
            &json!({"name": VOL, "labels": {"team": "ml"}}),
        )
        .expect(201, "acme creates the same name")
        .json();
    assert_ne!(acme_vol["id"], id.as_str(), "a separate volume");
    acme.post_json("/v1/volumes", &json!({"name": VOL, "if_not_exists": true}))
        .expect(200, "acme if_not_exists returns its own");
    acme.write(VOL, "/f.txt", "acme's data")
        .expect(200, "acme write");
    assert_eq!(
        acme.read(VOL, "/f.txt").expect(200, "acme read").body,
        b"acme's data"
    );
    assert_eq!(
        admin.read(VOL, "/f.txt").expect(200, "default read").body,
        b"default's data"
    );
    acme.read(VOL, "/d/inner.txt").expect_err(
        404,
        "not_found",
        "acme does not see default's files",
    );
    assert_eq!(acme.usage(VOL), (11, 1));
    assert_eq!(admin.usage(VOL), (19, 2));
    for (who, api, own_id) in [
        ("acme", &acme, acme_vol["id"].as_str().expect("id")),
        ("default", &admin, id.as_str()),
    ] {
        let l = api
            .get("/v1/volumes?label=team=ml&fields=id,name")
            .expect(200, "list")
            .json();
        let ids: Vec<&str> = l["volumes"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|v| v["id"].as_str())
            .collect();
        assert_eq!(ids, [own_id], "{who} lists only its own volume: {l}");
    }

    // A URL acme signed for its own volume does not open default's same-named volume when
    // its tenant part is swapped (the signature binds the tenant).
    let sign = json!({"path": "/f.txt", "method": "GET", "expires_in": 600});
    let acme_url = acme
        .post_json(&format!("/v1/volumes/{VOL}/files/url"), &sign)
        .expect(200, "acme signs")
        .json();
    let default_url = admin
        .post_json(&format!("/v1/volumes/{VOL}/files/url"), &sign)
        .expect(200, "default signs")
        .json();
    let path_of = |u: &Value| {
        let u = u["url"].as_str().expect("url");
        u[u.find("/v1/").expect("a /v1/ url")..].to_owned()
    };
    let (acme_pq, default_pq) = (path_of(&acme_url), path_of(&default_url));
    let segment = |pq: &str| pq.split('/').nth(3).expect("tenant segment").to_owned();
    let forged = acme_pq.replacen(&segment(&acme_pq), &segment(&default_pq), 1);
    assert_ne!(forged, acme_pq);
    let anon = Api::new(&srv.url, None);
    assert_eq!(
        anon.get(&acme_pq).expect(200, "acme's own signed url").body,
        b"acme's data"
    );
    let r = anon.get(&forged);
    assert!(
        r.status == 403 || r.status == 404,
        "forged signed url: {} {}",
        r.status,
        r.text()
    );
    assert!(
        !r.text().contains("default's data"),
        "forged signed url leaks: {}",
        r.text()
    );

    // Deleting one leaves the other.
    acme.delete(&format!("/v1/volumes/{VOL}"))
        .expect(204, "acme deletes its volume");
    assert_eq!(
        admin.read(VOL, "/f.txt").expect(200, "default read").body,
        b"default's data"
    );
    assert_eq!(snapshot(&data), before);
    acme.get(&format!("/v1/volumes/{VOL}"))
        .expect_err(404, "not_found", "acme's is gone");
}

#[test]
fn tenant_keys_cannot_use_admin_routes() {
    let srv = Server::start();
    let admin = srv.api();
    let created = admin
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "create tenant")
        .json();
    let acme = admin.with_key(Some(created["key"].as_str().expect("key")));
    let routes: [(&str, &str, Value); 5] = [
        ("POST", "/v1/admin/tenants", json!({"name": "evil"})),
        ("POST", "/v1/admin/tenants", json!({"name": "acme"})),
        (
            "PUT",
            "/v1/admin/tenants/acme/volume-cap",
            json!({"cap_bytes": 1u64 << 40}),
        ),
        (
            "PUT",
            "/v1/admin/tenants/default/volume-cap",
            json!({"cap_bytes": 1}),
        ),
        (
            "PUT",
            "/v1/admin/tenants/no-such-tenant/volume-cap",
            json!({"cap_bytes": 1}),
        ),
    ];
    for (method, path, body) in &routes {
        let r = if *method == "POST" {
            acme.post_json(path, body)
        } else {
            acme.put_json(path, body)
        };
        r.expect_err(403, "permission_denied", &format!("acme {method} {path}"));
    }
    // Nothing happened: no tenant "evil" (creating it as admin works), caps unchanged.
    admin
        .post_json("/v1/admin/tenants", &json!({"name": "evil"}))
        .expect(201, "evil did not exist yet");
    acme.create_volume("capped");
    let cap = acme.volume("capped")["cap_bytes"].as_u64().expect("cap");
    assert_eq!(cap, 2 << 30, "acme's cap is the default 2 GiB");
    admin.create_volume("mine");
    assert_eq!(
        admin.volume("mine")["cap_bytes"].as_u64(),
        Some(2 << 30),
        "default's cap is unchanged"
    );
    // The admin key itself works on them.
    admin
        .put_json(
            "/v1/admin/tenants/acme/volume-cap",
            &json!({"cap_bytes": 1000}),
        )
        .expect(200, "admin sets cap");
}

/// Authorization headers that must not authenticate anyone.
fn wrong_authorizations() -> Vec<Option<String>> {
    vec![
        None,
        Some("Bearer nsk_wrong_key_0000000000000000".into()),
        Some(format!("Bearer {ADMIN_KEY}x")),
        Some(format!("Bearer {}", &ADMIN_KEY[..ADMIN_KEY.len() - 1])),
        Some(format!("Basic {ADMIN_KEY}")),
        Some(ADMIN_KEY.to_owned()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Token {ADMIN_KEY}")),
    ]
}

#[track_caller]
fn assert_unauthenticated(r: &Resp, method: &Method, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    if *method != Method::HEAD {
        assert_eq!(
            r.error_code().as_deref(),
            Some("unauthenticated"),
            "{what}: {}",
            r.text()
        );
    }
}

#[test]
fn a_missing_or_wrong_key_is_unauthenticated_everywhere_but_health_and_openapi() {
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    admin.write(VOL, "/f.txt", "data").expect(200, "write");
    let id = admin.volume_id(VOL);
    let data = srv.volume_data(&id);
    let before = snapshot(&data);

    let mut routes = volume_routes(VOL);
    routes.extend(volume_routes("no-such-volume"));
    routes.extend([
        Route::new("whoami", Method::GET, "/v1/whoami".into()),
        Route::new("list volumes", Method::GET, "/v1/volumes".into()),
        Route::new(
            "list volumes filtered",
            Method::GET,
            "/v1/volumes?label=a=b&fields=name".into(),
        ),
        Route::new("create volume", Method::POST, "/v1/volumes".into())
            .json(json!({"name": "sneaky"})),
        Route::new("create tenant", Method::POST, "/v1/admin/tenants".into())
            .json(json!({"name": "sneaky"})),
        Route::new(
            "set cap",
            Method::PUT,
            "/v1/admin/tenants/default/volume-cap".into(),
        )
        .json(json!({"cap_bytes": 1})),
    ]);
    let anon = Api::new(&srv.url, None);
    for auth in wrong_authorizations() {
        for route in &routes {
            let extra: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let r = route.send(&anon, &extra);
            assert_unauthenticated(
                &r,
                &route.method,
                &format!("{} {} with Authorization {auth:?}", route.label, route.pq),
            );
        }
    }
    assert_eq!(
        snapshot(&data),
        before,
        "unauthenticated requests changed the volume"
    );
    assert_eq!(
        names(&admin.get("/v1/volumes").expect(200, "list").json()),
        [VOL],
        "no volume was created"
    );
    admin
        .post_json("/v1/admin/tenants", &json!({"name": "sneaky"}))
        .expect(201, "no tenant was created");

    // Health and the OpenAPI document need no key (and a wrong key does not break them).
    for auth in [None, Some("Bearer nope")] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let h = anon
            .send(Method::GET, "/v1/health", &headers, None)
            .expect(200, "health");
        assert_eq!(h.json()["status"], "ok");
        let o = anon
            .send(Method::GET, "/v1/openapi.json", &headers, None)
            .expect(200, "openapi");
        assert!(o.json()["paths"].is_object(), "an OpenAPI document");
    }
}

#[test]
fn every_route_in_the_openapi_document_needs_a_key_unless_it_is_declared_public() {
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    let anon = Api::new(&srv.url, None);
    let doc = anon.get("/v1/openapi.json").expect(200, "openapi").json();
    // The routes that need no key, and why.
    let public = [
        ("GET", "/v1/health"),                 // SPEC: health needs no key
        ("GET", "/v1/signed/{tenant}/{name}"), // SPEC: signed URLs need no key (the signature is the key)
        ("PUT", "/v1/signed/{tenant}/{name}"),
        ("OPTIONS", "/v1/volumes/{name}/uploads"), // tus discovery answers anyone
        ("OPTIONS", "/v1/volumes/{name}/uploads/{id}"),
    ];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let method_uc = method.to_ascii_uppercase();
            let Ok(m) = Method::from_bytes(method_uc.as_bytes()) else {
                continue;
            };
            let declared_public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.is_empty()
                        || s.iter()
                            .any(|x| x.as_object().is_some_and(serde_json::Map::is_empty))
                });
            let allowed_public = public.contains(&(method_uc.as_str(), path.as_str()));
            assert!(
                !declared_public || allowed_public,
                "{method_uc} {path} is declared public in the OpenAPI document; if that is intended, add it with a reason"
            );
            if declared_public {
                continue;
            }
            let concrete = path
                .replace("{name}", VOL)
                .replace("{tenant}", "default")
                .replace("{id}", "0123456789abcdef");
            for auth in wrong_authorizations() {
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                let r = anon.send(m.clone(), &concrete, &headers, None);
                assert_unauthenticated(
                    &r,
                    &m,
                    &format!("{method_uc} {concrete} with Authorization {auth:?}"),
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} operations found in the OpenAPI document"
    );
}
