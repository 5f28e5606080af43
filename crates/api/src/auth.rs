//! Bearer-key authentication: every route but health, the OpenAPI document and signed URLs
//! needs a key. The header is parsed here; the node resolves the key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use nullspace_core::Error;
use nullspace_node::Principal;

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Caller, ApiError> {
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
        Ok(Caller(node.authenticate(key).await?))
    }
}
