//! Transfers (docs/API.md, "Transfers"): tus 1.0 resumable uploads, directory archives and
//! signed URLs.
//!
//! [`Client::upload_resumable`] sends a local file through the tus endpoint: by default the
//! rest of the file in one streamed `PATCH` (read as it goes; if the connection breaks the
//! server keeps what arrived), or, with a chunk size, in chunks each with an
//! `Upload-Checksum: sha256` (the next chunk read and hashed on a blocking thread while the
//! current one is on the wire). Memory stays small whatever the file's size. Given the URL of
//! an earlier, interrupted upload it asks the server for the durable offset (`HEAD`) and
//! continues from there; a transient failure mid-way is retried the same way.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use nullspace_core::{Error, Result, VolumeName, VolumePath};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use tokio::sync::mpsc;

use crate::{error_from_body, files_url, root_cause, Client, FileContent};

/// The tus protocol version this client speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// Default size of one tus `PATCH`: large enough that per-request costs (a round trip and
/// an fsync on the server) vanish, small enough that an interruption loses little.
pub const DEFAULT_TUS_CHUNK: usize = 16 * 1024 * 1024;

/// Piece size the body of a `PATCH` is handed to the network in (progress granularity).
const BODY_PIECE: usize = 256 * 1024;

const OFFSET_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// A tus upload as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusUpload {
    /// Absolute URL of the upload (its `Location`).
    pub url: String,
    /// Bytes the server holds durably.
    pub offset: u64,
    /// Declared total length.
    pub length: u64,
    /// `Upload-Expires`, as the server wrote it (an HTTP date).
    pub expires: Option<String>,
    /// Etag of the published file, once the upload is complete.
    pub etag: Option<String>,
}

impl TusUpload {
    /// Whether every byte arrived (the file is then published at its path).
    pub fn is_complete(&self) -> bool {
        self.offset == self.length
    }
}

/// Called with the number of bytes of the file sent so far (it can go back after a retry).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Called with an upload's URL as soon as the server made it.
pub type OnCreated = Arc<dyn Fn(&str) + Send + Sync>;

/// Options of [`Client::upload_resumable`].
#[derive(Clone)]
pub struct ResumableOptions {
    /// `Some(n)`: the file goes in `PATCH`es of `n` bytes, each with an `Upload-Checksum`
    /// (sha256) the server verifies before it keeps the chunk — hashing on both ends and a
    /// durable offset after every chunk. `None` (the default, as tuspy and tus-js-client do):
    /// the rest of the file goes in one streamed `PATCH` without a checksum (TCP checks the
    /// bytes, the offset check catches lost ones); if the connection breaks, the server keeps
    /// what arrived and the next round resumes from its offset.
    pub chunk_size: Option<usize>,
    /// The URL of an earlier upload of the same file to continue, if the server still has it.
    pub resume_url: Option<String>,
    /// Called with the upload's URL as soon as it exists, before any data is sent, so the
    /// caller can keep it for a later run.
    pub on_created: Option<OnCreated>,
    /// Called as bytes go out.
    pub progress: Option<Progress>,
    /// How many times a failed chunk (dropped connection, bad checksum, server restart) is
    /// retried after asking the server for its offset.
    pub retries: u32,
    /// First delay between retries; it doubles each time (at most 10 s).
    pub retry_delay: Duration,
}

impl Default for ResumableOptions {
    fn default() -> Self {
        ResumableOptions {
            chunk_size: None,
            resume_url: None,
            on_created: None,
            progress: None,
            retries: 5,
            retry_delay: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for ResumableOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableOptions")
            .field("chunk_size", &self.chunk_size)
            .field("resume_url", &self.resume_url)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .finish_non_exhaustive()
    }
}

/// What [`Client::upload_resumable`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableUpload {
    /// The upload's URL.
    pub url: String,
    /// Size of the file.
    pub length: u64,
    /// Bytes that were already on the server from an earlier run (0 for a fresh upload).
    pub resumed_from: u64,
    /// Etag of the published file.
    pub etag: Option<String>,
}

/// Formats a directory can be downloaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveFormat {
    #[serde(rename = "tar")]
    Tar,
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "zip")]
    Zip,
}

impl ArchiveFormat {
    /// Parses `tar`, `tar.gz` (or `tgz`) and `zip`.
    pub fn parse(s: &str) -> Result<ArchiveFormat> {
        match s {
            "tar" => Ok(ArchiveFormat::Tar),
            "tar.gz" | "tgz" => Ok(ArchiveFormat::TarGz),
            "zip" => Ok(ArchiveFormat::Zip),
            _ => Err(Error::invalid_argument(format!(
                "unknown archive format {s:?}: use tar, tar.gz or zip"
            ))),
        }
    }

    /// The name the server knows it by, which is also its file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::Zip => "zip",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignedMethod {
    /// Download the file.
    #[serde(rename = "GET")]
    Get,
    /// Upload (create or replace) the file.
    #[serde(rename = "PUT")]
    Put,
}

impl SignedMethod {
    /// Parses `GET` or `PUT` (any case).
    pub fn parse(s: &str) -> Result<SignedMethod> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(SignedMethod::Get),
            "PUT" => Ok(SignedMethod::Put),
            _ => Err(Error::invalid_argument(format!(
                "invalid method {s:?}: use GET or PUT"
            ))),
        }
    }

    /// `GET` or `PUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignedMethod::Get => "GET",
            SignedMethod::Put => "PUT",
        }
    }
}

/// A signed URL: usable without an API key until `expires_at`, for one method and one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUrl {
    pub url: String,
    pub method: String,
    pub expires_at: DateTime<Utc>,
}

/// Longest lifetime of a signed URL the server grants.
pub const MAX_SIGNED_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why one `PATCH` did not go through.
enum PatchFailure {
    /// The upload is gone (404) or expired (410).
    Gone,
    /// Worth retrying after asking for the offset: transport trouble, bad checksum, 409, 423.
    Retry(Error),
    /// Final: quota, a too-long chunk, a refused request.
    Fatal(Error),
}

/// One chunk read from the file: where it starts, its bytes and their sha256.
struct Chunk {
    offset: u64,
    data: Bytes,
    sha256: [u8; 32],
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|s| s.trim().parse().ok())
}

fn etag_of(h: &HeaderMap) -> Option<String> {
    header_str(h, "etag").map(|s| s.trim_start_matches("W/").trim_matches('"').to_owned())
}

/// Encodes `Upload-Metadata: path <base64>`.
fn metadata(path: &VolumePath) -> String {
    format!(
        "path {}",
        base64::engine::general_purpose::STANDARD.encode(path.as_str())
    )
}

impl Client {
    /// A request to an absolute URL of this server, with the key and `Tus-Resumable`.
    fn tus_request(&self, method: Method, url: &str) -> RequestBuilder {
        let req = self
            .http
            .request(method, url)
            .header("tus-resumable", TUS_VERSION);
        match &self.auth {
            Some(a) => req.header(reqwest::header::AUTHORIZATION, a.clone()),
            None => req,
        }
    }

    /// Whether `url` is on this client's server (a stored URL is only sent our key if so).
    pub fn is_own_url(&self, url: &str) -> bool {
        let (Ok(a), Ok(b)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.base)) else {
            return false;
        };
        a.origin() == b.origin()
    }

    fn absolute(&self, location: &str) -> Result<String> {
        let base = reqwest::Url::parse(&self.base)
            .map_err(|e| Error::internal(format!("bad base URL {}: {e}", self.base)))?;
        base.join(location).map(|u| u.to_string()).map_err(|e| {
            Error::internal(format!(
                "the server named an invalid upload URL {location:?}: {e}"
            ))
        })
    }

    async fn tus_error(&self, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        error_from_body(&self.base, status, &body)
    }

    /// `POST …/uploads`: starts a tus upload of `length` bytes to `path`. With `first`, the
    /// first chunk goes in the same request (creation-with-upload), with its sha256.
    ///
    /// A length over the volume's cap is `payload_too_large`; one that does not fit in what
    /// is left is `quota_exceeded`.
    pub async fn tus_create(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        length: u64,
        first: Option<Bytes>,
    ) -> Result<TusUpload> {
        let url = format!("{}/v1/volumes/{volume}/uploads", self.base);
        let mut req = self
            .tus_request(Method::POST, &url)
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata(path));
        if let Some(data) = first {
            let sum = sha2::Sha256::digest(&data);
            req = req
                .header(CONTENT_TYPE, OFFSET_CONTENT_TYPE)
                .header(
                    "upload-checksum",
                    format!(
                        "sha256 {}",
                        base64::engine::general_purpose::STANDARD.encode(sum)
                    ),
                )
                .body(data);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.tus_error(resp).await);
        }
        let h = resp.headers();
        let location = header_str(h, "location").ok_or_else(|| {
            Error::internal(format!(
                "{} created an upload without a Location header",
                self.base
            ))
        })?;
        Ok(TusUpload {
            url: self.absolute(location)?,
            offset: header_u64(h, "upload-offset").unwrap_or(0),
            length,
            expires: header_str(h, "upload-expires").map(str::to_owned),
            etag: etag_of(h),
        })
    }

    /// `HEAD` of an upload: its durable offset. `None` when the server no longer has it
    /// (404, or 410 for an expired upload).
    pub async fn tus_status(&self, url: &str) -> Result<Option<TusUpload>> {
        let resp = self
            .tus_request(Method::HEAD, url)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s if !s.is_success() => return Err(self.tus_error(resp).await),
            _ => {}
        }
        let h = resp.headers();
        let (Some(offset), Some(length)) = (
            header_u64(h, "upload-offset"),
            header_u64(h, "upload-length"),
        ) else {
            return Err(Error::internal(format!(
                "{} answered HEAD {url} without Upload-Offset and Upload-Length",
                self.base
            )));
        };
        Ok(Some(TusUpload {
            url: url.to_owned(),
            offset,
            length,
            expires: header_str(h, "upload-expires").map(str::to_owned),
            etag: etag_of(h),
        }))
    }

    /// `DELETE` of an upload (tus termination): its data is dropped.
    pub async fn tus_terminate(&self, url: &str) -> Result<()> {
        let resp = self
            .tus_request(Method::DELETE, url)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.tus_error(resp).await)
        }
    }

    /// `PATCH` of one chunk at `offset`, with its sha256; returns the upload's new state.
    pub async fn tus_patch(&self, url: &str, offset: u64, data: Bytes) -> Result<TusUpload> {
        let sha256: [u8; 32] = sha2::Sha256::digest(&data).into();
        let chunk = Chunk {
            offset,
            data,
            sha256,
        };
        match self.patch_chunk(url, &chunk, None).await {
            Ok(u) => Ok(u),
            Err(PatchFailure::Gone) => Err(Error::not_found(format!(
                "upload {url} does not exist or has expired"
            ))),
            Err(PatchFailure::Retry(e) | PatchFailure::Fatal(e)) => Err(e),
        }
    }

    async fn patch_chunk(
        &self,
        url: &str,
        chunk: &Chunk,
        progress: Option<&Progress>,
    ) -> std::result::Result<TusUpload, PatchFailure> {
        let len = chunk.data.len();
        let pieces: Vec<Bytes> = (0..len)
            .step_by(BODY_PIECE)
            .map(|at| chunk.data.slice(at..(at + BODY_PIECE).min(len)))
            .collect();
        let start = chunk.offset;
        let progress = progress.cloned();
        let mut sent = 0u64;
        let body = futures::stream::iter(pieces).map(move |piece| {
            if let Some(p) = &progress {
                p(start + sent);
            }
            sent += piece.len() as u64;
            Ok::<_, std::io::Error>(piece)
        });
        let resp = self
            .tus_request(Method::PATCH, url)
            .header(CONTENT_TYPE, OFFSET_CONTENT_TYPE)
            .header(CONTENT_LENGTH, len.to_string())
            .header("upload-offset", chunk.offset.to_string())
            .header(
                "upload-checksum",
                format!(
                    "sha256 {}",
                    base64::engine::general_purpose::STANDARD.encode(chunk.sha256)
                ),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| PatchFailure::Retry(self.transport_error(e)))?;
        self.patch_answer(url, resp).await
    }

    /// The upload's new state from a `PATCH`'s answer, or how the `PATCH` failed.
    async fn patch_answer(
        &self,
        url: &str,
        resp: reqwest::Response,
    ) -> std::result::Result<TusUpload, PatchFailure> {
        let status = resp.status();
        if status.is_success() {
            let h = resp.headers();
            let offset = header_u64(h, "upload-offset").ok_or_else(|| {
                PatchFailure::Fatal(Error::internal(format!(
                    "{} answered a PATCH without Upload-Offset",
                    self.base
                )))
            })?;
            return Ok(TusUpload {
                url: url.to_owned(),
                offset,
                length: 0,
                expires: header_str(h, "upload-expires").map(str::to_owned),
                etag: etag_of(h),
            });
        }
        match status.as_u16() {
            404 | 410 => Err(PatchFailure::Gone),
            // Offset mismatch, bad checksum (460), busy (423), server trouble: ask again.
            409 | 423 | 460 | 500 | 502..=504 => {
                Err(PatchFailure::Retry(self.tus_error(resp).await))
            }
            _ => Err(PatchFailure::Fatal(self.tus_error(resp).await)),
        }
    }

    /// Uploads a local file to `path` through tus (in one streamed `PATCH`, or in checked
    /// chunks: see [`ResumableOptions::chunk_size`]), resuming `opts.resume_url` when the
    /// server still has that upload of the same length. The file appears at `path` atomically
    /// when the last byte is stored.
    pub async fn upload_resumable(
        &self,
        volume: &VolumeName,
        local: &Path,
        path: &VolumePath,
        opts: &ResumableOptions,
    ) -> Result<ResumableUpload> {
        let meta = tokio::fs::metadata(local).await.map_err(|e| {
            Error::invalid_argument(format!("cannot read {}: {e}", local.display()))
        })?;
        if !meta.is_file() {
            return Err(Error::invalid_argument(format!(
                "{} is not a regular file",
                local.display()
            )));
        }
        let length = meta.len();

        // An earlier upload of the same file, if the server still has it.
        let mut upload = None;
        if let Some(url) = opts.resume_url.as_deref().filter(|u| self.is_own_url(u)) {
            match self.tus_status(url).await? {
                Some(u) if u.length == length && !u.is_complete() => upload = Some(u),
                // Another length: not ours to continue; leave it to expire.
                _ => {}
            }
        }
        let resumed_from = upload.as_ref().map_or(0, |u| u.offset);
        let mut upload = match upload {
            Some(u) => u,
            None => {
                let u = self.tus_create(volume, path, length, None).await?;
                if let Some(cb) = &opts.on_created {
                    cb(&u.url);
                }
                u
            }
        };
        if let Some(p) = &opts.progress {
            p(upload.offset);
        }
        let mut failures = 0u32;
        let mut restarted = false;
        while upload.offset < length {
            let before = upload.offset;
            let failure = match opts.chunk_size {
                None => {
                    self.patch_rest(&mut upload, local, length, opts.progress.as_ref())
                        .await?
                }
                Some(chunk_size) => {
                    self.patch_chunks(&mut upload, local, length, chunk_size.max(1), opts)
                        .await?
                }
            };
            if upload.offset > before {
                failures = 0;
            }
            match failure {
                None => {}
                Some(PatchFailure::Fatal(e)) => return Err(e),
                Some(PatchFailure::Gone) if !restarted => {
                    // Expired or removed meanwhile: start over once.
                    restarted = true;
                    upload = self.tus_create(volume, path, length, None).await?;
                    if let Some(cb) = &opts.on_created {
                        cb(&upload.url);
                    }
                }
                Some(PatchFailure::Gone) => {
                    return Err(Error::not_found(format!(
                        "upload {} disappeared from the server twice",
                        upload.url
                    )))
                }
                Some(PatchFailure::Retry(e)) => {
                    failures += 1;
                    if failures > opts.retries {
                        return Err(e);
                    }
                    let delay = opts
                        .retry_delay
                        .saturating_mul(1 << (failures - 1).min(5))
                        .min(Duration::from_secs(10));
                    tokio::time::sleep(delay).await;
                    match self.tus_status(&upload.url).await {
                        Ok(Some(u)) if u.length == length => upload.offset = u.offset,
                        Ok(Some(_)) => {
                            return Err(Error::conflict(format!(
                                "upload {} changed length on the server",
                                upload.url
                            )))
                        }
                        Ok(None) if !restarted => {
                            restarted = true;
                            upload = self.tus_create(volume, path, length, None).await?;
                            if let Some(cb) = &opts.on_created {
                                cb(&upload.url);
                            }
                        }
                        Ok(None) => return Err(e),
                        // Still unreachable: the next round fails and counts again.
                        Err(_) => {}
                    }
                    if let Some(p) = &opts.progress {
                        p(upload.offset);
                    }
                }
            }
        }
        Ok(ResumableUpload {
            url: upload.url,
            length,
            resumed_from,
            etag: upload.etag,
        })
    }

    /// One round of a checked upload: `[upload.offset, length)` in chunks of `chunk_size`
    /// bytes, each `PATCH`ed with its sha256, read and hashed one chunk ahead on a blocking
    /// thread. Returns the failure that ended the round early, if any.
    async fn patch_chunks(
        &self,
        upload: &mut TusUpload,
        local: &Path,
        length: u64,
        chunk_size: usize,
        opts: &ResumableOptions,
    ) -> Result<Option<PatchFailure>> {
        let (tx, mut rx) = mpsc::channel::<Result<Chunk>>(1);
        let file = local.to_path_buf();
        let from = upload.offset;
        let reader =
            tokio::task::spawn_blocking(move || read_chunks(&file, from, length, chunk_size, tx));
        let mut failure = None;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            match self
                .patch_chunk(&upload.url, &chunk, opts.progress.as_ref())
                .await
            {
                Ok(u) => {
                    upload.offset = u.offset;
                    upload.etag = u.etag;
                    if let Some(p) = &opts.progress {
                        p(upload.offset);
                    }
                    let sent_to = chunk.offset + chunk.data.len() as u64;
                    if u.offset != sent_to {
                        // The server holds another offset than we sent up to: re-read.
                        failure = Some(PatchFailure::Retry(Error::conflict(format!(
                            "the server stored up to {} instead of {sent_to}",
                            u.offset
                        ))));
                        break;
                    }
                }
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        drop(rx);
        let _ = reader.await;
        Ok(failure)
    }

    /// One round of an unchecked upload: `[upload.offset, length)` in one streamed `PATCH`,
    /// read from the file as it goes (constant memory). Returns the failure that ended the
    /// round early, if any; the server keeps what arrived before it.
    async fn patch_rest(
        &self,
        upload: &mut TusUpload,
        local: &Path,
        length: u64,
        progress: Option<&Progress>,
    ) -> Result<Option<PatchFailure>> {
        let from = upload.offset;
        let fail = |e: std::io::Error| {
            Error::invalid_argument(format!("cannot read {}: {e}", local.display()))
        };
        let mut file = tokio::fs::File::open(local).await.map_err(fail)?;
        tokio::io::AsyncSeekExt::seek(&mut file, SeekFrom::Start(from))
            .await
            .map_err(fail)?;
        let rest = length - from;
        let done = progress.cloned();
        let progress = progress.cloned();
        let mut sent = from;
        let body = tokio_util::io::ReaderStream::with_capacity(
            tokio::io::AsyncReadExt::take(file, rest),
            BODY_PIECE,
        )
        .map(move |piece| {
            if let (Ok(piece), Some(p)) = (&piece, &progress) {
                p(sent);
                sent += piece.len() as u64;
            }
            piece
        });
        let resp = self
            .tus_request(Method::PATCH, &upload.url)
            .header(CONTENT_TYPE, OFFSET_CONTENT_TYPE)
            .header(CONTENT_LENGTH, rest.to_string())
            .header("upload-offset", from.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Ok(Some(PatchFailure::Retry(self.transport_error(e)))),
        };
        match self.patch_answer(&upload.url, resp).await {
            Ok(u) => {
                upload.offset = u.offset;
                upload.etag = u.etag;
                if let Some(p) = &done {
                    p(upload.offset);
                }
                if u.offset != length {
                    return Ok(Some(PatchFailure::Retry(Error::conflict(format!(
                        "the server stored up to {} instead of {length}",
                        u.offset
                    )))));
                }
                Ok(None)
            }
            Err(f) => Ok(Some(f)),
        }
    }

    /// Like [`Client::write_batch_dir`] (one all-or-nothing tar stream, layout and empty
    /// directories kept), calling `progress` with the archive bytes sent so far.
    pub async fn write_batch_dir_with_progress(
        &self,
        volume: &VolumeName,
        local_dir: &Path,
        remote_dir: &VolumePath,
        progress: Option<Progress>,
    ) -> Result<crate::BatchUpload> {
        crate::batch::upload_dir_with_progress(self, volume, local_dir, remote_dir, progress).await
    }

    /// `GET …/files/archive`: the directory `path` as a `tar`, `tar.gz` or `zip` stream.
    ///
    /// A missing path is `not_found` and a file `invalid_argument`, before any byte arrives;
    /// a failure mid-way breaks the stream (an error item), never a silently short archive.
    pub async fn download_archive(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        format: ArchiveFormat,
    ) -> Result<FileContent> {
        let req = self
            .request(Method::GET, &files_url(volume, "archive"))
            .query(&[("path", path.as_str()), ("format", format.as_str())]);
        let resp = self.send(req).await?;
        Ok(self.content(resp, path))
    }

    /// `GET …/files/content` with `Range: bytes=START-`: the file from `start` on, with the
    /// file's total size (from `Content-Range`) — what resuming a partial download needs.
    pub async fn read_file_from(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        start: u64,
    ) -> Result<(FileContent, Option<u64>)> {
        let req = self
            .request(Method::GET, &files_url(volume, "content"))
            .query(&[("path", path.as_str())])
            .header(RANGE, format!("bytes={start}-"));
        let resp = self.send(req).await?;
        let total = if resp.status() == StatusCode::PARTIAL_CONTENT {
            header_str(resp.headers(), "content-range")
                .and_then(|r| r.rsplit('/').next())
                .and_then(|t| t.trim().parse().ok())
        } else {
            None
        };
        if start > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::internal(format!(
                "{} ignored a Range request (HTTP {})",
                self.base,
                resp.status()
            )));
        }
        Ok((self.content(resp, path), total))
    }

    fn content(&self, resp: reqwest::Response, path: &VolumePath) -> FileContent {
        let etag = etag_of(resp.headers());
        let length = resp.content_length();
        let (base, shown) = (self.base.clone(), path.to_string());
        let stream = resp
            .bytes_stream()
            .map(move |r| {
                r.map_err(|e| {
                    Error::unavailable(format!(
                        "reading {shown} from {base} failed: {}",
                        root_cause(&e)
                    ))
                })
            })
            .boxed();
        FileContent {
            etag,
            length,
            stream,
        }
    }

    /// `POST …/files/url`: a URL that downloads (`GET`) or uploads (`PUT`) `path` without an
    /// API key until it expires. `expires_in` is 1 s to 7 days (`invalid_argument` otherwise).
    pub async fn sign_url(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        method: SignedMethod,
        expires_in: Duration,
    ) -> Result<SignedUrl> {
        let req = self
            .request(Method::POST, &files_url(volume, "url"))
            .json(&json!({
                "path": path.as_str(),
                "method": method.as_str(),
                "expires_in": expires_in.as_secs(),
            }));
        self.json(req).await
    }
}

/// Reads `[from, length)` of `file` in chunks, hashing each, into `tx` (blocking).
fn read_chunks(
    file: &PathBuf,
    from: u64,
    length: u64,
    chunk_size: usize,
    tx: mpsc::Sender<Result<Chunk>>,
) {
    let fail =
        |e: std::io::Error| Error::invalid_argument(format!("cannot read {}: {e}", file.display()));
    let mut f = match std::fs::File::open(file).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        Ok(f)
    }) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(fail(e)));
            return;
        }
    };
    let mut offset = from;
    while offset < length {
        let want = (length - offset).min(chunk_size as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        if let Err(e) = f.read_exact(&mut buf) {
            let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::invalid_argument(format!(
                    "{} shrank while it was being uploaded",
                    file.display()
                ))
            } else {
                fail(e)
            };
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let sha256: [u8; 32] = sha2::Sha256::digest(&buf).into();
        let chunk = Chunk {
            offset,
            data: buf.freeze(),
            sha256,
        };
        offset += chunk.data.len() as u64;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nullspace_core::ErrorCode;

    #[test]
    fn formats_and_methods() {
        for f in [ArchiveFormat::Tar, ArchiveFormat::TarGz, ArchiveFormat::Zip] {
            assert_eq!(ArchiveFormat::parse(f.as_str()).unwrap(), f);
        }
        assert_eq!(ArchiveFormat::parse("tgz").unwrap(), ArchiveFormat::TarGz);
        assert_eq!(
            ArchiveFormat::parse("rar").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(SignedMethod::parse("put").unwrap(), SignedMethod::Put);
        assert!(SignedMethod::parse("POST").is_err());
    }

    #[test]
    fn metadata_is_base64_path() {
        let p = VolumePath::parse("/a b/ü.txt").unwrap();
        let m = metadata(&p);
        let b = m.strip_prefix("path ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(decoded, "/a b/ü.txt".as_bytes());
    }

    #[test]
    fn own_urls() {
        let c = Client::new("http://127.0.0.1:7420", "k").unwrap();
        assert!(c.is_own_url("http://127.0.0.1:7420/v1/volumes/x/uploads/abc"));
        assert!(!c.is_own_url("http://127.0.0.1:7421/v1/volumes/x/uploads/abc"));
        assert!(!c.is_own_url("http://evil.example/v1/volumes/x/uploads/abc"));
        assert!(!c.is_own_url("not a url"));
        assert_eq!(
            c.absolute("/v1/volumes/x/uploads/abc").unwrap(),
            "http://127.0.0.1:7420/v1/volumes/x/uploads/abc"
        );
    }
}
