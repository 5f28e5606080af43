//! HTTP to a test server: reqwest behind a blocking facade, and raw HTTP/1.1 over a TCP socket
//! for requests no HTTP library would send.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// An answer: status, headers, whole body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.text()))
    }

    /// `error.code` of an error answer.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.get("code")?.as_str().map(str::to_owned)
    }

    /// Requires `status`; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16, what: &str) -> Resp {
        assert_eq!(
            self.status,
            status,
            "{what}: unexpected answer {:?}",
            self.text()
        );
        self
    }

    /// Requires an error with `status` and `code`.
    #[track_caller]
    pub fn expect_err(self, status: u16, code: &str, what: &str) -> Resp {
        assert_eq!(
            self.status,
            status,
            "{what}: unexpected answer {:?}",
            self.text()
        );
        assert_eq!(
            self.error_code().as_deref(),
            Some(code),
            "{what}: error code of {:?}",
            self.text()
        );
        self
    }
}

/// A blocking HTTP client of one server with one key (or none). Cheap to clone.
#[derive(Clone)]
pub struct Api {
    rt: Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
    pub base: String,
    key: Option<String>,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`).
    pub fn new(base: &str, key: Option<&str>) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            // Below the server's idle timeout (60 s): a pooled connection is never reused
            // just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client");
        Api {
            rt: Arc::new(rt),
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
        }
    }

    /// The same server with another key (`None`: no `Authorization` header).
    pub fn with_key(&self, key: Option<&str>) -> Api {
        Api {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends one request; `path_and_query` is sent as written (encode with [`enc`]).
    pub fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = format!("{}{path_and_query}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: body: {e}"))
                .to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }

    pub fn get(&self, pq: &str) -> Resp {
        self.send(reqwest::Method::GET, pq, &[], None)
    }

    pub fn delete(&self, pq: &str) -> Resp {
        self.send(reqwest::Method::DELETE, pq, &[], None)
    }

    pub fn put(&self, pq: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.send(reqwest::Method::PUT, pq, &[], Some(body.into()))
    }

    pub fn post_json(&self, pq: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.send(
            reqwest::Method::POST,
            pq,
            &[("Content-Type", "application/json")],
            Some(b),
        )
    }

    pub fn put_json(&self, pq: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.send(
            reqwest::Method::PUT,
            pq,
            &[("Content-Type", "application/json")],
            Some(b),
        )
    }

    // -- conveniences over the documented routes ----------------------------------------------

    /// Creates a volume (requires 201) and returns it.
    #[track_caller]
    pub fn create_volume(&self, name: &str) -> Value {
        self.post_json("/v1/volumes", &serde_json::json!({ "name": name }))
            .expect(201, &format!("create volume {name}"))
            .json()
    }

    /// `GET /v1/volumes/{name}` (requires 200).
    #[track_caller]
    pub fn volume(&self, name: &str) -> Value {
        self.get(&format!("/v1/volumes/{name}"))
            .expect(200, &format!("get volume {name}"))
            .json()
    }

    /// The id of a volume.
    #[track_caller]
    pub fn volume_id(&self, name: &str) -> String {
        self.volume(name)["id"]
            .as_str()
            .expect("id is a string")
            .to_owned()
    }

    /// `(used_bytes, file_count)` of a volume.
    #[track_caller]
    pub fn usage(&self, name: &str) -> (u64, u64) {
        let v = self.volume(name);
        (
            v["used_bytes"].as_u64().expect("used_bytes"),
            v["file_count"].as_u64().expect("file_count"),
        )
    }

    pub fn read(&self, vol: &str, path: &str) -> Resp {
        self.get(&format!(
            "/v1/volumes/{vol}/files/content?path={}",
            enc(path)
        ))
    }

    pub fn write(&self, vol: &str, path: &str, content: impl Into<Vec<u8>>) -> Resp {
        self.put(
            &format!("/v1/volumes/{vol}/files/content?path={}", enc(path)),
            content,
        )
    }

    pub fn stat(&self, vol: &str, path: &str) -> Resp {
        self.get(&format!("/v1/volumes/{vol}/files/stat?path={}", enc(path)))
    }

    pub fn list(&self, vol: &str, path: &str, recursive: bool) -> Resp {
        self.get(&format!(
            "/v1/volumes/{vol}/files/list?path={}&recursive={recursive}&limit=100000",
            enc(path)
        ))
    }

    pub fn remove(&self, vol: &str, path: &str, recursive: bool) -> Resp {
        self.delete(&format!(
            "/v1/volumes/{vol}/files?path={}&recursive={recursive}",
            enc(path)
        ))
    }

    pub fn mkdir(&self, vol: &str, path: &str, parents: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/mkdir"),
            &serde_json::json!({"path": path, "parents": parents}),
        )
    }

    pub fn mv(&self, vol: &str, src: &str, dst: &str, overwrite: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/move"),
            &serde_json::json!({"src": src, "dst": dst, "overwrite": overwrite}),
        )
    }

    pub fn cp(&self, vol: &str, src: &str, dst: &str, overwrite: bool, recursive: bool) -> Resp {
        self.post_json(
            &format!("/v1/volumes/{vol}/files/copy"),
            &serde_json::json!({"src": src, "dst": dst, "overwrite": overwrite, "recursive": recursive}),
        )
    }
}

/// Percent-encodes a query value: everything but unreserved characters and `/`.
pub fn enc(s: &str) -> String {
    enc_bytes(s.as_bytes())
}

/// Percent-encodes raw bytes (which need not be UTF-8) as a query value.
pub fn enc_bytes(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// Raw HTTP/1.1 over a TCP socket: the request target goes out byte for byte.

/// A raw answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of a JSON error answer.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.get("code")?.as_str().map(str::to_owned)
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn raw_request(
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    raw_request_timeout(port, method, target, headers, body, Duration::from_secs(60))
}

fn raw_request_timeout(
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        timeout,
    )?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n").as_bytes(),
    );
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    s.write_all(&req)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 answer (content-length, chunked or read-to-close body).
pub fn parse_response(raw: &[u8]) -> std::io::Result<RawResponse> {
    let bad = |m: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{m}: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let rest = &raw[end + 4..];
    let mut r = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?
                + pos;
            let size_str = String::from_utf8_lossy(&rest[pos..line_end]);
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            let chunk = rest
                .get(pos..pos + size)
                .ok_or_else(|| bad("short chunk"))?;
            r.body.extend_from_slice(chunk);
            pos += size + 2;
        }
    } else if let Some(len) = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        r.body = rest.get(..len).ok_or_else(|| bad("short body"))?.to_vec();
    } else {
        r.body = rest.to_vec();
    }
    Ok(r)
}
