//! Volume lifecycle routes.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nullspace_core::{
    validate_label, Error, ErrorCode, LabelSelector, Labels, Volume, VolumeField, VolumeName,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::{blocking, AppState};

/// Body of `POST /v1/volumes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// 1-63 chars of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    /// Return the existing volume (200) instead of `already_exists`.
    #[serde(default)]
    pub if_not_exists: bool,
}

/// `?fields=a,b`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldsQuery {
    /// Comma-separated fields to return (all when absent).
    pub fields: Option<String>,
}

/// `?force=&if_exists=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Release live sandbox attachments first instead of failing with `volume_in_use`.
    #[serde(default)]
    pub force: bool,
    /// Succeed when the volume does not exist.
    #[serde(default)]
    pub if_exists: bool,
}

/// `{"volumes": [...]}`
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
}

/// A volume as JSON with only the selected fields.
fn select(v: &Volume, fields: &[VolumeField]) -> Value {
    let full = serde_json::to_value(v).unwrap_or(Value::Null);
    let mut out = Map::new();
    for f in fields {
        if let Some(x) = full.get(f.as_str()) {
            out.insert(f.as_str().to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

#[utoipa::path(post, path = "/v1/volumes", tag = "volumes", request_body = CreateVolume,
    responses((status = 201, body = Volume), (status = 200, description = "exists (if_not_exists)", body = Volume),
              (status = 409, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn create_volume(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateVolume>,
) -> ApiResult<Response> {
    let name = VolumeName::parse(&req.name)?;
    for (k, v) in &req.labels {
        validate_label(k, v)?;
    }
    let tenant = &caller.0.tenant_id;
    let v = match app.store.create_volume(tenant, &name, &req.labels).await {
        Ok(v) => v,
        Err(e) => {
            let e: Error = e.into();
            if e.code == ErrorCode::AlreadyExists && req.if_not_exists {
                let v = app.store.get_volume(tenant, &name).await?;
                return Ok((StatusCode::OK, axum::Json(app.live(v))).into_response());
            }
            return Err(
                Error::new(e.code, format!("volume {:?} already exists", name.as_str())).into(),
            );
        }
    };
    let (vols, id, cap) = (app.volumes.clone(), v.id.clone(), v.cap_bytes);
    let made = blocking(move || {
        vols.create(&id, cap)
            .map_err(|e| e.in_volume(name.as_str()))
    })
    .await;
    if let Err(e) = made {
        let _ = app
            .store
            .delete_volume(tenant, &VolumeName::parse(&v.name)?)
            .await;
        return Err(e);
    }
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[utoipa::path(get, path = "/v1/volumes", tag = "volumes",
    params(("label" = Option<String>, Query, description = "k=v; repeat to require several"), FieldsQuery),
    responses((status = 200, body = VolumeList), (status = 400, body = ErrorBody)))]
pub async fn list_volumes(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<axum::Json<Value>> {
    let mut selectors = Vec::new();
    let mut fields = None;
    for (k, v) in form_pairs(q.as_deref().unwrap_or(""))? {
        match k.as_str() {
            "label" => selectors.push(LabelSelector::parse(&v)?),
            "fields" => fields = Some(v),
            other => {
                return Err(
                    Error::invalid_argument(format!("unknown query parameter {other:?}")).into(),
                )
            }
        }
    }
    let fields = VolumeField::parse_list(fields.as_deref().unwrap_or(""))?;
    let vols = app
        .store
        .list_volumes(&caller.0.tenant_id, &selectors)
        .await?;
    let mut list = Vec::with_capacity(vols.len());
    for v in vols {
        app.catch_up(&v).await;
        list.push(select(&app.live(v), &fields));
    }
    Ok(axum::Json(serde_json::json!({ "volumes": list })))
}

fn form_pairs(q: &str) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(q)
        .map_err(|e| Error::invalid_argument(format!("invalid query string: {e}")).into())
}

#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), FieldsQuery),
    responses((status = 200, body = Volume), (status = 404, body = ErrorBody)))]
pub async fn get_volume(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> ApiResult<axum::Json<Value>> {
    let fields = VolumeField::parse_list(q.fields.as_deref().unwrap_or(""))?;
    let v = app.volume(&caller.0, &name).await?;
    Ok(axum::Json(select(&v, &fields)))
}

#[utoipa::path(delete, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_volume(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let vname = VolumeName::parse(&name)?;
    match app.store.get_volume(&caller.0.tenant_id, &vname).await {
        Ok(v) => crate::sandboxes::release_volume(&app, &v.id, &name, q.force).await?,
        Err(e) => {
            let e: Error = e.into();
            if e.code != ErrorCode::NotFound {
                return Err(e.into());
            }
        }
    }
    let v = match app.store.delete_volume(&caller.0.tenant_id, &vname).await {
        Ok(v) => v,
        Err(e) => {
            let e: Error = e.into();
            if e.code == ErrorCode::NotFound && q.if_exists {
                return Ok(StatusCode::NO_CONTENT);
            }
            return Err(e.into());
        }
    };
    let (vols, id) = (app.volumes.clone(), v.id.clone());
    blocking(move || vols.destroy(&id).map_err(|e| e.in_volume(&name))).await?;
    crate::peers::volume_deleted(&app, &v.id).await;
    Ok(StatusCode::NO_CONTENT)
}
