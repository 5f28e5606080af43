//! Prometheus metrics: the recorder every crate's `metrics::counter!` goes to, the request
//! metrics of the access layer, the figures counted at each scrape, and the metrics listener.
//!
//! `GET /metrics` is served only on `--metrics-listen ADDR`, a listener of its own with no
//! authentication (see docs/operating.md, "Metrics"): the figures span every tenant, so no
//! tenant's key may read them, and Prometheus scrapes best without a secret; keeping them off
//! the API listener also keeps scrapes out of its connection bound and its access log.
//! Without the flag no recorder is installed and recording is a no-op.
//!
//! Every label is bounded: route templates (never raw paths), standard methods, status
//! codes, states and runtimes from closed sets. Nothing is labelled by volume or tenant
//! (whoever may create volumes could grow such series without bound); per-volume usage is
//! reported as sums and counts of volumes near their caps.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use nullspace_node::Node;
use tokio_util::sync::CancellationToken;

/// Request latency buckets, in seconds (a 4 KiB read takes well under a millisecond; a large
/// upload or a long watch stream minutes).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// How often histograms are drained into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle).
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = RECORDER.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("nullspace_http_request_duration_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .context("latency buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder is already installed")?;
    describe();
    let _ = RECORDER.set(handle.clone());
    Ok(handle)
}

/// The HELP text (and unit) of every metric, so that `promtool check metrics` finds each
/// described.
fn describe() {
    describe_counter!(
        "nullspace_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "nullspace_http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to the end of its response body, by method, route template and status class"
    );
    describe_counter!(
        "nullspace_http_received_bytes_total",
        Unit::Bytes,
        "Request body bytes read, by method and route template"
    );
    describe_counter!(
        "nullspace_http_sent_bytes_total",
        Unit::Bytes,
        "Response body bytes sent, by method and route template"
    );
    describe_gauge!(
        "nullspace_http_open_connections",
        "HTTP connections being served on the API listener"
    );
    describe_counter!(
        "nullspace_http_connections_total",
        "HTTP connections accepted on the API listener"
    );
    describe_counter!(
        "nullspace_http_connections_refused_total",
        "HTTP connections answered 503 because the connection bound was reached"
    );
    describe_gauge!("nullspace_volume_records", "Volumes of every tenant");
    describe_gauge!(
        "nullspace_volume_used_bytes",
        Unit::Bytes,
        "Recorded usage of every volume, summed"
    );
    describe_gauge!(
        "nullspace_volume_cap_bytes",
        Unit::Bytes,
        "Caps of every volume, summed"
    );
    describe_gauge!(
        "nullspace_volume_near_cap",
        "Volumes whose usage reaches the given fraction of their cap"
    );
    describe_gauge!(
        "nullspace_volume_open_handles",
        "Volumes open on this server"
    );
    describe_gauge!(
        "nullspace_server_sandboxes",
        "Sandboxes run by this server, by state and runtime"
    );
    describe_gauge!(
        "nullspace_attachments",
        "Volume attachments of this server's sandboxes, by state"
    );
    describe_gauge!(
        "nullspace_watch_streams",
        "Watch (change feed) streams open on this server"
    );
    describe_counter!(
        "nullspace_watch_gaps_total",
        "Times watchers were told changes may have been missed, by event source"
    );
    describe_gauge!(
        "nullspace_tus_uploads_pending",
        "Resumable uploads neither complete nor expired, in the volumes open on this server"
    );
    describe_gauge!(
        "nullspace_database_connections",
        "Control-plane database pool connections, by state (idle, busy)"
    );
    describe_gauge!(
        "nullspace_database_max_connections",
        "The most connections the control-plane database pool opens"
    );
    describe_counter!(
        "nullspace_database_errors_total",
        "Control-plane database errors, by kind (unavailable, internal)"
    );
    describe_counter!(
        "nullspace_metrics_collect_errors_total",
        "Scrapes whose state figures could not be counted (the request metrics were still served)"
    );
    describe_gauge!("nullspace_build_info", "The server's version (always 1)");
}

/// Records one answered request (a no-op without a recorder).
pub(crate) fn record_request(
    method: &'static str,
    route: &str,
    status: u16,
    seconds: f64,
    received: u64,
    sent: u64,
) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("nullspace_http_requests_total",
        "method" => method, "route" => route.to_owned(), "status" => status.to_string())
    .increment(1);
    histogram!("nullspace_http_request_duration_seconds",
        "method" => method, "route" => route.to_owned(), "class" => class)
    .record(seconds);
    if received > 0 {
        counter!("nullspace_http_received_bytes_total", "method" => method, "route" => route.to_owned())
            .increment(received);
    }
    if sent > 0 {
        counter!("nullspace_http_sent_bytes_total", "method" => method, "route" => route.to_owned())
            .increment(sent);
    }
}

/// Sets the gauges counted at scrape time.
async fn collect(node: &Node) {
    gauge!("nullspace_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let seen = match node.observe().await {
        Ok(seen) => seen,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the server's state for metrics");
            counter!("nullspace_metrics_collect_errors_total").increment(1);
            return;
        }
    };
    gauge!("nullspace_volume_records").set(seen.volumes as f64);
    gauge!("nullspace_volume_used_bytes").set(seen.volume_used_bytes as f64);
    gauge!("nullspace_volume_cap_bytes").set(seen.volume_cap_bytes as f64);
    gauge!("nullspace_volume_near_cap", "fraction" => "0.9").set(seen.volumes_near_cap as f64);
    gauge!("nullspace_volume_near_cap", "fraction" => "1").set(seen.volumes_full as f64);
    gauge!("nullspace_volume_open_handles").set(seen.open_volumes as f64);
    for ((state, runtime), n) in &seen.sandboxes {
        gauge!("nullspace_server_sandboxes", "state" => *state, "runtime" => runtime.clone())
            .set(*n as f64);
    }
    for (state, n) in &seen.attachments {
        gauge!("nullspace_attachments", "state" => *state).set(*n as f64);
    }
    gauge!("nullspace_watch_streams").set(seen.watch_streams as f64);
    gauge!("nullspace_tus_uploads_pending").set(seen.pending_uploads as f64);
    if let Some(pool) = seen.pool {
        let idle = pool.idle.min(pool.open);
        gauge!("nullspace_database_connections", "state" => "idle").set(f64::from(idle));
        gauge!("nullspace_database_connections", "state" => "busy")
            .set(f64::from(pool.open - idle));
        gauge!("nullspace_database_max_connections").set(f64::from(pool.max));
    }
}

#[derive(Clone)]
struct Scrape {
    node: Node,
    handle: PrometheusHandle,
}

async fn metrics_page(State(s): State<Scrape>) -> Response {
    collect(&s.node).await;
    s.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
        .into_response()
}

async fn not_here() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Binds the metrics listener (returns its address) and serves `GET /metrics` on it until
/// `shutdown`.
pub(crate) async fn serve(
    addr: SocketAddr,
    node: Node,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                _ = stop.cancelled() => return,
            }
        }
    });
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics_page))
        .fallback(not_here)
        .with_state(Scrape { node, handle });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(bound)
}
