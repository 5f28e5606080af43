//! The runtime's error type: one enum, each variant naming what went wrong and where.

use std::io;

use nullspace_core::ErrorCode;

/// Errors of the sandbox runtime. `code()` gives the stable code the API maps to a status.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A caller mistake in one field of a request (mount path, subpath, id, env, cwd…).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The sandbox (or another named thing) does not exist.
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    /// A sandbox with this id already exists.
    #[error("sandbox already exists: {id}")]
    AlreadyExists { id: String },
    /// The sandbox is in a state where the operation cannot run (e.g. exec on a paused sandbox).
    #[error("sandbox {id}: {reason}")]
    Conflict { id: String, reason: String },
    /// A system call failed: `op` says which step, `context` on what.
    #[error("{op} failed ({context}): {source}")]
    Sys {
        op: &'static str,
        context: String,
        source: io::Error,
    },
    /// The host lacks something the runtime needs (cgroup v1 freezer, idmapped mounts, …).
    #[error("sandbox runtime unavailable: {0}")]
    Unavailable(String),
}

impl SandboxError {
    /// The stable error code of the one taxonomy.
    pub fn code(&self) -> ErrorCode {
        match self {
            SandboxError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            SandboxError::NotFound { .. } => ErrorCode::NotFound,
            SandboxError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            SandboxError::Conflict { .. } => ErrorCode::Conflict,
            SandboxError::Unavailable(_) => ErrorCode::Unavailable,
            SandboxError::Sys { .. } => ErrorCode::Internal,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SandboxError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(id: &str) -> Self {
        SandboxError::NotFound {
            kind: "sandbox",
            name: id.to_string(),
        }
    }

    pub(crate) fn sys(
        op: &'static str,
        context: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Self {
        SandboxError::Sys {
            op,
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn errno(op: &'static str, context: impl Into<String>, errno: i32) -> Self {
        SandboxError::Sys {
            op,
            context: context.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }
}

impl From<SandboxError> for nullspace_core::Error {
    fn from(e: SandboxError) -> nullspace_core::Error {
        nullspace_core::Error::new(e.code(), e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
