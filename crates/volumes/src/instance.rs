//! Which server processes run on a data root, so whose temporary files in staging are in use.
//!
//! Several servers may share one data root. Each names its temporary files in a volume's
//! `staging/` after its id (see `staging`) and, while it runs, holds an exclusive `flock` on
//! `<registry>/<server id>.lock`. Cleaning staging removes an entry only when its owner is not
//! running: its lock file is gone or can be locked. So a server that starts (or opens a volume)
//! never removes the files of a write that another live server has in flight, and the leftovers
//! of a server that died are removed by whichever server next cleans that staging area.
//!
//! The lock is taken on a temporary name and only then renamed into place, so no other server
//! can ever see the file of a live server unlocked. The kernel drops the lock when the process
//! ends, however it ends; the fd is close-on-exec, so no child process keeps it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{FsError, FsResult};

/// Length of a server id (hex digits).
const ID_LEN: usize = 16;

/// This process's identity on a (possibly shared) data root.
#[derive(Debug)]
pub struct ServerInstance {
    id: String,
    /// Where live servers hold their lock files; `None` for a process alone on its data root.
    registry: Option<PathBuf>,
    _lock: Option<File>,
    /// When [`ServerInstance::others_running`] last looked, and what it found.
    others: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..ID_LEN].to_owned()
}

fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ServerInstance {
    /// A process alone on its data root: every temporary file that is not its own is a
    /// leftover.
    pub fn solo() -> ServerInstance {
        ServerInstance {
            id: new_id(),
            registry: None,
            _lock: None,
            others: std::sync::Mutex::new(None),
        }
    }

    /// Registers this process in `registry` (created if needed) and holds its lock until the
    /// process ends; removes the lock files of servers that are no longer running.
    pub fn register(registry: &Path) -> FsResult<ServerInstance> {
        let io = |e| FsError::from_io(&registry.display().to_string(), e);
        std::fs::create_dir_all(registry).map_err(io)?;
        let id = new_id();
        let tmp = registry.join(format!("{id}.lock.tmp"));
        // std opens with O_CLOEXEC.
        let file = File::create(&tmp).map_err(io)?;
        rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive)
            .map_err(|e| FsError::from_errno(&tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, registry.join(format!("{id}.lock"))).map_err(io)?;
        let me = ServerInstance {
            id,
            registry: Some(registry.to_owned()),
            _lock: Some(file),
            others: std::sync::Mutex::new(None),
        };
        if let Ok(rd) = std::fs::read_dir(registry) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(other) = name.strip_suffix(".lock") {
                    if !me.is_live(other) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(me)
    }

    /// This server's id (also in the names of its temporary files).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the server `id` is running, so its temporary files may be in use.
    pub fn is_live(&self, id: &str) -> bool {
        if id == self.id {
            return true;
        }
        let Some(registry) = &self.registry else {
            return false;
        };
        if !valid_id(id) {
            return false;
        }
        let Ok(file) = File::open(registry.join(format!("{id}.lock"))) else {
            return false;
        };
        // Taking the lock (and dropping it with the file) means nobody holds it.
        rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockShared).is_err()
    }

    /// Whether another server runs on this data root (looked up at most once a second).
    pub fn others_running(&self) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        let mut cached = self.others.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, found)) = *cached {
            if at.elapsed() < std::time::Duration::from_secs(1) {
                return found;
            }
        }
        let found = std::fs::read_dir(registry).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".lock")
                    .is_some_and(|id| id != self.id && self.is_live(id))
            })
        });
        *cached = Some((std::time::Instant::now(), found));
        found
    }
}
