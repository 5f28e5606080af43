//! Keys with a lifecycle and roles (issue 17): every route of the OpenAPI document answered
//! for every kind of credential as its role allows, with nothing changed where it is refused;
//! revocation and expiry; the role rules for making and revoking keys; secrets never listed or
//! logged.

mod harness;

use std::time::{Duration, Instant};

use harness::{contains, enc, raw_request, snapshot, Api, OutputExt, Resp, Server, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};

const VOL: &str = "team-data";

/// What a credential may do, as the contract says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cred {
    Admin,
    Member,
    ReadOnly,
    Revoked,
    Expired,
    /// The admin key of another tenant (not the operator's).
    OtherTenant,
    /// A volume token of the volume, read-write.
    TokenRw,
    /// A read-only volume token of the volume.
    TokenRo,
    /// A volume token confined to the directory [`PREFIX`], read-write.
    PathRw,
    /// A read-only volume token confined to [`PREFIX`].
    PathRo,
}

/// The directory the path tokens of the matrix are confined to. Every path the matrix sends
/// lies outside it (`/f.txt`, `/`), so each of their file requests is `not_found`.
const PREFIX: &str = "/d";

/// The routes a volume token reaches (the contract: file routes, tus, watch, archive
/// download, signed-URL creation of its volume).
fn file_route(path: &str) -> bool {
    path.starts_with("/v1/volumes/{name}/files")
        || path.starts_with("/v1/volumes/{name}/uploads")
        || path == "/v1/volumes/{name}/watch"
}

/// The permission a route needs, written here from the contract (not taken from the server).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Read,
    Write,
    Keys,
    Operator,
}

fn needs(method: &Method, path: &str) -> Needs {
    if path.starts_with("/v1/admin/") {
        Needs::Operator
    } else if path.starts_with("/v1/keys") && method != Method::GET {
        Needs::Keys
    } else if method == Method::GET || method == Method::HEAD || path.ends_with("/files/search") {
        Needs::Read
    } else {
        Needs::Write
    }
}

/// Whether `cred` is refused on a route, and with which status and code.
fn refusal(cred: Cred, needed: Needs, path: &str) -> Option<(u16, &'static str)> {
    let denied = Some((403, "permission_denied"));
    match cred {
        Cred::Revoked | Cred::Expired => Some((401, "unauthenticated")),
        Cred::Admin => None,
        Cred::Member => (needed == Needs::Operator).then_some((403, "permission_denied")),
        Cred::ReadOnly => (needed != Needs::Read)
            .then_some((403, "permission_denied"))
            .or(None),
        Cred::TokenRw => (!file_route(path)).then_some((403, "permission_denied")),
        Cred::TokenRo => {
            (!file_route(path) || needed != Needs::Read).then_some((403, "permission_denied"))
        }
        Cred::PathRw | Cred::PathRo => {
            let write = needed != Needs::Read;
            if !file_route(path) || cred == Cred::PathRo && write {
                denied
            } else {
                // Outside the token's directory: as absent as another tenant's volume.
                Some((404, "not_found"))
            }
        }
        Cred::OtherTenant => {
            if needed == Needs::Operator {
                denied
            } else if path.starts_with("/v1/volumes/{name}") {
                Some((404, "not_found"))
            } else {
                None
            }
        }
    }
}

/// A request to send: path and query, headers, body.
type Request = (String, Vec<(&'static str, String)>, Option<Vec<u8>>);

/// One request for a route of the document: the path filled in and a body where the route
/// takes one (a valid one where it is cheap, so an allowed caller gets past parsing).
fn request(method: &Method, template: &str) -> Request {
    let pq = template
        .replace("{name}", VOL)
        .replace("{tenant}", "acme")
        .replace("/keys/{id}", "/keys/key_0123456789abcdef")
        .replace("/sandboxes/{id}", "/sandboxes/sbx_0123456789abcdef")
        .replace("{id}", "0123456789abcdef");
    let p = enc("/f.txt");
    let json_body = |v: Value| {
        (
            vec![("Content-Type", "application/json".to_owned())],
            Some(serde_json::to_vec(&v).expect("json")),
        )
    };
    let (headers, body) = match (method.as_str(), template) {
        ("PUT", t) if t.ends_with("/files/content") => (
            vec![("Content-Type", "application/octet-stream".to_owned())],
            Some(b"evil".to_vec()),
        ),
        ("POST", t) if t.ends_with("/files/mkdir") => json_body(json!({"path": "/evil-dir"})),
        // To its own name: an allowed caller renames nothing, so later requests still find it.
        ("POST", "/v1/volumes/{name}/rename") => json_body(json!({"new_name": VOL})),
        ("POST", t) if t.ends_with("/files/move") => {
            json_body(json!({"src": "/f.txt", "dst": "/g.txt"}))
        }
        ("POST", t) if t.ends_with("/files/copy") => {
            json_body(json!({"src": "/f.txt", "dst": "/copy.txt"}))
        }
        ("POST", t) if t.ends_with("/files/search") => json_body(json!({"pattern": "data"})),
        ("POST", t) if t.ends_with("/files/replace") => {
            json_body(json!({"pattern": "data", "replacement": "evil"}))
        }
        ("POST", t) if t.ends_with("/files/edit") => {
            json_body(json!({"path": "/f.txt", "old": "data", "new": "evil"}))
        }
        ("POST", t) if t.ends_with("/files/url") => {
            json_body(json!({"path": "/f.txt", "method": "PUT", "expires_in": 600}))
        }
        ("POST", "/v1/volumes") => json_body(json!({"name": "made-by-matrix"})),
        ("POST", t) if t.ends_with("/tokens") => json_body(json!({"expires_in": 60})),
        ("POST", "/v1/keys") => json_body(json!({"role": "read-only"})),
        ("POST", "/v1/admin/tenants") => json_body(json!({"name": "made-by-matrix"})),
        ("PUT", t) if t.ends_with("/volume-cap") => json_body(json!({"cap_bytes": 1})),
        // Sandboxes: a body the server refuses, so that an allowed caller starts nothing.
        ("POST" | "PUT", t) if t.starts_with("/v1/sandboxes") => {
            json_body(json!({"no_such_field": 1}))
        }
        ("POST", t) if t.ends_with("/uploads") => (
            vec![
                ("Tus-Resumable", "1.0.0".to_owned()),
                ("Upload-Length", "4".to_owned()),
                ("Upload-Metadata", "path L3R1cy50eHQ=".to_owned()),
            ],
            None,
        ),
        ("PATCH", _) => (
            vec![
                ("Tus-Resumable", "1.0.0".to_owned()),
                ("Upload-Offset", "0".to_owned()),
                ("Content-Type", "application/offset+octet-stream".to_owned()),
            ],
            Some(b"evil".to_vec()),
        ),
        ("HEAD" | "DELETE", t) if t.contains("/uploads/") => {
            (vec![("Tus-Resumable", "1.0.0".to_owned())], None)
        }
        ("POST", t) if t.ends_with("/files/batch") => (
            vec![("Content-Type", "application/x-tar".to_owned())],
            Some(Vec::new()),
        ),
        _ => (Vec::new(), None),
    };
    let pq = match template {
        t if t.ends_with("/files/content") || t.ends_with("/files/stat") => {
            format!("{pq}?path={p}")
        }
        t if t.ends_with("/files/exists") => format!("{pq}?path={p}"),
        "/v1/volumes/{name}/files" => format!("{pq}?path={p}"),
        t if t.ends_with("/files/batch") => format!("{pq}?path=/"),
        t if t.ends_with("/watch") => format!("{pq}?path=/&since=0"),
        _ => pq,
    };
    (pq, headers, body)
}

/// The routes of the document that need a key: (method, path template).
fn keyed_routes(doc: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let Ok(m) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.is_empty()
                        || s.iter()
                            .any(|x| x.as_object().is_some_and(serde_json::Map::is_empty))
                });
            if !public {
                out.push((m, path.clone()));
            }
        }
    }
    out
}

fn create_key(api: &Api, body: Value) -> (String, String) {
    let made = api
        .post_json("/v1/keys", &body)
        .expect(201, "create key")
        .json();
    (
        made["key"].as_str().expect("key").to_owned(),
        made["info"]["id"].as_str().expect("id").to_owned(),
    )
}

/// The tenant's keys without `last_used_at` (which a refused request may refresh).
fn key_records(api: &Api) -> Value {
    let mut keys = api.get("/v1/keys").expect(200, "keys").json()["keys"].clone();
    for k in keys.as_array_mut().expect("keys") {
        k.as_object_mut().expect("key").remove("last_used_at");
    }
    keys
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_route_answers_each_credential_as_its_role_allows_and_refusals_change_nothing() {
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    admin
        .write(VOL, "/f.txt", "default's data")
        .expect(200, "write");
    let id = admin.volume_id(VOL);
    let data = srv.volume_data(&id);

    let (member, _) = create_key(&admin, json!({"role": "member", "name": "m"}));
    let (read_only, _) = create_key(&admin, json!({"role": "read-only"}));
    let (revoked, revoked_id) = create_key(&admin, json!({"role": "admin"}));
    admin
        .delete(&format!("/v1/keys/{revoked_id}"))
        .expect(200, "revoke");
    let (expired, _) = create_key(&admin, json!({"role": "admin", "expires_in": 1}));
    let expired_api = admin.with_key(Some(&expired));
    wait_until("the key to expire", Duration::from_secs(10), || {
        expired_api.get("/v1/whoami").status == 401
    });
    let other = admin
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "tenant")
        .json()["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let token = |read_only: bool| {
        admin
            .post_json(
                &format!("/v1/volumes/{VOL}/tokens"),
                &json!({"read_only": read_only, "expires_in": 3600}),
            )
            .expect(201, "token")
            .json()["key"]
            .as_str()
            .expect("key")
            .to_owned()
    };
    let (token_rw, token_ro) = (token(false), token(true));
    admin
        .write(VOL, &format!("{PREFIX}/inside.txt"), "inside")
        .expect(200, "write inside");
    let path_token = |read_only: bool| {
        admin
            .post_json(
                &format!("/v1/volumes/{VOL}/tokens"),
                &json!({"path": PREFIX, "read_only": read_only, "expires_in": 3600}),
            )
            .expect(201, "path token")
            .json()["key"]
            .as_str()
            .expect("key")
            .to_owned()
    };
    let (path_rw, path_ro) = (path_token(false), path_token(true));
    let mut secrets = vec![
        token_rw.clone(),
        token_ro.clone(),
        path_rw.clone(),
        path_ro.clone(),
        member.clone(),
        read_only.clone(),
        revoked.clone(),
        expired.clone(),
        other.clone(),
    ];

    let doc = Api::new(&srv.url, None)
        .get("/v1/openapi.json")
        .expect(200, "openapi")
        .json();
    let routes = keyed_routes(&doc);
    assert!(
        routes.len() > 40,
        "the document lists the routes: {}",
        routes.len()
    );
    // The keys routes are in the document, so in the matrix.
    assert!(routes
        .iter()
        .any(|(m, p)| m == Method::DELETE && p == "/v1/keys/{id}"));

    // Refused credentials first, each request checked against the volume's files; then the
    // allowed ones (which may change things) only for their status.
    let order = [
        (Cred::Revoked, revoked.as_str()),
        (Cred::Expired, expired.as_str()),
        (Cred::ReadOnly, read_only.as_str()),
        (Cred::TokenRo, token_ro.as_str()),
        (Cred::PathRo, path_ro.as_str()),
        (Cred::PathRw, path_rw.as_str()),
        (Cred::OtherTenant, other.as_str()),
        (Cred::TokenRw, token_rw.as_str()),
        (Cred::Member, member.as_str()),
        (Cred::Admin, ADMIN_KEY),
    ];
    let mut checked = 0;
    for (cred, key) in order {
        let api = admin.with_key(Some(key));
        for (method, template) in &routes {
            // Deleting the volume would only make later answers `not_found`: leave the
            // allowed deletes to the end.
            let before = snapshot(&data);
            let keys_before = key_records(&admin);
            let (mut pq, headers, body) = request(method, template);
            let refused = refusal(cred, needs(method, template), template);
            if refused.is_none() && template.ends_with("/watch") {
                // An allowed watch streams forever: ask for a volume that does not exist,
                // which answers once, after authorisation.
                pq = pq.replace(VOL, "no-such-volume");
            }
            if matches!(cred, Cred::Admin | Cred::Member)
                && *method == Method::DELETE
                && template == "/v1/volumes/{name}"
            {
                continue;
            }
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r: Resp = api.send(method.clone(), &pq, &hs, body);
            let label = format!("{cred:?} {method} {template}");
            match refused {
                // The list of pending uploads names no path: it shows those within the
                // token's directory (none here), like a listing of the directory.
                Some((404, _))
                    if matches!(cred, Cred::PathRw | Cred::PathRo)
                        && *method == Method::GET
                        && template == "/v1/volumes/{name}/uploads" =>
                {
                    assert_eq!(r.status, 200, "{label}: {}", r.text());
                    assert_eq!(r.json()["uploads"], json!([]), "{label}: {}", r.text());
                }
                // `exists` answers whether it can see the path: outside, it cannot.
                Some((404, _))
                    if matches!(cred, Cred::PathRw | Cred::PathRo)
                        && template.ends_with("/files/exists") =>
                {
                    assert_eq!(r.status, 200, "{label}: {}", r.text());
                    assert_eq!(r.json()["exists"], json!(false), "{label}: {}", r.text());
                    assert_eq!(snapshot(&data), before, "{label} changed the volume");
                }
                Some((status, code)) => {
                    assert_eq!(r.status, status, "{label}: {}", r.text());
                    if *method != Method::HEAD {
                        assert_eq!(
                            r.error_code().as_deref(),
                            Some(code),
                            "{label}: {}",
                            r.text()
                        );
                    }
                    assert_eq!(snapshot(&data), before, "{label} changed the volume");
                    assert_eq!(key_records(&admin), keys_before, "{label} changed the keys");
                    assert!(
                        !String::from_utf8_lossy(&r.body).contains("default's data"),
                        "{label} shows data"
                    );
                }
                None => {
                    assert!(
                        r.status != 401 && r.status != 403,
                        "{label} is allowed, got {}: {}",
                        r.status,
                        r.text()
                    );
                    if cred == Cred::ReadOnly {
                        assert_eq!(snapshot(&data), before, "{label} changed the volume");
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
                        if let Some(k) = v["key"].as_str() {
                            secrets.push(k.to_owned());
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * order.len() - 2);
    // The volume is still there for the refused ones to have been refused on it.
    assert_eq!(admin.read(VOL, "/f.txt").status, 200);
    // Not one secret in the server's log.
    let log = srv.log();
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the log shows a key");
    }
    assert!(!log.contains(ADMIN_KEY), "the log shows the admin key");
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn a_key_stops_working_at_its_expiry_and_not_before() {
    let srv = Server::start();
    let admin = srv.api();
    let made = admin
        .post_json("/v1/keys", &json!({"role": "member", "expires_in": 2}))
        .expect(201, "create")
        .json();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(made["info"]["expires_at"].clone()).expect("expires_at");
    let api = admin.with_key(made["key"].as_str());
    loop {
        let sent = chrono::Utc::now();
        let r = api.get("/v1/whoami");
        if r.status == 401 {
            // Refused: the request was answered after the expiry.
            assert!(chrono::Utc::now() >= expires, "refused before its expiry");
            assert_eq!(r.error_code().as_deref(), Some("unauthenticated"));
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(sent < expires, "accepted after its expiry");
        assert!(
            sent < expires + chrono::Duration::seconds(10),
            "never expired"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn roles_bound_which_keys_a_key_makes_and_revokes() {
    let srv = Server::start();
    let admin = srv.api();
    let (member, member_id) = create_key(&admin, json!({"role": "member"}));
    let (read_only, read_only_id) = create_key(&admin, json!({"role": "read-only"}));
    let (_, admin2_id) = create_key(&admin, json!({"role": "admin", "name": "second"}));
    let m = admin.with_key(Some(&member));
    let ro = admin.with_key(Some(&read_only));

    // whoami tells the role.
    let who = m.get("/v1/whoami").expect(200, "whoami").json();
    assert_eq!(
        (who["role"].as_str(), who["admin"].as_bool()),
        (Some("member"), Some(false))
    );
    assert_eq!(who["key_id"], member_id.as_str());
    assert_eq!(admin.get("/v1/whoami").json()["role"], "admin");

    // A member makes member and read-only keys, not admin ones; read-only makes none.
    m.post_json("/v1/keys", &json!({"role": "admin"}))
        .expect_err(403, "permission_denied", "member makes admin");
    let (_, made_by_member) = create_key(&m, json!({"role": "read-only"}));
    create_key(&m, json!({"role": "member"}));
    ro.post_json("/v1/keys", &json!({"role": "read-only"}))
        .expect_err(403, "permission_denied", "read-only makes a key");
    // `tenant` is for operator keys only.
    admin
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "tenant");
    m.post_json("/v1/keys", &json!({"tenant": "acme"}))
        .expect_err(403, "permission_denied", "member makes a key elsewhere");
    let (acme_key, acme_key_id) = create_key(&admin, json!({"tenant": "acme", "role": "admin"}));
    let acme = admin.with_key(Some(&acme_key));
    assert_eq!(acme.get("/v1/whoami").json()["tenant"], "acme");
    // An admin of acme is no operator.
    acme.post_json("/v1/keys", &json!({"tenant": "default"}))
        .expect_err(
            403,
            "permission_denied",
            "acme admin makes a key in default",
        );
    acme.post_json("/v1/admin/tenants", &json!({"name": "x"}))
        .expect_err(403, "permission_denied", "acme admin is an operator");

    // Bad input names the field.
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({"expires_in": 0}), "expires_in"),
        (json!({"expires_in": 400_000_000u64}), "expires_in"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"nmae": "typo"}), "nmae"),
    ] {
        let r = admin.post_json("/v1/keys", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(field), "{body}: {}", r.text());
    }

    // Revocation: member revokes what is not above it; another tenant's key is not found.
    m.delete(&format!("/v1/keys/{admin2_id}")).expect_err(
        403,
        "permission_denied",
        "member revokes admin",
    );
    m.delete(&format!("/v1/keys/{acme_key_id}")).expect_err(
        404,
        "not_found",
        "member revokes acme's key",
    );
    admin.delete(&format!("/v1/keys/{acme_key_id}")).expect_err(
        404,
        "not_found",
        "default admin revokes acme's key by id",
    );
    ro.delete(&format!("/v1/keys/{made_by_member}")).expect_err(
        403,
        "permission_denied",
        "read-only revokes",
    );
    let revoked = m
        .delete(&format!("/v1/keys/{read_only_id}"))
        .expect(200, "member revokes read-only")
        .json();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    ro.get("/v1/whoami")
        .expect_err(401, "unauthenticated", "revoked key, at once");
    // Twice: the same answer, the first time kept.
    let again = admin
        .delete(&format!("/v1/keys/{read_only_id}"))
        .expect(200, "revoke again")
        .json();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    // A key may revoke itself; then it is gone.
    m.delete(&format!("/v1/keys/{member_id}"))
        .expect(200, "self");
    m.get("/v1/volumes")
        .expect_err(401, "unauthenticated", "self-revoked");
    // The listing shows revoked keys with their time, and last use.
    let list = admin.get("/v1/keys").expect(200, "list").json();
    let row = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == member_id.as_str())
        .expect("member key listed")
        .clone();
    assert!(
        row["revoked_at"].is_string() && row["last_used_at"].is_string(),
        "{row}"
    );
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn key_list_never_shows_a_secret_and_the_cli_prints_a_new_key_once() {
    let srv = Server::start();
    let out = srv.cli(&[
        "key",
        "create",
        "--name",
        "ci",
        "--role",
        "read-only",
        "--expires",
        "30d",
    ]);
    let key = out.assert_ok(&["key", "create"]).trim().to_owned();
    assert!(key.starts_with("nsk_") && key.len() == 52, "{key:?}");
    let who = srv
        .api()
        .with_key(Some(&key))
        .get("/v1/whoami")
        .expect(200, "whoami")
        .json();
    assert_eq!(who["role"], "read-only");
    let json_out = srv.cli(&["--json", "key", "create", "--role", "member"]);
    let made = harness::json(&json_out.assert_ok(&["key", "create", "--json"]));
    let second = made["key"].as_str().expect("key").to_owned();

    for args in [&["key", "list"][..], &["--json", "key", "list"][..]] {
        let listed = srv.cli(args).assert_ok(args);
        for secret in [key.as_str(), second.as_str(), ADMIN_KEY] {
            assert!(
                !listed.contains(secret),
                "`{}` shows a secret",
                args.join(" ")
            );
        }
        assert!(
            listed.contains("ci") && listed.contains("read-only"),
            "{listed}"
        );
        assert!(listed.contains(&key[..12]), "the prefix is shown: {listed}");
    }
    let listed = harness::json(
        &srv.cli(&["--json", "key", "list"])
            .assert_ok(&["key", "list"]),
    );
    let ci = listed["keys"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["name"] == "ci")
        .expect("ci")
        .clone();
    assert!(ci["expires_at"].is_string(), "{ci}");
    let id = ci["id"].as_str().expect("id").to_owned();
    srv.cli(&["key", "revoke", &id])
        .assert_ok(&["key", "revoke"]);
    srv.api().with_key(Some(&key)).get("/v1/whoami").expect_err(
        401,
        "unauthenticated",
        "revoked through the CLI",
    );
    srv.cli(&["key", "create", "--role", "boss"])
        .assert_err(2, "role");
    srv.cli(&["key", "revoke", "key_nope"])
        .assert_err(4, "not found");
    let log = srv.log();
    for secret in [key.as_str(), second.as_str(), ADMIN_KEY] {
        assert!(!log.contains(secret), "the log shows a key");
    }
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn a_revocation_under_load_lets_no_request_through_once_acknowledged() {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    const THREADS: usize = 8;
    /// Requests each thread sends after the acknowledgement before it stops.
    const AFTER_EACH: usize = 25;
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    let block = vec![b'x'; 4096];
    admin
        .write(VOL, "/4k.bin", block.clone())
        .expect(200, "write 4 KiB");
    let (key, id) = create_key(&admin, json!({"role": "member"}));
    // One sequence orders every send and the acknowledgement: a request numbered after the
    // acknowledgement was sent after the revoke call had returned.
    let seq = Arc::new(AtomicU64::new(0));
    let acked_at = Arc::new(AtomicU64::new(u64::MAX));
    let ok_before = Arc::new(AtomicUsize::new(0));
    let read = format!("/v1/volumes/{VOL}/files/content?path=%2F4k.bin");
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let api = admin.with_key(Some(&key));
            let (seq, acked_at, ok_before) = (seq.clone(), acked_at.clone(), ok_before.clone());
            let (read, block) = (read.clone(), block.clone());
            std::thread::spawn(move || {
                // (sequence number, status) of every request this thread sent.
                let mut sent = Vec::new();
                let mut after = 0;
                while after < AFTER_EACH {
                    // Half the threads read 4 KiB, half ask whoami.
                    let pq = if i % 2 == 0 {
                        read.as_str()
                    } else {
                        "/v1/whoami"
                    };
                    let n = seq.fetch_add(1, Ordering::SeqCst);
                    let r = api.get(pq);
                    match r.status {
                        200 if i % 2 == 0 => assert_eq!(r.body, block, "the read's body"),
                        200 | 401 => {}
                        s => panic!("unexpected {s}: {}", r.text()),
                    }
                    if r.status == 200 && acked_at.load(Ordering::SeqCst) == u64::MAX {
                        ok_before.fetch_add(1, Ordering::SeqCst);
                    }
                    if n > acked_at.load(Ordering::SeqCst) {
                        after += 1;
                    }
                    sent.push((n, r.status));
                }
                sent
            })
        })
        .collect();
    wait_until(
        "requests before the revocation",
        Duration::from_secs(30),
        || ok_before.load(Ordering::SeqCst) >= 4 * THREADS,
    );
    admin
        .delete(&format!("/v1/keys/{id}"))
        .expect(200, "revoke");
    let ack = seq.fetch_add(1, Ordering::SeqCst);
    acked_at.store(ack, Ordering::SeqCst);
    let sent: Vec<(u64, u16)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let after: Vec<_> = sent.iter().filter(|(n, _)| *n > ack).collect();
    assert!(
        after.len() >= THREADS * AFTER_EACH,
        "requests after: {}",
        after.len()
    );
    let succeeded = after.iter().filter(|(_, s)| *s == 200).count();
    assert_eq!(
        succeeded,
        0,
        "requests sent after the revocation was acknowledged that still succeeded (of {})",
        after.len()
    );
    assert!(sent.iter().any(|(n, s)| *n < ack && *s == 200));
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn a_volume_token_reaches_its_volume_only_and_dies_with_its_key() {
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    admin.create_volume("other");
    admin
        .write("other", "/secret.txt", "other's data")
        .expect(200, "write");
    let (member, member_id) = create_key(&admin, json!({"role": "member"}));
    let m = admin.with_key(Some(&member));
    let made = m
        .post_json(&format!("/v1/volumes/{VOL}/tokens"), &json!({}))
        .expect(201, "token")
        .json();
    let t = admin.with_key(made["key"].as_str());
    assert_eq!(made["info"]["volume_id"], admin.volume_id(VOL).as_str());
    assert_eq!(made["info"]["read_only"], false);
    // Default lifetime an hour; at most 7 days.
    assert!(made["info"]["expires_at"].is_string());
    for bad in [json!({"expires_in": 0}), json!({"expires_in": 604_801})] {
        admin
            .post_json(&format!("/v1/volumes/{VOL}/tokens"), &bad)
            .expect_err(400, "invalid_argument", "token lifetime");
    }

    t.write(VOL, "/in.txt", "mine")
        .expect(200, "token writes its volume");
    assert_eq!(t.read(VOL, "/in.txt").expect(200, "read").body, b"mine");
    // Another volume of the same tenant: as absent as a volume that does not exist.
    let r = t.read("other", "/secret.txt");
    let g = t.read("no-such-volume", "/secret.txt");
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("not_found"))
    );
    assert_eq!(
        r.text().replace("other", "X"),
        g.text().replace("no-such-volume", "X")
    );
    t.write("other", "/secret.txt", "evil").expect_err(
        404,
        "not_found",
        "token writes another volume",
    );
    assert_eq!(admin.read("other", "/secret.txt").body, b"other's data");
    // Nothing but files: not the volume itself, volumes, sandboxes, keys, tokens.
    for (method, pq) in [
        (Method::GET, format!("/v1/volumes/{VOL}")),
        (Method::DELETE, format!("/v1/volumes/{VOL}")),
        (Method::GET, "/v1/volumes".to_owned()),
        (Method::POST, "/v1/volumes".to_owned()),
        (Method::GET, "/v1/sandboxes".to_owned()),
        (Method::GET, "/v1/keys".to_owned()),
        (Method::POST, "/v1/keys".to_owned()),
        (Method::POST, format!("/v1/volumes/{VOL}/tokens")),
        (Method::GET, "/v1/whoami".to_owned()),
    ] {
        let r = t.send(
            method.clone(),
            &pq,
            &[("Content-Type", "application/json")],
            Some(b"{}".to_vec()),
        );
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (403, Some("permission_denied")),
            "{method} {pq}: {}",
            r.text()
        );
    }
    assert_eq!(admin.volume(VOL)["name"], VOL, "still there");
    // Listed with the keys; revoking the key that made it revokes it.
    let list = admin.get("/v1/keys").expect(200, "list").json();
    assert!(list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["id"] == made["info"]["id"]));
    admin
        .delete(&format!("/v1/keys/{member_id}"))
        .expect(200, "revoke the maker");
    t.read(VOL, "/in.txt")
        .expect_err(401, "unauthenticated", "token of a revoked key");
    // Revoked on its own, through the CLI.
    let tok = srv
        .cli(&["volume", "token", VOL, "--read-only", "--expires", "10m"])
        .assert_ok(&["volume", "token"])
        .trim()
        .to_owned();
    let ro = admin.with_key(Some(&tok));
    assert_eq!(
        ro.read(VOL, "/in.txt").expect(200, "ro token reads").body,
        b"mine"
    );
    ro.write(VOL, "/in.txt", "evil")
        .expect_err(403, "permission_denied", "ro token writes");
    let listed = harness::json(
        &srv.cli(&["--json", "volume", "token", "list"])
            .assert_ok(&["volume", "token", "list"]),
    );
    assert!(
        !listed.to_string().contains(&tok),
        "the list shows the secret"
    );
    let id = listed["keys"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["read_only"] == true && k["revoked_at"].is_null())
        .expect("the ro token listed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    srv.cli(&["volume", "token", "revoke", &id])
        .assert_ok(&["volume", "token", "revoke"]);
    ro.read(VOL, "/in.txt")
        .expect_err(401, "unauthenticated", "revoked token");
    assert!(!srv.log().contains(&tok), "the log shows a token");
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

/// A GET of a signed URL (made by this server), with no key.
fn signed_get(srv: &Server, url: &str) -> Resp {
    let pq = url
        .split_once("/v1/")
        .map(|(_, rest)| format!("/v1/{rest}"))
        .expect("url");
    Api::new(&srv.url, None).get(&pq)
}

/// A path token made by the CLI (`volume token NAME --path DIR`): its secret.
fn cli_path_token(srv: &Server, vol: &str, dir: &str, read_only: bool) -> String {
    let mut args = vec!["volume", "token", vol, "--path", dir, "--expires", "1h"];
    if read_only {
        args.push("--read-only");
    }
    let key = srv.ok(&args).trim().to_owned();
    assert!(
        key.starts_with("nsk_"),
        "volume token prints the key: {key}"
    );
    key
}

#[test]
fn a_path_token_reaches_its_directory_by_volume_paths_and_nothing_outside() {
    let srv = Server::start();
    let admin = srv.api();
    admin.create_volume(VOL);
    admin.create_volume("elsewhere");
    admin
        .write(VOL, "/f.txt", "outside data")
        .expect(200, "write");
    admin
        .write(VOL, "/d/in.txt", "inside data")
        .expect(200, "write");
    admin
        .write(VOL, "/dx/sibling.txt", "sibling data")
        .expect(200, "write");
    admin
        .write("elsewhere", "/d/in.txt", "other volume")
        .expect(200, "write");
    let data = srv.volume_data(&admin.volume_id(VOL));
    // A link inside the directory that points out of it (relative and absolute).
    std::os::unix::fs::symlink("../f.txt", data.join("d/up")).expect("symlink");
    std::os::unix::fs::symlink("/", data.join("d/root")).expect("symlink");

    // The directory must exist and be a directory.
    for (p, code) in [
        ("/nope", "not_found"),
        ("/f.txt", "not_found"),
        ("d", "invalid_argument"),
    ] {
        admin
            .post_json(
                &format!("/v1/volumes/{VOL}/tokens"),
                &json!({"path": p, "expires_in": 60}),
            )
            .expect_err(if code == "not_found" { 404 } else { 400 }, code, p);
    }
    let key = cli_path_token(&srv, VOL, "/d", false);
    let t = admin.with_key(Some(&key));
    let listed = admin.get("/v1/keys").expect(200, "keys").json();
    assert!(
        listed["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["path"] == "/d" && k["volume_id"].is_string()),
        "the token is listed with its path: {listed}"
    );

    // Inside: volume paths, in and out.
    assert_eq!(
        t.read(VOL, "/d/in.txt").expect(200, "read").text(),
        "inside data"
    );
    assert_eq!(
        t.write(VOL, "/d/new.txt", "new")
            .expect(200, "write")
            .json()["path"],
        "/d/new.txt"
    );
    assert_eq!(
        t.stat(VOL, "/d").expect(200, "stat root").json()["path"],
        "/d"
    );
    let listing = t.list(VOL, "/d", true).expect(200, "list").text();
    assert!(
        listing.contains("/d/in.txt") && listing.contains("/d/new.txt"),
        "{listing}"
    );
    t.mv(VOL, "/d/new.txt", "/d/sub/moved.txt", false)
        .expect(200, "move inside");
    t.cp(VOL, "/d/in.txt", "/d/copy.txt", false, false)
        .expect(200, "copy inside");

    let before_outside = |srv: &Server| {
        let mut s = snapshot(&srv.volume_data(&admin.volume_id(VOL)));
        s.retain(|k, _| !k.starts_with("d"));
        s
    };
    let outside = before_outside(&srv);
    // Outside: not_found, for every way of naming it, and nothing changes.
    for p in ["/", "/f.txt", "/dx/sibling.txt", "/dx", "/nope"] {
        t.read(VOL, p).expect_err(404, "not_found", p);
        t.stat(VOL, p).expect_err(404, "not_found", p);
        t.list(VOL, p, true).expect_err(404, "not_found", p);
        t.write(VOL, p, "evil").expect_err(404, "not_found", p);
        t.remove(VOL, p, true).expect_err(404, "not_found", p);
        t.mkdir(VOL, &format!("{p}/made"), true)
            .expect_err(404, "not_found", p);
        t.mv(VOL, "/d/in.txt", &format!("{p}/moved"), true)
            .expect_err(404, "not_found", p);
        t.cp(VOL, "/d/in.txt", &format!("{p}/copied"), true, true)
            .expect_err(404, "not_found", p);
        t.mv(VOL, p, "/d/stolen", true)
            .expect_err(404, "not_found", p);
        t.cp(VOL, p, "/d/stolen", true, true)
            .expect_err(404, "not_found", p);
        for (route, body) in [
            ("search", json!({"pattern": "data", "path": p})),
            (
                "replace",
                json!({"pattern": "data", "replacement": "evil", "path": p}),
            ),
        ] {
            t.post_json(&format!("/v1/volumes/{VOL}/files/{route}"), &body)
                .expect_err(404, "not_found", route);
        }
        t.get(&format!("/v1/volumes/{VOL}/files/archive?path={}", enc(p)))
            .expect_err(404, "not_found", "archive");
        t.post_json(
            &format!("/v1/volumes/{VOL}/files/url"),
            &json!({"path": p, "method": "GET", "expires_in": 60}),
        )
        .expect_err(404, "not_found", "url");
    }
    // The directory itself cannot be removed or moved by its token.
    t.remove(VOL, "/d", true)
        .expect_err(400, "invalid_argument", "remove /d");
    t.mv(VOL, "/d", "/d/x", false)
        .expect_err(400, "invalid_argument", "move /d");
    // Links out of the directory are refused (the resolver is rooted at /d).
    for p in ["/d/up", "/d/root/f.txt", "/d/root/dx/sibling.txt"] {
        let r = t.read(VOL, p);
        assert!(
            matches!(r.status, 403 | 404),
            "{p}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("outside data") && !r.text().contains("sibling data"),
            "{p}"
        );
    }
    // Recursion stays inside: search, replace and the archive never see what is outside.
    let found = t
        .post_json(
            &format!("/v1/volumes/{VOL}/files/search"),
            &json!({"pattern": "data", "path": "/d"}),
        )
        .expect(200, "search")
        .text();
    assert!(
        found.contains("/d/in.txt") && !found.contains("/f.txt") && !found.contains("sibling"),
        "{found}"
    );
    let replaced = t
        .post_json(
            &format!("/v1/volumes/{VOL}/files/replace"),
            &json!({"pattern": "data", "replacement": "DATA", "path": "/d"}),
        )
        .expect(200, "replace")
        .text();
    assert!(!replaced.contains("/f.txt"), "{replaced}");
    let archive = t
        .get(&format!("/v1/volumes/{VOL}/files/archive?path=%2Fd"))
        .expect(200, "archive");
    assert!(!contains(&archive.body, b"outside data") && !contains(&archive.body, b"sibling"));
    assert_eq!(
        before_outside(&srv),
        outside,
        "the token changed something outside /d"
    );
    assert_eq!(
        admin.read(VOL, "/f.txt").expect(200, "read").text(),
        "outside data"
    );

    // Signed URLs are confined too, even to links made after they were signed.
    let url = t
        .post_json(
            &format!("/v1/volumes/{VOL}/files/url"),
            &json!({"path": "/d/later", "method": "GET", "expires_in": 600}),
        )
        .expect(200, "url")
        .json()["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(url.contains("scope=%2Fd"), "{url}");
    std::os::unix::fs::symlink("../f.txt", data.join("d/later")).expect("symlink");
    let got = signed_get(&srv, &url);
    assert_ne!(got.status, 200);
    assert!(!got.text().contains("outside data"));
    // Without its scope (or with another), the URL is not the one signed.
    for changed in [
        url.replace("&scope=%2Fd", ""),
        url.replace("scope=%2Fd", "scope=%2F"),
    ] {
        assert_eq!(signed_get(&srv, &changed).status, 403, "{changed}");
    }
    std::fs::remove_file(data.join("d/later")).expect("rm");
    admin
        .write(VOL, "/d/later", "signed inside")
        .expect(200, "write");
    assert_eq!(signed_get(&srv, &url).text(), "signed inside");

    // Resumable uploads: one into the directory completes; one the admin made to a path
    // outside is as absent as a missing upload.
    let tus = |api: &Api, path: &str| -> Resp {
        // Upload-Metadata values are base64 (of these two paths only).
        let encoded = match path {
            "/d/tus.txt" => "L2QvdHVzLnR4dA==",
            "/tus-outside.txt" => "L3R1cy1vdXRzaWRlLnR4dA==",
            other => panic!("no base64 of {other}"),
        };
        let meta = format!("path {encoded}");
        let hs = [
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "3"),
            ("Upload-Metadata", meta.as_str()),
        ];
        api.send(
            Method::POST,
            &format!("/v1/volumes/{VOL}/uploads"),
            &hs,
            None,
        )
    };
    let patch = |api: &Api, loc: &str| -> Resp {
        let hs = [
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ];
        api.send(Method::PATCH, loc, &hs, Some(b"tus".to_vec()))
    };
    let location = |r: &Resp| -> String {
        let loc = r.headers["location"].to_str().expect("location").to_owned();
        loc.find("/v1/")
            .map(|i| loc[i..].to_owned())
            .expect("a path")
    };
    let made = tus(&t, "/d/tus.txt").expect(201, "tus create inside");
    patch(&t, &location(&made)).expect(204, "tus patch inside");
    assert_eq!(t.read(VOL, "/d/tus.txt").expect(200, "read").text(), "tus");
    tus(&t, "/tus-outside.txt").expect_err(404, "not_found", "tus create outside");
    let theirs = location(&tus(&admin, "/tus-outside.txt").expect(201, "admin tus"));
    patch(&t, &theirs).expect_err(404, "not_found", "tus patch of an upload outside");
    let hs = [("Tus-Resumable", "1.0.0")];
    let head = t.send(Method::HEAD, &theirs, &hs, None);
    assert_eq!(head.status, 404, "tus head of an upload outside");
    t.send(Method::DELETE, &theirs, &hs, None).expect_err(
        404,
        "not_found",
        "tus delete of an upload outside",
    );
    // The list of pending uploads shows the token only its own directory's.
    let listed = |api: &Api| -> Vec<String> {
        let r = api
            .get(&format!("/v1/volumes/{VOL}/uploads"))
            .expect(200, "uploads list");
        r.json()["uploads"]
            .as_array()
            .expect("uploads")
            .iter()
            .map(|u| u["path"].as_str().expect("path").to_owned())
            .collect()
    };
    assert_eq!(listed(&admin), vec!["/tus-outside.txt".to_owned()]);
    assert_eq!(
        listed(&t),
        Vec::<String>::new(),
        "no upload outside is listed"
    );
    patch(&admin, &theirs).expect(204, "the admin's upload is untouched");
    assert_eq!(
        admin
            .read(VOL, "/tus-outside.txt")
            .expect(200, "read")
            .text(),
        "tus"
    );

    // Another volume (even with the same directory) and every non-file route are refused.
    t.read("elsewhere", "/d/in.txt")
        .expect_err(404, "not_found", "other volume");
    t.get("/v1/volumes")
        .expect_err(403, "permission_denied", "volumes");
    t.get("/v1/sandboxes")
        .expect_err(403, "permission_denied", "sandboxes");
    t.get(&format!("/v1/volumes/{VOL}"))
        .expect_err(403, "permission_denied", "volume");

    // A read-only path token reads inside and changes nothing.
    let ro = admin.with_key(Some(&cli_path_token(&srv, VOL, "/d", true)));
    ro.read(VOL, "/d/in.txt").expect(200, "ro read");
    ro.write(VOL, "/d/in.txt", "evil")
        .expect_err(403, "permission_denied", "ro write");

    // The directory moved away or removed: the token sees nothing; one made again under the
    // name is reached again (a token names a directory, not an inode).
    admin
        .mv(VOL, "/d", "/gone", false)
        .expect(200, "move /d away");
    t.read(VOL, "/d/in.txt")
        .expect_err(404, "not_found", "moved away");
    t.read(VOL, "/gone/in.txt")
        .expect_err(404, "not_found", "moved away, new name");
    t.stat(VOL, "/d").expect_err(404, "not_found", "moved away");
    admin.mkdir(VOL, "/d", false).expect(200, "mkdir /d again");
    t.write(VOL, "/d/again.txt", "again")
        .expect(200, "write again");
    admin.remove(VOL, "/d", true).expect(204, "remove /d");
    t.list(VOL, "/d", false)
        .expect_err(404, "not_found", "removed");
    // Replaced by a symlink (to the volume root, say): not followed.
    std::os::unix::fs::symlink(".", data.join("d")).expect("symlink /d");
    t.read(VOL, "/d/f.txt")
        .expect_err(404, "not_found", "symlinked prefix");
    t.read(VOL, "/d/gone/in.txt")
        .expect_err(404, "not_found", "symlinked prefix");
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

/// Data of the attacked volume outside the token's directory.
const SECRET_VOL: &str = "S3CRET-VOLUME-OUTSIDE-PREFIX-7a1e";

#[test]
fn a_path_token_cannot_leave_its_directory_by_any_hostile_path() {
    use harness::hostile::{
        request_in, Op, ALL_OPS, ESCAPING_READS, LINKS, PASSWD_NEEDLE, SECRET, SECRET_CWD,
        SECRET_DEEP, SECRET_OTHER, VOL as HVOL,
    };
    use std::path::Path;
    let srv = Server::start();
    let admin = srv.api();
    let outside = srv.root().join("outside");
    std::fs::create_dir_all(outside.join("sub")).expect("mkdir outside");
    std::fs::write(outside.join("secret.txt"), SECRET).expect("secret");
    std::fs::write(outside.join("sub/deeper.txt"), SECRET_DEEP).expect("secret");
    std::fs::write(srv.cwd().join("secret.txt"), SECRET_CWD).expect("secret");
    let victim_key = admin
        .post_json("/v1/admin/tenants", &json!({"name": "victim"}))
        .expect(201, "tenant")
        .json()["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let victim = admin.with_key(Some(&victim_key));
    victim.create_volume("other");
    victim
        .write("other", "/other-secret.txt", SECRET_OTHER)
        .expect(200, "write");
    let other_id = victim.volume_id("other");
    admin.create_volume(HVOL);
    for (p, c) in [
        ("/top-secret.txt", SECRET_VOL),
        ("/victim.txt", "victim outside"),
        ("/p/hello.txt", "hello"),
    ] {
        admin.write(HVOL, p, c).expect(200, "write");
    }
    let data = srv.volume_data(&admin.volume_id(HVOL));
    let prefix = data.join("p");
    let out = outside.display().to_string();
    // The hostile suite's links, planted in the token's directory (relative ones climb from
    // there: `volroot` and `dir/up` now lead to the volume's own root, outside the directory),
    // and two more that name the volume's data outside it.
    let extra = [("up", "../top-secret.txt"), ("up_dir", "..")];
    let plant = || {
        for (p, c) in [
            ("hello.txt", "hello"),
            ("victim.txt", "victim"),
            ("dir/inner.txt", "inner"),
        ] {
            let at = prefix.join(p);
            if std::fs::read(&at).ok().as_deref() != Some(c.as_bytes()) {
                let _ = std::fs::remove_dir_all(&at);
                let _ = std::fs::remove_file(&at);
                std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
                std::fs::write(&at, c).expect("plant");
            }
        }
        for (name, target) in LINKS.iter().chain(extra.iter()) {
            let target = target
                .replace("{OUT_REL}", out.trim_start_matches('/'))
                .replace("{OUT}", &out)
                .replace("{OTHER}", &other_id);
            let at = prefix.join(name);
            if std::fs::read_link(&at).is_ok_and(|t| t == Path::new(&target)) {
                continue;
            }
            let _ = std::fs::remove_file(&at);
            let _ = std::fs::remove_dir_all(&at);
            std::os::unix::fs::symlink(&target, &at)
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
    };
    plant();
    let key = cli_path_token(&srv, HVOL, "/p", false);
    // What no request may change: the volume outside /p, the directory outside every
    // volume, the server's cwd, the other tenant's volume.
    let outside_prefix = || {
        let mut s = snapshot(&data);
        s.retain(|k, _| !k.starts_with("p"));
        s
    };
    let guarded = || {
        (
            outside_prefix(),
            snapshot(&outside),
            snapshot(&srv.cwd()),
            snapshot(&srv.volume_root(&other_id)),
        )
    };
    let before = guarded();
    let auth = format!("Bearer {key}");
    let mut cases = 0;
    let mut send = |label: &str, method: &str, target: &[u8], hs: &[(&str, &str)], body: &[u8]| {
        cases += 1;
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend_from_slice(hs);
        let r = raw_request(srv.port, method, target, &headers, body)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let shown = format!("{label}: {} {}", r.status, r.text());
        assert!(r.status < 500, "{shown}");
        for needle in [
            SECRET,
            SECRET_DEEP,
            SECRET_CWD,
            SECRET_OTHER,
            SECRET_VOL,
            PASSWD_NEEDLE,
            "victim outside",
        ] {
            assert!(
                !contains(&r.body, needle.as_bytes()),
                "{shown}: leaks {needle:?}"
            );
        }
        assert!(guarded() == before, "{shown}: something outside /p changed");
        plant();
        r
    };

    // Positive controls: links that stay inside the directory work.
    let get = |p: &str| format!("/v1/volumes/{HVOL}/files/content?path={}", enc(p)).into_bytes();
    let r = send("inside link", "GET", &get("/p/inside_ok"), &[], b"");
    assert_eq!(r.body, b"hello", "{}", r.text());
    let r = send(
        "inside dir link",
        "GET",
        &get("/p/inside_dir_ok/inner.txt"),
        &[],
        b"",
    );
    assert_eq!(r.body, b"inner", "{}", r.text());

    // Every read the hostile suite refuses, from inside the directory, and the ones that lead
    // to the volume's own data outside it.
    let reads: Vec<String> = ESCAPING_READS
        .iter()
        .map(|p| format!("/p{p}"))
        .chain(
            [
                "/p/volroot/top-secret.txt",
                "/p/dir/up/top-secret.txt",
                "/p/up",
                "/p/up_dir/top-secret.txt",
                "/p/../top-secret.txt",
                "/p/dir/../../top-secret.txt",
                "/top-secret.txt",
                "/",
            ]
            .map(str::to_owned),
        )
        .collect();
    for p in &reads {
        let r = send(&format!("read {p}"), "GET", &get(p), &[], b"");
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "read {p}: {}",
            r.status
        );
    }
    let raw = send(
        "read %2e%2e",
        "GET",
        format!("/v1/volumes/{HVOL}/files/content?path=/p/%2e%2e/top-secret.txt").as_bytes(),
        &[],
        b"",
    );
    assert!(matches!(raw.status, 400 | 404), "{}", raw.text());

    // Every file route, with every planted link (and below it) and with paths outside.
    let names: Vec<String> = LINKS
        .iter()
        .chain(extra.iter())
        .flat_map(|(n, _)| [format!("/p/{n}"), format!("/p/{n}/x")])
        .chain(["/", "/victim.txt", "/top-secret.txt", "/new-outside/x"].map(str::to_owned))
        .collect();
    for op in ALL_OPS {
        for p in &names {
            if let Some(req) = request_in("/p", op, &enc(p), Some(p)) {
                let r = send(
                    &format!("{op:?} {p}"),
                    req.method,
                    &req.target,
                    &req.headers,
                    &req.body,
                );
                if !p.starts_with("/p/") && op == Op::Exists {
                    assert_eq!(r.text(), r#"{"exists":false}"#, "{p} is outside");
                } else if !p.starts_with("/p/") {
                    assert_eq!(r.status, 404, "{op:?} {p} is outside: {}", r.text());
                }
            }
        }
    }
    // Search, replace, archive and recursive listing of the whole directory: nothing from
    // outside (checked by `send`), and the links are not followed out.
    for (method, target, body) in [
        ("POST", "search", json!({"pattern": "S3CRET", "path": "/p"})),
        (
            "POST",
            "replace",
            json!({"pattern": "S3CRET", "replacement": "x", "path": "/p"}),
        ),
    ] {
        let target = format!("/v1/volumes/{HVOL}/files/{target}").into_bytes();
        let r = send(
            "recursion",
            method,
            &target,
            &[("Content-Type", "application/json")],
            &serde_json::to_vec(&body).expect("json"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for q in ["archive?path=%2Fp", "list?path=%2Fp&recursive=true"] {
        let target = format!("/v1/volumes/{HVOL}/files/{q}").into_bytes();
        let r = send(q, "GET", &target, &[], b"");
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
    // Another volume and a sandbox route are refused.
    let r = send(
        "other volume",
        "GET",
        b"/v1/volumes/other/files/list?path=%2F",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = send("sandboxes", "GET", b"/v1/sandboxes", &[], b"");
    assert_eq!(r.status, 403);
    assert!(cases > 800, "cases: {cases}");
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_token_watches_only_its_directory_and_never_sees_names_outside() {
    use futures::StreamExt;
    use nullspace_client::{ChangeKind, Client, WatchEvent, WatchOptions, WriteOptions};
    use nullspace_core::{ErrorCode, Labels, VolumeName, VolumePath};
    let p = |s: &str| VolumePath::parse(s).expect("path");
    let srv = Server::start();
    let admin = Client::new(&srv.url, ADMIN_KEY).expect("client");
    let v = VolumeName::parse(VOL).expect("name");
    admin
        .create_volume(&v, &Labels::new(), false)
        .await
        .expect("create");
    admin.mkdir(&v, &p("/d"), true).await.expect("mkdir");
    let w = WriteOptions::default();
    admin
        .write_bytes(&v, &p("/outside-secret-name.txt"), "x", &w)
        .await
        .expect("write");
    let key = tokio::task::block_in_place(|| cli_path_token(&srv, VOL, "/d", true));
    let t = Client::new(&srv.url, &key).expect("client");
    // `/` is outside the directory.
    let e = match t.watch_once(&v, &p("/"), &WatchOptions::default()).await {
        Ok(_) => panic!("watching / is refused"),
        Err(e) => e,
    };
    assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");

    let expected = [
        (ChangeKind::Created, "/d/a.txt"),
        // Moved in from outside: a creation, with no old name.
        (ChangeKind::Created, "/d/in.txt"),
        // Moved out: a deletion, with no new name.
        (ChangeKind::Deleted, "/d/a.txt"),
        (ChangeKind::Created, "/d/end.txt"),
    ];
    let changes = |events: Vec<WatchEvent>| -> Vec<(ChangeKind, String, Option<String>)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                WatchEvent::Change(c) => Some((c.kind, c.path, c.old_path)),
                _ => None,
            })
            .collect()
    };
    let mut live = t
        .watch(&v, &p("/d"), &WatchOptions::default())
        .await
        .expect("watch /d");
    admin
        .write_bytes(&v, &p("/f.txt"), "x", &w)
        .await
        .expect("write");
    admin
        .write_bytes(&v, &p("/d/a.txt"), "x", &w)
        .await
        .expect("write");
    admin
        .rename(&v, &p("/outside-secret-name.txt"), &p("/d/in.txt"), false)
        .await
        .expect("move in");
    admin
        .rename(&v, &p("/d/a.txt"), &p("/elsewhere-secret-name.txt"), false)
        .await
        .expect("move out");
    admin
        .write_bytes(&v, &p("/dx/x.txt"), "x", &w)
        .await
        .expect("write");
    admin
        .write_bytes(&v, &p("/d/end.txt"), "x", &w)
        .await
        .expect("write");
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let ev = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
            .expect("no error");
        if matches!(ev, WatchEvent::Change(_)) {
            got.push(ev);
        }
    }
    let want: Vec<_> = expected
        .iter()
        .map(|(k, path)| (*k, (*path).to_owned(), None))
        .collect();
    // In order, and the last one is the sentinel: nothing outside came in between.
    assert_eq!(changes(got), want);
    // The retained backlog, replayed from the start, is confined the same way.
    let mut replay = t
        .watch_once(
            &v,
            &p("/d"),
            &WatchOptions {
                recursive: true,
                last_event_id: Some(0),
            },
        )
        .await
        .expect("replay");
    let mut got = Vec::new();
    while got.len() < expected.len() + 1 {
        let ev = tokio::time::timeout(Duration::from_secs(30), replay.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
            .expect("no error");
        if let WatchEvent::Change(c) = &ev {
            if c.path == "/d/end.txt" {
                got.push(ev);
                break;
            }
            got.push(ev);
        }
    }
    // The backlog starts with the mkdir of /d itself.
    let replayed = changes(got);
    assert_eq!(replayed.first().map(|c| c.1.as_str()), Some("/d"));
    assert_eq!(replayed[1..], want[..]);
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}

#[test]
fn a_tenant_holds_at_most_max_keys_live_keys_and_tokens_and_no_other_tenant_is_bound_by_it() {
    let srv = Server::start();
    let admin = srv.api();
    let defaults = srv.ok(&["--json", "admin", "tenant", "get-limits", "default"]);
    assert!(defaults.contains("\"max_keys\": 10000"), "{defaults}");
    let made = admin
        .post_json("/v1/admin/tenants", &json!({"name": "acme"}))
        .expect(201, "tenant")
        .json();
    let acme = admin.with_key(made["key"].as_str());
    acme.create_volume(VOL);
    acme.write(VOL, "/d/x.txt", "x").expect(200, "write");
    // The first key and two more: three live credentials, the limit.
    let shown = srv.ok(&[
        "--json",
        "admin",
        "tenant",
        "set-limits",
        "acme",
        "--max-keys",
        "3",
    ]);
    assert!(shown.contains("\"max_keys\": 3"), "{shown}");
    let (_, member_id) = create_key(&acme, json!({"role": "member"}));
    let token = acme
        .post_json(
            &format!("/v1/volumes/{VOL}/tokens"),
            &json!({"path": "/d", "expires_in": 60}),
        )
        .expect(201, "token")
        .json();
    let keys_before = key_records(&acme);
    acme.post_json("/v1/keys", &json!({"role": "read-only"}))
        .expect_err(429, "resource_exhausted", "a fourth key");
    acme.post_json(&format!("/v1/volumes/{VOL}/tokens"), &json!({}))
        .expect_err(429, "resource_exhausted", "a fourth credential");
    assert_eq!(key_records(&acme), keys_before, "nothing was made");
    let usage = srv.ok(&["--json", "admin", "tenant", "get-limits", "acme"]);
    assert!(usage.contains("\"keys\": 3"), "{usage}");
    // Another tenant is not bound by acme's limit.
    create_key(&admin, json!({"role": "read-only"}));
    // A revoked key no longer counts, nor an expired one.
    acme.delete(&format!("/v1/keys/{member_id}"))
        .expect(200, "revoke");
    let (_, short_id) = create_key(&acme, json!({"role": "read-only", "expires_in": 1}));
    wait_until("the key to expire", Duration::from_secs(10), || {
        acme.get("/v1/keys").json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| {
                k["id"] == short_id.as_str()
                    && k["expires_at"].as_str().is_some_and(|t| {
                        chrono::DateTime::parse_from_rfc3339(t)
                            .is_ok_and(|t| t < chrono::Utc::now())
                    })
            })
    });
    create_key(&acme, json!({"role": "read-only"}));
    // The token counted: revoking it makes room again.
    acme.post_json("/v1/keys", &json!({}))
        .expect_err(429, "resource_exhausted", "full again");
    acme.delete(&format!(
        "/v1/keys/{}",
        token["info"]["id"].as_str().expect("id")
    ))
    .expect(200, "revoke token");
    create_key(&acme, json!({}));
    // Not one key or token in the server's log.
    srv.assert_log_has_no_secret();
}
