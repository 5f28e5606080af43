//! Change events of a volume over Server-Sent Events (`GET …/watch`), one connection at a time
//! ([`Client::watch_once`]) or reconnecting by itself with the last event id ([`Client::watch`]).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use nullspace_core::{Error, ErrorCode, Result, VolumeName, VolumePath};
use reqwest::header::ACCEPT;
use reqwest::Method;

use crate::sse::{SseFrame, SseParser};
use crate::{root_cause, Client};

/// Nothing at all (not even the server's 15 s keep-alive) for this long: the connection is
/// taken for dead (`unavailable`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// First wait before reconnecting after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub use nullspace_core::wire::{ChangeEvent, ChangeKind, WatchGap, WatchOverflow};

/// What a watch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Change(ChangeEvent),
    /// Comes before the replayed events of a reconnection that could not replay everything.
    Gap(WatchGap),
    /// The last item of a connection whose reader was too slow. [`Client::watch`] reconnects
    /// after it (with the last id, so nothing is lost unless a gap follows).
    Overflow(WatchOverflow),
}

/// Options of [`Client::watch`] and [`Client::watch_once`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Include changes in subdirectories (default); otherwise only the path and its entries.
    pub recursive: bool,
    /// Start after this event id: retained events after it are sent first.
    pub last_event_id: Option<u64>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            recursive: true,
            last_event_id: None,
        }
    }
}

/// A stream of [`WatchEvent`]s over one connection; ends when the connection does (an
/// `unavailable` error when it broke off or was silent for 45 s, not even keep-alives).
pub struct WatchConnection {
    stream: BoxStream<'static, Result<WatchEvent>>,
}

/// A stream of [`WatchEvent`]s that reconnects by itself ([`Client::watch`]); it ends only
/// with an error that retrying cannot fix (the volume or path was deleted, the key revoked).
pub struct Watch {
    stream: BoxStream<'static, Result<WatchEvent>>,
}

macro_rules! stream_wrapper {
    ($t:ident) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }

        impl Stream for $t {
            type Item = Result<WatchEvent>;

            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                self.stream.as_mut().poll_next(cx)
            }
        }
    };
}
stream_wrapper!(WatchConnection);
stream_wrapper!(Watch);

/// Decodes one SSE frame; `None` for event types this client does not know.
fn decode(frame: &SseFrame) -> Option<serde_json::Result<WatchEvent>> {
    Some(match frame.event.as_str() {
        "change" => serde_json::from_str(&frame.data).map(WatchEvent::Change),
        "gap" => serde_json::from_str(&frame.data).map(WatchEvent::Gap),
        "overflow" => serde_json::from_str(&frame.data).map(WatchEvent::Overflow),
        _ => return None,
    })
}

impl Client {
    /// `GET …/watch`: one connection. The subscription exists once this returns, so every
    /// change made afterwards is delivered. A missing path fails here.
    pub async fn watch_once(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &WatchOptions,
    ) -> Result<WatchConnection> {
        let mut q: Vec<(&str, String)> = vec![
            ("path", path.to_string()),
            ("recursive", opts.recursive.to_string()),
        ];
        if let Some(id) = opts.last_event_id {
            q.push(("last_event_id", id.to_string()));
        }
        let req = self
            .request(Method::GET, &format!("/v1/volumes/{volume}/watch"))
            .query(&q)
            .header(ACCEPT, "text/event-stream");
        let resp = self.send(req).await?;
        struct State {
            body: BoxStream<'static, reqwest::Result<Bytes>>,
            parser: SseParser,
            pending: VecDeque<SseFrame>,
            finished: bool,
            base: String,
        }
        let start = State {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::default(),
            pending: VecDeque::new(),
            finished: false,
            base: self.base.clone(),
        };
        let stream = futures::stream::unfold(start, |mut st| async move {
            loop {
                if st.finished {
                    return None;
                }
                if let Some(frame) = st.pending.pop_front() {
                    match decode(&frame) {
                        None => continue,
                        Some(Ok(ev)) => return Some((Ok(ev), st)),
                        Some(Err(e)) => {
                            st.finished = true;
                            let e = Error::internal(format!(
                                "unexpected {} event from {}: {e}",
                                frame.event, st.base
                            ));
                            return Some((Err(e), st));
                        }
                    }
                }
                let Ok(next) = tokio::time::timeout(IDLE_TIMEOUT, st.body.next()).await else {
                    st.finished = true;
                    let e = Error::unavailable(format!(
                        "the event stream from {} went silent for {}s",
                        st.base,
                        IDLE_TIMEOUT.as_secs()
                    ));
                    return Some((Err(e), st));
                };
                match next {
                    Some(Ok(chunk)) => {
                        let mut out = Vec::new();
                        let fed = st.parser.feed(&chunk, &mut out);
                        st.pending.extend(out);
                        if fed.is_err() {
                            st.finished = true;
                            let e = Error::internal(format!(
                                "unexpected event stream from {}: a line is too long",
                                st.base
                            ));
                            return Some((Err(e), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.finished = true;
                        let e = Error::unavailable(format!(
                            "the event stream from {} broke off: {}",
                            st.base,
                            root_cause(&e)
                        ));
                        return Some((Err(e), st));
                    }
                    None => return None,
                }
            }
        });
        Ok(WatchConnection {
            stream: stream.boxed(),
        })
    }

    /// Watches `path` for changes, reconnecting by itself.
    ///
    /// The first connection is made before this returns (a missing path fails here). When a
    /// connection drops, goes silent for 45 s, or the server reports an overflow, a new one is
    /// made with the last event id seen, so nothing is lost — unless the server no longer has
    /// the missed events, which it says with a [`WatchEvent::Gap`]. Failed attempts are retried
    /// with a backoff (0.1 s doubling to 5 s) for as long as the server is `unavailable`; any
    /// other error ends the stream.
    ///
    /// A connection dropped before its first event resumes without an id, so changes made
    /// while it was down are not replayed (the server sends no id before the first change).
    pub async fn watch(
        &self,
        volume: &VolumeName,
        path: &VolumePath,
        opts: &WatchOptions,
    ) -> Result<Watch> {
        let first = self.watch_once(volume, path, opts).await?;
        struct State {
            client: Client,
            volume: VolumeName,
            path: VolumePath,
            recursive: bool,
            last_id: Option<u64>,
            conn: Option<WatchConnection>,
            /// Whether the current connection delivered anything (else reconnect with backoff).
            delivered: bool,
            backoff: Duration,
            finished: bool,
        }
        let start = State {
            client: self.clone(),
            volume: volume.clone(),
            path: path.clone(),
            recursive: opts.recursive,
            last_id: opts.last_event_id,
            conn: Some(first),
            delivered: false,
            backoff: FIRST_BACKOFF,
            finished: false,
        };
        let stream = futures::stream::unfold(start, |mut st| async move {
            loop {
                if st.finished {
                    return None;
                }
                let Some(conn) = st.conn.as_mut() else {
                    let opts = WatchOptions {
                        recursive: st.recursive,
                        last_event_id: st.last_id,
                    };
                    if !st.delivered {
                        tokio::time::sleep(st.backoff).await;
                        st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
                    }
                    st.delivered = false;
                    match st.client.watch_once(&st.volume, &st.path, &opts).await {
                        Ok(c) => st.conn = Some(c),
                        Err(e) if e.code == ErrorCode::Unavailable => {}
                        Err(e) => {
                            st.finished = true;
                            return Some((Err(e), st));
                        }
                    }
                    continue;
                };
                match conn.next().await {
                    Some(Ok(ev)) => {
                        st.backoff = FIRST_BACKOFF;
                        st.delivered = true;
                        match &ev {
                            WatchEvent::Change(c) => st.last_id = Some(c.id),
                            WatchEvent::Overflow(_) => st.conn = None,
                            WatchEvent::Gap(_) => {}
                        }
                        return Some((Ok(ev), st));
                    }
                    Some(Err(e)) if e.code != ErrorCode::Unavailable => {
                        st.finished = true;
                        return Some((Err(e), st));
                    }
                    // Dropped, broken off or silent: connect again (at once if it delivered).
                    Some(Err(_)) | None => st.conn = None,
                }
            }
        });
        Ok(Watch {
            stream: stream.boxed(),
        })
    }
}
