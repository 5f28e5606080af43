//! Sandbox routes: each parses its request and calls the node's sandbox service
//! (`nullspace_node::SandboxService`), which owns records, the runtime and their agreement.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nullspace_core::wire::{
    Attachment, AttachmentList, CreateSandbox, ErrorBody, ExecOutput, ExecRequest, Sandbox,
    SandboxDirList, SandboxList, VolumeMount,
};
use nullspace_node::Lifecycle;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiResult, Json, Query};
use crate::AppState;

/// `?path=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// Absolute path inside the sandbox.
    pub path: String,
}

/// `?mount_path=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetachQuery {
    /// The mount path of the attachment to release.
    pub mount_path: String,
}

#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandbox,
    responses((status = 201, body = Sandbox), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn create_sandbox(
    State(node): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateSandbox>,
) -> ApiResult<Response> {
    let sb = node.sandboxes().create(&caller.0, req).await?;
    Ok((StatusCode::CREATED, axum::Json(sb)).into_response())
}

#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes",
    responses((status = 200, body = SandboxList), (status = 503, body = ErrorBody)))]
pub async fn list_sandboxes(
    State(node): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SandboxList>> {
    let sandboxes = node.sandboxes().list(&caller.0).await?;
    Ok(axum::Json(SandboxList { sandboxes }))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody)))]
pub async fn get_sandbox(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    Ok(axum::Json(node.sandboxes().get(&caller.0, &id).await?))
}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn destroy_sandbox(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    node.sandboxes().destroy(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/exec", operation_id = "exec_in_sandbox", tag = "sandboxes", params(("id" = String, Path)),
    request_body = ExecRequest,
    responses((status = 200, body = ExecOutput), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn exec(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ExecRequest>,
) -> ApiResult<axum::Json<ExecOutput>> {
    Ok(axum::Json(
        node.sandboxes().exec(&caller.0, &id, body).await?,
    ))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/content", operation_id = "read_sandbox_file", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn read_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let data = node.sandboxes().read_file(&caller.0, &id, q.path).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        data,
    )
        .into_response())
}

#[utoipa::path(put, path = "/v1/sandboxes/{id}/files/content", operation_id = "write_sandbox_file", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn write_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    node.sandboxes()
        .write_file(&caller.0, &id, q.path, body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/list", operation_id = "list_sandbox_files", tag = "sandboxes", params(("id" = String, Path), PathQuery),
    responses((status = 200, body = SandboxDirList), (status = 404, body = ErrorBody)))]
pub async fn list_files(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<axum::Json<SandboxDirList>> {
    let entries = node.sandboxes().list_files(&caller.0, &id, q.path).await?;
    Ok(axum::Json(SandboxDirList { entries }))
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/attachments", operation_id = "attach_volume", tag = "sandboxes", params(("id" = String, Path)),
    request_body = VolumeMount,
    responses((status = 201, body = Attachment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn attach(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(m): Json<VolumeMount>,
) -> ApiResult<Response> {
    let att = node.sandboxes().attach(&caller.0, &id, m).await?;
    Ok((StatusCode::CREATED, axum::Json(att)).into_response())
}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}/attachments", operation_id = "detach_volume", tag = "sandboxes", params(("id" = String, Path), DetachQuery),
    responses((status = 200, body = Attachment), (status = 404, body = ErrorBody)))]
pub async fn detach(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DetachQuery>,
) -> ApiResult<axum::Json<Attachment>> {
    Ok(axum::Json(
        node.sandboxes()
            .detach(&caller.0, &id, &q.mount_path)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/sandboxes/{id}/attachments", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = AttachmentList), (status = 404, body = ErrorBody)))]
pub async fn list_attachments(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AttachmentList>> {
    let attachments = node.sandboxes().attachments(&caller.0, &id).await?;
    Ok(axum::Json(AttachmentList { attachments }))
}

/// Runs a lifecycle operation and answers the sandbox record.
async fn lifecycle(
    node: AppState,
    caller: Caller,
    id: String,
    op: Lifecycle,
) -> ApiResult<axum::Json<Sandbox>> {
    Ok(axum::Json(
        node.sandboxes().lifecycle(&caller.0, &id, op).await?,
    ))
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", operation_id = "pause_sandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(node, caller, id, Lifecycle::Pause).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", operation_id = "resume_sandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(node, caller, id, Lifecycle::Resume).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/hibernate", operation_id = "hibernate_sandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn hibernate(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Sandbox>> {
    lifecycle(node, caller, id, Lifecycle::Hibernate).await
}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/fork", operation_id = "fork_sandbox", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 201, body = Sandbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn fork(
    State(node): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let sb = node.sandboxes().fork(&caller.0, &id).await?;
    Ok((StatusCode::CREATED, axum::Json(sb)).into_response())
}
