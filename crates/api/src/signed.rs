//! Signed URLs: a download (GET) or upload (PUT) of one path of one volume, with no API key.
//!
//! The node signs and verifies (HMAC-SHA256 over the method, tenant and volume ids, normalised
//! path and expiry); this module builds the URL and accepts only the exact spellings that were
//! signed. Every failure is the same bare 403.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use nullspace_core::wire::{SignRequest, SignedUrl};
use nullspace_core::{Error, VolumePath};
use nullspace_node::data::WriteOptions;
use nullspace_node::{OpenVolume, MAX_EXPIRY_SECS};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::files::{parse_path, receive_file, stream_file};
use crate::AppState;

#[utoipa::path(post, path = "/v1/volumes/{name}/files/url", operation_id = "sign_url", tag = "files", params(("name" = String, Path)),
    request_body = SignRequest, responses((status = 200, body = SignedUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn sign(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<SignRequest>,
) -> ApiResult<axum::Json<SignedUrl>> {
    let v = node.volumes().get(&caller.0, &name).await?;
    let path = parse_path("path", &req.path)?;
    let method = req.method.to_ascii_uppercase();
    if method != "GET" && method != "PUT" {
        return Err(Error::invalid_argument(format!(
            "method must be GET or PUT, not {:?}",
            req.method
        ))
        .into());
    }
    if req.expires_in == 0 || req.expires_in > MAX_EXPIRY_SECS {
        return Err(Error::invalid_argument(format!(
            "expires_in must be between 1 and {MAX_EXPIRY_SECS} seconds (7 days), not {}",
            req.expires_in
        ))
        .into());
    }
    let expires_at = Utc::now() + chrono::Duration::seconds(req.expires_in as i64);
    let expires = expires_at.timestamp();
    let (sig, scope) = node
        .volumes()
        .sign(&caller.0, &v, &method, &path, expires)?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:7420");
    let expires = expires.to_string();
    let mut fields = vec![("path", path.as_str()), ("expires", &expires)];
    if !scope.is_root() {
        fields.push(("scope", scope.as_str()));
    }
    fields.push(("signature", &sig));
    let query = serde_urlencoded::to_string(fields).map_err(|e| Error::internal(e.to_string()))?;
    let url = format!(
        "http://{host}/v1/signed/{}/{}?{query}",
        caller.0.tenant_id, v.name
    );
    Ok(axum::Json(SignedUrl {
        url,
        method,
        expires_at,
    }))
}

/// `?path=&expires=&signature=`, and `scope=` for a URL made by a volume token with a path
/// (it is signed too: the URL reaches nothing outside that directory).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    pub path: Option<String>,
    pub expires: Option<String>,
    pub scope: Option<String>,
    pub signature: Option<String>,
}

impl SignedQuery {
    /// Parses the raw query: exactly these three keys, each once; anything else is `None`
    /// (a bare 403), never a parser's message.
    fn parse(raw: Option<&str>) -> Option<SignedQuery> {
        // Names that are not UTF-8 would be decoded lossily, so two paths would share a URL.
        crate::error::check_query_utf8(raw?).ok()?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw?).ok()?;
        let mut q = SignedQuery {
            path: None,
            expires: None,
            scope: None,
            signature: None,
        };
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "path" => &mut q.path,
                "expires" => &mut q.expires,
                "scope" => &mut q.scope,
                "signature" => &mut q.signature,
                _ => return None,
            };
            if slot.replace(v).is_some() {
                return None;
            }
        }
        Some(q)
    }
}

fn forbidden() -> Response {
    let e = ApiError(Error::permission_denied("invalid or expired signed URL"));
    let mut r = e.into_response();
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// Opens the volume of a signed request; `None` means 403 (whatever the reason).
async fn verified(
    node: &AppState,
    method: &Method,
    tenant_id: &str,
    volume: &str,
    raw: Option<&str>,
) -> Option<(Result<OpenVolume, Error>, VolumePath)> {
    let q = SignedQuery::parse(raw)?;
    let (path, expires, sig) = (
        q.path.as_deref()?,
        q.expires.as_deref()?,
        q.signature.as_deref()?,
    );
    // Only the exact spellings that were signed: the normalised path, a decimal expiry and a
    // lower-case hex signature. Any other spelling is a changed URL.
    let parsed = VolumePath::parse(path).ok()?;
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parsed.as_str() != path || !lower_hex(sig) || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absent means the whole volume; present, it must be the normalised spelling of a
    // directory other than `/` (the spelling that was signed).
    let scope = match q.scope.as_deref() {
        None => VolumePath::root(),
        Some(s) => {
            let scope = VolumePath::parse(s).ok()?;
            if scope.as_str() != s || scope.is_root() {
                return None;
            }
            scope
        }
    };
    let expires: i64 = expires.parse().ok()?;
    // Canonical decimal only: `0123` reads as 123 but is not the spelling that was signed.
    if expires.to_string() != q.expires.as_deref()? {
        return None;
    }
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let vol = node
        .volumes()
        .open_signed(
            volume,
            &nullspace_node::SignedFields {
                method: m,
                tenant_id,
                volume_id: "",
                path: &parsed,
                expires,
                scope: &scope,
            },
            sig,
        )
        .await?;
    Some((vol, parsed))
}

#[utoipa::path(get, path = "/v1/signed/{tenant}/{name}", tag = "files", security(),
    params(("tenant" = String, Path), ("name" = String, Path), SignedQuery),
    responses((status = 200, description = "file content"), (status = 206), (status = 403, body = ErrorBody)))]
pub async fn signed_get(
    State(node): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some((vol, path)) = verified(&node, &Method::GET, &tenant, &name, q.as_deref()).await
    else {
        return forbidden();
    };
    let vol = match vol {
        Ok(v) => v,
        Err(e) => return ApiError(e).into_response(),
    };
    stream_file(&vol, path, &headers, None, None)
        .await
        .into_response()
}

#[utoipa::path(put, path = "/v1/signed/{tenant}/{name}", tag = "files", security(),
    params(("tenant" = String, Path), ("name" = String, Path), SignedQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = nullspace_core::FileStat), (status = 403, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn signed_put(
    State(node): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let Some((vol, path)) = verified(&node, &Method::PUT, &tenant, &name, q.as_deref()).await
    else {
        return forbidden();
    };
    let vol = match vol {
        Ok(v) => v,
        Err(e) => return ApiError(e).into_response(),
    };
    let opts = WriteOptions {
        overwrite: true,
        if_match: None,
    };
    match receive_file(&vol, path, opts, body).await {
        Ok(stat) => axum::Json(stat).into_response(),
        Err(e) => e.into_response(),
    }
}
