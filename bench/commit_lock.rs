//! Cost of the cross-process commit lock and shared usage figure (issue 7) on the
//! single-server write path. Run as root:
//!
//! ```sh
//! cargo run --release -p nullspace-volumes --example commit_lock_bench
//! ```
//!
//! Measures, on the file system of /work/benchtmp, in alternating rounds (median of 7):
//! - a small write through the data plane (`VolumeHandle::begin_write` + `commit` of 4 KiB: temp
//!   file, fsync, rename, directory fsync — the API's write path without HTTP), which now
//!   includes the shared usage file;
//! - the work that file adds to each such write, done alone: `flock(LOCK_EX)`, `pread` and
//!   `pwrite` of the 84-byte record, `flock(LOCK_UN)`, plus the two lock-free `pread`s of the
//!   figure around a request (the early cap bound, the usage recorded afterwards). These are
//!   the exact calls `shared_usage.rs` makes.
//!
//! Prints both per-operation times and the share of the write the lock takes.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use nullspace_core::VolumePath;
use nullspace_volumes::{DirectoryPlacement, VolumePlacement, VolumeStore, WriteOptions};
use rustix::fs::FlockOperation;

const WRITES: usize = 500;
const LOCKS: usize = 20_000;
const ROUNDS: usize = 7;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() -> std::io::Result<()> {
    std::fs::create_dir_all("/work/benchtmp")?;
    let tmp = tempfile::Builder::new()
        .prefix("commit-lock-")
        .tempdir_in("/work/benchtmp")?;
    let placement = DirectoryPlacement::open(tmp.path()).expect("placement");
    placement.create("v", 2 << 30).expect("create");
    let store = VolumeStore::new(Box::new(placement));
    let h = store.handle("v", u64::MAX).expect("open");
    let data = vec![7u8; 4096];
    let opts = WriteOptions {
        overwrite: true,
        if_match: None,
    };
    let record = tmp.path().join("record");
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&record)?;
    f.write_all_at(&[b'0'; 84], 0)?;

    let (mut writes, mut locks) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..WRITES {
            let p = VolumePath::parse(&format!("/r{round}/f{}", i % 50)).expect("path");
            let mut w = h.begin_write(&p).expect("begin");
            w.write(&data).expect("write");
            w.commit(&opts).expect("commit");
        }
        writes.push(t.elapsed().as_secs_f64() / WRITES as f64);

        let mut buf = [0u8; 84];
        let t = Instant::now();
        for _ in 0..LOCKS {
            f.read_at(&mut buf, 0)?; // early cap bound
            rustix::fs::flock(f.as_fd(), FlockOperation::LockExclusive)?;
            f.read_at(&mut buf, 0)?;
            f.write_all_at(&buf, 0)?;
            rustix::fs::flock(f.as_fd(), FlockOperation::Unlock)?;
            f.read_at(&mut buf, 0)?; // usage recorded after the change
        }
        locks.push(t.elapsed().as_secs_f64() / LOCKS as f64);
    }
    let (w, l) = (median(writes.clone()), median(locks.clone()));
    let mut out = std::io::stdout();
    writeln!(
        out,
        "4 KiB write through the data plane: {:.1} µs (rounds: {:?})",
        w * 1e6,
        writes
            .iter()
            .map(|x| (x * 1e7).round() / 10.0)
            .collect::<Vec<_>>()
    )?;
    writeln!(
        out,
        "shared usage work per write: {:.2} µs (rounds: {:?})",
        l * 1e6,
        locks
            .iter()
            .map(|x| (x * 1e8).round() / 100.0)
            .collect::<Vec<_>>()
    )?;
    writeln!(out, "share of the write: {:.2}%", 100.0 * l / w)?;
    Ok(())
}
