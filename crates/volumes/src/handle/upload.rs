//! Resumable uploads of one volume: the cap when one starts, publishing when it completes.
//! Their records (state and data files, appends) are kept by `uploads`.

use chrono::{Duration, Utc};
use nullspace_core::VolumePath;

use super::{VolumeHandle, WriteOptions};
use crate::error::FsError;
use crate::uploads::{
    append_chunk, staged_data, AppendBound, ChunkChecksum, DataLock, UploadError, UploadFiles,
    UploadResult, UploadState, Uploads,
};
use crate::Usage;

/// Refuses an append at any offset but the upload's own, or to a completed upload.
fn check_offset(state: &UploadState, offset: u64) -> UploadResult<()> {
    if state.completed.is_some() || offset != state.offset {
        return Err(UploadError::OffsetMismatch {
            given: offset,
            current: state.offset,
        });
    }
    Ok(())
}

fn parse_path(state: &UploadState) -> UploadResult<VolumePath> {
    VolumePath::parse(&state.path).map_err(|e| FsError::Invalid(e.message).into())
}

impl VolumeHandle {
    fn uploads(&self) -> Uploads<'_> {
        Uploads::new(&self.shared.staging)
    }

    /// The state of an upload; `Expired` once past its expiry (its files are then removed).
    pub fn upload_state(&self, id: &str) -> UploadResult<UploadState> {
        let files = self.uploads().files(id)?;
        let mut state = files.load(id)?;
        // A scoped handle sees only the uploads to paths within its scope.
        if !self.beneath().contains(&parse_path(&state)?) {
            return Err(UploadError::NotFound(id.to_owned()));
        }
        if state.completed.is_none() && state.offset == state.length {
            // Every byte is stored but a crash came before the upload was published (or
            // before its record said so): finish it now, unless a request holds it.
            return match files.try_lock_data() {
                DataLock::Gone => {
                    state.completed = Some(self.stat(&parse_path(&state)?)?);
                    files.save(&state)?;
                    Ok(state)
                }
                DataLock::Held(_lock) => self.upload_finish(&files, state),
                DataLock::Busy => Ok(state),
            };
        }
        if state.completed.is_none() && state.expires_at <= Utc::now() {
            let _ = files.remove();
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
        self.beneath().reach(path)?;
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
        // Under the commit lock, so that the check sees every commit and upload made so far.
        let usage = self.lock();
        self.check_cap(&usage, freed, length)?;
        let (files, state) = self.uploads().create(path, length, metadata, ttl)?;
        drop(usage);
        if length == 0 {
            return self.upload_finish(&files, state);
        }
        Ok(state)
    }

    /// Appends a chunk at `offset` (see [`append_chunk`]: the offset only moves past bytes
    /// that were fsynced). When the upload is complete it is published at its path.
    pub fn upload_append(
        &self,
        id: &str,
        offset: u64,
        chunk: impl std::io::Read,
        checksum: Option<ChunkChecksum>,
    ) -> UploadResult<UploadState> {
        let files = self.uploads().files(id)?;
        let state = self.upload_state(id)?;
        check_offset(&state, offset)?;
        let mut data = files.lock_for_append(&state)?;
        // Re-read under the lock: another request may have moved it on.
        let mut state = self.upload_state(id)?;
        check_offset(&state, offset)?;
        // Bytes count against the cap as they arrive: this upload may hold what the cap
        // leaves after usage and the other uploads' bytes (plus the file it replaces).
        let used = self.usage().used_bytes;
        let others = self.pending_upload_bytes().saturating_sub(state.offset);
        let replaced = self
            .stat(&parse_path(&state)?)
            .ok()
            .filter(|s| s.file_type == nullspace_core::FileType::File)
            .map_or(0, |s| s.size);
        let cap = self.shared.cap;
        let over_cap = move |offset: u64| FsError::over_cap(used, others, offset, cap);
        let bound = AppendBound {
            max_offset: cap
                .saturating_add(replaced)
                .saturating_sub(used)
                .saturating_sub(others),
            over_cap: &over_cap,
            checkpoint: &|s| files.save(s),
        };
        append_chunk(&mut data, &mut state, chunk, checksum, &bound)?;
        files.save(&state)?;
        if state.offset == state.length {
            // Still holding the lock, so no reader finishes it at the same time.
            let done = self.upload_finish(&files, state);
            drop(data);
            return done;
        }
        Ok(state)
    }

    /// Publishes a complete upload at its path, like any other write, and records that.
    fn upload_finish(
        &self,
        files: &UploadFiles,
        mut state: UploadState,
    ) -> UploadResult<UploadState> {
        let path = parse_path(&state)?;
        let opts = WriteOptions {
            overwrite: true,
            if_match: None,
        };
        let stat = self.publish(
            &staged_data(&state.id),
            &path,
            Usage {
                used_bytes: state.length,
                file_count: 1,
            },
            false,
            &opts,
        )?;
        state.completed = Some(stat);
        files.save(&state)?;
        Ok(state)
    }

    /// The uploads still waiting for bytes (neither complete nor expired), oldest first.
    pub fn pending_uploads(&self) -> Vec<UploadState> {
        let now = Utc::now();
        let mut list: Vec<UploadState> = self
            .uploads()
            .ids()
            .iter()
            .filter_map(|id| self.uploads().files(id).ok()?.load(id).ok())
            .filter(|s| s.completed.is_none() && s.offset < s.length && s.expires_at > now)
            // A scoped handle lists only the uploads to paths within its scope.
            .filter(|s| parse_path(s).is_ok_and(|p| self.beneath().contains(&p)))
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    /// Bytes that pending uploads hold in staging: they count against the cap as they
    /// arrive (so an upload never fills a loop-backed volume behind the cap's back, and a write
    /// they leave no room for says so). Read from staging, so every server on the data root
    /// sees the same figure.
    pub fn pending_upload_bytes(&self) -> u64 {
        self.pending_uploads().iter().map(|s| s.offset).sum()
    }

    /// Cancels an upload and removes its data (tus termination).
    pub fn upload_delete(&self, id: &str) -> UploadResult<()> {
        let files = self.uploads().files(id)?;
        // Wait for an append in flight (e.g. of a client that just went away) to finish, so
        // that it cannot write the state back after it was removed.
        let lock = files.wait_for_appends();
        self.upload_state(id)?;
        files.remove()?;
        drop(lock);
        Ok(())
    }

    /// Removes expired uploads, and records of finished ones older than a day.
    pub fn upload_sweep(&self) -> usize {
        let mut removed = 0;
        for id in self.uploads().ids() {
            match self.upload_state(&id) {
                Err(UploadError::Expired(_)) => removed += 1,
                Ok(s) if s.completed.is_some() && s.expires_at + Duration::days(1) < Utc::now() => {
                    if let Ok(files) = self.uploads().files(&id) {
                        files.remove_state();
                    }
                    removed += 1;
                }
                _ => {}
            }
        }
        removed
    }
}
