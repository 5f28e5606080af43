//! The JSON shapes of answers, defined once in `nullspace_core::wire` (shared with the server).

pub use nullspace_core::wire::{
    BatchResult, CreateKey, CreateToken, CreatedKey, CreatedTenant, ErrorBody, Exists, Health,
    KeyInfo, KeyList, ListPage, PathEntry, Role, UploadInfo, UploadList, VolumeList, WhoAmI,
};
