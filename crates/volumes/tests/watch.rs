//! Watching a volume (docs/SEMANTICS.md "Watch"), on both placements: the API's changes and
//! the changes sandbox code makes in the tree (here written to the host directory a mount
//! shows), resuming, gaps, falling behind.

#[macro_use]
mod placements;

use std::io::Write;
use std::time::Duration;

use nullspace_volumes::events::{ChangeKind, SUBSCRIBER_BUFFER};
use placements::{p, received, write, Backend, Volume};

const MIB: u64 = 1 << 20;
/// Longer than the file-system source holds a change (0.5 s), with room for a slow machine.
const QUIET: Duration = Duration::from_millis(1500);

on_every_placement!(
    every_api_change_is_one_event_in_order,
    sandbox_changes_are_reported_when_written,
    resuming_gets_every_event_after_the_last_one_seen,
    a_resume_is_a_gap_when_events_may_be_missing,
    a_watcher_that_falls_behind_is_told_to_reconnect,
);

/// SEMANTICS: One event per change
fn every_api_change_is_one_event_in_order(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let mut sub = h.watch(None).unwrap();
    write(h, "/a/b/c.txt", b"one").unwrap();
    write(h, "/a/b/c.txt", b"two").unwrap();
    h.rename(&p("/a/b/c.txt"), &p("/a/d.txt"), false).unwrap();
    h.mkdir(&p("/e"), false).unwrap();
    h.copy(&p("/a"), &p("/e/a"), false, true).unwrap();
    h.remove(&p("/a"), true).unwrap();
    // The file-system source sees every one of these too; each is reported once.
    assert_eq!(
        received(&mut sub, QUIET),
        [
            "created /a",
            "created /a/b",
            "created /a/b/c.txt",
            "modified /a/b/c.txt",
            "moved /a/b/c.txt -> /a/d.txt",
            "created /e",
            "created /e/a",
            "deleted /a",
        ]
    );
}

/// SEMANTICS: Sandbox changes are reported when written
/// SEMANTICS: One event per change
fn sandbox_changes_are_reported_when_written(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let tree = v.data_dir();
    let mut sub = h.watch(None).unwrap();
    // `echo hi > f`, then `echo more >> f`.
    std::fs::write(tree.join("f"), b"hi\n").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(tree.join("f"))
        .unwrap()
        .write_all(b"more\n")
        .unwrap();
    assert_eq!(received(&mut sub, QUIET), ["created /f", "modified /f"]);
    // A move, then changes of permissions or times alone.
    std::fs::rename(tree.join("f"), tree.join("g")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tree.join("g"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // `touch g`: both times set, as touch(1) does.
    let now = rustix::fs::Timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: now,
        last_modification: now,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        tree.join("g"),
        &times,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    assert_eq!(received(&mut sub, QUIET), ["moved /f -> /g"]);
    // A file kept open: each write is reported after the hold; closing adds nothing.
    let mut log = std::fs::File::create(tree.join("log")).unwrap();
    log.write_all(b"first").unwrap();
    assert_eq!(received(&mut sub, QUIET), ["created /log"]);
    log.write_all(b"second").unwrap();
    assert_eq!(received(&mut sub, QUIET), ["modified /log"]);
    drop(log);
    assert!(received(&mut sub, QUIET).is_empty());
    // A new directory tree (`mkdir -p d/e && echo x > d/e/f`) and a removal.
    std::fs::create_dir_all(tree.join("d/e")).unwrap();
    std::fs::write(tree.join("d/e/f"), b"x").unwrap();
    std::fs::remove_file(tree.join("g")).unwrap();
    let mut got = received(&mut sub, QUIET);
    got.sort();
    assert_eq!(
        got,
        ["created /d", "created /d/e", "created /d/e/f", "deleted /g"]
    );
}

/// SEMANTICS: Resuming
fn resuming_gets_every_event_after_the_last_one_seen(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let sub = h.watch(None).unwrap();
    let first = h.events().next_id();
    for f in ["/1", "/2", "/3"] {
        write(h, f, b"x").unwrap();
    }
    drop(sub);
    let again = h.watch(Some(first)).unwrap();
    assert!(again.gap.is_none());
    let paths: Vec<&str> = again.backlog.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/2", "/3"]);
    // The server keeps the last 10,000 events: from further back, a gap comes first.
    for i in 0..10_000 {
        h.events()
            .publish(ChangeKind::Created, &format!("/many/{i}"), None, false);
    }
    let late = h.watch(Some(first)).unwrap();
    assert!(late.gap.is_some());
    assert_eq!(late.backlog.len(), 10_000);
    assert_eq!(late.backlog[0].path, "/many/0");
}

/// SEMANTICS: Gaps
fn a_resume_is_a_gap_when_events_may_be_missing(backend: Backend) {
    let mut v = Volume::new(backend, MIB);
    let h = v.h();
    // Nobody watched: only the API changed the volume, but sandbox changes would not have
    // been observed, so a resume from before the watch started is a gap.
    write(h, "/before", b"x").unwrap();
    let before = h.events().next_id() - 1;
    let sub = h.watch(Some(before)).unwrap();
    let gap = sub.gap.expect("a gap");
    assert_eq!(gap.last_event_id, before);
    write(h, "/during", b"x").unwrap();
    let during = h.events().next_id() - 1;
    write(h, "/later", b"x").unwrap();
    drop(sub);
    // From an id seen while observed (the source runs on after the last watcher left): no gap.
    let resumed = h.watch(Some(during)).unwrap();
    assert!(resumed.gap.is_none());
    assert_eq!(resumed.backlog.len(), 1);
    drop(resumed);
    // After a restart of the server, an id of before it is a gap.
    v.restart();
    let h = v.h();
    write(h, "/after", b"x").unwrap();
    let sub = h.watch(Some(during)).unwrap();
    assert!(sub.gap.is_some());
}

/// SEMANTICS: Falling behind
fn a_watcher_that_falls_behind_is_told_to_reconnect(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let mut sub = h.watch(None).unwrap();
    write(h, "/seen", b"x").unwrap();
    assert_eq!(received(&mut sub, QUIET), ["created /seen"]);
    let last_seen = h.events().next_id() - 1;
    for i in 0..=SUBSCRIBER_BUFFER {
        h.events()
            .publish(ChangeKind::Created, &format!("/burst/{i}"), None, false);
    }
    let got = received(&mut sub, Duration::from_millis(100));
    assert!(got[0].starts_with("lagged "), "{:?}", &got[..3]);
    // Reconnecting with the last id seen: everything after it, no gap.
    let again = h.watch(Some(last_seen)).unwrap();
    assert!(again.gap.is_none());
    assert_eq!(again.backlog.len(), SUBSCRIBER_BUFFER + 1);
}
