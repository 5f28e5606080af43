//! Knowing that the server answering on a port is the one this test started.
//!
//! A port found free by one test process can be found free by another a moment later; if both
//! start a server on it, the second fails to bind, but until it exits the first one answers the
//! second test's health checks, and the second test then runs against the first test's server.
//! So servers start on port 0 (or, on a restart, the port they had) and the harness waits for
//! the URL the server itself writes into `client.json` in its own data dir once it has bound.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Blanks the URL in `DATA/client.json` (keeping the key), so that a URL found there later was
/// written by a server started after this call.
pub fn forget_url(data_dir: &Path) {
    let path = data_dir.join("client.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).expect("client.json is JSON");
    doc["url"] = serde_json::Value::String(String::new());
    std::fs::write(&path, doc.to_string()).expect("rewrite client.json");
}

/// The port of the URL in `DATA/client.json`, if one is there.
fn written_port(data_dir: &Path) -> Option<u16> {
    let bytes = std::fs::read(data_dir.join("client.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let url = doc["url"].as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

/// Waits until `child` has written its URL into `DATA/client.json` and answers `/v1/health`;
/// returns its port. `log` is read for the error when it exits or takes longer than 60 s.
pub fn wait_until_serving(
    child: &mut Child,
    data_dir: &Path,
    log: impl Fn() -> String,
) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited with {status}; log:\n{}", log()));
        }
        if let Some(port) = written_port(data_dir) {
            if health(port) {
                return Ok(port);
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("server not healthy after 60 s; log:\n{}", log()));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether `GET /v1/health` on `port` answers 200.
pub fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200") && resp.contains("\"ok\"")
}

/// Detaches (MNT_DETACH) every mount at or below `dir`, deepest first, so that a test's temp
/// dir can be removed and leaks no loop device: the server mounts each volume's file system
/// in the host's mount namespace and leaves it mounted when it stops (or is killed).
pub fn unmount_all_below(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<std::path::PathBuf> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| std::path::PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for p in points {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Mount points at or below `dir` in the host's mount table.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&dir))
        .map(str::to_owned)
        .collect()
}
