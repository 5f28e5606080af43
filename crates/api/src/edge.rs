//! What happens to a request before routing: CORS for browser clients (`--cors-origin`) and
//! tus's `X-HTTP-Method-Override`.
//!
//! CORS is ours rather than tower-http's `CorsLayer` because that layer answers every `OPTIONS`
//! request itself, which would hide tus's `OPTIONS` discovery (Tus-Version, Tus-Extension)
//! whenever CORS is on. Here only a real preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered at the edge; every other request is routed.
//! No credentials mode: keys travel in `Authorization`, never in cookies.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which browser origins may call the API (`--cors-origin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all (the default): browsers refuse cross-origin answers.
    #[default]
    Off,
    /// Any origin (`--cors-origin '*'`).
    Any,
    /// Exactly these origins (`scheme://host[:port]`, compared as sent by browsers).
    List(Vec<String>),
}

impl CorsOrigins {
    /// From the repeatable flag: nothing is `Off`, `*` is `Any` (alone), otherwise origins of
    /// the form `http(s)://host[:port]` with no path, query or trailing slash.
    pub fn parse(values: &[String]) -> Result<CorsOrigins, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Ok(CorsOrigins::Off);
        }
        if values.contains(&"*") {
            if values.len() > 1 {
                return Err("--cors-origin '*' allows every origin: give it alone".into());
            }
            return Ok(CorsOrigins::Any);
        }
        let mut out = Vec::new();
        for v in values {
            let rest = v
                .strip_prefix("http://")
                .or_else(|| v.strip_prefix("https://"))
                .ok_or_else(|| {
                    format!("--cors-origin {v:?}: an origin is http(s)://host[:port]")
                })?;
            let host_ok = !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !host_ok {
                return Err(format!(
                    "--cors-origin {v:?}: an origin is http(s)://host[:port], with no path"
                ));
            }
            out.push(v.to_ascii_lowercase());
        }
        Ok(CorsOrigins::List(out))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            CorsOrigins::Off => None,
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::List(list) => {
                let o = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&o).then(|| origin.clone())
            }
        }
    }
}

/// Options of the HTTP edge that `nullspace server` flags set.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Browser origins allowed to call the API.
    pub cors_origins: CorsOrigins,
}

const ALLOW_METHODS: &str = "GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS";
/// Request headers a page may send: auth, bodies, conditionals, ranges and tus's.
const ALLOW_HEADERS: &str = "authorization, content-type, range, if-match, if-none-match, \
    x-requested-with, x-request-id, x-http-method-override, tus-resumable, upload-length, upload-offset, \
    upload-metadata, upload-checksum, upload-concat, upload-defer-length";
/// Response headers a page may read: what tus clients and range readers need.
const EXPOSE_HEADERS: &str = "location, etag, content-range, content-length, accept-ranges, \
    content-disposition, retry-after, upload-offset, upload-length, upload-metadata, \
    upload-expires, tus-resumable, tus-version, tus-extension, tus-max-size, \
    tus-checksum-algorithm, x-request-id";
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// The edge middleware: method override, then CORS around the routed answer.
pub(crate) async fn edge(
    State(opts): State<Arc<HttpOptions>>,
    mut req: Request,
    next: Next,
) -> Response {
    override_method(&mut req);
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    if opts.cors_origins == CorsOrigins::Off {
        return next.run(req).await;
    }
    let allowed = opts.cors_origins.allow(&origin);
    if is_preflight(&req) {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        vary(
            h,
            "origin, access-control-request-method, access-control-request-headers",
        );
        if let Some(allowed) = allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
            );
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    vary(h, "origin");
    if let Some(allowed) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    resp
}

fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn vary(h: &mut HeaderMap, value: &'static str) {
    h.append(header::VARY, HeaderValue::from_static(value));
}

const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// tus 1.0: a `POST` to an upload with `X-HTTP-Method-Override: PATCH` (or `DELETE`, `HEAD`) is
/// that method — for clients and proxies that cannot send them. Only on tus upload resources,
/// only from `POST`: nothing else changes meaning.
fn override_method(req: &mut Request) {
    if req.method() != Method::POST || !is_upload_resource(req.uri().path()) {
        return;
    }
    let Some(v) = req.headers().get(&METHOD_OVERRIDE) else {
        return;
    };
    let method = match v.to_str().map(|s| s.trim().to_ascii_uppercase()) {
        Ok(m) if m == "PATCH" => Method::PATCH,
        Ok(m) if m == "DELETE" => Method::DELETE,
        Ok(m) if m == "HEAD" => Method::HEAD,
        _ => return,
    };
    *req.method_mut() = method;
}

/// `/v1/volumes/{name}/uploads/{id}`
fn is_upload_resource(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(parts.as_slice(), ["v1", "volumes", n, "uploads", id] if !n.is_empty() && !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse() {
        assert_eq!(CorsOrigins::parse(&[]).unwrap(), CorsOrigins::Off);
        assert_eq!(CorsOrigins::parse(&["*".into()]).unwrap(), CorsOrigins::Any);
        assert!(CorsOrigins::parse(&["*".into(), "http://a.example.com".into()]).is_err());
        assert_eq!(
            CorsOrigins::parse(&["https://App.example.com:8443".into()]).unwrap(),
            CorsOrigins::List(vec!["https://app.example.com:8443".into()])
        );
        for bad in ["example.com", "http://example.com/", "http://", "ftp://x"] {
            assert!(CorsOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_upload_resources_take_an_override() {
        assert!(is_upload_resource("/v1/volumes/v/uploads/abc"));
        assert!(!is_upload_resource("/v1/volumes/v/uploads"));
        assert!(!is_upload_resource("/v1/volumes/v/files/content"));
        assert!(!is_upload_resource("/v1/volumes/v/uploads/abc/x"));
    }
}
