//! Start-up (state, bootstrap, reconciliation), serving, graceful shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use nullspace_state::{ApiKey, PostgresStore, SqliteStore, StateStore};
use nullspace_volumes::{DirectoryPlacement, ServerInstance, VolumeStore};

use crate::{AppState, ServerConfig};

/// How long in-flight requests may run after SIGINT/SIGTERM.
const SHUTDOWN_GRACE_SECS: u64 = 10;

/// Runs the server until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    raise_fd_limit();
    let data_dir = &config.data_dir;
    create_private_dir(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store: Arc<dyn StateStore> = match config.database_url.as_deref() {
        None => Arc::new(
            SqliteStore::open(&data_dir.join("nullspace.db"))
                .await
                .context("cannot open the SQLite database")?,
        ),
        Some(url) if url.starts_with("sqlite:") => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Arc::new(
                SqliteStore::open(Path::new(path))
                    .await
                    .context("cannot open the SQLite database")?,
            )
        }
        // The error names the server, never the password.
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(PostgresStore::connect(url).await?)
        }
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or("");
            anyhow::bail!("unsupported --database-url scheme {scheme:?}: use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;

    let bootstrap = config.bootstrap_key.as_deref().map(ApiKey::new);
    let created = store
        .bootstrap(bootstrap.as_ref())
        .await
        .context("cannot bootstrap the default tenant")?;
    write_client_file(data_dir, addr, created.as_ref()).context("cannot write client.json")?;
    if created.is_some() {
        tracing::info!(path = %data_dir.join("client.json").display(), "bootstrapped tenant \"default\"; its admin key is in client.json (mode 0600)");
    }

    let placement = DirectoryPlacement::open(&data_dir.join("volumes"))
        .context("cannot open the volume data root")?;
    // Several servers may share the data root (with a shared PostgreSQL database): each is
    // registered there so that none takes another's temporary files for leftovers.
    let owner = ServerInstance::register(&data_dir.join("servers"))
        .context("cannot register the server in the data root")?;
    let peers = store.peers();
    let (sink, local_changes) = match peers {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let volumes = Arc::new(VolumeStore::shared(Box::new(placement), owner, sink));
    let signer = crate::Signer::load_or_create(&data_dir.join("signing.key"))
        .context("cannot load the URL signing key")?;
    let sandbox_dir = data_dir.join("sandboxes");
    let sandboxes =
        match tokio::task::spawn_blocking(move || crate::SandboxRuntimeState::open(sandbox_dir))
            .await
        {
            Ok(Ok(s)) => Some(Arc::new(s)),
            Ok(Err(why)) => {
                tracing::warn!(reason = %why, "sandboxes are unavailable");
                crate::sandboxes::set_unavailable_reason(why);
                None
            }
            Err(e) => {
                let why = format!("the sandbox runtime failed to start: {e}");
                tracing::warn!(reason = %why, "sandboxes are unavailable");
                crate::sandboxes::set_unavailable_reason(why);
                None
            }
        };
    let app = AppState {
        store,
        volumes,
        signer: Arc::new(signer),
        sandboxes,
    };
    if let (Some(channel), Some(rx)) = (peers, local_changes) {
        crate::peers::start(&app, channel, rx);
    }
    reconcile(&app).await?;
    // Expired resumable uploads, and temporary files of servers that died while this one
    // runs, are removed every ten minutes.
    let vols = app.volumes.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let vols = vols.clone();
            let _ = tokio::task::spawn_blocking(move || {
                vols.open_handles()
                    .iter()
                    .map(|h| h.upload_sweep() + h.clean_staging())
                    .sum::<usize>()
            })
            .await;
        }
    });

    tracing::info!(%addr, data_dir = %data_dir.display(), "nullspace server listening");
    let shutdown = crate::shutdown_token().clone();
    let serve = axum::serve(listener, crate::router(app)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        crate::shutdown_token().cancel();
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
    tracing::info!("nullspace server stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard one: every open volume holds three fds
/// (its `data/`, its `staging/` and its usage file), and handles stay open.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `client.json` lets the CLI and SDK on this machine find the server with no set-up:
/// `{"url": ..., "key": ...}`, mode 0600. The key is written only when it was just created;
/// later starts (and servers joining a shared database) only write the URL, once the port is
/// bound, so the file also tells which port a server started with `--listen HOST:0` got.
fn write_client_file(
    data_dir: &Path,
    addr: SocketAddr,
    key: Option<&ApiKey>,
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("client.json");
    let mut doc = match (key, std::fs::read(&path)) {
        (Some(_), _) => serde_json::Map::new(),
        (None, Ok(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        (None, Err(_)) => serde_json::Map::new(),
    };
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    doc.insert(
        "url".into(),
        format!("http://{host}:{}", addr.port()).into(),
    );
    if let Some(k) = key {
        doc.insert("key".into(), k.expose().into());
    }
    let tmp = data_dir.join(".client.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(&doc)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Makes storage and records agree after a crash: every volume record has storage (an
/// interrupted create), no storage lacks a record (an interrupted delete), staging areas are
/// cleaned of dead servers' leftovers and usage is measured from disk and recorded.
async fn reconcile(app: &AppState) -> anyhow::Result<()> {
    // Storage first, records second: a volume that another live server creates meanwhile
    // (record, then storage) is then never taken for an orphan.
    let vols = app.volumes.clone();
    let on_disk = tokio::task::spawn_blocking(move || vols.volume_ids()).await??;
    let records = app
        .store
        .all_volumes()
        .await
        .context("cannot list volumes")?;
    let known: HashSet<String> = records.iter().map(|v| v.id.clone()).collect();
    for id in on_disk.into_iter().filter(|id| !known.contains(id)) {
        tracing::info!(volume = %id, "removing storage of a deleted volume");
        let vols = app.volumes.clone();
        tokio::task::spawn_blocking(move || vols.destroy(&id)).await??;
    }
    for v in records {
        let vols = app.volumes.clone();
        let (id, cap) = (v.id.clone(), v.cap_bytes);
        let handle = tokio::task::spawn_blocking(move || {
            if vols.handle(&id, cap).is_err() {
                vols.create(&id)?;
            }
            vols.handle(&id, cap)
        })
        .await??;
        app.persist_usage(&handle).await;
    }
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
