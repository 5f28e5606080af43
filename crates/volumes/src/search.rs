//! Search, replace and edit of file contents, built on ripgrep's crates (grep-regex,
//! grep-searcher) and walking the tree by fd like every other operation.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};

use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{sinks, BinaryDetection, SearcherBuilder};
use nullspace_core::{FileStat, VolumePath};
use rustix::fs::{FileType, Mode, OFlags};

use crate::error::{FsError, FsResult};
use crate::handle::{etag_of, NameGlob, VolumeHandle, WriteOptions};
use crate::rewrite::{line_bounded, Outcome, Rewrite};
use crate::walk::walk_tree;

/// Longest line text returned with a match, in bytes.
const MAX_TEXT: usize = 1000;
/// Largest file that replace and edit will rewrite (they stream it, see `rewrite.rs`).
pub const MAX_REWRITE_BYTES: u64 = 256 << 20;

pub use nullspace_core::wire::{ReplaceSummary, ReplacedFile, SearchMatch, SearchSummary};

/// What to search for and where.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    pub pattern: String,
    /// Rust regex syntax when true; a literal string otherwise.
    pub regex: bool,
    pub ignore_case: bool,
    pub glob: Option<String>,
    pub max_results: Option<u64>,
}

/// What to replace.
#[derive(Debug, Clone, Default)]
pub struct ReplaceOptions {
    pub pattern: String,
    pub replacement: String,
    pub regex: bool,
    pub ignore_case: bool,
    pub glob: Option<String>,
    pub dry_run: bool,
}

/// The parser's message on one line (regex errors draw a caret under the pattern over several).
fn invalid_pattern(pattern: &str, e: impl std::fmt::Display) -> FsError {
    let msg = e.to_string();
    let msg: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect();
    FsError::Invalid(format!("invalid pattern {pattern:?}: {}", msg.join(": ")))
}

/// Visits every regular file at or below `path` in path order, with its parent dir fd.
/// `visit` returns `false` to stop.
fn for_each_file(
    h: &VolumeHandle,
    path: &VolumePath,
    glob: Option<&NameGlob>,
    visit: &mut dyn FnMut(BorrowedFd<'_>, &CStr, &VolumePath) -> FsResult<bool>,
) -> FsResult<()> {
    let top = h.stat(path)?;
    if top.file_type != nullspace_core::FileType::Dir {
        let (dir, name) = h.beneath().parent(path, None)?;
        let name = std::ffi::CString::new(name).unwrap_or_default();
        if top.file_type == nullspace_core::FileType::File {
            visit(dir.as_fd(), &name, path)?;
        }
        return Ok(());
    }
    let dir = h
        .beneath()
        .open(path, OFlags::RDONLY | OFlags::DIRECTORY, false)?;
    walk_tree(&dir, path, &mut |v| {
        let is_file = v.entry.file_type() == FileType::RegularFile;
        let name = v.path.file_name().unwrap_or_default();
        if is_file && glob.is_none_or(|g| g.matches(name, v.rel)) {
            return visit(v.dir, &v.entry.name, v.path);
        }
        Ok(true)
    })
    .map(|_| ())
}

/// Opens a regular file named `name` in `dir` without following links or blocking on FIFOs.
fn open_file(dir: impl AsFd, name: &CStr, path: &VolumePath) -> FsResult<(File, rustix::fs::Stat)> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FsError::from_errno(path.as_str(), e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(path.as_str(), e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(FsError::NotAFile(path.to_string()));
    }
    Ok((File::from(fd), st))
}

fn check_size(st: &rustix::fs::Stat, path: &VolumePath) -> FsResult<()> {
    if st.st_size as u64 > MAX_REWRITE_BYTES {
        return Err(FsError::Invalid(format!(
            "{path} is larger than {MAX_REWRITE_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Runs `rw` over `file` into `out`, mapping read errors to `path`.
fn run_rewrite(
    rw: &Rewrite<'_>,
    file: &mut File,
    out: &mut dyn Write,
    stop_at_nul: bool,
    path: &VolumePath,
) -> FsResult<Option<Outcome>> {
    rw.run(file, out, stop_at_nul)
        .map_err(|e| FsError::from_io(path.as_str(), e))
}

impl VolumeHandle {
    /// Searches file contents below `path`, calling `emit` for each matching line in path
    /// order; `emit` returns `false` to stop (e.g. the client went away).
    pub fn search(
        &self,
        path: &VolumePath,
        opts: &SearchOptions,
        emit: &mut dyn FnMut(SearchMatch) -> bool,
    ) -> FsResult<SearchSummary> {
        let matcher: RegexMatcher = RegexMatcherBuilder::new()
            .case_insensitive(opts.ignore_case)
            .fixed_strings(!opts.regex)
            .build(&opts.pattern)
            .map_err(|e| invalid_pattern(&opts.pattern, e))?;
        let glob = NameGlob::compile(opts.glob.as_deref())?;
        let mut searcher = SearcherBuilder::new()
            .binary_detection(BinaryDetection::quit(0))
            .line_number(true)
            .build();
        let limit = opts.max_results.unwrap_or(u64::MAX);
        let mut summary = SearchSummary {
            matches: 0,
            truncated: false,
        };
        let mut stopped = false;
        for_each_file(self, path, glob.as_ref(), &mut |dir, name, file_path| {
            let Ok((file, _)) = open_file(dir, name, file_path) else {
                return Ok(true);
            };
            let sink = sinks::Bytes(|line_no, line| {
                if summary.matches >= limit {
                    summary.truncated = true;
                    return Ok(false);
                }
                let column = matcher.find(line)?.map_or(0, |m| m.start()) as u64 + 1;
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let cut = &line[..line.len().min(MAX_TEXT)];
                let text = String::from_utf8_lossy(cut).into_owned();
                summary.matches += 1;
                if !emit(SearchMatch {
                    path: file_path.to_string(),
                    line: line_no,
                    column,
                    text,
                }) {
                    stopped = true;
                    return Ok(false);
                }
                Ok(true)
            });
            // An unreadable file is skipped, like grep does.
            let _ = searcher.search_file(&matcher, &file, sink);
            Ok(!(stopped || summary.truncated))
        })?;
        Ok(summary)
    }

    /// Replaces matches across files below `path`. Every changed file is rewritten atomically;
    /// the cap is checked for the whole change before anything is written.
    pub fn replace(&self, path: &VolumePath, opts: &ReplaceOptions) -> FsResult<ReplaceSummary> {
        let pattern = if opts.regex {
            opts.pattern.clone()
        } else {
            regex::escape(&opts.pattern)
        };
        let re = regex::bytes::RegexBuilder::new(&pattern)
            .case_insensitive(opts.ignore_case)
            .build()
            .map_err(|e| invalid_pattern(&opts.pattern, e))?;
        let glob = NameGlob::compile(opts.glob.as_deref())?;
        let replacement = opts.replacement.as_bytes();
        let rw = if !opts.regex && !opts.ignore_case && !opts.pattern.is_empty() {
            Rewrite::Literal {
                finder: Box::new(memchr::memmem::Finder::new(opts.pattern.as_bytes())),
                replacement,
            }
        } else {
            Rewrite::Regex {
                re: &re,
                replacement,
                expand: opts.regex,
                lines: line_bounded(&pattern, opts.ignore_case),
            }
        };
        // Pass 1: what would change, and by how much (counted, nothing is built).
        let mut planned: Vec<(VolumePath, u64, String)> = Vec::new();
        let mut growth: i64 = 0;
        for_each_file(self, path, glob.as_ref(), &mut |dir, name, file_path| {
            let Ok((mut file, st)) = open_file(dir, name, file_path) else {
                return Ok(true);
            };
            if check_size(&st, file_path).is_err() {
                return Ok(true);
            }
            // A file that cannot be read, or holds a NUL byte (binary), is left alone.
            let Ok(Some(found)) =
                run_rewrite(&rw, &mut file, &mut std::io::sink(), true, file_path)
            else {
                return Ok(true);
            };
            if found.matches > 0 {
                growth += found.size as i64 - st.st_size;
                planned.push((file_path.clone(), found.matches, etag_of(&st)));
            }
            Ok(true)
        })?;
        let mut summary = ReplaceSummary {
            files: Vec::new(),
            files_changed: 0,
            replacements: 0,
            dry_run: opts.dry_run,
        };
        if !opts.dry_run && growth > 0 {
            let used = self.usage().used_bytes;
            if used.saturating_add(growth as u64) > self.cap() {
                return Err(FsError::QuotaExceeded {
                    used,
                    adding: growth as u64,
                    cap: self.cap(),
                });
            }
        }
        // Pass 2: rewrite each file if it is still the one that was read.
        for (file_path, n, etag) in planned {
            let mut entry = ReplacedFile {
                path: file_path.to_string(),
                replacements: n,
                skipped: None,
            };
            if !opts.dry_run {
                match self.rewrite_if_unchanged(&file_path, &etag, n, &rw) {
                    Ok(_) => {}
                    Err(FsError::Conflict(_) | FsError::NotFound(_)) => {
                        entry.skipped = Some("conflict".into())
                    }
                    Err(e) => return Err(e),
                }
            }
            if entry.skipped.is_none() {
                summary.files_changed += 1;
                summary.replacements += n;
            }
            summary.files.push(entry);
        }
        Ok(summary)
    }

    fn rewrite_if_unchanged(
        &self,
        path: &VolumePath,
        etag: &str,
        matches: u64,
        rw: &Rewrite<'_>,
    ) -> FsResult<FileStat> {
        let (dir, name) = self.beneath().parent(path, None)?;
        let cname = std::ffi::CString::new(name).unwrap_or_default();
        let (mut file, st) = open_file(&dir, &cname, path)?;
        if etag_of(&st) != etag {
            return Err(FsError::Conflict(format!("{path} changed")));
        }
        check_size(&st, path)?;
        let opts = WriteOptions {
            overwrite: true,
            if_match: Some(etag.to_owned()),
        };
        let (st, ()) = self.write_with(path, &opts, |out| {
            match run_rewrite(rw, &mut file, out, true, path)? {
                Some(done) if done.matches == matches => Ok(()),
                _ => Err(FsError::Conflict(format!("{path} changed"))),
            }
        })?;
        Ok(st)
    }

    /// Replaces exactly `count` occurrences of `old` with `new` in one file (`None`: all of
    /// them, at least one). Any other number found is a conflict and nothing changes.
    pub fn edit(
        &self,
        path: &VolumePath,
        old: &str,
        new: &str,
        count: Option<u64>,
        if_match: Option<String>,
    ) -> FsResult<FileStat> {
        if old.is_empty() {
            return Err(FsError::Invalid("`old` must not be empty".into()));
        }
        let (dir, name) = self.beneath().parent(path, None)?;
        let cname = std::ffi::CString::new(name).unwrap_or_default();
        let (mut file, st) = match open_file(&dir, &cname, path) {
            Err(FsError::SymlinkLoop(_)) => return Err(FsError::NotAFile(path.to_string())),
            other => other?,
        };
        let etag = etag_of(&st);
        if let Some(want) = &if_match {
            if *want != etag {
                return Err(FsError::Conflict(format!(
                    "{path} changed since etag {want:?} was read (current etag: {etag})"
                )));
            }
        }
        check_size(&st, path)?;
        let rw = Rewrite::Literal {
            finder: Box::new(memchr::memmem::Finder::new(old.as_bytes())),
            replacement: new.as_bytes(),
        };
        // Count first (nothing is built), then stream the rewrite into staging.
        let found = run_rewrite(&rw, &mut file, &mut std::io::sink(), false, path)?
            .map_or(0, |o| o.matches);
        let ok = match count {
            Some(n) => found == n,
            None => found > 0,
        };
        if !ok {
            let wanted = count.map_or("at least 1".to_owned(), |n| n.to_string());
            return Err(FsError::Conflict(format!(
                "edit of {path}: expected {wanted} occurrence(s) of the old text, found {found}; nothing changed"
            )));
        }
        file.rewind()
            .map_err(|e| FsError::from_io(path.as_str(), e))?;
        let opts = WriteOptions {
            overwrite: true,
            if_match: Some(etag),
        };
        let (st, ()) = self.write_with(path, &opts, |out| {
            match run_rewrite(&rw, &mut file, out, false, path)? {
                Some(done) if done.matches == found => Ok(()),
                _ => Err(FsError::Conflict(format!(
                    "{path} changed during the edit; nothing changed"
                ))),
            }
        })?;
        Ok(st)
    }
}
