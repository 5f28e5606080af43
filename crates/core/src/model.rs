//! Domain records. Their serde form is the JSON users see (see ARCHITECTURE.md, "Wire types").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Labels};

/// A tenant: the unit of isolation. Keys and volumes belong to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Cap given to this tenant's new volumes; `None` means the 2 GiB default.
    pub volume_cap_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
}

/// A volume's metadata, as stored by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cap_bytes: u64,
    pub used_bytes: u64,
    pub file_count: u64,
    pub labels: Labels,
    /// Always `ready` (kept on the wire for clients that read it).
    pub state: String,
    /// Number of live sandbox attachments.
    pub attachments: u64,
    /// Bytes reserved against the cap by resumable uploads not yet complete (each one's
    /// declared length, from its creation until it completes, is cancelled or expires).
    #[serde(default)]
    pub pending_upload_bytes: u64,
}

/// The fields of a volume that list/get can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeField {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    CapBytes,
    UsedBytes,
    FileCount,
    Labels,
    State,
    Attachments,
    PendingUploadBytes,
}

impl VolumeField {
    /// Every field, in display order.
    pub const ALL: [VolumeField; 11] = [
        VolumeField::Id,
        VolumeField::Name,
        VolumeField::CreatedAt,
        VolumeField::UpdatedAt,
        VolumeField::CapBytes,
        VolumeField::UsedBytes,
        VolumeField::FileCount,
        VolumeField::Labels,
        VolumeField::State,
        VolumeField::Attachments,
        VolumeField::PendingUploadBytes,
    ];

    /// The field's JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeField::Id => "id",
            VolumeField::Name => "name",
            VolumeField::CreatedAt => "created_at",
            VolumeField::UpdatedAt => "updated_at",
            VolumeField::CapBytes => "cap_bytes",
            VolumeField::UsedBytes => "used_bytes",
            VolumeField::FileCount => "file_count",
            VolumeField::Labels => "labels",
            VolumeField::State => "state",
            VolumeField::Attachments => "attachments",
            VolumeField::PendingUploadBytes => "pending_upload_bytes",
        }
    }

    /// Parses a comma-separated selection such as `name,used_bytes`. Empty means all fields.
    pub fn parse_list(s: &str) -> Result<Vec<VolumeField>, Error> {
        let mut out = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let f = VolumeField::ALL
                .into_iter()
                .find(|f| f.as_str() == raw)
                .ok_or_else(|| {
                    let known: Vec<_> = VolumeField::ALL.iter().map(|f| f.as_str()).collect();
                    Error::invalid_argument(format!(
                        "unknown field {raw:?}; known fields: {}",
                        known.join(", ")
                    ))
                })?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            out.extend(VolumeField::ALL);
        }
        Ok(out)
    }
}

/// What kind of entry a path names. Symlinks are reported, never followed, by stat and list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    /// A named pipe (sandbox code can make one; the API never does). Not read, copied or
    /// archived: such requests are `invalid_argument`.
    Fifo,
    /// A Unix socket, like [`FileType::Fifo`].
    Socket,
    /// A character or block device node, like [`FileType::Fifo`].
    Device,
}

impl FileType {
    /// The type of a `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o040000 => FileType::Dir,
            0o120000 => FileType::Symlink,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            0o020000 | 0o060000 => FileType::Device,
            _ => FileType::File,
        }
    }
}

/// Metadata of one entry in a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileStat {
    /// Absolute path inside the volume.
    pub path: String,
    #[serde(rename = "type")]
    pub file_type: FileType,
    pub size: u64,
    /// Permission bits (`0o644` is 420).
    pub mode: u32,
    pub mtime: DateTime<Utc>,
    /// Changes whenever the content changes; pass it as `if_match` for conditional writes.
    pub etag: String,
    /// Only in listings, only when the path's bytes on disk are not UTF-8 (names sandbox code
    /// made): the exact bytes, standard base64. `path` is then a display form (invalid bytes
    /// as U+FFFD) that can be the same for several entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_base64: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists() {
        assert_eq!(
            VolumeField::parse_list("").unwrap().len(),
            VolumeField::ALL.len()
        );
        assert_eq!(VolumeField::ALL.len(), 11);
        assert_eq!(
            VolumeField::parse_list("name, used_bytes,name").unwrap(),
            vec![VolumeField::Name, VolumeField::UsedBytes]
        );
        let e = VolumeField::parse_list("name,size").unwrap_err();
        assert!(e.message.contains("\"size\""), "{}", e.message);
    }
}
