//! Streaming a directory out of a volume as `tar`, `tar.gz` or `zip`, walking it by fd.

use std::ffi::CStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

use nullspace_core::VolumePath;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, FsResult};
use crate::handle::VolumeHandle;
use crate::walk::walk_tree;

/// Archive formats a directory can be downloaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    TarGz,
    Zip,
}

impl ArchiveFormat {
    /// Parses `tar`, `tar.gz` (or `tgz`) and `zip`.
    pub fn parse(s: &str) -> FsResult<ArchiveFormat> {
        match s {
            "tar" => Ok(ArchiveFormat::Tar),
            "tar.gz" | "tgz" => Ok(ArchiveFormat::TarGz),
            "zip" => Ok(ArchiveFormat::Zip),
            _ => Err(FsError::Invalid(format!(
                "unknown archive format {s:?}: use tar, tar.gz or zip"
            ))),
        }
    }

    /// The MIME type of the stream.
    pub fn content_type(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "application/x-tar",
            ArchiveFormat::TarGz => "application/gzip",
            ArchiveFormat::Zip => "application/zip",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::Zip => "zip",
        }
    }
}

/// One thing found while walking a tree for an archive.
enum Item<'a> {
    Dir {
        rel: &'a str,
        stat: &'a rustix::fs::Stat,
    },
    File {
        rel: &'a str,
        stat: &'a rustix::fs::Stat,
        file: File,
    },
    Symlink {
        rel: &'a str,
        stat: &'a rustix::fs::Stat,
        target: String,
    },
}

fn walk(
    dir: &OwnedFd,
    at: &VolumePath,
    visit: &mut dyn FnMut(Item<'_>) -> std::io::Result<()>,
) -> FsResult<()> {
    walk_tree(dir, at, &mut |v| {
        let (rel, stat) = (v.rel, &v.entry.stat);
        let item = match v.entry.file_type() {
            FileType::Directory => Item::Dir { rel, stat },
            FileType::RegularFile => match open_regular(v.dir, &v.entry.name) {
                Ok(file) => Item::File { rel, stat, file },
                Err(_) => return Ok(true),
            },
            FileType::Symlink => {
                match rustix::fs::readlinkat(v.dir, v.entry.name.as_c_str(), Vec::new()) {
                    Ok(target) => Item::Symlink {
                        rel,
                        stat,
                        target: target.to_string_lossy().into_owned(),
                    },
                    Err(_) => return Ok(true),
                }
            }
            _ => return Ok(true),
        };
        visit(item).map_err(|e| FsError::from_io(v.path.as_str(), e))?;
        Ok(true)
    })
    .map(|_| ())
}

fn open_regular(dir: impl std::os::fd::AsFd, name: &CStr) -> rustix::io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    Ok(File::from(fd))
}

fn tar_header(stat: &rustix::fs::Stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(stat.st_mode & 0o7777);
    h.set_mtime(stat.st_mtime.max(0) as u64);
    h.set_size(size);
    h
}

fn write_tar<W: Write>(dir: &OwnedFd, at: &VolumePath, out: W) -> FsResult<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    walk(dir, at, &mut |item| match item {
        Item::Dir { rel, stat } => {
            let mut h = tar_header(stat, tar::EntryType::Directory, 0);
            b.append_data(&mut h, format!("{rel}/"), std::io::empty())
        }
        Item::File { rel, stat, file } => {
            // The size comes from the open file, so a file growing meanwhile stays consistent.
            let size = file.metadata()?.len();
            let mut h = tar_header(stat, tar::EntryType::Regular, size);
            b.append_data(&mut h, rel, std::io::Read::take(file, size))
        }
        Item::Symlink { rel, stat, target } => {
            let mut h = tar_header(stat, tar::EntryType::Symlink, 0);
            b.append_link(&mut h, rel, target)
        }
    })?;
    b.into_inner().map_err(|e| FsError::from_io(at.as_str(), e))
}

fn write_zip<W: Write>(dir: &OwnedFd, at: &VolumePath, out: W) -> FsResult<()> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new_stream(out);
    let zerr = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    walk(dir, at, &mut |item| match item {
        Item::Dir { rel, stat } => {
            let o = SimpleFileOptions::default().unix_permissions(stat.st_mode & 0o7777);
            z.add_directory(rel, o).map_err(zerr)
        }
        Item::File {
            rel,
            stat,
            mut file,
        } => {
            let o = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(stat.st_mode & 0o7777)
                .large_file(file.metadata()?.len() >= u32::MAX as u64);
            z.start_file(rel, o).map_err(zerr)?;
            std::io::copy(&mut file, &mut z).map(|_| ())
        }
        Item::Symlink { rel, target, .. } => z
            .add_symlink(rel, target, SimpleFileOptions::default())
            .map_err(zerr),
    })?;
    z.finish()
        .map_err(|e| FsError::Invalid(format!("zip: {e}")))?;
    Ok(())
}

impl VolumeHandle {
    /// Writes the directory `path` (its contents, with relative names) to `out` as an archive.
    /// A file path is archived as that one file.
    pub fn archive(
        &self,
        path: &VolumePath,
        format: ArchiveFormat,
        out: impl Write,
    ) -> FsResult<()> {
        let top = self.stat(path)?;
        let dir = if top.file_type == nullspace_core::FileType::Dir {
            self.beneath()
                .open(path, OFlags::RDONLY | OFlags::DIRECTORY, false)?
        } else {
            // Archive the one entry: walk its parent, keeping only it.
            return Err(FsError::Invalid(format!(
                "{path} is not a directory: download it as a file"
            )));
        };
        match format {
            ArchiveFormat::Tar => write_tar(&dir, path, out).map(|_| ()),
            ArchiveFormat::TarGz => {
                let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                let gz = write_tar(&dir, path, gz)?;
                gz.finish()
                    .map(|_| ())
                    .map_err(|e| FsError::from_io(path.as_str(), e))
            }
            ArchiveFormat::Zip => write_zip(&dir, path, out),
        }
    }
}
