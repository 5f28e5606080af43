//! A small incremental parser of `text/event-stream` (the WHATWG Server-Sent Events format)
//! and the line splitting of newline-delimited JSON (NDJSON), over chunks as they arrive.
//!
//! Written here rather than taken from a crate: the format is a few lines of rules, we need it
//! over reqwest's byte stream with a bound on line length (a server that never ends a line
//! must not grow our memory), and reconnection with the last event id is the caller's job.

/// Longest line accepted (search lines are cut at 1000 bytes, events are small).
pub(crate) const MAX_LINE: usize = 1 << 20;

/// A line longer than [`MAX_LINE`] arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineTooLong;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseFrame {
    /// `event:` field, `message` when absent.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream so far (it persists across events).
    pub id: Option<String>,
}

/// Parses an event stream fed in arbitrary chunks.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

impl SseParser {
    /// Consumes `chunk` and appends every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseFrame>) -> Result<(), LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                break;
            };
            let end = if rest[i] == b'\r' {
                match rest.get(i + 1) {
                    // A `\r` at the end of the chunk may be the first half of `\r\n`.
                    None => break,
                    Some(b'\n') => i + 2,
                    Some(_) => i + 1,
                }
            } else {
                i + 1
            };
            let line = String::from_utf8_lossy(&rest[..i]).into_owned();
            start += end;
            self.line(&line, out);
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseFrame>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let mut data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                data.pop(); // the `\n` after the last data line
                out.push(SseFrame {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    },
                    data,
                    id: self.last_id.clone(),
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields are ignored
        }
    }
}

/// The next line of `rest` (bytes after the last line taken): `(end, next)`, the line being
/// `rest[..end]` without a trailing `\r` and the one after it starting at `next`. Without a
/// newline, a line only once the stream ended (`eof`): the last line may lack its newline.
pub(crate) fn next_line(rest: &[u8], eof: bool) -> Option<(usize, usize)> {
    match memchr::memchr(b'\n', rest) {
        Some(i) => {
            let end = if i > 0 && rest[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            Some((end, i + 1))
        }
        None if eof && !rest.is_empty() => Some((rest.len(), rest.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], split_every: usize) -> Vec<SseFrame> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in input.chunks(split_every.max(1)) {
            p.feed(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_survive_any_chunking() {
        let input = b": keep-alive\n\nid: 7\nevent: change\ndata: {\"id\":7}\n\n\
                      event: gap\ndata: {\"a\":1}\r\n\r\n\
                      data: line1\rdata:line2\r\rretry: 10\nunknown: x\n\n";
        let want = vec![
            SseFrame {
                event: "change".into(),
                data: "{\"id\":7}".into(),
                id: Some("7".into()),
            },
            SseFrame {
                event: "gap".into(),
                data: "{\"a\":1}".into(),
                id: Some("7".into()),
            },
            SseFrame {
                event: "message".into(),
                data: "line1\nline2".into(),
                id: Some("7".into()),
            },
        ];
        for n in 1..input.len() {
            assert_eq!(frames(input, n), want, "chunks of {n}");
        }
    }

    #[test]
    fn events_without_data_and_incomplete_events_are_not_dispatched() {
        assert!(frames(b"event: change\n\nid: 3\n\n", 100).is_empty());
        assert!(frames(b"data: x\n", 100).is_empty());
        let f = frames(b"data\n\n", 100);
        assert_eq!(f[0].data, "");
    }

    #[test]
    fn endless_lines_are_refused() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_LINE + 1];
        assert_eq!(p.feed(&big, &mut out), Err(LineTooLong));
    }

    #[test]
    fn lines_split_across_chunks() {
        let input = b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\"";
        for n in 1..input.len() {
            // What the search stream does: append each chunk, take every whole line.
            let (mut buf, mut start, mut lines) = (Vec::new(), 0, Vec::new());
            let chunks: Vec<&[u8]> = input.chunks(n).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                buf.extend_from_slice(chunk);
                let eof = k + 1 == chunks.len();
                while let Some((end, next)) = next_line(&buf[start..], eof) {
                    lines.push(buf[start..start + end].to_vec());
                    start += next;
                }
            }
            assert_eq!(
                lines,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    Vec::new(),
                    b"{\"c\"".to_vec()
                ]
            );
        }
    }
}
