//! `LoopPlacement` for real (root, loop devices, mkfs.ext4): the file system's free space
//! matches the cap, attaching is idempotent across placements (servers) sharing a data root,
//! and destroy leaves no mount, loop device or image.

mod placements;

use std::path::{Path, PathBuf};

use nullspace_volumes::{image_size, LoopPlacement, VolumePlacement, MIN_FS_BYTES, SLACK_BYTES};
use placements::mounts_below;

const MIB: u64 = 1 << 20;

/// A temp data root whose mounts are detached on drop (also when a test fails).
struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Root {
        Root(
            tempfile::Builder::new()
                .prefix("ns-loop-")
                .tempdir()
                .unwrap(),
        )
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for m in mounts_below(self.path()) {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

fn loop_devices_of(image: &Path) -> usize {
    let image = image.canonicalize().unwrap_or_else(|_| image.to_owned());
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|b| Path::new(b.trim_end().trim_end_matches(" (deleted)")) == image)
        .count()
}

fn avail(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).unwrap();
    st.f_bavail * st.f_frsize
}

fn image(root: &Path, id: &str) -> PathBuf {
    root.canonicalize()
        .unwrap()
        .join("images")
        .join(format!("{id}.ext4"))
}

#[test]
fn free_space_is_the_cap_plus_at_most_the_slack() {
    let root = Root::new();
    let p = LoopPlacement::open(root.path(), true).unwrap();
    for (i, cap) in [
        1024,
        5 * MIB,
        10 * MIB,
        100 * MIB,
        2048 * MIB,
        100 * 1024 * MIB,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("v{i}");
        let vroot = p.create(&id, cap).unwrap();
        let free = avail(&vroot.join("data"));
        let floor = cap.max(MIN_FS_BYTES);
        assert!(
            // The metadata estimate is a little generous for very large file systems.
            free >= floor && free <= floor + SLACK_BYTES + SLACK_BYTES / 2 + floor / 10_000,
            "cap {cap}: {free} bytes free (image {})",
            image_size(cap)
        );
        let mut names: Vec<_> = std::fs::read_dir(&vroot)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["data", "staging"]);
        p.destroy(&id).unwrap();
    }
}

#[test]
fn two_placements_on_one_root_share_one_mount_and_one_loop_device() {
    let root = Root::new();
    let a = LoopPlacement::open(root.path(), true).unwrap();
    let b = LoopPlacement::open(root.path(), true).unwrap();
    let vroot = a.create("v", 16 * MIB).unwrap();
    std::fs::write(vroot.join("data/f"), b"x").unwrap();
    let img = image(root.path(), "v");
    assert_eq!(b.locate("v").unwrap(), vroot);
    assert_eq!(mounts_below(root.path()).len(), 1);
    assert_eq!(loop_devices_of(&img), 1);

    // Unmounted behind our back: two "servers" racing to attach it make one mount.
    rustix::mount::unmount(&vroot, rustix::mount::UnmountFlags::DETACH).unwrap();
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.locate("v"));
        let tb = s.spawn(|| b.locate("v"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(ra.unwrap(), vroot);
    assert_eq!(rb.unwrap(), vroot);
    assert_eq!(mounts_below(root.path()).len(), 1, "one mount");
    assert_eq!(loop_devices_of(&img), 1, "one loop device");
    assert_eq!(std::fs::read(vroot.join("data/f")).unwrap(), b"x");

    assert_eq!(a.list().unwrap(), ["v"]);
    a.destroy("v").unwrap();
    assert!(mounts_below(root.path()).is_empty());
    assert_eq!(loop_devices_of(&img), 0);
    assert!(!img.exists() && !vroot.exists());
    assert!(b.list().unwrap().is_empty());
    assert!(matches!(
        b.locate("v"),
        Err(nullspace_volumes::FsError::NotFound(_))
    ));
}

#[test]
fn writes_past_the_cap_get_enospc_and_removing_frees_the_space() {
    let root = Root::new();
    let p = LoopPlacement::open(root.path(), true).unwrap();
    let data = p.create("v", 12 * MIB).unwrap().join("data");
    let chunk = vec![7u8; MIB as usize];
    let mut f = std::fs::File::create(data.join("big")).unwrap();
    let mut written = 0u64;
    let err = loop {
        use std::io::Write;
        match f.write_all(&chunk).and_then(|()| f.sync_data()) {
            Ok(()) => written += MIB,
            Err(e) => break e,
        }
        assert!(written <= 16 * MIB, "no ENOSPC after {written} bytes");
    };
    assert_eq!(err.raw_os_error(), Some(libc_enospc()));
    assert!(written >= 12 * MIB, "{written}");
    drop(f);
    std::fs::remove_file(data.join("big")).unwrap();
    std::fs::write(data.join("small"), b"fits again").unwrap();
    p.destroy("v").unwrap();
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}
