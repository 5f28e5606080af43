//! Search, replace and edit of file contents, built on ripgrep's crates (grep-regex,
//! grep-searcher) and walking the tree by fd like every other operation.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{mpsc, Condvar, Mutex};

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

/// Blocks of search output are handed on at about this size.
pub const SEARCH_BLOCK: usize = 64 << 10;
/// Most threads one search uses to read files.
pub const MAX_SEARCH_THREADS: usize = 8;
/// Files per search thread that may be in flight (opened, searched or waiting for their turn).
pub const SEARCH_WINDOW_PER_THREAD: u64 = 4;
/// Output of one file kept while earlier files are still searched; past it, the file waits.
pub const HELD_PER_FILE: usize = 256 << 10;

/// A file to search: its place in path order, and its path as the answer shows it.
struct Job {
    seq: u64,
    file: File,
    path: String,
}

/// NDJSON lines of one file (`lines` of them); `last` when the file is done.
struct Part {
    seq: u64,
    data: Vec<u8>,
    lines: u64,
    last: bool,
}

struct Turn {
    /// The file whose output is handed on now; every file before it is done.
    next: u64,
    stop: bool,
}

/// Whose turn it is, shared by the walker, the search threads and the orderer.
struct Order {
    state: Mutex<Turn>,
    changed: Condvar,
    /// Files that may be in flight at once.
    window: u64,
    /// `Turn::stop`, readable without the lock (checked once per match).
    stopping: std::sync::atomic::AtomicBool,
}

impl Order {
    fn lock(&self) -> std::sync::MutexGuard<'_, Turn> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until file `seq` may start (the window has room); `false` when the search stops.
    fn wait_for_room(&self, seq: u64) -> bool {
        let mut t = self.lock();
        while !t.stop && seq >= t.next + self.window {
            t = self.changed.wait(t).unwrap_or_else(|e| e.into_inner());
        }
        !t.stop
    }

    /// Waits until it is file `seq`'s turn; `false` when the search stops.
    fn wait_for_turn(&self, seq: u64) -> bool {
        let mut t = self.lock();
        while !t.stop && t.next != seq {
            t = self.changed.wait(t).unwrap_or_else(|e| e.into_inner());
        }
        !t.stop
    }

    fn is_turn(&self, seq: u64) -> bool {
        self.lock().next == seq
    }

    fn stopped(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn advance(&self, next: u64) {
        self.lock().next = next;
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.lock().stop = true;
        self.changed.notify_all();
    }
}

/// Appends the lines of `part` to `out` while the limit allows; `true` when the search is to
/// stop (a match past the limit: the summary says `truncated`).
fn take_lines(out: &mut Vec<u8>, part: Part, limit: u64, summary: &mut SearchSummary) -> bool {
    let room = limit - summary.matches;
    if part.lines <= room {
        summary.matches += part.lines;
        out.extend_from_slice(&part.data);
        return false;
    }
    // Keep the `room` whole lines before the first one past the limit.
    let keep = match room {
        0 => 0,
        n => memchr::memchr_iter(b'\n', &part.data)
            .nth(n as usize - 1)
            .map_or(part.data.len(), |i| i + 1),
    };
    out.extend_from_slice(&part.data[..keep]);
    summary.matches = limit;
    summary.truncated = true;
    true
}

/// One search thread: takes files from `jobs` until there are none or the search stops, and
/// sends their matching lines to the orderer as NDJSON parts.
fn search_files(
    matcher: &RegexMatcher,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    order: &Order,
    parts: &mpsc::Sender<Part>,
) {
    let mut searcher = SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .build();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        if order.stopped() {
            return;
        }
        let mut path_json = Vec::with_capacity(job.path.len() + 2);
        write_json_str(&mut path_json, &job.path);
        let mut buf = Vec::new();
        let mut lines = 0u64;
        let mut streaming = false;
        let seq = job.seq;
        let sink = sinks::Bytes(|line_no, line| {
            let column = matcher.find(line)?.map_or(0, |m| m.start()) as u64 + 1;
            write_match(&mut buf, &path_json, line_no, column, line);
            lines += 1;
            if buf.len() >= SEARCH_BLOCK {
                // The file whose turn it is streams; the others hold up to HELD_PER_FILE.
                if !streaming && buf.len() >= HELD_PER_FILE {
                    if !order.wait_for_turn(seq) {
                        return Ok(false);
                    }
                    streaming = true;
                }
                if streaming || order.is_turn(seq) {
                    streaming = true;
                    let part = Part {
                        seq,
                        data: std::mem::take(&mut buf),
                        lines: std::mem::take(&mut lines),
                        last: false,
                    };
                    if parts.send(part).is_err() {
                        return Ok(false);
                    }
                }
            }
            Ok(!order.stopped())
        });
        // An unreadable file is skipped, like grep does.
        let _ = searcher.search_file(matcher, &job.file, sink);
        let part = Part {
            seq,
            data: buf,
            lines,
            last: true,
        };
        if parts.send(part).is_err() {
            return;
        }
    }
}

/// Appends `s` as a JSON string (quotes and escapes as serde_json writes them).
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends one match as the NDJSON line that serialising [`SearchMatch`] gives: the line
/// without its line ending, cut at [`MAX_TEXT`] bytes, invalid UTF-8 replaced.
fn write_match(out: &mut Vec<u8>, path_json: &[u8], line_no: u64, column: u64, line: &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let cut = &line[..line.len().min(MAX_TEXT)];
    out.extend_from_slice(b"{\"path\":");
    out.extend_from_slice(path_json);
    let _ = write!(out, ",\"line\":{line_no},\"column\":{column},\"text\":");
    write_json_str(out, &String::from_utf8_lossy(cut));
    out.extend_from_slice(b"}\n");
}

impl VolumeHandle {
    /// Searches file contents below `path`, calling `emit` for each matching line in path
    /// order; `emit` returns `false` to stop. The typed view of [`VolumeHandle::search_ndjson`].
    pub fn search(
        &self,
        path: &VolumePath,
        opts: &SearchOptions,
        emit: &mut (dyn FnMut(SearchMatch) -> bool + Send),
    ) -> FsResult<SearchSummary> {
        self.search_ndjson(path, opts, &mut |block| {
            for line in block.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // The lines are ours (`write_match`): they always decode.
                let Ok(m) = serde_json::from_slice::<SearchMatch>(line) else {
                    return false;
                };
                if !emit(m) {
                    return false;
                }
            }
            true
        })
    }

    /// Searches file contents below `path`, handing `emit` the matching lines as NDJSON
    /// (one [`SearchMatch`] object per line, whole lines only) in path order, in blocks of
    /// what is ready (at most about [`SEARCH_BLOCK`] bytes each); `emit` returns `false` to
    /// stop (e.g. the client went away).
    ///
    /// Files are searched by up to [`MAX_SEARCH_THREADS`] threads while one thread walks the
    /// tree; the calling thread puts the answers back in path order. Memory is bounded: at
    /// most [`SEARCH_WINDOW_PER_THREAD`] files per thread are in flight, and a file's answer
    /// waits for its turn once it holds [`HELD_PER_FILE`] bytes.
    pub fn search_ndjson(
        &self,
        path: &VolumePath,
        opts: &SearchOptions,
        emit: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> FsResult<SearchSummary> {
        let matcher: RegexMatcher = RegexMatcherBuilder::new()
            .case_insensitive(opts.ignore_case)
            .fixed_strings(!opts.regex)
            .build(&opts.pattern)
            .map_err(|e| invalid_pattern(&opts.pattern, e))?;
        let glob = NameGlob::compile(opts.glob.as_deref())?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SEARCH_THREADS);
        let order = Order {
            state: Mutex::new(Turn {
                next: 0,
                stop: false,
            }),
            changed: Condvar::new(),
            window: threads as u64 * SEARCH_WINDOW_PER_THREAD,
            stopping: Default::default(),
        };
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let jobs_rx = Mutex::new(jobs_rx);
        let (parts_tx, parts_rx) = mpsc::channel::<Part>();
        let limit = opts.max_results.unwrap_or(u64::MAX);
        let mut summary = SearchSummary {
            matches: 0,
            truncated: false,
        };
        let walked = std::thread::scope(|scope| {
            let (order, matcher, jobs_rx) = (&order, &matcher, &jobs_rx);
            let walker = scope.spawn(move || {
                let mut seq = 0u64;
                let walked = for_each_file(self, path, glob.as_ref(), &mut |dir, name, p| {
                    let Ok((file, _)) = open_file(dir, name, p) else {
                        return Ok(true); // unreadable: skipped, like grep does
                    };
                    if !order.wait_for_room(seq) {
                        return Ok(false);
                    }
                    let job = Job {
                        seq,
                        file,
                        path: p.to_string(),
                    };
                    seq += 1;
                    Ok(jobs_tx.send(job).is_ok())
                });
                drop(jobs_tx);
                walked
            });
            for _ in 0..threads {
                let parts = parts_tx.clone();
                scope.spawn(move || search_files(matcher, jobs_rx, order, &parts));
            }
            drop(parts_tx);
            // Puts the parts back in file order: parts of later files wait here (bounded by
            // the window); what is ready is handed on in one block. `full`: the limit is
            // reached; `closed`: `emit` wants no more.
            let mut early: BTreeMap<u64, Vec<Part>> = BTreeMap::new();
            let mut out = Vec::new();
            let mut next = 0u64;
            let (mut full, mut closed) = (false, false);
            let mut hand_on = |out: &mut Vec<u8>, closed: &mut bool| {
                if !out.is_empty() && !*closed && !emit(std::mem::take(out)) {
                    *closed = true;
                    order.stop();
                }
            };
            let mut incoming = parts_rx.recv().ok();
            while let Some(part) = incoming {
                if !full && !closed {
                    early.entry(part.seq).or_default().push(part);
                    while let Some(parts) = early.remove(&next) {
                        let mut finished = false;
                        for part in parts {
                            finished |= part.last;
                            if !full {
                                full = take_lines(&mut out, part, limit, &mut summary);
                            }
                        }
                        if !finished {
                            break; // more of this file is coming
                        }
                        next += 1;
                        order.advance(next);
                    }
                    if full {
                        order.stop();
                    }
                }
                incoming = match parts_rx.try_recv() {
                    Ok(p) if out.len() < SEARCH_BLOCK => Some(p),
                    Ok(p) => {
                        hand_on(&mut out, &mut closed);
                        Some(p)
                    }
                    Err(_) => {
                        // Nothing more ready: hand on what there is before waiting.
                        hand_on(&mut out, &mut closed);
                        parts_rx.recv().ok()
                    }
                };
            }
            hand_on(&mut out, &mut closed);
            walker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        walked?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_lines_are_what_serialising_a_search_match_gives() {
        let long = "é".repeat(700); // 1400 bytes: the cut falls inside a character
        let cases: [(&str, &[u8]); 6] = [
            ("/a", b"plain\n"),
            ("/q\"uo\\te", b"\"x\" \\ \t \x01 \x7f end\r\n"),
            ("/\u{1F600}/\u{7}", b"no newline"),
            ("/bad", b"caf\xc3 \xff\xfe\n"),
            ("/empty", b"\n"),
            ("/long", long.as_bytes()),
        ];
        for (path, line) in cases {
            let mut path_json = Vec::new();
            write_json_str(&mut path_json, path);
            let mut ours = Vec::new();
            write_match(&mut ours, &path_json, 12, 3, line);
            let l = line.strip_suffix(b"\n").unwrap_or(line);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let m = SearchMatch {
                path: path.to_owned(),
                line: 12,
                column: 3,
                text: String::from_utf8_lossy(&l[..l.len().min(MAX_TEXT)]).into_owned(),
            };
            let mut want = serde_json::to_vec(&m).unwrap();
            want.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
