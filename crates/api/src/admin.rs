//! Operator routes: tenants and their volume caps. Admin keys only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use nullspace_core::{Tenant, TenantName};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::AppState;

/// Body of `POST /v1/admin/tenants`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
}

/// A new tenant and its first key (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub key: String,
}

/// Body of `PUT /v1/admin/tenants/{tenant}/volume-cap`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVolumeCap {
    /// Cap in bytes for the tenant's new volumes.
    pub cap_bytes: u64,
}

#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = CreateTenant,
    responses((status = 201, body = CreatedTenant), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_tenant(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<CreatedTenant>)> {
    caller.require_admin()?;
    let name = TenantName::parse(&req.name)?;
    let (tenant, key) = app.store.create_tenant(&name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedTenant {
            tenant,
            key: key.expose().to_owned(),
        }),
    ))
}

#[utoipa::path(put, path = "/v1/admin/tenants/{tenant}/volume-cap", tag = "admin", params(("tenant" = String, Path)),
    request_body = SetVolumeCap, responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn set_volume_cap(
    State(app): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(req): Json<SetVolumeCap>,
) -> ApiResult<axum::Json<Tenant>> {
    caller.require_admin()?;
    let name = TenantName::parse(&tenant)?;
    if req.cap_bytes == 0 || req.cap_bytes > i64::MAX as u64 {
        return Err(nullspace_core::Error::invalid_argument(
            "cap_bytes must be between 1 and 2^63-1",
        )
        .into());
    }
    Ok(axum::Json(
        app.store
            .set_tenant_volume_cap(&name, req.cap_bytes)
            .await?,
    ))
}
