//! `GET /v1/volumes/{name}/watch`: change events over Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use nullspace_core::wire::{ChangeEvent, ChangeKind, WatchGap, WatchOverflow};
use nullspace_core::{Error, VolumePath};
use nullspace_node::data::Live;
use nullspace_node::Watching;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Query};
use crate::files::parse_path;
use crate::AppState;

/// `?path=&recursive=&last_event_id=`
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    #[serde(default = "root")]
    pub path: String,
    #[serde(default = "default_true")]
    pub recursive: bool,
    /// Resume after this event id (the `Last-Event-ID` header does the same).
    pub last_event_id: Option<u64>,
}

fn root() -> String {
    "/".into()
}

fn default_true() -> bool {
    true
}

fn in_scope(ev: &ChangeEvent, scope: &VolumePath, recursive: bool) -> bool {
    let hit = |p: &str| match VolumePath::parse(p) {
        Ok(p) if recursive => p.starts_with(scope),
        Ok(p) => p == *scope || p.parent().as_ref() == Some(scope),
        Err(_) => false,
    };
    hit(&ev.path) || ev.old_path.as_deref().is_some_and(hit)
}

/// The event as a caller confined to `limit` (a volume token's directory) may see it: a move
/// from outside in is a creation, a move from inside out a deletion, and nothing of what
/// happens outside is seen, not even its name.
fn confine(ev: &ChangeEvent, limit: &VolumePath) -> Option<ChangeEvent> {
    let within = |p: &str| VolumePath::parse(p).is_ok_and(|p| p.starts_with(limit));
    let old_within = ev.old_path.as_deref().map(within);
    match (within(&ev.path), old_within) {
        (true, None | Some(true)) => Some(ev.clone()),
        (true, Some(false)) => Some(ChangeEvent {
            kind: ChangeKind::Created,
            old_path: None,
            ..ev.clone()
        }),
        (false, Some(true)) => Some(ChangeEvent {
            kind: ChangeKind::Deleted,
            path: ev.old_path.clone().unwrap_or_default(),
            old_path: None,
            ..ev.clone()
        }),
        (false, _) => None,
    }
}

/// The `change` event to send, if `ev` is within the watched scope and what the caller sees.
fn visible(
    ev: &ChangeEvent,
    limit: &VolumePath,
    scope: &VolumePath,
    recursive: bool,
) -> Option<Event> {
    confine(ev, limit)
        .filter(|e| in_scope(e, scope, recursive))
        .map(|e| change(&e))
}

fn gap_event(g: WatchGap) -> Event {
    Event::default()
        .event("gap")
        .json_data(g)
        .unwrap_or_default()
}

fn change(ev: &ChangeEvent) -> Event {
    Event::default()
        .id(ev.id.to_string())
        .event("change")
        .json_data(ev)
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/v1/volumes/{name}/watch", operation_id = "watch_volume", tag = "files", params(("name" = String, Path), WatchQuery),
    responses((status = 200, description = "Server-Sent Events: `change`, `gap`, `overflow`", content_type = "text/event-stream"),
              (status = 404, body = ErrorBody)))]
pub async fn watch(
    State(node): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<WatchQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let slot = node.volumes().watch_slot(&caller.0)?;
    let vol = node.volumes().open(&caller.0, &name).await?;
    let scope = parse_path("path", &q.path)?;
    let last = match headers.get("last-event-id") {
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::invalid_argument("Last-Event-ID must be an event id"))?,
        ),
        None => q.last_event_id,
    };
    vol.stat(scope.clone()).await?;
    // Starts the volume's file-system source (sandbox writes) if it is not running; its
    // watches are in place before the response starts.
    let Watching { mut sub, guard } = vol.watch(last).await?;
    let source = sub.source.take();
    let recursive = q.recursive;
    let limit = vol.scope().clone();

    let gap = sub.gap.map(gap_event);
    let backlog: Vec<Event> = sub
        .backlog
        .iter()
        .filter_map(|e| visible(e, &limit, &scope, recursive))
        .collect();
    let head = stream::iter(gap.into_iter().chain(backlog).map(Ok::<_, Infallible>));
    // Ends when the volume is deleted or the server shuts down, so neither waits on a watcher.
    let stop = (sub.closed, sub.interrupted, node.shutdown_token().clone());
    let live = stream::unfold(Some((sub.live, scope, stop)), move |state| {
        let limit = limit.clone();
        async move {
            let (mut rx, scope, (mut closed, mut interrupted, shutdown)) = state?;
            loop {
                let got = tokio::select! {
                    r = rx.recv() => r,
                    _ = closed.wait_for(|c| *c) => return None,
                    _ = shutdown.cancelled() => return None,
                    // Changes made through another server may have been lost (see peers.rs).
                    _ = interrupted.changed() => {
                        let data = WatchOverflow {
                            missed: 0,
                            message: "changes made through another server may have been missed; reconnect with the last event id".into(),
                        };
                        let ev = Event::default()
                            .event("overflow")
                            .json_data(data)
                            .unwrap_or_default();
                        return Some((Ok(ev), None));
                    }
                };
                match got {
                    Ok(Live::Change(ev)) => match visible(&ev, &limit, &scope, recursive) {
                        Some(e) => {
                            return Some((
                                Ok(e),
                                Some((rx, scope, (closed, interrupted, shutdown))),
                            ))
                        }
                        None => continue,
                    },
                    Ok(Live::Gap(g)) => {
                        return Some((
                            Ok(gap_event(g)),
                            Some((rx, scope, (closed, interrupted, shutdown))),
                        ))
                    }
                    Err(RecvError::Lagged(n)) => {
                        let data = WatchOverflow {
                            missed: n,
                            message: "the client fell behind; reconnect with the last event id"
                                .into(),
                        };
                        let ev = Event::default()
                            .event("overflow")
                            .json_data(data)
                            .unwrap_or_default();
                        return Some((Ok(ev), None));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    // Keep the handle (and so the event sender) and the file-system source alive as long as
    // the client listens.
    let keep = (guard, source, slot);
    let live = live.map(move |e| {
        let _ = &keep;
        e
    });
    Ok(Sse::new(head.chain(live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
