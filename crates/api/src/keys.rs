//! Key routes: create (the secret is in the answer, once), list (never a secret), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use nullspace_core::wire::{CreateKey, CreateToken, CreatedKey, ErrorBody, KeyInfo, KeyList};

use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::AppState;

#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_key(
    State(node): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKey>)> {
    let created = node.create_key(&caller.0, &req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(post, path = "/v1/volumes/{name}/tokens", tag = "keys", params(("name" = String, Path)),
    request_body = CreateToken,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_token(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKey>)> {
    let created = node.create_token(&caller.0, &name, &req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody)))]
pub async fn list_keys(
    State(node): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<KeyList>> {
    Ok(axum::Json(KeyList {
        keys: node.list_keys(&caller.0).await?,
    }))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyInfo), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<KeyInfo>> {
    Ok(axum::Json(node.revoke_key(&caller.0, &id).await?))
}
