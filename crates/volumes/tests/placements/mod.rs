//! One volume on either placement, for the suites that state docs/SEMANTICS.md.
//!
//! [`on_every_placement!`] makes one test per placement from one test function taking a
//! [`Backend`]: `directory::NAME` always, `loop_image::NAME` when the loop backend can run here
//! (root, /dev/loop-control, mkfs.ext4; required when `CI=true`). A loop volume is destroyed,
//! its mounts detached and its loop device checked gone when the test ends.

#![allow(dead_code, unused_macros)] // each test binary uses a part of it

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nullspace_core::{FileStat, VolumePath};
use nullspace_volumes::events::{ChangeKind, Live, Subscription};
use nullspace_volumes::{
    DirectoryPlacement, FsError, ListOptions, LoopPlacement, ServerInstance, VolumeHandle,
    VolumePlacement, VolumeStore, WriteOptions,
};

/// Where the volume's files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Directory,
    Loop,
}

/// Whether the loop tests must be skipped here (said on stderr); in CI they must run.
pub fn loop_skipped() -> bool {
    let Some(why) = nullspace_volumes::loop_unavailable() else {
        return false;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the loop backend must run in CI: {why}"
    );
    eprintln!("notice: loop placement test skipped: {why}");
    true
}

/// One test per placement for each named test function `fn NAME(backend: Backend)`.
macro_rules! on_every_placement {
    ($($name:ident),* $(,)?) => {
        mod directory {
            $(
                #[test]
                fn $name() {
                    super::$name(super::placements::Backend::Directory)
                }
            )*
        }
        mod loop_image {
            $(
                #[test]
                fn $name() {
                    if super::placements::loop_skipped() {
                        return;
                    }
                    super::$name(super::placements::Backend::Loop)
                }
            )*
        }
    };
}

/// The volume's id in every test.
const ID: &str = "v";

/// One server's view of the volume: its store and the volume's open handle.
pub struct Server {
    pub store: VolumeStore,
    pub handle: Arc<VolumeHandle>,
}

fn placement(backend: Backend, data: &Path) -> Box<dyn VolumePlacement> {
    match backend {
        Backend::Directory => Box::new(DirectoryPlacement::open(data).unwrap()),
        Backend::Loop => Box::new(LoopPlacement::open(data, true).unwrap()),
    }
}

/// A server on the data root below `dir` (registered there like a real one, so servers
/// sharing the root keep each other's temporary files), with the volume open.
fn open_server(backend: Backend, dir: &Path, cap: u64, create: bool) -> Server {
    let owner = ServerInstance::register(&dir.join("servers")).unwrap();
    let store = VolumeStore::shared(placement(backend, &dir.join("data")), owner, None);
    if create {
        store.create(ID, cap).unwrap();
    }
    let handle = store.handle(ID, cap).unwrap();
    Server { store, handle }
}

/// A volume capped at `cap` bytes on one placement, open in one server.
pub struct Volume {
    pub backend: Backend,
    cap: u64,
    dir: tempfile::TempDir,
    server: Option<Server>,
}

impl Volume {
    pub fn new(backend: Backend, cap: u64) -> Volume {
        let dir = tempfile::Builder::new()
            .prefix("ns-semantics-")
            .tempdir()
            .unwrap();
        let server = open_server(backend, dir.path(), cap, true);
        Volume {
            backend,
            cap,
            dir,
            server: Some(server),
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("a server is open")
    }

    /// The volume's handle in the current server.
    pub fn h(&self) -> &Arc<VolumeHandle> {
        &self.server().handle
    }

    /// The host directory of the volume's tree: what a sandbox mount shows, and what sandbox
    /// code writes to.
    pub fn data_dir(&self) -> PathBuf {
        self.server().store.data_dir(ID).unwrap()
    }

    /// The names in the volume's staging directory, sorted.
    pub fn staging_names(&self) -> Vec<String> {
        let staging = self.data_dir().parent().unwrap().join("staging");
        let mut names: Vec<String> = std::fs::read_dir(staging)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The server stops and a new one starts on the same data root (it measures the volume
    /// from disk and cleans what stopped servers left in staging).
    pub fn restart(&mut self) {
        let old = self.server.take().expect("a server is open");
        old.handle.stop_watching();
        drop(old);
        self.server = Some(open_server(self.backend, self.dir.path(), self.cap, false));
    }

    /// Another server on the same data root, running beside the current one.
    pub fn another_server(&self) -> Server {
        open_server(self.backend, self.dir.path(), self.cap, false)
    }

    /// Runs `scenario` in a child process (this test binary again, on its test `crash_child`),
    /// which opens the volume as another server and dies with `abort()` in the middle of the
    /// scenario, as a crashed server would. `extra` is passed on in the environment.
    pub fn crash_in_child(&self, scenario: &str, extra: &[(&str, String)]) {
        let backend = match self.backend {
            Backend::Directory => "directory",
            Backend::Loop => "loop",
        };
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("NS_CRASH_SCENARIO", scenario)
            .env("NS_CRASH_DIR", self.dir.path())
            .env("NS_CRASH_BACKEND", backend)
            .env("NS_CRASH_CAP", self.cap.to_string())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "the child should have crashed mid-scenario: {status}"
        );
    }
}

/// In a child started by [`Volume::crash_in_child`]: the scenario's name and this process's
/// server on the volume; `None` in a normal test run.
pub fn crashing_child() -> Option<(String, Server)> {
    let scenario = std::env::var("NS_CRASH_SCENARIO").ok()?;
    let dir = PathBuf::from(std::env::var("NS_CRASH_DIR").unwrap());
    let backend = match std::env::var("NS_CRASH_BACKEND").unwrap().as_str() {
        "loop" => Backend::Loop,
        _ => Backend::Directory,
    };
    let cap = std::env::var("NS_CRASH_CAP").unwrap().parse().unwrap();
    Some((scenario, open_server(backend, &dir, cap, false)))
}

impl Drop for Volume {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.store.destroy(ID);
            drop(server);
        }
        if self.backend != Backend::Loop {
            return;
        }
        // Normally nothing is left; after a failed test, detach whatever is.
        for m in mounts_below(self.dir.path()) {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
        // The kernel frees a loop device (AUTOCLEAR) once its file system is released, which
        // waits for the last fd into it (a watch thread may take a moment to end).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = loop_devices_below(self.dir.path());
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = loop_devices_below(self.dir.path());
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "loop devices left behind: {left:?}");
        }
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&dir))
        .map(str::to_owned)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.len()));
    v
}

/// Loop devices whose backing file is below `dir`.
fn loop_devices_below(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| Path::new(b.trim_end()).starts_with(&dir))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

pub fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

/// Writes `data` at `path` through the API's write path (replacing what is there).
pub fn write(h: &Arc<VolumeHandle>, path: &str, data: &[u8]) -> Result<FileStat, FsError> {
    let mut w = h.begin_write(&p(path))?;
    w.write(data)?;
    w.commit(&WriteOptions {
        overwrite: true,
        if_match: None,
    })
}

/// The whole content of a file, read through the API.
pub fn read(h: &VolumeHandle, path: &str) -> Vec<u8> {
    let (mut f, _) = h.open_read(&p(path)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut out).unwrap();
    out
}

/// Every path below `path`, recursively, as one listing shows them.
pub fn all(h: &VolumeHandle, path: &str) -> Vec<String> {
    let opts = ListOptions {
        recursive: true,
        glob: None,
        limit: 100_000,
        cursor: None,
        details: true,
    };
    h.list(&p(path), &opts)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect()
}

/// A tar stream of regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut hd = tar::Header::new_gnu();
        hd.set_size(data.len() as u64);
        hd.set_mode(0o644);
        hd.set_cksum();
        b.append_data(&mut hd, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// What a watcher received: `"created /a"`, … or `"gap"`.
pub fn received(sub: &mut Subscription, quiet: Duration) -> Vec<String> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        match sub.live.try_recv() {
            Ok(Live::Change(e)) => {
                let kind = match e.kind {
                    ChangeKind::Created => "created",
                    ChangeKind::Modified => "modified",
                    ChangeKind::Deleted => "deleted",
                    ChangeKind::Moved => "moved",
                };
                out.push(match &e.old_path {
                    Some(old) => format!("{kind} {old} -> {}", e.path),
                    None => format!("{kind} {}", e.path),
                });
                last = Instant::now();
            }
            Ok(Live::Gap(_)) => {
                out.push("gap".into());
                last = Instant::now();
            }
            Err(TryRecvError::Lagged(n)) => {
                out.push(format!("lagged {n}"));
                last = Instant::now();
            }
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(10)),
            Err(TryRecvError::Closed) => break,
        }
    }
    out
}
