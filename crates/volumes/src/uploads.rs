//! Resumable uploads (the data side of the tus protocol).
//!
//! An upload lives in the volume's `staging/uploads/` as `<id>.data` (the bytes) and
//! `<id>.json` (its state). The state's `offset` only ever names bytes that were fsynced before
//! the state was written, so after a crash the data file is cut back to `offset` and the upload
//! resumes exactly there. Both files sit on the volume's file system, so any server sharing the
//! data root can resume an upload, and a finished upload is published by `rename` like any
//! other write. An exclusive `flock` on the data file serialises appends across processes.

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
use crate::handle::{start_writeback, VolumeHandle, WriteOptions, WRITEBACK_STEP};
use crate::Usage;

/// Name of the uploads directory inside staging (kept across restarts).
pub const UPLOADS_DIR: &str = "uploads";

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

impl VolumeHandle {
    fn uploads_dir(&self) -> FsResult<PathBuf> {
        let dir = self.staging_path().join(UPLOADS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| FsError::from_io("uploads", e))?;
        Ok(dir)
    }

    fn upload_files(&self, id: &str) -> UploadResult<(PathBuf, PathBuf)> {
        if !valid_id(id) {
            return Err(UploadError::NotFound(id.to_owned()));
        }
        let dir = self.uploads_dir()?;
        Ok((
            dir.join(format!("{id}.json")),
            dir.join(format!("{id}.data")),
        ))
    }

    fn save_state(&self, state: &UploadState) -> FsResult<()> {
        let (json, _) = self
            .upload_files(&state.id)
            .map_err(|_| FsError::Invalid("bad upload id".into()))?;
        let tmp = json.with_extension("json.tmp");
        let io = |e| FsError::from_io("upload state", e);
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec(state).unwrap_or_default())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &json).map_err(io)?;
        File::open(json.parent().unwrap_or(&json))
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// The state of an upload; `Expired` once past its expiry (its files are then removed).
    pub fn upload_state(&self, id: &str) -> UploadResult<UploadState> {
        let (json, data) = self.upload_files(id)?;
        let bytes = match std::fs::read(&json) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UploadError::NotFound(id.to_owned()))
            }
            Err(e) => return Err(FsError::from_io("upload state", e).into()),
        };
        let mut state: UploadState = serde_json::from_slice(&bytes)
            .map_err(|_| FsError::Invalid(format!("upload {id:?} has a damaged state")))?;
        if state.completed.is_none() && state.offset == state.length {
            // Every byte is stored but a crash came before the upload was published (or
            // before its record said so): finish it now, unless a request holds it.
            let Ok(file) = File::open(&data) else {
                let path =
                    VolumePath::parse(&state.path).map_err(|e| FsError::Invalid(e.message))?;
                state.completed = Some(self.stat(&path)?);
                self.save_state(&state)?;
                return Ok(state);
            };
            if rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive).is_ok() {
                return self.upload_finish(state);
            }
            return Ok(state);
        }
        if state.completed.is_none() && state.expires_at <= Utc::now() {
            let _ = std::fs::remove_file(&data);
            let _ = std::fs::remove_file(&json);
            return Err(UploadError::Expired(id.to_owned()));
        }
        Ok(state)
    }

    /// Starts an upload of `length` bytes to `path`; refused with `quota_exceeded` when the
    /// declared length cannot fit under the cap.
    pub fn upload_create(
        &self,
        path: &VolumePath,
        length: u64,
        metadata: Option<String>,
        ttl: Duration,
    ) -> UploadResult<UploadState> {
        if path.is_root() {
            return Err(FsError::IsADirectory("/".into()).into());
        }
        let existing = self.stat(path).ok();
        if existing
            .as_ref()
            .is_some_and(|s| s.file_type == nullspace_core::FileType::Dir)
        {
            return Err(FsError::IsADirectory(path.to_string()).into());
        }
        let freed = existing
            .filter(|s| s.file_type == nullspace_core::FileType::File)
            .map_or(0, |s| s.size);
        self.check_cap(&self.usage(), freed, length)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (_, data) = self.upload_files(&id)?;
        File::create(&data)
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
        self.save_state(&state)?;
        if length == 0 {
            return self.upload_finish(state);
        }
        Ok(state)
    }

    /// Appends a chunk at `offset`. The bytes that arrive are fsynced before the offset moves
    /// past them; if the stream breaks, what arrived is kept (unless a checksum was given, which
    /// only a whole chunk can satisfy). A checksum mismatch keeps the offset where it was.
    /// When the upload is complete it is published at its path.
    pub fn upload_append(
        &self,
        id: &str,
        offset: u64,
        chunk: impl Read,
        checksum: Option<ChunkChecksum>,
    ) -> UploadResult<UploadState> {
        let (_, data_path) = self.upload_files(id)?;
        let mut state = self.upload_state(id)?;
        if state.completed.is_some() || offset != state.offset {
            return Err(UploadError::OffsetMismatch {
                given: offset,
                current: state.offset,
            });
        }
        let data = File::options()
            .read(true)
            .write(true)
            .open(&data_path)
            .map_err(|e| FsError::from_io(&state.path, e))?;
        if rustix::fs::flock(data.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(UploadError::Busy(id.to_owned()));
        }
        // Re-read under the lock: another request may have moved it on.
        state = self.upload_state(id)?;
        if state.completed.is_some() || offset != state.offset {
            return Err(UploadError::OffsetMismatch {
                given: offset,
                current: state.offset,
            });
        }
        let io = |e| FsError::from_io(&state.path, e);
        // Bytes past the durable offset were never acknowledged: drop them.
        data.set_len(state.offset).map_err(io)?;
        let mut data = data;
        data.seek(SeekFrom::Start(state.offset)).map_err(io)?;
        let room = state.length - state.offset;
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
            if received + n as u64 > room {
                data.set_len(state.offset).map_err(io)?;
                return Err(UploadError::TooLong(state.length));
            }
            data.write_all(&buf[..n]).map_err(io)?;
            if (received + n as u64) / WRITEBACK_STEP > received / WRITEBACK_STEP {
                start_writeback(&data, state.offset, received + n as u64);
            }
            match &checksum {
                Some(ChunkChecksum::Sha1(_)) => sha1.update(&buf[..n]),
                Some(ChunkChecksum::Sha256(_)) => sha256.update(&buf[..n]),
                None => {}
            }
            received += n as u64;
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
        state.offset += received;
        self.save_state(&state)?;
        if state.offset == state.length {
            // Still holding the lock, so no reader finishes it at the same time.
            let done = self.upload_finish(state);
            drop(data);
            return done;
        }
        Ok(state)
    }

    fn upload_finish(&self, mut state: UploadState) -> UploadResult<UploadState> {
        let path = VolumePath::parse(&state.path).map_err(|e| FsError::Invalid(e.message))?;
        let staged = format!("{UPLOADS_DIR}/{}.data", state.id);
        let opts = WriteOptions {
            overwrite: true,
            if_match: None,
        };
        let stat = self.publish(
            &staged,
            &path,
            Usage {
                used_bytes: state.length,
                file_count: 1,
            },
            false,
            &opts,
        )?;
        state.completed = Some(stat);
        self.save_state(&state)?;
        Ok(state)
    }

    /// Cancels an upload and removes its data (tus termination).
    pub fn upload_delete(&self, id: &str) -> UploadResult<()> {
        let (json, data) = self.upload_files(id)?;
        // Wait for an append in flight (e.g. of a client that just went away) to finish, so
        // that it cannot write the state back after it was removed.
        let lock = File::open(&data).ok();
        if let Some(f) = &lock {
            let _ = rustix::fs::flock(f.as_fd(), FlockOperation::LockExclusive);
        }
        self.upload_state(id)?;
        let _ = std::fs::remove_file(data);
        std::fs::remove_file(json).map_err(|e| FsError::from_io("upload state", e))?;
        drop(lock);
        Ok(())
    }

    /// Removes expired uploads, and records of finished ones older than a day.
    pub fn upload_sweep(&self) -> usize {
        // Not `uploads_dir()`: a volume that never had an upload gets no directory.
        let dir = self.staging_path().join(UPLOADS_DIR);
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match self.upload_state(id) {
                Err(UploadError::Expired(_)) => removed += 1,
                Ok(s) if s.completed.is_some() && s.expires_at + Duration::days(1) < Utc::now() => {
                    let _ = std::fs::remove_file(e.path());
                    removed += 1;
                }
                _ => {}
            }
        }
        removed
    }
}
