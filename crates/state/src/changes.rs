//! The cache generation of a SQLite file, shared by every store open on it without a
//! statement: a small side file (`<database>-changes`) holding one fixed-size record
//! `SEQ IN_FLIGHT STAMP SEQ`, read with one `pread` per request.
//!
//! A change that may make cached entries stale marks itself in flight (under an exclusive
//! `flock`) before its transaction and, after the commit, bumps `SEQ` and clears its mark.
//! Readers serve from a cache only while nothing is in flight and `SEQ` is the one their
//! entry was read under. A store that crashed mid-change leaves its mark: after
//! [`STUCK_AFTER`] the next reader clears it and bumps `SEQ` (so nothing read before the crash
//! is served); until then nothing is served from a cache. The generation at both ends of the
//! record tells a torn read, which is retried.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

/// A change in flight for longer than this is taken for one whose store crashed (SQLite's
/// busy timeout is 5 s; a change is one short transaction).
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(30);

/// Bytes of one record: four 20-digit numbers, three spaces, a newline.
const RECORD_LEN: usize = 84;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Record {
    seq: u64,
    in_flight: u64,
    /// Seconds since the epoch when the last change went in flight.
    stamp: u64,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let s = format!(
            "{:020} {:020} {:020} {:020}\n",
            self.seq, self.in_flight, self.stamp, self.seq
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
            [s1, in_flight, stamp, s2] if s1 == s2 => Some(Record {
                seq: s1,
                in_flight,
                stamp,
            }),
            _ => None,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The change counter of one SQLite file.
pub(crate) struct ChangeCounter {
    file: File,
}

impl ChangeCounter {
    /// Opens (creating) the counter of the database at `db`.
    pub(crate) fn open(db: &Path) -> std::io::Result<ChangeCounter> {
        let mut path = db.as_os_str().to_owned();
        path.push("-changes");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(ChangeCounter { file })
    }

    fn read(&self) -> Option<Record> {
        for _ in 0..3 {
            let mut buf = [0u8; RECORD_LEN];
            match self.file.read_at(&mut buf, 0) {
                Ok(0) => return Some(Record::default()),
                Ok(n) => {
                    if let Some(r) = Record::decode(&buf[..n]) {
                        return Some(r);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Changes the record under the exclusive lock; `false` when the file cannot be used.
    fn update(&self, f: impl FnOnce(&mut Record)) -> bool {
        if lock(&self.file, FlockOperation::LockExclusive).is_err() {
            return false;
        }
        // Under the lock no write is in progress, so a damaged record is truly damaged: start
        // from a sequence no reader has seen.
        let mut r = self.read().unwrap_or(Record {
            seq: now_secs(),
            ..Record::default()
        });
        f(&mut r);
        let ok = self.file.write_all_at(&r.encode(), 0).is_ok();
        let _ = lock(&self.file, FlockOperation::Unlock);
        ok
    }

    /// The generation to serve cached entries under, or `None` when nothing may be served
    /// from a cache now (a change is in flight, or the file cannot be read).
    pub(crate) fn current(&self) -> Option<u64> {
        let r = self.read()?;
        if r.in_flight == 0 {
            return Some(r.seq);
        }
        if now_secs().saturating_sub(r.stamp) >= STUCK_AFTER.as_secs() {
            // A mark left by a crashed store: cleared, and the sequence moves on.
            self.update(|r| {
                if now_secs().saturating_sub(r.stamp) >= STUCK_AFTER.as_secs() {
                    r.in_flight = 0;
                    r.seq += 1;
                }
            });
        }
        None
    }

    /// Marks a change in flight; [`ChangeCounter::end`] after its commit (or rollback).
    pub(crate) fn begin(&self) {
        if !self.update(|r| {
            r.in_flight += 1;
            r.stamp = now_secs();
        }) {
            tracing::error!("cannot mark a change in the SQLite change counter");
        }
    }

    /// Ends a change begun by [`ChangeCounter::begin`]: the sequence moves on.
    pub(crate) fn end(&self) {
        if !self.update(|r| {
            r.in_flight = r.in_flight.saturating_sub(1);
            r.seq += 1;
        }) {
            tracing::error!("cannot bump the SQLite change counter");
        }
    }
}

fn lock(file: &File, op: FlockOperation) -> rustix::io::Result<()> {
    loop {
        match rustix::fs::flock(file.as_fd(), op) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_in_flight_stops_serving_and_its_end_moves_the_generation_for_every_opener() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("x.db");
        let (a, b) = (
            ChangeCounter::open(&db).unwrap(),
            ChangeCounter::open(&db).unwrap(),
        );
        let g = a.current().expect("nothing in flight");
        assert_eq!(b.current(), Some(g));
        a.begin();
        assert_eq!(b.current(), None, "in flight: nothing served");
        a.end();
        let g2 = b.current().expect("ended");
        assert!(g2 > g);
        // A mark older than STUCK_AFTER (a crashed store's) is cleared by a reader.
        b.update(|r| {
            r.in_flight = 1;
            r.stamp = now_secs() - STUCK_AFTER.as_secs() - 1;
        });
        assert_eq!(a.current(), None);
        let g3 = a.current().expect("the stuck mark is cleared");
        assert!(g3 > g2);
        let mut torn = Record::default().encode();
        torn[..20].copy_from_slice(b"00000000000000000007");
        assert!(Record::decode(&torn).is_none());
    }
}
