//! Transfers through the CLI and the Rust client against the real server: `volume upload`
//! (file, resumable; directory; stdin), `volume download` (file, directory, archive, stdout),
//! `volume url`, and the client's tus, archive and signing calls.

mod harness;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{json, write_local, OutputExt, Server};
use nullspace_client::{ArchiveFormat, Client, ResumableOptions, SignedMethod};
use nullspace_core::{ErrorCode, VolumeName, VolumePath};
use sha2::Digest;

const MIB: u64 = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
fn pseudo_random(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap())
}

/// The volume's file as the server has it.
fn remote(s: &Server, vol: &str, path: &str) -> Vec<u8> {
    let out = s.cli(&["volume", "read", vol, path]);
    assert!(out.status.success(), "{}", out.stderr_str());
    out.stdout
}

fn usage(s: &Server, vol: &str) -> (u64, u64) {
    let v = json(&s.ok(&["volume", "get", vol, "--json"]));
    (
        v["used_bytes"].as_u64().unwrap(),
        v["file_count"].as_u64().unwrap(),
    )
}

fn volume_id(s: &Server, vol: &str) -> String {
    json(&s.ok(&["volume", "get", vol, "--json"]))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn uploads_dir(s: &Server, vol: &str) -> PathBuf {
    s.data_dir()
        .join("volumes")
        .join(volume_id(s, vol))
        .join("staging/uploads")
}

/// Resume records of the CLI runs (their `HOME` is inside the test's temp dir).
fn records(s: &Server) -> Vec<PathBuf> {
    let dir = s.home().join(".cache/nullspace/uploads");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "json"));
    v
}

/// The largest durable offset among the volume's unfinished uploads.
fn stored_offset(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| v["completed"].is_null())
        .filter_map(|v| v["offset"].as_u64())
        .max()
        .unwrap_or(0)
}

/// `resumed at X` of an upload's summary line, in bytes (from the `N.N MiB` figure).
fn resumed_mib(out: &str) -> Option<f64> {
    let rest = out.split("(resumed at ").nth(1)?;
    let num = rest.split_whitespace().next()?;
    assert!(rest.contains("MiB"), "{out}");
    num.parse().ok()
}

#[test]
fn upload_file_directory_and_stdin() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let dir = s.scratch("up");

    // A file: default destination is its name under `/`; several chunks.
    let data = pseudo_random(3 * MIB + 5, 1);
    write_local(&dir.join("data.bin"), &data);
    let out = s.ok(&[
        "volume",
        "upload",
        "v",
        dir.join("data.bin").to_str().unwrap(),
        "--chunk-size",
        "1MiB",
    ]);
    assert_eq!(out, "uploaded 3.0 MiB to v:/data.bin\n");
    assert_eq!(remote(&s, "v", "/data.bin"), data);
    // Into an existing directory, or a path ending in `/`; --json gives the FileStat.
    s.ok(&["volume", "mkdir", "v", "/docs"]);
    let st = json(&s.ok(&[
        "volume",
        "upload",
        "v",
        dir.join("data.bin").to_str().unwrap(),
        "/docs",
        "--json",
    ]));
    assert_eq!(st["path"], "/docs/data.bin");
    assert_eq!(st["size"], 3 * MIB + 5);
    s.ok(&[
        "volume",
        "upload",
        "v",
        dir.join("data.bin").to_str().unwrap(),
        "/new/dir/",
    ]);
    assert_eq!(remote(&s, "v", "/new/dir/data.bin"), data);
    // An empty file.
    write_local(&dir.join("empty"), b"");
    s.ok(&[
        "volume",
        "upload",
        "v",
        dir.join("empty").to_str().unwrap(),
        "/e",
    ]);
    assert_eq!(
        json(&s.ok(&["volume", "stat", "v", "/e", "--json"]))["size"],
        0
    );
    assert!(records(&s).is_empty(), "records are removed when done");

    // A directory tree: layout and empty directories kept, symlinks skipped with a warning.
    let tree = dir.join("tree");
    write_local(&tree.join("a/b/c.txt"), b"c");
    write_local(&tree.join("bin"), &pseudo_random(70_000, 2));
    std::fs::create_dir_all(tree.join("empty/inner")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
    let out = s.cli(&["volume", "upload", "v", tree.to_str().unwrap(), "/t"]);
    assert!(out.status.success(), "{}", out.stderr_str());
    assert_eq!(out.stdout_str(), "uploaded 2 files (68.4 KiB) to v:/t\n");
    assert!(
        out.stderr_str().starts_with("warning: skipped ") && out.stderr_str().contains("link"),
        "{}",
        out.stderr_str()
    );
    let listed = s.ok(&["volume", "ls", "v", "/t", "-r"]);
    assert_eq!(
        listed,
        "/t/a\n/t/a/b\n/t/a/b/c.txt\n/t/bin\n/t/empty\n/t/empty/inner\n"
    );
    // Default destination of a directory: its name.
    s.ok(&["volume", "upload", "v", tree.join("a").to_str().unwrap()]);
    assert_eq!(remote(&s, "v", "/a/b/c.txt"), b"c");

    // stdin: one streamed PUT.
    let input = pseudo_random(2 * MIB + 1, 3);
    let out = s.cli_stdin(&["volume", "upload", "v", "-", "/from-stdin.bin"], &input);
    assert_eq!(
        out.assert_ok(&["upload -"]),
        "uploaded 2.0 MiB from stdin to v:/from-stdin.bin\n"
    );
    assert_eq!(remote(&s, "v", "/from-stdin.bin"), input);
    s.cli(&["volume", "upload", "v", "-"])
        .assert_err(2, "needs REMOTE");

    // Bad input.
    s.cli(&["volume", "upload", "v", "/no/such/file", "/x"])
        .assert_err(1, "cannot read /no/such/file");
    s.cli(&[
        "volume",
        "upload",
        "v",
        dir.join("data.bin").to_str().unwrap(),
        "/x",
        "--chunk-size",
        "0",
    ])
    .assert_err(2, "invalid --chunk-size");
    s.cli(&[
        "volume",
        "upload",
        "nope",
        dir.join("data.bin").to_str().unwrap(),
    ])
    .assert_err(4, "not found");

    let (used, files) = usage(&s, "v");
    assert_eq!(files, 8);
    assert_eq!(
        used,
        3 * (3 * MIB + 5) + 1 + 70_000 + 1 + (2 * MIB + 1),
        "every upload counted once"
    );
}

#[test]
fn upload_help_says_stdin_cannot_resume() {
    let s = Server::start();
    let help = s.ok(&["volume", "upload", "--help"]);
    assert!(help.contains("cannot resume"), "{help}");
    assert!(help.contains("progress bar"), "{help}");
}

#[test]
fn killed_upload_resumes_from_the_stored_offset() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let size = 200 * MIB;
    let data = pseudo_random(size, 42);
    let local = s.scratch("big").join("big.bin");
    write_local(&local, &data);
    let want = sha256(&data);
    drop(data);
    let uploads = uploads_dir(&s, "v");

    // Start the upload and kill -9 the CLI once a few 4 MiB chunks are stored.
    let mut child = s
        .command()
        .args([
            "volume",
            "upload",
            "v",
            local.to_str().unwrap(),
            "/big.bin",
            "--chunk-size",
            "4MiB",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored_offset(&uploads) < 12 * MIB {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the upload finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the upload made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = stored_offset(&uploads);
    assert!(killed_at < size);
    assert_eq!(records(&s).len(), 1, "a resume record was kept");
    s.cli(&["volume", "stat", "v", "/big.bin"])
        .assert_err(4, "not found");
    assert_eq!(
        usage(&s, "v"),
        (0, 0),
        "an unfinished upload is not counted"
    );

    // The same command again: it continues from the server's durable offset.
    let args = [
        "volume",
        "upload",
        "v",
        local.to_str().unwrap(),
        "/big.bin",
        "--chunk-size",
        "4MiB",
    ];
    let out = s.ok(&args);
    let resumed = resumed_mib(&out).unwrap_or_else(|| panic!("not resumed: {out}"));
    assert!(
        resumed * MIB as f64 >= killed_at as f64 && resumed < 200.0,
        "resumed at {resumed} MiB, killed at {killed_at}"
    );
    assert_eq!(sha256(&remote(&s, "v", "/big.bin")), want);
    assert_eq!(usage(&s, "v"), (size, 1));
    assert!(records(&s).is_empty(), "the record is removed when done");
    let leftovers: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "data"))
        .collect();
    assert!(leftovers.is_empty(), "upload data left in staging");
}

#[test]
fn a_resume_record_of_a_gone_upload_starts_over() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let local = s.scratch("f").join("f.bin");
    let data = pseudo_random(32 * MIB, 7);
    write_local(&local, &data);
    let uploads = uploads_dir(&s, "v");
    let mut child = s
        .command()
        .args([
            "volume",
            "upload",
            "v",
            local.to_str().unwrap(),
            "/f.bin",
            "--chunk-size",
            "1MiB",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored_offset(&uploads) < MIB && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        records(&s).len(),
        1,
        "killed before the end, the record is kept"
    );
    // Terminate the upload on the server (tus DELETE), as if it had expired.
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records(&s)[0]).unwrap()).unwrap();
    let url = rec["upload_url"].as_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Client::new(&s.url, &s.key).unwrap();
        c.tus_terminate(url).await.unwrap();
        assert!(c.tus_status(url).await.unwrap().is_none());
    });
    let out = s.ok(&[
        "volume",
        "upload",
        "v",
        local.to_str().unwrap(),
        "/f.bin",
        "--chunk-size",
        "1MiB",
    ]);
    assert_eq!(out, "uploaded 32.0 MiB to v:/f.bin\n", "a fresh upload");
    assert_eq!(remote(&s, "v", "/f.bin"), data);
    assert!(records(&s).is_empty());
}

/// relative path -> Some(content) for files, None for directories.
fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn make_tree(root: &Path) {
    write_local(&root.join("a/b/c/deep.txt"), b"deep\n");
    std::fs::create_dir_all(root.join("a/empty")).unwrap();
    std::fs::create_dir_all(root.join("top-empty/nested")).unwrap();
    write_local(&root.join("bin/zeros"), &[0u8; 4097]);
    write_local(&root.join("bin/random"), &pseudo_random(MIB + 3, 9));
    write_local(&root.join("with space ü.txt"), b"u");
    write_local(&root.join("zero"), b"");
    write_local(&root.join("large.bin"), &pseudo_random(20 * MIB + 1, 10));
    for i in 0..200 {
        write_local(
            &root.join(format!("many/f{i:03}")),
            format!("{i}").as_bytes(),
        );
    }
}

#[test]
fn download_file_directory_archive_and_stdout() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let work = s.scratch("dl");
    let src = work.join("src");
    make_tree(&src);
    s.ok(&["volume", "upload", "v", src.to_str().unwrap(), "/tree"]);
    let want = snapshot(&src);

    // A directory into a local directory (created), byte for byte.
    let out = s.ok(&[
        "volume",
        "download",
        "v",
        "/tree",
        work.join("copy").to_str().unwrap(),
    ]);
    assert!(out.starts_with("downloaded 206 files"), "{out}");
    assert_eq!(snapshot(&work.join("copy")), want);
    // Default destination: the directory's name in the current directory.
    let cwd = s.scratch("cwd");
    let out = s
        .command()
        .current_dir(&cwd)
        .args(["volume", "download", "v", "/tree/a"])
        .output()
        .unwrap();
    out.assert_ok(&["download /tree/a"]);
    assert_eq!(
        std::fs::read(cwd.join("a/b/c/deep.txt")).unwrap(),
        b"deep\n"
    );
    assert!(cwd.join("a/empty").is_dir());

    // Archives to files, extracted by other tools and compared.
    for (fmt, name) in [
        ("tar", "tree.tar"),
        ("tar.gz", "tree.tar.gz"),
        ("zip", "tree.zip"),
    ] {
        let out = s
            .command()
            .current_dir(&cwd)
            .args(["volume", "download", "v", "/tree", "--archive", fmt])
            .output()
            .unwrap();
        let msg = out.assert_ok(&["download --archive", fmt]);
        assert!(
            msg.starts_with(&format!("saved v:/tree as {name} (")),
            "{msg}"
        );
        let archive = cwd.join(name);
        let x = work.join(format!("x-{fmt}"));
        std::fs::create_dir_all(&x).unwrap();
        if fmt == "zip" {
            let f = std::fs::File::open(&archive).unwrap();
            zip::ZipArchive::new(f).unwrap().extract(&x).unwrap();
        } else {
            let st = std::process::Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&x)
                .status()
                .unwrap();
            assert!(st.success());
        }
        assert_eq!(snapshot(&x), want, "{fmt}");
    }
    // An explicit archive path.
    let explicit = work.join("explicit.tgz");
    s.ok(&[
        "volume",
        "download",
        "v",
        "/tree/a",
        explicit.to_str().unwrap(),
        "--archive",
        "tar.gz",
    ]);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&explicit).unwrap());
    let mut names: Vec<String> = tar::Archive::new(gz)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b/", "b/c/", "b/c/deep.txt", "empty/"]);

    // A directory to stdout: a tar stream.
    let out = s.cli(&["volume", "download", "v", "/tree/bin", "-"]);
    assert!(out.status.success() && out.stderr.is_empty());
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let mut got = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        got.insert(e.path().unwrap().to_string_lossy().into_owned(), buf);
    }
    assert_eq!(got["zeros"], vec![0u8; 4097]);
    assert_eq!(got["random"], pseudo_random(MIB + 3, 9));
    let zipped = s.cli(&[
        "volume",
        "download",
        "v",
        "/tree/bin",
        "-",
        "--archive",
        "zip",
    ]);
    assert!(zipped.stdout.starts_with(b"PK\x03\x04"));

    // A file: to a path, into a directory, to stdout.
    let large = pseudo_random(20 * MIB + 1, 10);
    let dest = work.join("large.copy");
    let out = s.ok(&[
        "volume",
        "download",
        "v",
        "/tree/large.bin",
        dest.to_str().unwrap(),
    ]);
    assert!(
        out.starts_with("downloaded v:/tree/large.bin (20.0 MiB) to "),
        "{out}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), large);
    s.ok(&[
        "volume",
        "download",
        "v",
        "/tree/bin/zeros",
        cwd.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(cwd.join("zeros")).unwrap(), vec![0u8; 4097]);
    let out = s.cli(&["volume", "download", "v", "/tree/large.bin", "-"]);
    assert!(out.status.success() && out.stderr.is_empty());
    assert_eq!(out.stdout, large);
    assert!(
        !std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".nspart")),
        "no partial files left"
    );

    // Errors.
    s.cli(&["volume", "download", "v", "/missing", "-"])
        .assert_err(4, "not found");
    s.cli(&["volume", "download", "v", "/tree/zero", "--archive", "tar"])
        .assert_err(2, "not a directory");
    s.cli(&["volume", "download", "v", "/tree", "--archive", "rar"])
        .assert_err(2, "unknown archive format");
}

#[test]
fn interrupted_file_download_resumes_with_a_range_request() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    let work = s.scratch("resume-dl");
    let data = pseudo_random(6 * MIB, 5);
    write_local(&work.join("src"), &data);
    s.ok(&[
        "volume",
        "upload",
        "v",
        work.join("src").to_str().unwrap(),
        "/f",
    ]);
    let etag = json(&s.ok(&["volume", "stat", "v", "/f", "--json"]))["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    // What an interrupted run leaves: the first part, in the partial file named by etag.
    let dest = work.join("out.bin");
    // A partial of an older version of the file is dropped, not continued.
    write_local(&work.join(".out.bin.0123abcd.nspart"), b"stale");
    write_local(
        &work.join(format!(".out.bin.{etag}.nspart")),
        &data[..(2 * MIB as usize)],
    );
    let out = s.ok(&["volume", "download", "v", "/f", dest.to_str().unwrap()]);
    assert!(out.contains("(resumed at 2.0 MiB)"), "{out}");
    assert_eq!(sha256_file(&dest), sha256(&data));
    assert!(!work.join(format!(".out.bin.{etag}.nspart")).exists());
    assert!(!work.join(".out.bin.0123abcd.nspart").exists());
}

#[test]
fn signed_urls_from_the_cli() {
    let s = Server::start();
    s.ok(&["volume", "create", "v"]);
    s.cli_stdin(&["volume", "write", "v", "/f.txt"], b"hello")
        .assert_ok(&["write"]);
    let url = s.ok(&["volume", "url", "v", "/f.txt", "--expires", "15m"]);
    let url = url.trim_end();
    assert!(url.starts_with(&format!("{}/v1/signed/", s.url)), "{url}");
    let put = s.ok(&["volume", "url", "v", "/up.txt", "--method", "put"]);
    let doc = json(&s.ok(&["volume", "url", "v", "/f.txt", "--expires", "7d", "--json"]));
    assert_eq!(doc["method"], "GET");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(doc["expires_at"].as_str().unwrap()).unwrap();
    let left = expires_at.signed_duration_since(chrono::Utc::now());
    assert!(left > chrono::Duration::days(7) - chrono::Duration::minutes(1));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // No API key anywhere.
        let http = reqwest::Client::new();
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
        let r = http
            .put(put.trim_end())
            .body("via signed PUT")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The GET URL does not upload, the PUT URL does not download.
        assert_eq!(http.put(url).body("x").send().await.unwrap().status(), 403);
        assert_eq!(http.get(put.trim_end()).send().await.unwrap().status(), 403);
    });
    assert_eq!(remote(&s, "v", "/up.txt"), b"via signed PUT");
    assert_eq!(remote(&s, "v", "/f.txt"), b"hello");

    s.cli(&["volume", "url", "v", "/f.txt", "--expires", "8d"])
        .assert_err(2, "7 days");
    s.cli(&["volume", "url", "v", "/f.txt", "--expires", "soon"])
        .assert_err(2, "invalid duration");
    s.cli(&["volume", "url", "v", "/f.txt", "--method", "DELETE"])
        .assert_err(2, "GET or PUT");
    s.cli(&["volume", "url", "nope", "/f.txt"])
        .assert_err(4, "not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tus_archive_and_signing() {
    let s = Server::start();
    let c = Client::new(&s.url, &s.key).unwrap();
    let v = VolumeName::parse("v").unwrap();
    c.create_volume(&v, &Default::default(), false)
        .await
        .unwrap();
    let p = VolumePath::parse("/t/f.bin").unwrap();

    // The tus calls one by one.
    let up = c.tus_create(&v, &p, 10, None).await.unwrap();
    assert_eq!((up.offset, up.length), (0, 10));
    assert!(up
        .url
        .starts_with(&format!("{}/v1/volumes/v/uploads/", s.url)));
    assert!(up.expires.is_some());
    let after = c.tus_patch(&up.url, 0, "01234".into()).await.unwrap();
    assert_eq!(after.offset, 5);
    let e = c.tus_patch(&up.url, 2, "x".into()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    let st = c.tus_status(&up.url).await.unwrap().unwrap();
    assert_eq!((st.offset, st.length), (5, 10));
    let done = c.tus_patch(&up.url, 5, "56789".into()).await.unwrap();
    assert!(done.etag.is_some());
    assert_eq!(c.read_bytes(&v, &p).await.unwrap().as_ref(), b"0123456789");
    // creation-with-upload.
    let q = VolumePath::parse("/one-shot").unwrap();
    let one = c.tus_create(&v, &q, 3, Some("abc".into())).await.unwrap();
    assert!(one.is_complete());
    assert_eq!(c.read_bytes(&v, &q).await.unwrap().as_ref(), b"abc");
    // Termination.
    let gone = c.tus_create(&v, &q, 3, None).await.unwrap();
    c.tus_terminate(&gone.url).await.unwrap();
    assert!(c.tus_status(&gone.url).await.unwrap().is_none());
    // Too large for the cap.
    let e = c.tus_create(&v, &q, 3 << 30, None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);

    // upload_resumable continues an upload started elsewhere.
    let local = s.scratch("c").join("f");
    let data = pseudo_random(3 * MIB + 1, 4);
    write_local(&local, &data);
    let r = VolumePath::parse("/resumable").unwrap();
    let started = c.tus_create(&v, &r, data.len() as u64, None).await.unwrap();
    c.tus_patch(&started.url, 0, data[..MIB as usize].to_vec().into())
        .await
        .unwrap();
    let opts = ResumableOptions {
        chunk_size: Some(MIB as usize),
        resume_url: Some(started.url.clone()),
        ..Default::default()
    };
    let res = c.upload_resumable(&v, &local, &r, &opts).await.unwrap();
    assert_eq!(
        (res.resumed_from, res.url.as_str()),
        (MIB, started.url.as_str())
    );
    assert_eq!(c.read_bytes(&v, &r).await.unwrap().as_ref(), &data[..]);
    // A resume URL of another server is never contacted (nor sent the key).
    let opts = ResumableOptions {
        resume_url: Some("http://127.0.0.1:1/v1/volumes/v/uploads/x".into()),
        ..Default::default()
    };
    let res = c.upload_resumable(&v, &local, &r, &opts).await.unwrap();
    assert_eq!(res.resumed_from, 0);

    // Archive stream and signed URLs.
    let content = c
        .download_archive(&v, &VolumePath::parse("/t").unwrap(), ArchiveFormat::Tar)
        .await
        .unwrap();
    let bytes = content.bytes().await.unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["f.bin"]);
    let e = c
        .download_archive(&v, &VolumePath::parse("/nope").unwrap(), ArchiveFormat::Zip)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let signed = c
        .sign_url(&v, &p, SignedMethod::Get, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(signed.method, "GET");
    let body = reqwest::get(&signed.url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), b"0123456789");
    let e = c
        .sign_url(&v, &p, SignedMethod::Get, Duration::from_secs(8 * 86400))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    // Range read from an offset.
    let (rest, total) = c.read_file_from(&v, &p, 4).await.unwrap();
    assert_eq!(total, Some(10));
    assert_eq!(rest.bytes().await.unwrap().as_ref(), b"456789");
}
