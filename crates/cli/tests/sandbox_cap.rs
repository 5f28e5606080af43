//! The cap from inside a sandbox (issue #6), end to end as root: the real server with its
//! default volume backend here (`loop`: an ext4 file system per volume on a loop device), real
//! sandboxes, driven through the CLI. Also the life of those mounts: a restart keeps them, a
//! delete removes the mount and the loop device.

mod harness;

use std::path::{Path, PathBuf};

use harness::{json, launch, OutputExt, SandboxServer, Server};

const MIB: u64 = 1 << 20;

impl SandboxServer {
    fn start() -> SandboxServer {
        let s = SandboxServer(Server::start(), Vec::new());
        assert_eq!(
            std::fs::read_to_string(s.data_dir().join("volume-backend")).unwrap(),
            "loop\n",
            "as root the server picks the loop backend"
        );
        s
    }

    fn sandbox(&mut self, volume: &str) -> String {
        self.sandbox_in(volume, "namespace")
    }

    fn sandbox_in(&mut self, volume: &str, runtime: &str) -> String {
        let id = self
            .ok(&[
                "sandbox",
                "create",
                "--runtime",
                runtime,
                "--volume",
                &format!("ref={volume},mount=/mnt/v"),
            ])
            .trim()
            .to_owned();
        self.1.push(id.clone());
        id
    }

    /// `sh -c script` in the sandbox: (exit code, stdout, stderr).
    fn sh(&self, id: &str, script: &str) -> (i32, String, String) {
        let out = self.cli(&["sandbox", "exec", id, "--", "sh", "-c", script]);
        (out.code(), out.stdout_str(), out.stderr_str())
    }

    fn volume(&self, name: &str) -> serde_json::Value {
        json(&self.ok(&["volume", "get", name, "--json"]))
    }

    fn write(&self, name: &str, path: &str, content: &[u8]) -> std::process::Output {
        self.cli_stdin(&["volume", "write", name, path], content)
    }

    fn mount_point(&self, volume_id: &str) -> PathBuf {
        self.data_dir().join("volumes").join(volume_id)
    }

    fn image(&self, volume_id: &str) -> PathBuf {
        self.data_dir()
            .join("images")
            .join(format!("{volume_id}.ext4"))
    }
}

/// Loop devices whose backing file is `image`.
fn loop_devices_of(image: &Path) -> Vec<String> {
    let image = image.canonicalize().unwrap_or_else(|_| image.to_owned());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            let b = b.trim_end().trim_end_matches(" (deleted)");
            if Path::new(b) == image {
                out.push(name);
            }
        }
    }
    out
}

fn set_cap(s: &SandboxServer, size: &str) {
    s.ok(&["admin", "tenant", "set-volume-cap", "default", size]);
}

#[test]
fn dd_past_the_cap_in_a_sandbox_gets_enospc_and_the_volume_stays_usable() {
    for runtime in harness::sandbox_runtimes(
        "dd_past_the_cap_in_a_sandbox_gets_enospc_and_the_volume_stays_usable",
    ) {
        dd_past_the_cap_in(runtime);
    }
}

fn dd_past_the_cap_in(runtime: &str) {
    let mut s = SandboxServer::start();
    set_cap(&s, "16MiB");
    s.ok(&["volume", "create", "capped"]);
    let cap = s.volume("capped")["cap_bytes"].as_u64().unwrap();
    assert_eq!(cap, 16 * MIB);
    let sb = s.sandbox_in("capped", runtime);

    let (code, _, err) = s.sh(&sb, "dd if=/dev/zero of=/mnt/v/big bs=1M count=24");
    assert_ne!(code, 0, "dd past the cap must fail: {err}");
    assert!(
        err.contains("No space left on device") || err.contains("Disk quota exceeded"),
        "{err}"
    );
    // (find, not stat: this gVisor refuses the statx flags of the host's coreutils.)
    let (_, size, _) = s.sh(&sb, "find /mnt/v/big -printf %s");
    let size: u64 = size.trim().parse().unwrap();
    assert!(
        size >= cap && size <= cap + 2 * MIB,
        "the file system stops the sandbox close to the cap: wrote {size} of cap {cap}"
    );

    // used_bytes counts what the sandbox wrote.
    let v = s.volume("capped");
    assert_eq!(v["used_bytes"].as_u64(), Some(size), "{v}");
    assert_eq!(v["file_count"].as_u64(), Some(1), "{v}");

    // The next API write finds the volume full, whichever check sees it first.
    s.write("capped", "/more.txt", b"one more byte")
        .assert_err(6, "capped");
    assert_eq!(
        s.cli(&["volume", "exists", "capped", "/more.txt"]).code(),
        1,
        "a refused write leaves nothing"
    );

    // The volume still reads and writes, inside and through the API.
    let (code, _, err) = s.sh(&sb, "head -c 4 /mnt/v/big | od -An -tx1 && rm /mnt/v/big");
    assert_eq!(code, 0, "{err}");
    s.write("capped", "/api.txt", b"from the api\n")
        .assert_ok(&["volume", "write"]);
    let (code, out, err) = s.sh(
        &sb,
        "echo from the sandbox > /mnt/v/inside.txt && cat /mnt/v/api.txt",
    );
    assert_eq!((code, out.as_str()), (0, "from the api\n"), "{err}");
    assert_eq!(
        s.ok(&["volume", "read", "capped", "/inside.txt"]),
        "from the sandbox\n"
    );
    let v = s.volume("capped");
    assert_eq!(
        v["used_bytes"].as_u64(),
        Some(("from the api\n".len() + "from the sandbox\n".len()) as u64),
        "{v}"
    );
    assert_eq!(v["file_count"].as_u64(), Some(2), "{v}");
    // A file the sandbox wrote in place of a big one is seen in a listing of the volume too.
    let listed = s.ok(&["volume", "list", "--json"]);
    let listed = json(&listed);
    let row = listed["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "capped")
        .cloned()
        .unwrap();
    assert_eq!(row["used_bytes"], v["used_bytes"]);
}

#[test]
fn an_api_replace_that_the_file_system_cannot_hold_is_quota_exceeded_and_keeps_the_old_file() {
    // The API's own check passes (10 MiB replacing 10 MiB under a 16 MiB cap), but an atomic
    // replace needs the new copy and the old file at once: 20 MiB on a 16 MiB file system.
    let s = SandboxServer::start();
    set_cap(&s, "16MiB");
    s.ok(&["volume", "create", "tight"]);
    let old = vec![b'o'; 10 * MIB as usize];
    s.write("tight", "/f.bin", &old)
        .assert_ok(&["volume", "write"]);
    let new = vec![b'n'; 10 * MIB as usize];
    s.write("tight", "/f.bin", &new).assert_err(6, "tight");
    let back = s.cli(&["volume", "read", "tight", "/f.bin"]);
    assert!(back.status.success());
    assert!(back.stdout == old, "the old file is intact");
    let v = s.volume("tight");
    assert_eq!(v["used_bytes"].as_u64(), Some(10 * MIB), "{v}");
    let id = v["id"].as_str().unwrap();
    let staging: Vec<_> = std::fs::read_dir(s.mount_point(id).join("staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "no temp file is left: {staging:?}");
    // Removing and writing anew fits.
    s.ok(&["volume", "rm", "tight", "/f.bin"]);
    s.write("tight", "/f.bin", &new)
        .assert_ok(&["volume", "write"]);
}

#[test]
fn a_restart_keeps_the_data_one_mount_and_one_loop_device_per_volume() {
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "kept"]);
    s.write("kept", "/api.txt", b"api\n")
        .assert_ok(&["volume", "write"]);
    let sb = s.sandbox("kept");
    assert_eq!(s.sh(&sb, "echo sandbox > /mnt/v/sb.txt").0, 0);
    let id = s.volume("kept")["id"].as_str().unwrap().to_owned();
    let (point, image) = (s.mount_point(&id), s.image(&id));
    let before = loop_devices_of(&image);
    assert_eq!(before.len(), 1, "{before:?}");

    for _ in 0..2 {
        s.restart();
        let mounts = launch::mounts_below(&s.data_dir());
        assert_eq!(
            mounts,
            [point.canonicalize().unwrap().display().to_string()],
            "exactly one mount, the volume's, after a restart"
        );
        assert_eq!(loop_devices_of(&image), before, "the same loop device");
        assert_eq!(s.ok(&["volume", "read", "kept", "/sb.txt"]), "sandbox\n");
        assert_eq!(s.ok(&["volume", "read", "kept", "/api.txt"]), "api\n");
        let v = s.volume("kept");
        assert_eq!(v["used_bytes"].as_u64(), Some(4 + 8), "{v}");
        // The live sandbox and the API still see one file system.
        s.write("kept", "/after.txt", b"after\n")
            .assert_ok(&["volume", "write"]);
        let (code, out, err) = s.sh(&sb, "cat /mnt/v/after.txt && rm /mnt/v/after.txt");
        assert_eq!((code, out.as_str()), (0, "after\n"), "{err}");
    }
}

#[test]
fn a_deleted_volume_leaves_no_mount_no_loop_device_and_no_image() {
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "gone"]);
    s.ok(&["volume", "create", "stays"]);
    let id = s.volume("gone")["id"].as_str().unwrap().to_owned();
    let (point, image) = (s.mount_point(&id), s.image(&id));
    let sb = s.sandbox("gone");
    assert_eq!(s.sh(&sb, "echo x > /mnt/v/x").0, 0);
    assert_eq!(loop_devices_of(&image).len(), 1);
    s.ok(&["volume", "delete", "gone", "--force"]);
    let point = point.display().to_string();
    assert!(
        !launch::mounts_below(&s.data_dir()).contains(&point),
        "no mount is left at {point}"
    );
    assert!(!image.exists(), "the image is removed");
    assert!(!Path::new(&point).exists(), "the mount point is removed");
    assert_eq!(loop_devices_of(&image), Vec::<String>::new());
    // A plain delete (no sandbox) too.
    let id = s.volume("stays")["id"].as_str().unwrap().to_owned();
    let image = s.image(&id);
    s.ok(&["volume", "delete", "stays"]);
    assert!(launch::mounts_below(&s.data_dir()).is_empty());
    assert!(!image.exists());
    assert_eq!(loop_devices_of(&image), Vec::<String>::new());
}

#[test]
fn the_backend_a_data_dir_was_made_with_is_kept() {
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "v"]);
    s.stop();
    let out = std::process::Command::new(harness::BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--volume-backend",
            "directory",
        ])
        .arg("--data-dir")
        .arg(s.data_dir())
        .env("HOME", s.home())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = out.stderr_str();
    assert!(
        err.contains("--volume-backend loop") && err.contains("were made with the loop backend"),
        "{err}"
    );
    s.restart();
    s.ok(&["volume", "get", "v"]);
}

#[test]
fn writes_of_a_process_that_outlives_its_exec_are_counted_by_detach() {
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "bg"]);
    let sb = s.sandbox("bg");
    // The writer runs on after the exec returns; `done` appears once its file is complete.
    let (code, _, err) = s.sh(
        &sb,
        "(head -c 300000 /dev/zero > /mnt/v/bg.bin; echo ok > /mnt/v/done) </dev/null >/dev/null 2>&1 &",
    );
    assert_eq!(code, 0, "{err}");
    let mut seen = false;
    for _ in 0..600 {
        if s.cli(&["volume", "exists", "bg", "/done"]).code() == 0 {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(seen, "the background writer finished");
    s.ok(&["sandbox", "detach", &sb, "/mnt/v"]);
    let v = s.volume("bg");
    assert_eq!(v["used_bytes"].as_u64(), Some(300_000 + 3), "{v}");
    assert_eq!(v["file_count"].as_u64(), Some(2), "{v}");
}

#[test]
fn storage_without_a_record_is_unmounted_detached_and_removed_at_start() {
    // What an interrupted delete leaves: the record is gone, the image is still mounted.
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "real"]);
    s.stop();
    let id = "vol_00000000000000000000000000000000";
    let (point, image) = (s.mount_point(id), s.image(id));
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", out.stderr_str());
    };
    run(std::process::Command::new("truncate")
        .args(["-s", "16M"])
        .arg(&image));
    run(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096"])
        .arg(&image));
    std::fs::create_dir(&point).unwrap();
    run(std::process::Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&point));
    assert_eq!(loop_devices_of(&image).len(), 1);

    s.restart();
    assert!(!image.exists(), "the orphan image is removed");
    assert!(!point.exists(), "its mount point is removed");
    assert_eq!(loop_devices_of(&image), Vec::<String>::new());
    let real = s.volume("real")["id"].as_str().unwrap().to_owned();
    assert_eq!(
        launch::mounts_below(&s.data_dir()),
        [s.mount_point(&real)
            .canonicalize()
            .unwrap()
            .display()
            .to_string()],
        "only the real volume is mounted"
    );
    assert!(s.log().contains("removing storage of a deleted volume"));
}

#[test]
fn a_record_whose_image_is_gone_gets_a_fresh_one_and_an_unmounted_image_is_mounted_at_start() {
    let mut s = SandboxServer::start();
    s.ok(&["volume", "create", "lost"]);
    s.ok(&["volume", "create", "unmounted"]);
    s.write("unmounted", "/keep.txt", b"kept\n")
        .assert_ok(&["volume", "write"]);
    let lost = s.volume("lost")["id"].as_str().unwrap().to_owned();
    let unmounted = s.volume("unmounted")["id"].as_str().unwrap().to_owned();
    s.stop();
    for id in [&lost, &unmounted] {
        rustix::mount::unmount(s.mount_point(id), rustix::mount::UnmountFlags::DETACH).unwrap();
    }
    std::fs::remove_file(s.image(&lost)).unwrap();
    std::fs::remove_dir(s.mount_point(&lost)).unwrap();

    s.restart();
    let mut mounts = launch::mounts_below(&s.data_dir());
    mounts.sort();
    let mut want: Vec<String> = [&lost, &unmounted]
        .iter()
        .map(|id| s.mount_point(id).display().to_string())
        .collect();
    want.sort();
    assert_eq!(mounts, want);
    assert_eq!(
        s.ok(&["volume", "read", "unmounted", "/keep.txt"]),
        "kept\n"
    );
    assert_eq!(s.ok(&["volume", "ls", "lost", "/"]), "");
    s.write("lost", "/new.txt", b"new\n")
        .assert_ok(&["volume", "write"]);
    assert_eq!(loop_devices_of(&s.image(&lost)).len(), 1);
}
