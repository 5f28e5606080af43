//! Where a volume's files live: the seam between the data plane and the storage of each
//! volume. Two backends: [`DirectoryPlacement`] (a plain directory per volume, for a data root
//! on a distributed file system with its own directory quotas) and
//! [`crate::LoopPlacement`] (a capped ext4 file system per volume on a loop device).

use std::path::{Path, PathBuf};

use crate::error::{FsError, FsResult};

/// Creates, finds and destroys the root directory of each volume.
/// The root holds `data/` (the user's tree) and `staging/` (temporary files).
pub trait VolumePlacement: Send + Sync {
    /// Makes an empty volume root for a volume capped at `cap_bytes` and returns it.
    fn create(&self, volume_id: &str, cap_bytes: u64) -> FsResult<PathBuf>;
    /// The root of an existing volume, made ready for use (a loop image gets mounted);
    /// `NotFound` if it has no storage.
    fn locate(&self, volume_id: &str) -> FsResult<PathBuf>;
    /// Removes a volume root and everything below it.
    fn destroy(&self, volume_id: &str) -> FsResult<()>;
    /// Ids of every volume that has storage (or leftovers of it).
    fn list(&self) -> FsResult<Vec<String>>;
    /// Whether the storage itself stops writes past the cap (writes by sandbox code, which
    /// bypass the data plane's accounting, included).
    fn caps_sandbox_writes(&self) -> bool {
        false
    }
    /// The file holding a volume's usage figure and commit lock, shared by every server on the
    /// data root. Outside the volume root, so that staging and the volume's tree stay as they
    /// are; removed with the volume.
    fn usage_file(&self, volume_id: &str) -> FsResult<PathBuf>;
}

/// `root/<volume id>` after checking that the id is a plain name.
pub(crate) fn checked_id(root: &Path, volume_id: &str) -> FsResult<PathBuf> {
    let ok = !volume_id.is_empty()
        && volume_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(FsError::Invalid(format!("invalid volume id {volume_id:?}")));
    }
    Ok(root.join(volume_id))
}

/// Directory of the usage files, under the data root.
pub(crate) const USAGE_DIR: &str = ".usage";

/// A plain directory per volume under one data root: `<root>/<volume id>/{data,staging}`.
/// The cap is enforced by the data plane's own accounting.
#[derive(Debug)]
pub struct DirectoryPlacement {
    root: PathBuf,
}

impl DirectoryPlacement {
    /// Uses (and creates) `root` to hold every volume; cleans up leftovers of interrupted deletes.
    pub fn open(root: &Path) -> FsResult<DirectoryPlacement> {
        let io = |e| FsError::from_io(&root.display().to_string(), e);
        std::fs::create_dir_all(root.join(".trash")).map_err(io)?;
        std::fs::create_dir_all(root.join(USAGE_DIR)).map_err(io)?;
        let p = DirectoryPlacement {
            root: root.to_owned(),
        };
        p.empty_trash();
        Ok(p)
    }

    fn empty_trash(&self) {
        if let Ok(rd) = std::fs::read_dir(self.root.join(".trash")) {
            for e in rd.flatten() {
                // remove_dir_all works by fd and does not follow symlinks.
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        // A usage file whose volume is gone (a server opened the volume while another deleted
        // it). A volume's directory always exists before its usage file is made.
        if let Ok(rd) = std::fs::read_dir(self.root.join(USAGE_DIR)) {
            for e in rd.flatten() {
                if !self.root.join(e.file_name()).exists() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn checked(&self, volume_id: &str) -> FsResult<PathBuf> {
        checked_id(&self.root, volume_id)
    }
}

impl VolumePlacement for DirectoryPlacement {
    fn create(&self, volume_id: &str, _cap_bytes: u64) -> FsResult<PathBuf> {
        let dir = self.checked(volume_id)?;
        let io = |e| FsError::from_io(volume_id, e);
        std::fs::create_dir(&dir).map_err(io)?;
        std::fs::create_dir(dir.join("data")).map_err(io)?;
        std::fs::create_dir(dir.join("staging")).map_err(io)?;
        std::fs::File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(dir)
    }

    fn locate(&self, volume_id: &str) -> FsResult<PathBuf> {
        let dir = self.checked(volume_id)?;
        if dir.join("data").is_dir() {
            Ok(dir)
        } else {
            Err(FsError::NotFound(format!("storage of volume {volume_id}")))
        }
    }

    fn destroy(&self, volume_id: &str) -> FsResult<()> {
        let dir = self.checked(volume_id)?;
        let trash = self
            .root
            .join(".trash")
            .join(format!("{volume_id}-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::remove_file(self.root.join(USAGE_DIR).join(volume_id));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FsError::from_io(volume_id, e)),
        }
        std::fs::remove_dir_all(&trash).map_err(|e| FsError::from_io(volume_id, e))
    }

    fn list(&self) -> FsResult<Vec<String>> {
        let rd = std::fs::read_dir(&self.root).map_err(|e| FsError::from_io("data root", e))?;
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn usage_file(&self, volume_id: &str) -> FsResult<PathBuf> {
        self.checked(volume_id)?;
        Ok(self.root.join(USAGE_DIR).join(volume_id))
    }
}
