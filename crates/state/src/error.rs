use nullspace_core::{Error, ErrorCode};

/// Errors from the control-plane store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid or unknown API key")]
    Unauthenticated,
    #[error("control-plane database unavailable: {0}")]
    Unavailable(String),
    #[error("control-plane database error: {0}")]
    Internal(String),
    /// A database URL that cannot be used as given (unparseable, or an option with a bad value).
    #[error("invalid control-plane database URL: {0}")]
    InvalidUrl(String),
    /// A tenant limit would be passed; the message names the limit.
    #[error("{0}")]
    Exhausted(String),
    /// The change needs the volume free of sandboxes; the message names it.
    #[error("{0}")]
    InUse(String),
}

impl StateError {
    /// The same error with its message rewritten by `f` (for `Unavailable` and `Internal`,
    /// whose messages are free text; the others say exactly what they are).
    pub(crate) fn with_context(self, f: impl FnOnce(&str) -> String) -> StateError {
        match self {
            StateError::Unavailable(m) => StateError::Unavailable(f(&m)),
            StateError::Internal(m) => StateError::Internal(f(&m)),
            other => other,
        }
    }
}

impl From<StateError> for Error {
    fn from(e: StateError) -> Error {
        let code = match &e {
            StateError::NotFound(_) => ErrorCode::NotFound,
            StateError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            StateError::Unauthenticated => ErrorCode::Unauthenticated,
            StateError::Unavailable(_) => {
                metrics::counter!("nullspace_database_errors_total", "kind" => "unavailable")
                    .increment(1);
                ErrorCode::Unavailable
            }
            StateError::Internal(_) => {
                metrics::counter!("nullspace_database_errors_total", "kind" => "internal")
                    .increment(1);
                ErrorCode::Internal
            }
            StateError::InvalidUrl(_) => ErrorCode::InvalidArgument,
            StateError::Exhausted(_) => ErrorCode::ResourceExhausted,
            StateError::InUse(_) => ErrorCode::VolumeInUse,
        };
        Error::new(code, e.to_string())
    }
}
