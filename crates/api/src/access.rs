//! One access-log line and one set of request metrics per request, and its request id.
//!
//! [`AccessLayer`] wraps the whole service (outside panic catching, so a panic's `500` is
//! counted too). It takes the client's `x-request-id` when it is a sane one (1–128 of
//! `A-Z a-z 0-9 . _ : -`) or makes one, puts it on the request and the response, counts the
//! request body's bytes as the handler reads them and the response body's as they are sent,
//! and when the response body ends — or is dropped, when the client goes away — logs one line
//! (target `nullspace::access`) and records the request's metrics.
//!
//! Labels and logged fields are bounded: the route is the matched template (`/v1/volumes/{name}`,
//! noted by [`note_route`] after routing), never the raw path; an unmatched request is
//! `unmatched`; a method other than the standard ones is `other`. The tenant is noted by the
//! bearer-key extractor once the key is resolved (never the key).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

/// The request id header (accepted from the client, always returned).
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// What the router learns about a request, for its log line: shared between the request's
/// extensions and its response body.
#[derive(Clone, Default)]
pub(crate) struct RequestNote(Arc<NoteInner>);

#[derive(Default)]
struct NoteInner {
    route: OnceLock<MatchedPath>,
    tenant: OnceLock<String>,
    received: AtomicU64,
}

impl RequestNote {
    /// Notes the caller's tenant (its name; the first one noted stays).
    pub(crate) fn set_tenant(&self, tenant: &str) {
        let _ = self.0.tenant.set(tenant.to_owned());
    }

    fn route(&self) -> &str {
        self.0.route.get().map_or("unmatched", MatchedPath::as_str)
    }
}

/// Router middleware: notes the matched route template for the access log.
pub(crate) async fn note_route(
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let (Some(note), Some(path)) = (
        req.extensions().get::<RequestNote>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = note.0.route.set(path.clone());
    }
    next.run(req).await
}

/// The client's request id if it is a sane one, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if (1..=MAX_REQUEST_ID).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
        {
            return v.clone();
        }
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    HeaderValue::from_str(&id).expect("hex is a header value")
}

/// The method as a bounded label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Logs and counts every request (see the module doc).
#[derive(Clone, Copy)]
pub(crate) struct AccessLayer {
    /// Whether a line is logged per request (metrics are recorded either way).
    pub log: bool,
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            log: self.log,
        }
    }
}

/// The service [`AccessLayer`] makes.
#[derive(Clone)]
pub(crate) struct Access<S> {
    inner: S,
    log: bool,
}

impl<S, B, RB> tower::Service<Request<B>> for Access<S>
where
    S: tower::Service<Request<CountedBody<B>>, Response = Response<RB>>,
    S::Future: Send + 'static,
    B: Body + Unpin,
    RB: Body + Unpin,
{
    type Response = Response<LoggedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let id = request_id(req.headers());
        let note = RequestNote::default();
        let method = method_label(req.method());
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(X_REQUEST_ID.clone(), id.clone());
        parts.extensions.insert(note.clone());
        let body = CountedBody {
            inner: body,
            note: note.clone(),
        };
        let answer = self.inner.call(Request::from_parts(parts, body));
        let log = self.log;
        Box::pin(async move {
            let mut resp = answer.await?;
            resp.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            let status = resp.status().as_u16();
            Ok(resp.map(|inner| LoggedBody {
                inner,
                sent: 0,
                entry: Some(Entry {
                    method,
                    status,
                    id,
                    note,
                    start,
                    log,
                }),
            }))
        })
    }
}

/// A request body that counts the bytes read from it.
pub(crate) struct CountedBody<B> {
    inner: B,
    note: RequestNote,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.note
                    .0
                    .received
                    .fetch_add(data.remaining() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is logged of a request once its response has been sent.
struct Entry {
    method: &'static str,
    status: u16,
    id: HeaderValue,
    note: RequestNote,
    start: Instant,
    log: bool,
}

impl Entry {
    fn finish(self, sent: u64) {
        let seconds = self.start.elapsed().as_secs_f64();
        let received = self.note.0.received.load(Ordering::Relaxed);
        let route = self.note.route();
        crate::metrics::record_request(self.method, route, self.status, seconds, received, sent);
        if self.log {
            let tenant = self.note.0.tenant.get().map_or("-", String::as_str);
            tracing::info!(
                target: "nullspace::access",
                method = self.method,
                route,
                status = self.status,
                bytes_in = received,
                bytes_out = sent,
                duration_ms = (seconds * 1e6).round() / 1e3,
                tenant,
                request_id = self.id.to_str().unwrap_or("-"),
                "request"
            );
        }
    }
}

/// A response body that counts the bytes sent and, when it ends or is dropped, logs and
/// records its request.
pub(crate) struct LoggedBody<B> {
    inner: B,
    sent: u64,
    entry: Option<Entry>,
}

impl<B> LoggedBody<B> {
    fn finish(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.finish(self.sent);
        }
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body + Unpin> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.remaining() as u64;
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(v: &[u8]) -> String {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        request_id(&h).to_str().unwrap().to_owned()
    }

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        assert_eq!(id_of(b"abc-123.x_y:z"), "abc-123.x_y:z");
        for bad in [&b"has space"[..], b"a\"b", b"caf\xc3\xa9", b"{route}"] {
            let made = id_of(bad);
            assert_eq!(made.len(), 32, "{made}");
            assert!(made.bytes().all(|c| c.is_ascii_hexdigit()));
        }
        let long = vec![b'a'; MAX_REQUEST_ID + 1];
        assert_eq!(id_of(&long).len(), 32);
        assert_eq!(id_of(&long[..MAX_REQUEST_ID]).len(), MAX_REQUEST_ID);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn methods_are_bounded_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }
}
