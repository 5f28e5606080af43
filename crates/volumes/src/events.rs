//! Change events of one volume: a bounded log with ids, and live subscribers.
//!
//! Two sources feed one log, so a client sees one ordered stream whatever made the change:
//! every mutation made through a [`crate::VolumeHandle`] calls [`EventLog::publish`], and the
//! file-system source (`fswatch`, inotify on the data tree, for writes made by sandbox code in
//! a mount) calls [`EventLog::publish_observed`].
//!
//! De-duplication: an API change is seen by inotify too (its rename from staging into the
//! tree). Mutations run inside [`EventLog::begin_change`]; while the file-system source runs,
//! `publish` remembers the paths it reported ("marks"). Before deciding on what it read, the
//! source waits for the changes that were in flight when it read (so their marks exist), then
//! drops every observed event that touches a marked path. A mark is forgotten once the source
//! has handled a read that began after the mark was made: by then every inotify event the
//! change caused has been seen. So an API change yields exactly one event, with the API's kind.
//!
//! Servers sharing a volume (several servers on one database and data root) forward the events
//! of API changes made through them to each other: a log built with [`EventLog::forwarding`]
//! hands each such event to a [`ChangeSink`]; events that arrive from another server are
//! recorded with [`EventLog::publish_from_peer`] (marked like the API's own, and not forwarded
//! again). Changes the file-system source observes are not forwarded: on one host every
//! server's source sees them itself. Ids are per log, that is per server: a remote event gets
//! the receiving log's next id. When remote events may have been lost (the link to the other
//! servers broke, or one was too large to forward), the log is
//! [interrupted](EventLog::interrupt): live subscribers are told to reconnect and a resume from
//! an earlier id gets a gap marker, so nothing is ever lost silently.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::broadcast;

pub use nullspace_core::wire::{ChangeEvent, ChangeKind, WatchGap as Gap};

/// Events retained for reconnecting clients.
pub const RETAINED_EVENTS: usize = 10_000;
/// Events a live subscriber may fall behind before it is told so and dropped.
pub const SUBSCRIBER_BUFFER: usize = 4_096;

/// What a live subscriber receives.
#[derive(Debug, Clone)]
pub enum Live {
    Change(Arc<ChangeEvent>),
    /// Changes were lost just now (the file-system source overflowed).
    Gap(Gap),
}

/// What a new subscriber gets: missed events (and a gap marker if some are gone), then live ones.
pub struct Subscription {
    pub gap: Option<Gap>,
    pub backlog: Vec<Arc<ChangeEvent>>,
    pub live: broadcast::Receiver<Live>,
    /// Turns `true` when the volume is deleted: the subscriber should end.
    pub closed: tokio::sync::watch::Receiver<bool>,
    /// Keeps the volume's file-system source running while the subscriber lives (set by
    /// [`crate::VolumeHandle::watch`]).
    pub source: Option<crate::fswatch::Attached>,
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
    /// First ids after each loss (changes before them may be missing), ascending; only those
    /// newer than the oldest retained event matter.
    losses: VecDeque<u64>,
    /// Whether a file-system source runs (only then are marks kept).
    observing: bool,
    /// Paths of recent API changes: (mark number, path), oldest first, and how many marks
    /// each path has.
    marks: VecDeque<(u64, String)>,
    marked: HashMap<String, usize>,
    next_mark: u64,
    /// The first id of this log.
    start: u64,
    /// The smallest and largest ids (not below `start`) other servers gave events they
    /// forwarded here: an id in there that this log also issued could be either server's, so
    /// a resume from it gets a gap instead of a guess.
    foreign: Option<(u64, u64)>,
    /// Observed changes waiting for [`PEER_HOLD`] before they are recorded (forwarding logs
    /// only), oldest first: (since, kind, path, old path, is_dir).
    pending: VecDeque<(Instant, ChangeKind, String, Option<String>, bool)>,
}

impl Inner {
    fn pop_mark(&mut self) {
        if let Some((_, p)) = self.marks.pop_front() {
            if let Some(n) = self.marked.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.marked.remove(&p);
                }
            }
        }
    }
}

/// Changes in flight (between [`EventLog::begin_change`] and the end of its guard).
#[derive(Default)]
struct InFlight {
    next: u64,
    running: BTreeSet<u64>,
}

/// How long a forwarding log holds a change the file-system source observed before recording
/// it, while another server runs on the data root. Servers sharing a data root on one host all observe an API change made through any of
/// them (inotify sees every mount of the volume), and the change's own event arrives from the
/// server that made it a moment later; an observed change of a path such an event touches is
/// that change, seen a second time, and is dropped.
pub const PEER_HOLD: Duration = Duration::from_millis(500);

/// Marks beyond this many are dropped oldest first (a bound, should the source stall).
const MAX_MARKS: usize = 100_000;

/// The event log of one volume.
pub struct EventLog {
    inner: Mutex<Inner>,
    /// Live subscribers' channel, made at the first subscription: its buffer of
    /// [`SUBSCRIBER_BUFFER`] slots is allocated whole, and most open volumes are never watched.
    tx: std::sync::OnceLock<broadcast::Sender<Live>>,
    closed: tokio::sync::watch::Sender<bool>,
    interrupted: tokio::sync::watch::Sender<u64>,
    forward: Option<(Arc<str>, ChangeSink)>,
    /// With a forwarding log: this server on its data root (are others running beside it?).
    owner: Option<Arc<crate::ServerInstance>>,
    in_flight: Mutex<InFlight>,
    done: Condvar,
}

/// A change in progress (see [`EventLog::begin_change`]); ends when dropped.
pub struct ChangeGuard<'a> {
    log: &'a EventLog,
    id: u64,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        let mut f = self.log.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        f.running.remove(&self.id);
        self.log.done.notify_all();
    }
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
        EventLog {
            closed: tokio::sync::watch::Sender::new(false),
            interrupted: tokio::sync::watch::Sender::new(0),
            inner: Mutex::new(Inner {
                next_id: start,
                ring: VecDeque::new(),
                losses: VecDeque::new(),
                observing: false,
                marks: VecDeque::new(),
                marked: HashMap::new(),
                next_mark: 0,
                start,
                foreign: None,
                pending: VecDeque::new(),
            }),
            tx: std::sync::OnceLock::new(),
            forward: None,
            owner: None,
            in_flight: Mutex::new(InFlight::default()),
            done: Condvar::new(),
        }
    }

    /// A new log of volume `volume_id` that also hands each API change's event to `sink`;
    /// `owner` is this server on the data root.
    pub fn forwarding(
        volume_id: &str,
        sink: ChangeSink,
        owner: Arc<crate::ServerInstance>,
    ) -> EventLog {
        EventLog {
            forward: Some((volume_id.into(), sink)),
            owner: Some(owner),
            ..EventLog::new()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records and broadcasts one change made through this server's API (and forwards it to
    /// the other servers, if the log forwards).
    pub fn publish(&self, kind: ChangeKind, path: &str, old_path: Option<&str>, is_dir: bool) {
        let mut inner = self.lock();
        Self::mark(&mut inner, path, old_path);
        Self::drop_pending(&mut inner, path, old_path);
        let event = Self::append(&self.tx, &mut inner, kind, path, old_path, is_dir);
        // Under the lock, so that forwarded events keep their order.
        if let Some((volume_id, sink)) = &self.forward {
            let _ = sink.send(LocalChange {
                volume_id: volume_id.clone(),
                event,
            });
        }
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
        let mut inner = self.lock();
        if origin_id >= inner.start {
            inner.foreign = Some(match inner.foreign {
                Some((lo, hi)) => (lo.min(origin_id), hi.max(origin_id)),
                None => (origin_id, origin_id),
            });
        }
        Self::mark(&mut inner, path, old_path);
        Self::drop_pending(&mut inner, path, old_path);
        Self::append(&self.tx, &mut inner, kind, path, old_path, is_dir);
    }

    /// Drops held observed changes touching the paths of a change reported by the API.
    fn drop_pending(inner: &mut Inner, path: &str, old_path: Option<&str>) {
        if inner.pending.is_empty() {
            return;
        }
        let hit = |p: &str| p == path || old_path == Some(p);
        inner
            .pending
            .retain(|(_, _, p, o, _)| !hit(p) && !o.as_deref().is_some_and(hit));
    }

    /// Records the held observed changes that have waited [`PEER_HOLD`] (all with `all`).
    pub(crate) fn flush_pending(&self, all: bool) {
        let mut inner = self.lock();
        while let Some((since, ..)) = inner.pending.front() {
            if !all && since.elapsed() < PEER_HOLD {
                break;
            }
            let (_, kind, path, old, is_dir) = inner.pending.pop_front().expect("checked");
            Self::append(&self.tx, &mut inner, kind, &path, old.as_deref(), is_dir);
        }
    }

    /// When the oldest held observed change is due.
    pub(crate) fn pending_deadline(&self) -> Option<Instant> {
        self.lock()
            .pending
            .front()
            .map(|(since, ..)| *since + PEER_HOLD)
    }

    /// While the file-system source runs, remembers the paths of a change it will see too.
    fn mark(inner: &mut Inner, path: &str, old_path: Option<&str>) {
        if inner.observing {
            for p in std::iter::once(path).chain(old_path) {
                if inner.marks.len() == MAX_MARKS {
                    inner.pop_mark();
                }
                let n = inner.next_mark;
                inner.next_mark += 1;
                inner.marks.push_back((n, p.to_owned()));
                *inner.marked.entry(p.to_owned()).or_default() += 1;
            }
        }
    }

    /// Records a change the file-system source observed, unless it touches a path the API just
    /// changed (then the API's event already reports it). Returns whether it was recorded.
    pub fn publish_observed(
        &self,
        kind: ChangeKind,
        path: &str,
        old_path: Option<&str>,
        is_dir: bool,
    ) -> bool {
        // Only while another server shares the data root (looked up outside the lock).
        let hold = self.owner.as_ref().is_some_and(|o| o.others_running());
        let mut inner = self.lock();
        let marked = |p: &str| inner.marked.contains_key(p);
        if marked(path) || old_path.is_some_and(marked) {
            return false;
        }
        if hold {
            // Other servers may report this change themselves in a moment: see PEER_HOLD.
            inner.pending.push_back((
                Instant::now(),
                kind,
                path.to_owned(),
                old_path.map(str::to_owned),
                is_dir,
            ));
            return true;
        }
        Self::append(&self.tx, &mut inner, kind, path, old_path, is_dir);
        true
    }

    fn append(
        tx: &std::sync::OnceLock<broadcast::Sender<Live>>,
        inner: &mut Inner,
        kind: ChangeKind,
        path: &str,
        old_path: Option<&str>,
        is_dir: bool,
    ) -> Arc<ChangeEvent> {
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
        // Sent under the lock so that subscribe() sees each event exactly once (before the
        // first subscription there is no one to send to).
        if let Some(tx) = tx.get() {
            let _ = tx.send(Live::Change(event.clone()));
        }
        event
    }

    /// Events from other servers may have been lost: skips one id (so that a resume from an
    /// earlier id gets a gap marker) and tells live subscribers to reconnect.
    pub fn interrupt(&self) {
        metrics::counter!("nullspace_watch_gaps_total", "source" => "peers").increment(1);
        let mut inner = self.lock();
        inner.next_id += 1;
        let at = inner.next_id;
        Self::note_loss(&mut inner, at);
        self.interrupted.send_modify(|n| *n += 1);
    }

    /// Says that changes may have gone unobserved just now: live subscribers get a gap, and
    /// so does anyone resuming from an earlier id.
    pub fn publish_loss(&self) {
        metrics::counter!("nullspace_watch_gaps_total", "source" => "file_system").increment(1);
        let mut inner = self.lock();
        let at = inner.next_id;
        Self::note_loss(&mut inner, at);
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(Live::Gap(Gap {
                last_event_id: at - 1,
                oldest_available: at,
            }));
        }
    }

    fn note_loss(inner: &mut Inner, at: u64) {
        if inner.losses.back() != Some(&at) {
            inner.losses.push_back(at);
        }
        let oldest = inner.ring.front().map_or(inner.next_id, |e| e.id);
        while inner.losses.len() > 1 && inner.losses[1] <= oldest {
            inner.losses.pop_front();
        }
    }

    /// The file-system source starts (`true`) or stops. Changes made before a start were not
    /// observed: resuming from an id before it yields a gap.
    pub(crate) fn set_observing(&self, on: bool) {
        let mut inner = self.lock();
        inner.observing = on;
        if on {
            let at = inner.next_id;
            Self::note_loss(&mut inner, at);
        } else {
            inner.marks.clear();
            inner.marked.clear();
        }
    }

    /// Marks the start of a mutation of the tree; it ends when the guard is dropped.
    pub fn begin_change(&self) -> ChangeGuard<'_> {
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let id = f.next;
        f.next += 1;
        f.running.insert(id);
        ChangeGuard { log: self, id }
    }

    /// The number the next mark will get: marks below it were made before this call.
    pub(crate) fn mark_horizon(&self) -> u64 {
        self.lock().next_mark
    }

    /// Waits until every change that had begun before this call has ended (so that the marks
    /// of whatever caused the events just read exist).
    pub(crate) fn settle(&self) {
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let before = f.next;
        while f.running.first().is_some_and(|&id| id < before) {
            f = self.done.wait(f).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Forgets marks made before `horizon` (see [`EventLog::mark_horizon`]).
    pub(crate) fn forget_marks(&self, horizon: u64) {
        let mut inner = self.lock();
        while inner.marks.front().is_some_and(|(n, _)| *n < horizon) {
            inner.pop_mark();
        }
    }

    /// Subscribes; with `last_event_id`, retained events after it come first.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let inner = self.lock();
        let live = self
            .tx
            .get_or_init(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe();
        let closed = self.closed.subscribe();
        let interrupted = self.interrupted.subscribe();
        let Some(last) = last_event_id else {
            return Subscription {
                gap: None,
                backlog: Vec::new(),
                live,
                closed,
                source: None,
                interrupted,
            };
        };
        let mut oldest = inner.ring.front().map_or(inner.next_id, |e| e.id);
        // Ids between `last` and the oldest retained one are lost (or, after a restart, the
        // client's id belongs to a previous server life).
        let mut lost = last.saturating_add(1) < oldest || last >= inner.next_id;
        // An id this log issued that another server may have issued too: do not guess where
        // the client was.
        lost |= (inner.start..inner.next_id).contains(&last)
            && inner
                .foreign
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&last));
        // Changes went unobserved after `last`: the log is complete from the last such loss
        // on. (When retention alone made a gap, it stays as it was: any gap means re-list.)
        if let Some(&at) = inner.losses.back().filter(|&&at| at > last && !lost) {
            lost = true;
            oldest = oldest.max(at);
        }
        let gap = lost.then_some(Gap {
            last_event_id: last,
            oldest_available: oldest,
        });
        let from = oldest.max(last.saturating_add(1));
        let backlog = inner
            .ring
            .iter()
            .filter(|e| e.id >= from)
            .cloned()
            .collect();
        Subscription {
            gap,
            backlog,
            live,
            closed,
            source: None,
            interrupted,
        }
    }

    /// Ends every subscription (the volume is being deleted).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`EventLog::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
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
    fn observed_changes_of_paths_the_api_just_changed_are_dropped() {
        let log = EventLog::new();
        // Not observing: no marks kept.
        log.publish(ChangeKind::Created, "/a", None, false);
        assert!(log.publish_observed(ChangeKind::Created, "/a", None, false));
        log.set_observing(true);
        let horizon = log.mark_horizon();
        {
            let _change = log.begin_change();
            log.publish(ChangeKind::Moved, "/b", Some("/c"), false);
        }
        log.settle();
        assert!(!log.publish_observed(ChangeKind::Created, "/b", None, false));
        assert!(!log.publish_observed(ChangeKind::Deleted, "/c", None, false));
        assert!(!log.publish_observed(ChangeKind::Moved, "/d", Some("/b"), false));
        assert!(log.publish_observed(ChangeKind::Created, "/e", None, false));
        // Marks made after a read began are kept for the next one.
        log.forget_marks(horizon);
        assert!(!log.publish_observed(ChangeKind::Created, "/b", None, false));
        log.forget_marks(log.mark_horizon());
        assert!(log.publish_observed(ChangeKind::Created, "/b", None, false));
    }

    #[test]
    fn unobserved_time_and_losses_are_gaps() {
        let log = EventLog::new();
        log.publish(ChangeKind::Created, "/before", None, false);
        let before = log.next_id() - 1;
        // The file-system source starts: sandbox changes before it were not observed.
        log.set_observing(true);
        log.publish(ChangeKind::Created, "/x", None, false);
        let x = log.next_id() - 1;
        let s = log.subscribe(Some(before));
        assert_eq!(
            s.gap,
            Some(Gap {
                last_event_id: before,
                oldest_available: x
            })
        );
        assert_eq!(s.backlog.len(), 1);
        assert!(log.subscribe(Some(x)).gap.is_none());
        // A loss while a subscriber listens: it gets a gap live, and so does a resume.
        let mut live = log.subscribe(None).live;
        log.publish_loss();
        log.publish(ChangeKind::Created, "/y", None, false);
        assert!(matches!(live.try_recv(), Ok(Live::Gap(g)) if g.last_event_id == x));
        assert!(matches!(live.try_recv(), Ok(Live::Change(e)) if e.path == "/y"));
        let s = log.subscribe(Some(x));
        assert_eq!(s.gap.unwrap().oldest_available, x + 1);
        assert_eq!(s.backlog[0].path, "/y");
    }

    #[test]
    fn local_events_are_forwarded_and_remote_ones_are_not() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = EventLog::forwarding("vol1", tx, Arc::new(crate::ServerInstance::solo()));
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
