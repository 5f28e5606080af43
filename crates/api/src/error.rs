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

/// `Query` whose rejection is a JSON `invalid_argument`. A parameter that is not valid UTF-8
/// once percent-decoded is refused (a plain query decoder would turn `%ff` and `%fe` alike
/// into U+FFFD, so two names would be one).
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        if let Some(q) = parts.uri.query() {
            check_query_utf8(q)?;
        }
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// Refuses a query whose keys or values are not UTF-8 after percent-decoding.
pub(crate) fn check_query_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let raw = percent_decode(pair.as_bytes());
        if std::str::from_utf8(&raw).is_err() {
            let key = pair.split('=').next().unwrap_or_default();
            return Err(ApiError(Error::invalid_argument(format!(
                "query parameter {key:?} is not valid UTF-8: names must be UTF-8"
            ))));
        }
    }
    Ok(())
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A JSON request body: an object only (`[]`, a string or a number where an object is
/// expected is `invalid_argument`, though serde would read a struct from an array), with
/// every rejection a JSON `invalid_argument`.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(mut value) =
            axum::Json::<serde_json::Value>::from_request(req, state).await?;
        integral_numbers(&mut value);
        if !value.is_object() {
            let kind = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(ApiError(Error::invalid_argument(format!(
                "invalid JSON body: expected an object, got {kind}"
            ))));
        }
        // The error names the field it failed at (`role: unknown variant …`).
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| ApiError(Error::invalid_argument(format!("invalid JSON body: {e}"))))
    }
}

/// JSON has one number type: `2.0` is the integer 2 (as JSON Schema's `integer` says), so it
/// is read as one wherever an integer is expected. Other numbers stay as sent.
fn integral_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // Exact below 2^53 only: larger floats are already rounded, leave them alone.
                if f.abs() < 9_007_199_254_740_992.0 {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_integers() {
        let mut v = serde_json::json!({"a": 1208.0, "b": [2.5, -3.0], "c": {"d": 1e300}});
        integral_numbers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 1208, "b": [2.5, -3], "c": {"d": 1e300}})
        );
        let n: u64 = serde_json::from_value(v["a"].clone()).unwrap();
        assert_eq!(n, 1208);
    }
}
