//! Volume lifecycle routes.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nullspace_core::wire::{CreateVolume, RenameVolume, VolumeList};
use nullspace_core::{Error, LabelSelector, Volume, VolumeField};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::AppState;

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
    State(node): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateVolume>,
) -> ApiResult<Response> {
    let (v, created) = node
        .volumes()
        .create(&caller.0, &req.name, &req.labels, req.if_not_exists)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(v)).into_response())
}

#[utoipa::path(get, path = "/v1/volumes", tag = "volumes",
    params(("label" = Option<String>, Query, description = "k=v; repeat to require several"), FieldsQuery),
    responses((status = 200, body = VolumeList), (status = 400, body = ErrorBody)))]
pub async fn list_volumes(
    State(node): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<axum::Json<VolumeList<Value>>> {
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
    let volumes = node
        .volumes()
        .list(&caller.0, &selectors)
        .await?
        .iter()
        .map(|v| select(v, &fields))
        .collect();
    Ok(axum::Json(VolumeList { volumes }))
}

fn form_pairs(q: &str) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(q)
        .map_err(|e| Error::invalid_argument(format!("invalid query string: {e}")).into())
}

#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), FieldsQuery),
    responses((status = 200, body = Volume), (status = 404, body = ErrorBody)))]
pub async fn get_volume(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<FieldsQuery>,
) -> ApiResult<axum::Json<Value>> {
    let fields = VolumeField::parse_list(q.fields.as_deref().unwrap_or(""))?;
    let v = node.volumes().get(&caller.0, &name).await?;
    Ok(axum::Json(select(&v, &fields)))
}

#[utoipa::path(delete, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_volume(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    node.delete_volume(&caller.0, &name, q.force, q.if_exists)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/volumes/{name}/rename", tag = "volumes", params(("name" = String, Path)),
    request_body = RenameVolume,
    responses((status = 200, body = Volume, description = "renamed: the same volume under its new name"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already_exists, or volume_in_use while a sandbox has it attached")))]
pub async fn rename_volume(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<RenameVolume>,
) -> ApiResult<axum::Json<Volume>> {
    Ok(axum::Json(
        node.volumes()
            .rename(&caller.0, &name, &req.new_name)
            .await?,
    ))
}
