//! Change events of one volume: a bounded log with ids, and live subscribers.
//!
//! Every mutation made through a [`crate::VolumeHandle`] publishes here; a file-system watcher
//! (for writes made by sandbox code into a mount) feeds the same log, so a client sees one
//! ordered stream whatever made the change.
//!
//! Servers sharing a volume (several servers on one database and data root) forward the events
//! of changes made through them to each other: a log built with [`EventLog::forwarding`] hands
//! each local event to a [`ChangeSink`]; events that arrive from another server are recorded with
//! [`EventLog::publish_from_peer`] (and not forwarded again). Ids are per log, that is per
//! server: a remote event gets the receiving log's next id. When remote events may have been
//! lost (the link to the other servers broke, or one was too large to forward), the log is
//! [interrupted](EventLog::interrupt): live subscribers are told to reconnect and a resume from
//! an earlier id gets a gap marker, so nothing is ever lost silently.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// Changes when events from other servers may have been lost: the subscriber should end
    /// and tell its client to reconnect (which then gets a gap marker).
    pub interrupted: tokio::sync::watch::Receiver<u64>,
}

/// A change made through this server, to be forwarded to the other servers.
#[derive(Debug, Clone)]
pub struct LocalChange {
    pub volume_id: Arc<str>,
    pub event: Arc<ChangeEvent>,
}

/// Where a log sends its local events for the other servers.
pub type ChangeSink = tokio::sync::mpsc::UnboundedSender<LocalChange>;

struct Inner {
    next_id: u64,
    ring: VecDeque<Arc<ChangeEvent>>,
    /// The id skipped by the last interruption (0: none): a resume from before it gets a gap.
    lost: u64,
    /// The first id of this log.
    start: u64,
    /// The smallest and largest ids (not below `start`) other servers gave events they
    /// forwarded here: an id in there that this log also issued could be either server's, so
    /// a resume from it gets a gap instead of a guess.
    foreign: Option<(u64, u64)>,
}

/// The event log of one volume.
pub struct EventLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<ChangeEvent>>,
    closed: tokio::sync::watch::Sender<bool>,
    interrupted: tokio::sync::watch::Sender<u64>,
    forward: Option<(Arc<str>, ChangeSink)>,
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
            interrupted: tokio::sync::watch::Sender::new(0),
            inner: Mutex::new(Inner {
                next_id: start,
                ring: VecDeque::new(),
                lost: 0,
                start,
                foreign: None,
            }),
            tx,
            forward: None,
        }
    }

    /// A new log of volume `volume_id` that also hands each local event to `sink`.
    pub fn forwarding(volume_id: &str, sink: ChangeSink) -> EventLog {
        EventLog {
            forward: Some((volume_id.into(), sink)),
            ..EventLog::new()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records and broadcasts one change made through this server (and forwards it to the
    /// other servers, if the log forwards).
    pub fn publish(&self, kind: ChangeKind, path: &str, old_path: Option<&str>, is_dir: bool) {
        self.record(kind, path, old_path, is_dir, true);
    }

    /// Records and broadcasts one change made through another server, which gave it the id
    /// `origin_id` in its own log.
    pub fn publish_from_peer(
        &self,
        kind: ChangeKind,
        path: &str,
        old_path: Option<&str>,
        is_dir: bool,
        origin_id: u64,
    ) {
        {
            let mut inner = self.lock();
            if origin_id >= inner.start {
                inner.foreign = Some(match inner.foreign {
                    Some((lo, hi)) => (lo.min(origin_id), hi.max(origin_id)),
                    None => (origin_id, origin_id),
                });
            }
        }
        self.record(kind, path, old_path, is_dir, false);
    }

    fn record(
        &self,
        kind: ChangeKind,
        path: &str,
        old_path: Option<&str>,
        is_dir: bool,
        local: bool,
    ) {
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
        // Sent under the lock so that subscribe() sees each event exactly once, and so that
        // forwarded events keep their order.
        if let (true, Some((volume_id, sink))) = (local, &self.forward) {
            let _ = sink.send(LocalChange {
                volume_id: volume_id.clone(),
                event: event.clone(),
            });
        }
        let _ = self.tx.send(event);
    }

    /// Events from other servers may have been lost: skips one id (so that a resume from an
    /// earlier id gets a gap marker) and tells live subscribers to reconnect.
    pub fn interrupt(&self) {
        let mut inner = self.lock();
        inner.lost = inner.next_id;
        inner.next_id += 1;
        self.interrupted.send_modify(|n| *n += 1);
    }

    /// Subscribes; with `last_event_id`, retained events after it come first.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let closed = self.closed.subscribe();
        let interrupted = self.interrupted.subscribe();
        let Some(last) = last_event_id else {
            return Subscription {
                gap: None,
                backlog: Vec::new(),
                live,
                closed,
                interrupted,
            };
        };
        let oldest = inner.ring.front().map_or(inner.next_id, |e| e.id);
        // Ids between `last` and the oldest retained one are lost (or, after a restart, the
        // client's id belongs to a previous server life, or to another server).
        let gap = if last + 1 < oldest || last >= inner.next_id {
            Some(Gap {
                last_event_id: last,
                oldest_available: oldest,
            })
        } else if (inner.start..inner.next_id).contains(&last)
            && inner
                .foreign
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&last))
        {
            // The id could be another server's: do not guess where the client was.
            Some(Gap {
                last_event_id: last,
                oldest_available: oldest,
            })
        } else if last < inner.lost {
            // Remote events may be missing after `last`; complete again after the skipped id.
            Some(Gap {
                last_event_id: last,
                oldest_available: inner.lost + 1,
            })
        } else {
            None
        };
        let backlog = inner.ring.iter().filter(|e| e.id > last).cloned().collect();
        Subscription {
            gap,
            backlog,
            live,
            closed,
            interrupted,
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

    #[test]
    fn local_events_are_forwarded_and_remote_ones_are_not() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = EventLog::forwarding("vol1", tx);
        log.publish(ChangeKind::Created, "/a", None, false);
        log.publish_from_peer(ChangeKind::Deleted, "/b", None, false, 1);
        let got = rx.try_recv().unwrap();
        assert_eq!((&*got.volume_id, got.event.path.as_str()), ("vol1", "/a"));
        assert!(rx.try_recv().is_err(), "a remote event was forwarded again");
        let s = log.subscribe(Some(got.event.id));
        assert_eq!(s.backlog.len(), 1, "the remote event is in the log");
    }

    #[test]
    fn an_id_that_could_be_another_servers_gets_a_gap() {
        let log = EventLog::new();
        let start = log.next_id();
        for i in 0..3 {
            log.publish(ChangeKind::Created, &format!("/{i}"), None, false);
        }
        // A peer's ids far below this log's range: no ambiguity.
        log.publish_from_peer(ChangeKind::Created, "/p", None, false, start - 1_000_000);
        assert!(log.subscribe(Some(start + 1)).gap.is_none());
        // A peer whose log started later: its ids are above all of this log's.
        log.publish_from_peer(ChangeKind::Created, "/q", None, false, start + 1_000_000);
        assert!(
            log.subscribe(Some(start + 1)).gap.is_none(),
            "own ids stay unambiguous"
        );
        // A peer's ids inside this log's range: those ids could be either server's.
        log.publish_from_peer(ChangeKind::Created, "/r", None, false, start + 1);
        assert!(log.subscribe(Some(start + 1)).gap.is_some());
        assert!(log.subscribe(Some(start + 2)).gap.is_some());
        let s = log.subscribe(Some(start));
        assert!(
            s.gap.is_none(),
            "below the peer's ids, ids are this log's alone"
        );
        assert_eq!(s.backlog.len(), 5);
    }

    #[test]
    fn an_interruption_ends_live_subscribers_and_makes_earlier_resumes_gaps() {
        let log = EventLog::new();
        log.publish(ChangeKind::Created, "/a", None, false);
        let a = log.next_id() - 1;
        let mut sub = log.subscribe(None);
        assert!(!sub.interrupted.has_changed().unwrap());
        log.interrupt();
        assert!(sub.interrupted.has_changed().unwrap());
        log.publish(ChangeKind::Created, "/b", None, false);
        let b = log.next_id() - 1;
        assert_eq!(b, a + 2, "one id is skipped");
        let s = log.subscribe(Some(a));
        let gap = s.gap.expect("a gap: remote events may be missing after a");
        assert_eq!((gap.last_event_id, gap.oldest_available), (a, a + 2));
        assert_eq!(s.backlog.len(), 1);
        assert!(log.subscribe(Some(b)).gap.is_none());
        assert!(sub.live.try_recv().is_ok());
    }
}
