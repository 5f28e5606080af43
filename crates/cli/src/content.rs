//! `nullspace volume search | replace | watch`: output of the streamed content verbs.

use std::process::ExitCode;

use futures::{FutureExt, StreamExt};
use nullspace_client::{
    ReplaceOptions, ReplaceSummary, SearchItem, SearchOptions, WatchEvent, WatchOptions,
};
use nullspace_core::{VolumeName, VolumePath};
use serde_json::json;

use crate::output;
use crate::{config, Global};

/// Output is written in blocks of about this size while results keep coming.
const FLUSH_AT: usize = 64 * 1024;

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Prints matches as they arrive: `path:line:column: text` (like `rg --column`), or JSON lines
/// (every match, then the summary) with `--json`. Exit 1 when nothing matched, as grep does.
pub async fn search(
    g: &Global,
    name: &VolumeName,
    path: &VolumePath,
    opts: &SearchOptions,
) -> anyhow::Result<ExitCode> {
    let mut stream = config::client(g)?.search(name, path, opts).await?;
    let mut buf = String::new();
    loop {
        // Buffer what is already here; flush before waiting for more.
        let item = match stream.next().now_or_never() {
            Some(item) => item,
            None => {
                output::write_stdout(buf.as_bytes())?;
                buf.clear();
                stream.next().await
            }
        };
        let Some(item) = item else {
            anyhow::bail!("the search ended without a summary");
        };
        match item? {
            SearchItem::Match(m) => {
                if g.json {
                    buf.push_str(&serde_json::to_string(&m)?);
                    buf.push('\n');
                } else {
                    use std::fmt::Write;
                    let _ = writeln!(buf, "{}:{}:{}: {}", m.path, m.line, m.column, m.text);
                }
            }
            SearchItem::Done(s) => {
                if g.json {
                    let done =
                        json!({"done": true, "matches": s.matches, "truncated": s.truncated});
                    buf.push_str(&done.to_string());
                    buf.push('\n');
                }
                output::write_stdout(buf.as_bytes())?;
                if s.truncated && !g.json {
                    output::eprint_line(&format!(
                        "search stopped after {} (--max)",
                        plural(s.matches, "match", "matches")
                    ));
                }
                return Ok(if s.matches == 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                });
            }
        }
        if buf.len() >= FLUSH_AT {
            output::write_stdout(buf.as_bytes())?;
            buf.clear();
        }
    }
}

/// Prints `path: N replacements` per file and a total, or the summary as JSON.
pub async fn replace(
    g: &Global,
    name: &VolumeName,
    path: &VolumePath,
    opts: &ReplaceOptions,
) -> anyhow::Result<()> {
    let summary: ReplaceSummary = config::client(g)?.replace(name, path, opts).await?;
    if g.json {
        return output::json(&summary);
    }
    let mut out = String::new();
    for f in &summary.files {
        out.push_str(&format!(
            "{}: {}",
            f.path,
            plural(f.replacements, "replacement", "replacements")
        ));
        match f.skipped.as_deref() {
            Some("conflict") => out.push_str(" (skipped: it changed while being rewritten)"),
            Some(why) => out.push_str(&format!(" (skipped: {why})")),
            None => {}
        }
        out.push('\n');
    }
    let total = format!(
        "total: {} in {}",
        plural(summary.replacements, "replacement", "replacements"),
        plural(summary.files_changed, "file", "files")
    );
    out.push_str(&total);
    if summary.dry_run {
        out.push_str(" (dry run: nothing changed)");
    }
    out.push('\n');
    output::write_stdout(out.as_bytes())
}

/// Prints every event as one JSON line (the server's `data`), and a gap as
/// `{"type":"gap","last_event_id":N,"oldest_available":M}`, until interrupted.
pub async fn watch(
    g: &Global,
    name: &VolumeName,
    path: &VolumePath,
    opts: &WatchOptions,
) -> anyhow::Result<()> {
    let mut events = config::client(g)?.watch(name, path, opts).await?;
    while let Some(ev) = events.next().await {
        let line = match ev? {
            WatchEvent::Change(c) => serde_json::to_string(&c)?,
            WatchEvent::Gap(gap) => json!({
                "type": "gap",
                "last_event_id": gap.last_event_id,
                "oldest_available": gap.oldest_available,
            })
            .to_string(),
            WatchEvent::Overflow(o) => {
                output::eprint_line(&format!(
                    "warning: this watcher fell behind ({} not delivered); reconnecting with the last event id",
                    plural(o.missed, "event", "events")
                ));
                continue;
            }
        };
        output::line(line)?;
    }
    Ok(())
}
