//! A volume's usage figure, shared by every server on the data root, and the lock that makes a
//! commit one critical section across processes.
//!
//! The figure lives in a small file outside the volume (the placement says where): one
//! fixed-size record `GEN USED COUNT GEN`, rewritten in place with one `pwrite` after each
//! commit that changed it, its generation bumped. A commit takes the process's mutex, then an
//! exclusive `flock` on that file, re-reads the record (another server may have committed since),
//! checks the cap and publishes, writes the new record, and unlocks. Readers outside a commit
//! read the record without the lock; the generation at both ends tells a torn read, which is
//! retried.
//!
//! The file is not fsynced: after a crash every server re-measures the volume from disk when it
//! opens it (as a single server always did), under the same lock.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::Usage;

/// Bytes of one record: four 20-digit numbers, three spaces, a newline.
const RECORD_LEN: usize = 84;

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    generation: u64,
    usage: Usage,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let s = format!(
            "{:020} {:020} {:020} {:020}\n",
            self.generation, self.usage.used_bytes, self.usage.file_count, self.generation
        );
        let mut out = [b' '; RECORD_LEN];
        out.copy_from_slice(&s.as_bytes()[..RECORD_LEN]);
        out
    }

    /// `None` for an empty, damaged or torn record.
    fn decode(b: &[u8]) -> Option<Record> {
        let s = std::str::from_utf8(b).ok()?;
        let n: Vec<u64> = s
            .split_ascii_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match n[..] {
            [g1, used_bytes, file_count, g2] if g1 == g2 => Some(Record {
                generation: g1,
                usage: Usage {
                    used_bytes,
                    file_count,
                },
            }),
            _ => None,
        }
    }
}

/// The shared usage of one volume, as one handle sees it.
#[derive(Debug)]
pub(crate) struct SharedUsage {
    file: File,
    /// The last record this process read or wrote; the in-process commit lock.
    cached: Mutex<Record>,
}

impl SharedUsage {
    /// Opens (creating) the usage file at `path`.
    pub(crate) fn open(path: &Path) -> std::io::Result<SharedUsage> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(SharedUsage {
            file,
            cached: Mutex::new(Record::default()),
        })
    }

    fn read(&self) -> Option<Record> {
        let mut buf = [0u8; RECORD_LEN];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        Record::decode(&buf[..n])
    }

    fn cached(&self) -> MutexGuard<'_, Record> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current figure (as of the last commit by any server).
    pub(crate) fn current(&self) -> Usage {
        let mut cached = self.cached();
        // A read racing a rewrite shows two different generations; the next one will not.
        for _ in 0..3 {
            if let Some(r) = self.read() {
                *cached = r;
                break;
            }
        }
        cached.usage
    }

    /// Enters the commit critical section of the volume (in this process, then across
    /// processes) with the current figure.
    pub(crate) fn lock(&self) -> CommitGuard<'_> {
        let mut cached = self.cached();
        loop {
            match rustix::fs::flock(self.file.as_fd(), FlockOperation::LockExclusive) {
                Ok(()) => break,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    // Only EBADF/ENOLCK/EINVAL, none of which a regular file we opened gives;
                    // go on with the in-process lock alone rather than fail every write.
                    tracing::error!(error = %e, "cannot lock a volume's usage file");
                    break;
                }
            }
        }
        if let Some(r) = self.read() {
            *cached = r;
        }
        let before = cached.usage;
        CommitGuard {
            cached,
            file: &self.file,
            before,
            force: false,
        }
    }
}

/// The commit critical section of a volume: derefs to its usage; on drop a changed figure is
/// written for every server, then the cross-process lock is released.
pub(crate) struct CommitGuard<'a> {
    cached: MutexGuard<'a, Record>,
    file: &'a File,
    before: Usage,
    force: bool,
}

impl CommitGuard<'_> {
    /// Replaces the figure with one measured from disk (written even if it is unchanged).
    pub(crate) fn set_measured(&mut self, usage: Usage) {
        self.cached.usage = usage;
        self.force = true;
    }
}

impl Deref for CommitGuard<'_> {
    type Target = Usage;
    fn deref(&self) -> &Usage {
        &self.cached.usage
    }
}

impl DerefMut for CommitGuard<'_> {
    fn deref_mut(&mut self) -> &mut Usage {
        &mut self.cached.usage
    }
}

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        if self.force || self.cached.usage != self.before {
            self.cached.generation += 1;
            if let Err(e) = self.file.write_all_at(&self.cached.encode(), 0) {
                tracing::error!(error = %e, "cannot write a volume's usage file");
            }
        }
        let _ = rustix::fs::flock(self.file.as_fd(), FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_through_two_handles_see_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("u");
        let (a, b) = (
            SharedUsage::open(&path).unwrap(),
            SharedUsage::open(&path).unwrap(),
        );
        a.lock().set_measured(Usage {
            used_bytes: 10,
            file_count: 1,
        });
        assert_eq!(b.current().used_bytes, 10);
        *b.lock() += Usage {
            used_bytes: 5,
            file_count: 1,
        };
        {
            let mut g = a.lock();
            assert_eq!(g.used_bytes, 15, "a commit starts from the other's figure");
            *g -= Usage {
                used_bytes: 15,
                file_count: 2,
            };
        }
        assert_eq!(b.current(), Usage::default());
        assert!(Record::decode(b"").is_none());
        assert!(Record::decode(&Record::default().encode()[..40]).is_none());
        let mut torn = Record::default().encode();
        torn[..20].copy_from_slice(b"00000000000000000007");
        assert!(Record::decode(&torn).is_none(), "generations differ");
    }

    #[test]
    fn the_lock_excludes_other_processes_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("u");
        let a = SharedUsage::open(&path).unwrap();
        // Another open file description stands for another process.
        let other = File::open(&path).unwrap();
        let try_other = || {
            let got = rustix::fs::flock(other.as_fd(), FlockOperation::NonBlockingLockExclusive);
            if got.is_ok() {
                rustix::fs::flock(other.as_fd(), FlockOperation::Unlock).unwrap();
            }
            got.is_ok()
        };
        let g = a.lock();
        assert!(!try_other(), "another process got in during a commit");
        drop(g);
        assert!(try_other(), "the lock was not released");
    }
}
