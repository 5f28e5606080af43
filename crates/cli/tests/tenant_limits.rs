//! Sandbox limits on the wire and tenant limits (issue 11, the product half), end to end: the
//! real server with the real sandbox runtime (needs root), driven through the CLI and HTTP.
//! Going past a tenant limit is `resource_exhausted` (429) naming the limit and changes
//! nothing; bad sizes and cpus are `invalid_argument` naming the field; only admin keys set
//! limits; limits survive a restart. Every test destroys its sandboxes.

mod harness;

use std::sync::{Arc, Barrier};

use harness::{json, Api, OutputExt, SandboxServer, Server};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A server with a tenant `acme` (non-admin key) whose sandboxes are destroyed at the end.
struct Tenant {
    s: SandboxServer,
    key: String,
    /// Acme's sandboxes, destroyed with acme's key at the end.
    owned: Vec<String>,
}

impl Tenant {
    fn start() -> Tenant {
        Tenant::on(Server::start())
    }

    fn on(server: Server) -> Tenant {
        let s = SandboxServer(server, Vec::new());
        let key = s
            .ok(&["admin", "tenant", "create", "acme"])
            .trim()
            .to_owned();
        Tenant {
            s,
            key,
            owned: Vec::new(),
        }
    }

    fn api(&self) -> Api {
        self.s.api().with_key(Some(&self.key))
    }

    fn limits(&mut self, args: &[&str]) -> Value {
        let mut all = vec!["--json", "admin", "tenant", "set-limits", "acme"];
        all.extend_from_slice(args);
        json(&self.s.ok(&all))
    }

    /// `POST /v1/sandboxes` as acme; a created sandbox is destroyed at the end.
    fn create(&mut self, body: Value) -> harness::Resp {
        let r = self.api().post_json("/v1/sandboxes", &body);
        if r.status == 200 || r.status == 201 {
            self.owned.push(r.json()["id"].as_str().unwrap().to_owned());
        }
        r
    }

    fn sandbox_ids(&self) -> Vec<String> {
        let list = self.api().get("/v1/sandboxes").expect(200, "list").json();
        list["sandboxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn volume_count(&self) -> usize {
        let list = self.api().get("/v1/volumes").expect(200, "list").json();
        list["volumes"].as_array().unwrap().len()
    }

    fn destroy(&self, id: &str) {
        self.api()
            .delete(&format!("/v1/sandboxes/{id}"))
            .expect(204, "destroy");
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.owned) {
            let _ = self.api().delete(&format!("/v1/sandboxes/{id}"));
        }
    }
}

/// `error.message` of an error answer.
fn message(r: &harness::Resp) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[track_caller]
fn exhausted(r: harness::Resp, limit: &str) {
    let r = r.expect_err(429, "resource_exhausted", limit);
    assert_eq!(r.json()["error"]["retryable"], json!(false));
    assert!(message(&r).contains(limit), "{}", r.text());
}

#[track_caller]
fn invalid(r: harness::Resp, field: &str) {
    let r = r.expect_err(400, "invalid_argument", field);
    assert!(message(&r).contains(field), "{field}: {}", r.text());
}

/// SEMANTICS: What a sandbox gets
#[test]
fn sandbox_json_shows_requested_limits_and_server_defaults() {
    let server = Server::start_with_env(&[
        ("NULLSPACE_SANDBOX_CPU", "0.25"),
        ("NULLSPACE_SANDBOX_MEMORY", "384MiB"),
        ("NULLSPACE_SANDBOX_DISK", "2GiB"),
        ("NULLSPACE_SANDBOX_PIDS", "200"),
    ]);
    let mut t = Tenant::on(server);
    // Defaults from the server's flags (here their env vars).
    let sb = t.create(json!({})).expect(201, "create").json();
    assert_eq!(sb["cpu"], json!(0.25));
    assert_eq!(sb["memory_bytes"], json!(384 * MIB));
    assert_eq!(sb["disk_bytes"], json!(2 * GIB));
    assert_eq!(sb["pids"], json!(200));
    // What the request asks for: a number of cores, sizes as strings or byte counts.
    let sb = t
        .create(json!({"cpu": 0.5, "memory": "256MiB", "disk": 1073741824u64}))
        .expect(201, "create")
        .json();
    let id = sb["id"].as_str().unwrap().to_owned();
    let got = t
        .api()
        .get(&format!("/v1/sandboxes/{id}"))
        .expect(200, "get")
        .json();
    assert_eq!(got["cpu"], json!(0.5));
    assert_eq!(got["memory_bytes"], json!(256 * MIB));
    assert_eq!(got["disk_bytes"], json!(GIB));
    assert_eq!(got["pids"], json!(200));
    // The list shows them too.
    let list = t.api().get("/v1/sandboxes").expect(200, "list").json();
    let listed = list["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(id))
        .unwrap()
        .clone();
    assert_eq!(listed["memory_bytes"], json!(256 * MIB));
    // Exec answers say whether the memory limit killed something.
    let out = t
        .api()
        .post_json(
            &format!("/v1/sandboxes/{id}/exec"),
            &json!({"cmd": "echo hi"}),
        )
        .expect(200, "exec")
        .json();
    assert_eq!(out["stdout"], json!("hi\n"));
    assert_eq!(out["oom_killed"], json!(false));
}

#[test]
fn cli_create_flags_get_and_exec_json() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    let id = s
        .ok(&[
            "sandbox", "create", "--cpu", "0.75", "--memory", "512MiB", "--disk", "3GiB",
        ])
        .trim()
        .to_owned();
    s.1.push(id.clone());
    let sb = json(&s.ok(&["sandbox", "get", &id]));
    assert_eq!(sb["cpu"], json!(0.75));
    assert_eq!(sb["memory_bytes"], json!(512 * MIB));
    assert_eq!(sb["disk_bytes"], json!(3 * GIB));
    // No flags: the server's defaults (1 core, 1 GiB, 4 GiB, 1,024 processes).
    let plain = s.ok(&["sandbox", "create"]).trim().to_owned();
    s.1.push(plain.clone());
    let sb = json(&s.ok(&["sandbox", "get", &plain]));
    assert_eq!(sb["cpu"], json!(1.0));
    assert_eq!(sb["memory_bytes"], json!(GIB));
    assert_eq!(sb["disk_bytes"], json!(4 * GIB));
    assert_eq!(sb["pids"], json!(1024));
    let out = json(&s.ok(&["--json", "sandbox", "exec", &id, "--", "true"]));
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["oom_killed"], json!(false));
    // Bad flags: the CLI exits 2 (invalid_argument) naming the flag's field, nothing created.
    let before = json(&s.ok(&["--json", "sandbox", "list"]))["sandboxes"]
        .as_array()
        .unwrap()
        .len();
    for (flag, value, field) in [
        ("--cpu", "lots", "cpu"),
        ("--memory", "0", "memory"),
        ("--disk", "-1GiB", "disk"),
    ] {
        let out = s.cli(&["sandbox", "create", flag, value]);
        assert_eq!(out.code(), 2, "{flag} {value}: {}", out.stderr_str());
        assert!(out.stderr_str().contains(field), "{}", out.stderr_str());
    }
    let after = json(&s.ok(&["--json", "sandbox", "list"]))["sandboxes"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}

/// SEMANTICS: What a sandbox gets
#[test]
fn bad_limits_per_field_are_invalid_argument_and_create_nothing() {
    let mut t = Tenant::start();
    t.limits(&["--max-cpu", "2", "--max-sandbox-memory", "1GiB"]);
    for (body, field) in [
        (json!({"cpu": 0}), "cpu"),
        (json!({"cpu": -1}), "cpu"),
        (json!({"cpu": "abc"}), "cpu"),
        (json!({"cpu": 0.001}), "cpu"),
        (json!({"cpu": true}), "cpu"),
        (json!({"cpu": 4}), "max_cpu"),
        (json!({"memory": 0}), "memory"),
        (json!({"memory": -5}), "memory"),
        (json!({"memory": 1.5}), "memory"),
        (json!({"memory": "lots"}), "memory"),
        (json!({"memory": "1MiB"}), "memory"),
        (json!({"memory": "2GiB"}), "max_sandbox_memory"),
        (json!({"memory": [1]}), "memory"),
        (json!({"disk": 0}), "disk"),
        (json!({"disk": "-1"}), "disk"),
        (json!({"disk": "10 parsecs"}), "disk"),
        (json!({"disk": "4KiB"}), "disk"),
        (json!({"disk": "99999999TiB"}), "disk"),
    ] {
        invalid(t.create(body.clone()), field);
    }
    assert!(t.sandbox_ids().is_empty(), "nothing was created");
    // The operator's verb checks its fields the same way.
    let admin = t.s.api();
    for (body, field) in [
        (json!({"max_sandboxes": 0}), "max_sandboxes"),
        (json!({"max_total_memory": "x"}), "max_total_memory"),
        (json!({"max_cpu": 0}), "max_cpu"),
        (json!({"max_total_disk": -1}), "max_total_disk"),
    ] {
        invalid(
            admin.put_json("/v1/admin/tenants/acme/limits", &body),
            field,
        );
    }
    // An empty change says what it could have set.
    invalid(
        admin.put_json("/v1/admin/tenants/acme/limits", &json!({})),
        "max_sandboxes",
    );
    admin
        .put_json(
            "/v1/admin/tenants/nobody/limits",
            &json!({"max_volumes": 1}),
        )
        .expect_err(404, "not_found", "unknown tenant");
}

/// SEMANTICS: Tenant limits
#[test]
fn max_sandboxes_and_fork_past_it_are_resource_exhausted() {
    let mut t = Tenant::start();
    let l = t.limits(&["--max-sandboxes", "2"]);
    assert_eq!(l["max_sandboxes"], json!(2));
    assert_eq!(l["custom"], json!(["max_sandboxes"]));
    let a = t.create(json!({})).expect(201, "first").json();
    t.create(json!({})).expect(201, "second");
    exhausted(t.create(json!({})), "max_sandboxes");
    assert_eq!(t.sandbox_ids().len(), 2, "nothing was created");
    // A fork is a new sandbox.
    let a = a["id"].as_str().unwrap().to_owned();
    exhausted(
        t.api()
            .post_json(&format!("/v1/sandboxes/{a}/fork"), &json!({})),
        "max_sandboxes",
    );
    assert_eq!(t.sandbox_ids().len(), 2, "the fork created nothing");
    // The CLI says so and exits 6.
    let out = t.s.cli_as(&t.key, &["sandbox", "create"]);
    assert_eq!(out.code(), 6, "{}", out.stderr_str());
    assert!(out.stderr_str().contains("max_sandboxes"));
    // Room again after a destroy; a fork then fits.
    t.destroy(&a);
    t.owned.retain(|i| i != &a);
    let b = t.sandbox_ids()[0].clone();
    let fork = t
        .api()
        .post_json(&format!("/v1/sandboxes/{b}/fork"), &json!({}))
        .expect(201, "fork")
        .json();
    t.owned.push(fork["id"].as_str().unwrap().to_owned());
    // The fork has its source's limits.
    let source = t
        .api()
        .get(&format!("/v1/sandboxes/{b}"))
        .expect(200, "get")
        .json();
    for k in ["cpu", "memory_bytes", "disk_bytes", "pids"] {
        assert_eq!(fork[k], source[k], "{k}");
    }
    assert_eq!(t.sandbox_ids().len(), 2);
    // The other tenant is not limited by acme's limits.
    let own = t.s.ok(&["sandbox", "create"]).trim().to_owned();
    t.s.1.push(own);
}

#[test]
fn max_volumes_is_resource_exhausted_and_creates_nothing() {
    let mut t = Tenant::start();
    t.limits(&["--max-volumes", "1"]);
    t.api()
        .post_json("/v1/volumes", &json!({"name": "one"}))
        .expect(201, "first volume");
    exhausted(
        t.api().post_json("/v1/volumes", &json!({"name": "two"})),
        "max_volumes",
    );
    assert_eq!(t.volume_count(), 1);
    // A taken name is still `already_exists`, and if-not-exists still answers the volume.
    t.api()
        .post_json("/v1/volumes", &json!({"name": "one"}))
        .expect_err(409, "already_exists", "taken name");
    let out =
        t.s.cli_as(&t.key, &["volume", "create", "one", "--if-not-exists"]);
    out.assert_ok(&["volume", "create", "--if-not-exists"]);
    let out = t.s.cli_as(&t.key, &["volume", "create", "two"]);
    assert_eq!(out.code(), 6, "{}", out.stderr_str());
    assert!(out.stderr_str().contains("max_volumes"));
    assert_eq!(t.volume_count(), 1);
}

#[test]
fn total_memory_and_disk_are_summed_over_the_tenants_sandboxes() {
    let mut t = Tenant::start();
    t.limits(&["--max-total-memory", "64MiB", "--max-total-disk", "1GiB"]);
    t.create(json!({"memory": "48MiB", "disk": "256MiB"}))
        .expect(201, "first");
    exhausted(
        t.create(json!({"memory": "32MiB", "disk": "256MiB"})),
        "max_total_memory",
    );
    exhausted(
        t.create(json!({"memory": "16MiB", "disk": "800MiB"})),
        "max_total_disk",
    );
    assert_eq!(t.sandbox_ids().len(), 1, "nothing was created");
    t.create(json!({"memory": "16MiB", "disk": "256MiB"}))
        .expect(201, "what still fits");
    let l = json(&t.s.ok(&["--json", "admin", "tenant", "get-limits", "acme"]));
    assert_eq!(l["usage"]["sandboxes"], json!(2));
    assert_eq!(l["usage"]["memory_bytes"], json!(64 * MIB));
    assert_eq!(l["usage"]["disk_bytes"], json!(512 * MIB));
    // A default sandbox (1 GiB) asks for more than the whole total: invalid for this tenant.
    invalid(t.create(json!({})), "max_total_memory");
}

/// SEMANTICS: Tenant limits
#[test]
fn concurrent_creates_at_the_limit_exactly_one_succeeds() {
    let mut t = Tenant::start();
    t.limits(&["--max-sandboxes", "1", "--max-volumes", "1"]);
    const N: usize = 4;
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (api, barrier) = (t.api(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let sb = api.post_json("/v1/sandboxes", &json!({"memory": "32MiB"}));
                let vol = api.post_json("/v1/volumes", &json!({"name": format!("v{i}")}));
                let id = (sb.status == 201).then(|| sb.json()["id"].as_str().unwrap().to_owned());
                (sb.status, sb.error_code(), vol.status, vol.error_code(), id)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    for (_, _, _, _, id) in &results {
        if let Some(id) = id {
            t.owned.push(id.clone());
        }
    }
    let made = results.iter().filter(|r| r.0 == 201).count();
    assert_eq!(made, 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|r| r.0 != 201)
        .all(|r| r.0 == 429 && r.1.as_deref() == Some("resource_exhausted")));
    let vols = results.iter().filter(|r| r.2 == 201).count();
    assert_eq!(vols, 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|r| r.2 != 201)
        .all(|r| r.2 == 429 && r.3.as_deref() == Some("resource_exhausted")));
    assert_eq!(t.sandbox_ids().len(), 1);
    assert_eq!(t.volume_count(), 1);
}

#[test]
fn set_limits_is_admin_only() {
    let t = Tenant::start();
    for args in [
        vec![
            "admin",
            "tenant",
            "set-limits",
            "acme",
            "--max-sandboxes",
            "100",
        ],
        vec!["admin", "tenant", "get-limits", "acme"],
    ] {
        let out = t.s.cli_as(&t.key, &args);
        assert_eq!(out.code(), 3, "{args:?}: {}", out.stderr_str());
    }
    t.api()
        .put_json(
            "/v1/admin/tenants/acme/limits",
            &json!({"max_sandboxes": 100}),
        )
        .expect_err(403, "permission_denied", "member key");
    t.s.api()
        .with_key(None)
        .get("/v1/admin/tenants/acme/limits")
        .expect_err(401, "unauthenticated", "no key");
    // Unchanged: still the server's default.
    let l = json(&t.s.ok(&["--json", "admin", "tenant", "get-limits", "acme"]));
    assert_eq!(l["custom"], json!([]));
    assert_ne!(l["max_sandboxes"], json!(100));
}

#[test]
fn limits_and_sandbox_limits_survive_a_restart() {
    let mut t = Tenant::start();
    t.limits(&[
        "--max-sandboxes",
        "3",
        "--max-volumes",
        "7",
        "--max-cpu",
        "0.5",
        "--max-sandbox-memory",
        "300MiB",
        "--max-total-memory",
        "600MiB",
        "--max-total-disk",
        "20GiB",
    ]);
    let sb = t
        .create(json!({"cpu": "0.5", "memory": "200MiB", "disk": "1GiB"}))
        .expect(201, "create")
        .json();
    let id = sb["id"].as_str().unwrap().to_owned();
    // Pause, hibernate and resume keep the limits (a hibernated sandbox keeps its share).
    for op in ["pause", "resume", "hibernate", "resume"] {
        let after = t
            .api()
            .post_json(&format!("/v1/sandboxes/{id}/{op}"), &json!({}))
            .expect(200, op)
            .json();
        assert_eq!(after["memory_bytes"], json!(200 * MIB), "{op}");
        assert_eq!(after["cpu"], json!(0.5), "{op}");
    }
    t.s.restart();
    let l = json(&t.s.ok(&["--json", "admin", "tenant", "get-limits", "acme"]));
    assert_eq!(l["max_sandboxes"], json!(3));
    assert_eq!(l["max_volumes"], json!(7));
    assert_eq!(l["max_cpu"], json!(0.5));
    assert_eq!(l["max_sandbox_memory"], json!(300 * MIB));
    assert_eq!(l["max_total_memory"], json!(600 * MIB));
    assert_eq!(l["max_total_disk"], json!(20 * GIB));
    assert_eq!(l["usage"]["memory_bytes"], json!(200 * MIB));
    let got = t
        .api()
        .get(&format!("/v1/sandboxes/{id}"))
        .expect(200, "get")
        .json();
    assert_eq!(got["cpu"], json!(0.5));
    assert_eq!(got["memory_bytes"], json!(200 * MIB));
    assert_eq!(got["disk_bytes"], json!(GIB));
    // Still enforced after the restart.
    invalid(t.create(json!({"cpu": 1, "memory": "100MiB"})), "max_cpu");
    // The table form names each limit and whether the tenant has its own.
    let table = t.s.ok(&["admin", "tenant", "get-limits", "acme"]);
    assert!(table.starts_with("LIMIT"), "{table}");
    for line in ["max_sandboxes", "max_total_memory", "600.0 MiB", "tenant"] {
        assert!(table.contains(line), "{line}: {table}");
    }
    let default = t.s.ok(&["admin", "tenant", "get-limits", "default"]);
    assert!(default.contains("default"), "{default}");
}

#[test]
fn two_servers_on_one_database_share_the_tenants_limits() {
    // Several servers share only a PostgreSQL database: required in CI and when the suite
    // runs on PostgreSQL, else skipped (with a notice) when none answers.
    if !nullspace_testkit::Selection::from_env().runs_postgres_only_test() {
        return;
    }
    let mut t = Tenant::on(Server::start_postgres());
    let b = SandboxServer(t.s.start_beside(), Vec::new());
    t.limits(&["--max-sandboxes", "1"]);
    let apis = [t.api(), b.api().with_key(Some(&t.key))];
    let barrier = Arc::new(Barrier::new(apis.len()));
    let threads: Vec<_> = apis
        .iter()
        .cloned()
        .map(|api| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let r = api.post_json("/v1/sandboxes", &json!({"memory": "32MiB"}));
                (
                    r.status,
                    r.error_code(),
                    r.json()["id"].as_str().map(str::to_owned),
                )
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let mut made = Vec::new();
    for (api, (status, code, id)) in apis.iter().zip(&results) {
        if *status == 201 {
            made.push((api.clone(), id.clone().unwrap()));
        } else {
            assert_eq!(
                (*status, code.as_deref()),
                (429, Some("resource_exhausted"))
            );
        }
    }
    assert_eq!(made.len(), 1, "{results:?}");
    assert_eq!(t.sandbox_ids().len(), 1);
    // Destroyed through the server that runs it.
    for (api, id) in made {
        api.delete(&format!("/v1/sandboxes/{id}"))
            .expect(204, "destroy");
    }
}

#[test]
fn bad_server_defaults_stop_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--sandbox-memory", "1MiB"),
        ("--sandbox-disk", "0"),
        ("--sandbox-cpu", "none"),
        ("--sandbox-pids", "0"),
    ] {
        let out = harness::command_without_server(dir.path(), "http://127.0.0.1:1")
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        assert!(
            out.stderr_str().contains(flag),
            "{flag} {value}: {}",
            out.stderr_str()
        );
    }
}
