//! Change events of one volume: a bounded log with ids, and live subscribers.
//!
//! Every mutation made through a [`crate::VolumeHandle`] publishes here; a file-system watcher
//! (for writes made by sandbox code into a mount) feeds the same log, so a client sees one
//! ordered stream whatever made the change.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    Moved,
}

/// One change, as sent to watchers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub path: String,
    pub old_path: Option<String>,
    pub is_dir: bool,
    pub time: DateTime<Utc>,
}

/// Events retained for reconnecting clients.
pub const RETAINED_EVENTS: usize = 10_000;
/// Events a live subscriber may fall behind before it is told so and dropped.
pub const SUBSCRIBER_BUFFER: usize = 4_096;

/// A reconnecting client asked for events that are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub last_event_id: u64,
    pub oldest_available: u64,
}

/// What a new subscriber gets: missed events (and a gap marker if some are gone), then live ones.
pub struct Subscription {
    pub gap: Option<Gap>,
    pub backlog: Vec<Arc<ChangeEvent>>,
    pub live: broadcast::Receiver<Arc<ChangeEvent>>,
    /// Turns `true` when the volume is deleted: the subscriber should end.
    pub closed: tokio::sync::watch::Receiver<bool>,
}

struct Inner {
    next_id: u64,
    ring: VecDeque<Arc<ChangeEvent>>,
}

/// The event log of one volume.
pub struct EventLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<ChangeEvent>>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

impl EventLog {
    /// A new log. Ids start from the current time in microseconds, so that ids of a restarted
    /// server are larger than any id a client saw before the restart (which then gets a gap).
    pub fn new() -> EventLog {
        let start = Utc::now().timestamp_micros().max(1) as u64;
        let (tx, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        EventLog {
            closed: tokio::sync::watch::Sender::new(false),
            inner: Mutex::new(Inner {
                next_id: start,
                ring: VecDeque::new(),
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records and broadcasts one change.
    pub fn publish(&self, kind: ChangeKind, path: &str, old_path: Option<&str>, is_dir: bool) {
        let mut inner = self.lock();
        let event = Arc::new(ChangeEvent {
            id: inner.next_id,
            kind,
            path: path.to_owned(),
            old_path: old_path.map(str::to_owned),
            is_dir,
            time: Utc::now(),
        });
        inner.next_id += 1;
        if inner.ring.len() == RETAINED_EVENTS {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event.clone());
        // Sent under the lock so that subscribe() sees each event exactly once.
        let _ = self.tx.send(event);
    }

    /// Subscribes; with `last_event_id`, retained events after it come first.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let closed = self.closed.subscribe();
        let Some(last) = last_event_id else {
            return Subscription {
                gap: None,
                backlog: Vec::new(),
                live,
                closed,
            };
        };
        let oldest = inner.ring.front().map_or(inner.next_id, |e| e.id);
        // Ids between `last` and the oldest retained one are lost (or, after a restart, the
        // client's id belongs to a previous server life).
        let gap = (last + 1 < oldest || last >= inner.next_id).then_some(Gap {
            last_event_id: last,
            oldest_available: oldest,
        });
        let backlog = inner.ring.iter().filter(|e| e.id > last).cloned().collect();
        Subscription {
            gap,
            backlog,
            live,
            closed,
        }
    }

    /// Ends every subscription (the volume is being deleted).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.lock().next_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_gets_missed_events_or_a_gap() {
        let log = EventLog::new();
        let first = log.next_id();
        for i in 0..5 {
            log.publish(ChangeKind::Created, &format!("/f{i}"), None, false);
        }
        let s = log.subscribe(Some(first + 1));
        assert!(s.gap.is_none());
        assert_eq!(
            s.backlog
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>(),
            ["/f2", "/f3", "/f4"]
        );
        for i in 0..RETAINED_EVENTS {
            log.publish(ChangeKind::Modified, &format!("/g{i}"), None, false);
        }
        let s = log.subscribe(Some(first));
        assert_eq!(s.gap.unwrap().last_event_id, first);
        assert_eq!(s.backlog.len(), RETAINED_EVENTS);
        // An id from a previous life of the server.
        assert!(log.subscribe(Some(u64::MAX - 1)).gap.is_some());
    }
}
