//! Serving: binds the listener, starts the node, serves until SIGINT/SIGTERM, then shuts down
//! gracefully.

use anyhow::Context;
use nullspace_node::{Node, ServerConfig};

/// How long in-flight requests may run after SIGINT/SIGTERM.
const SHUTDOWN_GRACE_SECS: u64 = 10;

/// Runs the server until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let node = Node::start(&config, addr).await?;

    tracing::info!(%addr, data_dir = %config.data_dir.display(), "nullspace server listening");
    let shutdown = node.shutdown_token().clone();
    let on_signal = shutdown.clone();
    let serve =
        axum::serve(listener, crate::router(node.clone())).with_graceful_shutdown(async move {
            shutdown_signal().await;
            on_signal.cancel();
        });
    // In-flight requests get a grace period; then the server stops anyway (an interrupted
    // write leaves only a temporary file, removed at the next start).
    tokio::select! {
        r = serve => r?,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_secs(SHUTDOWN_GRACE_SECS)).await;
        } => tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE_SECS} s; stopping anyway"),
    }
    node.stop();
    tracing::info!("nullspace server stopped");
    Ok(())
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
