//! The store keeps at most its budget of volume handles open, closing the least recently used
//! idle one; a handle in use or watched is never closed, and a closed one opens again with its
//! usage measured.

use std::sync::Arc;
use std::time::Duration;

use nullspace_core::VolumePath;
use nullspace_volumes::{handle_budget, DirectoryPlacement, VolumeStore, WriteOptions};

fn store(budget: usize) -> (tempfile::TempDir, VolumeStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = VolumeStore::new(Box::new(
        DirectoryPlacement::open(&tmp.path().join("volumes")).unwrap(),
    ));
    store.set_handle_budget(budget);
    for i in 0..5 {
        store.create(&format!("v{i}"), 1 << 30).unwrap();
    }
    (tmp, store)
}

fn write(store: &VolumeStore, id: &str, content: &[u8]) {
    let h = store.handle(id, 1 << 30).unwrap();
    let p = VolumePath::parse("/f").unwrap();
    let mut w = h.begin_write(&p).unwrap();
    w.write(content).unwrap();
    w.commit(&WriteOptions::default()).unwrap();
}

#[test]
fn the_least_recently_used_idle_handle_is_closed_and_opens_again_measured() {
    let (_tmp, store) = store(2);
    write(&store, "v0", b"zero");
    write(&store, "v1", b"one");
    assert_eq!(store.open_count(), 2);
    store.handle("v0", 1 << 30).unwrap(); // v1 is now the least recently used
    write(&store, "v2", b"two");
    assert_eq!(store.open_count(), 2);
    assert!(store.peek("v1").is_none(), "v1 was closed");
    assert!(store.peek("v0").is_some());
    let again = store.handle("v1", 1 << 30).unwrap();
    assert_eq!(again.usage().used_bytes, 3, "measured again when opened");
    assert_eq!(store.open_count(), 2);
}

#[test]
fn handles_in_use_are_never_closed_and_the_budget_is_passed_instead() {
    let (_tmp, store) = store(2);
    let held: Vec<Arc<_>> = (0..3)
        .map(|i| store.handle(&format!("v{i}"), 1 << 30).unwrap())
        .collect();
    assert_eq!(store.open_count(), 3, "every handle is in use");
    assert_eq!(store.close_idle(Duration::ZERO), 0);
    drop(held);
    assert_eq!(store.close_idle(Duration::ZERO), 3);
    assert_eq!(store.open_count(), 0);
}

#[test]
fn a_watched_handle_stays_open_while_idle_ones_go() {
    let (_tmp, store) = store(1);
    let h = store.handle("v0", 1 << 30).unwrap();
    let sub = h.watch(None).unwrap();
    drop(h);
    store.handle("v1", 1 << 30).unwrap();
    assert!(store.peek("v0").is_some(), "the watched volume stays open");
    assert_eq!(store.close_idle(Duration::ZERO), 1, "only v1 is idle");
    assert!(store.peek("v0").is_some());
    assert_eq!(store.fs_hub().watched_volumes(), 1);
    drop(sub);
}

#[test]
fn the_budget_follows_the_fd_limit() {
    assert_eq!(handle_budget(256, 128), 21);
    assert_eq!(handle_budget(1 << 20, 4096), 348_138);
    assert_eq!(handle_budget(64, 32), 8, "never fewer than the minimum");
}
