//! A typed async client for the nullspace HTTP API (`docs/API.md`).
//!
//! Every method returns core types and fails with a [`nullspace_core::Error`]: the server's own
//! `{"error": {code, message}}` when it answered, `unavailable` when it could not be reached.
//! File bodies stream both ways, so reads and writes of any size run in constant memory.

mod batch;
mod content;
mod sse;
mod transfer;
mod watch;
mod wire;

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStream, TryStreamExt};
use nullspace_core::{
    Error, ErrorCode, FileStat, LabelSelector, Labels, Result, Tenant, TenantName, Volume,
    VolumeField, VolumeName, VolumePath,
};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

mod sandbox;
pub use batch::BatchUpload;
pub use content::{
    EditCount, EditOptions, ReplaceOptions, ReplaceSummary, ReplacedFile, SearchItem, SearchMatch,
    SearchOptions, SearchStream, SearchSummary,
};
pub use sandbox::{ExecOptions, ExecOutput, SandboxMount};
pub use transfer::{
    ArchiveFormat, OnCreated, Progress, ResumableOptions, ResumableUpload, SignedMethod, SignedUrl,
    TusUpload, DEFAULT_TUS_CHUNK, MAX_SIGNED_URL_LIFETIME, TUS_VERSION,
};
pub use watch::{
    ChangeEvent, ChangeKind, Watch, WatchConnection, WatchEvent, WatchGap, WatchOptions,
    WatchOverflow,
};
pub use wire::{
    BatchResult, CreateKey, CreateToken, CreatedKey, CreatedTenant, Health, KeyInfo, KeyList,
    ListPage, PathEntry, Role, WhoAmI,
};

/// Where a server listens when nothing else is configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7420";

/// Chunk size used when streaming a local reader to the server.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// Piece size of [`Client::write_local_file`]: large, so the server's writer gets few, big
/// buffers (one `writev` each).
pub const FILE_CHUNK: usize = 1 << 20;

/// Sends the first `size` bytes of `file` to `tx` in [`FILE_CHUNK`] pieces (blocking). A file
/// that ends before `size` is an error; `Ok` also when the receiver went away.
fn read_file_chunks(
    file: std::fs::File,
    size: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut rest = file.take(size);
    let mut sent = 0u64;
    while sent < size {
        // `read_to_end` fills the spare capacity: no zeroing before the read.
        let mut buf = Vec::with_capacity(FILE_CHUNK.min((size - sent) as usize));
        (&mut rest).take(FILE_CHUNK as u64).read_to_end(&mut buf)?;
        if buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file shrank while it was being uploaded (to {sent} of {size} bytes)"),
            ));
        }
        sent += buf.len() as u64;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Longest error body read from a failed response (it is a small JSON document).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A file selection, its partial objects keyed by field name (`?fields=`).
pub type Fields = Map<String, Value>;

/// A connection to one nullspace server with one API key. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.base)
            .field("key", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Options of [`Client::write_file`].
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Replace an existing file (default); `false` makes an existing path `already_exists`.
    pub overwrite: bool,
    /// Write only if the file's current etag is this one (`conflict` otherwise).
    pub if_match: Option<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            overwrite: true,
            if_match: None,
        }
    }
}

/// Options of [`Client::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Descend into directories.
    pub recursive: bool,
    /// Shell glob: without `/` it matches names, with `/` paths relative to the listed directory.
    pub glob: Option<String>,
    /// Entries per request (server default 1000, at most 100000).
    pub page_size: Option<usize>,
}

/// A file being read: its etag and length, and its content as a stream of chunks.
pub struct FileContent {
    /// The file's etag at the time it was opened.
    pub etag: Option<String>,
    /// Number of bytes the server will send.
    pub length: Option<u64>,
    stream: BoxStream<'static, Result<Bytes>>,
}

impl fmt::Debug for FileContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileContent")
            .field("etag", &self.etag)
            .field("length", &self.length)
            .finish()
    }
}

impl Stream for FileContent {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl FileContent {
    /// Reads the whole content into memory.
    pub async fn bytes(self) -> Result<Bytes> {
        let mut out = Vec::with_capacity(self.length.unwrap_or(0).min(1 << 20) as usize);
        let mut s = self.stream;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.into())
    }
}

impl Client {
    /// A client for the server at `url` (`http://host:port`), authenticating with `key`.
    /// An empty key sends no `Authorization` header.
    pub fn new(url: &str, key: impl Into<String>) -> Result<Client> {
        let base = normalize_url(url)?;
        let key = key.into();
        let auth = if key.is_empty() {
            None
        } else {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                Error::invalid_argument(
                    "invalid API key: it contains characters that cannot be sent",
                )
            })?;
            v.set_sensitive(true);
            Some(v)
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Well below the server's idle timeout (60 s by default), so a kept-alive
            // connection is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .user_agent(concat!("nullspace-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { http, base, auth })
    }

    /// The server's base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.base
    }

    // ----- meta -----

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health> {
        self.json(self.request(Method::GET, "/v1/health")).await
    }

    /// `GET /v1/whoami`: the tenant the key belongs to.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.json(self.request(Method::GET, "/v1/whoami")).await
    }

    // ----- keys -----

    /// `POST /v1/keys`: a new key, its secret shown only in this answer.
    pub async fn create_key(&self, req: &wire::CreateKey) -> Result<wire::CreatedKey> {
        self.json(self.request(Method::POST, "/v1/keys").json(req))
            .await
    }

    /// `POST /v1/volumes/{name}/tokens`: a token for one volume's files, its secret shown
    /// only in this answer.
    pub async fn create_token(
        &self,
        volume: &VolumeName,
        req: &wire::CreateToken,
    ) -> Result<wire::CreatedKey> {
        self.json(
            self.request(Method::POST, &format!("/v1/volumes/{volume}/tokens"))
                .json(req),
        )
        .await
    }

    /// `GET /v1/keys`: the tenant's keys (never a secret).
    pub async fn list_keys(&self) -> Result<Vec<wire::KeyInfo>> {
        let list: wire::KeyList = self.json(self.request(Method::GET, "/v1/keys")).await?;
        Ok(list.keys)
    }

    /// `DELETE /v1/keys/{id}`: revokes a key at once.
    pub async fn revoke_key(&self, id: &str) -> Result<wire::KeyInfo> {
        let id = sandbox::urlencode(id);
        self.json(self.request(Method::DELETE, &format!("/v1/keys/{id}")))
            .await
    }

    // ----- admin -----

    /// `POST /v1/admin/tenants`: a new tenant and its first key.
    pub async fn create_tenant(&self, name: &TenantName) -> Result<CreatedTenant> {
        let req = self
            .request(Method::POST, "/v1/admin/tenants")
            .json(&json!({ "name": name.as_str() }));
        self.json(req).await
    }

    /// `PUT /v1/admin/tenants/{tenant}/volume-cap`: the cap given to the tenant's new volumes.
    pub async fn set_volume_cap(&self, tenant: &TenantName, cap_bytes: u64) -> Result<Tenant> {
        let req = self
            .request(
                Method::PUT,
                &format!("/v1/admin/tenants/{tenant}/volume-cap"),
            )
            .json(&json!({ "cap_bytes": cap_bytes }));
        self.json(req).await
    }

    /// `GET /v1/admin/tenants/{tenant}/limits`: the tenant's limits in force and usage.
    pub async fn tenant_limits(
        &self,
        tenant: &TenantName,
    ) -> Result<nullspace_core::wire::TenantLimits> {
        let req = self.request(Method::GET, &format!("/v1/admin/tenants/{tenant}/limits"));
        self.json(req).await
    }

    /// `PUT /v1/admin/tenants/{tenant}/limits`: changes the given limits, answers all of them.
    pub async fn set_tenant_limits(
        &self,
        tenant: &TenantName,
        limits: &nullspace_core::wire::SetTenantLimits,
    ) -> Result<nullspace_core::wire::TenantLimits> {
        let req = self
            .request(Method::PUT, &format!("/v1/admin/tenants/{tenant}/limits"))
            .json(limits);
        self.json(req).await
    }

    // ----- volumes -----

    /// `POST /v1/volumes`. Returns the volume and whether it was created now (`false` only
    /// with `if_not_exists` when it already existed).
    pub async fn create_volume(
        &self,
        name: &VolumeName,
        labels: &Labels,
        if_not_exists: bool,
    ) -> Result<(Volume, bool)> {
        let req = self.request(Method::POST, "/v1/volumes").json(&json!({
            "name": name.as_str(),
            "labels": labels,
            "if_not_exists": if_not_exists,
        }));
        let resp = self.send(req).await?;
        let created = resp.status() == StatusCode::CREATED;
        Ok((self.decode(resp).await?, created))
    }

    /// `GET /v1/volumes`: the volumes whose labels match every selector.
    pub async fn list_volumes(&self, labels: &[LabelSelector]) -> Result<Vec<Volume>> {
        let req = self
            .request(Method::GET, "/v1/volumes")
            .query(&label_query(labels));
        Ok(self.json::<wire::VolumeList<Volume>>(req).await?.volumes)
    }

    /// `GET /v1/volumes?fields=`: like [`Client::list_volumes`], with only the selected fields.
    pub async fn list_volumes_fields(
        &self,
        labels: &[LabelSelector],
        fields: &[VolumeField],
    ) -> Result<Vec<Fields>> {
        let mut q = label_query(labels);
        q.push(("fields", fields_param(fields)));
        let req = self.request(Method::GET, "/v1/volumes").query(&q);
        Ok(self.json::<wire::VolumeList<Fields>>(req).await?.volumes)
    }

    /// `GET /v1/volumes/{name}`.
    pub async fn get_volume(&self, name: &VolumeName) -> Result<Volume> {
        self.json(self.request(Method::GET, &format!("/v1/volumes/{name}")))
            .await
    }

    /// `GET /v1/volumes/{name}?fields=`: only the selected fields.
    pub async fn get_volume_fields(
        &self,
        name: &VolumeName,
        fields: &[VolumeField],
    ) -> Result<Fields> {
        let req = self
            .request(Method::GET, &format!("/v1/volumes/{name}"))
            .query(&[("fields", fields_param(fields))]);
        self.json(req).await
    }

    /// `DELETE /v1/volumes/{name}`.
    pub async fn delete_volume(
        &self,
        name: &VolumeName,
        force: bool,
        if_exists: bool,
    ) -> Result<()> {
        let req = self
            .request(Method::DELETE, &format!("/v1/volumes/{name}"))
            .query(&[("force", force), ("if_exists", if_exists)]);
        self.send(req).await.map(drop)
    }

    /// `POST /v1/volumes/{name}/rename`: the same volume under `new_name`.
    pub async fn rename_volume(&self, name: &VolumeName, new_name: &VolumeName) -> Result<Volume> {
        let req = self
            .request(Method::POST, &format!("/v1/volumes/{name}/rename"))
            .json(&json!({ "new_name": new_name.as_str() }));
        self.json(req).await
    }

    /// `GET /v1/volumes/{name}/uploads`: the uploads still waiting for bytes.
    pub async fn list_uploads(&self, name: &VolumeName) -> Result<Vec<wire::UploadInfo>> {
        let req = self.request(Method::GET, &format!("/v1/volumes/{name}/uploads"));
        Ok(self.json::<wire::UploadList>(req).await?.uploads)
    }

    /// `DELETE /v1/volumes/{name}/uploads/{id}` (tus termination): cancels an upload, which
    /// gives its reserved bytes back.
    pub async fn cancel_upload(&self, name: &VolumeName, id: &str) -> Result<()> {
        let req = self
            .request(Method::DELETE, &format!("/v1/volumes/{name}/uploads/{id}"))
            .header("tus-resumable", transfer::TUS_VERSION);
        self.send(req).await.map(drop)
    }

    // ----- files -----

    /// `GET …/files/content`: the file (or `length` bytes from `offset`) as a stream.
    pub async fn read_file(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> Result<FileContent> {
        let mut q: Vec<(&str, String)> = vec![("path", path.to_string())];
        if let Some(o) = offset {
            q.push(("offset", o.to_string()));
        }
        if let Some(l) = length {
            q.push(("length", l.to_string()));
        }
        let req = self
            .request(Method::GET, &files_url(volume, "content"))
            .query(&q);
        let resp = self.send(req).await?;
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim_start_matches("W/").trim_matches('"').to_owned());
        let length = resp.content_length();
        let (base, shown) = (self.base.clone(), path.to_string());
        let stream = resp
            .bytes_stream()
            .map_err(move |e| {
                Error::unavailable(format!(
                    "reading {shown} from {base} failed: {}",
                    root_cause(&e)
                ))
            })
            .boxed();
        Ok(FileContent {
            etag,
            length,
            stream,
        })
    }

    /// Reads a whole file into memory.
    pub async fn read_bytes(&self, volume: &VolumeName, path: &VolumePath) -> Result<Bytes> {
        self.read_file(volume, path, None, None)
            .await?
            .bytes()
            .await
    }

    /// `PUT …/files/content` with a streamed body: chunks go to the server as they come,
    /// so any size is written in constant memory. The write is atomic on the server.
    pub async fn write_file<S>(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        body: S,
        opts: &WriteOptions,
    ) -> Result<FileStat>
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        self.put_content(volume, path, reqwest::Body::wrap_stream(body), None, opts)
            .await
    }

    /// Like [`Client::write_file`], streaming from an async reader (a file, stdin, a pipe).
    pub async fn write_reader(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        reader: impl AsyncRead + Send + 'static,
        opts: &WriteOptions,
    ) -> Result<FileStat> {
        self.write_file(
            volume,
            path,
            ReaderStream::with_capacity(reader, UPLOAD_CHUNK),
            opts,
        )
        .await
    }

    /// Writes a local regular file: read on a thread of its own in [`FILE_CHUNK`] pieces (no
    /// hop to the blocking pool per read, no zeroed buffers) and sent with its length as
    /// `Content-Length`, the size it had when this began. A file that shrinks meanwhile fails
    /// with `invalid_argument`, and the server keeps what it had.
    pub async fn write_local_file(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        file: std::fs::File,
        opts: &WriteOptions,
    ) -> Result<FileStat> {
        let size = file
            .metadata()
            .map_err(|e| Error::invalid_argument(format!("cannot read the file to upload: {e}")))?
            .len();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let local_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let noted = local_error.clone();
        tokio::task::spawn_blocking(move || {
            let failed = read_file_chunks(file, size, &tx);
            if let Err(e) = failed {
                *noted.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                let _ = tx.blocking_send(Err(e));
            }
        });
        let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let sent = self.put_content(volume, path, body, Some(size), opts).await;
        let local = local_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (sent, local) {
            (Err(_), Some(local)) => Err(Error::invalid_argument(local)),
            (sent, _) => sent,
        }
    }

    /// Writes bytes already in memory.
    pub async fn write_bytes(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        data: impl Into<Bytes>,
        opts: &WriteOptions,
    ) -> Result<FileStat> {
        self.put_content(volume, path, reqwest::Body::from(data.into()), None, opts)
            .await
    }

    async fn put_content(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        body: reqwest::Body,
        length: Option<u64>,
        opts: &WriteOptions,
    ) -> Result<FileStat> {
        let mut req = self
            .request(Method::PUT, &files_url(volume, "content"))
            .query(&[
                ("path", path.as_str()),
                ("overwrite", if opts.overwrite { "true" } else { "false" }),
            ])
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(n) = length {
            // A streamed body of known length goes out plain, not chunked.
            req = req.header(CONTENT_LENGTH, n);
        }
        if let Some(etag) = &opts.if_match {
            let v = HeaderValue::from_str(&format!("\"{}\"", etag.trim_matches('"')))
                .map_err(|_| Error::invalid_argument(format!("invalid etag {etag:?}")))?;
            req = req.header(IF_MATCH, v);
        }
        self.json(req).await
    }

    /// `POST …/files/batch`: unpacks a tar stream (regular files and directories) below
    /// `remote_dir`, all or nothing.
    pub async fn write_batch<S>(
        &self,
        volume: &VolumeName,
        remote_dir: &VolumePath,
        tar_body: S,
    ) -> Result<BatchResult>
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let req = self
            .request(Method::POST, &files_url(volume, "batch"))
            .query(&[("path", remote_dir.as_str())])
            .header(CONTENT_TYPE, "application/x-tar")
            .body(reqwest::Body::wrap_stream(tar_body));
        self.json(req).await
    }

    /// Uploads the tree under `local_dir` to `remote_dir` as one all-or-nothing batch.
    ///
    /// The tar archive is built on a blocking thread while it is sent, through a small
    /// bounded channel: memory stays constant whatever the tree's size, and nothing is
    /// written to local disk. Symlinks and special files are skipped and reported.
    pub async fn write_batch_dir(
        &self,
        volume: &VolumeName,
        local_dir: &Path,
        remote_dir: &VolumePath,
    ) -> Result<BatchUpload> {
        batch::upload_dir(self, volume, local_dir, remote_dir).await
    }

    /// `POST …/files/mkdir`.
    pub async fn mkdir(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        parents: bool,
    ) -> Result<FileStat> {
        let req = self
            .request(Method::POST, &files_url(volume, "mkdir"))
            .json(&json!({ "path": path.as_str(), "parents": parents }));
        self.json(req).await
    }

    /// `POST …/files/move`: renames `src` to `dst`; returns the stat of `dst`.
    pub async fn rename(
        &self,
        volume: &VolumeName,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
    ) -> Result<FileStat> {
        let req = self
            .request(Method::POST, &files_url(volume, "move"))
            .json(&json!({
                "src": src.as_str(), "dst": dst.as_str(), "overwrite": overwrite,
            }));
        self.json(req).await
    }

    /// `POST …/files/copy`: copies `src` to `dst` (directories need `recursive`).
    pub async fn copy(
        &self,
        volume: &VolumeName,
        src: &VolumePath,
        dst: &VolumePath,
        overwrite: bool,
        recursive: bool,
    ) -> Result<FileStat> {
        let req = self.request(Method::POST, &files_url(volume, "copy")).json(&json!({
            "src": src.as_str(), "dst": dst.as_str(), "overwrite": overwrite, "recursive": recursive,
        }));
        self.json(req).await
    }

    /// `DELETE …/files`.
    pub async fn remove(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        recursive: bool,
    ) -> Result<()> {
        let req = self
            .request(Method::DELETE, &format!("/v1/volumes/{volume}/files"))
            .query(&[
                ("path", path.as_str()),
                ("recursive", if recursive { "true" } else { "false" }),
            ]);
        self.send(req).await.map(drop)
    }

    /// `GET …/files/list`: one page, starting after `cursor`.
    pub async fn list_page(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
        cursor: Option<&str>,
    ) -> Result<ListPage> {
        self.list_page_of(volume, path, opts, cursor, None).await
    }

    /// One page with only the given entry `fields` (all when `None`).
    async fn list_page_of<T: serde::de::DeserializeOwned>(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
        cursor: Option<&str>,
        fields: Option<&str>,
    ) -> Result<ListPage<T>> {
        let mut q: Vec<(&str, String)> = vec![
            ("path", path.to_string()),
            ("recursive", opts.recursive.to_string()),
        ];
        if let Some(g) = &opts.glob {
            q.push(("glob", g.clone()));
        }
        if let Some(n) = opts.page_size {
            q.push(("limit", n.to_string()));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c.to_owned()));
        }
        if let Some(f) = fields {
            q.push(("fields", f.to_owned()));
        }
        self.json(
            self.request(Method::GET, &files_url(volume, "list"))
                .query(&q),
        )
        .await
    }

    /// Every entry of a listing, following `next_cursor` page by page as the stream is read.
    pub fn list_stream(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
    ) -> impl Stream<Item = Result<FileStat>> + Send + 'static {
        self.list_stream_of(volume, path, opts, None)
    }

    /// Every entry's path and type only: the server reads no metadata, so this is the fast
    /// way to walk a large tree.
    pub fn list_paths_stream(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
    ) -> impl Stream<Item = Result<PathEntry>> + Send + 'static {
        self.list_stream_of(volume, path, opts, Some("path,type"))
    }

    fn list_stream_of<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
        fields: Option<&'static str>,
    ) -> impl Stream<Item = Result<T>> + Send + 'static {
        struct Cursor {
            client: Client,
            volume: VolumeName,
            path: VolumePath,
            opts: ListOptions,
            next: Option<Option<String>>,
        }
        let start = Cursor {
            client: self.clone(),
            volume: volume.clone(),
            path: path.clone(),
            opts: opts.clone(),
            next: Some(None),
        };
        futures::stream::try_unfold(start, move |mut st| async move {
            let Some(cursor) = st.next.take() else {
                return Ok(None);
            };
            let page: ListPage<T> = st
                .client
                .list_page_of(&st.volume, &st.path, &st.opts, cursor.as_deref(), fields)
                .await?;
            if page.next_cursor.is_some() && page.next_cursor == cursor {
                return Err(Error::internal("the server repeated a listing cursor"));
            }
            st.next = page.next_cursor.map(Some);
            Ok(Some((
                futures::stream::iter(page.entries.into_iter().map(Ok)),
                st,
            )))
        })
        .try_flatten()
    }

    /// Every entry of a listing (all pages), sorted by path.
    pub async fn list(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ListOptions,
    ) -> Result<Vec<FileStat>> {
        self.list_stream(volume, path, opts).try_collect().await
    }

    /// `GET …/files/stat`.
    pub async fn stat(&self, volume: &VolumeName, path: &VolumePath) -> Result<FileStat> {
        let req = self
            .request(Method::GET, &files_url(volume, "stat"))
            .query(&[("path", path.as_str())]);
        self.json(req).await
    }

    /// `GET …/files/exists`.
    pub async fn exists(&self, volume: &VolumeName, path: &VolumePath) -> Result<bool> {
        let req = self
            .request(Method::GET, &files_url(volume, "exists"))
            .query(&[("path", path.as_str())]);
        Ok(self.json::<wire::Exists>(req).await?.exists)
    }

    // ----- plumbing -----

    fn request(&self, method: Method, route: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{route}", self.base));
        match &self.auth {
            Some(a) => req.header(AUTHORIZATION, a.clone()),
            None => req,
        }
    }

    /// Sends a request; a non-2xx answer becomes the server's error.
    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.api_error(resp).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        self.decode(resp).await
    }

    async fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T> {
        let body = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::internal(format!("unexpected answer from {}: {e}", self.base)))
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        if e.is_connect() || (e.is_timeout() && !e.is_body()) {
            Error::unavailable(format!("cannot reach {}: {}", self.base, root_cause(&e)))
        } else if e.is_decode() {
            Error::internal(format!(
                "unexpected answer from {}: {}",
                self.base,
                root_cause(&e)
            ))
        } else {
            Error::unavailable(format!(
                "request to {} failed: {}",
                self.base,
                root_cause(&e)
            ))
        }
    }

    async fn api_error(&self, resp: Response) -> Error {
        let status = resp.status();
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ERROR_BODY {
                break;
            }
        }
        error_from_body(&self.base, status, &body)
    }
}

/// Builds an error from a failed response: the server's JSON error when there is one.
fn error_from_body(base: &str, status: StatusCode, body: &[u8]) -> Error {
    if let Ok(w) = serde_json::from_slice::<wire::ErrorBody>(body) {
        let code = ErrorCode::parse(&w.error.code).unwrap_or_else(|| code_of_status(status));
        return Error::new(code, w.error.message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let snippet: String = text.chars().take(200).collect();
    let detail = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    Error::new(
        code_of_status(status),
        format!("{base} answered HTTP {status}{detail}"),
    )
}

/// The error code a status means, for answers without a JSON error body (e.g. a proxy's).
fn code_of_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 | 405 | 422 => ErrorCode::InvalidArgument,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        409 | 412 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        507 => ErrorCode::QuotaExceeded,
        429 => ErrorCode::ResourceExhausted,
        502..=504 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// The innermost cause of an error, which is the one that says what happened
/// (`Connection refused (os error 111)` rather than `error sending request`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn normalize_url(url: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid_argument(format!("invalid server URL {url:?}: {why}"));
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                "https is not supported by this client build; use http://",
            ))
        }
        _ => return Err(bad("expected http://HOST:PORT")),
    }
    if parsed.host_str().unwrap_or("").is_empty() {
        return Err(bad("no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("a server URL has no query or fragment"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

fn files_url(volume: &VolumeName, op: &str) -> String {
    format!("/v1/volumes/{volume}/files/{op}")
}

fn label_query(labels: &[LabelSelector]) -> Vec<(&'static str, String)> {
    labels
        .iter()
        .map(|l| ("label", format!("{}={}", l.key, l.value)))
        .collect()
}

fn fields_param(fields: &[VolumeField]) -> String {
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_file_is_read_in_whole_chunks_and_a_shrunk_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(2 * FILE_CHUNK + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let read = |size: u64| {
            let f = std::fs::File::open(&p).unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let r = read_file_chunks(f, size, &tx);
            drop(tx);
            let mut chunks = Vec::new();
            while let Ok(c) = rx.try_recv() {
                chunks.push(c.unwrap());
            }
            (r, chunks)
        };
        let (r, chunks) = read(data.len() as u64);
        r.unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks[..2].iter().all(|c| c.len() == FILE_CHUNK));
        assert_eq!(chunks.concat(), data);
        // The size at the start is what is sent, even if the file is longer now.
        let (r, chunks) = read(FILE_CHUNK as u64 + 1);
        r.unwrap();
        assert_eq!(chunks.concat(), data[..FILE_CHUNK + 1]);
        // Shorter than its size (it shrank): an error after what was there.
        let (r, chunks) = read(data.len() as u64 + 1);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("shrank"), "{e}");
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn urls() {
        assert_eq!(
            normalize_url("http://127.0.0.1:7420/").unwrap(),
            "http://127.0.0.1:7420"
        );
        assert_eq!(
            normalize_url(" http://h:1/prefix/ ").unwrap(),
            "http://h:1/prefix"
        );
        assert_eq!(
            normalize_url("http://localhost").unwrap(),
            "http://localhost"
        );
        for bad in [
            "",
            "127.0.0.1:7420",
            "ftp://h",
            "https://h",
            "http://h/?x=1",
            "http://",
        ] {
            let e = normalize_url(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn error_bodies() {
        let e = error_from_body(
            "http://x",
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"volume \"x\" not found","retryable":false}}"#,
        );
        assert_eq!(e, Error::not_found("volume \"x\" not found"));
        let e = error_from_body(
            "http://x",
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.contains("502") && e.message.contains("bad gateway"),
            "{}",
            e.message
        );
        let e = error_from_body("http://x", StatusCode::INSUFFICIENT_STORAGE, b"");
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        let e = error_from_body(
            "http://x",
            StatusCode::CONFLICT,
            br#"{"error":{"code":"new_code","message":"m"}}"#,
        );
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Conflict, "m"));
    }

    #[test]
    fn keys_are_checked_and_hidden() {
        assert!(Client::new("http://h", "bad\nkey").is_err());
        let c = Client::new("http://h:1/", "nsk_secret").unwrap();
        assert_eq!(c.url(), "http://h:1");
        assert!(!format!("{c:?}").contains("nsk_secret"));
        assert!(Client::new("http://h", "").unwrap().auth.is_none());
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // Bind then drop, so the port is (very likely) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = Client::new(&url, "k").unwrap().health().await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            e.message.starts_with(&format!("cannot reach {url}: ")),
            "{}",
            e.message
        );
    }
}
