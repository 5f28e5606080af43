//! `PendingWrite::write_all_of` (what a network body's batches go through): the bytes land in
//! order whatever the mix of small and large buffers, and the cap is enforced the same way.

use nullspace_core::{ErrorCode, VolumePath};
use nullspace_volumes::{DirectoryPlacement, VolumeStore, WriteOptions};

#[test]
fn batches_of_buffers_are_written_in_order_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = VolumeStore::new(Box::new(
        DirectoryPlacement::open(&tmp.path().join("volumes")).unwrap(),
    ));
    store.create("v", 8 << 20).unwrap();
    let h = store.handle("v", 8 << 20).unwrap();
    let p = VolumePath::parse("/f").unwrap();
    let data: Vec<u8> = (0..(5u32 << 20) + 777)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    // Small pieces (through the buffer), then batches larger than it (one writev each),
    // with empty buffers among them.
    let mut w = h.begin_write(&p).unwrap();
    let (head, rest) = data.split_at(1000);
    w.write_all_of(&[&head[..10], &[], &head[10..]]).unwrap();
    for batch in rest.chunks(3 << 20) {
        let pieces: Vec<&[u8]> = batch.chunks(300_001).chain([&[][..]]).collect();
        w.write_all_of(&pieces).unwrap();
    }
    assert_eq!(w.written(), data.len() as u64);
    let st = w.commit(&WriteOptions::default()).unwrap();
    assert_eq!(st.size, data.len() as u64);
    let (mut f, _) = h.open_read(&p).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut back).unwrap();
    assert!(back == data, "content differs");

    // Past the cap (8 MiB; 5 MiB already used by /f, which /g does not replace).
    let mut w = h.begin_write(&VolumePath::parse("/g").unwrap()).unwrap();
    let big = vec![7u8; 2 << 20];
    w.write_all_of(&[&big]).unwrap();
    let e = w.write_all_of(&[&big, &big]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{e}");
}
