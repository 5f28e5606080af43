//! Uploading a local directory tree as one all-or-nothing batch (a tar stream).
//!
//! The archive is built on a blocking thread and handed to the HTTP body through a bounded
//! channel of 256 KiB chunks: memory stays constant, nothing is staged on local disk, and
//! the server unpacks while we read.

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use nullspace_core::{Error, Result, VolumeName, VolumePath};
use tokio::sync::mpsc;

use crate::{BatchResult, Client, Progress};

const CHUNK: usize = 256 * 1024;
const CHANNEL_DEPTH: usize = 4;

/// The outcome of [`Client::write_batch_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpload {
    /// What the server wrote.
    pub result: BatchResult,
    /// Local entries left out: symlinks, sockets, devices (a batch holds files and directories).
    pub skipped: Vec<PathBuf>,
}

enum BuildError {
    /// A local problem (unreadable file, non-UTF-8 name): the upload was aborted because of it.
    Local(Error),
    /// The request ended first (the server refused it): its error is the answer.
    Aborted,
}

pub(crate) async fn upload_dir(
    client: &Client,
    volume: &VolumeName,
    local_dir: &Path,
    remote_dir: &VolumePath,
) -> Result<BatchUpload> {
    upload_dir_with_progress(client, volume, local_dir, remote_dir, None).await
}

/// Like [`upload_dir`], calling `progress` with the number of archive bytes sent so far.
pub(crate) async fn upload_dir_with_progress(
    client: &Client,
    volume: &VolumeName,
    local_dir: &Path,
    remote_dir: &VolumePath,
    progress: Option<Progress>,
) -> Result<BatchUpload> {
    let meta = tokio::fs::metadata(local_dir).await.map_err(|e| {
        Error::invalid_argument(format!("cannot read {}: {e}", local_dir.display()))
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid_argument(format!(
            "{} is not a directory",
            local_dir.display()
        )));
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let root = local_dir.to_path_buf();
    let builder = tokio::task::spawn_blocking(move || build_tar(&root, tx, progress));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let sent = client.write_batch(volume, remote_dir, body).await;
    let built = builder
        .await
        .map_err(|e| Error::internal(format!("archiving task failed: {e}")))?;
    match (sent, built) {
        (_, Err(BuildError::Local(e))) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(result), Ok(skipped)) => Ok(BatchUpload { result, skipped }),
        (Ok(_), Err(BuildError::Aborted)) => Err(Error::internal(
            "the server answered before the whole archive was sent",
        )),
    }
}

/// Writes into the channel in `CHUNK`-sized pieces, blocking while the network catches up.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
    sent: u64,
    progress: Option<Progress>,
}

impl ChannelWriter {
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.sent += chunk.len() as u64;
        if let Some(p) = &self.progress {
            p(self.sent);
        }
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

/// Yields exactly `left` bytes of a file, failing if it shrank meanwhile (the tar header
/// already announced its size).
struct ExactReader<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being uploaded", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn build_tar(
    root: &Path,
    tx: mpsc::Sender<io::Result<Bytes>>,
    progress: Option<Progress>,
) -> Result<Vec<PathBuf>, BuildError> {
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: BytesMut::with_capacity(CHUNK),
        sent: 0,
        progress,
    };
    let mut tar = tar::Builder::new(writer);
    let mut skipped = Vec::new();
    let result = append_dir(&mut tar, root, "", &mut skipped)
        .and_then(|()| tar.finish().map_err(|e| io_error(root, e)))
        .and_then(|()| tar.get_mut().flush().map_err(|e| io_error(root, e)));
    match result {
        Ok(()) => Ok(skipped),
        Err(_) if tx.is_closed() => Err(BuildError::Aborted),
        Err(e) => {
            // Make the request fail too, so the server discards what it has staged.
            let _ = tx.blocking_send(Err(io::Error::other(e.message.clone())));
            Err(BuildError::Local(e))
        }
    }
}

fn io_error(path: &Path, e: io::Error) -> Error {
    Error::invalid_argument(format!("cannot upload {}: {e}", path.display()))
}

/// Appends the entries below `dir` (archive prefix `rel`), sorted by name, depth first.
fn append_dir(
    tar: &mut tar::Builder<ChannelWriter>,
    dir: &Path,
    rel: &str,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|it| it.collect::<io::Result<Vec<_>>>())
        .map_err(|e| io_error(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            Error::invalid_argument(format!(
                "cannot upload {}: the name is not valid UTF-8",
                path.display()
            ))
        })?;
        let child = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{child}/"), io::empty())
                .map_err(|e| io_error(&path, e))?;
            append_dir(tar, &path, &child, skipped)?;
        } else if meta.is_file() {
            let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
            let len = meta.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            let reader = ExactReader {
                inner: file.take(len),
                left: len,
                path: path.clone(),
            };
            tar.append_data(&mut header, &child, reader)
                .map_err(|e| io_error(&path, e))?;
        } else {
            skipped.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_a_tree_in_order() {
        let dir = std::env::temp_dir().join(format!("nullspace-batch-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/empty")).unwrap();
        std::fs::write(dir.join("b.txt"), b"bee").unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink("b.txt", dir.join("link")).unwrap();

        let (tx, mut rx) = mpsc::channel(1024);
        let skipped = match build_tar(&dir, tx, None) {
            Ok(s) => s,
            Err(_) => panic!("build failed"),
        };
        assert_eq!(skipped, vec![dir.join("link")]);
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut content = String::new();
            e.read_to_string(&mut content).unwrap();
            seen.push((e.path().unwrap().to_string_lossy().into_owned(), content));
        }
        let names: Vec<_> = seen.iter().map(|(p, c)| format!("{p}={c}")).collect();
        assert_eq!(names, ["b.txt=bee", "sub/=", "sub/a.txt=a", "sub/empty/="]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
