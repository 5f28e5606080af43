//! Names and links that sandbox code makes (issue 12): names that are not UTF-8 are listed
//! losslessly and never alias another name; `nullspace volume download` of a tree never
//! recreates a link that points outside the target directory.
//!
//! Both are planted directly in the volume's data directory, as sandbox code would.

mod harness;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use base64::Engine as _;
use harness::{OutputExt, Server};
use serde_json::Value;

const VOL: &str = "names";

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("path_base64 is a string"))
        .unwrap()
}

/// The entries of a listing whose display path is `path`: (exact path bytes, type).
fn entries_shown_as(list: &Value, path: &str) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["path"] == path)
        .map(|e| match e.get("path_base64") {
            Some(b) => b64(b),
            None => e["path"].as_str().unwrap().as_bytes().to_vec(),
        })
        .collect();
    found.sort();
    found
}

#[test]
fn names_that_are_not_utf8_are_listed_losslessly_and_never_alias_an_api_write() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    let data = s.volume_data(&api.volume_id(VOL));
    std::fs::write(data.join(OsStr::from_bytes(b"a\xff")), b"ff").unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"a\xfe")), b"fe").unwrap();
    std::fs::create_dir(data.join(OsStr::from_bytes(b"d\xff"))).unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"d\xff/in")), b"in").unwrap();

    // Through the API a name that is not UTF-8 is refused, never read as U+FFFD.
    api.put(&format!("/v1/volumes/{VOL}/files/content?path=/a%ff"), "x")
        .expect_err(400, "invalid_argument", "a write to /a%ff");
    api.get(&format!("/v1/volumes/{VOL}/files/content?path=/a%fe"))
        .expect_err(400, "invalid_argument", "a read of /a%fe");
    // The display form is a name of its own: writing it makes a third file.
    api.write(VOL, "/a\u{fffd}", "api")
        .expect(200, "write /a\u{fffd}");

    for fields in ["", "&fields=path,type", "&fields=path,size"] {
        let list = api
            .get(&format!(
                "/v1/volumes/{VOL}/files/list?path=/&recursive=true{fields}"
            ))
            .expect(200, "list")
            .json();
        assert_eq!(
            entries_shown_as(&list, "/a\u{fffd}"),
            vec![
                "/a\u{fffd}".as_bytes().to_vec(),
                b"/a\xfe".to_vec(),
                b"/a\xff".to_vec()
            ],
            "three distinct entries ({fields}): {list}"
        );
        assert_eq!(
            entries_shown_as(&list, "/d\u{fffd}/in"),
            vec![b"/d\xff/in".to_vec()],
            "{list}"
        );
    }
    // Listing below a directory keeps the exact bytes of the full path.
    let list = api
        .get(&format!("/v1/volumes/{VOL}/files/list?path=/&glob=a*"))
        .expect(200, "list with a glob")
        .json();
    assert_eq!(entries_shown_as(&list, "/a\u{fffd}").len(), 3, "{list}");
    // Nothing was overwritten.
    assert_eq!(
        std::fs::read(data.join(OsStr::from_bytes(b"a\xff"))).unwrap(),
        b"ff"
    );
    assert_eq!(
        std::fs::read(data.join(OsStr::from_bytes(b"a\xfe"))).unwrap(),
        b"fe"
    );
    assert_eq!(api.read(VOL, "/a\u{fffd}").text(), "api");
    s.assert_no_server_faults();
}

#[test]
fn download_of_a_tree_skips_links_that_point_outside_and_keeps_inside_ones() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    api.write(VOL, "/t/f.txt", "inside").expect(200, "write");
    api.write(VOL, "/t/sub/g.txt", "g").expect(200, "write");
    let data = s.volume_data(&api.volume_id(VOL));
    std::os::unix::fs::symlink("/etc/passwd", data.join("t/evil")).unwrap();
    std::os::unix::fs::symlink("../../x", data.join("t/up")).unwrap();
    std::os::unix::fs::symlink("../../..", data.join("t/sub/upup")).unwrap();
    std::os::unix::fs::symlink("f.txt", data.join("t/in")).unwrap();
    std::os::unix::fs::symlink("../f.txt", data.join("t/sub/back")).unwrap();

    let work = s.scratch("dl");
    let dest = work.join("copy");
    let out = s.cli(&["volume", "download", VOL, "/t", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr_str());
    let err = out.stderr_str();
    for skipped in ["evil", "up", "sub/upup"] {
        assert!(
            std::fs::symlink_metadata(dest.join(skipped)).is_err(),
            "{skipped} is not recreated"
        );
        assert!(
            err.contains(&format!("warning: skipping symlink {skipped} ->")),
            "a warning names {skipped}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_link(dest.join("in")).unwrap(),
        OsStr::new("f.txt")
    );
    assert_eq!(std::fs::read(dest.join("in")).unwrap(), b"inside");
    assert_eq!(std::fs::read(dest.join("sub/back")).unwrap(), b"inside");
    assert_eq!(std::fs::read(dest.join("sub/g.txt")).unwrap(), b"g");

    // The JSON summary counts them.
    let dest2 = work.join("copy2");
    let out = s.cli(&[
        "--json",
        "volume",
        "download",
        VOL,
        "/t",
        dest2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", out.stderr_str());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["symlinks"].as_u64(), v["skipped_symlinks"].as_u64()),
        (Some(2), Some(3))
    );
    s.assert_no_server_faults();
}
