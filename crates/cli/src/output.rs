//! Writing to stdout and stderr: tables, JSON, and a quiet exit when stdout goes away.

use std::fmt;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tabwriter::TabWriter;

/// Stdout was closed by the reader (`nullspace … | head`): stop quietly, successfully.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Turns a failed write to stdout into an error; a broken pipe becomes [`StdoutClosed`].
pub fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// Writes bytes to stdout and flushes.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Prints one line to stdout.
pub fn line(s: impl fmt::Display) -> anyhow::Result<()> {
    write_stdout(format!("{s}\n").as_bytes())
}

/// Prints a JSON document (pretty) to stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_stdout(s.as_bytes())
}

/// Prints a line to stderr, ignoring failure (there is nowhere left to report it).
pub fn eprint_line(s: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{s}");
}

/// Prints rows aligned in columns (two spaces apart), with an optional header row.
pub fn table(header: Option<&[&str]>, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut tw = TabWriter::new(Vec::new()).padding(2);
    let mut put = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let cells: Vec<String> = cells.map(|c| c.replace(['\t', '\n'], " ")).collect();
        writeln!(tw, "{}", cells.join("\t"))
    };
    if let Some(h) = header {
        put(&mut h.iter().copied())?;
    }
    for row in rows {
        put(&mut row.iter().map(String::as_str))?;
    }
    let bytes = tw
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot format the table: {e}"))?;
    write_stdout(&bytes)
}

/// A timestamp for tables: UTC, to the second.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A timestamp given as an RFC 3339 string, shortened to the second when it parses.
pub fn time_str(s: &str) -> String {
    DateTime::parse_from_rfc3339(s)
        .map(|t| time(&t.with_timezone(&Utc)))
        .unwrap_or_else(|_| s.to_owned())
}
