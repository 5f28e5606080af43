//! The one error taxonomy every layer maps into; `api` turns it into an HTTP status in one place.

use std::fmt;

/// A stable, user-visible error code (the SPEC's "Errors" section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Conflict,
    VolumeInUse,
    PayloadTooLarge,
    QuotaExceeded,
    /// A tenant or server limit other than a volume's cap (sandboxes, volumes, memory,
    /// connections); the message names the limit.
    ResourceExhausted,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, in SPEC order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::VolumeInUse,
        ErrorCode::PayloadTooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::VolumeInUse => "volume_in_use",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses a wire name back into a code.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a client may retry the same request and expect it to succeed later.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code and a message that names the volume, path or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! ctor {
    ($($fn:ident => $code:ident),* $(,)?) => {
        impl Error {
            $(
                #[doc = concat!("An error with code `", stringify!($fn), "`.")]
                pub fn $fn(message: impl Into<String>) -> Error {
                    Error { code: ErrorCode::$code, message: message.into() }
                }
            )*
        }
    };
}

ctor! {
    invalid_argument => InvalidArgument,
    unauthenticated => Unauthenticated,
    permission_denied => PermissionDenied,
    not_found => NotFound,
    already_exists => AlreadyExists,
    conflict => Conflict,
    volume_in_use => VolumeInUse,
    payload_too_large => PayloadTooLarge,
    quota_exceeded => QuotaExceeded,
    resource_exhausted => ResourceExhausted,
    unavailable => Unavailable,
    internal => Internal,
}

impl Error {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
        assert!(ErrorCode::Unavailable.retryable());
        assert!(!ErrorCode::NotFound.retryable());
    }
}
