//! Capped file systems in sparse ext4 images on loop devices, shared by volumes (one file
//! system per volume, `crates/volumes/src/loop_image.rs`) and sandboxes (one per writable
//! layer, `crates/sandbox/src/layer.rs`): the image size for a cap, formatting, sparse copies,
//! and binding images to loop devices (`LO_FLAGS_AUTOCLEAR`: the kernel frees a device when
//! the last user of its file system goes away). Mounting is each user's business.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// An I/O error and the path it happened at.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(what: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error {
        path: what.to_path_buf(),
        source: e,
    }
}

fn errno(what: &Path) -> impl Fn(Errno) -> Error + '_ {
    move |e| Error {
        path: what.to_path_buf(),
        source: e.into(),
    }
}

const MIB: u64 = 1 << 20;
/// ext4 journal size (MiB): the smallest mke2fs accepts with 4 KiB blocks.
pub const JOURNAL_MIB: u64 = 4;
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
/// most 4,096 of them, which `statfs` does not count as available). crates/volumes/tests/loop_placement.rs
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

/// Why images cannot be made and bound here (`None`: they can).
pub fn unavailable() -> Option<String> {
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

pub fn find_mkfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("mkfs.ext4"))
        .find(|p| p.is_file())
}

/// Formats a fresh sparse image at `path` (replacing what is there) whose file system has at
/// least `cap` bytes free for files (see [`image_size`]), with `mkfs` (from [`find_mkfs`]).
pub fn format(mkfs: &Path, path: &Path, cap: u64) -> Result<()> {
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
    // for growing (images are never resized). mke2fs discards the sparse file, so inode
    // tables count as zeroed and no lazy init writes them later.
    let out = Command::new(mkfs)
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
        .map_err(io(mkfs))?;
    if !out.status.success() {
        return Err(Error {
            path: path.to_path_buf(),
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

/// Copies the image `src` to a new file `dst` keeping holes (only data extents are copied,
/// found with `SEEK_DATA`/`SEEK_HOLE`; `copy_file_range` lets the file system share blocks
/// where it can). `dst` must not exist. Not synced.
pub fn copy_sparse(src: &Path, dst: &Path) -> Result<()> {
    let s = std::fs::File::open(src).map_err(io(src))?;
    let d = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(io(dst))?;
    let len = s.metadata().map_err(io(src))?.len();
    d.set_len(len).map_err(io(dst))?;
    let mut pos = 0u64;
    while pos < len {
        let start = match rustix::fs::seek(&s, rustix::fs::SeekFrom::Data(pos)) {
            Ok(p) => p,
            Err(Errno::NXIO) => break,
            Err(e) => return Err(errno(src)(e)),
        };
        let end = rustix::fs::seek(&s, rustix::fs::SeekFrom::Hole(start))
            .map_err(errno(src))?
            .min(len);
        let mut off_in = start;
        let mut off_out = start;
        while off_in < end {
            let want = (end - off_in).min(1 << 30) as usize;
            let n =
                rustix::fs::copy_file_range(&s, Some(&mut off_in), &d, Some(&mut off_out), want)
                    .map_err(errno(dst))?;
            if n == 0 {
                return Err(io(src)(std::io::Error::other("image shrank while copying")));
            }
        }
        pos = end;
    }
    Ok(())
}

/// Makes sure nothing keeps the loop device of the image with identity `backing` (dev,
/// ino): clears it (freed at once if unused, else when released) and waits up to `wait` for
/// the kernel to let it go. True when no device is bound to the image any more.
pub fn release_loop(backing: (u64, u64), wait: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let Some(dev) = find_loop_of(backing) else {
            return true;
        };
        if let Ok(fd) = rustix::fs::open(&dev, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
            // SAFETY: LOOP_CLR_FD takes no argument.
            let _ = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CLR_FD, 0) };
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// Loop devices (linux/loop.h).

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
pub const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
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
pub fn loop_backing(dev: &Path) -> Option<(u64, u64)> {
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
pub fn find_loop_of(backing: (u64, u64)) -> Option<PathBuf> {
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
pub fn configure_loop(image: &Path, direct_io: bool) -> Result<(PathBuf, OwnedFd)> {
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
    Err(Error {
        path: ctl_path.to_path_buf(),
        source: std::io::Error::other("no free loop device after 64 tries"),
    })
}

/// Opens a loop device that LOOP_CTL_GET_FREE may have just created (udev/devtmpfs may take a
/// moment to show the node).
fn open_new_device(dev: &Path) -> Result<OwnedFd> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn image_size_grows_with_cap_and_has_a_floor() {
        assert_eq!(image_size(1), image_size(MIN_FS_BYTES));
        assert!(image_size(2 << 30) > 2 << 30);
        assert!(image_size(2 << 30) < (2u64 << 30) + (2u64 << 30) / 20);
        assert_eq!(image_size(123_456_789) % 4096, 0);
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let mut f = std::fs::File::create(&a).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(b"end").unwrap();
        drop(f);
        copy_sparse(&a, &b).unwrap();
        let mut x = Vec::new();
        std::fs::File::open(&b)
            .unwrap()
            .read_to_end(&mut x)
            .unwrap();
        assert_eq!(x, std::fs::read(&a).unwrap());
        use std::os::unix::fs::MetadataExt;
        // Blocks allocated: the data, not 64 MiB.
        assert!(std::fs::metadata(&b).unwrap().blocks() * 512 < 4 << 20);
        assert!(copy_sparse(&a, &b).is_err(), "dst exists");
    }
}
