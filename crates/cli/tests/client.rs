//! The Rust client (`nullspace-client`) against the real server binary. It lives here because
//! only this package can start the `nullspace` binary in its tests.

mod harness;

use bytes::Bytes;
use futures::TryStreamExt;
use harness::Server;
use nullspace_client::{Client, ListOptions, WriteOptions};
use nullspace_core::{
    ErrorCode, FileType, LabelSelector, Labels, TenantName, VolumeField, VolumeName, VolumePath,
};

fn vol(s: &str) -> VolumeName {
    VolumeName::parse(s).unwrap()
}

fn p(s: &str) -> VolumePath {
    VolumePath::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_covers_every_route() {
    let s = Server::start();
    let c = Client::new(&s.url, &s.key).unwrap();

    assert_eq!(c.health().await.unwrap().status, "ok");
    let me = c.whoami().await.unwrap();
    assert_eq!((me.tenant.as_str(), me.admin), ("default", true));

    // Volumes.
    let labels: Labels = [("team".to_owned(), "ml".to_owned())].into();
    let (v, created) = c.create_volume(&vol("data"), &labels, false).await.unwrap();
    assert!(created);
    assert_eq!(v.labels, labels);
    let (again, created) = c
        .create_volume(&vol("data"), &Labels::new(), true)
        .await
        .unwrap();
    assert_eq!((again.id.as_str(), created), (v.id.as_str(), false));
    let e = c
        .create_volume(&vol("data"), &Labels::new(), false)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    let sel = [LabelSelector::parse("team=ml").unwrap()];
    assert_eq!(c.list_volumes(&sel).await.unwrap().len(), 1);
    let fields = c
        .list_volumes_fields(&[], &[VolumeField::Name, VolumeField::State])
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::from(fields[0].clone()),
        serde_json::json!({"name": "data", "state": "ready"})
    );
    assert_eq!(c.get_volume(&vol("data")).await.unwrap().id, v.id);
    let one = c
        .get_volume_fields(&vol("data"), &[VolumeField::CapBytes])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let e = c.get_volume(&vol("missing")).await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::NotFound, r#"volume "missing" not found"#)
    );

    // Writes: bytes, a reader, a stream; conditional writes.
    let d = vol("data");
    let st = c
        .write_bytes(&d, &p("/a.txt"), "hello", &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((st.size, st.file_type), (5, FileType::File));
    let no_over = WriteOptions {
        overwrite: false,
        if_match: None,
    };
    assert_eq!(
        c.write_bytes(&d, &p("/a.txt"), "x", &no_over)
            .await
            .unwrap_err()
            .code,
        ErrorCode::AlreadyExists
    );
    let stale = WriteOptions {
        overwrite: true,
        if_match: Some("stale".into()),
    };
    assert_eq!(
        c.write_bytes(&d, &p("/a.txt"), "x", &stale)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
    let fresh = WriteOptions {
        overwrite: true,
        if_match: Some(st.etag.clone()),
    };
    let st2 = c
        .write_reader(&d, &p("/a.txt"), &b"hello, world"[..], &fresh)
        .await
        .unwrap();
    assert_ne!(st2.etag, st.etag);
    let chunks = futures::stream::iter(
        (0..10).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("{i}")))),
    );
    c.write_file(&d, &p("/dir/digits"), chunks, &WriteOptions::default())
        .await
        .unwrap();

    // Reads: whole, ranged, streamed with etag and length.
    assert_eq!(
        c.read_bytes(&d, &p("/dir/digits")).await.unwrap(),
        "0123456789"
    );
    let part = c
        .read_file(&d, &p("/a.txt"), Some(7), Some(5))
        .await
        .unwrap();
    assert_eq!(
        (part.etag.clone(), part.length),
        (Some(st2.etag.clone()), Some(5))
    );
    assert_eq!(part.bytes().await.unwrap(), "world");
    assert_eq!(
        c.read_bytes(&d, &p("/nope")).await.unwrap_err().code,
        ErrorCode::NotFound
    );

    // Directories, move, copy, stat, exists, remove.
    assert_eq!(
        c.mkdir(&d, &p("/m/n"), true).await.unwrap().file_type,
        FileType::Dir
    );
    assert_eq!(
        c.rename(&d, &p("/a.txt"), &p("/m/a.txt"), false)
            .await
            .unwrap()
            .path,
        "/m/a.txt"
    );
    assert_eq!(
        c.copy(&d, &p("/m"), &p("/m2"), false, true)
            .await
            .unwrap()
            .path,
        "/m2"
    );
    assert_eq!(
        c.copy(&d, &p("/m"), &p("/m3"), false, false)
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(c.stat(&d, &p("/m2/a.txt")).await.unwrap().size, 12);
    assert!(c.exists(&d, &p("/m2/n")).await.unwrap());
    c.remove(&d, &p("/m2"), true).await.unwrap();
    assert!(!c.exists(&d, &p("/m2")).await.unwrap());

    // Listing follows next_cursor across pages.
    for i in 0..7 {
        c.write_bytes(&d, &p(&format!("/many/f{i}")), "", &WriteOptions::default())
            .await
            .unwrap();
    }
    let small_pages = ListOptions {
        recursive: true,
        glob: None,
        page_size: Some(2),
    };
    let paged = c.list(&d, &p("/"), &small_pages).await.unwrap();
    let whole = c
        .list(
            &d,
            &p("/"),
            &ListOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(paged, whole);
    assert_eq!(
        whole
            .iter()
            .filter(|e| e.path.starts_with("/many/"))
            .count(),
        7
    );
    let first = c
        .list_page(&d, &p("/many"), &small_pages, None)
        .await
        .unwrap();
    assert_eq!(first.entries.len(), 2);
    let second = c
        .list_page(&d, &p("/many"), &small_pages, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(second.entries[0].path, "/many/f2");
    let streamed: Vec<_> = c
        .list_stream(
            &d,
            &p("/many"),
            &ListOptions {
                glob: Some("f[0-2]".into()),
                ..small_pages.clone()
            },
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        streamed.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["/many/f0", "/many/f1", "/many/f2"]
    );

    // Batches: a hand-made tar stream, and a local directory.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    tar.append_data(&mut h, "x/y.txt", &b"yyy"[..]).unwrap();
    let archive = Bytes::from(tar.into_inner().unwrap());
    let r = c
        .write_batch(
            &d,
            &p("/batch"),
            futures::stream::once(async move { Ok::<_, std::io::Error>(archive) }),
        )
        .await
        .unwrap();
    assert_eq!((r.files, r.bytes), (1, 3));
    assert_eq!(c.read_bytes(&d, &p("/batch/x/y.txt")).await.unwrap(), "yyy");
    let local = s.scratch("tree");
    harness::write_local(&local.join("k/l.txt"), b"ll");
    let up = c.write_batch_dir(&d, &local, &p("/up")).await.unwrap();
    assert_eq!(
        (up.result.files, up.result.bytes, up.skipped.len()),
        (1, 2, 0)
    );
    assert_eq!(c.read_bytes(&d, &p("/up/k/l.txt")).await.unwrap(), "ll");

    // Admin.
    let t = c
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    assert!(
        !format!("{t:?}").contains(&t.key),
        "the key is redacted from Debug"
    );
    let acme = Client::new(&s.url, t.key.clone()).unwrap();
    assert_eq!(
        acme.get_volume(&d).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let e = acme
        .create_tenant(&TenantName::parse("evil").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied);
    let tenant = c
        .set_volume_cap(&TenantName::parse("acme").unwrap(), 4096)
        .await
        .unwrap();
    assert_eq!(tenant.volume_cap_bytes, Some(4096));
    let (small, _) = acme
        .create_volume(&vol("small"), &Labels::new(), false)
        .await
        .unwrap();
    assert_eq!(small.cap_bytes, 4096);
    let e = acme
        .write_bytes(
            &vol("small"),
            &p("/big"),
            vec![0u8; 5000],
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::QuotaExceeded);

    // Keys and deletion.
    let wrong = Client::new(&s.url, "nsk_wrong").unwrap();
    assert_eq!(
        wrong.whoami().await.unwrap_err().code,
        ErrorCode::Unauthenticated
    );
    c.delete_volume(&d, false, false).await.unwrap();
    assert_eq!(
        c.delete_volume(&d, false, false).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    c.delete_volume(&d, false, true).await.unwrap();
}
