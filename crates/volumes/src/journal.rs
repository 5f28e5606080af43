//! Journals of publishes that take more than one rename: a batch merged into an existing tree,
//! a move over a directory. Before the first rename the whole plan (every directory to make,
//! every rename, in order) is written to `journal` inside the operation's temporary entry in
//! staging and fsynced; once every step is durable the journal is removed (and that removal
//! fsynced) before the operation answers. A journal left behind by a crash is rolled back
//! when the volume is next opened, before it serves: every step is undone in reverse order,
//! so the volume holds none of the operation. The same roll back undoes a step that fails
//! while the server runs.
//!
//! Undoing needs no record of how far the operation got: every step's source exists before
//! the operation and its names are used once, so a rename is undone exactly when its target
//! exists and its source does not, and a made directory is removed when it is empty.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nullspace_core::VolumePath;
use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{FsError, FsResult};
use crate::resolve::Beneath;
use crate::staging::Staging;

/// Name of the journal file inside an operation's temporary entry.
pub(crate) const JOURNAL_FILE: &str = "journal";

/// Where an entry of a step lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Place {
    /// Relative to the staging directory (e.g. `b-<server>-<id>/tree/a.txt`).
    Staging(String),
    /// A path in the volume.
    Data(String),
}

/// One step of a publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Step {
    /// A directory the operation makes in the volume (it did not exist).
    Mkdir(String),
    Rename {
        from: Place,
        to: Place,
    },
}

/// The journal of one operation, kept in its temporary entry `entry` in staging.
pub(crate) struct Journal<'a> {
    staging: &'a Staging,
    beneath: &'a Beneath,
    entry: String,
    steps: Vec<Step>,
}

fn io_err(e: std::io::Error) -> FsError {
    FsError::from_io("journal", e)
}

impl<'a> Journal<'a> {
    /// Writes `steps` durably as the journal of the temporary entry `entry` (a directory in
    /// staging), before any of them is taken.
    pub(crate) fn begin(
        staging: &'a Staging,
        beneath: &'a Beneath,
        entry: &str,
        steps: Vec<Step>,
    ) -> FsResult<Journal<'a>> {
        let dir = staging.path().join(entry);
        let mut f = File::create(dir.join(JOURNAL_FILE)).map_err(io_err)?;
        let mut text = Vec::new();
        for s in &steps {
            serde_json::to_writer(&mut text, s).map_err(|e| io_err(e.into()))?;
            text.push(b'\n');
        }
        f.write_all(&text).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(Journal {
            staging,
            beneath,
            entry: entry.to_owned(),
            steps,
        })
    }

    /// The steps, in the order they are taken.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Every step is durable: removes the journal, durably, so that the operation stands.
    pub(crate) fn commit(self) -> FsResult<()> {
        let dir = self.staging.path().join(&self.entry);
        std::fs::remove_file(dir.join(JOURNAL_FILE)).map_err(io_err)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err)
    }

    /// Undoes whatever was taken of the steps (after a failure), then removes the journal.
    pub(crate) fn roll_back(self) {
        undo(self.staging, self.beneath, &self.steps);
        let _ = std::fs::remove_file(self.staging.path().join(&self.entry).join(JOURNAL_FILE));
    }
}

/// Rolls back every journalled publish among the staging entries no running server owns;
/// returns how many. Runs before a volume serves (at open) and before start-up cleans its
/// staging (which would remove the journals).
pub(crate) fn roll_back_all(staging: &Staging, beneath: &Beneath) -> usize {
    staging
        .leftovers()
        .iter()
        .filter(|name| recover(staging, beneath, name))
        .count()
}

/// Rolls back the operation whose temporary entry `entry` holds a journal, if it does;
/// whether there was one. The journal is removed afterwards (the entry itself is left to
/// staging's cleaning).
pub(crate) fn recover(staging: &Staging, beneath: &Beneath, entry: &str) -> bool {
    let path = staging.path().join(entry).join(JOURNAL_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return false;
    };
    // A torn last line is a journal whose write did not finish: no step was taken after it.
    let steps: Vec<Step> = text
        .split(|&b| b == b'\n')
        .map_while(|l| serde_json::from_slice(l).ok())
        .collect();
    let complete = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        == steps.len();
    if complete {
        undo(staging, beneath, &steps);
    }
    let _ = rustix::fs::syncfs(beneath.root());
    let _ = std::fs::remove_file(&path);
    true
}

/// The directory fd and final name of a place.
fn locate<'p>(
    staging: &'p Staging,
    beneath: &Beneath,
    place: &Place,
) -> Option<(Located<'p>, String)> {
    match place {
        Place::Staging(rel) => Some((Located::Staging(staging.fd()), rel.clone())),
        Place::Data(p) => {
            let p = VolumePath::parse(p).ok()?;
            let (dir, name) = beneath.parent(&p, None).ok()?;
            let name = name.to_owned();
            Some((Located::Data(dir), name))
        }
    }
}

enum Located<'a> {
    Staging(std::os::fd::BorrowedFd<'a>),
    Data(OwnedFd),
}

impl AsFd for Located<'_> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Located::Staging(fd) => *fd,
            Located::Data(fd) => fd.as_fd(),
        }
    }
}

fn exists(dir: impl AsFd, name: &str) -> bool {
    !matches!(
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
        Err(Errno::NOENT | Errno::NOTDIR)
    )
}

fn undo(staging: &Staging, beneath: &Beneath, steps: &[Step]) {
    for step in steps.iter().rev() {
        match step {
            Step::Rename { from, to } => {
                let (Some((tdir, tname)), Some((fdir, fname))) =
                    (locate(staging, beneath, to), locate(staging, beneath, from))
                else {
                    continue;
                };
                if exists(&tdir, &tname) && !exists(&fdir, &fname) {
                    let _ = rustix::fs::renameat_with(
                        &tdir,
                        tname.as_str(),
                        &fdir,
                        fname.as_str(),
                        RenameFlags::NOREPLACE,
                    );
                }
            }
            Step::Mkdir(p) => {
                let Ok(p) = VolumePath::parse(p) else {
                    continue;
                };
                if let Ok((dir, name)) = beneath.parent(&p, None) {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustix::fs::{Mode, OFlags};

    use super::*;
    use crate::instance::ServerInstance;

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    /// A move over a directory killed between its two renames (the old tree out in staging,
    /// the new one not yet in) is rolled back by recovery, and recovery is idempotent.
    #[test]
    fn a_move_cut_between_its_renames_is_rolled_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, staging_dir) = (tmp.path().join("data"), tmp.path().join("staging"));
        std::fs::create_dir_all(data.join("src")).unwrap();
        std::fs::create_dir_all(data.join("dst")).unwrap();
        std::fs::write(data.join("src/new.txt"), b"new").unwrap();
        std::fs::write(data.join("dst/old.txt"), b"old").unwrap();
        std::fs::create_dir(&staging_dir).unwrap();
        let staging = Staging::new(
            dir_fd(&staging_dir),
            staging_dir.clone(),
            Arc::new(ServerInstance::solo()),
        );
        let beneath = Beneath::new(dir_fd(&data));
        let entry = "t-crashed-0";
        std::fs::create_dir(staging_dir.join(entry)).unwrap();
        let steps = vec![
            Step::Rename {
                from: Place::Data("/dst".into()),
                to: Place::Staging(format!("{entry}/old")),
            },
            Step::Rename {
                from: Place::Data("/src".into()),
                to: Place::Data("/dst".into()),
            },
        ];
        let journal = Journal::begin(&staging, &beneath, entry, steps).unwrap();
        // The first rename happens, then the server dies.
        std::fs::rename(data.join("dst"), staging_dir.join(entry).join("old")).unwrap();
        std::mem::forget(journal);
        assert!(recover(&staging, &beneath, entry));
        assert_eq!(std::fs::read(data.join("dst/old.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(data.join("src/new.txt")).unwrap(), b"new");
        assert!(!staging_dir.join(entry).join(JOURNAL_FILE).exists());
        assert!(!recover(&staging, &beneath, entry), "the journal is gone");

        // Both renames happened: rolled back too (the move never answered).
        std::fs::create_dir(staging_dir.join("t-crashed-1")).unwrap();
        let steps = vec![
            Step::Rename {
                from: Place::Data("/dst".into()),
                to: Place::Staging("t-crashed-1/old".into()),
            },
            Step::Mkdir("/made".into()),
            Step::Rename {
                from: Place::Data("/src".into()),
                to: Place::Data("/dst".into()),
            },
        ];
        let journal = Journal::begin(&staging, &beneath, "t-crashed-1", steps).unwrap();
        std::fs::rename(data.join("dst"), staging_dir.join("t-crashed-1/old")).unwrap();
        std::fs::create_dir(data.join("made")).unwrap();
        std::fs::rename(data.join("src"), data.join("dst")).unwrap();
        std::mem::forget(journal);
        assert!(recover(&staging, &beneath, "t-crashed-1"));
        assert_eq!(std::fs::read(data.join("dst/old.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(data.join("src/new.txt")).unwrap(), b"new");
        assert!(
            !data.join("made").exists(),
            "a directory it made is removed"
        );
    }

    /// A journal whose write was cut (a torn last line) was never followed by a rename:
    /// recovery undoes nothing and removes it.
    #[test]
    fn a_torn_journal_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, staging_dir) = (tmp.path().join("data"), tmp.path().join("staging"));
        std::fs::create_dir_all(data.join("a")).unwrap();
        std::fs::create_dir_all(staging_dir.join("b-x-0")).unwrap();
        let staging = Staging::new(
            dir_fd(&staging_dir),
            staging_dir.clone(),
            Arc::new(ServerInstance::solo()),
        );
        let beneath = Beneath::new(dir_fd(&data));
        std::fs::write(
            staging_dir.join("b-x-0").join(JOURNAL_FILE),
            b"{\"Mkdir\":\"/a\"}\n{\"Rename\":{\"from\":{\"Data\":\"/a\"},\"to\":{\"Sta",
        )
        .unwrap();
        assert!(recover(&staging, &beneath, "b-x-0"));
        assert!(data.join("a").exists(), "nothing was undone");
    }
}
