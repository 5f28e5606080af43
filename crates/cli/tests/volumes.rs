//! `nullspace volume …` end to end: the real server binary driven through the real CLI.

mod harness;

use harness::{json, write_local, OutputExt, Server};

#[test]
fn volume_lifecycle_create_list_get_delete() {
    let s = Server::start();

    assert_eq!(
        s.ok(&[
            "volume",
            "create",
            "team-data",
            "--label",
            "team=ml",
            "--label",
            "tier=hot"
        ]),
        "created volume team-data\n"
    );
    s.cli(&["volume", "create", "team-data"])
        .assert_err(5, r#"volume "team-data" already exists"#);
    assert_eq!(
        s.ok(&["volume", "create", "team-data", "--if-not-exists"]),
        "volume team-data already exists\n"
    );
    let v = json(&s.ok(&["volume", "create", "other", "--json"]));
    assert_eq!(v["name"], "other");
    assert_eq!(v["labels"], serde_json::json!({}));
    assert!(v["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(v["cap_bytes"], 2u64 << 30);

    // Table: a header and one row per volume, sorted by name, sizes for humans.
    let out = s.ok(&["volume", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        head,
        [
            "NAME",
            "USED",
            "CAP",
            "FILES",
            "ATTACHMENTS",
            "LABELS",
            "CREATED"
        ]
    );
    assert!(lines[1].starts_with("other "), "{out}");
    assert!(lines[2].starts_with("team-data "), "{out}");
    assert!(
        lines[2].contains("2.0 GiB") && lines[2].contains("team=ml,tier=hot"),
        "{out}"
    );

    // JSON: `{"volumes": [...]}` of whole volumes (every list is an object naming its items).
    let doc = json(&s.ok(&["volume", "list", "--json"]));
    let all = &doc["volumes"];
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "team-data"]);
    assert_eq!(all[1]["labels"]["tier"], "hot");
    assert_eq!(all[1]["state"], "ready");

    // Label filters: all must match.
    let out = s.ok(&["volume", "list", "--label", "team=ml", "--json"]);
    assert_eq!(json(&out)["volumes"].as_array().unwrap().len(), 1);
    let out = s.ok(&[
        "volume",
        "list",
        "--label",
        "team=ml",
        "--label",
        "tier=cold",
        "--json",
    ]);
    assert_eq!(json(&out), serde_json::json!({"volumes": []}));

    // --fields selects columns and keys.
    let out = s.ok(&["volume", "list", "--fields", "name,labels"]);
    assert_eq!(
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["NAME", "LABELS"]
    );
    assert!(out.contains("team-data  team=ml,tier=hot"), "{out}");
    let sel = json(&s.ok(&["volume", "list", "--fields", "name,used_bytes", "--json"]));
    assert_eq!(
        sel,
        serde_json::json!({"volumes": [{"name": "other", "used_bytes": 0}, {"name": "team-data", "used_bytes": 0}]})
    );
    s.cli(&["volume", "list", "--fields", "name,size"])
        .assert_err(2, r#"unknown field "size""#);

    // get: vertical table, --json, --fields.
    let out = s.ok(&["volume", "get", "team-data"]);
    for key in [
        "id",
        "name",
        "created_at",
        "updated_at",
        "cap_bytes",
        "used_bytes",
        "file_count",
        "labels",
        "state",
        "attachments",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(key)),
            "{key} missing from {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cap_bytes", "2.0", "GiB"]),
        "{out}"
    );
    let v = json(&s.ok(&["volume", "get", "team-data", "--json"]));
    assert_eq!(v["name"], "team-data");
    assert_eq!(v["attachments"], 0);
    let v = json(&s.ok(&[
        "volume",
        "get",
        "team-data",
        "--fields",
        "used_bytes,file_count",
        "--json",
    ]));
    assert_eq!(v, serde_json::json!({"used_bytes": 0, "file_count": 0}));
    assert_eq!(
        s.ok(&["volume", "get", "team-data", "--fields", "state"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["state", "ready"]
    );

    // Errors: one line, a distinct exit code, no request for local mistakes.
    s.cli(&["volume", "get", "nope"])
        .assert_err(4, r#"error: volume "nope" not found"#);
    s.cli(&["volume", "get", "Bad_Name"])
        .assert_err(2, r#"invalid volume name "Bad_Name""#);
    s.cli(&["volume", "create", "x", "--label", "novalue"])
        .assert_err(2, r#"invalid label "novalue": expected key=value"#);
    s.cli(&["volume", "create", "_bad"])
        .assert_err(2, "starting with a letter or digit");

    // delete
    assert_eq!(
        s.ok(&["volume", "delete", "other"]),
        "deleted volume other\n"
    );
    s.cli(&["volume", "delete", "other"])
        .assert_err(4, r#"volume "other" not found"#);
    s.ok(&["volume", "delete", "other", "--if-exists"]);
    let d = json(&s.ok(&["volume", "delete", "team-data", "--force", "--json"]));
    assert_eq!(d, serde_json::json!({"name": "team-data", "deleted": true}));
    assert_eq!(
        json(&s.ok(&["volume", "list", "--json"])),
        serde_json::json!({"volumes": []})
    );
    assert_eq!(
        s.ok(&["volume", "list"]).lines().count(),
        1,
        "only the header"
    );
}

#[test]
fn files_write_read_stat_exists() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);

    // write is silent on success; read streams the content back.
    let out = s.cli_stdin(&["volume", "write", "v", "/hello.txt"], b"persistent\n");
    assert_eq!(out.assert_ok(&["write"]), "");
    assert_eq!(s.ok(&["volume", "read", "v", "/hello.txt"]), "persistent\n");
    assert_eq!(
        s.ok(&[
            "volume",
            "read",
            "v",
            "/hello.txt",
            "--offset",
            "3",
            "--length",
            "4"
        ]),
        "sist"
    );
    assert_eq!(
        s.ok(&["volume", "read", "v", "/hello.txt", "--offset", "7"]),
        "ent\n"
    );
    assert_eq!(
        s.ok(&["volume", "read", "v", "//hello.txt/"]),
        "persistent\n",
        "paths are normalised"
    );

    // --from FILE, --json prints the new stat.
    let local = s.scratch("w").join("data.bin");
    write_local(&local, b"from a file");
    let st = json(&s.ok(&[
        "volume",
        "write",
        "v",
        "/dir/sub/data.bin",
        "--from",
        local.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["path"], "/dir/sub/data.bin");
    assert_eq!(st["type"], "file");
    assert_eq!(st["size"], 11);
    let etag = st["etag"].as_str().unwrap().to_owned();
    assert_eq!(
        s.ok(&["volume", "read", "v", "/dir/sub/data.bin"]),
        "from a file"
    );

    // --no-overwrite and --if-match.
    s.cli_stdin(
        &["volume", "write", "v", "/hello.txt", "--no-overwrite"],
        b"x",
    )
    .assert_err(5, r#"path "/hello.txt" already exists"#);
    s.cli_stdin(
        &[
            "volume",
            "write",
            "v",
            "/dir/sub/data.bin",
            "--if-match",
            &etag,
        ],
        b"second",
    )
    .assert_ok(&["write"]);
    s.cli_stdin(
        &[
            "volume",
            "write",
            "v",
            "/dir/sub/data.bin",
            "--if-match",
            &etag,
        ],
        b"third",
    )
    .assert_err(5, "changed since etag");
    assert_eq!(
        s.ok(&["volume", "read", "v", "/dir/sub/data.bin"]),
        "second",
        "a failed write changes nothing"
    );
    // An empty stdin writes an empty file.
    s.cli_stdin(&["volume", "write", "v", "/empty"], b"")
        .assert_ok(&["write"]);
    assert_eq!(
        json(&s.ok(&["volume", "stat", "v", "/empty", "--json"]))["size"],
        0
    );

    // stat
    let out = s.ok(&["volume", "stat", "v", "/hello.txt"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["path", "/hello.txt"]);
    assert_eq!(rows[1], ["type", "file"]);
    assert_eq!(rows[2], ["size", "11", "B"]);
    assert_eq!(rows[3], ["mode", "0644"]);
    assert_eq!(rows[4][0], "mtime");
    assert_eq!(rows[5][0], "etag");
    let st = json(&s.ok(&["volume", "stat", "v", "/dir", "--json"]));
    assert_eq!(st["type"], "dir");
    for key in ["path", "type", "size", "mode", "mtime", "etag"] {
        assert!(st.get(key).is_some(), "{key} in {st}");
    }

    // exists: true/false with exit 0/1; errors are not "false".
    let out = s.cli(&["volume", "exists", "v", "/hello.txt"]);
    assert_eq!((out.code(), out.stdout_str().as_str()), (0, "true\n"));
    let out = s.cli(&["volume", "exists", "v", "/nope"]);
    assert_eq!(
        (out.code(), out.stdout_str().as_str(), out.stderr.len()),
        (1, "false\n", 0)
    );
    let out = s.cli(&["volume", "exists", "v", "/nope", "--json"]);
    assert_eq!(
        (out.code(), json(&out.stdout_str())),
        (1, serde_json::json!({"exists": false}))
    );
    s.cli(&["volume", "exists", "nope", "/x"])
        .assert_err(4, r#"volume "nope" not found"#);

    // Errors.
    s.cli(&["volume", "read", "v", "/nope"])
        .assert_err(4, r#"path "/nope" not found in volume "v""#);
    s.cli(&["volume", "read", "v", "/dir"])
        .assert_err(2, "is a directory");
    s.cli(&["volume", "read", "v", "relative.txt"])
        .assert_err(2, "paths must be absolute");
    s.cli(&["volume", "read", "v", "/a/../etc/passwd"])
        .assert_err(2, "'..' is not allowed");
    s.cli(&["volume", "read", "v", "/hello.txt", "--offset=-3"])
        .assert_err(2, r#"invalid --offset "-3""#);
    s.cli(&["volume", "read", "v", "/hello.txt", "--length", "lots"])
        .assert_err(2, r#"invalid --length "lots""#);
    s.cli(&["volume", "read", "nope", "/x"])
        .assert_err(4, r#"volume "nope" not found"#);
    s.cli(&["volume", "stat", "v", "/nope"])
        .assert_err(4, "not found");
    s.cli_stdin(&["volume", "write", "nope", "/x"], b"data")
        .assert_err(4, r#"volume "nope" not found"#);
    let missing = s.scratch("w").join("missing");
    s.cli(&[
        "volume",
        "write",
        "v",
        "/x",
        "--from",
        missing.to_str().unwrap(),
    ])
    .assert_err(1, "cannot open");
    let dir = s.scratch("w");
    s.cli(&[
        "volume",
        "write",
        "v",
        "/x",
        "--from",
        dir.to_str().unwrap(),
    ])
    .assert_err(2, "is a directory");
    assert_eq!(
        s.cli(&["volume", "exists", "v", "/x"]).code(),
        1,
        "failed writes leave nothing"
    );
}

#[test]
fn directories_move_copy_remove_and_listing() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);

    // mkdir: -p creates parents and tolerates an existing directory.
    s.cli(&["volume", "mkdir", "v", "/a/b"])
        .assert_err(4, r#"path "/a" not found"#);
    assert_eq!(
        s.ok(&["volume", "mkdir", "v", "/a/b", "-p"]),
        "created directory /a/b\n"
    );
    s.cli(&["volume", "mkdir", "v", "/a/b"])
        .assert_err(5, "already exists");
    s.ok(&["volume", "mkdir", "v", "/a/b", "-p"]);
    assert_eq!(
        json(&s.ok(&["volume", "mkdir", "v", "/z", "--json"]))["type"],
        "dir"
    );
    for (p, c) in [
        ("/a/one.txt", "1"),
        ("/a/b/two.txt", "22"),
        ("/a/b/three.md", "333"),
    ] {
        s.cli_stdin(&["volume", "write", "v", p], c.as_bytes())
            .assert_ok(&["write", p]);
    }

    // ls: one path per line, sorted; -r; --glob; -l; --json.
    assert_eq!(s.ok(&["volume", "ls", "v"]), "/a\n/z\n");
    assert_eq!(s.ok(&["volume", "ls", "v", "/a"]), "/a/b\n/a/one.txt\n");
    assert_eq!(
        s.ok(&["volume", "ls", "v", "-r"]),
        "/a\n/a/b\n/a/b/three.md\n/a/b/two.txt\n/a/one.txt\n/z\n"
    );
    assert_eq!(
        s.ok(&["volume", "ls", "v", "-r", "--glob", "*.txt"]),
        "/a/b/two.txt\n/a/one.txt\n"
    );
    assert_eq!(
        s.ok(&["volume", "ls", "v", "/a/one.txt"]),
        "/a/one.txt\n",
        "listing a file lists it"
    );
    let long = s.ok(&["volume", "ls", "v", "/a", "-l"]);
    let rows: Vec<Vec<&str>> = long
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{long}");
    assert_eq!((rows[0][0], rows[0][1], rows[0][3]), ("dir", "-", "/a/b"));
    assert_eq!(
        (rows[1][0], rows[1][1], rows[1][2], rows[1][4]),
        ("file", "1", "B", "/a/one.txt")
    );
    assert!(rows[1][3].ends_with('Z'), "mtime column: {long}");
    let doc = json(&s.ok(&["volume", "ls", "v", "-r", "--json"]));
    let arr = doc["entries"].as_array().unwrap();
    assert_eq!(arr.len(), 6);
    assert_eq!(arr[2]["path"], "/a/b/three.md");
    assert_eq!(arr[2]["size"], 3);
    assert_eq!(
        json(&s.ok(&["volume", "ls", "v", "/z", "--json"])),
        serde_json::json!({"entries": []})
    );
    assert_eq!(s.ok(&["volume", "ls", "v", "/z"]), "");
    s.cli(&["volume", "ls", "v", "/nope"])
        .assert_err(4, "not found");

    // mv
    assert_eq!(
        s.ok(&["volume", "mv", "v", "/a/one.txt", "/z/uno.txt"]),
        "moved /a/one.txt to /z/uno.txt\n"
    );
    assert_eq!(s.ok(&["volume", "read", "v", "/z/uno.txt"]), "1");
    s.cli(&["volume", "mv", "v", "/z/uno.txt", "/a/b/two.txt"])
        .assert_err(5, "already exists");
    s.ok(&["volume", "mv", "v", "/z/uno.txt", "/a/b/two.txt", "--force"]);
    assert_eq!(s.ok(&["volume", "read", "v", "/a/b/two.txt"]), "1");
    s.cli(&["volume", "mv", "v", "/a", "/a/b/inside"])
        .assert_err(2, "into itself");
    let st = json(&s.ok(&["volume", "mv", "v", "/a/b/two.txt", "/two.txt", "--json"]));
    assert_eq!(st["path"], "/two.txt");

    // cp
    assert_eq!(
        s.ok(&["volume", "cp", "v", "/two.txt", "/copy.txt"]),
        "copied /two.txt to /copy.txt\n"
    );
    assert_eq!(s.ok(&["volume", "read", "v", "/copy.txt"]), "1");
    s.cli(&["volume", "cp", "v", "/two.txt", "/copy.txt"])
        .assert_err(5, "already exists");
    s.ok(&["volume", "cp", "v", "/a/b/three.md", "/copy.txt", "--force"]);
    assert_eq!(s.ok(&["volume", "read", "v", "/copy.txt"]), "333");
    s.cli(&["volume", "cp", "v", "/a", "/a2"])
        .assert_err(2, "recursively");
    s.ok(&["volume", "cp", "v", "/a", "/a2", "-r"]);
    assert_eq!(s.ok(&["volume", "read", "v", "/a2/b/three.md"]), "333");

    // rm
    s.cli(&["volume", "rm", "v", "/a2"])
        .assert_err(2, "not empty");
    assert_eq!(s.ok(&["volume", "rm", "v", "/a2", "-r"]), "removed /a2\n");
    assert_eq!(
        s.ok(&["volume", "rm", "v", "/copy.txt"]),
        "removed /copy.txt\n"
    );
    s.cli(&["volume", "rm", "v", "/copy.txt"])
        .assert_err(4, "not found");
    s.cli(&["volume", "rm", "v", "/"]).assert_err(2, "root");
    assert_eq!(
        s.ok(&["volume", "ls", "v", "-r"]),
        "/a\n/a/b\n/a/b/three.md\n/two.txt\n/z\n"
    );

    // Usage shows in the volume's fields.
    let v = json(&s.ok(&[
        "volume",
        "get",
        "v",
        "--fields",
        "used_bytes,file_count",
        "--json",
    ]));
    assert_eq!(v, serde_json::json!({"used_bytes": 4, "file_count": 2}));

    // `rm -r /` empties the volume (the root itself stays).
    assert_eq!(
        s.ok(&["volume", "rm", "v", "/", "-r"]),
        "emptied volume v\n"
    );
    assert_eq!(s.ok(&["volume", "ls", "v", "-r"]), "");
}

#[test]
fn write_batch_uploads_a_tree_all_or_nothing() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let dir = s.scratch("tree");
    write_local(&dir.join("top.txt"), b"top");
    write_local(&dir.join("sub/deeper/leaf.txt"), b"leaf");
    write_local(&dir.join("sub/mid.bin"), &[0u8, 1, 2, 255]);
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();

    let out = s.cli(&["volume", "write-batch", "v", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr_str());
    assert_eq!(out.stdout_str(), "wrote 3 files (11 B) to v:/\n");
    let err = out.stderr_str();
    assert!(
        err.starts_with("warning: skipped ") && err.contains("link") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        s.ok(&["volume", "ls", "v", "-r"]),
        "/empty\n/sub\n/sub/deeper\n/sub/deeper/leaf.txt\n/sub/mid.bin\n/top.txt\n"
    );
    assert_eq!(
        s.ok(&["volume", "read", "v", "/sub/deeper/leaf.txt"]),
        "leaf"
    );
    let raw = s.cli(&["volume", "read", "v", "/sub/mid.bin"]);
    assert_eq!(raw.stdout, [0u8, 1, 2, 255]);

    // Into a remote directory, with --json.
    let r = json(
        &s.cli(&[
            "volume",
            "write-batch",
            "v",
            dir.join("sub").to_str().unwrap(),
            "/dest/x",
            "--json",
        ])
        .stdout_str(),
    );
    assert_eq!(r, serde_json::json!({"files": 2, "bytes": 8}));
    assert_eq!(
        s.ok(&["volume", "read", "v", "/dest/x/deeper/leaf.txt"]),
        "leaf"
    );

    // All or nothing: a file in the way of a directory fails the whole batch.
    let bad = s.scratch("bad");
    write_local(&bad.join("new.txt"), b"new");
    write_local(&bad.join("top.txt/inner"), b"x");
    s.cli(&["volume", "write-batch", "v", bad.to_str().unwrap()])
        .assert_err(2, "is not a directory");
    assert_eq!(
        s.cli(&["volume", "exists", "v", "/new.txt"]).code(),
        1,
        "nothing of a failed batch is written"
    );

    // Errors.
    s.cli(&["volume", "write-batch", "v", "/definitely/not/here"])
        .assert_err(2, "cannot read /definitely/not/here");
    s.cli(&[
        "volume",
        "write-batch",
        "v",
        dir.join("top.txt").to_str().unwrap(),
    ])
    .assert_err(2, "is not a directory");
    s.cli(&["volume", "write-batch", "nope", dir.to_str().unwrap()])
        .assert_err(4, r#"volume "nope" not found"#);
    s.cli(&["volume", "write-batch", "v", dir.to_str().unwrap(), "rel"])
        .assert_err(2, "must be absolute");
}

#[test]
fn large_files_stream_both_ways() {
    let s = Server::start();
    s.ok(&["volume", "create", "big"]);
    // 24 MiB of a non-repeating-ish pattern, through --from and through stdin.
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = s.scratch("big").join("blob");
    write_local(&local, &data);
    s.ok(&[
        "volume",
        "write",
        "big",
        "/blob",
        "--from",
        local.to_str().unwrap(),
    ]);
    let out = s.cli(&["volume", "read", "big", "/blob"]);
    assert!(out.status.success(), "{}", out.stderr_str());
    assert!(
        out.stdout == data,
        "read back differs (len {} vs {})",
        out.stdout.len(),
        data.len()
    );
    s.cli_stdin(&["volume", "write", "big", "/piped"], &data)
        .assert_ok(&["write", "piped"]);
    let st = json(&s.ok(&["volume", "stat", "big", "/piped", "--json"]));
    assert_eq!(st["size"], data.len());
    let out = s.cli(&[
        "volume", "read", "big", "/piped", "--offset", "1MiB", "--length", "1000",
    ]);
    assert_eq!(out.stdout, &data[1 << 20..(1 << 20) + 1000]);
    // A large body for a volume that does not exist is refused with the server's error.
    s.cli_stdin(&["volume", "write", "nope", "/x"], &data)
        .assert_err(4, r#"volume "nope" not found"#);
}

/// `volume read` to a regular file (stdout written by its own thread with `writev`), `volume
/// write --from` of a regular file of an odd size (sent with its length), of an empty one and
/// of a FIFO (no size: streamed to its end) keep every byte.
#[test]
fn reads_to_files_and_writes_from_files_and_fifos_keep_every_byte() {
    let s = Server::start();
    s.ok(&["volume", "create", "big"]);
    let data: Vec<u8> = (0..(3u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let dir = s.scratch("files");
    let local = dir.join("odd.bin");
    write_local(&local, &data);
    s.ok(&[
        "volume",
        "write",
        "big",
        "/odd",
        "--from",
        local.to_str().unwrap(),
    ]);
    let out_path = dir.join("out.bin");
    let status = s
        .command()
        .args(["volume", "read", "big", "/odd"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read(&out_path).unwrap() == data,
        "read back differs"
    );

    let empty = dir.join("empty");
    write_local(&empty, b"");
    s.ok(&[
        "volume",
        "write",
        "big",
        "/empty",
        "--from",
        empty.to_str().unwrap(),
    ]);
    let st = json(&s.ok(&["volume", "stat", "big", "/empty", "--json"]));
    assert_eq!(st["size"], 0);

    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let feeder = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
    };
    s.ok(&[
        "volume",
        "write",
        "big",
        "/fifo",
        "--from",
        fifo.to_str().unwrap(),
    ]);
    feeder.join().unwrap();
    let out = s.cli(&["volume", "read", "big", "/fifo"]);
    assert!(out.status.success(), "{}", out.stderr_str());
    assert!(out.stdout == data, "the FIFO's bytes differ");
}

#[test]
fn data_survives_a_server_restart() {
    let mut s = Server::start();
    s.ok(&["volume", "create", "keep", "--label", "a=b"]);
    s.cli_stdin(&["volume", "write", "keep", "/f.txt"], b"still here")
        .assert_ok(&["write"]);
    s.restart();
    assert_eq!(s.ok(&["volume", "read", "keep", "/f.txt"]), "still here");
    let v = json(&s.ok(&["volume", "get", "keep", "--json"]));
    assert_eq!(
        (v["labels"]["a"].as_str(), v["used_bytes"].as_u64()),
        (Some("b"), Some(10))
    );
}

#[test]
fn volume_rename_keeps_the_volume_and_is_refused_while_attached() {
    let s = Server::start();
    s.ok(&["volume", "create", "team-data"]);
    s.ok(&["volume", "create", "taken"]);
    s.cli_stdin(&["volume", "write", "team-data", "/a.txt"], b"kept\n")
        .assert_ok(&["volume", "write"]);
    let before = json(&s.ok(&["volume", "get", "team-data", "--json"]));

    assert_eq!(
        s.ok(&["volume", "rename", "team-data", "team-archive"]),
        "renamed volume team-data to team-archive\n"
    );
    let after = json(&s.ok(&["volume", "get", "team-archive", "--json"]));
    assert_eq!(after["id"], before["id"], "the same volume");
    assert_eq!(after["used_bytes"], before["used_bytes"]);
    assert_eq!(
        s.ok(&["volume", "read", "team-archive", "/a.txt"]),
        "kept\n"
    );
    s.cli(&["volume", "get", "team-data"])
        .assert_err(4, r#"volume "team-data" not found"#);

    s.cli(&["volume", "rename", "team-archive", "taken"])
        .assert_err(5, r#"volume "taken" already exists"#);
    s.cli(&["volume", "rename", "nope", "x"])
        .assert_err(4, r#"volume "nope" not found"#);
    s.cli(&["volume", "rename", "team-archive", "Bad_Name"])
        .assert_err(2, "invalid volume name");

    // Attached: refused with volume_in_use, nothing changes; free again once the sandbox goes.
    let id = s
        .ok(&[
            "sandbox",
            "create",
            "--volume",
            "ref=team-archive,mount=/mnt/d",
        ])
        .trim()
        .to_owned();
    let refused = s.cli(&["volume", "rename", "team-archive", "moved", "--json"]);
    s.ok(&["sandbox", "destroy", &id]);
    refused.assert_err(5, "is attached to 1 sandbox(es)");
    let v = json(&s.ok(&["volume", "rename", "team-archive", "moved", "--json"]));
    assert_eq!(
        (v["name"].as_str(), &v["id"]),
        (Some("moved"), &before["id"])
    );
}
