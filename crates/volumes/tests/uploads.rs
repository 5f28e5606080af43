//! Resumable uploads, the data side of tus (docs/SEMANTICS.md "Resumable uploads"), on both
//! placements.

#[macro_use]
mod placements;

use std::io::Read;
use std::sync::mpsc;

use chrono::Duration;
use nullspace_core::ErrorCode;
use nullspace_volumes::uploads::{ChunkChecksum, UploadError, UploadState};
use placements::{p, read, write, Backend, Volume};
use sha2::Digest;

const MIB: u64 = 1 << 20;

on_every_placement!(
    an_upload_resumes_at_the_reported_offset_after_a_crash,
    a_broken_chunk_keeps_what_arrived_unless_it_had_a_checksum,
    appends_must_name_the_offset_and_come_one_at_a_time,
    a_complete_upload_is_published_even_after_an_interruption,
    uploads_expire,
);

fn day() -> Duration {
    Duration::hours(24)
}

fn offset_of(r: Result<UploadState, UploadError>) -> u64 {
    r.unwrap().offset
}

/// A chunk that yields `data`, then a broken stream (or, in a crash child, the process dies).
struct Breaks {
    data: Option<Vec<u8>>,
    abort: bool,
}

impl Read for Breaks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.data.take() {
            Some(d) => {
                buf[..d.len()].copy_from_slice(&d);
                Ok(d.len())
            }
            None if self.abort => std::process::abort(),
            None => Err(std::io::Error::other("connection reset")),
        }
    }
}

/// Runs in a child process started by `Volume::crash_in_child`, which dies in the middle of
/// an append; in a normal test run it has nothing to do.
#[test]
fn crash_child() {
    let Some((scenario, server)) = placements::crashing_child() else {
        return;
    };
    assert_eq!(scenario, "append");
    let id = std::env::var("NS_UPLOAD_ID").unwrap();
    let chunk = Breaks {
        data: Some(b"LOST".to_vec()),
        abort: true,
    };
    let _ = server.handle.upload_append(&id, 5, chunk, None);
    unreachable!("the chunk aborts the process");
}

/// SEMANTICS: Resume at the reported offset
/// SEMANTICS: Durable changes
fn an_upload_resumes_at_the_reported_offset_after_a_crash(backend: Backend) {
    let mut v = Volume::new(backend, MIB);
    let up = v.h().upload_create(&p("/up.bin"), 10, None, day()).unwrap();
    assert_eq!(
        offset_of(v.h().upload_append(&up.id, 0, &b"hello"[..], None)),
        5
    );
    // A server dies while bytes of the next chunk are arriving.
    v.crash_in_child("append", &[("NS_UPLOAD_ID", up.id.clone())]);
    let data = (v.data_dir().parent().unwrap())
        .join("staging/uploads")
        .join(format!("{}.data", up.id));
    assert_eq!(
        std::fs::metadata(data).unwrap().len(),
        9,
        "the lost bytes reached the file"
    );
    v.restart();
    assert_eq!(v.h().upload_state(&up.id).unwrap().offset, 5);
    // Resumed through another server sharing the data root.
    let other = v.another_server();
    let done = other
        .handle
        .upload_append(&up.id, 5, &b"world"[..], None)
        .unwrap();
    assert!(done.completed.is_some());
    assert_eq!(read(v.h(), "/up.bin"), b"helloworld");
}

/// SEMANTICS: Broken chunks
fn a_broken_chunk_keeps_what_arrived_unless_it_had_a_checksum(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let up = h.upload_create(&p("/f"), 12, None, day()).unwrap();
    let broken = |data: &[u8]| Breaks {
        data: Some(data.to_vec()),
        abort: false,
    };
    // No checksum: what arrived counts.
    assert_eq!(
        offset_of(h.upload_append(&up.id, 0, broken(b"abc"), None)),
        3
    );
    // A checksum of the whole chunk: a part cannot match it.
    let sum = ChunkChecksum::Sha256(sha2::Sha256::digest(b"defghi").to_vec());
    let e = h
        .upload_append(&up.id, 3, broken(b"def"), Some(sum))
        .unwrap_err();
    assert!(
        matches!(&e, UploadError::Fs(f) if f.code() == ErrorCode::InvalidArgument),
        "{e}"
    );
    assert_eq!(h.upload_state(&up.id).unwrap().offset, 3);
    // A checksum that does not match the content.
    let wrong = ChunkChecksum::Sha256(sha2::Sha256::digest(b"other").to_vec());
    let e = h
        .upload_append(&up.id, 3, &b"defghi"[..], Some(wrong))
        .unwrap_err();
    assert!(matches!(e, UploadError::ChecksumMismatch), "{e}");
    assert_eq!(h.upload_state(&up.id).unwrap().offset, 3);
    let right = ChunkChecksum::Sha1(sha1_of(b"defghijkl"));
    let done = h
        .upload_append(&up.id, 3, &b"defghijkl"[..], Some(right))
        .unwrap();
    assert!(done.completed.is_some());
    assert_eq!(read(h, "/f"), b"abcdefghijkl");
}

fn sha1_of(data: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).to_vec()
}

/// A chunk that says when it is being read and then waits for a go-ahead.
struct Gated {
    started: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
    data: Option<Vec<u8>>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(d) = self.data.take() else {
            return Ok(0);
        };
        let _ = self.started.send(());
        let _ = self.go.recv();
        buf[..d.len()].copy_from_slice(&d);
        Ok(d.len())
    }
}

/// SEMANTICS: One append at a time
fn appends_must_name_the_offset_and_come_one_at_a_time(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let up = h.upload_create(&p("/f"), 6, None, day()).unwrap();
    assert_eq!(offset_of(h.upload_append(&up.id, 0, &b"ab"[..], None)), 2);
    match h.upload_append(&up.id, 0, &b"ab"[..], None) {
        Err(UploadError::OffsetMismatch { given, current }) => assert_eq!((given, current), (0, 2)),
        other => panic!("{other:?}"),
    }
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let chunk = Gated {
                started: started_tx,
                go: go_rx,
                data: Some(b"cd".to_vec()),
            };
            h.upload_append(&up.id, 2, chunk, None)
        });
        started.recv().unwrap();
        // The first append is receiving its chunk: a second one is refused.
        let second = h.upload_append(&up.id, 2, &b"cd"[..], None);
        assert!(matches!(second, Err(UploadError::Busy(_))), "{second:?}");
        go.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap().offset, 4);
    });
    assert!(h
        .upload_append(&up.id, 4, &b"ef"[..], None)
        .unwrap()
        .completed
        .is_some());
    assert_eq!(read(h, "/f"), b"abcdef");
}

/// SEMANTICS: Completion
/// SEMANTICS: API changes stop at the cap
fn a_complete_upload_is_published_even_after_an_interruption(backend: Backend) {
    let v = Volume::new(backend, 100);
    let h = v.h();
    write(h, "/dest", b"old content").unwrap();
    // The declared length is checked against the cap when the upload starts.
    let e = h.upload_create(&p("/big"), 90, None, day()).unwrap_err();
    assert!(
        matches!(&e, UploadError::Fs(f) if f.code() == ErrorCode::QuotaExceeded),
        "{e}"
    );
    // Replacing: room for the difference is enough.
    let up = h.upload_create(&p("/dest"), 95, None, day()).unwrap();
    let done = h.upload_append(&up.id, 0, &[b'n'; 95][..], None).unwrap();
    assert_eq!(done.completed.unwrap().size, 95);
    assert_eq!(read(h, "/dest"), [b'n'; 95]);
    assert_eq!(h.usage().used_bytes, 95);
    // Every byte stored, but publishing did not happen (here: a file stands where its
    // directory should be); the next request about the upload publishes it.
    h.remove(&p("/dest"), false).unwrap();
    write(h, "/blocked", b"x").unwrap();
    let up = h.upload_create(&p("/blocked/f"), 4, None, day()).unwrap();
    assert!(h.upload_append(&up.id, 0, &b"data"[..], None).is_err());
    h.remove(&p("/blocked"), false).unwrap();
    let state = h.upload_state(&up.id).unwrap();
    assert!(state.completed.is_some());
    assert_eq!(read(h, "/blocked/f"), b"data");
    assert_eq!(h.usage().used_bytes, 4);
}

/// SEMANTICS: Expiry
fn uploads_expire(backend: Backend) {
    let v = Volume::new(backend, MIB);
    let h = v.h();
    let gone = h
        .upload_create(&p("/a"), 10, None, Duration::zero())
        .unwrap();
    assert!(matches!(
        h.upload_state(&gone.id),
        Err(UploadError::Expired(_))
    ));
    assert!(matches!(
        h.upload_state(&gone.id),
        Err(UploadError::NotFound(_))
    ));
    // The sweep removes expired uploads nobody asks about; live ones stay.
    let swept = h
        .upload_create(&p("/b"), 10, None, Duration::zero())
        .unwrap();
    let live = h.upload_create(&p("/c"), 10, None, day()).unwrap();
    assert_eq!(h.upload_sweep(), 1);
    assert!(matches!(
        h.upload_state(&swept.id),
        Err(UploadError::NotFound(_))
    ));
    assert_eq!(h.upload_state(&live.id).unwrap().offset, 0);
    assert_eq!(v.staging_names(), ["uploads"]);
    let uploads = v.data_dir().parent().unwrap().join("staging/uploads");
    let files = std::fs::read_dir(uploads).unwrap().count();
    assert_eq!(files, 2, "only the live upload's state and data are left");
}
