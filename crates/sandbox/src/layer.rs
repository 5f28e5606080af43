//! The capped writable layer: each sandbox's overlay `upper` and `work` live on its own ext4
//! file system, a sparse image `sandboxes/<id>/layer.ext4` on a loop device, sized with
//! `nullspace_blockimage::image_size(disk_bytes)`, so writes past the cap get ENOSPC inside
//! and the host loses at most the image's size.
//!
//! **Never mounted on the host.** At boot the image's file system is mounted *detached*
//! (`fsopen`/`fsmount`: a mount in no namespace's tree) and the init's overlay takes
//! `upperdir`/`workdir` through `/proc/<server>/fd/<n>/…`; overlayfs keeps its own private
//! clone of that mount, so once the init is up the server closes its fd and the file system
//! lives exactly as long as the sandbox's mount namespace. The loop device is bound with
//! `AUTOCLEAR`: the kernel frees it when that file system goes. Restarts need nothing: a
//! running sandbox holds its layer, a hibernated one binds it again on wake.
//!
//! **Fast create.** `mkfs.ext4` runs once per image size: `templates/layer-v1-<size>.ext4`
//! is formatted the first time a size is asked for, and every layer is a sparse copy of it
//! (about 4 MiB of metadata whatever the cap). **Fork** syncs the source's file system
//! (`syncfs` through the overlay, processes frozen) and copies the image sparsely.
//!
//! Sandboxes made before layers were capped keep `upper`/`work` on the host (no image): they
//! run as before, uncapped, until destroyed.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nullspace_blockimage as bi;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

use crate::error::{Result, SandboxError};

/// The image's name in the sandbox's directory.
pub(crate) const IMAGE: &str = "layer.ext4";
/// Bump when the template's format changes.
const TEMPLATE_PREFIX: &str = "layer-v1-";

fn bi_err(e: bi::Error) -> SandboxError {
    SandboxError::sys("layer", e.path.display().to_string(), e.source)
}

/// Makes the layer images of one state dir.
#[derive(Debug)]
pub(crate) struct Layers {
    templates: PathBuf,
    mkfs: PathBuf,
}

impl Layers {
    /// Fails when loop devices or mkfs.ext4 are missing.
    pub fn new(state_dir: &Path) -> Result<Layers> {
        if let Some(why) = bi::unavailable() {
            return Err(SandboxError::Unavailable(format!(
                "capped writable layers need loop devices: {why}"
            )));
        }
        Ok(Layers {
            templates: state_dir.join("templates"),
            mkfs: bi::find_mkfs().unwrap_or_default(),
        })
    }

    /// The formatted template for a cap (made on first use, under a temporary name).
    fn template(&self, disk_bytes: u64) -> Result<PathBuf> {
        let size = bi::image_size(disk_bytes);
        let path = self.templates.join(format!("{TEMPLATE_PREFIX}{size}.ext4"));
        if path.is_file() {
            return Ok(path);
        }
        let tmp = self.templates.join(format!(
            ".{TEMPLATE_PREFIX}{size}-{}-{}",
            std::process::id(),
            crate::rootfs::unique()
        ));
        let made = bi::format(&self.mkfs, &tmp, disk_bytes)
            .map_err(bi_err)
            .and_then(|()| {
                std::fs::rename(&tmp, &path)
                    .map_err(|e| SandboxError::sys("rename", path.display().to_string(), e))
            });
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made.map(|()| path)
    }

    /// Makes `dir/layer.ext4`: a fresh file system with room for `disk_bytes`.
    pub fn make(&self, dir: &Path, disk_bytes: u64) -> Result<()> {
        let template = self.template(disk_bytes)?;
        copy_image(&template, dir)
    }
}

/// Copies an image (a template's or another sandbox's) to `dir/layer.ext4`.
pub(crate) fn copy_image(src: &Path, dir: &Path) -> Result<()> {
    let tmp = dir.join(".layer.ext4.tmp");
    let _ = std::fs::remove_file(&tmp);
    let dst = dir.join(IMAGE);
    let r = bi::copy_sparse(src, &tmp).map_err(bi_err).and_then(|()| {
        std::fs::rename(&tmp, &dst)
            .map_err(|e| SandboxError::sys("rename", dst.display().to_string(), e))
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Whether the sandbox in `dir` has a capped layer (false: an old host-directory layer).
pub(crate) fn has_image(dir: &Path) -> bool {
    dir.join(IMAGE).is_file()
}

/// The layer's file system, reachable through `root` while this lives.
pub(crate) struct Mounted {
    /// The detached mount (`None` for an old host-directory layer).
    _fd: Option<OwnedFd>,
    /// `/proc/<server>/fd/<n>` (or the sandbox's directory): holds `upper` and `work`.
    pub root: PathBuf,
}

impl Mounted {
    /// The detached mount of the layer's own file system (`None` for a host-directory layer).
    pub fn tree(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self._fd.as_ref().map(|fd| fd.as_fd())
    }

    pub fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }
}

fn image_identity(image: &Path) -> Result<(u64, u64)> {
    let st = rustix::fs::stat(image)
        .map_err(|e| SandboxError::sys("stat", image.display().to_string(), e))?;
    Ok((st.st_dev, st.st_ino))
}

/// Mounts the layer of the sandbox in `dir` (detached) and makes `upper` and `work` if they
/// are missing.
pub(crate) fn mount(dir: &Path) -> Result<Mounted> {
    if !has_image(dir) {
        return Ok(Mounted {
            _fd: None,
            root: dir.to_path_buf(),
        });
    }
    let image = dir.join(IMAGE);
    let backing = image_identity(&image)?;
    let mut last = None;
    // A device found bound may be auto-cleared just before we open it (the last sandbox
    // using it went away a moment ago): then bind again.
    for _ in 0..3 {
        let (dev, held) = match bi::find_loop_of(backing) {
            Some(dev) => {
                match rustix::fs::open(&dev, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
                    Ok(fd) => (dev, fd),
                    Err(e) => {
                        last = Some(SandboxError::sys("open", dev.display().to_string(), e));
                        continue;
                    }
                }
            }
            None => bi::configure_loop(&image, false).map_err(bi_err)?,
        };
        match mount_detached(&dev) {
            Ok(fd) => {
                drop(held);
                let root = PathBuf::from(format!(
                    "/proc/{}/fd/{}",
                    std::process::id(),
                    fd.as_raw_fd()
                ));
                let m = Mounted {
                    _fd: Some(fd),
                    root,
                };
                prepare(&m)?;
                return Ok(m);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| SandboxError::Unavailable("could not mount the layer".into())))
}

fn mount_detached(dev: &Path) -> Result<OwnedFd> {
    let e = |op: &'static str| {
        let d = dev.display().to_string();
        move |e| SandboxError::sys(op, d, e)
    };
    let fs = rustix::mount::fsopen("ext4", FsOpenFlags::FSOPEN_CLOEXEC).map_err(e("fsopen"))?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "source", dev).map_err(e("fsconfig"))?;
    rustix::mount::fsconfig_create(fs.as_fd()).map_err(e("fsconfig create"))?;
    rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(e("fsmount"))
}

fn prepare(m: &Mounted) -> Result<()> {
    for (sub, mode) in [("upper", 0o755), ("work", 0o700)] {
        let p = m.root.join(sub);
        match std::fs::DirBuilder::new().mode(mode).create(&p) {
            Ok(()) => std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| SandboxError::sys("chmod", sub, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(SandboxError::sys("mkdir", sub, e)),
        }
    }
    // mke2fs's lost+found is not part of the sandbox's view (only upper is); it stays.
    Ok(())
}

/// Flushes a running (frozen) sandbox's layer to its image: `syncfs` through the overlay
/// root of its init reaches the upper file system.
pub(crate) fn sync_live(init_pid: i32) -> Result<()> {
    let p = format!("/proc/{init_pid}/root");
    let fd = rustix::fs::open(
        &p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SandboxError::sys("open", p.clone(), e))?;
    rustix::fs::syncfs(&fd).map_err(|e| SandboxError::sys("syncfs", p, e))
}

/// After the sandbox's processes are gone: waits until no loop device holds its image (the
/// kernel frees it when the file system is released), clearing it if it lingers.
pub(crate) fn release(dir: &Path) -> Result<()> {
    let image = dir.join(IMAGE);
    let Ok(backing) = image_identity(&image) else {
        return Ok(());
    };
    if bi::release_loop(backing, Duration::from_secs(10)) {
        Ok(())
    } else {
        Err(SandboxError::Unavailable(format!(
            "the loop device of {} was not released within 10 s",
            image.display()
        )))
    }
}
