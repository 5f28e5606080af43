//! Group commit of directory fsyncs: a write is durable once the directory it was renamed
//! into is fsynced, and one fsync of a directory covers every rename into it made before the
//! fsync began. Concurrent writers of a volume hand their directory to one [`DirSync`]: the
//! first to arrive while no fsync runs becomes the leader and fsyncs every directory handed
//! in so far (each inode once); the others wait for the round that holds theirs, and get its
//! result. A failed fsync fails every write of its round (never retried into a success).
//!
//! This runs outside the volume's commit lock: the lock orders renames and the usage figure,
//! the fsync only makes them durable, so writers no longer queue behind each other's fsync.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use rustix::io::Errno;

/// One round of fsyncs: the directories handed in while it was open, and its outcome.
#[derive(Default)]
struct Round {
    result: OnceLock<Result<(), Errno>>,
}

#[derive(Default)]
struct State {
    /// Directories of the open round (not yet being synced).
    dirs: Vec<OwnedFd>,
    open: Arc<Round>,
    /// Whether a leader is syncing a round now.
    syncing: bool,
}

/// The group commit of one volume's directory fsyncs.
#[derive(Default)]
pub(crate) struct DirSync {
    state: Mutex<State>,
    done: Condvar,
}

impl std::fmt::Debug for DirSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirSync").finish_non_exhaustive()
    }
}

impl DirSync {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once `dir` has been fsynced after this call began (by this thread or another):
    /// whatever was renamed into it before is durable. The error is the fsync's.
    pub(crate) fn sync(&self, dir: OwnedFd) -> Result<(), Errno> {
        let mut g = self.lock();
        g.dirs.push(dir);
        let mine = g.open.clone();
        loop {
            if let Some(r) = mine.result.get() {
                return *r;
            }
            if !g.syncing {
                // Ours is the open round (a round is closed only by its leader, who sets its
                // result before anyone can lead again).
                g.syncing = true;
                let dirs = std::mem::take(&mut g.dirs);
                let round = std::mem::take(&mut g.open);
                drop(g);
                let r = sync_all(dirs);
                let _ = round.result.set(r);
                g = self.lock();
                g.syncing = false;
                self.done.notify_all();
                continue;
            }
            g = self.done.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// fsyncs each directory inode once; the first error wins.
fn sync_all(dirs: Vec<OwnedFd>) -> Result<(), Errno> {
    let mut seen = HashSet::new();
    let mut result = Ok(());
    for d in dirs {
        let id = match rustix::fs::fstat(&d) {
            Ok(st) => (st.st_dev, st.st_ino),
            Err(e) => {
                result = result.and(Err(e));
                continue;
            }
        };
        if seen.insert(id) {
            if let Err(e) = rustix::fs::fsync(&d) {
                result = result.and(Err(e));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn concurrent_writers_all_return_after_a_sync_of_their_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let sync = Arc::new(DirSync::default());
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (sync, dir) = (sync.clone(), tmp.path().join(format!("d{}", i % 3)));
                std::fs::create_dir_all(&dir).unwrap();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        sync.sync(open_dir(&dir)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g = sync.lock();
        assert!(g.dirs.is_empty() && !g.syncing, "nothing left behind");
    }
}
