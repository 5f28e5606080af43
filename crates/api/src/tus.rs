//! tus 1.0 resumable uploads into a volume: core protocol plus the creation,
//! creation-with-upload, termination, checksum and expiration extensions.
//! Endpoint: `/v1/volumes/{name}/uploads`; the destination comes from the `path` key of
//! `Upload-Metadata` (or `filename`, meaning that name under `/`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use nullspace_core::wire::{UploadInfo, UploadList};
use nullspace_core::{Error, ErrorCode, VolumePath};
use nullspace_node::data::{ChunkChecksum, UploadError, UploadState};
use nullspace_node::OpenVolume;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration";
const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";
/// How long an unfinished upload is kept (and its length reserved against the cap) at most:
/// it expires this long after its creation, whatever arrives meanwhile.
pub const UPLOAD_TTL_HOURS: i64 = 24;

/// A tus answer: a status, tus headers, and (for errors) a JSON error body.
struct Tus {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    error: Option<Error>,
}

impl Tus {
    fn ok(status: StatusCode) -> Tus {
        Tus {
            status,
            headers: Vec::new(),
            error: None,
        }
    }

    /// A refusal. It may come before the request body was read, so the connection is closed
    /// (a keep-alive client would otherwise send its next request into an unread body).
    fn fail(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Tus {
        Tus {
            status,
            headers: vec![("connection", "close".into())],
            error: Some(Error::new(code, message)),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Tus {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for Tus {
    fn into_response(self) -> Response {
        let mut resp = match self.error {
            Some(e) => {
                let mut r = ApiError(e).into_response();
                *r.status_mut() = self.status;
                r
            }
            None => self.status.into_response(),
        };
        let h = resp.headers_mut();
        h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

impl From<ApiError> for Tus {
    fn from(e: ApiError) -> Tus {
        Tus {
            status: crate::error::status_of(e.0.code),
            headers: vec![("connection", "close".into())],
            error: Some(e.0),
        }
    }
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn upload_error(e: UploadError, volume: &str, state_offset: Option<u64>) -> Tus {
    let msg = e.to_string();
    match e {
        UploadError::NotFound(_) => Tus::fail(StatusCode::NOT_FOUND, ErrorCode::NotFound, msg),
        UploadError::Expired(_) => Tus::fail(StatusCode::GONE, ErrorCode::NotFound, msg),
        UploadError::OffsetMismatch { current, .. } => {
            Tus::fail(StatusCode::CONFLICT, ErrorCode::Conflict, msg)
                .header("upload-offset", current.to_string())
        }
        UploadError::ChecksumMismatch => {
            let t = Tus::fail(
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                ErrorCode::InvalidArgument,
                msg,
            );
            match state_offset {
                Some(o) => t.header("upload-offset", o.to_string()),
                None => t,
            }
        }
        UploadError::TooLong(_) => Tus::fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            msg,
        ),
        UploadError::Busy(_) => Tus::fail(StatusCode::LOCKED, ErrorCode::Conflict, msg),
        UploadError::Fs(fs) => ApiError(fs.in_volume(volume)).into(),
    }
}

/// Every request but OPTIONS must speak our tus version.
fn check_version(headers: &HeaderMap) -> Result<(), Tus> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(Tus::fail(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::InvalidArgument,
            format!(
                "unsupported or missing Tus-Resumable header: this server speaks tus {TUS_VERSION}"
            ),
        )
        .header("tus-version", TUS_VERSION)),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Tus> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                Tus::fail(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidArgument,
                    format!("invalid {name} header"),
                )
            }),
    }
}

/// Parses `Upload-Metadata: key base64,key2 base64,flag`.
fn parse_metadata(raw: &str) -> Result<Vec<(String, String)>, Tus> {
    let bad = |m: String| Tus::fail(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, m);
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default().to_owned();
        let value = match it.next() {
            Some(v) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .map_err(|_| bad(format!("Upload-Metadata value of {key:?} is not base64")))?;
                String::from_utf8(bytes)
                    .map_err(|_| bad(format!("Upload-Metadata value of {key:?} is not UTF-8")))?
            }
            None => String::new(),
        };
        out.push((key, value));
    }
    Ok(out)
}

fn destination(metadata: &[(String, String)]) -> Result<VolumePath, Tus> {
    let bad = |m: String| Tus::fail(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, m);
    if let Some((_, p)) = metadata.iter().find(|(k, _)| k == "path") {
        return VolumePath::parse(p)
            .map_err(|e| bad(format!("Upload-Metadata path: {}", e.message)));
    }
    if let Some((_, f)) = metadata.iter().find(|(k, _)| k == "filename") {
        if f.is_empty() || f.contains('/') {
            return Err(bad(format!(
                "Upload-Metadata filename {f:?} must be a plain file name"
            )));
        }
        return VolumePath::root()
            .join_relative(f)
            .map_err(|e| bad(format!("Upload-Metadata filename: {}", e.message)));
    }
    Err(bad(
        "Upload-Metadata needs a `path` (or `filename`) key naming the destination".into(),
    ))
}

fn parse_checksum(headers: &HeaderMap) -> Result<Option<ChunkChecksum>, Tus> {
    let Some(v) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let bad = |m: &str| {
        Tus::fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            m.to_owned(),
        )
    };
    let s = v
        .to_str()
        .map_err(|_| bad("invalid Upload-Checksum header"))?;
    let (algo, digest) = s
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("Upload-Checksum must be `<algorithm> <base64 digest>`"))?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| bad("Upload-Checksum digest is not base64"))?;
    match algo {
        "sha1" => Ok(Some(ChunkChecksum::Sha1(digest))),
        "sha256" => Ok(Some(ChunkChecksum::Sha256(digest))),
        _ => Err(bad(
            "unsupported Upload-Checksum algorithm: use sha1 or sha256",
        )),
    }
}

fn state_headers(t: Tus, s: &UploadState) -> Tus {
    let t = t
        .header("upload-offset", s.offset.to_string())
        .header("upload-expires", http_date(s.expires_at));
    match &s.completed {
        Some(stat) => t.header("etag", format!("\"{}\"", stat.etag)),
        None => t,
    }
}

/// The body of a PATCH (or a creation-with-upload POST), appended on the blocking pool.
async fn append(
    vol: &OpenVolume,
    id: String,
    offset: u64,
    body: Body,
    sum: Option<ChunkChecksum>,
) -> Result<UploadState, Tus> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    match vol.upload_append(id, offset, reader, sum).await {
        Ok(r) => r.map_err(|e| upload_error(e, vol.name(), Some(offset))),
        Err(e) => Err(ApiError(e).into()),
    }
}

/// Flattens a data-plane upload call's two layers of errors into a tus answer.
fn settle<T>(r: Result<Result<T, UploadError>, Error>, volume: &str) -> Result<T, Tus> {
    match r {
        Ok(r) => r.map_err(|e| upload_error(e, volume, None)),
        Err(e) => Err(ApiError(e).into()),
    }
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(OFFSET_CONTENT_TYPE))
}

fn discovery() -> Tus {
    Tus::ok(StatusCode::NO_CONTENT)
        .header("tus-version", TUS_VERSION)
        .header("tus-extension", EXTENSIONS)
        .header("tus-checksum-algorithm", "sha1,sha256")
}

#[utoipa::path(options, path = "/v1/volumes/{name}/uploads", operation_id = "tus_discovery", tag = "uploads", params(("name" = String, Path)), security(),
    responses((status = 204, description = "tus discovery: Tus-Version, Tus-Extension, Tus-Checksum-Algorithm")))]
pub async fn options() -> Response {
    discovery().into_response()
}

#[utoipa::path(post, path = "/v1/volumes/{name}/uploads", operation_id = "create_upload", tag = "uploads", params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "optional first chunk (creation-with-upload)"),
    responses((status = 201, description = "created; Location names the upload"), (status = 412, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn create(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    create_inner(node, caller, name, headers, body)
        .await
        .unwrap_or_else(|t| t)
        .into_response()
}

async fn create_inner(
    node: AppState,
    caller: Caller,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let fail = |t: Tus| t.into_response();
    check_version(&headers).map_err(fail)?;
    // Concatenation is not an advertised extension: a partial upload taken as a plain one
    // would publish a fragment at the destination.
    if headers.contains_key("upload-concat") {
        return Err(fail(Tus::fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            "Upload-Concat is not supported: this server does not offer the concatenation extension",
        )));
    }
    let length = header_u64(&headers, "upload-length")
        .map_err(fail)?
        .ok_or_else(|| {
            fail(Tus::fail(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                "Upload-Length is required (deferred length is not supported)",
            ))
        })?;
    let raw_meta = headers
        .get("upload-metadata")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let meta = parse_metadata(raw_meta.as_deref().unwrap_or("")).map_err(fail)?;
    let dest = destination(&meta).map_err(fail)?;
    let vol = node
        .volumes()
        .open(&caller.0, &name)
        .await
        .map_err(|e| fail(ApiError(e).into()))?;
    let vname = vol.name().to_owned();
    if length > vol.cap() {
        return Err(fail(Tus::fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "Upload-Length {length} is larger than the cap of volume {vname:?} ({} bytes)",
                vol.cap()
            ),
        )));
    }
    let created = vol
        .upload_create(dest, length, raw_meta, Duration::hours(UPLOAD_TTL_HOURS))
        .await;
    let mut state = settle(created, &vname).map_err(fail)?;
    let location = format!("/v1/volumes/{vname}/uploads/{}", state.id);
    if is_offset_stream(&headers) && length > 0 {
        let sum = parse_checksum(&headers).map_err(fail)?;
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        match vol.upload_append(state.id.clone(), 0, reader, sum).await {
            Ok(Ok(s)) => state = s,
            // The upload exists: report it with its (unchanged) offset; the client resumes.
            Ok(Err(UploadError::ChecksumMismatch)) => {
                return Err(fail(
                    upload_error(UploadError::ChecksumMismatch, &vname, Some(0))
                        .header("location", location),
                ))
            }
            Ok(Err(e)) => return Err(fail(upload_error(e, &vname, None))),
            Err(e) => return Err(fail(ApiError(e).into())),
        }
    }
    Ok(state_headers(Tus::ok(StatusCode::CREATED), &state)
        .header("location", location)
        .into_response())
}

#[utoipa::path(head, path = "/v1/volumes/{name}/uploads/{id}", operation_id = "upload_offset", tag = "uploads", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires"), (status = 404), (status = 410)))]
pub async fn head(
    State(node): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let r: Result<Tus, Tus> = async {
        check_version(&headers)?;
        let vol = node
            .volumes()
            .open(&caller.0, &name)
            .await
            .map_err(ApiError)?;
        let state = settle(vol.upload_state(id.clone()).await, vol.name())?;
        let mut t = state_headers(Tus::ok(StatusCode::OK), &state)
            .header("upload-length", state.length.to_string())
            .header("cache-control", "no-store");
        if let Some(m) = &state.metadata {
            t = t.header("upload-metadata", m.clone());
        }
        Ok(t)
    }
    .await;
    let mut resp = r.unwrap_or_else(|t| t).into_response();
    // HEAD answers carry no body.
    *resp.body_mut() = Body::empty();
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

#[utoipa::path(patch, path = "/v1/volumes/{name}/uploads/{id}", operation_id = "append_upload", tag = "uploads", params(("name" = String, Path), ("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "chunk stored; Upload-Offset is the new offset"), (status = 409, body = ErrorBody),
              (status = 412, body = ErrorBody), (status = 415, body = ErrorBody), (status = 460, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn patch(
    State(node): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r: Result<Tus, Tus> = async {
        check_version(&headers)?;
        if !is_offset_stream(&headers) {
            return Err(Tus::fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidArgument,
                format!("PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}"),
            ));
        }
        let offset = header_u64(&headers, "upload-offset")?.ok_or_else(|| {
            Tus::fail(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                "Upload-Offset is required",
            )
        })?;
        let sum = parse_checksum(&headers)?;
        let vol = node
            .volumes()
            .open(&caller.0, &name)
            .await
            .map_err(ApiError)?;
        let state = append(&vol, id, offset, body, sum).await?;
        Ok(state_headers(Tus::ok(StatusCode::NO_CONTENT), &state))
    }
    .await;
    r.unwrap_or_else(|t| t).into_response()
}

#[utoipa::path(delete, path = "/v1/volumes/{name}/uploads/{id}", operation_id = "terminate_upload", tag = "uploads", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "terminated"), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn terminate(
    State(node): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let r: Result<Tus, Tus> = async {
        check_version(&headers)?;
        let vol = node
            .volumes()
            .open(&caller.0, &name)
            .await
            .map_err(ApiError)?;
        settle(vol.upload_delete(id).await, vol.name())?;
        Ok(Tus::ok(StatusCode::NO_CONTENT))
    }
    .await;
    r.unwrap_or_else(|t| t).into_response()
}

#[utoipa::path(get, path = "/v1/volumes/{name}/uploads", operation_id = "list_uploads", tag = "uploads", params(("name" = String, Path)),
    responses((status = 200, body = UploadList), (status = 404, body = ErrorBody)))]
/// The volume's uploads still waiting for bytes (each reserves its length against the cap).
pub async fn list(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<UploadList>, ApiError> {
    let vol = node.volumes().open(&caller.0, &name).await?;
    let uploads = vol
        .pending_uploads()
        .await?
        .into_iter()
        .map(|s| UploadInfo {
            id: s.id,
            path: s.path,
            offset: s.offset,
            length: s.length,
            created_at: s.created_at,
            expires_at: s.expires_at,
        })
        .collect();
    Ok(Json(UploadList { uploads }))
}

#[utoipa::path(options, path = "/v1/volumes/{name}/uploads/{id}", operation_id = "tus_upload_discovery", tag = "uploads", params(("name" = String, Path), ("id" = String, Path)), security(),
    responses((status = 204, description = "tus discovery")))]
pub async fn options_upload() -> Response {
    discovery().into_response()
}
