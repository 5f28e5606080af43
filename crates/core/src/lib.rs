//! Domain types shared by every nullspace crate: names, volume paths, sizes, the error taxonomy.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of HTTP, SQL or syscalls.

pub mod error;
pub mod limits;
pub mod model;
pub mod names;
pub mod path;
pub mod sandbox;
pub mod size;
pub mod wire;

pub use error::{Error, ErrorCode, Result};
pub use model::{FileStat, FileType, Tenant, Volume, VolumeField};
pub use names::{
    validate_label, validate_labels, LabelSelector, Labels, TenantName, VolumeName, MAX_LABELS,
};
pub use path::VolumePath;
pub use sandbox::{AttachmentState, SandboxState};
pub use size::{format_size, parse_size, DEFAULT_VOLUME_CAP};
