//! Client configuration (flags, env, `login` profile, the server's client.json), server flags,
//! help output, local validation, unreachable servers and closed pipes.

mod harness;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use harness::{
    command_without_server, free_port, json, write_local, OutputExt, Server, ADMIN_KEY, BIN,
};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The server's own `client.json` is found with no configuration at all.
#[test]
fn bootstrap_client_json_needs_no_configuration() {
    let s = Server::start();
    let client_json = s.data_dir().join("client.json");
    assert_eq!(mode(&client_json), 0o600);
    let doc = json(&std::fs::read_to_string(&client_json).unwrap());
    assert_eq!(
        (doc["url"].as_str(), doc["key"].as_str()),
        (Some(s.url.as_str()), Some(ADMIN_KEY))
    );

    let bare = || {
        let mut c = s.command();
        c.env_remove("NULLSPACE_API_URL")
            .env_remove("NULLSPACE_API_KEY");
        c
    };
    // Through NULLSPACE_DATA_DIR (the server's flag and the client's lookup agree).
    let out = bare()
        .env("NULLSPACE_DATA_DIR", s.data_dir())
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(
        out.assert_ok(&["whoami"]),
        format!("tenant default at {} (admin key)\n", s.url)
    );
    // Through $XDG_DATA_HOME/nullspace and ~/.local/share/nullspace, the server's defaults.
    let xdg = s.scratch("xdg");
    write_local(
        &xdg.join("nullspace/client.json"),
        &std::fs::read(&client_json).unwrap(),
    );
    let out = bare()
        .env("XDG_DATA_HOME", &xdg)
        .args(["volume", "create", "via-xdg"])
        .output()
        .unwrap();
    assert_eq!(out.assert_ok(&["create"]), "created volume via-xdg\n");
    write_local(
        &s.home().join(".local/share/nullspace/client.json"),
        &std::fs::read(&client_json).unwrap(),
    );
    let out = bare()
        .env_remove("XDG_DATA_HOME")
        .args(["volume", "list", "--fields", "name", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        json(&out.assert_ok(&["list"])),
        serde_json::json!({"volumes": [{"name": "via-xdg"}]})
    );
}

#[test]
fn login_saves_a_private_profile_used_by_later_commands() {
    let s = Server::start();
    let bare = || {
        let mut c = s.command();
        c.env_remove("NULLSPACE_API_URL")
            .env_remove("NULLSPACE_API_KEY");
        c
    };
    let profile = s.config_home().join("nullspace/config.json");

    // A wrong key is refused before anything is saved; a missing key is a usage error.
    bare()
        .args(["login", "--url", &s.url, "--key", "nsk_wrong"])
        .output()
        .unwrap()
        .assert_err(3, "API key");
    assert!(!profile.exists());
    bare()
        .args(["login", "--url", &s.url])
        .output()
        .unwrap()
        .assert_err(2, "login needs a key");

    let out = bare()
        .args(["login", "--url", &format!("{}/", s.url), "--key", ADMIN_KEY])
        .output()
        .unwrap();
    assert_eq!(
        out.assert_ok(&["login"]),
        format!(
            "logged in to {} as tenant default (admin key); saved to {}\n",
            s.url,
            profile.display()
        )
    );
    assert_eq!(mode(&profile), 0o600);
    assert_eq!(mode(profile.parent().unwrap()), 0o700);
    let doc = json(&std::fs::read_to_string(&profile).unwrap());
    assert_eq!(doc, serde_json::json!({"url": s.url, "key": ADMIN_KEY}));

    // Later commands need nothing else.
    bare()
        .args(["volume", "create", "from-profile"])
        .output()
        .unwrap()
        .assert_ok(&["create"]);
    assert!(bare()
        .arg("whoami")
        .output()
        .unwrap()
        .assert_ok(&["whoami"])
        .starts_with("tenant default"));

    // Env and flags override the profile; the saved key is not sent to another URL.
    let closed = format!("http://127.0.0.1:{}", free_port());
    bare()
        .env("NULLSPACE_API_URL", &closed)
        .arg("whoami")
        .output()
        .unwrap()
        .assert_err(7, "cannot reach");
    let other_url = s.url.replace("127.0.0.1", "localhost");
    bare()
        .args(["--url", &other_url, "whoami"])
        .output()
        .unwrap()
        .assert_err(3, "missing API key");
    bare()
        .args(["--url", &other_url, "--key", ADMIN_KEY, "whoami"])
        .output()
        .unwrap()
        .assert_ok(&["whoami"]);

    // Logging in with another tenant's key replaces the profile.
    let acme = s
        .ok(&["admin", "tenant", "create", "acme"])
        .trim()
        .to_owned();
    let out = bare()
        .args(["login", "--key", &acme, "--json"])
        .output()
        .unwrap();
    let me = json(&out.assert_ok(&["login"]));
    assert_eq!(
        (me["tenant"].as_str(), me["url"].as_str()),
        (Some("acme"), Some(s.url.as_str()))
    );
    assert_eq!(
        json(
            &bare()
                .args(["volume", "list", "--json"])
                .output()
                .unwrap()
                .assert_ok(&["list"])
        ),
        serde_json::json!({"volumes": []})
    );

    // A damaged profile is reported, not ignored.
    std::fs::write(&profile, "{not json").unwrap();
    bare()
        .arg("whoami")
        .output()
        .unwrap()
        .assert_err(2, "invalid profile");
}

#[test]
fn server_is_configured_through_env_vars() {
    let s = Server::start_via_env();
    assert!(s.ok(&["whoami"]).starts_with("tenant default"));
    let doc = json(&std::fs::read_to_string(s.data_dir().join("client.json")).unwrap());
    assert_eq!(doc["url"].as_str(), Some(s.url.as_str()));
}

#[test]
fn server_start_failures_are_one_line_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = command_without_server(dir.path(), "http://unused")
        .args(["server", "--listen", &addr, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.code(), 1);
    let err = out.stderr_str();
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("cannot listen on"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = command_without_server(dir.path(), "http://unused")
        .args(["server", "--listen", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.code(), 2, "{}", out.stderr_str());
}

#[test]
fn unreachable_server_is_reported_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = command_without_server(dir.path(), &url)
        .args(["volume", "list"])
        .output()
        .unwrap();
    out.assert_err(7, &format!("error: cannot reach {url}: "));
    let out = command_without_server(dir.path(), "ftp://example")
        .args(["volume", "list"])
        .output()
        .unwrap();
    out.assert_err(2, "invalid server URL");
}

/// Invalid names, paths, labels, fields and sizes are refused before any request: the URL
/// points at a closed port, so a request would have failed with "cannot reach" (exit 7).
#[test]
fn local_validation_happens_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let local = dir.path().join("tree");
    std::fs::create_dir_all(&local).unwrap();
    let local = local.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["volume", "create", "Bad"], r#"invalid volume name "Bad""#),
        (
            &["volume", "create", "ok", "--label", "k"],
            r#"invalid label "k""#,
        ),
        (
            &["volume", "create", "ok", "--label=-k=v"],
            r#"invalid label key "-k""#,
        ),
        (&["volume", "list", "--label", "=v"], "invalid label key"),
        (
            &["volume", "list", "--fields", "name,bogus"],
            r#"unknown field "bogus""#,
        ),
        (
            &["volume", "get", "ok", "--fields", "bogus"],
            r#"unknown field "bogus""#,
        ),
        (&["volume", "get", &"a".repeat(64)], "invalid volume name"),
        (&["volume", "delete", "UPPER"], "invalid volume name"),
        (&["volume", "read", "ok", "rel"], "paths must be absolute"),
        (
            &["volume", "read", "ok", "/x", "--offset", "abc"],
            r#"invalid --offset "abc""#,
        ),
        (&["volume", "write", "ok", "/a/../b"], "'..' is not allowed"),
        (
            &["volume", "write-batch", "ok", local, "dest"],
            "must be absolute",
        ),
        (&["volume", "mkdir", "ok", "x/y"], "must be absolute"),
        (&["volume", "mv", "ok", "/a", "b"], "destination"),
        (&["volume", "cp", "ok", "a", "/b"], "source"),
        (&["volume", "rm", "ok", "/.."], "'..' is not allowed"),
        (&["volume", "ls", "ok", "dir"], "must be absolute"),
        (&["volume", "stat", "ok", ""], "must be absolute"),
        (&["volume", "exists", "ok", "x"], "must be absolute"),
        (
            &["admin", "tenant", "create", "Acme"],
            r#"invalid tenant name "Acme""#,
        ),
        (
            &["admin", "tenant", "set-volume-cap", "acme", "1.5GiB"],
            r#"invalid size "1.5GiB""#,
        ),
        (
            &["admin", "tenant", "set-volume-cap", "acme", "10 parsecs"],
            "invalid size",
        ),
    ];
    for (args, needle) in cases {
        let out = command_without_server(dir.path(), &url)
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr_str());
        out.assert_err(2, needle);
    }
}

#[test]
fn help_documents_exit_codes_and_hides_secrets() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("NULLSPACE_API_KEY", "nsk_super_secret_value")
        .output()
        .unwrap();
    let help = out.assert_ok(&["--help"]);
    assert!(
        help.contains("Exit codes") && help.contains("NULLSPACE_API_URL"),
        "{help}"
    );
    assert!(!help.contains("nsk_super_secret_value"), "{help}");

    let out = Command::new(BIN)
        .args(["server", "--help"])
        .env("NULLSPACE_BOOTSTRAP_KEY", "bootstrap_secret_value")
        .env(
            "NULLSPACE_DATABASE_URL",
            "postgres://user:db_password@host/db",
        )
        .env("NULLSPACE_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    let help = out.assert_ok(&["server", "--help"]);
    for var in [
        "NULLSPACE_LISTEN",
        "NULLSPACE_DATA_DIR",
        "NULLSPACE_DATABASE_URL",
        "NULLSPACE_BOOTSTRAP_KEY",
    ] {
        assert!(help.contains(var), "{var} in {help}");
    }
    assert!(
        !help.contains("bootstrap_secret_value") && !help.contains("db_password"),
        "{help}"
    );
    assert!(
        help.contains("127.0.0.1:9999"),
        "non-secret env values are shown: {help}"
    );

    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        out.assert_ok(&["--version"]),
        format!("nullspace {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        Command::new(BIN).arg("frobnicate").output().unwrap().code(),
        2
    );
}

/// `nullspace volume read … | head -c 100` must end quietly when `head` exits.
#[test]
fn closed_stdout_ends_quietly() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let data = vec![b'q'; 8 << 20];
    s.cli_stdin(&["volume", "write", "v", "/big"], &data)
        .assert_ok(&["write"]);
    let tree = s.scratch("many");
    for i in 0..6000 {
        write_local(
            &tree.join(format!(
                "a-fairly-long-directory-name/file-number-{i:05}.txt"
            )),
            b"",
        );
    }
    s.ok(&["volume", "write-batch", "v", tree.to_str().unwrap()]);

    for args in [
        &["volume", "read", "v", "/big"][..],
        &["volume", "ls", "v", "-r"][..],
        &["volume", "ls", "v", "-r", "--json"][..],
    ] {
        let mut child = s
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success() && err.is_empty(),
            "{args:?}: {status} {err:?}"
        );
    }
}
