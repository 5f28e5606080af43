//! The file-system event source of the volumes: inotify on their data trees, so that changes
//! made by sandbox code in a mount reach each volume's [`EventLog`] like the API's own.
//!
//! - **One instance per server.** Every watched volume of a server shares one inotify instance
//!   and one thread ([`FsHub`]): the host user has few instances for the whole machine
//!   (`fs.inotify.max_user_instances`, often 128). Each watch belongs to one volume; the
//!   thread hands each event to its volume's state, which is what the rest of this describes.
//! - **When it runs.** From the first watcher of a volume until [`LINGER`] after the last one
//!   left (so a client that reconnects soon loses nothing), until the volume is deleted, or
//!   until the server stops. Changes made while it did not run were not observed: resuming
//!   from an id before its start yields a `gap` (see [`EventLog::subscribe`]).
//! - **Which directories.** Every directory of the tree has a watch (inotify is not recursive).
//!   Each is opened by fd through the one resolver, beneath the data directory and without
//!   following a final symlink, and the watch is added on `/proc/self/fd/N`, so a sandbox
//!   swapping a directory for a symlink cannot make us watch anything outside the volume. A new
//!   directory is watched as soon as its event is read, then listed: what was made in it
//!   before the watch existed is reported from that listing (and not again from its events).
//! - **Coalescing.** A file's `created` (or `modified`) is held until the writer closes it
//!   (`IN_CLOSE_WRITE`), so `echo hi > f` is one `created` and `echo hi >> f` one `modified`,
//!   each sent after the content is there. A file still open after [`HOLD`], or when another
//!   path changes, is reported then; writes after that are a new `modified`, held the same way.
//! - **Moves.** `IN_MOVED_FROM`/`IN_MOVED_TO` with the same cookie are one `moved`; a move out
//!   of the tree is `deleted`, into it `created`.
//! - **Losses.** An inotify queue overflow (the queue is the server's, so every watched volume
//!   gets it), more directories than [`MAX_WATCHES`] in a volume, or a host budget used up
//!   (`fs.inotify.max_user_watches`, or no instance to be had) is sent to watchers as a `gap`,
//!   never silently; after an overflow every watch is set up again from the tree on disk.

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nullspace_core::VolumePath;
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, FsResult};
use crate::events::{ChangeKind, EventLog};
use crate::resolve::Beneath;
use crate::walk::read_entries;

/// How long the source keeps running after the last watcher left.
pub const LINGER: Duration = Duration::from_secs(60);
/// How long a file open for writing is held before its change is reported anyway.
pub const HOLD: Duration = Duration::from_millis(500);
/// How long a trailing `IN_MOVED_FROM` waits for its `IN_MOVED_TO` before it counts as a
/// move out of the tree (the kernel queues the two together, so this is only a safety margin).
const PAIR_WAIT: Duration = Duration::from_millis(20);
/// How long an entry found by listing a new directory is remembered, so that its own
/// creation event (if the watch came before it) is not reported a second time.
const SCAN_MEMORY: Duration = Duration::from_secs(5);
/// Watched directories per volume at most (inotify watches are a host-wide resource).
pub const MAX_WATCHES: usize = 65_536;
/// Events read before they are handled (the rest waits in the kernel queue).
const BATCH: usize = 4_096;

const MASK: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ONLYDIR);

/// The file-system event source of every volume of a server: one inotify instance and one
/// thread, started by the first watch and stopped when no volume is watched any more.
/// Cloning shares it.
#[derive(Clone, Default)]
pub struct FsHub {
    inner: Arc<HubShared>,
}

impl std::fmt::Debug for FsHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsHub")
            .field("volumes", &self.inner.lock().vols.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct HubShared {
    state: Mutex<HubState>,
}

impl HubShared {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct HubState {
    /// The instance and the thread's wake-up eventfd, while the thread runs.
    running: Option<(Arc<Instance>, Arc<OwnedFd>)>,
    /// The watched volumes, by [`FsSource`] key.
    vols: HashMap<u64, Watcher>,
    next_key: u64,
}

/// The server's inotify instance, and which volume owns each of its watches.
struct Instance {
    fd: OwnedFd,
    owners: Mutex<HashMap<i32, u64>>,
}

impl Instance {
    fn new() -> FsResult<Instance> {
        Ok(Instance {
            fd: inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).map_err(
                |e| match e {
                    // The host user's instances (fs.inotify.max_user_instances) or the process's
                    // descriptors are used up.
                    Errno::MFILE | Errno::NFILE => FsError::Exhausted(format!(
                        "no inotify instance for the file-system watch: {e}"
                    )),
                    e => io(e),
                },
            )?,
            owners: Mutex::default(),
        })
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<i32, u64>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn owner(&self, wd: i32) -> Option<u64> {
        self.owners().get(&wd).copied()
    }
}

impl FsHub {
    /// The hub's running instance, started (with its thread) if none runs.
    fn instance(&self, state: &mut HubState) -> FsResult<(Arc<Instance>, Arc<OwnedFd>)> {
        if let Some((inst, wake)) = &state.running {
            return Ok((inst.clone(), wake.clone()));
        }
        let inst = Arc::new(Instance::new()?);
        let wake_fd =
            Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(io)?);
        let (hub, i, w) = (self.inner.clone(), inst.clone(), wake_fd.clone());
        std::thread::Builder::new()
            .name("nullspace-fswatch".into())
            .spawn(move || run(&hub, &i, &w))
            .map_err(io)?;
        state.running = Some((inst.clone(), wake_fd.clone()));
        Ok((inst, wake_fd))
    }

    /// How many volumes the hub watches now.
    pub fn watched_volumes(&self) -> usize {
        self.inner.lock().vols.len()
    }
}

/// Starts, shares and stops the file-system source of one volume (its part of the hub).
pub(crate) struct FsSource {
    data: PathBuf,
    hub: FsHub,
    key: u64,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    watchers: usize,
    left_at: Option<Instant>,
    /// The hub's wake-up eventfd while the volume is watched (`None`: not watched).
    wake: Option<Arc<OwnedFd>>,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wake(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Keeps the source running while held (one per watcher).
pub struct Attached(Arc<Shared>);

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attached")
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut slot = self.0.lock();
        slot.watchers = slot.watchers.saturating_sub(1);
        if slot.watchers == 0 {
            slot.left_at = Some(Instant::now());
            if let Some(w) = &slot.wake {
                wake(w);
            }
        }
    }
}

fn io(e: impl Into<std::io::Error>) -> FsError {
    FsError::Io {
        path: "/".into(),
        source: e.into(),
    }
}

impl std::fmt::Debug for FsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsSource")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl FsSource {
    /// The source of the data tree at `data` (not started), part of `hub`.
    pub(crate) fn new(data: PathBuf, hub: &FsHub) -> FsSource {
        let key = {
            let mut state = hub.inner.lock();
            state.next_key += 1;
            state.next_key
        };
        FsSource {
            data,
            hub: hub.clone(),
            key,
            shared: Arc::default(),
        }
    }

    /// Registers a watcher, starting the source if it is not running. The watches are in
    /// place when this returns: any later change is observed. When the host's inotify budget
    /// is used up (instances or descriptors), the second value is `false`: the watcher must
    /// be told that it misses the changes made by sandbox code (a gap), and the next watcher
    /// tries again.
    pub(crate) fn attach(&self, log: &Arc<EventLog>) -> FsResult<(Attached, bool)> {
        let mut state = self.hub.inner.lock();
        let mut slot = self.shared.lock();
        let mut observed = true;
        if slot.wake.is_none() {
            // Observing first: API changes from now on leave marks, so none is reported twice.
            log.set_observing(true);
            let started = self.hub.instance(&mut state).and_then(|(inst, wake_fd)| {
                let tree = Tree::start(&self.data, inst, self.key)?;
                Ok((tree, wake_fd))
            });
            match started {
                Ok((tree, wake_fd)) => {
                    let mut w = Watcher::new(tree, log.clone(), self.shared.clone());
                    w.add_subtree("/".into(), false, false);
                    state.vols.insert(self.key, w);
                    slot.wake = Some(wake_fd);
                    slot.stop = false;
                }
                Err(e) => {
                    log.set_observing(false);
                    if !matches!(e, FsError::Exhausted(_)) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "file-system watch unavailable; watchers get a gap");
                    log.publish_loss();
                    observed = false;
                }
            }
        }
        slot.watchers += 1;
        slot.left_at = None;
        Ok((Attached(self.shared.clone()), observed))
    }

    /// Stops the source now (the volume is deleted or the server stops).
    pub(crate) fn stop(&self) {
        let mut slot = self.shared.lock();
        slot.stop = true;
        if let Some(w) = &slot.wake {
            wake(w);
        }
    }

    /// Whether the source runs.
    pub(crate) fn running(&self) -> bool {
        self.shared.lock().wake.is_some()
    }
}

/// The hub's thread: reads the one instance and hands each event to its volume's watcher;
/// ends when no volume is watched any more.
fn run(hub: &HubShared, inst: &Arc<Instance>, wake_fd: &OwnedFd) {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    loop {
        let deadline = {
            let mut state = hub.lock();
            // Decided under the locks: a watcher arriving meanwhile either keeps its volume's
            // source or, once its `wake` is cleared, starts a new one.
            state.vols.retain(|_, w| !w.finish_if_done());
            if state.vols.is_empty() {
                state.running = None;
                return;
            }
            state.vols.values().filter_map(Watcher::deadline).min()
        };
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let (readable, woken) = {
            let mut fds = [
                PollFd::new(&inst.fd, PollFlags::IN),
                PollFd::new(wake_fd, PollFlags::IN),
            ];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => (!fds[0].revents().is_empty(), !fds[1].revents().is_empty()),
                Err(Errno::INTR) => (false, false),
                Err(e) => {
                    tracing::error!(error = %e, "file-system watch: poll failed");
                    let mut state = hub.lock();
                    for w in state.vols.values_mut() {
                        w.gone = true;
                    }
                    continue;
                }
            }
        };
        if woken {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(wake_fd, &mut b);
        }
        if readable {
            // The logs' horizons before the read, then the read, then (without the hub's
            // lock: an API change in flight may be waiting to attach) every log settles.
            let logs: Vec<(u64, Arc<EventLog>)> = hub
                .lock()
                .vols
                .iter()
                .map(|(&k, w)| (k, w.log.clone()))
                .collect();
            let horizons: Vec<(u64, u64)> =
                logs.iter().map(|(k, l)| (*k, l.mark_horizon())).collect();
            let (events, drained) = read_events(&inst.fd, &mut buf);
            // The API changes that caused some of these events have made their marks (only
            // the volumes with events wait for theirs).
            let touched: std::collections::HashSet<u64> =
                events.iter().filter_map(|ev| inst.owner(ev.wd)).collect();
            for (_, l) in logs.iter().filter(|(k, _)| touched.contains(k)) {
                l.settle();
            }
            let mut state = hub.lock();
            for ev in events {
                if ev.mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                    // The one queue of every volume: each may have lost events.
                    for w in state.vols.values_mut() {
                        w.lost("the inotify queue overflowed");
                    }
                    continue;
                }
                let Some(w) = inst.owner(ev.wd).and_then(|k| state.vols.get_mut(&k)) else {
                    continue;
                };
                w.handle(ev);
            }
            // Marks made before the read are forgotten once every event queued before it was
            // handled: only when the read emptied the queue (one volume's burst may have left
            // another's events in it).
            for (k, h) in horizons.into_iter().filter(|_| drained) {
                if let Some(w) = state.vols.get_mut(&k) {
                    w.forget_upto = Some(h);
                }
            }
        }
        let now = Instant::now();
        for w in hub.lock().vols.values_mut() {
            w.tick(now);
            w.log.flush_pending(false);
            if w.moved_from.is_none() {
                if let Some(h) = w.forget_upto.take() {
                    w.log.forget_marks(h);
                }
            }
        }
    }
}

/// Reads up to [`BATCH`] events; the flag says whether the queue was emptied.
fn read_events(fd: &OwnedFd, buf: &mut [MaybeUninit<u8>]) -> (Vec<Raw>, bool) {
    let mut out = Vec::new();
    let mut drained = false;
    let mut reader = inotify::Reader::new(fd, buf);
    while out.len() < BATCH {
        match reader.next() {
            Ok(ev) => out.push(Raw {
                wd: ev.wd(),
                mask: ev.events(),
                cookie: ev.cookie(),
                name: ev
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| !n.is_empty()),
            }),
            Err(Errno::AGAIN) => {
                drained = true;
                break;
            }
            Err(Errno::INTR) => break,
            Err(e) => {
                tracing::error!(error = %e, "file-system watch: read failed");
                break;
            }
        }
        if reader.is_buffer_empty() && out.len() >= BATCH / 2 {
            break;
        }
    }
    (out, drained)
}

/// Whether `path` is `dir` or below it (paths are normalised volume paths).
fn is_under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

struct WatchedDir {
    path: String,
    ino: u64,
}

enum Added {
    /// A new watch, and the directory's fd to list it.
    New(OwnedFd),
    /// The directory already had a watch.
    Already,
}

/// The watches of one volume's data tree, in the hub's instance.
struct Tree {
    inst: Arc<Instance>,
    /// The volume's key in the hub (whose watches are whose).
    key: u64,
    beneath: Beneath,
    root_wd: Option<i32>,
    dirs: HashMap<i32, WatchedDir>,
    by_path: HashMap<String, i32>,
}

impl Tree {
    fn start(data: &Path, inst: Arc<Instance>, key: u64) -> FsResult<Tree> {
        let root = rustix::fs::open(
            data,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(Tree {
            inst,
            key,
            beneath: Beneath::new(root),
            root_wd: None,
            dirs: HashMap::new(),
            by_path: HashMap::new(),
        })
    }

    fn ino_at(&self, path: &str) -> Option<u64> {
        let vp = VolumePath::parse(path).ok()?;
        let fd = self
            .beneath
            .open(&vp, OFlags::PATH | OFlags::DIRECTORY, false)
            .ok()?;
        rustix::fs::fstat(&fd).ok().map(|st| st.st_ino)
    }

    /// Watches the directory at `path`, opened beneath the data directory.
    fn watch_dir(&mut self, path: &str) -> FsResult<Added> {
        let vp = VolumePath::parse(path).map_err(|e| FsError::Invalid(e.to_string()))?;
        let fd = self
            .beneath
            .open(&vp, OFlags::RDONLY | OFlags::DIRECTORY, false)?;
        let ino = rustix::fs::fstat(&fd).map_err(io)?.st_ino;
        if let Some(&wd) = self.by_path.get(path) {
            if self.dirs.get(&wd).is_some_and(|d| d.ino == ino) {
                return Ok(Added::Already);
            }
            // Another directory than the one watched under this name: that one has gone.
            self.drop_under(path);
        }
        if self.dirs.len() >= MAX_WATCHES {
            return Err(FsError::Exhausted(format!(
                "more than {MAX_WATCHES} directories to watch"
            )));
        }
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let wd = match inotify::add_watch(&self.inst.fd, proc_path.as_str(), MASK) {
            Ok(wd) => wd,
            // The host's inotify watches (fs.inotify.max_user_watches) are used up.
            Err(Errno::NOSPC) => {
                return Err(FsError::Exhausted(
                    "the host's inotify watches are used up (fs.inotify.max_user_watches)".into(),
                ))
            }
            Err(e) => return Err(io(e)),
        };
        if let Some(old) = self.dirs.remove(&wd) {
            // The same directory, known under an older name.
            self.by_path.remove(&old.path);
        }
        if path == "/" {
            self.root_wd = Some(wd);
        }
        self.dirs.insert(
            wd,
            WatchedDir {
                path: path.to_owned(),
                ino,
            },
        );
        self.by_path.insert(path.to_owned(), wd);
        self.inst.owners().insert(wd, self.key);
        Ok(Added::New(fd))
    }

    /// Removes the watches of `dir` and everything below it.
    fn drop_under(&mut self, dir: &str) {
        let gone: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, d)| is_under(&d.path, dir))
            .map(|(&wd, _)| wd)
            .collect();
        for wd in gone {
            if let Some(d) = self.dirs.remove(&wd) {
                self.by_path.remove(&d.path);
            }
            self.remove_watch(wd);
        }
    }

    /// Removes one watch from the instance (its `IN_IGNORED` then finds no owner).
    fn remove_watch(&self, wd: i32) {
        let mut owners = self.inst.owners();
        if owners.get(&wd) == Some(&self.key) {
            owners.remove(&wd);
        }
        drop(owners);
        let _ = inotify::remove_watch(&self.inst.fd, wd);
    }

    /// Removes every watch of the volume.
    fn clear(&mut self) {
        let wds: Vec<i32> = self.dirs.keys().copied().collect();
        for wd in wds {
            self.remove_watch(wd);
        }
        self.dirs.clear();
        self.by_path.clear();
        self.root_wd = None;
    }

    /// The watched directory tree at `from` is now at `to`.
    fn rename_under(&mut self, from: &str, to: &str) {
        let moving: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, d)| is_under(&d.path, from))
            .map(|(&wd, _)| wd)
            .collect();
        for &wd in &moving {
            if let Some(d) = self.dirs.get(&wd) {
                self.by_path.remove(&d.path);
            }
        }
        // Whatever was watched at the destination was replaced.
        self.drop_under(to);
        for wd in moving {
            if let Some(d) = self.dirs.get_mut(&wd) {
                d.path = format!("{to}{}", &d.path[from.len()..]);
                self.by_path.insert(d.path.clone(), wd);
            }
        }
    }

    /// The kernel removed a watch (its directory was deleted).
    fn forget(&mut self, wd: i32) {
        let mut owners = self.inst.owners();
        if owners.get(&wd) == Some(&self.key) {
            owners.remove(&wd);
        }
        drop(owners);
        if let Some(d) = self.dirs.remove(&wd) {
            if self.by_path.get(&d.path) == Some(&wd) {
                self.by_path.remove(&d.path);
            }
        }
    }
}

/// One raw event, copied out of the read buffer.
struct Raw {
    wd: i32,
    mask: ReadFlags,
    cookie: u32,
    name: Option<String>,
}

/// Changes of files being written, held until the writer closes them, oldest first.
#[derive(Default)]
struct Held {
    next: u64,
    /// (path, change, since, found by listing a new directory)
    order: BTreeMap<u64, (String, ChangeKind, Instant, bool)>,
    by_path: HashMap<String, u64>,
}

impl Held {
    fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// Holds a change of `path` unless one is held already (later writes fold into it).
    fn hold(&mut self, path: String, kind: ChangeKind) {
        self.hold_as(path, kind, false);
    }

    /// Holds the creation of a file found by listing a new directory: its writer may still
    /// be about to write, so only its own close (or [`HOLD`]) reports it.
    fn hold_listed(&mut self, path: String) {
        self.hold_as(path, ChangeKind::Created, true);
    }

    fn hold_as(&mut self, path: String, kind: ChangeKind, listed: bool) {
        if self.contains(&path) {
            return;
        }
        let n = self.next;
        self.next += 1;
        self.by_path.insert(path.clone(), n);
        self.order.insert(n, (path, kind, Instant::now(), listed));
    }

    fn take(&mut self, path: &str) -> Option<ChangeKind> {
        let n = self.by_path.remove(path)?;
        self.order.remove(&n).map(|(_, kind, _, _)| kind)
    }

    /// Takes the held changes, oldest first; with `keep_listed_for`, listed creations held
    /// for less than that stay.
    fn drain(&mut self, keep_listed_for: Option<Duration>) -> Vec<(String, ChangeKind)> {
        let keep = |&(_, _, t, listed): &(String, ChangeKind, Instant, bool)| {
            listed && keep_listed_for.is_some_and(|d| t.elapsed() < d)
        };
        let (kept, out): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.order)
            .into_iter()
            .partition(|(_, e)| keep(e));
        self.order = kept;
        self.by_path = self.order.iter().map(|(&n, e)| (e.0.clone(), n)).collect();
        out.into_values().map(|(p, k, _, _)| (p, k)).collect()
    }

    fn oldest(&self) -> Option<Instant> {
        self.order.values().next().map(|(_, _, t, _)| *t)
    }

    fn rename_under(&mut self, from: &str, to: &str) {
        for (path, _, _, _) in self.order.values_mut() {
            if is_under(path, from) {
                self.by_path.remove(path.as_str());
                *path = format!("{to}{}", &path[from.len()..]);
            }
        }
        for (&n, (path, _, _, _)) in &self.order {
            self.by_path.insert(path.clone(), n);
        }
    }
}

struct MovedFrom {
    cookie: u32,
    path: String,
    is_dir: bool,
    at: Instant,
}

/// One watched volume's state in the hub's thread: its watches, and what is held for
/// coalescing.
struct Watcher {
    tree: Tree,
    log: Arc<EventLog>,
    /// The volume's slot (watchers, linger, stop).
    slot: Arc<Shared>,
    held: Held,
    scanned: HashMap<String, Instant>,
    moved_from: Option<MovedFrom>,
    full_reported: bool,
    gone: bool,
    /// Marks made before this may be forgotten once the events read with them are handled.
    forget_upto: Option<u64>,
}

impl Watcher {
    fn new(tree: Tree, log: Arc<EventLog>, slot: Arc<Shared>) -> Watcher {
        Watcher {
            tree,
            log,
            slot,
            held: Held::default(),
            scanned: HashMap::new(),
            moved_from: None,
            full_reported: false,
            gone: false,
            forget_upto: None,
        }
    }

    /// Ends the volume's watch when it is stopped, deleted, gone from disk or has lingered
    /// long enough without watchers: reports what is held, removes its watches and returns
    /// `true` (the hub forgets it).
    fn finish_if_done(&mut self) -> bool {
        let slot_arc = self.slot.clone();
        let mut slot = slot_arc.lock();
        let linger_over = slot.watchers == 0 && slot.left_at.is_some_and(|t| t.elapsed() >= LINGER);
        if !(slot.stop || linger_over || self.gone || self.log.is_closed()) {
            return false;
        }
        self.flush_all();
        self.log.flush_pending(true);
        self.tree.clear();
        slot.wake = None;
        self.log.set_observing(false);
        true
    }

    /// When the volume next needs the thread (a held change, a move's pair, the end of its
    /// linger).
    fn deadline(&self) -> Option<Instant> {
        let linger_end = {
            let slot = self.slot.lock();
            slot.left_at
                .filter(|_| slot.watchers == 0)
                .map(|t| t + LINGER)
        };
        self.next_deadline().into_iter().chain(linger_end).min()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let held = self.held.oldest().map(|t| t + HOLD);
        let moved = self.moved_from.as_ref().map(|m| m.at + PAIR_WAIT);
        let pending = self.log.pending_deadline();
        held.into_iter().chain(moved).chain(pending).min()
    }

    /// Reports what has waited long enough.
    fn tick(&mut self, now: Instant) {
        if self
            .moved_from
            .as_ref()
            .is_some_and(|m| m.at + PAIR_WAIT <= now)
        {
            self.resolve_moved_from();
        }
        if self.held.oldest().is_some_and(|t| t + HOLD <= now) {
            // A writer keeps a file open: report it now (its later writes are a new change).
            self.flush_all();
        }
        self.scanned
            .retain(|_, t| now.duration_since(*t) < SCAN_MEMORY);
    }

    /// Reports the held changes, oldest first, before another path's change: all but the
    /// creations found by listing a new directory in the last [`HOLD`] (a file found there may
    /// be empty still, its writer about to write; reporting it now would make its content a
    /// second, `modified` event).
    fn flush_unreported(&mut self) {
        self.publish_held(Some(HOLD));
    }

    /// Reports every held change, oldest first.
    fn flush_all(&mut self) {
        self.publish_held(None);
    }

    fn publish_held(&mut self, keep_listed_for: Option<Duration>) {
        for (path, kind) in self.held.drain(keep_listed_for) {
            self.log.publish_observed(kind, &path, None, false);
        }
    }

    /// Reports one change (after the held ones, which happened before it). Returns whether
    /// it was recorded (not an API change seen a second time).
    fn emit(&mut self, kind: ChangeKind, path: &str, old: Option<&str>, is_dir: bool) -> bool {
        self.flush_unreported();
        self.log.publish_observed(kind, path, old, is_dir)
    }

    fn handle(&mut self, ev: Raw) {
        if ev.mask.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.lost("the inotify queue overflowed");
            return;
        }
        if ev.mask.contains(ReadFlags::IGNORED) {
            if Some(ev.wd) == self.tree.root_wd {
                self.gone = true;
            }
            self.tree.forget(ev.wd);
            return;
        }
        let pairs = ev.mask.contains(ReadFlags::MOVED_TO)
            && self
                .moved_from
                .as_ref()
                .is_some_and(|m| m.cookie == ev.cookie);
        if !pairs {
            // Resolved first: a directory moved out loses its watches before their events
            // (its deletion in staging, say) could be taken for changes in the tree.
            self.resolve_moved_from();
        }
        let (Some(dir), Some(name)) = (self.tree.dirs.get(&ev.wd), ev.name) else {
            return;
        };
        let path = join(&dir.path, &name);
        let is_dir = ev.mask.contains(ReadFlags::ISDIR);
        if pairs {
            let from = self.moved_from.take().expect("checked above");
            self.moved(from, path, is_dir);
            return;
        }
        if ev.mask.contains(ReadFlags::MOVED_FROM) {
            self.moved_from = Some(MovedFrom {
                cookie: ev.cookie,
                path,
                is_dir,
                at: Instant::now(),
            });
        } else if ev.mask.contains(ReadFlags::CREATE) {
            self.created(path, is_dir, false);
        } else if ev.mask.contains(ReadFlags::MOVED_TO) {
            self.created(path, is_dir, true);
        } else if ev.mask.contains(ReadFlags::MODIFY) {
            self.held.hold(path, ChangeKind::Modified);
        } else if ev.mask.contains(ReadFlags::CLOSE_WRITE) {
            if let Some(kind) = self.held.take(&path) {
                self.emit(kind, &path, None, false);
            }
        } else if ev.mask.contains(ReadFlags::DELETE) {
            self.deleted(path, is_dir);
        }
    }

    /// Changes may have been missed: watchers get a gap, and the watches are set up afresh.
    fn lost(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "file-system watch lost events; watchers get a gap"
        );
        self.resolve_moved_from();
        self.flush_all();
        self.scanned.clear();
        self.log.publish_loss();
        self.tree.clear();
        self.full_reported = false;
        self.add_subtree("/".into(), false, false);
    }

    fn created(&mut self, path: String, is_dir: bool, moved_in: bool) {
        if self.scanned.remove(&path).is_some() {
            // Reported from the listing of its new parent already.
            return;
        }
        if is_dir {
            self.add_subtree(path, true, true);
        } else if moved_in {
            // Complete on arrival (a rename), nothing more will come: report it now.
            self.held.take(&path);
            self.emit(ChangeKind::Created, &path, None, false);
        } else {
            self.held.hold(path, ChangeKind::Created);
        }
    }

    fn deleted(&mut self, path: String, is_dir: bool) {
        self.scanned.remove(&path);
        // Made and removed before it was reported: nothing to report.
        let unreported = self.held.take(&path) == Some(ChangeKind::Created);
        if is_dir {
            self.tree.drop_under(&path);
        }
        if !unreported {
            self.emit(ChangeKind::Deleted, &path, None, is_dir);
        }
    }

    /// A trailing `IN_MOVED_FROM` without its pair: the entry left the tree.
    fn resolve_moved_from(&mut self) {
        let Some(m) = self.moved_from.take() else {
            return;
        };
        if m.is_dir {
            // A directory swapped in at the same name (RENAME_EXCHANGE) keeps its watches.
            let watched = self.tree.by_path.get(&m.path).copied();
            let same = watched
                .and_then(|wd| self.tree.dirs.get(&wd))
                .map(|d| d.ino);
            if same.is_none() || same != self.tree.ino_at(&m.path) {
                self.tree.drop_under(&m.path);
            }
            self.scanned.remove(&m.path);
            self.emit(ChangeKind::Deleted, &m.path, None, true);
        } else {
            self.deleted(m.path, false);
        }
    }

    fn moved(&mut self, from: MovedFrom, to: String, is_dir: bool) {
        self.scanned.remove(&from.path);
        self.scanned.remove(&to);
        if let Some(kind) = self.held.take(&from.path) {
            // Still open for writing: what happened before the move comes first.
            self.emit(kind, &from.path, None, false);
        }
        if !is_dir {
            self.held.take(&to);
            self.emit(ChangeKind::Moved, &to, Some(&from.path), false);
            return;
        }
        // Which directory moved is not in the event. Usually it is the one watched under the
        // old name; the tree on disk (which may be ahead of the events) settles the other
        // cases: a directory swapped with another (RENAME_EXCHANGE) is still at its old
        // name, and one never watched must be watched now.
        let known = self
            .tree
            .by_path
            .get(&from.path)
            .and_then(|wd| self.tree.dirs.get(wd))
            .map(|d| d.ino);
        let (at_from, at_to) = (self.tree.ino_at(&from.path), self.tree.ino_at(&to));
        let followed = match known {
            Some(_) if at_from == known => false,
            Some(_) if at_to == known || at_to.is_none() => {
                self.tree.rename_under(&from.path, &to);
                self.held.rename_under(&from.path, &to);
                true
            }
            Some(_) => {
                self.tree.drop_under(&from.path);
                false
            }
            None => false,
        };
        let reported = self.emit(ChangeKind::Moved, &to, Some(&from.path), true);
        if !followed {
            // What is below a directory never watched is new to watchers.
            self.add_subtree(to, false, reported && known.is_none());
        }
    }

    /// Watches `top` and every directory below it. `report_top`: report `top` as created;
    /// `report_below`: report what the listings find as created (it is new to watchers).
    fn add_subtree(&mut self, top: String, report_top: bool, mut report_below: bool) {
        let mut stack = vec![(top, report_top)];
        let mut is_top = true;
        while let Some((dir, report)) = stack.pop() {
            let first = std::mem::replace(&mut is_top, false);
            let fd = match self.tree.watch_dir(&dir) {
                Ok(Added::New(fd)) => fd,
                Ok(Added::Already) => continue,
                // Not watchable (too many directories, or the host's watches are used up):
                // watchers must know they miss changes.
                Err(FsError::Exhausted(msg)) => {
                    if !self.full_reported {
                        self.full_reported = true;
                        tracing::warn!(%msg, "file-system watch incomplete");
                        self.log.publish_loss();
                    }
                    continue;
                }
                // Gone again (or no longer a directory): its own events say so.
                Err(_) => continue,
            };
            if report {
                // Watched first, then reported: a change below it after this is seen.
                let recorded = self.emit(ChangeKind::Created, &dir, None, true);
                if first && !recorded {
                    // An API change (a copy or a batch): the API reported it, contents included.
                    report_below = false;
                }
            }
            let Ok(entries) = read_entries(fd.as_fd()) else {
                continue;
            };
            drop(fd);
            let now = Instant::now();
            let mut subdirs = Vec::new();
            // Sorted by name: a directory's files are reported before its subdirectories.
            for e in &entries {
                let child = join(&dir, &e.name_lossy());
                if report_below {
                    self.scanned.insert(child.clone(), now);
                }
                if e.file_type() == FileType::Directory {
                    subdirs.push((child, report_below));
                } else if report_below {
                    self.held.hold_listed(child);
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_directory() {
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/x", "/"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    /// A watcher over a fresh data tree (with `/sub`), handling events on this thread.
    fn watcher() -> (tempfile::TempDir, PathBuf, Watcher, Arc<EventLog>) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        let log = Arc::new(EventLog::new());
        log.set_observing(true);
        let inst = Arc::new(Instance::new().unwrap());
        let tree = Tree::start(&data, inst, 1).unwrap();
        let mut w = Watcher::new(tree, log.clone(), Arc::default());
        w.add_subtree("/".into(), false, false);
        (dir, data, w, log)
    }

    fn handle_all(w: &mut Watcher) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        loop {
            let (events, _) = read_events(&w.tree.inst.fd, &mut buf);
            if events.is_empty() {
                return;
            }
            for ev in events {
                w.handle(ev);
            }
        }
    }

    fn changes(live: &mut tokio::sync::broadcast::Receiver<crate::events::Live>) -> Vec<String> {
        use tokio::sync::broadcast::error::TryRecvError;
        let mut out = Vec::new();
        loop {
            match live.try_recv() {
                Ok(crate::events::Live::Change(e)) => out.push(format!("{:?} {}", e.kind, e.path)),
                Ok(crate::events::Live::Gap(_)) => out.push("gap".into()),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => return out,
            }
        }
    }

    #[test]
    fn a_file_kept_open_is_reported_after_the_hold_and_again_when_written_and_closed() {
        use std::io::Write;
        let (_dir, data, mut w, log) = watcher();
        let mut live = log.subscribe(None).live;
        let mut f = std::fs::File::create(data.join("log.txt")).unwrap();
        f.write_all(b"one").unwrap();
        handle_all(&mut w);
        assert!(changes(&mut live).is_empty(), "held while open");
        w.tick(Instant::now() + HOLD);
        assert_eq!(changes(&mut live), ["Created /log.txt"]);
        f.write_all(b"two").unwrap();
        f.write_all(b"three").unwrap();
        drop(f);
        handle_all(&mut w);
        assert_eq!(changes(&mut live), ["Modified /log.txt"]);
        // Another path's change reports a held one first, keeping the order.
        let mut g = std::fs::File::create(data.join("sub/g")).unwrap();
        g.write_all(b"x").unwrap();
        std::fs::create_dir(data.join("sub/h")).unwrap();
        handle_all(&mut w);
        assert_eq!(changes(&mut live), ["Created /sub/g", "Created /sub/h"]);
        drop(g);
        handle_all(&mut w);
        assert!(
            changes(&mut live).is_empty(),
            "closing after it was reported adds nothing"
        );
    }

    #[test]
    fn a_queue_overflow_is_a_gap_and_the_watches_are_set_up_again() {
        let (_dir, data, mut w, log) = watcher();
        let mut live = log.subscribe(None).live;
        let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .map_or(16_384, |s| s.trim().parse().unwrap());
        // Each file is two events (create, close); nothing is read meanwhile.
        for i in 0..max / 2 + 10 {
            std::fs::File::create(data.join(format!("sub/f{i}"))).unwrap();
        }
        handle_all(&mut w);
        assert!(changes(&mut live).contains(&"gap".to_owned()));
        assert_eq!(w.tree.dirs.len(), 2, "/ and /sub watched again");
        std::fs::create_dir(data.join("sub/after")).unwrap();
        handle_all(&mut w);
        assert_eq!(changes(&mut live), ["Created /sub/after"]);
        // A resuming client from before the loss gets a gap too.
        assert!(log.subscribe(Some(log.next_id() - 2)).gap.is_some());
    }
}
