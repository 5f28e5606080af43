//! Small requests on one kept-alive connection never wait on a delayed ACK (issue 14): the
//! server's accepted socket has `TCP_NODELAY`, and each small answer leaves the server as one
//! segment with data — so Nagle's algorithm has nothing to hold back, whatever the client's
//! ACK timing. Checked on the server's own socket (a duplicate taken with `pidfd_getfd`),
//! counting segments, never timing.

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use harness::Server;

/// The inode of the server's socket whose peer is `client_port` (from /proc/PID/net/tcp).
fn server_socket_inode(pid: u32, server_port: u16, client_port: u16) -> u64 {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let want = (format!(":{server_port:04X}"), format!(":{client_port:04X}"));
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[1].ends_with(&want.0) && f[2].ends_with(&want.1) {
            return f[9].parse().unwrap();
        }
    }
    panic!("no server socket for client port {client_port}");
}

/// A duplicate of the server's fd that is the socket `inode`.
fn server_fd(pid: u32, inode: u64) -> OwnedFd {
    let link = format!("socket:[{inode}]");
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let e = e.unwrap();
        if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == link) {
            let n: i32 = e.file_name().to_str().unwrap().parse().unwrap();
            let pidfd = rustix::process::pidfd_open(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::PidfdFlags::empty(),
            )
            .unwrap();
            return rustix::process::pidfd_getfd(
                &pidfd,
                n,
                rustix::process::PidfdGetfdFlags::empty(),
            )
            .unwrap();
        }
    }
    panic!("the server holds no fd for socket {inode}");
}

fn tcp_nodelay(fd: &OwnedFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd and an out-parameter of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt TCP_NODELAY");
    v != 0
}

/// Segments with data the socket has sent (`tcpi_data_segs_out`).
fn data_segments_out(fd: &OwnedFd) -> u32 {
    // SAFETY: tcp_info is plain data; zeroed is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd and an out-parameter of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt TCP_INFO");
    info.tcpi_data_segs_out
}

/// Sends one GET on the kept-alive connection and reads its whole answer (Content-Length).
fn get(sock: &mut BufReader<std::net::TcpStream>, key: &str, path: &str) -> Vec<u8> {
    // One write per request (`write!` on the socket itself would make one per piece, and the
    // client's own Nagle would wait on the server's delayed ACK).
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\r\n");
    sock.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    sock.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut length = None;
    loop {
        line.clear();
        sock.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; length.expect("a Content-Length")];
    sock.read_exact(&mut body).unwrap();
    body
}

#[test]
fn two_hundred_small_gets_on_one_connection_never_wait_on_a_delayed_ack() {
    let s = Server::start();
    let api = s.api();
    api.create_volume("small");
    let content = vec![b'x'; 4096];
    api.write("small", "/f", content.clone())
        .expect(200, "write");

    let stream = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let client_port = stream.local_addr().unwrap().port();
    let mut sock = BufReader::new(stream);
    // The first answer makes sure the server has accepted the connection.
    assert_eq!(
        get(&mut sock, &s.key, "/v1/volumes/small/files/content?path=/f"),
        content
    );
    let pid = s.pid().expect("the server runs");
    let fd = server_fd(pid, server_socket_inode(pid, s.port, client_port));
    assert!(tcp_nodelay(&fd), "the accepted socket has TCP_NODELAY");

    let before = data_segments_out(&fd);
    for _ in 0..100 {
        assert_eq!(
            get(&mut sock, &s.key, "/v1/volumes/small/files/content?path=/f"),
            content
        );
        get(&mut sock, &s.key, "/v1/volumes/small/files/stat?path=/f");
    }
    let segments = data_segments_out(&fd) - before;
    assert_eq!(
        segments, 200,
        "each of the 200 small answers is one segment with data (head and body in one write)"
    );
    s.assert_no_server_faults();
}
