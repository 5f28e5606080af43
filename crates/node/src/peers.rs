//! Several servers on one database and data root: the change events of volumes.
//!
//! Every change made through this server is published in its volume's [`EventLog`] (its own
//! watchers see it at once) and handed to the forwarder here, which sends it to the other
//! servers over the store's [`PeerChannel`] (PostgreSQL `NOTIFY`), batched per volume into
//! messages under the 8000-byte payload limit. The listener here feeds what the other servers
//! send into the logs of the volumes open in this process, as changes from a peer (not forwarded
//! again); a message from this server itself is skipped (the server id is in every message).
//!
//! Nothing is lost silently: when the listener loses its connection (messages sent meanwhile
//! are gone), or an event is too large for one message, the affected logs are interrupted —
//! their watchers are told to reconnect and a resume from an earlier id gets a gap marker.
//!
//! Event ids are per server (each log numbers what it records, remote events included), so an
//! id from one server means nothing to another: resuming through another server gives a gap
//! marker and then what that server retained. Each forwarded event carries its sender's id, so
//! that a log can tell an id that both servers issued and answer it with a gap too (see
//! ARCHITECTURE.md, "Several servers").
//!
//! [`EventLog`]: nullspace_volumes::events::EventLog

use std::sync::Arc;
use std::time::Duration;

use nullspace_state::{PeerChannel, StateStore, MAX_PEER_MESSAGE};
use nullspace_volumes::events::{ChangeKind, LocalChange};
use nullspace_volumes::VolumeStore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

/// Events taken from the queue per round of sending.
const BATCH: usize = 512;
/// Wait before listening again after the database went away.
const RETRY: Duration = Duration::from_secs(1);

/// One message between servers.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Message {
    /// The sending server's id.
    server: String,
    volume: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<WireEvent>,
    /// Changes of the volume were made but could not be sent (too large).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    lost: bool,
    /// The volume was deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct WireEvent {
    /// The id the sending server gave the event.
    id: u64,
    #[serde(rename = "type")]
    kind: ChangeKind,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old_path: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    is_dir: bool,
}

/// Starts forwarding this server's events and listening to the others'.
pub(crate) fn start(
    volumes: &Arc<VolumeStore>,
    channel: Arc<dyn PeerChannel>,
    local: UnboundedReceiver<LocalChange>,
) {
    let me = volumes.owner().id().to_owned();
    tokio::spawn(forward(channel.clone(), me.clone(), local));
    tokio::spawn(listen(channel, me, volumes.clone()));
}

/// Tells the other servers that a volume was deleted (their watchers of it end).
pub(crate) async fn volume_deleted(
    store: &Arc<dyn StateStore>,
    volumes: &VolumeStore,
    volume_id: &str,
) {
    let Some(channel) = store.peers() else {
        return;
    };
    let msg = Message {
        server: volumes.owner().id().to_owned(),
        volume: volume_id.to_owned(),
        events: Vec::new(),
        lost: false,
        deleted: true,
    };
    if let Err(e) = channel.send(&encode(&msg)).await {
        tracing::warn!(volume = volume_id, error = %e, "could not tell the other servers about a deleted volume");
    }
}

fn encode(msg: &Message) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

/// Packs events (in order) into messages of at most `limit` bytes, one volume per message.
/// An event too large for a message on its own becomes a `lost` message for its volume.
fn pack(me: &str, changes: &[LocalChange], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Message> = None;
    let flush = |m: Option<Message>, out: &mut Vec<String>| {
        if let Some(m) = m {
            out.push(encode(&m));
        }
    };
    for c in changes {
        let ev = WireEvent {
            id: c.event.id,
            kind: c.event.kind,
            path: c.event.path.clone(),
            old_path: c.event.old_path.clone(),
            is_dir: c.event.is_dir,
        };
        if current.as_ref().is_some_and(|m| m.volume != *c.volume_id) {
            flush(current.take(), &mut out);
        }
        let m = current.get_or_insert_with(|| Message {
            server: me.to_owned(),
            volume: c.volume_id.to_string(),
            events: Vec::new(),
            lost: false,
            deleted: false,
        });
        m.events.push(ev);
        if encode(m).len() <= limit {
            continue;
        }
        let ev = m.events.pop().expect("just pushed");
        if !m.events.is_empty() {
            flush(current.take(), &mut out);
        }
        let alone = Message {
            server: me.to_owned(),
            volume: c.volume_id.to_string(),
            events: vec![ev],
            lost: false,
            deleted: false,
        };
        if encode(&alone).len() <= limit {
            current = Some(alone);
        } else {
            current = None;
            out.push(encode(&Message {
                events: Vec::new(),
                lost: true,
                ..alone
            }));
        }
    }
    flush(current, &mut out);
    out
}

async fn forward(
    channel: Arc<dyn PeerChannel>,
    me: String,
    mut local: UnboundedReceiver<LocalChange>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while local.recv_many(&mut batch, BATCH).await > 0 {
        for msg in pack(&me, &batch, MAX_PEER_MESSAGE) {
            // The other servers' listeners are cut off too when the database is away, and
            // they interrupt their watchers when they reconnect.
            if let Err(e) = channel.send(&msg).await {
                tracing::warn!(error = %e, "could not send change events to the other servers");
            }
        }
        batch.clear();
    }
}

async fn listen(channel: Arc<dyn PeerChannel>, me: String, volumes: Arc<VolumeStore>) {
    // Whether messages may have been missed since the last one received.
    let mut broken = false;
    loop {
        let mut listener = match channel.listen().await {
            Ok(l) => l,
            Err(e) => {
                if !broken {
                    tracing::warn!(error = %e, "cannot listen to the other servers' change events");
                }
                broken = true;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if broken {
            interrupt_all(&volumes);
        }
        // Leaves only when the connection is gone for now: `broken` again.
        loop {
            match listener.recv().await {
                Ok(Some(payload)) => apply(&me, &volumes, &payload),
                // Reconnected: what was sent meanwhile is gone.
                Ok(None) => interrupt_all(&volumes),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the other servers' change events");
                    broken = true;
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
    }
}

fn interrupt_all(volumes: &VolumeStore) {
    tracing::warn!(
        "change events from other servers may have been missed; watchers are told to reconnect"
    );
    for h in volumes.open_handles() {
        h.events().interrupt();
    }
}

fn apply(me: &str, volumes: &VolumeStore, payload: &str) {
    let msg: Message = match serde_json::from_str(payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a message from another server that is not understood");
            return;
        }
    };
    if msg.server == me {
        return;
    }
    if msg.deleted {
        volumes.forget(&msg.volume);
        return;
    }
    // A volume not open here has no watcher here.
    let Some(h) = volumes.peek(&msg.volume) else {
        return;
    };
    if msg.lost {
        h.events().interrupt();
    }
    for e in &msg.events {
        h.events()
            .publish_from_peer(e.kind, &e.path, e.old_path.as_deref(), e.is_dir, e.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nullspace_volumes::events::ChangeEvent;

    fn change(volume: &str, path: String) -> LocalChange {
        LocalChange {
            volume_id: volume.into(),
            event: Arc::new(ChangeEvent {
                id: 1,
                kind: ChangeKind::Created,
                path,
                old_path: None,
                is_dir: false,
                time: chrono::Utc::now(),
            }),
        }
    }

    #[test]
    fn events_are_packed_per_volume_under_the_limit_in_order() {
        let mut changes: Vec<_> = (0..300).map(|i| change("a", format!("/f{i:04}"))).collect();
        changes.push(change("b", "/x".into()));
        changes.push(change("a", "/y".into()));
        changes.push(change("a", format!("/{}", "n".repeat(8100))));
        let msgs = pack("me", &changes, MAX_PEER_MESSAGE);
        let decoded: Vec<Message> = msgs
            .iter()
            .inspect(|m| assert!(m.len() <= MAX_PEER_MESSAGE, "{} bytes", m.len()))
            .map(|m| serde_json::from_str(m).unwrap())
            .collect();
        assert!(decoded.len() > 3, "300 events need several messages");
        let order: Vec<(String, String)> = decoded
            .iter()
            .flat_map(|m| m.events.iter().map(|e| (m.volume.clone(), e.path.clone())))
            .collect();
        let want: Vec<(String, String)> = changes[..302]
            .iter()
            .map(|c| (c.volume_id.to_string(), c.event.path.clone()))
            .collect();
        assert_eq!(order, want);
        let last = decoded.last().unwrap();
        assert!(last.lost && last.events.is_empty() && last.volume == "a");
    }
}
