//! Operator routes: tenants, their volume caps and their resource limits. Admin keys only (the node checks).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use nullspace_core::wire::{
    CreateTenant, CreatedTenant, ErrorBody, SetTenantLimits, SetVolumeCap, TenantLimits,
};
use nullspace_core::Tenant;

use crate::auth::Caller;
use crate::error::{ApiResult, Json};
use crate::AppState;

#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = CreateTenant,
    responses((status = 201, body = CreatedTenant), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_tenant(
    State(node): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<CreatedTenant>)> {
    let (tenant, key) = node.create_tenant(&caller.0, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedTenant { tenant, key }),
    ))
}

#[utoipa::path(put, path = "/v1/admin/tenants/{tenant}/volume-cap", tag = "admin", params(("tenant" = String, Path)),
    request_body = SetVolumeCap, responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn set_volume_cap(
    State(node): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(req): Json<SetVolumeCap>,
) -> ApiResult<axum::Json<Tenant>> {
    Ok(axum::Json(
        node.set_volume_cap(&caller.0, &tenant, req.cap_bytes)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}/limits", tag = "admin", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantLimits), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_limits(
    State(node): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<axum::Json<TenantLimits>> {
    Ok(axum::Json(node.tenant_limits(&caller.0, &tenant).await?))
}

#[utoipa::path(put, path = "/v1/admin/tenants/{tenant}/limits", tag = "admin", params(("tenant" = String, Path)),
    request_body = SetTenantLimits, responses((status = 200, body = TenantLimits), (status = 400, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_limits(
    State(node): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(req): Json<SetTenantLimits>,
) -> ApiResult<axum::Json<TenantLimits>> {
    Ok(axum::Json(
        node.set_tenant_limits(&caller.0, &tenant, &req).await?,
    ))
}
