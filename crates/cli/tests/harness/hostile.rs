//! The hostile-path cases, shared by the suites that send them: secrets planted outside the
//! volume, symlinks planted inside it that point out ([`LINKS`]), the reads through them that
//! must be refused ([`ESCAPING_READS`]), and one request per file route ([`Op`], [`request`]).
//! `hostile_paths` sends them with the admin key; `keys` with a volume token confined to a
//! directory (where the links are planted in that directory).

use serde_json::{json, Value};

pub const SECRET: &str = "S3CRET-OUTSIDE-b2f0c7e1";
pub const SECRET_DEEP: &str = "S3CRET-DEEP-91ad3e55";
pub const SECRET_CWD: &str = "S3CRET-SERVER-CWD-4e77aa02";
pub const SECRET_OTHER: &str = "S3CRET-OTHER-TENANT-0c1d9b3f";
/// A line of /etc/passwd: the host's files must not show either.
pub const PASSWD_NEEDLE: &str = "root:x:0:0";

/// The volume under attack (tenant `default`).
pub const VOL: &str = "vol";

/// Symlinks planted in the volume's data dir: (name, target). `{OUT}` is the absolute path of
/// the directory outside the volume, `{OTHER}` the id of another tenant's volume.
pub const LINKS: &[(&str, &str)] = &[
    ("abs_dir", "{OUT}"),
    ("abs_file", "{OUT}/secret.txt"),
    ("rel_dir", "../../../../outside"),
    ("rel_file", "../../../../outside/secret.txt"),
    (
        "deep_rel",
        "../../../../../../../../../../../../../../../../{OUT_REL}",
    ),
    ("root_link", "/"),
    ("proc_root", "/proc/self/root{OUT}"),
    ("proc_cwd", "/proc/self/cwd"),
    ("proc_fd", "/proc/self/fd"),
    ("loop_a", "loop_b"),
    ("loop_b", "loop_a"),
    ("self_loop", "self_loop"),
    ("dangling_abs", "/nonexistent-nullspace-e2e/secret.txt"),
    ("dangling_rel", "not-there"),
    ("chain1", "chain2"),
    ("chain2", "chain3"),
    ("chain3", "../../../../outside"),
    ("chain_file", "chain2/secret.txt"),
    ("volroot", ".."),
    ("staging_link", "../staging"),
    ("other_vol", "../../{OTHER}/data"),
    ("dir/up", "../.."),
    ("inside_ok", "hello.txt"),
    ("inside_dir_ok", "dir"),
];

/// One file route, addressed with a hostile path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    List,
    ListR,
    Stat,
    Exists,
    Remove,
    RemoveR,
    Mkdir,
    MkdirP,
    MoveSrc,
    MoveDst,
    CopySrc,
    CopyDst,
    BatchDest,
}

pub const ALL_OPS: [Op; 15] = [
    Op::Read,
    Op::Write,
    Op::List,
    Op::ListR,
    Op::Stat,
    Op::Exists,
    Op::Remove,
    Op::RemoveR,
    Op::Mkdir,
    Op::MkdirP,
    Op::MoveSrc,
    Op::MoveDst,
    Op::CopySrc,
    Op::CopyDst,
    Op::BatchDest,
];

/// A request, ready to go out on the socket.
pub struct Req {
    pub method: &'static str,
    pub target: Vec<u8>,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

pub fn files_url(route: &str, query: &str) -> Vec<u8> {
    format!("/v1/volumes/{VOL}/files/{route}?{query}").into_bytes()
}

pub fn json_req(route: &str, body: Value) -> Req {
    Req {
        method: "POST",
        target: files_url(route, ""),
        headers: vec![("Content-Type", "application/json")],
        body: serde_json::to_vec(&body).expect("json"),
    }
}

/// The request of `op` with the path given twice: `q` as the raw query value (sent as is),
/// `p` as the string for JSON bodies (`None` when the form only exists in a URL).
pub fn request(op: Op, q: &str, p: Option<&str>) -> Option<Req> {
    request_in("", op, q, p)
}

/// [`request`] where the other operand of a move or copy (`/victim.txt`, `/hello.txt`, the
/// destinations `/moved-here` and `/copied-here`) lies in the directory `base` (`""`: the
/// volume's root), for callers confined to that directory.
pub fn request_in(base: &str, op: Op, q: &str, p: Option<&str>) -> Option<Req> {
    let get = |route: &str, extra: &str| Req {
        method: "GET",
        target: files_url(route, &format!("path={q}{extra}")),
        headers: vec![],
        body: vec![],
    };
    Some(match op {
        Op::Read => get("content", ""),
        Op::List => get("list", ""),
        Op::ListR => get("list", "&recursive=true"),
        Op::Stat => get("stat", ""),
        Op::Exists => get("exists", ""),
        Op::Write => Req {
            method: "PUT",
            target: files_url("content", &format!("path={q}")),
            headers: vec![("Content-Type", "application/octet-stream")],
            body: b"pwned".to_vec(),
        },
        Op::Remove | Op::RemoveR => Req {
            method: "DELETE",
            target: format!(
                "/v1/volumes/{VOL}/files?path={q}&recursive={}",
                op == Op::RemoveR
            )
            .into_bytes(),
            headers: vec![],
            body: vec![],
        },
        Op::BatchDest => Req {
            method: "POST",
            target: files_url("batch", &format!("path={q}")),
            headers: vec![("Content-Type", "application/x-tar")],
            body: tar_of(&[(
                b"batch-file.txt".as_slice(),
                b"pwned".as_slice(),
                tar::EntryType::Regular,
            )]),
        },
        Op::Mkdir => json_req("mkdir", json!({"path": p?, "parents": false})),
        Op::MkdirP => json_req("mkdir", json!({"path": p?, "parents": true})),
        Op::MoveSrc => json_req(
            "move",
            json!({"src": p?, "dst": format!("{base}/moved-here"), "overwrite": true}),
        ),
        Op::MoveDst => json_req(
            "move",
            json!({"src": format!("{base}/victim.txt"), "dst": p?, "overwrite": true}),
        ),
        Op::CopySrc => json_req(
            "copy",
            json!({"src": p?, "dst": format!("{base}/copied-here"), "overwrite": true, "recursive": true}),
        ),
        Op::CopyDst => json_req(
            "copy",
            json!({"src": format!("{base}/hello.txt"), "dst": p?, "overwrite": true, "recursive": true}),
        ),
    })
}

/// A tar archive whose entry names are written verbatim (no `..` check on our side).
pub fn tar_of(entries: &[(&[u8], &[u8], tar::EntryType)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, kind) in entries {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
        }
        h.set_size(if *kind == tar::EntryType::Regular {
            data.len() as u64
        } else {
            0
        });
        h.set_mode(0o644);
        h.set_entry_type(*kind);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_link_name("../../../../outside/secret.txt")
                .expect("link name");
        }
        h.set_cksum();
        let body: &[u8] = if *kind == tar::EntryType::Regular {
            data
        } else {
            &[]
        };
        b.append(&h, body).expect("tar append");
    }
    b.into_inner().expect("tar")
}

/// Reads through every kind of escaping link (relative to where [`LINKS`] are planted): each
/// must be refused.
pub const ESCAPING_READS: &[&str] = &[
    "/abs_dir/secret.txt",
    "/abs_file",
    "/rel_dir/secret.txt",
    "/rel_file",
    "/deep_rel/secret.txt",
    "/abs_dir/sub/deeper.txt",
    "/rel_dir/sub/deeper.txt",
    "/root_link/etc/passwd",
    "/proc_root/secret.txt",
    "/proc_cwd/secret.txt",
    "/proc_fd/0",
    "/chain1/secret.txt",
    "/chain3/sub/deeper.txt",
    "/chain_file",
    "/volroot/data/hello.txt",
    "/staging_link/anything",
    "/other_vol/other-secret.txt",
    "/dir/up/data/hello.txt",
    "/dir/up/../../outside/secret.txt",
    "/inside_dir_ok/up/data/hello.txt",
    "/dangling_abs",
];
