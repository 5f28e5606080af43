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
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, FsResult};
use crate::placement::{checked_id, VolumePlacement, USAGE_DIR};

const MIB: u64 = 1 << 20;
/// ext4 journal size (MiB): the smallest mke2fs accepts with 4 KiB blocks.
const JOURNAL_MIB: u64 = 4;
/// The smallest file system we make: caps below it get a file system of this size (the API's
/// own check stays exact; only sandbox writes can then pass the cap by the difference).
pub const MIN_FS_BYTES: u64 = 8 * MIB;
/// What a sandbox may write above the cap before ENOSPC (free space beyond the cap).
pub const SLACK_BYTES: u64 = MIB;

/// The image size whose ext4 file system (made by [`mkfs`]) has at least `cap` bytes free for
/// files after `data/` and `staging/` exist, and at most about [`SLACK_BYTES`] more.
///
/// The metadata of ext4 as we format it: inode tables (one 256-byte inode per 16 KiB, so
/// 1/64 of the size), block and inode bitmaps and group descriptors (under 1/8192), the
/// journal, and the free blocks ext4 holds back for delayed allocation (2 % of the blocks, at
/// most 4,096 of them, which `statfs` does not count as available). tests/loop_placement.rs
/// checks the result against a real file system for caps from 1 KiB to 100 GiB.
pub fn image_size(cap: u64) -> u64 {
    let cap = cap.max(MIN_FS_BYTES);
    let mut size = cap;
    // A fixed point: the overhead grows with the size.
    for _ in 0..32 {
        size = cap
            + size / 64
            + size / 8192
            + JOURNAL_MIB * MIB
            + (size / 50).min(4096 * 4096)
            + SLACK_BYTES;
    }
    size.div_ceil(4096) * 4096
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
    if !rustix::process::geteuid().is_root() {
        return Some("the server does not run as root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control does not exist".into());
    }
    if find_mkfs().is_none() {
        return Some("mkfs.ext4 (e2fsprogs) is not installed".into());
    }
    None
}

fn find_mkfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("mkfs.ext4"))
        .find(|p| p.is_file())
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
        let _ = std::fs::remove_file(path);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(image_size(cap)).map_err(io(path))?;
        drop(f);
        // 4 KiB blocks (the loop device's block size too, for direct I/O), no reserved blocks,
        // the smallest journal, the same inode ratio at every size (-T default), no space kept
        // for growing (volumes are never resized). mke2fs discards the sparse file, so inode
        // tables count as zeroed and no lazy init writes them later.
        let out = Command::new(&self.mkfs)
            .args([
                "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-T", "default",
            ])
            .args(["-O", "^resize_inode", "-J", &format!("size={JOURNAL_MIB}")])
            .args(["-E", "root_owner=0:0"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(io(&self.mkfs))?;
        if !out.status.success() {
            return Err(FsError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(format!(
                    "mkfs.ext4 failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        // mke2fs fsyncs the image before it exits.
        Ok(())
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
                    None => configure_loop(&image, self.direct_io)?,
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

// ---------------------------------------------------------------------------------------------
// Loop devices (linux/loop.h).

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn zeroed_info() -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: 0,
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

/// (st_dev, st_ino) of the file behind the loop device `dev`, if it is bound.
fn loop_backing(dev: &Path) -> Option<(u64, u64)> {
    let fd = rustix::fs::open(dev, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut info = zeroed_info();
    // SAFETY: LOOP_GET_STATUS64 fills a struct loop_info64, which `info` is.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            LOOP_GET_STATUS64,
            &mut info as *mut LoopInfo64,
        )
    };
    (r == 0).then_some((info.lo_device, info.lo_inode))
}

/// The loop device already backed by the file (dev, ino), if any.
fn find_loop_of(backing: (u64, u64)) -> Option<PathBuf> {
    let rd = std::fs::read_dir("/sys/block").ok()?;
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("loop"))
        // Bound devices have loop/backing_file.
        .filter(|n| {
            Path::new("/sys/block")
                .join(n)
                .join("loop/backing_file")
                .exists()
        })
        .map(|n| PathBuf::from("/dev").join(n))
        .find(|dev| loop_backing(dev) == Some(backing))
}

/// Binds `image` to a free loop device (AUTOCLEAR, 4 KiB blocks, direct I/O if asked).
fn configure_loop(image: &Path, direct_io: bool) -> FsResult<(PathBuf, OwnedFd)> {
    // The kernel does direct I/O on the backing file only if it was opened with O_DIRECT.
    let mut oflags = OFlags::RDWR | OFlags::CLOEXEC;
    if direct_io {
        oflags |= OFlags::DIRECT;
    }
    let img = rustix::fs::open(image, oflags, Mode::empty()).map_err(errno(image))?;
    let ctl_path = Path::new("/dev/loop-control");
    let ctl = rustix::fs::open(ctl_path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno(ctl_path))?;
    let mut name = [0u8; 64];
    let bytes = image.as_os_str().as_bytes();
    let n = bytes.len().min(63);
    name[..n].copy_from_slice(&bytes[..n]);
    let mut flags = LO_FLAGS_AUTOCLEAR;
    if direct_io {
        flags |= LO_FLAGS_DIRECT_IO;
    }
    // Another process may take the free device between GET_FREE and CONFIGURE: try again.
    for _ in 0..64 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let num = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if num < 0 {
            return Err(errno(ctl_path)(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            )));
        }
        let dev = PathBuf::from(format!("/dev/loop{num}"));
        let fd = open_new_device(&dev)?;
        let mut info = zeroed_info();
        info.lo_flags = flags;
        info.lo_file_name = name;
        let cfg = LoopConfig {
            fd: img.as_fd().as_raw_fd() as u32,
            block_size: 4096,
            info,
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a struct loop_config, which `cfg` is.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
        if r == 0 {
            return Ok((dev, fd));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EBUSY) => continue,
            // Kernels before 5.8: LOOP_SET_FD, then the flags.
            Some(libc::EINVAL) | Some(libc::ENOTTY) => {
                // SAFETY: LOOP_SET_FD takes the backing fd as its argument.
                let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_SET_FD, img.as_raw_fd()) };
                if r != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        continue;
                    }
                    return Err(io(&dev)(e));
                }
                // SAFETY: LOOP_SET_STATUS64 reads a struct loop_info64.
                let r = unsafe {
                    libc::ioctl(
                        fd.as_raw_fd(),
                        LOOP_SET_STATUS64,
                        &info as *const LoopInfo64,
                    )
                };
                if r != 0 {
                    let e = std::io::Error::last_os_error();
                    // SAFETY: LOOP_CLR_FD takes no argument.
                    unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CLR_FD, 0) };
                    return Err(io(&dev)(e));
                }
                return Ok((dev, fd));
            }
            _ => return Err(io(&dev)(e)),
        }
    }
    Err(FsError::Io {
        path: ctl_path.display().to_string(),
        source: std::io::Error::other("no free loop device after 64 tries"),
    })
}

/// Opens a loop device that LOOP_CTL_GET_FREE may have just created (udev/devtmpfs may take a
/// moment to show the node).
fn open_new_device(dev: &Path) -> FsResult<OwnedFd> {
    let mut last = Errno::NOENT;
    for _ in 0..100 {
        match rustix::fs::open(dev, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {
                last = Errno::NOENT;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(errno(dev)(e)),
        }
    }
    Err(errno(dev)(last))
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

    #[test]
    fn image_size_grows_with_cap_and_has_a_floor() {
        assert_eq!(image_size(1), image_size(MIN_FS_BYTES));
        assert!(image_size(2 << 30) > 2 << 30);
        assert!(image_size(2 << 30) < (2u64 << 30) + (2u64 << 30) / 20);
        assert_eq!(image_size(123_456_789) % 4096, 0);
    }
}
