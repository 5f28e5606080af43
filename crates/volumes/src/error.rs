//! Errors of the data plane, each naming the path at fault.

use nullspace_core::{Error, ErrorCode};
use rustix::io::Errno;

/// What went wrong with a file operation inside a volume.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("path {0:?} not found")]
    NotFound(String),
    #[error("path {0:?} already exists")]
    AlreadyExists(String),
    #[error("a parent of {0:?} is not a directory")]
    NotADirectory(String),
    #[error("path {0:?} is a directory")]
    IsADirectory(String),
    #[error("path {0:?} is not a regular file")]
    NotAFile(String),
    #[error("directory {0:?} is not empty (remove it recursively)")]
    NotEmpty(String),
    #[error("path {0:?} leads outside the volume")]
    Escapes(String),
    #[error("too many levels of symbolic links in {0:?}")]
    SymlinkLoop(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "volume cap exceeded: {used} bytes used + {adding} bytes would pass the cap of {cap} bytes"
    )]
    QuotaExceeded { used: u64, adding: u64, cap: u64 },
    /// Kept to three fields so that `FsError` stays as small as its largest other variant.
    #[error(
        "volume cap exceeded: {used} bytes used + {pending} bytes held by pending uploads leave \
         no room for this under the cap of {cap} bytes (list the uploads with `nullspace volume \
         uploads`, cancel one with `nullspace volume uploads cancel`)"
    )]
    ReservedByUploads { used: u64, pending: u64, cap: u64 },
    /// A server resource ran out (open files, inotify watches or instances): the request
    /// may succeed later, and says so.
    #[error("{0}")]
    Exhausted(String),
    #[error("I/O error on {path:?}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl FsError {
    /// The refusal of a change of `adding` bytes that does not fit under `cap`: it names the
    /// bytes of pending uploads when there are any (they may be what fills the volume).
    pub(crate) fn over_cap(used: u64, pending: u64, adding: u64, cap: u64) -> FsError {
        if pending > 0 {
            FsError::ReservedByUploads { used, pending, cap }
        } else {
            FsError::QuotaExceeded { used, adding, cap }
        }
    }

    /// Maps an errno from an operation on `path` to the error a user should see.
    pub fn from_errno(path: &str, e: Errno) -> FsError {
        let p = path.to_owned();
        match e {
            Errno::NOENT => FsError::NotFound(p),
            Errno::EXIST => FsError::AlreadyExists(p),
            Errno::NOTDIR => FsError::NotADirectory(p),
            Errno::ISDIR => FsError::IsADirectory(p),
            Errno::NOTEMPTY => FsError::NotEmpty(p),
            Errno::XDEV => FsError::Escapes(p),
            Errno::LOOP => FsError::SymlinkLoop(p),
            Errno::NAMETOOLONG => FsError::Invalid(format!("path {p:?} is too long")),
            Errno::MFILE | Errno::NFILE => FsError::Exhausted(format!(
                "the server has too many open files to open {p:?} now; try again later"
            )),
            Errno::NOSPC | Errno::DQUOT => FsError::QuotaExceeded {
                used: 0,
                adding: 0,
                cap: 0,
            },
            _ => FsError::Io {
                path: p,
                source: e.into(),
            },
        }
    }

    /// Maps a std I/O error (from reading a request body or a file) on `path`.
    pub fn from_io(path: &str, e: std::io::Error) -> FsError {
        match e.raw_os_error() {
            Some(code) => FsError::from_errno(path, Errno::from_raw_os_error(code)),
            None => FsError::Io {
                path: path.to_owned(),
                source: e,
            },
        }
    }

    /// The stable error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            FsError::NotFound(_) => ErrorCode::NotFound,
            FsError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            FsError::NotADirectory(_)
            | FsError::IsADirectory(_)
            | FsError::NotAFile(_)
            | FsError::NotEmpty(_)
            | FsError::SymlinkLoop(_)
            | FsError::Invalid(_) => ErrorCode::InvalidArgument,
            FsError::Escapes(_) => ErrorCode::PermissionDenied,
            FsError::Conflict(_) => ErrorCode::Conflict,
            FsError::QuotaExceeded { .. } | FsError::ReservedByUploads { .. } => {
                ErrorCode::QuotaExceeded
            }
            FsError::Exhausted(_) => ErrorCode::ResourceExhausted,
            FsError::Io { .. } => ErrorCode::Internal,
        }
    }

    /// The user-facing error, naming the volume.
    pub fn in_volume(self, volume: &str) -> Error {
        let code = self.code();
        let message = match &self {
            FsError::QuotaExceeded { cap: 0, .. } => {
                format!("volume {volume:?} is full: the write would pass its cap")
            }
            FsError::QuotaExceeded { .. } | FsError::ReservedByUploads { .. } => {
                format!("volume {volume:?}: {self}")
            }
            FsError::Io { .. } | FsError::Exhausted(_) => format!("volume {volume:?}: {self}"),
            _ => format!("{self} in volume {volume:?}"),
        };
        Error::new(code, message)
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    /// Errors travel in every `FsResult` of deep recursions (e.g. making a 2,000-level path):
    /// a variant larger than `Io` would grow every frame.
    #[test]
    fn the_error_stays_as_small_as_a_string_and_an_io_error() {
        assert_eq!(
            std::mem::size_of::<super::FsError>(),
            std::mem::size_of::<(String, std::io::Error)>()
        );
    }
}
