//! The JSON shapes of answers that are not core types (docs/API.md, "Routes").

use std::fmt;

use nullspace_core::{FileStat, Tenant};
use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `GET /v1/whoami`: who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Tenant name.
    pub tenant: String,
    pub tenant_id: String,
    /// Whether the key may run admin verbs.
    pub admin: bool,
}

/// `POST /v1/admin/tenants`: the new tenant and its first key, shown only once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub key: String,
}

impl fmt::Debug for CreatedTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedTenant")
            .field("tenant", &self.tenant)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage<T = FileStat> {
    pub entries: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A listed entry when only paths and types were asked for (no `stat` on the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub file_type: nullspace_core::FileType,
}

#[derive(Deserialize)]
pub(crate) struct VolumeList<T> {
    pub volumes: Vec<T>,
}

#[derive(Deserialize)]
pub(crate) struct Exists {
    pub exists: bool,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Deserialize)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
}
