//! The edge of the error taxonomy: one function maps a code to an HTTP status.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use nullspace_core::wire::{ErrorBody, ErrorDetail};
use nullspace_core::{Error, ErrorCode};

/// An error on its way to the client as `{"error": {code, message, retryable}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

/// The HTTP status of each error code (the SPEC's "Errors" table).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists | ErrorCode::Conflict | ErrorCode::VolumeInUse => {
            StatusCode::CONFLICT
        }
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Error { code, message } = self.0;
        match code {
            // Server faults are logged with their detail; client mistakes are not errors of ours.
            ErrorCode::Internal | ErrorCode::Unavailable => {
                tracing::error!(%code, %message, "request failed")
            }
            _ => tracing::debug!(%code, %message, "request refused"),
        }
        let message = if code == ErrorCode::Internal {
            "internal server error".to_owned()
        } else {
            message
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message,
                retryable: code.retryable(),
            },
        };
        (status_of(code), axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError(Error::invalid_argument(format!(
            "invalid query parameters: {}",
            r.body_text()
        )))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError(Error::invalid_argument(format!(
            "invalid JSON body: {}",
            r.body_text()
        )))
    }
}

/// `Query` whose rejection is a JSON `invalid_argument`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `Json` whose rejection is a JSON `invalid_argument`.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);
