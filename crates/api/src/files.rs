//! The direct file API: `/v1/volumes/{name}/files/...`.

use std::io::{Seek, SeekFrom};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use nullspace_core::wire::{
    BatchResult, CopyRequest, Exists, ListPage, MkdirRequest, MoveRequest, PathEntry,
};
use nullspace_core::{Error, FileStat, VolumePath};
use nullspace_node::data::{ArchiveFormat, ListOptions, WriteOptions};
use nullspace_node::OpenVolume;
use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};
use crate::AppState;

const READ_CHUNK: usize = 256 * 1024;

fn default_true() -> bool {
    true
}

pub(crate) fn parse_path(field: &str, p: &str) -> Result<VolumePath, Error> {
    VolumePath::parse(p).map_err(|e| Error::invalid_argument(format!("{field}: {}", e.message)))
}

/// `?path=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// Absolute path inside the volume.
    pub path: String,
}

/// `?path=&offset=&length=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    pub path: String,
    /// First byte to return.
    pub offset: Option<u64>,
    /// Number of bytes to return (to the end when absent).
    pub length: Option<u64>,
}

/// `?path=&overwrite=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    pub path: String,
    /// Replace an existing file (default true); false gives `already_exists`.
    #[serde(default = "default_true")]
    pub overwrite: bool,
}

/// `?path=&recursive=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

/// `?path=&recursive=&glob=&limit=&cursor=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    /// Shell glob; without `/` it matches names, with `/` paths relative to `path`.
    pub glob: Option<String>,
    /// Page size, 1..=100000 (default 1000).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated entry fields (`path,type,size,mode,mtime,etag`; all when absent).
    /// With only `path` and `type`, entries are not stat'ed: the fastest listing.
    pub fields: Option<String>,
}

const ENTRY_FIELDS: [&str; 6] = ["path", "type", "size", "mode", "mtime", "etag"];

fn root() -> String {
    "/".into()
}

/// `?path=` for batches: the directory the archive's paths are relative to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    #[serde(default = "root")]
    pub path: String,
}

/// What a `Range` header asks of a file of a given size (RFC 9110 §14.1.2).
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// Bytes `start..end` (end exclusive, never past the file).
    Part(u64, u64),
    /// No byte of the range is in the file: `416` with `Content-Range: bytes */SIZE`.
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` against a file size. Positions of any
/// size are accepted (a last position past the end means the end); a syntax error, a last
/// position before the first or several ranges are `invalid_argument`.
fn parse_range(h: &HeaderValue, size: u64) -> Result<ByteRange, Error> {
    let bad = || {
        Error::invalid_argument(format!(
            "unsupported Range header {h:?}: use bytes=START-END"
        ))
    };
    let s = h
        .to_str()
        .map_err(|_| bad())?
        .strip_prefix("bytes=")
        .ok_or_else(bad)?;
    if s.contains(',') {
        return Err(Error::invalid_argument(
            "multiple byte ranges are not supported",
        ));
    }
    let digits = |t: &str| -> Result<u64, Error> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // More digits than u64 holds is still a position: past any file's end.
        Ok(t.parse().unwrap_or(u64::MAX))
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    Ok(match (a.trim(), b.trim()) {
        ("", n) => match digits(n)? {
            0 => ByteRange::Unsatisfiable,
            _ if size == 0 => ByteRange::Unsatisfiable,
            n => ByteRange::Part(size - n.min(size), size),
        },
        (a, "") => match digits(a)? {
            a if a >= size => ByteRange::Unsatisfiable,
            a => ByteRange::Part(a, size),
        },
        (a, b) => {
            let (a, b) = (digits(a)?, digits(b)?);
            if b < a {
                return Err(bad());
            }
            if a >= size {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(a, b.min(size - 1) + 1)
            }
        }
    })
}

/// `416 Range Not Satisfiable` with `Content-Range: bytes */SIZE`.
fn unsatisfiable(size: u64) -> ApiResult<Response> {
    let body = serde_json::json!({"error": {
        "code": "invalid_argument",
        "message": format!("range not satisfiable: the file has {size} bytes"),
        "retryable": false,
    }});
    Response::builder()
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_RANGE, format!("bytes */{size}"))
        .body(Body::from(body.to_string()))
        .map_err(|e| Error::internal(e.to_string()).into())
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/content", tag = "files", params(("name" = String, Path), ReadQuery),
    responses((status = 200, description = "file content", content_type = "application/octet-stream"),
              (status = 206, description = "a byte range"), (status = 404, body = ErrorBody)))]
pub async fn read_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let vol = node.volumes().open(&caller.0, &name).await?;
    let path = parse_path("path", &q.path)?;
    stream_file(&vol, path, &headers, q.offset, q.length).await
}

/// Answers with a file's content: whole, a `Range`, or `offset`/`length`; streamed.
pub(crate) async fn stream_file(
    vol: &OpenVolume,
    path: VolumePath,
    headers: &HeaderMap,
    offset: Option<u64>,
    length: Option<u64>,
) -> ApiResult<Response> {
    let (file, stat) = vol.open_read(path).await?;
    let size = stat.size;
    // If-None-Match comes before Range (RFC 9110 §13.2.2).
    if not_modified(headers, &stat.etag)? {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, format!("\"{}\"", stat.etag))
            .body(Body::empty())
            .map_err(|e| Error::internal(e.to_string()).into());
    }
    let (start, end, partial) = if let Some(r) = present(headers, header::RANGE) {
        match parse_range(r, size)? {
            ByteRange::Part(s, e) => (s, e, true),
            ByteRange::Unsatisfiable => return unsatisfiable(size),
        }
    } else {
        let start = offset.unwrap_or(0).min(size);
        let end = length.map_or(size, |l| start.saturating_add(l).min(size));
        (start, end, false)
    };
    let body = if end - start <= SMALL_READ {
        // Read whole, so that hyper sends the head and the body in one write (one segment:
        // nothing for Nagle's algorithm and a client's delayed ACK to hold back).
        Body::from(read_small(file, start, (end - start) as usize).await?)
    } else {
        let mut file = file;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::internal(format!("seek: {e}")))?;
        Body::from_stream(read_in_thread(file, end - start))
    };
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", stat.etag));
    if partial {
        resp = resp.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    resp.body(body)
        .map_err(|e| Error::internal(e.to_string()).into())
}

/// Reads at most this many bytes whole before answering; larger reads stream.
const SMALL_READ: u64 = 64 << 10;

/// Reads `len` bytes of `file` from `start` on the blocking pool. A file that shrank since it
/// was opened (changed in place by sandbox code) is a `conflict`: the client reads again.
async fn read_small(file: std::fs::File, start: u64, len: usize) -> ApiResult<Bytes> {
    use std::os::unix::fs::FileExt;
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        match file.read_exact_at(&mut buf, start) {
            Ok(()) => Ok(Bytes::from(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Error::conflict("the file changed while it was read; read it again").into())
            }
            Err(e) => Err(Error::internal(format!("read: {e}")).into()),
        }
    })
    .await
    .map_err(|e| Error::internal(format!("read: {e}")))?
}

/// Reads `len` bytes of `file` on one blocking thread in 1 MiB chunks, handed to the response
/// through a short channel: constant memory, and the disk and the network work at once.
/// (tokio's `File` would hop to the blocking pool for every read.)
fn read_in_thread(
    file: std::fs::File,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    const CHUNK: usize = 1 << 20;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut reader = file.take(len);
        loop {
            // Whole chunks (fewer, larger frames for hyper), read into memory that is not
            // zeroed first: `read_to_end` fills the spare capacity.
            let mut buf = Vec::with_capacity(CHUNK);
            if let Err(e) = (&mut reader).take(CHUNK as u64).read_to_end(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if buf.is_empty() {
                return;
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The entity tags of an `If-Match` or `If-None-Match` value (RFC 9110 §13.1): `None` for
/// `*`, else the opaque tags (quotes and a weak `W/` prefix removed).
fn entity_tags(name: &str, v: &HeaderValue) -> ApiResult<Option<Vec<String>>> {
    let s = v
        .to_str()
        .map_err(|_| Error::invalid_argument(format!("{name} header is not ASCII")))?
        .trim();
    if s == "*" {
        return Ok(None);
    }
    let tags: Vec<String> = s
        .split(',')
        .map(|t| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        })
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() {
        return Err(Error::invalid_argument(format!("{name} header names no entity tag")).into());
    }
    Ok(Some(tags))
}

/// A conditional or range header, unless its value is empty (as if it were absent).
fn present(headers: &HeaderMap, name: header::HeaderName) -> Option<&HeaderValue> {
    headers
        .get(name)
        .filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// A write's `If-Match`: one etag, or `*` (the file must exist). A failed one is `conflict`.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = present(headers, header::IF_MATCH) else {
        return Ok(None);
    };
    match entity_tags("If-Match", v)? {
        None => Ok(Some("*".to_owned())),
        Some(mut tags) if tags.len() == 1 => Ok(tags.pop()),
        Some(_) => Err(Error::invalid_argument(
            "If-Match on a write takes one entity tag (or *), not a list",
        )
        .into()),
    }
}

/// A write's `If-None-Match`: only `*` (create, never replace: `already_exists` if a file is
/// there), the same as `overwrite=false`.
fn if_none_match_write(headers: &HeaderMap) -> ApiResult<bool> {
    let Some(v) = present(headers, header::IF_NONE_MATCH) else {
        return Ok(false);
    };
    match entity_tags("If-None-Match", v)? {
        None => Ok(true),
        Some(_) => Err(Error::invalid_argument(
            "If-None-Match on a write takes only * (write only if no file exists)",
        )
        .into()),
    }
}

/// Whether a read's `If-None-Match` matches `etag` (weak comparison): the answer is then
/// `304 Not Modified`.
fn not_modified(headers: &HeaderMap, etag: &str) -> ApiResult<bool> {
    let Some(v) = present(headers, header::IF_NONE_MATCH) else {
        return Ok(false);
    };
    Ok(match entity_tags("If-None-Match", v)? {
        None => true,
        Some(tags) => tags.iter().any(|t| t == etag),
    })
}

#[utoipa::path(put, path = "/v1/volumes/{name}/files/content", tag = "files", params(("name" = String, Path), WriteQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = FileStat), (status = 409, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn write_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<WriteQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<FileStat>> {
    let ready = async {
        let vol = node.volumes().open(&caller.0, &name).await?;
        let path = parse_path("path", &q.path)?;
        let opts = WriteOptions {
            overwrite: q.overwrite && !if_none_match_write(&headers)?,
            if_match: if_match(&headers)?,
        };
        Ok::<_, ApiError>((vol, path, opts))
    };
    let ((vol, path, opts), body) = refuse_after_draining(ready.await, body).await?;
    Ok(axum::Json(receive_file(&vol, path, opts, body).await?))
}

/// Passes `ready` through; when it is an error, the unread request body is drained first
/// (see [`drain`]), so a client still sending reads the refusal.
pub(crate) async fn refuse_after_draining<T>(
    ready: Result<T, ApiError>,
    body: Body,
) -> Result<(T, Body), ApiError> {
    match ready {
        Ok(t) => Ok((t, body)),
        Err(e) => {
            drain(&mut body.into_data_stream()).await;
            Err(e)
        }
    }
}

/// Reads and drops what is left of a request body that will not be used (the answer is an
/// error), at most [`DRAIN_LIMIT`] bytes for at most [`DRAIN_TIME`]: a client still sending
/// then gets to read the answer instead of a broken pipe (nginx's "lingering close").
async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut left = DRAIN_LIMIT;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(c)) = stream.next().await {
            left = left.saturating_sub(c.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// See [`drain`].
const DRAIN_LIMIT: usize = 64 << 20;
/// See [`drain`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Streams a request body into an atomic write of `path`.
pub(crate) async fn receive_file(
    vol: &OpenVolume,
    path: VolumePath,
    opts: WriteOptions,
    body: Body,
) -> ApiResult<FileStat> {
    let mut stream = body.into_data_stream();
    let vname = vol.name().to_owned();
    let mut pending = match vol.begin_write(path).await {
        Ok(p) => p,
        Err(e) => {
            drain(&mut stream).await;
            return Err(e.into());
        }
    };

    // The body goes through a small channel to one blocking writer: constant memory, and the
    // network and the disk work at the same time.
    // Chunks are grouped into batches of about 1 MiB so the writer thread wakes once per
    // batch rather than once per network read.
    const BATCH: usize = 1 << 20;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(4);
    let n = vname.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        while let Some(batch) = rx.blocking_recv() {
            let bufs: Vec<&[u8]> = batch.iter().map(|c| &c[..]).collect();
            pending.write_all_of(&bufs).map_err(|e| e.in_volume(&n))?;
        }
        Ok(pending)
    });
    let mut client_error = None;
    let mut batch = Vec::new();
    let mut batched = 0;
    loop {
        match stream.next().await {
            Some(Ok(c)) => {
                batched += c.len();
                batch.push(c);
                if batched < BATCH {
                    continue;
                }
            }
            Some(Err(e)) => {
                client_error = Some(e);
                break;
            }
            None => {}
        }
        let done = batched < BATCH;
        if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).await.is_err() {
            // The writer stopped: its error is the answer.
            drain(&mut stream).await;
            break;
        }
        batched = 0;
        if done {
            break;
        }
    }
    drop(tx);
    let pending = writer.await.map_err(|e| Error::internal(e.to_string()))??;
    if let Some(e) = client_error {
        // Dropping `pending` removes the temporary file; the old content stays.
        drop(pending);
        return Err(Error::invalid_argument(format!("request body ended early: {e}")).into());
    }
    Ok(vol.commit_write(pending, opts).await?)
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/batch", tag = "files", params(("name" = String, Path), BatchQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 200, body = BatchResult), (status = 400, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn write_batch(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<BatchQuery>,
    body: Body,
) -> ApiResult<axum::Json<BatchResult>> {
    let ready = async {
        let dest = parse_path("path", &q.path)?;
        let vol = node.volumes().open(&caller.0, &name).await?;
        Ok::<_, ApiError>((dest, vol))
    };
    let ((dest, vol), body) = refuse_after_draining(ready.await, body).await?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let r = vol.write_batch(reader, dest).await?;
    Ok(axum::Json(BatchResult {
        files: r.files,
        bytes: r.bytes,
    }))
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/mkdir", operation_id = "make_directory", tag = "files", params(("name" = String, Path)),
    request_body = MkdirRequest, responses((status = 200, body = FileStat), (status = 409, body = ErrorBody)))]
pub async fn mkdir(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<MkdirRequest>,
) -> ApiResult<axum::Json<FileStat>> {
    let path = parse_path("path", &req.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    Ok(axum::Json(vol.mkdir(path, req.parents).await?))
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/move", tag = "files", params(("name" = String, Path)),
    request_body = MoveRequest, responses((status = 200, body = FileStat), (status = 409, body = ErrorBody)))]
pub async fn move_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<MoveRequest>,
) -> ApiResult<axum::Json<FileStat>> {
    let (src, dst) = (parse_path("src", &req.src)?, parse_path("dst", &req.dst)?);
    let vol = node.volumes().open(&caller.0, &name).await?;
    Ok(axum::Json(vol.rename(src, dst, req.overwrite).await?))
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/copy", tag = "files", params(("name" = String, Path)),
    request_body = CopyRequest, responses((status = 200, body = FileStat), (status = 409, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn copy_file(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<CopyRequest>,
) -> ApiResult<axum::Json<FileStat>> {
    let (src, dst) = (parse_path("src", &req.src)?, parse_path("dst", &req.dst)?);
    let vol = node.volumes().open(&caller.0, &name).await?;
    Ok(axum::Json(
        vol.copy(src, dst, req.overwrite, req.recursive).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/volumes/{name}/files", operation_id = "remove_file", tag = "files", params(("name" = String, Path), RemoveQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let path = parse_path("path", &q.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    vol.remove(path, q.recursive).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/list", operation_id = "list_files", tag = "files", params(("name" = String, Path), ListQuery),
    responses((status = 200, body = ListPage), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let path = parse_path("path", &q.path)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=100_000).contains(&limit) {
        return Err(Error::invalid_argument(format!(
            "limit must be between 1 and 100000, not {limit}"
        ))
        .into());
    }
    let fields: Vec<&str> = match q.fields.as_deref() {
        None | Some("") => ENTRY_FIELDS.to_vec(),
        Some(f) => f
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect(),
    };
    if let Some(bad) = fields.iter().find(|f| !ENTRY_FIELDS.contains(f)) {
        return Err(Error::invalid_argument(format!(
            "unknown field {bad:?}; known fields: {}",
            ENTRY_FIELDS.join(", ")
        ))
        .into());
    }
    let details = fields.iter().any(|f| !matches!(*f, "path" | "type"));
    let opts = ListOptions {
        recursive: q.recursive,
        glob: q.glob,
        limit,
        cursor: q.cursor,
        details,
    };
    let vol = node.volumes().open(&caller.0, &name).await?;
    let page = vol.list(path, opts).await?;
    let next_cursor = page.next_cursor;
    // Typed serialisation for the two common shapes (every field; paths and types only);
    // a JSON map per entry only for other selections.
    if fields.len() == ENTRY_FIELDS.len() {
        let entries: Vec<FileStat> = page.entries.into_iter().filter_map(|e| e.stat).collect();
        return Ok(axum::Json(ListPage {
            entries,
            next_cursor,
        })
        .into_response());
    }
    if !details && fields.len() == 2 {
        let entries: Vec<PathEntry> = page
            .entries
            .into_iter()
            .map(|e| PathEntry {
                path: e.path,
                file_type: e.file_type,
                path_base64: e.path_base64,
            })
            .collect();
        return Ok(axum::Json(ListPage {
            entries,
            next_cursor,
        })
        .into_response());
    }
    let entries: Vec<serde_json::Value> = page
        .entries
        .into_iter()
        .map(|e| {
            let full = match e.stat {
                Some(st) => serde_json::to_value(st).unwrap_or_default(),
                None => serde_json::json!({"path": e.path, "type": e.file_type}),
            };
            let mut out = serde_json::Map::new();
            for f in &fields {
                if let Some(v) = full.get(*f) {
                    out.insert((*f).to_owned(), v.clone());
                }
            }
            // A path that is not UTF-8 comes with its exact bytes whenever the path is asked for.
            if let Some(b) = e.path_base64.filter(|_| fields.contains(&"path")) {
                out.insert("path_base64".to_owned(), b.into());
            }
            serde_json::Value::Object(out)
        })
        .collect();
    Ok(axum::Json(ListPage {
        entries,
        next_cursor,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/stat", operation_id = "stat_file", tag = "files", params(("name" = String, Path), PathQuery),
    responses((status = 200, body = FileStat), (status = 404, body = ErrorBody)))]
pub async fn stat(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<axum::Json<FileStat>> {
    let path = parse_path("path", &q.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    Ok(axum::Json(vol.stat(path).await?))
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/exists", operation_id = "file_exists", tag = "files", params(("name" = String, Path), PathQuery),
    responses((status = 200, body = Exists), (status = 404, body = ErrorBody)))]
pub async fn exists(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<axum::Json<Exists>> {
    let path = parse_path("path", &q.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    let exists = vol.exists(path).await?;
    Ok(axum::Json(Exists { exists }))
}

/// `?path=&format=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArchiveQuery {
    /// Directory to archive (its contents, with relative names).
    #[serde(default = "root")]
    pub path: String,
    /// `tar`, `tar.gz` or `zip`.
    #[serde(default = "tar_format")]
    pub format: String,
}

fn tar_format() -> String {
    "tar".into()
}

/// A `Write` that hands 256 KiB chunks to an async response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(READ_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= READ_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `Content-Disposition: attachment` naming `name` per RFC 6266: a plain-ASCII `filename`
/// (anything but printable ASCII, `"` and `\\` becomes `_`) and the exact name as
/// `filename*=UTF-8''…` (percent-encoded, RFC 8187). Never an invalid header value.
fn content_disposition(name: &str) -> HeaderValue {
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => exact.push(b as char),
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~' => {
                exact.push(b as char)
            }
            _ => exact.push_str(&format!("%{b:02X}")),
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/archive", operation_id = "download_archive", tag = "files", params(("name" = String, Path), ArchiveQuery),
    responses((status = 200, description = "the directory as a tar, tar.gz or zip stream"), (status = 404, body = ErrorBody)))]
pub async fn archive(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Response> {
    let path = parse_path("path", &q.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    let vname = vol.name().to_owned();
    let format = ArchiveFormat::parse(&q.format).map_err(|e| e.in_volume(&vname))?;
    // Refuse a missing path or a file before the 200 goes out.
    let top = vol.stat(path.clone()).await?;
    if top.file_type != nullspace_core::FileType::Dir {
        return Err(Error::invalid_argument(format!(
            "{path} is not a directory in volume {vname:?}: download it as a file"
        ))
        .into());
    }
    let file_name = format!(
        "{}.{}",
        path.file_name().unwrap_or(&vname),
        format.extension()
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(READ_CHUNK),
        };
        if let Err(e) = vol.archive(path, format, w).await {
            // Breaks the response, so the client sees a failed download, not a short archive.
            let _ = tx.send(Err(std::io::Error::other(e.message))).await;
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CONTENT_DISPOSITION, content_disposition(&file_name))
        .body(Body::from_stream(stream))
        .map_err(|e| Error::internal(e.to_string()).into())
}
