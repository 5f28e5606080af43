//! `nullspace sandbox …` end to end: the real server binary (with the real sandbox runtime;
//! needs root) driven through the real CLI. Every test destroys its sandboxes, since sandboxes
//! outlive the server process.

mod common;

use common::{json, OutputExt, TestServer};

/// A server that destroys the listed sandboxes before it stops (also when an assertion fails).
struct Server(TestServer, Vec<String>);

impl Drop for Server {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.cli(&["sandbox", "destroy", id]);
        }
    }
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.0
    }
}

#[test]
fn quick_example_verbatim() {
    let mut s = Server(TestServer::start(), Vec::new());
    s.ok(&["volume", "create", "team-data"]);
    s.cli_stdin(
        &["volume", "write", "team-data", "/hello.txt"],
        b"persistent\n",
    )
    .assert_ok(&["volume", "write"]);
    let id = s
        .ok(&[
            "sandbox",
            "create",
            "--template",
            "base",
            "--volume",
            "ref=team-data,mount=/workspace/shared",
        ])
        .trim()
        .to_owned();
    s.1.push(id.clone());
    assert!(id.starts_with("sb-"), "{id}");
    assert_eq!(
        s.ok(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "cat",
            "/workspace/shared/hello.txt"
        ]),
        "persistent\n"
    );
    // The command's exit code is the CLI's.
    let out = s.cli(&[
        "sandbox",
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stderr_str(), "oops\n");
}

#[test]
fn attachments_errors_tenants_force_delete_and_restart() {
    let mut s = Server(TestServer::start(), Vec::new());
    s.ok(&["volume", "create", "data"]);
    s.ok(&["volume", "create", "extra"]);
    s.cli(&["sandbox", "create", "--volume", "ref=nope,mount=/mnt/x"])
        .assert_err(4, "nope");
    s.cli(&["sandbox", "create", "--volume", "ref=data,mount=/proc/x"])
        .assert_err(2, "invalid");
    s.cli(&["sandbox", "create", "--volume", "ref=data,mount=relative"])
        .assert_err(2, "invalid");

    let sb = json(&s.ok(&[
        "sandbox",
        "create",
        "--volume",
        "ref=data,mount=/data",
        "--json",
    ]));
    let id = sb["id"].as_str().expect("id").to_owned();
    s.1.push(id.clone());
    assert_eq!(sb["state"], "running");
    assert_eq!(sb["attachments"][0]["volume"], "data");
    assert_eq!(sb["attachments"][0]["state"], "mounted");
    assert_eq!(sb["attachments"][0]["sandbox_id"], id.as_str());

    // Runtime attach / list / detach.
    let a = json(&s.ok(&[
        "sandbox",
        "attach",
        &id,
        "--volume",
        "ref=extra,mount=/extra,readonly",
        "--json",
    ]));
    assert_eq!(a["state"], "mounted");
    assert_eq!(a["read_only"], true);
    let list = json(&s.ok(&["sandbox", "attachments", &id, "--json"]));
    assert_eq!(list["attachments"].as_array().map(Vec::len), Some(2));
    let d = json(&s.ok(&["sandbox", "detach", &id, "/extra", "--json"]));
    assert_eq!(d["state"], "released");

    // Another tenant sees nothing.
    let other = json(&s.ok(&["admin", "tenant", "create", "acme", "--json"]));
    let other_key = other["key"].as_str().expect("key").to_owned();
    s.cli_as(&other_key, &["sandbox", "exec", &id, "--", "true"])
        .assert_err(4, "not found");
    assert_eq!(
        json(
            &s.cli_as(&other_key, &["sandbox", "list", "--json"])
                .assert_ok(&["list"])
        )["sandboxes"],
        serde_json::json!([])
    );

    assert_eq!(
        json(&s.ok(&["volume", "get", "data", "--json"]))["attachments"],
        1
    );
    // An attached volume cannot be deleted unless forced.
    s.cli(&["volume", "delete", "data"])
        .assert_err(5, "attached");

    // A restart keeps the sandbox record and its attachment.
    s.restart();
    let got = json(&s.ok(&["sandbox", "get", &id]));
    assert_eq!(got["attachments"][0]["volume"], "data");
    assert_eq!(
        s.ok(&["sandbox", "exec", &id, "--", "echo", "alive"]),
        "alive\n"
    );

    // Lifecycle verbs.
    assert!(s.ok(&["sandbox", "pause", &id]).contains("paused"));
    assert!(s.ok(&["sandbox", "resume", &id]).contains("running"));
    let fork = s.ok(&["sandbox", "fork", &id]).trim().to_owned();
    s.1.push(fork.clone());
    s.ok(&["sandbox", "destroy", &fork]);

    s.ok(&["volume", "delete", "data", "--force"]);
    let list = json(&s.ok(&["sandbox", "attachments", &id, "--json"]));
    assert_eq!(list["attachments"], serde_json::json!([]));
    s.ok(&["sandbox", "destroy", &id]);
    s.cli(&["sandbox", "get", &id]).assert_err(4, "not found");
}
