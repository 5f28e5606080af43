//! Tree operations: mkdir, move, copy, remove.

use std::os::fd::OwnedFd;

use nullspace_core::{FileStat, FileType as StatType, VolumePath};
use rustix::fs::{AtFlags, Mode, RenameFlags};

use super::{cname, file_stat, io_at, is_dir, lstat_opt, VolumeHandle, WriteOptions};
use crate::error::{FsError, FsResult};
use crate::events::ChangeKind;
use crate::journal::{Journal, Place, Step};
use crate::staging::TempKind;
use crate::walk::{copy_entry, entry_usage, read_entries, stat_usage};
use crate::Usage;

impl VolumeHandle {
    /// Makes a directory (`parents`: also its parents, and an existing directory is fine).
    pub fn mkdir(&self, path: &VolumePath, parents: bool) -> FsResult<FileStat> {
        self.beneath().reach(path)?;
        let _change = self.shared.events.begin_change();
        if parents {
            if let Ok(st) = self.stat(path) {
                if st.file_type != StatType::Dir {
                    return Err(FsError::AlreadyExists(path.to_string()));
                }
            }
            let mut created = Vec::new();
            let fd = self.beneath().ensure_dir(path, &mut created)?;
            rustix::fs::fsync(&fd).map_err(io_at(path.as_str()))?;
            self.created_dirs(&created);
        } else {
            if path.is_root() {
                return Err(FsError::AlreadyExists("/".into()));
            }
            let (dir, name) = self.beneath().parent(path, None)?;
            rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
                .map_err(io_at(path.as_str()))?;
            rustix::fs::fsync(&dir).map_err(io_at(path.as_str()))?;
            self.shared
                .events
                .publish(ChangeKind::Created, path.as_str(), None, true);
        }
        self.stat(path)
    }

    /// Moves or renames `src` to `dst`.
    pub fn rename(
        &self,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
    ) -> FsResult<FileStat> {
        self.beneath().reach(src)?;
        self.beneath().reach(dst)?;
        if src.is_root() || dst.is_root() {
            return Err(FsError::Invalid(
                "the volume root cannot be moved or replaced".into(),
            ));
        }
        if dst.starts_with(src) && dst != src {
            return Err(FsError::Invalid(format!(
                "cannot move {src} into itself ({dst})"
            )));
        }
        let (sdir, sname) = self.beneath().parent(src, None)?;
        let sst = rustix::fs::statat(&sdir, sname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(src.as_str()))?;
        if src == dst {
            return Ok(file_stat(dst.to_string(), &sst));
        }
        let _change = self.shared.events.begin_change();
        let mut created = Vec::new();
        let (ddir, dname) = self.beneath().parent(dst, Some(&mut created))?;
        let mut usage = self.lock();
        self.created_dirs(&created);
        let old = lstat_opt(&ddir, dname, dst.as_str())?;
        let mut freed = Usage::default();
        let err = io_at(dst.as_str());
        match &old {
            None => {
                rustix::fs::renameat_with(&sdir, sname, &ddir, dname, RenameFlags::NOREPLACE)
                    .map_err(&err)?;
            }
            Some(_) if !overwrite => return Err(FsError::AlreadyExists(dst.to_string())),
            Some(o) if is_dir(o) && !is_dir(&sst) => {
                return Err(FsError::IsADirectory(dst.to_string()))
            }
            Some(o) if !is_dir(o) && is_dir(&sst) => {
                return Err(FsError::NotADirectory(dst.to_string()))
            }
            Some(_) if src.starts_with(dst) => {
                return Err(FsError::Invalid(format!(
                    "cannot move {src} onto its own ancestor {dst}"
                )))
            }
            Some(o) => {
                freed = entry_usage(&ddir, &cname(dname), o).map_err(&err)?;
                if is_dir(o) {
                    self.move_over_dir(src, dst)?;
                } else {
                    rustix::fs::renameat(&sdir, sname, &ddir, dname).map_err(&err)?;
                }
            }
        }
        rustix::fs::fsync(&ddir).map_err(&err)?;
        rustix::fs::fsync(&sdir).map_err(&err)?;
        *usage -= freed;
        self.shared.events.publish(
            ChangeKind::Moved,
            dst.as_str(),
            Some(src.as_str()),
            is_dir(&sst),
        );
        drop(usage);
        let st = rustix::fs::statat(&ddir, dname, AtFlags::SYMLINK_NOFOLLOW).map_err(&err)?;
        Ok(file_stat(dst.to_string(), &st))
    }

    /// Moves the directory `src` over the directory `dst` in two renames (the old tree out to
    /// staging, then `src` in) under a journal, so that a crash between them is rolled back
    /// at the next open (see `journal`); the old tree is removed afterwards.
    fn move_over_dir(&self, src: &VolumePath, dst: &VolumePath) -> FsResult<()> {
        let entry = self.shared.staging.temp_name(TempKind::Trash);
        let err = io_at(dst.as_str());
        rustix::fs::mkdirat(
            self.shared.staging.fd(),
            entry.as_str(),
            Mode::from_raw_mode(0o700),
        )
        .map_err(&err)?;
        let old = format!("{entry}/old");
        let steps = vec![
            Step::Rename {
                from: Place::Data(dst.to_string()),
                to: Place::Staging(old.clone()),
            },
            Step::Rename {
                from: Place::Data(src.to_string()),
                to: Place::Data(dst.to_string()),
            },
        ];
        let result =
            Journal::begin(&self.shared.staging, self.beneath(), &entry, steps).and_then(|j| {
                let taken = (|| {
                    let (sdir, sname) = self.beneath().parent(src, None)?;
                    let (ddir, dname) = self.beneath().parent(dst, None)?;
                    rustix::fs::renameat(&ddir, dname, self.shared.staging.fd(), old.as_str())
                        .map_err(&err)?;
                    rustix::fs::renameat_with(&sdir, sname, &ddir, dname, RenameFlags::NOREPLACE)
                        .map_err(&err)?;
                    rustix::fs::fsync(self.shared.staging.fd()).map_err(&err)?;
                    rustix::fs::fsync(&ddir).map_err(&err)?;
                    rustix::fs::fsync(&sdir).map_err(&err)
                })();
                match taken {
                    Ok(()) => j.commit(),
                    Err(e) => {
                        j.roll_back();
                        Err(e)
                    }
                }
            });
        self.shared.staging.discard(&entry);
        result
    }

    /// Copies `src` to `dst` (a directory only with `recursive`; symlinks are copied as links).
    /// The copy is built in staging and published in one rename.
    pub fn copy(
        &self,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
        recursive: bool,
    ) -> FsResult<FileStat> {
        self.beneath().reach(src)?;
        self.beneath().reach(dst)?;
        if src.is_root() || dst.is_root() {
            return Err(FsError::Invalid(
                "the volume root cannot be copied or replaced".into(),
            ));
        }
        if dst.starts_with(src) {
            return Err(FsError::Invalid(format!(
                "cannot copy {src} into itself ({dst})"
            )));
        }
        let (sdir, sname) = self.beneath().parent(src, None)?;
        let sst = rustix::fs::statat(&sdir, sname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(src.as_str()))?;
        if is_dir(&sst) && !recursive {
            return Err(FsError::Invalid(format!(
                "{src} is a directory: copy it recursively"
            )));
        }
        let size = entry_usage(&sdir, &cname(sname), &sst).map_err(io_at(src.as_str()))?;
        self.check_cap(&self.usage(), 0, size.used_bytes)?;
        let staged = self.shared.staging.temp_name(TempKind::Copy);
        let result = (|| {
            let copied = copy_entry(
                &sdir,
                &cname(sname),
                self.shared.staging.fd(),
                &cname(&staged),
            )
            .map_err(|e| match e {
                rustix::io::Errno::INVAL => FsError::Invalid(format!(
                    "{src} is or holds a special file (a FIFO, socket or device): \
                         only files, directories and symlinks can be copied"
                )),
                e => FsError::from_errno(src.as_str(), e),
            })?;
            self.shared.staging.sync().map_err(io_at(dst.as_str()))?;
            let opts = WriteOptions {
                overwrite,
                if_match: None,
            };
            self.publish(&staged, dst, copied, is_dir(&sst), &opts)
        })();
        if result.is_err() {
            self.shared.staging.discard(&staged);
        }
        result
    }

    /// Removes a file, symlink or empty directory; with `recursive`, a whole tree (moved out of
    /// sight in one rename, then deleted). `/` with `recursive` empties the volume.
    pub fn remove(&self, path: &VolumePath, recursive: bool) -> FsResult<()> {
        self.beneath().reach(path)?;
        if path.is_root() {
            if !recursive {
                return Err(FsError::Invalid(
                    "the volume root cannot be removed (empty it recursively)".into(),
                ));
            }
            // By raw names, relative to the root fd: names need not be UTF-8.
            let root = self.beneath().open_dir(path)?;
            for e in read_entries(&root).map_err(io_at("/"))? {
                let shown = VolumePath::root().child(&e.name_lossy());
                self.remove_at(&root, &e.name, shown.as_str(), true)?;
            }
            return Ok(());
        }
        let (dir, name) = self.beneath().parent(path, None)?;
        self.remove_at(&dir, &cname(name), path.as_str(), recursive)
    }

    /// Removes the entry `name` of `dir`; `shown` is its path for errors and events.
    fn remove_at(
        &self,
        dir: &OwnedFd,
        name: &std::ffi::CStr,
        shown: &str,
        recursive: bool,
    ) -> FsResult<()> {
        let err = io_at(shown);
        let _change = self.shared.events.begin_change();
        let mut usage = self.lock();
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(&err)?;
        if !is_dir(&st) {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(&err)?;
            rustix::fs::fsync(dir).map_err(&err)?;
            *usage -= stat_usage(&st);
            self.shared
                .events
                .publish(ChangeKind::Deleted, shown, None, false);
            return Ok(());
        }
        if !recursive {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(&err)?;
            rustix::fs::fsync(dir).map_err(&err)?;
            self.shared
                .events
                .publish(ChangeKind::Deleted, shown, None, true);
            return Ok(());
        }
        let freed = entry_usage(dir, name, &st).map_err(&err)?;
        let trash = self
            .shared
            .staging
            .move_in(dir, name, TempKind::Trash)
            .map_err(&err)?;
        rustix::fs::fsync(dir).map_err(&err)?;
        *usage -= freed;
        self.shared
            .events
            .publish(ChangeKind::Deleted, shown, None, true);
        drop(usage);
        self.shared.staging.discard(&trash);
        Ok(())
    }
}
