//! Streaming rewrite for replace and edit: a file is read through a bounded window and the
//! rewritten bytes go straight to a writer (a staging file, or a byte counter for dry runs and
//! for planning), so memory grows neither with the number of matches nor with the replacement.
//!
//! Matches are the ones the `regex` crate's `replace_all` (or `memmem`) finds over the whole
//! file: a match is only taken once the window holds everything it can depend on, and empty
//! matches follow the same rule as the crate's iterator.

use std::io::{self, Read, Write};

use regex_syntax::hir::{Class, Hir, HirKind};

/// Bytes read per step.
const CHUNK: usize = 64 << 10;
/// Bytes kept before the search position: one UTF-8 character, for `\b` and line anchors.
const CONTEXT: u64 = 4;

/// What to find and what to put in its place.
pub(crate) enum Rewrite<'a> {
    /// A regex. `expand`: `$1`/`${name}` in the replacement are expanded. `lines`: the regex
    /// can never match a newline, so everything up to the last newline read can be decided.
    Regex {
        re: &'a regex::bytes::Regex,
        replacement: &'a [u8],
        expand: bool,
        lines: bool,
    },
    /// A non-empty literal: its leftmost non-overlapping occurrences.
    Literal {
        finder: Box<memchr::memmem::Finder<'a>>,
        replacement: &'a [u8],
    },
}

/// What one pass over a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub matches: u64,
    /// Size of the rewritten file.
    pub size: u64,
}

/// Whether a match of `hir` can contain a newline byte (look-around assertions consume none).
pub(crate) fn can_match_newline(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(lit) => lit.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(c)) => c.iter().any(|r| r.start() <= '\n' && '\n' <= r.end()),
        HirKind::Class(Class::Bytes(c)) => c.iter().any(|r| r.start() <= b'\n' && b'\n' <= r.end()),
        HirKind::Repetition(r) => r.max != Some(0) && can_match_newline(&r.sub),
        HirKind::Capture(c) => can_match_newline(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(can_match_newline),
    }
}

/// Whether `pattern` (as the `regex` crate reads it) can never match a newline. Unsure is `false`.
pub(crate) fn line_bounded(pattern: &str, ignore_case: bool) -> bool {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .case_insensitive(ignore_case)
        .build()
        .parse(pattern)
        .is_ok_and(|hir| !can_match_newline(&hir))
}

/// The window over the file: `buf` holds the file's bytes from offset `base`.
struct Window<'r> {
    input: &'r mut dyn Read,
    buf: Vec<u8>,
    base: u64,
    eof: bool,
    /// Stop at the first NUL byte (replace leaves binary files alone).
    stop_at_nul: bool,
    binary: bool,
    chunk: usize,
}

impl Window<'_> {
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Drops bytes before `keep`, then reads one more chunk.
    fn advance(&mut self, keep: u64) -> io::Result<()> {
        if keep > self.base {
            self.buf.drain(..(keep - self.base) as usize);
            self.base = keep;
        }
        let old = self.buf.len();
        self.buf.resize(old + self.chunk, 0);
        let n = loop {
            match self.input.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e);
            }
        };
        self.buf.truncate(old + n);
        self.eof = n == 0;
        if self.stop_at_nul && memchr::memchr(0, &self.buf[old..]).is_some() {
            self.binary = true;
        }
        Ok(())
    }
}

impl Rewrite<'_> {
    /// Below this offset, every match that starts there is the one the whole file gives.
    fn decided_end(&self, w: &Window<'_>) -> u64 {
        if w.eof {
            return w.end();
        }
        match self {
            Rewrite::Regex { lines: true, .. } => {
                w.base + memchr::memrchr(b'\n', &w.buf).map_or(0, |i| i as u64 + 1)
            }
            Rewrite::Regex { lines: false, .. } => w.base,
            Rewrite::Literal { finder, .. } => {
                w.base + (w.buf.len() + 1).saturating_sub(finder.needle().len()) as u64
            }
        }
    }

    /// The first match at or after `start` within the window (absolute offsets).
    fn find(&self, w: &Window<'_>, start: u64) -> Option<(u64, u64)> {
        let at = usize::try_from(start.checked_sub(w.base)?).ok()?;
        if at > w.buf.len() {
            return None;
        }
        let (s, e) = match self {
            Rewrite::Regex { re, .. } => {
                let m = re.find_at(&w.buf, at)?;
                (m.start(), m.end())
            }
            Rewrite::Literal { finder, .. } => {
                let i = at + finder.find(&w.buf[at..])?;
                (i, i + finder.needle().len())
            }
        };
        Some((w.base + s as u64, w.base + e as u64))
    }

    /// Streams `input` through the rewrite into `out`. `None`: `stop_at_nul` was set and the
    /// file holds a NUL byte (what was written by then is meaningless).
    pub(crate) fn run(
        &self,
        input: &mut dyn Read,
        out: &mut dyn Write,
        stop_at_nul: bool,
    ) -> io::Result<Option<Outcome>> {
        self.run_with(input, out, stop_at_nul, CHUNK)
    }

    fn run_with(
        &self,
        input: &mut dyn Read,
        out: &mut dyn Write,
        stop_at_nul: bool,
        chunk: usize,
    ) -> io::Result<Option<Outcome>> {
        let mut w = Window {
            chunk,
            input,
            buf: Vec::new(),
            base: 0,
            eof: false,
            stop_at_nul,
            binary: false,
        };
        let mut done = Outcome {
            matches: 0,
            size: 0,
        };
        let mut emit = |out: &mut dyn Write, bytes: &[u8]| {
            done.size += bytes.len() as u64;
            out.write_all(bytes)
        };
        // `start`: where the next search begins; `copied`: bytes before it are written out;
        // `last_end`: the end of the last match (an empty match there is skipped).
        let mut start = 0u64;
        let mut copied = 0u64;
        let mut last_end: Option<u64> = None;
        let mut expanded = Vec::new();
        w.advance(0)?;
        loop {
            if w.binary {
                return Ok(None);
            }
            let decided = self.decided_end(&w);
            // Nothing can be decided yet (a line longer than the window so far): read on first,
            // so that a long line is not searched again at every chunk.
            let found = if decided > start || w.eof {
                self.find(&w, start)
            } else {
                None
            };
            let m = match found {
                Some((a, b)) if a < decided || w.eof => Some((a, b)),
                None if w.eof => None,
                _ => {
                    // No match starts before `decided`: the bytes up to there are final.
                    if start < decided {
                        start = decided;
                        emit(
                            out,
                            &w.buf[(copied - w.base) as usize..(start - w.base) as usize],
                        )?;
                        copied = start;
                    }
                    w.advance(copied.min(start).saturating_sub(CONTEXT))?;
                    continue;
                }
            };
            let Some((a, b)) = m else { break };
            if a == b && Some(b) == last_end {
                // The iterator's rule: an empty match where the last match ended is skipped
                // and the search goes on one byte further.
                start = a + 1;
                continue;
            }
            emit(
                out,
                &w.buf[(copied - w.base) as usize..(a - w.base) as usize],
            )?;
            match self {
                Rewrite::Regex {
                    re,
                    replacement,
                    expand: true,
                    ..
                } => {
                    expanded.clear();
                    if let Some(caps) = re.captures_at(&w.buf, (a - w.base) as usize) {
                        caps.expand(replacement, &mut expanded);
                    }
                    emit(out, &expanded)?;
                }
                Rewrite::Regex { replacement, .. } | Rewrite::Literal { replacement, .. } => {
                    emit(out, replacement)?;
                }
            }
            done.matches += 1;
            copied = b;
            start = b;
            last_end = Some(b);
        }
        emit(out, &w.buf[(copied - w.base) as usize..])?;
        Ok(Some(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads at most `step` bytes per call, so windows end anywhere.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn streamed(rw: &Rewrite<'_>, data: &[u8], chunk: usize, step: usize) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let done = rw
            .run_with(&mut Trickle(data, step), &mut out, false, chunk)
            .unwrap()
            .unwrap();
        assert_eq!(done.size, out.len() as u64);
        (out, done.matches)
    }

    const PATTERNS: &[&str] = &[
        "a",
        "ab",
        "a*",
        "",
        "^",
        "$",
        "(?m)^",
        "(?m)$",
        r"\b",
        r"\bab\b",
        "b+",
        "a.*b",
        r"\s+",
        "(?s).",
        "a\nb",
        "[^a]",
        "(a|ab)(c|bcd)",
        r"(?m)^a|b$",
        "(?i)AB",
        r"\B",
        "x?",
        "é",
        r"\w+",
        r"(?R)(?m)$",
    ];

    proptest! {
        #[test]
        fn regex_stream_equals_replace_all(
            data in proptest::collection::vec(prop::sample::select(&b"ab\ncx \r\xc3\xa9"[..]), 0..200),
            p in 0..PATTERNS.len(),
            expand in any::<bool>(),
            chunk in 1usize..9,
            step in 1usize..7,
        ) {
            let pattern = PATTERNS[p];
            let re = regex::bytes::Regex::new(pattern).unwrap();
            let replacement: &[u8] = if expand { b"<$0>" } else { b"<>" };
            let want = if expand {
                re.replace_all(&data, replacement).into_owned()
            } else {
                re.replace_all(&data, regex::bytes::NoExpand(replacement)).into_owned()
            };
            let n = re.find_iter(&data).count() as u64;
            let rw = Rewrite::Regex { re: &re, replacement, expand, lines: line_bounded(pattern, false) };
            let (got, matches) = streamed(&rw, &data, chunk, step);
            prop_assert_eq!(&got, &want, "pattern {:?}", pattern);
            prop_assert_eq!(matches, n);
        }

        #[test]
        fn literal_stream_equals_memmem(
            data in proptest::collection::vec(prop::sample::select(&b"ab\nc"[..]), 0..200),
            needle in proptest::collection::vec(prop::sample::select(&b"ab\nc"[..]), 1..5),
            chunk in 1usize..9,
            step in 1usize..7,
        ) {
            let finder = memchr::memmem::Finder::new(&needle);
            let mut want = Vec::new();
            let mut last = 0;
            let mut n = 0;
            for at in finder.find_iter(&data) {
                want.extend_from_slice(&data[last..at]);
                want.extend_from_slice(b"XY");
                last = at + needle.len();
                n += 1;
            }
            want.extend_from_slice(&data[last..]);
            let rw = Rewrite::Literal { finder: Box::new(finder.clone()), replacement: b"XY" };
            let (got, matches) = streamed(&rw, &data, chunk, step);
            prop_assert_eq!(got, want);
            prop_assert_eq!(matches, n);
        }
    }

    #[test]
    fn line_bounded_patterns() {
        for p in ["a", "a.*b", "(?m)^x$", r"\bfoo\b", "[^\n]+", ""] {
            assert!(line_bounded(p, false), "{p}");
        }
        for p in [r"\s", "(?s).", "a\nb", "[^a]", r"\W", "(?i)[^k]"] {
            assert!(!line_bounded(p, false), "{p}");
        }
    }
}
