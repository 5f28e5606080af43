//! Bearer-key authentication: every route but health and the OpenAPI document needs a key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use nullspace_core::Error;
use nullspace_state::{ApiKey, Principal};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller.
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses callers without an admin key.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.admin {
            Ok(())
        } else {
            Err(Error::permission_denied("this needs an admin key").into())
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            Error::unauthenticated("missing API key: send `Authorization: Bearer <key>` (set NULLSPACE_API_KEY or run `nullspace login`)")
        })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::unauthenticated("malformed Authorization header: expected `Bearer <key>`")
            })?;
        let principal = state.store.authenticate(&ApiKey::new(key)).await?;
        Ok(Caller(principal))
    }
}
