//! Resumable uploads (the data side of the tus protocol).
//!
//! An upload lives in the volume's `staging/uploads/` as `<id>.data` (the bytes) and
//! `<id>.json` (its state). The state's `offset` only ever names bytes that were fsynced before
//! the state was written, so after a crash the data file is cut back to `offset` and the upload
//! resumes exactly there. Both files sit on the volume's file system, so any server sharing the
//! data root can resume an upload, and a finished upload is published by `rename` like any
//! other write. An exclusive `flock` on the data file serialises appends across processes.

//!
//! This module keeps those two files; what an upload means for the volume (the cap when it
//! starts, publishing when it completes) is `VolumeHandle`'s (`handle/upload.rs`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use nullspace_core::{FileStat, VolumePath};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{FsError, FsResult};
pub use crate::staging::UPLOADS_DIR;
use crate::staging::{start_writeback, Staging, WRITEBACK_STEP};

/// The durable state of one upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadState {
    pub id: String,
    /// Destination path inside the volume.
    pub path: String,
    /// Declared total length.
    pub length: u64,
    /// Bytes stored durably so far.
    pub offset: u64,
    /// The client's `Upload-Metadata`, echoed back on HEAD.
    pub metadata: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set once the upload was published at `path`.
    pub completed: Option<FileStat>,
}

/// A checksum the client sent for one chunk.
#[derive(Debug, Clone)]
pub enum ChunkChecksum {
    Sha1(Vec<u8>),
    Sha256(Vec<u8>),
}

/// Why an upload operation was refused, beyond the usual file errors.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload {0:?} not found")]
    NotFound(String),
    #[error("upload {0:?} has expired")]
    Expired(String),
    #[error("offset {given} does not match the upload's offset {current}")]
    OffsetMismatch { given: u64, current: u64 },
    #[error("the chunk's checksum does not match its content")]
    ChecksumMismatch,
    #[error("the chunk would take the upload past its declared length of {0} bytes")]
    TooLong(u64),
    #[error("upload {0:?} is being written by another request")]
    Busy(String),
    #[error(transparent)]
    Fs(#[from] FsError),
}

pub type UploadResult<T> = Result<T, UploadError>;

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The uploads of one volume, in its staging area.
pub(crate) struct Uploads<'s> {
    staging: &'s Staging,
}

/// The two files of one upload (its id checked).
pub(crate) struct UploadFiles {
    state: PathBuf,
    data: PathBuf,
}

/// The data file of an upload whose every byte is stored, when a request looks at it.
pub(crate) enum DataLock {
    /// It cannot be opened: it was published already.
    Gone,
    /// Locked by this request (until the file is dropped).
    Held(File),
    /// Another request holds it.
    Busy,
}

impl Uploads<'_> {
    /// The uploads kept in `staging`.
    pub(crate) fn new(staging: &Staging) -> Uploads<'_> {
        Uploads { staging }
    }

    /// The files of upload `id` (the directory is made if needed); `NotFound` for an id
    /// this server could not have given.
    pub(crate) fn files(&self, id: &str) -> UploadResult<UploadFiles> {
        if !valid_id(id) {
            return Err(UploadError::NotFound(id.to_owned()));
        }
        let dir = self.staging.uploads_dir();
        std::fs::create_dir_all(&dir).map_err(|e| FsError::from_io("uploads", e))?;
        Ok(UploadFiles {
            state: dir.join(format!("{id}.json")),
            data: dir.join(format!("{id}.data")),
        })
    }

    /// The ids of every upload with a state file (a volume that never had an upload gets no
    /// directory).
    pub(crate) fn ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.staging.uploads_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect()
    }

    /// Starts the files of a new upload of `length` bytes to `path`.
    pub(crate) fn create(
        &self,
        path: &VolumePath,
        length: u64,
        metadata: Option<String>,
        ttl: Duration,
    ) -> UploadResult<(UploadFiles, UploadState)> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let files = self.files(&id)?;
        File::create(&files.data)
            .and_then(|f| f.sync_all())
            .map_err(|e| FsError::from_io(path.as_str(), e))?;
        let now = Utc::now();
        let state = UploadState {
            id,
            path: path.to_string(),
            length,
            offset: 0,
            metadata,
            created_at: now,
            expires_at: now + ttl,
            completed: None,
        };
        files.save(&state)?;
        Ok((files, state))
    }
}

/// Where a complete upload's data lies, relative to staging (what publishing renames).
pub(crate) fn staged_data(id: &str) -> String {
    format!("{UPLOADS_DIR}/{id}.data")
}

impl UploadFiles {
    /// Reads the state of upload `id`.
    pub(crate) fn load(&self, id: &str) -> UploadResult<UploadState> {
        let bytes = match std::fs::read(&self.state) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UploadError::NotFound(id.to_owned()))
            }
            Err(e) => return Err(FsError::from_io("upload state", e).into()),
        };
        serde_json::from_slice(&bytes)
            .map_err(|_| FsError::Invalid(format!("upload {id:?} has a damaged state")).into())
    }

    /// Writes the state durably (a temporary file, fsync, rename, fsync of the directory).
    pub(crate) fn save(&self, state: &UploadState) -> FsResult<()> {
        let json = &self.state;
        let tmp = json.with_extension("json.tmp");
        let io = |e| FsError::from_io("upload state", e);
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec(state).unwrap_or_default())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, json).map_err(io)?;
        File::open(json.parent().unwrap_or(json))
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// Tries to lock the data file of a complete upload, without waiting.
    pub(crate) fn try_lock_data(&self) -> DataLock {
        let Ok(file) = File::open(&self.data) else {
            return DataLock::Gone;
        };
        if rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive).is_ok() {
            DataLock::Held(file)
        } else {
            DataLock::Busy
        }
    }

    /// Opens the data file to append to it, locked; `Busy` while another request appends.
    pub(crate) fn lock_for_append(&self, state: &UploadState) -> UploadResult<File> {
        let data = File::options()
            .read(true)
            .write(true)
            .open(&self.data)
            .map_err(|e| FsError::from_io(&state.path, e))?;
        if rustix::fs::flock(data.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(UploadError::Busy(state.id.clone()));
        }
        Ok(data)
    }

    /// Waits until no request appends (the lock is held while the file lives), if the data
    /// file is there.
    pub(crate) fn wait_for_appends(&self) -> Option<File> {
        let lock = File::open(&self.data).ok();
        if let Some(f) = &lock {
            let _ = rustix::fs::flock(f.as_fd(), FlockOperation::LockExclusive);
        }
        lock
    }

    /// Removes the data (if there) and the state.
    pub(crate) fn remove(&self) -> FsResult<()> {
        let _ = std::fs::remove_file(&self.data);
        std::fs::remove_file(&self.state).map_err(|e| FsError::from_io("upload state", e))
    }

    /// Removes the state (the record of a finished upload).
    pub(crate) fn remove_state(&self) {
        let _ = std::fs::remove_file(&self.state);
    }
}

/// Every this many bytes of a chunk without a checksum, an append syncs what arrived and
/// records the offset (`checkpoint`), so that a crash in a long `PATCH` resumes near where it
/// stopped rather than at the chunk's start.
pub const CHECKPOINT_STEP: u64 = 16 << 20;

/// Appends `chunk` to the locked `data` file at `state.offset`, moving the offset past what
/// was stored and synced (the final state is not saved here; every [`CHECKPOINT_STEP`] bytes
/// of a chunk without a checksum, the data is synced and `bound.checkpoint` records the
/// offset), and never past `bound.max_offset`. Bytes past the durable offset were
/// never acknowledged and are dropped first. If the stream breaks, what arrived is kept
/// (unless a checksum was given, which only a whole chunk can satisfy); a checksum mismatch
/// keeps the offset where it was.
pub(crate) fn append_chunk(
    data: &mut File,
    state: &mut UploadState,
    chunk: impl Read,
    checksum: Option<ChunkChecksum>,
    bound: &AppendBound<'_>,
) -> UploadResult<()> {
    let path = state.path.clone();
    let io = |e| FsError::from_io(&path, e);
    // Bytes past the durable offset were never acknowledged: drop them.
    data.set_len(state.offset).map_err(io)?;
    data.seek(SeekFrom::Start(state.offset)).map_err(io)?;
    let start = state.offset;
    let room = state.length - start;
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    let mut received: u64 = 0;
    let mut broke = false;
    let mut buf = vec![0u8; 256 * 1024];
    let mut chunk = chunk;
    loop {
        let n = match chunk.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                broke = true;
                break;
            }
        };
        // What was checkpointed stays; the rest of this chunk goes.
        if received + n as u64 > room {
            data.set_len(state.offset).map_err(io)?;
            return Err(UploadError::TooLong(state.length));
        }
        if start + received + n as u64 > bound.max_offset {
            data.set_len(state.offset).map_err(io)?;
            return Err((bound.over_cap)(start + received + n as u64).into());
        }
        data.write_all(&buf[..n]).map_err(io)?;
        if (received + n as u64) / WRITEBACK_STEP > received / WRITEBACK_STEP {
            start_writeback(data, start, received + n as u64);
        }
        match &checksum {
            Some(ChunkChecksum::Sha1(_)) => sha1.update(&buf[..n]),
            Some(ChunkChecksum::Sha256(_)) => sha256.update(&buf[..n]),
            None => {}
        }
        received += n as u64;
        if checksum.is_none() && start + received - state.offset >= CHECKPOINT_STEP {
            data.sync_data().map_err(io)?;
            state.offset = start + received;
            (bound.checkpoint)(state)?;
        }
    }
    let verified = match &checksum {
        None => true,
        Some(_) if broke => false,
        Some(ChunkChecksum::Sha1(want)) => sha1.finalize().as_slice() == want.as_slice(),
        Some(ChunkChecksum::Sha256(want)) => sha256.finalize().as_slice() == want.as_slice(),
    };
    if !verified {
        data.set_len(state.offset).map_err(io)?;
        return Err(if broke {
            FsError::Invalid("the chunk ended early".into()).into()
        } else {
            UploadError::ChecksumMismatch
        });
    }
    data.sync_data().map_err(io)?;
    state.offset = start + received;
    Ok(())
}

/// What bounds one append besides the declared length: the cap (bytes count against it as
/// they arrive), and where checkpoints are recorded.
pub(crate) struct AppendBound<'a> {
    /// The upload may not grow past this offset (what the cap leaves it).
    pub(crate) max_offset: u64,
    /// The refusal when it would, given the offset it would reach.
    pub(crate) over_cap: &'a dyn Fn(u64) -> FsError,
    /// Records a durable offset (see [`CHECKPOINT_STEP`]).
    pub(crate) checkpoint: &'a dyn Fn(&UploadState) -> FsResult<()>,
}
