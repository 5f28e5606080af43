//! Search, replace and edit of file contents (docs/API.md, "Search, replace, edit, watch").

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use nullspace_core::{Error, ErrorCode, FileStat, Result, VolumeName, VolumePath};
use reqwest::Method;
use serde_json::json;

use crate::sse::{next_line, MAX_LINE};
use crate::{files_url, root_cause, Client};

use nullspace_core::wire::SearchLine;
pub use nullspace_core::wire::{ReplaceSummary, ReplacedFile, SearchMatch, SearchSummary};

/// What to search for ([`Client::search`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// Rust regex syntax, or a literal string when `regex` is false.
    pub pattern: String,
    /// Treat `pattern` as a regex (default) rather than a fixed string.
    pub regex: bool,
    pub ignore_case: bool,
    /// Only files matching this shell glob (as in `list`: a name, or a relative path with `/`).
    pub glob: Option<String>,
    /// Stop after this many matching lines (the summary then says `truncated`).
    pub max_results: Option<u64>,
}

impl SearchOptions {
    /// A case-sensitive regex search of every file.
    pub fn new(pattern: impl Into<String>) -> SearchOptions {
        SearchOptions {
            pattern: pattern.into(),
            regex: true,
            ignore_case: false,
            glob: None,
            max_results: None,
        }
    }
}

/// What a search stream yields: matches as they are found, then one summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchItem {
    Match(SearchMatch),
    Done(SearchSummary),
}

/// The streamed answer of [`Client::search`]: [`SearchItem::Match`]es, then one
/// [`SearchItem::Done`], then the end. An error mid-way is the last item.
pub struct SearchStream {
    stream: BoxStream<'static, Result<SearchItem>>,
}

impl fmt::Debug for SearchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchStream").finish_non_exhaustive()
    }
}

impl Stream for SearchStream {
    type Item = Result<SearchItem>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl SearchStream {
    /// Reads the whole answer: every match and the summary.
    pub async fn collect_all(mut self) -> Result<(Vec<SearchMatch>, SearchSummary)> {
        let mut matches = Vec::new();
        while let Some(item) = self.next().await {
            match item? {
                SearchItem::Match(m) => matches.push(m),
                SearchItem::Done(s) => return Ok((matches, s)),
            }
        }
        Err(Error::internal("the search ended without a summary"))
    }
}

/// What to replace ([`Client::replace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceOptions {
    /// Rust regex syntax, or a literal string when `regex` is false.
    pub pattern: String,
    /// With a regex, `$1` / `${name}` refer to groups (`$$` is a `$`); literal otherwise.
    pub replacement: String,
    pub regex: bool,
    pub ignore_case: bool,
    /// Only files matching this shell glob.
    pub glob: Option<String>,
    /// Report what would change, change nothing.
    pub dry_run: bool,
}

impl ReplaceOptions {
    /// A case-sensitive regex replace in every file.
    pub fn new(pattern: impl Into<String>, replacement: impl Into<String>) -> ReplaceOptions {
        ReplaceOptions {
            pattern: pattern.into(),
            replacement: replacement.into(),
            regex: true,
            ignore_case: false,
            glob: None,
            dry_run: false,
        }
    }
}

/// How many occurrences an edit must find ([`EditOptions::count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditCount {
    /// Exactly this many.
    Exactly(u64),
    /// Every occurrence, at least one.
    All,
}

/// Options of [`Client::edit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOptions {
    /// Occurrences of the old text that must be found (default: exactly 1).
    pub count: EditCount,
    /// Edit only if the file's current etag is this one (`conflict` otherwise).
    pub if_match: Option<String>,
}

impl Default for EditOptions {
    fn default() -> Self {
        EditOptions {
            count: EditCount::Exactly(1),
            if_match: None,
        }
    }
}

impl Client {
    /// `POST …/files/search`: matching lines below `path`, streamed as the server finds them.
    ///
    /// An invalid pattern or glob, or a missing path, fails here; the stream then yields
    /// matches in path order and one summary.
    pub async fn search(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &SearchOptions,
    ) -> Result<SearchStream> {
        let req = self
            .request(Method::POST, &files_url(volume, "search"))
            .json(&json!({
                "pattern": opts.pattern,
                "path": path.as_str(),
                "glob": opts.glob,
                "regex": opts.regex,
                "ignore_case": opts.ignore_case,
                "max_results": opts.max_results,
            }));
        let resp = self.send(req).await?;
        let base = self.base.clone();
        // Lines are decoded where they lie in the received bytes: no copy or allocation per
        // line (an answer can hold hundreds of thousands of them).
        struct State {
            body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
            buf: Vec<u8>,
            /// Where the next line starts in `buf`.
            start: usize,
            eof: bool,
            finished: bool,
            base: String,
        }
        let start = State {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            start: 0,
            eof: false,
            finished: false,
            base,
        };
        let stream = futures::stream::unfold(start, |mut st| async move {
            loop {
                if st.finished {
                    return None;
                }
                let rest = &st.buf[st.start..];
                if let Some((end, next)) = next_line(rest, st.eof) {
                    let line = &rest[..end];
                    st.start += next;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    // Matches are nearly every line: decode them directly (an untagged enum
                    // buffers each line first), the rest through `SearchLine`.
                    let parsed = if line.starts_with(b"{\"path\"") {
                        serde_json::from_slice::<SearchMatch>(line).map(SearchLine::Match)
                    } else {
                        serde_json::from_slice::<SearchLine>(line)
                    };
                    let item = match parsed {
                        Ok(SearchLine::Match(m)) => Ok(SearchItem::Match(m)),
                        Ok(SearchLine::Done { summary, .. }) => {
                            st.finished = true;
                            Ok(SearchItem::Done(summary))
                        }
                        Ok(SearchLine::Failed { error }) => {
                            st.finished = true;
                            let code = ErrorCode::parse(&error.code).unwrap_or(ErrorCode::Internal);
                            Err(Error::new(code, error.message))
                        }
                        Err(e) => {
                            st.finished = true;
                            Err(Error::internal(format!(
                                "unexpected search answer from {}: {e}",
                                st.base
                            )))
                        }
                    };
                    return Some((item, st));
                }
                if st.eof {
                    st.finished = true;
                    let e = Error::unavailable(format!(
                        "the search answer from {} ended before its summary",
                        st.base
                    ));
                    return Some((Err(e), st));
                }
                // Keep only the unfinished line, then read more.
                st.buf.drain(..st.start);
                st.start = 0;
                if st.buf.len() > MAX_LINE {
                    st.finished = true;
                    let e = Error::internal(format!(
                        "unexpected search answer from {}: a line is too long",
                        st.base
                    ));
                    return Some((Err(e), st));
                }
                match st.body.next().await {
                    Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        st.finished = true;
                        let e = Error::unavailable(format!(
                            "the search answer from {} broke off: {}",
                            st.base,
                            root_cause(&e)
                        ));
                        return Some((Err(e), st));
                    }
                    None => st.eof = true,
                }
            }
        });
        Ok(SearchStream {
            stream: stream.boxed(),
        })
    }

    /// `POST …/files/replace`: replaces matches in every selected file below `path`, each
    /// file rewritten atomically; with `dry_run`, only reports.
    pub async fn replace(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &ReplaceOptions,
    ) -> Result<ReplaceSummary> {
        let req = self
            .request(Method::POST, &files_url(volume, "replace"))
            .json(&json!({
                "pattern": opts.pattern,
                "replacement": opts.replacement,
                "path": path.as_str(),
                "glob": opts.glob,
                "regex": opts.regex,
                "ignore_case": opts.ignore_case,
                "dry_run": opts.dry_run,
            }));
        self.json(req).await
    }

    /// `POST …/files/edit`: replaces occurrences of the literal `old` with `new` in one file.
    /// Finding another number of occurrences than `opts.count` asks for is a `conflict` whose
    /// message says how many were found, and nothing changes.
    pub async fn edit(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        old: &str,
        new: &str,
        opts: &EditOptions,
    ) -> Result<FileStat> {
        let count = match opts.count {
            EditCount::Exactly(n) => Some(n),
            EditCount::All => None,
        };
        let if_match = opts
            .if_match
            .as_deref()
            .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'));
        let req = self
            .request(Method::POST, &files_url(volume, "edit"))
            .json(&json!({
                "path": path.as_str(),
                "old": old,
                "new": new,
                "count": count,
                "if_match": if_match,
            }));
        self.json(req).await
    }
}
