//! Stat and reads.

use std::fs::File;

use nullspace_core::{FileStat, VolumePath};
use rustix::fs::{AtFlags, FileType, OFlags};

use super::{file_stat, io_at, VolumeHandle};
use crate::error::{FsError, FsResult};

impl VolumeHandle {
    /// `stat` without following a final symlink.
    pub fn stat(&self, path: &VolumePath) -> FsResult<FileStat> {
        if self.beneath().is_root(path) {
            // The volume's root, or a scoped handle's directory (which has no parent here).
            let st = rustix::fs::fstat(self.beneath().root()).map_err(io_at(path.as_str()))?;
            return Ok(file_stat(path.to_string(), &st));
        }
        let (dir, name) = self.beneath().parent(path, None)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(path.as_str()))?;
        Ok(file_stat(path.to_string(), &st))
    }

    /// Whether the path names an entry (a dangling symlink counts).
    pub fn exists(&self, path: &VolumePath) -> FsResult<bool> {
        match self.stat(path) {
            Ok(_) => Ok(true),
            Err(FsError::NotFound(_) | FsError::NotADirectory(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens a regular file for reading (symlinks followed, within the volume).
    pub fn open_read(&self, path: &VolumePath) -> FsResult<(File, FileStat)> {
        // O_NONBLOCK so that a FIFO planted by sandbox code cannot hang the request.
        let fd = self
            .beneath()
            .open(path, OFlags::RDONLY | OFlags::NONBLOCK, true)?;
        let st = rustix::fs::fstat(&fd).map_err(io_at(path.as_str()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(FsError::IsADirectory(path.to_string())),
            _ => return Err(FsError::NotAFile(path.to_string())),
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(io_at(path.as_str()))?;
        Ok((File::from(fd), file_stat(path.to_string(), &st)))
    }
}
