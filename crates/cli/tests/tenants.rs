//! Tenants, keys, isolation and volume caps through `nullspace admin …` and the volume verbs.

mod harness;

use harness::{json, write_local, OutputExt, Server};

/// Creates a tenant and returns its key (the only thing printed).
fn new_tenant(s: &Server, name: &str) -> String {
    let out = s.ok(&["admin", "tenant", "create", name]);
    assert_eq!(out.lines().count(), 1, "only the key: {out:?}");
    let key = out.trim().to_owned();
    assert!(key.len() >= 16 && !key.contains(' '), "{key:?}");
    key
}

#[test]
fn tenant_create_and_isolation() {
    let s = Server::start();
    let acme = new_tenant(&s, "acme");
    s.cli(&["admin", "tenant", "create", "acme"])
        .assert_err(5, "already exists");
    s.cli(&["admin", "tenant", "create", "Not Valid"])
        .assert_err(2, r#"invalid tenant name "Not Valid""#);
    let full = json(&s.ok(&["admin", "tenant", "create", "globex", "--json"]));
    assert_eq!(full["tenant"]["name"], "globex");
    assert!(full["tenant"]["id"].as_str().is_some());
    assert!(full["key"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != acme));

    // whoami tells who a key belongs to.
    assert!(s.ok(&["whoami"]).starts_with("tenant default at "));
    let me = json(
        &s.cli_as(&acme, &["whoami", "--json"])
            .assert_ok(&["whoami"]),
    );
    assert_eq!(
        (me["tenant"].as_str(), me["admin"].as_bool()),
        (Some("acme"), Some(false))
    );

    // The default tenant's volume is invisible to acme, as if it did not exist.
    s.ok(&["volume", "create", "shared-name"]);
    s.cli_stdin(
        &["volume", "write", "shared-name", "/secret.txt"],
        b"default's",
    )
    .assert_ok(&["write"]);
    assert_eq!(
        json(
            &s.cli_as(&acme, &["volume", "list", "--json"])
                .assert_ok(&["list"])
        ),
        serde_json::json!({"volumes": []})
    );
    s.cli_as(&acme, &["volume", "get", "shared-name"])
        .assert_err(4, r#"volume "shared-name" not found"#);
    s.cli_as(&acme, &["volume", "read", "shared-name", "/secret.txt"])
        .assert_err(4, "not found");
    s.cli_as(&acme, &["volume", "delete", "shared-name"])
        .assert_err(4, "not found");

    // The same name is independent per tenant.
    s.cli_as(&acme, &["volume", "create", "shared-name"])
        .assert_ok(&["create"]);
    s.cli_stdin(
        &["volume", "write", "shared-name", "/secret.txt"],
        b"default's 2",
    )
    .assert_ok(&["write"]);
    let out = s.cli_as(&acme, &["volume", "exists", "shared-name", "/secret.txt"]);
    assert_eq!((out.code(), out.stdout_str().as_str()), (1, "false\n"));
    assert_eq!(
        s.ok(&["volume", "read", "shared-name", "/secret.txt"]),
        "default's 2"
    );

    // Admin verbs need an admin key.
    s.cli_as(&acme, &["admin", "tenant", "create", "evil"])
        .assert_err(3, "admin key");
    s.cli_as(
        &acme,
        &["admin", "tenant", "set-volume-cap", "acme", "1TiB"],
    )
    .assert_err(3, "admin key");
}

#[test]
fn volume_cap_is_enforced_and_failed_writes_leave_nothing() {
    let s = Server::start();
    let key = new_tenant(&s, "small");
    assert_eq!(
        s.ok(&["admin", "tenant", "set-volume-cap", "small", "1KiB"]),
        "new volumes of tenant small get a cap of 1.0 KiB (1024 bytes)\n"
    );
    let t = json(&s.ok(&[
        "admin",
        "tenant",
        "set-volume-cap",
        "small",
        "1KiB",
        "--json",
    ]));
    assert_eq!(
        (t["name"].as_str(), t["volume_cap_bytes"].as_u64()),
        (Some("small"), Some(1024))
    );
    s.cli(&["admin", "tenant", "set-volume-cap", "small", "10 parsecs"])
        .assert_err(2, r#"invalid size "10 parsecs""#);
    s.cli(&["admin", "tenant", "set-volume-cap", "nobody", "1MiB"])
        .assert_err(4, "not found");

    let as_small = |args: &[&str]| s.cli_as(&key, args);
    as_small(&["volume", "create", "q"]).assert_ok(&["create"]);
    let v = json(
        &as_small(&["volume", "get", "q", "--fields", "cap_bytes", "--json"]).assert_ok(&["get"]),
    );
    assert_eq!(v, serde_json::json!({"cap_bytes": 1024}));

    // Over the cap: quota_exceeded, exit 6, and nothing written.
    let big = vec![b'x'; 2048];
    let err = s
        .command()
        .env("NULLSPACE_API_KEY", &key)
        .args(["volume", "write", "q", "/big.bin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|mut c| {
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(&big);
            c.wait_with_output().unwrap()
        })
        .unwrap();
    let line = err.assert_err(6, "cap");
    assert!(line.contains(r#"volume "q""#), "{line}");
    let out = as_small(&["volume", "exists", "q", "/big.bin"]);
    assert_eq!(out.stdout_str(), "false\n");
    let v = json(
        &as_small(&[
            "volume",
            "get",
            "q",
            "--fields",
            "used_bytes,file_count",
            "--json",
        ])
        .assert_ok(&["get"]),
    );
    assert_eq!(v, serde_json::json!({"used_bytes": 0, "file_count": 0}));

    // Under the cap works; then a batch that would pass it fails as a whole.
    let local = s.scratch("q").join("ok.bin");
    write_local(&local, &[b'y'; 600]);
    as_small(&[
        "volume",
        "write",
        "q",
        "/ok.bin",
        "--from",
        local.to_str().unwrap(),
    ])
    .assert_ok(&["write"]);
    let tree = s.scratch("tree");
    write_local(&tree.join("a.bin"), &[b'a'; 300]);
    write_local(&tree.join("b.bin"), &[b'b'; 300]);
    as_small(&["volume", "write-batch", "q", tree.to_str().unwrap()]).assert_err(6, "cap");
    assert_eq!(
        as_small(&["volume", "ls", "q"]).assert_ok(&["ls"]),
        "/ok.bin\n"
    );
    // Overwriting with something too large keeps the old content.
    as_small(&[
        "volume",
        "write",
        "q",
        "/ok.bin",
        "--from",
        tree.join("a.bin").to_str().unwrap(),
    ])
    .assert_ok(&["write"]);
    write_local(&local, &[b'z'; 1500]);
    as_small(&[
        "volume",
        "write",
        "q",
        "/ok.bin",
        "--from",
        local.to_str().unwrap(),
    ])
    .assert_err(6, "cap");
    assert_eq!(
        as_small(&["volume", "read", "q", "/ok.bin"]).stdout,
        vec![b'a'; 300]
    );

    // Other tenants keep the default cap.
    s.ok(&["volume", "create", "roomy"]);
    assert_eq!(
        json(&s.ok(&["volume", "get", "roomy", "--fields", "cap_bytes", "--json"]))["cap_bytes"],
        2u64 << 30
    );
}

#[test]
fn wrong_or_missing_keys_are_unauthenticated() {
    let s = Server::start();
    s.cli_as("nsk_not_a_real_key", &["volume", "list"])
        .assert_err(3, "API key");
    s.cli_as("nsk_not_a_real_key", &["whoami"])
        .assert_err(3, "API key");
    // A --key flag beats the environment.
    s.cli(&["volume", "list", "--key", "nsk_wrong"])
        .assert_err(3, "API key");
    // No key anywhere (no env, no profile, no client.json in the default places).
    let out = s
        .command()
        .env_remove("NULLSPACE_API_KEY")
        .args(["volume", "list"])
        .output()
        .unwrap();
    out.assert_err(3, "missing API key");
}
