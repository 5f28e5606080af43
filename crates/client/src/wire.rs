//! The JSON shapes of answers, defined once in `nullspace_core::wire` (shared with the server).

pub use nullspace_core::wire::{
    BatchResult, CreateKey, CreatedKey, CreatedTenant, KeyInfo, KeyList, Role, ErrorBody, Exists, Health, ListPage, PathEntry, VolumeList, WhoAmI,
};
