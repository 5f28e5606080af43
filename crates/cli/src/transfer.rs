//! `nullspace volume upload | download | url`: moving files, trees and streams in and out.
//!
//! Uploads of a file go through the tus endpoint in chunks and remember the upload's URL in
//! a small resume record under `$XDG_CACHE_HOME/nullspace/uploads/`, keyed by server, volume,
//! remote path and the local file's size and mtime: running the same upload again continues
//! from the server's durable offset. Directory downloads come as one tar stream unpacked
//! here by [`crate::unpack`], which refuses any entry that would land outside the target
//! directory.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{Stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nullspace_client::{
    ArchiveFormat, Client, FileContent, OnCreated, Progress, ResumableOptions, SignedMethod,
    WriteOptions,
};
use nullspace_core::{format_size, parse_size, Error, FileType, VolumeName, VolumePath};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::output::{self, stdout_error};
use crate::unpack::unpack_tar;
use crate::volume::parse_path;
use crate::{config, Global};

/// `nullspace volume upload`.
#[derive(clap::Args)]
#[command(after_long_help = "\
A file goes through the resumable (tus) endpoint in chunks. If the upload is interrupted (the
command killed, the connection or the server gone), running the same command again continues
from what the server had stored durably; the upload's URL is kept meanwhile in
$XDG_CACHE_HOME/nullspace/uploads/ (default ~/.cache/nullspace/uploads/).

A directory is sent as one all-or-nothing tar stream: its layout and empty directories are
kept, symlinks and special files are skipped (with a warning), and its contents go into
REMOTE (created if missing; files already there are replaced).

`-` reads stdin and sends it as one streamed PUT. Such an upload cannot resume: if it is
interrupted nothing is written, and it must be run again from the start.

A progress bar (bytes, rate, ETA) is drawn on stderr when it is a terminal.")]
pub struct UploadArgs {
    /// Volume name
    name: String,
    /// Local file or directory, or `-` for stdin
    local: PathBuf,
    /// Destination inside the volume [default: /NAME-OF-LOCAL]; for a file, a path ending
    /// in `/` or naming an existing directory puts the file inside it
    remote: Option<String>,
    /// Send the file in checked chunks of SIZE, e.g. 16MiB, each with a sha256 the server
    /// verifies and a durable offset after each (files only) [default: the rest of the file
    /// in one streamed request; if it breaks, what arrived is kept and the upload resumes]
    #[arg(long, value_name = "SIZE")]
    chunk_size: Option<String>,
}

/// `nullspace volume download`.
#[derive(clap::Args)]
#[command(after_long_help = "\
A file is streamed to LOCAL (default: its name in the current directory; into LOCAL when
that is a directory). It is written to a partial file next to LOCAL first and renamed at the
end; if the download is interrupted, running it again continues the partial file with an
HTTP Range request, as long as the remote file has not changed.

A directory is fetched as one tar stream and unpacked into LOCAL (default: the directory's
name; created if missing). Entries that would land outside LOCAL are refused. Symlinks are
recreated only when their target stays inside LOCAL (relative, its `..` first and not above
LOCAL); any other link (`-> /etc/passwd`, `-> ../../x`) is skipped with a warning. With
--archive the directory is saved as one archive file instead (default name: NAME.FORMAT).

`-` writes the file, or the directory as an archive (tar unless --archive says otherwise),
to stdout.")]
pub struct DownloadArgs {
    /// Volume name
    name: String,
    /// File or directory inside the volume
    remote: String,
    /// Local destination, or `-` for stdout
    local: Option<PathBuf>,
    /// Download a directory as one archive: tar, tar.gz or zip
    #[arg(long, value_name = "FORMAT")]
    archive: Option<String>,
}

/// `nullspace volume url`.
#[derive(clap::Args)]
#[command(after_long_help = "\
Anyone holding the URL can use it, without an API key, until it expires: GET downloads the
file, PUT uploads (creates or replaces) it, e.g. `curl -T FILE URL`. The URL is bound to the
volume, the path and the method; any change to it makes it invalid.")]
pub struct UrlArgs {
    /// Volume name
    name: String,
    /// Path inside the volume
    path: String,
    /// Lifetime: seconds, or a number with s, m, h or d (e.g. 30s, 15m, 1h, 7d); at most 7d
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    expires: String,
    /// GET (download) or PUT (upload)
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    method: String,
}

/// Parses `90`, `30s`, `15m`, `1h`, `7d` or sums like `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::invalid_argument(format!(
            "invalid duration {s:?}: use seconds or a number with s, m, h or d (e.g. 15m, 1h, 7d)"
        ))
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

// ----------------------------------------------------------------------------- progress

/// A progress bar on stderr when it is a terminal; a no-op otherwise.
fn progress_bar(total: Option<u64>, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = match total {
        Some(_) => ProgressStyle::with_template(
            "{bytes:>10}/{total_bytes:<10} [{bar:30}] {binary_bytes_per_sec:>12}  ETA {eta}",
        ),
        None => ProgressStyle::with_template(
            "{spinner} {bytes:>10} {binary_bytes_per_sec:>12}  {elapsed}",
        ),
    };
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn bar_progress(bar: &ProgressBar) -> Progress {
    let bar = bar.clone();
    Arc::new(move |pos| bar.set_position(pos))
}

/// Counts the bytes of a stream into a progress bar as they pass.
fn counted<S>(stream: S, bar: &ProgressBar) -> impl Stream<Item = S::Item>
where
    S: Stream<Item = nullspace_core::Result<bytes::Bytes>>,
{
    let bar = bar.clone();
    stream.inspect(move |c| {
        if let Ok(c) = c {
            bar.inc(c.len() as u64);
        }
    })
}

// ----------------------------------------------------------------------------- resume records

/// What a resume record holds: enough to find the upload again and to show what it was.
#[derive(Debug, Serialize, Deserialize)]
struct ResumeRecord {
    upload_url: String,
    server: String,
    volume: String,
    path: String,
    size: u64,
    mtime_ns: i128,
}

/// `$XDG_CACHE_HOME/nullspace/uploads`, else `~/.cache/nullspace/uploads`.
fn records_dir() -> Option<PathBuf> {
    let abs = |v: &str| {
        std::env::var_os(v)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = abs("XDG_CACHE_HOME").or_else(|| abs("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("nullspace").join("uploads"))
}

/// The record's file: a hash of server, volume, remote path, local size and mtime (the
/// Python SDK derives the same name, so either can resume the other's upload).
fn record_path(
    server: &str,
    volume: &str,
    path: &str,
    size: u64,
    mtime_ns: i128,
) -> Option<PathBuf> {
    Some(records_dir()?.join(record_name(server, volume, path, size, mtime_ns)))
}

fn record_name(server: &str, volume: &str, path: &str, size: u64, mtime_ns: i128) -> String {
    let key = format!("{server}\n{volume}\n{path}\n{size}\n{mtime_ns}");
    format!("{}.json", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

fn read_record(path: &Path) -> Option<ResumeRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the record atomically, readable by the user only (it names an upload URL).
fn write_record(path: &Path, rec: &ResumeRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(rec).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

// ----------------------------------------------------------------------------- upload

/// The base name of a local path as a volume path component.
fn local_name(local: &Path) -> anyhow::Result<String> {
    let abs;
    let p = if local.file_name().is_none() {
        abs = std::path::absolute(local).unwrap_or_else(|_| local.to_path_buf());
        abs.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .next_back()
            .map(PathBuf::from)
            .unwrap_or_default()
    } else {
        local.to_path_buf()
    };
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "cannot name {} in the volume: give REMOTE",
                local.display()
            ))
        })?;
    Ok(name.to_owned())
}

pub async fn upload(a: UploadArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let name = VolumeName::parse(&a.name)?;
    let chunk_size = match &a.chunk_size {
        None => None,
        Some(text) => Some(
            parse_size(text)
                .ok()
                .filter(|n| *n > 0 && *n <= 1 << 30)
                .ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "invalid --chunk-size {text:?}: expected a size from 1 byte to 1GiB, e.g. 16MiB"
                    ))
                })? as usize,
        ),
    };
    let client = config::client(g)?;

    if a.local.as_os_str() == "-" {
        let remote = a.remote.as_deref().ok_or_else(|| {
            Error::invalid_argument("uploading stdin (`-`) needs REMOTE, the path to write")
        })?;
        let remote = parse_path("remote path", remote)?;
        if remote.is_root() || remote.as_str().ends_with('/') {
            return Err(Error::invalid_argument("REMOTE must name a file, not a directory").into());
        }
        let bar = progress_bar(None, g.json);
        let stdin = tokio_util::io::ReaderStream::with_capacity(tokio::io::stdin(), 256 * 1024);
        let body = stdin.inspect({
            let bar = bar.clone();
            move |c| {
                if let Ok(c) = c {
                    bar.inc(c.len() as u64);
                }
            }
        });
        let stat = client
            .write_file(&name, &remote, body, &WriteOptions::default())
            .await;
        bar.finish_and_clear();
        let stat = stat?;
        if g.json {
            output::json(&stat)?;
        } else {
            output::line(format_args!(
                "uploaded {} from stdin to {name}:{}",
                format_size(stat.size),
                stat.path
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let meta = std::fs::metadata(&a.local)
        .with_context(|| format!("cannot read {}", a.local.display()))?;
    if meta.is_dir() {
        let remote = match &a.remote {
            Some(r) => parse_path("remote dir", r)?,
            None => VolumePath::root().child(&local_name(&a.local)?),
        };
        return upload_dir(&client, g, &name, &a.local, &remote).await;
    }
    if !meta.is_file() {
        return Err(Error::invalid_argument(format!(
            "{} is neither a regular file nor a directory",
            a.local.display()
        ))
        .into());
    }
    let remote = match &a.remote {
        None => VolumePath::root().child(&local_name(&a.local)?),
        Some(r) => {
            let p = parse_path("remote path", r)?;
            let into_dir = r.ends_with('/')
                || p.is_root()
                || matches!(client.stat(&name, &p).await, Ok(st) if st.file_type == FileType::Dir);
            if into_dir {
                p.child(&local_name(&a.local)?)
            } else {
                p
            }
        }
    };
    upload_file(&client, g, &name, &a.local, &meta, &remote, chunk_size).await
}

async fn upload_file(
    client: &Client,
    g: &Global,
    name: &VolumeName,
    local: &Path,
    meta: &std::fs::Metadata,
    remote: &VolumePath,
    chunk_size: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let size = meta.len();
    let record = record_path(
        client.url(),
        name.as_str(),
        remote.as_str(),
        size,
        mtime_ns(meta),
    );
    let resume_url = record
        .as_deref()
        .and_then(read_record)
        .map(|r| r.upload_url);
    let bar = progress_bar(Some(size), g.json);
    let on_created = record.clone().map(|path| {
        let rec = ResumeRecord {
            upload_url: String::new(),
            server: client.url().to_owned(),
            volume: name.to_string(),
            path: remote.to_string(),
            size,
            mtime_ns: mtime_ns(meta),
        };
        let rec = std::sync::Mutex::new(rec);
        Arc::new(move |url: &str| {
            if let Ok(mut r) = rec.lock() {
                r.upload_url = url.to_owned();
                // Without a record the upload still works; it just cannot resume later.
                let _ = write_record(&path, &r);
            }
        }) as OnCreated
    });
    let opts = ResumableOptions {
        chunk_size,
        resume_url,
        on_created,
        progress: Some(bar_progress(&bar)),
        ..ResumableOptions::default()
    };
    let result = client.upload_resumable(name, local, remote, &opts).await;
    bar.finish_and_clear();
    let done = result?;
    if let Some(r) = &record {
        let _ = std::fs::remove_file(r);
    }
    if g.json {
        let stat = client.stat(name, remote).await?;
        output::json(&stat)?;
    } else {
        let resumed = if done.resumed_from > 0 {
            format!(" (resumed at {})", format_size(done.resumed_from))
        } else {
            String::new()
        };
        output::line(format_args!(
            "uploaded {} to {name}:{remote}{resumed}",
            format_size(size)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Size of the tar stream of a tree, for the progress bar (headers and padding included).
fn tar_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                *total += 512;
                walk(&e.path(), total);
            } else if m.is_file() {
                *total += 512 + m.len().div_ceil(512) * 512;
            }
        }
    }
    let mut total = 1024;
    walk(dir, &mut total);
    // The tar writer pads the stream to a multiple of 10240 bytes.
    total.div_ceil(10240) * 10240
}

async fn upload_dir(
    client: &Client,
    g: &Global,
    name: &VolumeName,
    local: &Path,
    remote: &VolumePath,
) -> anyhow::Result<ExitCode> {
    let bar = if g.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let root = local.to_path_buf();
        let total = tokio::task::spawn_blocking(move || tar_size(&root))
            .await
            .unwrap_or(0);
        progress_bar(Some(total), g.json)
    };
    let up = client
        .write_batch_dir_with_progress(name, local, remote, Some(bar_progress(&bar)))
        .await;
    bar.finish_and_clear();
    let up = up?;
    crate::volume::print_batch(g, "uploaded", &up, name, remote)?;
    Ok(ExitCode::SUCCESS)
}

// ----------------------------------------------------------------------------- download

pub async fn download(a: DownloadArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let name = VolumeName::parse(&a.name)?;
    let remote = parse_path("remote path", &a.remote)?;
    let format = a.archive.as_deref().map(ArchiveFormat::parse).transpose()?;
    let client = config::client(g)?;
    let stat = client.stat(&name, &remote).await?;
    let to_stdout = a.local.as_deref().is_some_and(|l| l.as_os_str() == "-");
    let remote_name = remote
        .file_name()
        .map(str::to_owned)
        .unwrap_or_else(|| name.to_string());

    match stat.file_type {
        FileType::Dir => {}
        _ if format.is_some() => {
            return Err(Error::invalid_argument(format!(
                "{remote} is not a directory: --archive is for directories; download the file without it"
            ))
            .into());
        }
        FileType::Fifo | FileType::Socket | FileType::Device => {
            return Err(Error::invalid_argument(format!(
                "{remote} is a special file (a FIFO, socket or device): it has no content to download"
            ))
            .into());
        }
        FileType::File | FileType::Symlink => {
            if to_stdout {
                let content = client.read_file(&name, &remote, None, None).await?;
                let bar = progress_bar(content.length, g.json);
                let r = to_stdout_stream(counted(content, &bar)).await;
                bar.finish_and_clear();
                r?;
                return Ok(ExitCode::SUCCESS);
            }
            let local = match a.local {
                None => PathBuf::from(&remote_name),
                Some(l) if l.is_dir() => l.join(&remote_name),
                Some(l) => l,
            };
            let (bytes, resumed) = download_file(&client, g, &name, &remote, &local).await?;
            if g.json {
                output::json(&serde_json::json!({
                    "path": remote.as_str(), "local": local, "bytes": bytes, "resumed_from": resumed,
                }))?;
            } else {
                let resumed = if resumed > 0 {
                    format!(" (resumed at {})", format_size(resumed))
                } else {
                    String::new()
                };
                output::line(format_args!(
                    "downloaded {name}:{remote} ({}) to {}{resumed}",
                    format_size(bytes),
                    local.display()
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }

    // A directory: as an archive (stdout or a file), or unpacked into a local directory.
    if to_stdout || format.is_some() {
        let format = format.unwrap_or(ArchiveFormat::Tar);
        let content = client.download_archive(&name, &remote, format).await?;
        let bar = progress_bar(None, g.json);
        if to_stdout {
            let r = to_stdout_stream(counted(content, &bar)).await;
            bar.finish_and_clear();
            r?;
            return Ok(ExitCode::SUCCESS);
        }
        let local = match a.local {
            None => PathBuf::from(format!("{remote_name}.{format}")),
            Some(l) if l.is_dir() => l.join(format!("{remote_name}.{format}")),
            Some(l) => l,
        };
        let r = save_stream(counted(content, &bar), &local).await;
        bar.finish_and_clear();
        let bytes = r?;
        if g.json {
            output::json(&serde_json::json!({
                "path": remote.as_str(), "local": local, "bytes": bytes, "format": format.as_str(),
            }))?;
        } else {
            output::line(format_args!(
                "saved {name}:{remote} as {} ({})",
                local.display(),
                format_size(bytes)
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let local = a.local.unwrap_or_else(|| PathBuf::from(&remote_name));
    let content = client
        .download_archive(&name, &remote, ArchiveFormat::Tar)
        .await?;
    let bar = progress_bar(None, g.json);
    let stream = counted(content, &bar).map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let dest = local.clone();
    let unpacked = tokio::task::spawn_blocking(move || unpack_tar(reader, &dest))
        .await
        .map_err(|e| anyhow::anyhow!("unpacking failed: {e}"))?;
    bar.finish_and_clear();
    let n = unpacked?;
    if g.json {
        output::json(&serde_json::json!({
            "path": remote.as_str(), "local": local, "files": n.files, "dirs": n.dirs,
            "symlinks": n.symlinks, "skipped_symlinks": n.skipped_symlinks, "bytes": n.bytes,
        }))?;
    } else {
        let files = if n.files == 1 { "file" } else { "files" };
        output::line(format_args!(
            "downloaded {} {files} ({}) from {name}:{remote} into {}",
            n.files,
            format_size(n.bytes),
            local.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn to_stdout_stream(
    stream: impl Stream<Item = nullspace_core::Result<bytes::Bytes>>,
) -> anyhow::Result<()> {
    let mut stream = std::pin::pin!(stream);
    let mut out = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await.map_err(stdout_error)?;
    }
    out.flush().await.map_err(stdout_error)?;
    Ok(())
}

/// A temp name next to `local`, hidden, for a download in progress.
fn partial_path(local: &Path, tag: &str) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    local.with_file_name(format!(".{name}.{tag}.nspart"))
}

/// Removes partial downloads of `local` left by runs against an older version of the file.
fn remove_stale_partials(local: &Path, keep: &Path) {
    let (Some(dir), Some(name)) = (local.parent(), local.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(tag) = n
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".nspart"))
        {
            // Only etag-named partials: a `tmpPID` one may belong to a running download.
            if !tag.starts_with("tmp") && e.file_name() != keep.file_name().unwrap_or_default() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Streams to a temp file beside `local`, fsyncs, and renames it into place.
async fn save_stream(
    stream: impl Stream<Item = nullspace_core::Result<bytes::Bytes>>,
    local: &Path,
) -> anyhow::Result<u64> {
    let tmp = partial_path(local, &format!("tmp{}", std::process::id()));
    let r = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut stream = std::pin::pin!(stream);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            f.write_all(&chunk)
                .await
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            n += chunk.len() as u64;
        }
        f.sync_all().await?;
        tokio::fs::rename(&tmp, local)
            .await
            .with_context(|| format!("cannot write {}", local.display()))?;
        anyhow::Ok(n)
    }
    .await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    r
}

/// Downloads a file into `local` through a partial file named after the remote etag, so an
/// interrupted download of an unchanged file continues with a Range request. Returns the
/// size and the offset it resumed at.
async fn download_file(
    client: &Client,
    g: &Global,
    name: &VolumeName,
    remote: &VolumePath,
    local: &Path,
) -> anyhow::Result<(u64, u64)> {
    let stat = client.stat(name, remote).await?;
    let tag: String = stat
        .etag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    let part = partial_path(local, &tag);
    remove_stale_partials(local, &part);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let start = if have > 0 && have <= stat.size {
        have
    } else {
        0
    };
    let (content, _) = if start > 0 {
        client.read_file_from(name, remote, start).await?
    } else {
        (client.read_file(name, remote, None, None).await?, None)
    };
    if content.etag.as_deref().is_some_and(|e| e != stat.etag) {
        // Changed since the stat: start over with what the server sends now.
        let _ = std::fs::remove_file(&part);
        return Err(Error::conflict(format!(
            "{remote} changed while it was being downloaded; run the download again"
        ))
        .into());
    }
    let bar = progress_bar(Some(stat.size), g.json);
    bar.set_position(start);
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(start > 0)
        .write(true)
        .truncate(start == 0)
        .open(&part)
        .await
        .with_context(|| format!("cannot create {}", part.display()))?;
    let mut stream: FileContent = content;
    let mut n = start;
    let r: anyhow::Result<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            f.write_all(&chunk)
                .await
                .with_context(|| format!("cannot write {}", part.display()))?;
            n += chunk.len() as u64;
            bar.set_position(n);
        }
        f.sync_all().await?;
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    r?;
    if n != stat.size {
        return Err(Error::unavailable(format!(
            "the download of {remote} ended at {n} of {} bytes; run it again to continue",
            stat.size
        ))
        .into());
    }
    tokio::fs::rename(&part, local)
        .await
        .with_context(|| format!("cannot write {}", local.display()))?;
    Ok((n, start))
}

// ----------------------------------------------------------------------------- url

pub async fn url(a: UrlArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let name = VolumeName::parse(&a.name)?;
    let path = parse_path("path", &a.path)?;
    let method = SignedMethod::parse(&a.method)?;
    let expires = parse_duration(&a.expires)?;
    let signed = config::client(g)?
        .sign_url(&name, &path, method, expires)
        .await?;
    if g.json {
        output::json(&signed)?;
    } else {
        output::line(&signed.url)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 604800),
            ("90", 90),
            ("1h30m", 5400),
        ] {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_secs(secs), "{s}");
        }
        for bad in ["", "h", "1x", "1h30", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_are_keyed_by_everything() {
        let a = record_name("http://h:1", "v", "/f", 10, 5);
        assert_eq!(a.len(), 64 + ".json".len());
        for b in [
            record_name("http://h:2", "v", "/f", 10, 5),
            record_name("http://h:1", "w", "/f", 10, 5),
            record_name("http://h:1", "v", "/g", 10, 5),
            record_name("http://h:1", "v", "/f", 11, 5),
            record_name("http://h:1", "v", "/f", 10, 6),
        ] {
            assert_ne!(a, b);
        }
        // The Python SDK computes the same name (tests/test_transfers.py checks this value).
        assert_eq!(
            record_name(
                "http://127.0.0.1:7420",
                "data",
                "/big.bin",
                1024,
                1_700_000_000_123_456_789
            ),
            format!(
                "{}.json",
                hex::encode(sha2::Sha256::digest(
                    b"http://127.0.0.1:7420\ndata\n/big.bin\n1024\n1700000000123456789"
                ))
            )
        );
    }
}
