//! `nullspace sandbox …` end to end: the real server binary (with the real sandbox runtime;
//! needs root) driven through the real CLI. Every test destroys its sandboxes, since sandboxes
//! outlive the server process.

mod harness;

use harness::{json, OutputExt, SandboxServer, Server};

#[test]
fn quick_example_verbatim() {
    let mut s = SandboxServer(Server::start(), Vec::new());
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

/// The quick example with `--runtime gvisor` added (skipped, saying why, without runsc):
/// the record says its runtime, hibernate keeps a process and its memory, a bad runtime is
/// refused naming the field.
#[test]
fn quick_example_with_runtime_gvisor() {
    if !std::path::Path::new("/usr/bin/runsc").is_file() {
        eprintln!("quick_example_with_runtime_gvisor: skipped: runsc is not installed (apt-get install runsc)");
        return;
    }
    let mut s = SandboxServer(Server::start(), Vec::new());
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
            "--runtime",
            "gvisor",
        ])
        .trim()
        .to_owned();
    s.1.push(id.clone());
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
    let got = json(&s.ok(&["sandbox", "get", &id]));
    assert_eq!(got["runtime"], "gvisor");
    let list = s.ok(&["sandbox", "list"]);
    assert!(list.lines().next().unwrap().contains("RUNTIME"), "{list}");
    assert!(list.contains(" gvisor "), "{list}");
    // A process started before hibernate is the same process after resume.
    let pid = s
        .ok(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "sleep 100000 >/dev/null 2>&1 </dev/null & echo $!",
        ])
        .trim()
        .to_owned();
    assert!(s.ok(&["sandbox", "hibernate", &id]).contains("hibernated"));
    assert_eq!(
        s.ok(&[
            "sandbox",
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            &format!("kill -0 {pid} && echo alive")
        ]),
        "alive\n"
    );
    s.cli(&["sandbox", "create", "--runtime", "firecracker"])
        .assert_err(2, "runtime");
    s.ok(&["sandbox", "destroy", &id]);
}

#[test]
fn attachments_errors_tenants_force_delete_and_restart() {
    let mut s = SandboxServer(Server::start(), Vec::new());
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

#[test]
fn exec_env_cwd_stdin_and_timeout() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    let id = s.ok(&["sandbox", "create"]).trim().to_owned();
    s.1.push(id.clone());

    // --env (repeatable), --cwd.
    assert_eq!(
        s.ok(&[
            "sandbox",
            "exec",
            &id,
            "--env",
            "A=1",
            "--env",
            "B=two=2",
            "--cwd",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo $A $B; pwd",
        ]),
        "1 two=2\n/tmp\n"
    );
    // -i / --stdin passes this process's stdin; without it the command's stdin is empty.
    let out = s.cli_stdin(
        &["sandbox", "exec", &id, "-i", "--", "wc", "-l"],
        b"a\nb\nc\n",
    );
    assert_eq!(out.assert_ok(&["exec", "-i"]).trim(), "3");
    let out = s.cli_stdin(
        &["sandbox", "exec", &id, "--stdin", "--", "cat"],
        "grüße\n".as_bytes(),
    );
    assert_eq!(out.assert_ok(&["exec", "--stdin"]), "grüße\n");
    let out = s.cli_stdin(&["sandbox", "exec", &id, "--", "cat"], b"ignored\n");
    assert_eq!(out.assert_ok(&["exec"]), "");

    // --timeout: the command is killed; the CLI exits 124 with one error line after the
    // command's own output.
    let out = s.cli(&[
        "sandbox",
        "exec",
        &id,
        "--timeout",
        "1",
        "--",
        "sh",
        "-c",
        "echo started; sleep 60",
    ]);
    assert_eq!(out.code(), 124, "stderr: {}", out.stderr_str());
    assert_eq!(out.stdout_str(), "started\n");
    let err = out.stderr_str();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("error: ") && err.contains("timed out"),
        "{err:?}"
    );
    let out = s.cli(&[
        "sandbox",
        "exec",
        &id,
        "--timeout",
        "1s",
        "--json",
        "--",
        "sleep",
        "60",
    ]);
    assert_eq!(out.code(), 124);
    let doc = json(&out.stdout_str());
    assert_eq!(doc["timed_out"], true);
    assert_ne!(doc["exit_code"], 0);
    // A command that finishes in time is not affected.
    let doc = json(&s.ok(&[
        "sandbox",
        "exec",
        &id,
        "--timeout",
        "1h",
        "--json",
        "--",
        "echo",
        "quick",
    ]));
    assert_eq!(doc["stdout"], "quick\n");
    assert_eq!(doc["timed_out"], false);
    assert_eq!(doc["exit_code"], 0);

    // Bad input: one line, exit 2, naming the flag; an unknown sandbox: exit 4.
    s.cli(&["sandbox", "exec", &id, "--env", "NOVALUE", "--", "true"])
        .assert_err(2, "--env");
    s.cli(&["sandbox", "exec", &id, "--env", "=x", "--", "true"])
        .assert_err(2, "--env");
    s.cli(&["sandbox", "exec", &id, "--timeout", "0", "--", "true"])
        .assert_err(2, "--timeout");
    s.cli(&["sandbox", "exec", &id, "--timeout", "soon", "--", "true"])
        .assert_err(2, "--timeout");
    s.cli_stdin(&["sandbox", "exec", &id, "-i", "--", "cat"], &[0xff, 0xfe])
        .assert_err(2, "UTF-8");
    s.cli(&["sandbox", "exec", "sb-nope", "--", "true"])
        .assert_err(4, "not found");
}

#[test]
fn files_read_write_list_inside_the_sandbox() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    s.ok(&["volume", "create", "data"]);
    let id = s
        .ok(&["sandbox", "create", "--volume", "ref=data,mount=/mnt/data"])
        .trim()
        .to_owned();
    s.1.push(id.clone());

    // write from stdin (silent), read to stdout; the sandbox sees it.
    let out = s.cli_stdin(
        &["sandbox", "files", "write", &id, "/tmp/note.txt"],
        b"from stdin\n",
    );
    assert_eq!(out.assert_ok(&["files", "write"]), "");
    assert_eq!(
        s.ok(&["sandbox", "files", "read", &id, "/tmp/note.txt"]),
        "from stdin\n"
    );
    assert_eq!(
        s.ok(&["sandbox", "exec", &id, "--", "cat", "/tmp/note.txt"]),
        "from stdin\n"
    );

    // write --from FILE into the mounted volume: the volume has it too.
    let local = s.scratch("up").join("bin.dat");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    harness::write_local(&local, &bytes);
    let doc = json(&s.ok(&[
        "sandbox",
        "files",
        "write",
        &id,
        "/mnt/data/bin.dat",
        "--from",
        local.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(doc["size"], 70_000);
    let out = s.cli(&["volume", "read", "data", "/bin.dat"]);
    assert_eq!(out.stdout, bytes);
    let out = s.cli(&["sandbox", "files", "read", &id, "/mnt/data/bin.dat"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);

    // list (and its alias ls), plain and --json.
    let doc = json(&s.ok(&["sandbox", "files", "list", &id, "/mnt/data", "--json"]));
    assert_eq!(
        doc["entries"],
        serde_json::json!([{"name": "bin.dat", "kind": "file", "size": 70_000}])
    );
    let plain = s.ok(&["sandbox", "files", "ls", &id, "/tmp"]);
    assert!(plain.contains("note.txt"), "{plain}");
    let root = s.ok(&["sandbox", "files", "list", &id]);
    assert!(root.contains("mnt/"), "{root}");

    // Errors: one line each, the SPEC's exit codes.
    s.cli(&["sandbox", "files", "read", &id, "/tmp/missing"])
        .assert_err(4, "missing");
    s.cli(&["sandbox", "files", "read", &id, "relative.txt"])
        .assert_err(2, "relative.txt");
    s.cli_stdin(&["sandbox", "files", "write", &id, "relative.txt"], b"x")
        .assert_err(2, "relative.txt");
    s.cli(&["sandbox", "files", "list", &id, "/tmp/note.txt"])
        .assert_err(2, "note.txt");
    s.cli(&["sandbox", "files", "read", "sb-nope", "/etc/hostname"])
        .assert_err(4, "not found");
    let missing = s.scratch("up").join("missing");
    s.cli(&[
        "sandbox",
        "files",
        "write",
        &id,
        "/tmp/x",
        "--from",
        missing.to_str().unwrap(),
    ])
    .assert_err(1, "missing");
}

/// The directory where this server's runtime keeps sandbox `id` (gone once it is destroyed).
fn runtime_dir(s: &Server, server_id: &str, id: &str) -> std::path::PathBuf {
    s.data_dir()
        .join("sandboxes")
        .join("servers")
        .join(server_id)
        .join("sandboxes")
        .join(id)
}

#[test]
fn sandbox_timeout_destroys_it_also_across_a_restart() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    s.ok(&["volume", "create", "data"]);
    s.cli_stdin(&["volume", "write", "data", "/keep.txt"], b"kept\n")
        .assert_ok(&["volume", "write"]);

    s.cli(&["sandbox", "create", "--timeout", "0"])
        .assert_err(2, "--timeout");
    s.cli(&["sandbox", "create", "--timeout", "later"])
        .assert_err(2, "--timeout");

    // Expiry while the server runs: the sandbox is destroyed, its attachment released, its
    // volume's data kept.
    let sb = json(&s.ok(&[
        "sandbox",
        "create",
        "--volume",
        "ref=data,mount=/data",
        "--timeout",
        "2s",
        "--json",
    ]));
    let id = sb["id"].as_str().expect("id").to_owned();
    s.1.push(id.clone());
    let server_id = sb["server_id"].as_str().expect("server_id").to_owned();
    assert_eq!(sb["timeout"], 2);
    assert!(sb["expires_at"].is_string(), "{sb}");
    assert!(runtime_dir(&s, &server_id, &id).is_dir());
    // Waits for the expiry (bounded; not a timing assertion).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = s.cli(&["sandbox", "get", &id]);
        if out.code() == 4 {
            break;
        }
        assert!(out.status.success(), "{}", out.stderr_str());
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox {id} not destroyed a minute after its 2 s timeout"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!runtime_dir(&s, &server_id, &id).exists());
    assert_eq!(
        json(&s.ok(&["volume", "get", "data", "--json"]))["attachments"],
        0
    );
    assert_eq!(s.ok(&["volume", "read", "data", "/keep.txt"]), "kept\n");
    let listed = json(&s.ok(&["sandbox", "list", "--json"]));
    assert_eq!(listed["sandboxes"], serde_json::json!([]));

    // Expiry while the server is down: the deadline is in the record, so the next start
    // destroys the sandbox before it serves; one without a timeout lives on.
    let doomed = json(&s.ok(&["sandbox", "create", "--timeout", "2", "--json"]))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.1.push(doomed.clone());
    let lasting = s.ok(&["sandbox", "create"]).trim().to_owned();
    s.1.push(lasting.clone());
    s.stop();
    std::thread::sleep(std::time::Duration::from_secs(3));
    s.restart();
    s.cli(&["sandbox", "get", &doomed])
        .assert_err(4, "not found");
    assert!(!runtime_dir(&s, &server_id, &doomed).exists());
    assert_eq!(
        s.ok(&["sandbox", "exec", &lasting, "--", "echo", "alive"]),
        "alive\n"
    );
}

#[test]
fn the_old_single_server_layout_is_retired_at_start() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    let id = s.ok(&["sandbox", "create"]).trim().to_owned();
    s.1.push(id.clone());
    s.stop();
    // What a server before the records moved into the database left: a runtime directly in
    // `<data>/sandboxes` (here a half-made sandbox dir) and `records.json`.
    let root = s.data_dir().join("sandboxes");
    std::fs::create_dir_all(root.join("sandboxes/sb-old")).unwrap();
    std::fs::write(root.join("records.json"), b"{}").unwrap();
    s.restart();
    assert!(!root.join("sandboxes").exists());
    assert!(!root.join("records.json").exists());
    assert!(!root.join("templates").exists());
    // The current layout is untouched: the sandbox made before runs on.
    assert_eq!(s.ok(&["sandbox", "exec", &id, "--", "echo", "ok"]), "ok\n");
}

/// Issue 11 through the real server (loop volumes, capped layers): sandbox code cannot make a
/// user namespace, and its mount table names no path of the server's data dir, also for a
/// subpath mount and one attached later.
#[test]
fn sandbox_code_cannot_unshare_and_sees_no_host_path() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    s.ok(&["volume", "create", "work"]);
    s.ok(&["volume", "mkdir", "work", "/sub"]);
    let id = s
        .ok(&[
            "sandbox",
            "create",
            "--volume",
            "ref=work,mount=/w",
            "--volume",
            "ref=work,mount=/s,subpath=sub",
        ])
        .trim()
        .to_owned();
    s.1.push(id.clone());
    s.ok(&[
        "sandbox",
        "attach",
        &id,
        "--volume",
        "ref=work,mount=/later,readonly",
    ]);
    let out = s.cli(&["sandbox", "exec", &id, "--", "unshare", "-Urm", "true"]);
    assert_ne!(out.status.code(), Some(0), "unshare -Urm must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = s.data_dir().to_string_lossy().into_owned();
    let root = s.root().to_string_lossy().into_owned();
    for file in ["/proc/self/mountinfo", "/proc/self/mounts"] {
        let text = s.ok(&["sandbox", "exec", &id, "--", "cat", file]);
        for mount in [" /w ", " /s ", " /later "] {
            assert!(text.contains(mount), "{file} lacks {mount}: {text}");
        }
        for line in text.lines() {
            assert!(
                !line.contains(&data) && !line.contains(&root) && !line.contains("/proc/"),
                "{file} shows a host path: {line}"
            );
        }
    }
}

/// The server's resident memory (VmRSS) in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Issue 11 through the real server: code allocating past its sandbox's memory limit is killed
/// alone, the exec answer says `oom_killed`, the sandbox and a neighbour keep working, and the
/// server's own memory does not take the allocation.
#[test]
fn a_sandbox_past_its_memory_limit_is_killed_alone_and_exec_says_so() {
    let mut s = SandboxServer(Server::start(), Vec::new());
    let small = s
        .ok(&["sandbox", "create", "--memory", "64MiB"])
        .trim()
        .to_owned();
    s.1.push(small.clone());
    let neighbour = s.ok(&["sandbox", "create"]).trim().to_owned();
    s.1.push(neighbour.clone());
    let pid = s.pid().expect("the server runs");
    let before = rss_of(pid);
    // 512 MiB touched page by page: far past the 64 MiB limit.
    let hog =
        "b = bytearray(512 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')";
    let out = s.cli(&[
        "--json", "sandbox", "exec", &small, "--", "python3", "-c", hog,
    ]);
    let answer = json(&out.stdout_str());
    assert_eq!(answer["oom_killed"], serde_json::json!(true), "{answer}");
    assert_eq!(
        answer["exit_code"],
        serde_json::json!(137),
        "killed by SIGKILL: {answer}"
    );
    assert!(!answer["stdout"].as_str().unwrap_or("").contains("survived"));
    // The sandbox itself and its neighbour go on; the next exec is not marked.
    let again = json(&s.ok(&["--json", "sandbox", "exec", &small, "--", "echo", "alive"]));
    assert_eq!(again["oom_killed"], serde_json::json!(false), "{again}");
    assert_eq!(
        s.ok(&["sandbox", "exec", &neighbour, "--", "echo", "fine"]),
        "fine\n"
    );
    assert!(s.healthy());
    let grew = rss_of(pid).saturating_sub(before);
    assert!(grew < 64 << 20, "the server grew by {grew} bytes");
}
