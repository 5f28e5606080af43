//! Search, replace and edit of file contents: `/v1/volumes/{name}/files/{search,replace,edit}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use nullspace_core::wire::{
    EditRequest, ErrorDetail, ReplaceRequest, ReplaceSummary, SearchLine, SearchRequest,
    SearchSummary,
};
use nullspace_core::{Error, FileStat};
use nullspace_node::data::{ReplaceOptions, SearchOptions};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::files::parse_path;
use crate::AppState;

enum Found {
    /// Whole NDJSON match lines, as the search wrote them.
    Lines(bytes::Bytes),
    Done(SearchSummary),
    Failed(Error),
}

fn ndjson(value: &impl serde::Serialize) -> bytes::Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line.into()
}

/// Blocks of match lines waiting for the network, at most (each about 64 KiB).
const SEARCH_BLOCKS_QUEUED: usize = 8;

#[utoipa::path(post, path = "/v1/volumes/{name}/files/search", operation_id = "search_files", tag = "files", params(("name" = String, Path)),
    request_body = SearchRequest,
    responses((status = 200, description = "one JSON match per line, then {\"done\":true,...}", content_type = "application/x-ndjson"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn search(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<SearchRequest>,
) -> ApiResult<Response> {
    let vol = node.volumes().open(&caller.0, &name).await?;
    let path = parse_path("path", &req.path)?;
    let opts = SearchOptions {
        pattern: req.pattern,
        regex: req.regex,
        ignore_case: req.ignore_case,
        glob: req.glob,
        max_results: req.max_results,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Found>(SEARCH_BLOCKS_QUEUED);
    tokio::spawn(async move {
        let sender = tx.clone();
        let result = vol
            .search(path, opts, move |block| {
                sender.blocking_send(Found::Lines(block.into())).is_ok()
            })
            .await;
        let _ = tx
            .send(match result {
                Ok(summary) => Found::Done(summary),
                Err(e) => Found::Failed(e),
            })
            .await;
    });
    // An error before the first result (bad pattern, missing path) is a normal error answer.
    let first = match rx.recv().await {
        Some(Found::Failed(e)) => return Err(e.into()),
        Some(other) => other,
        None => return Err(Error::internal("search ended without an answer").into()),
    };
    // The search hands on blocks of whole lines (what was ready, up to about 64 KiB): each
    // goes out as it is, one HTTP chunk, and the summary or the failure ends the body.
    let stream = futures::stream::unfold(
        (Some(first), rx, false),
        |(pending, mut rx, finished)| async move {
            if finished {
                return None;
            }
            let item = match pending {
                Some(item) => item,
                None => rx.recv().await?,
            };
            let (chunk, done) = match item {
                Found::Lines(lines) => (lines, false),
                Found::Done(summary) => (
                    ndjson(&SearchLine::Done {
                        done: true,
                        summary,
                    }),
                    true,
                ),
                Found::Failed(e) => (
                    ndjson(&SearchLine::Failed {
                        error: ErrorDetail {
                            code: e.code.as_str().to_owned(),
                            retryable: e.code.retryable(),
                            message: e.message,
                        },
                    }),
                    true,
                ),
            };
            Some((Ok::<_, std::io::Error>(chunk), (None, rx, done)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| Error::internal(e.to_string()).into())
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/replace", operation_id = "replace_in_files", tag = "files", params(("name" = String, Path)),
    request_body = ReplaceRequest,
    responses((status = 200, description = "files and counts", body = ReplaceSummary), (status = 400, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn replace(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<ReplaceRequest>,
) -> ApiResult<axum::Json<ReplaceSummary>> {
    let path = parse_path("path", &req.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    let opts = ReplaceOptions {
        pattern: req.pattern,
        replacement: req.replacement,
        regex: req.regex,
        ignore_case: req.ignore_case,
        glob: req.glob,
        dry_run: req.dry_run,
    };
    Ok(axum::Json(vol.replace(path, opts).await?))
}

#[utoipa::path(post, path = "/v1/volumes/{name}/files/edit", operation_id = "edit_file", tag = "files", params(("name" = String, Path)),
    request_body = EditRequest,
    responses((status = 200, body = FileStat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn edit(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<EditRequest>,
) -> ApiResult<axum::Json<FileStat>> {
    let path = parse_path("path", &req.path)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    let stat = vol
        .edit(path, req.old, req.new, req.count, req.if_match)
        .await?;
    Ok(axum::Json(stat))
}
