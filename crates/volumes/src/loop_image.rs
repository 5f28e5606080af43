//! A capped file system per volume: a sparse ext4 image on a loop device, mounted at the
//! volume's root in the host's mount namespace.
//!
//! Layout: `<data>/images/<id>.ext4` (the image) and `<data>/volumes/<id>` (its mount point,
//! holding `data/` and `staging/`, so an atomic write's temp file and its target share one
//! file system). Sandboxes bind-mount `data/` of the mounted file system, so the kernel stops
//! their writes with ENOSPC once the file system is full, and the file system is sized so that
//! this happens within about 1 MiB above the cap (see [`image_size`]).
//!
//! Mounts persist: a server never unmounts a volume on shutdown (another server may share the
//! data root), and on start it mounts what is not mounted yet. Attaching takes an exclusive
//! `flock` on the image and reuses a loop device already backed by it, so two servers never
//! bind one image to two loop devices (two superblocks over one image would corrupt it).
//! Loop devices are configured with `LO_FLAGS_AUTOCLEAR`: the kernel frees one when the last
//! mount of its file system goes away.

use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, FsResult};
use crate::placement::{checked_id, VolumePlacement, USAGE_DIR};

use nullspace_blockimage::{configure_loop, find_loop_of, find_mkfs, loop_backing, LOOP_CLR_FD};
pub use nullspace_blockimage::{image_size, MIN_FS_BYTES, SLACK_BYTES};

fn image_err(e: nullspace_blockimage::Error) -> FsError {
    FsError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    }
}

/// Every volume is its own ext4 file system on a loop device (see the module docs).
#[derive(Debug)]
pub struct LoopPlacement {
    /// `<data>/volumes`: one mount point per volume.
    mounts: PathBuf,
    /// `<data>/images`: one image per volume.
    images: PathBuf,
    /// Configure loop devices with `LO_FLAGS_DIRECT_IO` (no double caching in the host's page
    /// cache); see bench/notes/issue6-loop.md for the measurement behind the default.
    direct_io: bool,
    mkfs: PathBuf,
}

/// Why the loop backend cannot run here (`None`: it can).
pub fn loop_unavailable() -> Option<String> {
    nullspace_blockimage::unavailable()
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> FsError + '_ {
    move |e| FsError::Io {
        path: what.display().to_string(),
        source: e,
    }
}

fn errno(what: &Path) -> impl Fn(Errno) -> FsError + '_ {
    move |e| FsError::Io {
        path: what.display().to_string(),
        source: e.into(),
    }
}

impl LoopPlacement {
    /// Uses `<data>/volumes` and `<data>/images` (created if missing).
    pub fn open(data_dir: &Path, direct_io: bool) -> FsResult<LoopPlacement> {
        if let Some(why) = loop_unavailable() {
            return Err(FsError::Invalid(format!(
                "the loop volume backend cannot run: {why}"
            )));
        }
        let p = LoopPlacement {
            mounts: data_dir.join("volumes"),
            images: data_dir.join("images"),
            direct_io,
            mkfs: find_mkfs().unwrap_or_default(),
        };
        let usage = p.mounts.join(USAGE_DIR);
        for d in [&p.mounts, &p.images, &usage] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        // A usage file whose volume is gone (a server opened the volume while another deleted
        // it). A volume's image always exists before its usage file is made.
        if let Ok(rd) = std::fs::read_dir(&usage) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !p.image(&id).exists() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // Mount points are compared with /proc/self/mountinfo, which shows canonical paths.
        Ok(LoopPlacement {
            mounts: p.mounts.canonicalize().map_err(io(&p.mounts))?,
            images: p.images.canonicalize().map_err(io(&p.images))?,
            ..p
        })
    }

    fn image(&self, id: &str) -> PathBuf {
        self.images.join(format!("{id}.ext4"))
    }

    /// Formats a fresh sparse image for `cap` at `path` (replacing what is there).
    fn make_image(&self, path: &Path, cap: u64) -> FsResult<()> {
        nullspace_blockimage::format(&self.mkfs, path, cap).map_err(image_err)
    }

    /// Mounts the volume's image at its root unless it already is; returns the root.
    fn ensure_mounted(&self, id: &str) -> FsResult<PathBuf> {
        let root = checked_id(&self.mounts, id)?;
        let image = self.image(id);
        let img = match rustix::fs::open(&image, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(FsError::NotFound(format!("storage of volume {id}"))),
            Err(e) => return Err(errno(&image)(e)),
        };
        // Held until `img` is closed: one attacher per image at a time, across servers.
        rustix::fs::flock(&img, FlockOperation::LockExclusive).map_err(errno(&image))?;
        let st = rustix::fs::fstat(&img).map_err(errno(&image))?;
        let backing = (st.st_dev, st.st_ino);
        match mounted_device(&root)? {
            Some(dev) if loop_backing(&dev).as_ref() == Some(&backing) => {}
            Some(_) => {
                return Err(FsError::Io {
                    path: root.display().to_string(),
                    source: std::io::Error::other(
                        "something other than the volume's image is mounted there",
                    ),
                })
            }
            None => {
                match std::fs::create_dir(&root) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(&root)(e)),
                }
                // The device stays open until it is mounted: AUTOCLEAR frees a device whose
                // last opener closes it.
                let (dev, _held) = match find_loop_of(backing) {
                    Some(dev) => {
                        let fd =
                            rustix::fs::open(&dev, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                                .map_err(errno(&dev))?;
                        (dev, fd)
                    }
                    None => configure_loop(&image, self.direct_io).map_err(image_err)?,
                };
                rustix::mount::mount(
                    dev.as_path(),
                    &root,
                    "ext4",
                    rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
                    None,
                )
                .map_err(errno(&root))?;
            }
        }
        if !root.join("data").is_dir() || !root.join("staging").is_dir() {
            // A new file system, or a crash during create: make the two directories.
            for d in ["data", "staging"] {
                match std::fs::create_dir(root.join(d)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(&root)(e)),
                }
            }
            // mke2fs's lost+found would show next to data/ and staging/; e2fsck makes it
            // again when it needs it. Not synced: if a crash loses these directories, the
            // next mount makes them again, and the first durable write commits them.
            let _ = std::fs::remove_dir(root.join("lost+found"));
        }
        Ok(root)
    }
}

impl VolumePlacement for LoopPlacement {
    fn create(&self, volume_id: &str, cap_bytes: u64) -> FsResult<PathBuf> {
        let _ = checked_id(&self.mounts, volume_id)?;
        let image = self.image(volume_id);
        if image.exists() {
            return Err(FsError::AlreadyExists(format!(
                "storage of volume {volume_id}"
            )));
        }
        // Formatted under a temporary name and renamed: an image that exists is complete.
        let tmp = self.images.join(format!(".{volume_id}.ext4.tmp"));
        let made = self.make_image(&tmp, cap_bytes).and_then(|()| {
            std::fs::rename(&tmp, &image).map_err(io(&image))?;
            std::fs::File::open(&self.images)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.images))?;
            self.ensure_mounted(volume_id)
        });
        if made.is_err() {
            let _ = self.destroy(volume_id);
        }
        made
    }

    fn locate(&self, volume_id: &str) -> FsResult<PathBuf> {
        self.ensure_mounted(volume_id)
    }

    fn usage_file(&self, volume_id: &str) -> FsResult<PathBuf> {
        checked_id(&self.mounts, volume_id)?;
        Ok(self.mounts.join(USAGE_DIR).join(volume_id))
    }

    fn destroy(&self, volume_id: &str) -> FsResult<()> {
        let root = checked_id(&self.mounts, volume_id)?;
        let _ = std::fs::remove_file(self.mounts.join(USAGE_DIR).join(volume_id));
        let image = self.image(volume_id);
        let img = rustix::fs::open(&image, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok();
        if let Some(fd) = &img {
            rustix::fs::flock(fd, FlockOperation::LockExclusive).map_err(errno(&image))?;
        }
        let backing = img
            .as_ref()
            .and_then(|fd| rustix::fs::fstat(fd).ok())
            .map(|st| (st.st_dev, st.st_ino));
        // Lazily: sandboxes that still hold files open keep their detached view until they
        // close them; the loop device (AUTOCLEAR) goes when the file system is released.
        while mounted_device(&root)?.is_some() {
            rustix::mount::unmount(&root, rustix::mount::UnmountFlags::DETACH)
                .map_err(errno(&root))?;
        }
        if let Some(dev) = backing.and_then(find_loop_of) {
            // Frees it now if nothing uses it any more, or marks it to go when released.
            if let Ok(fd) = rustix::fs::open(&dev, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            {
                // SAFETY: LOOP_CLR_FD takes no argument.
                let _ = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CLR_FD, 0) };
            }
        }
        match std::fs::remove_dir(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not a mount any more but not empty: files written while it was not mounted.
            Err(_) => std::fs::remove_dir_all(&root).map_err(io(&root))?,
        }
        match std::fs::remove_file(&image) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&image)(e)),
        }
        let _ = std::fs::remove_file(self.images.join(format!(".{volume_id}.ext4.tmp")));
        Ok(())
    }

    fn list(&self) -> FsResult<Vec<String>> {
        let mut ids = Vec::new();
        for (dir, strip) in [(&self.mounts, ""), (&self.images, ".ext4")] {
            let rd = std::fs::read_dir(dir).map_err(io(dir))?;
            for e in rd.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                if let Some(id) = name.strip_suffix(strip) {
                    ids.push(id.to_owned());
                }
            }
        }
        // Leftovers of interrupted creates.
        if let Ok(rd) = std::fs::read_dir(&self.images) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(id) = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(".ext4.tmp"))
                {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn caps_sandbox_writes(&self) -> bool {
        true
    }
}

/// The device mounted exactly at `mount_point` (the top mount there), per /proc/self/mountinfo.
fn mounted_device(mount_point: &Path) -> FsResult<Option<PathBuf>> {
    let mut text = String::new();
    std::fs::File::open("/proc/self/mountinfo")
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(0))?;
            f.read_to_string(&mut text)
        })
        .map_err(io(Path::new("/proc/self/mountinfo")))?;
    let want = mount_point.as_os_str().as_bytes();
    let mut found = None;
    for line in text.lines() {
        if let Some((point, source)) = mount_point_and_source(line) {
            if point.as_bytes() == want {
                found = Some(PathBuf::from(source));
            }
        }
    }
    Ok(found)
}

/// (mount point, mount source) of one mountinfo line, octal escapes undone.
pub(crate) fn mount_point_and_source(line: &str) -> Option<(CString, String)> {
    let mut fields = line.split(' ');
    let point = fields.nth(4)?;
    let rest: Vec<&str> = fields.collect();
    let sep = rest.iter().position(|f| *f == "-")?;
    let source = rest.get(sep + 2)?;
    Some((
        CString::new(unescape(point)).ok()?,
        String::from_utf8_lossy(&unescape(source)).into_owned(),
    ))
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields() {
        let line = r"36 35 7:3 / /srv/a\040b rw,relatime shared:1 - ext4 /dev/loop3 rw";
        let (p, s) = mount_point_and_source(line).unwrap();
        assert_eq!(p.as_bytes(), b"/srv/a b");
        assert_eq!(s, "/dev/loop3");
        let line = "36 35 7:3 / /x rw - ext4 /dev/loop4 rw";
        assert_eq!(mount_point_and_source(line).unwrap().1, "/dev/loop4");
    }
}
