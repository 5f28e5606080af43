//! Serving: binds the listener, starts the node, serves until SIGINT/SIGTERM, then shuts down
//! gracefully.
//!
//! Connections are governed here (see docs/operating.md, "Connections"): at most
//! `max_connections` are served at once (one more is answered `503` and closed); hyper's
//! header-read timeout closes a connection that does not send a complete request head within
//! `idle_timeout` of being accepted or of its previous response (idle keep-alive and slow
//! headers alike); a request body that sends nothing for `body_timeout` fails (tower-http's
//! `TimeoutBody`, reset by every chunk, so slow but live uploads go on).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use nullspace_node::{ConnectionLimits, Node, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long in-flight requests may run after SIGINT/SIGTERM.
const SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long a refused connection is read from (so the refusal is not lost to a reset).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// What the HTTP edge reports about itself: metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observability {
    /// Where `GET /metrics` is served (`--metrics-listen`); `None`: no metrics at all.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Whether every request gets an access-log line (`--access-log`).
    pub access_log: bool,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics_listen: None,
            access_log: true,
        }
    }
}

/// Runs the server until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    run_with(
        config,
        Observability::default(),
        crate::HttpOptions::default(),
    )
    .await
}

/// [`run`], with metrics and access logging as `observe` says and the HTTP edge (CORS) as
/// `http` says.
pub async fn run_with(
    config: ServerConfig,
    observe: Observability,
    http: crate::HttpOptions,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Installed before the node starts, so that what it records at start-up is kept.
    let recorder = match observe.metrics_listen {
        Some(_) => Some(crate::metrics::install()?),
        None => None,
    };
    let node = Node::start(&config, addr).await?;
    let limits = effective_limits(config.connections);
    if let (Some(at), Some(handle)) = (observe.metrics_listen, recorder) {
        let bound =
            crate::metrics::serve(at, node.clone(), handle, node.shutdown_token().clone()).await?;
        tracing::info!(metrics_url = %format!("http://{bound}/metrics"), "serving metrics");
    }

    tracing::info!(%addr, data_dir = %config.data_dir.display(),
        max_connections = limits.max_connections, "nullspace server listening");
    let shutdown = node.shutdown_token().clone();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown_signal() => on_signal.cancel(),
            _ = on_signal.cancelled() => {}
        }
    });
    let router =
        crate::router(node.clone()).layer(axum::middleware::from_fn(crate::access::note_route));
    let serve = serve(
        listener,
        router,
        Arc::new(http),
        limits,
        observe,
        shutdown.clone(),
    );
    // In-flight requests get a grace period; then the server stops anyway (an interrupted
    // write leaves only a temporary file, removed at the next start).
    tokio::select! {
        () = serve => {},
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_secs(SHUTDOWN_GRACE_SECS)).await;
        } => tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE_SECS} s; stopping anyway"),
    }
    node.flush().await;
    node.stop();
    tracing::info!("nullspace server stopped");
    Ok(())
}

/// The configured limits, with the connection bound capped at half the open-file limit (the
/// other half is for volumes, databases and sandboxes).
fn effective_limits(mut limits: ConnectionLimits) -> ConnectionLimits {
    if let Ok((soft, _)) = open_file_limit() {
        let cap = (soft / 2).max(1) as usize;
        if limits.max_connections > cap {
            tracing::warn!(
                configured = limits.max_connections,
                cap,
                "max connections capped at half the open-file limit"
            );
            limits.max_connections = cap;
        }
    }
    limits
}

fn open_file_limit() -> std::io::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| std::io::Error::other("no open-file limit"))?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [soft, hard, ..] => Ok((*soft, *hard)),
        _ => Err(std::io::Error::other("unlimited")),
    }
}

/// A handler that panicked answers `internal` (logged, as every server fault is) instead of
/// dropping the connection without an answer.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::error::ApiError(nullspace_core::Error::internal(
        "a request handler panicked",
    ))
    .into_response()
}

/// Accepts and serves connections until `shutdown`, then lets open ones finish their requests.
async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    http: Arc<crate::HttpOptions>,
    limits: ConnectionLimits,
    observe: Observability,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let service = tower::ServiceBuilder::new()
        .layer(crate::access::AccessLayer {
            log: observe.access_log,
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
        .map_request(|req: axum::http::Request<_>| req.map(axum::body::Body::new))
        // Around the router, not inside it: a method override must be seen by routing.
        .layer(axum::middleware::from_fn_with_state(
            http,
            crate::edge::edge,
        ))
        .service(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (close, closing) = tokio::sync::watch::channel(());
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("nullspace_http_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        metrics::counter!("nullspace_http_connections_total").increment(1);
        let open = OpenConnection::new();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    drop(closing);
    let _ = close.send(());
    // Every connection task holds a receiver: this returns once all have finished.
    close.closed().await;
}

/// Counts one served connection in `nullspace_http_open_connections` while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        metrics::gauge!("nullspace_http_open_connections").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("nullspace_http_open_connections").decrement(1.0);
    }
}

/// Answers a connection over the bound with `503` (`unavailable`, retryable) and closes it.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = serde_json::json!({"error": {
        "code": "unavailable",
        "message": format!("the server is serving its maximum of {max} connections: try again later"),
        "retryable": true,
    }})
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before the
        // answer is read.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
