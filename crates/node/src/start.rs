//! Start-up: the data dir, the state store, the volume backend, the sandbox runtime, and the
//! reconciliation of storage and records after a crash.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use nullspace_state::ApiKey;
use nullspace_volumes::{
    DirectoryPlacement, LoopPlacement, ServerInstance, VolumePlacement, VolumeStore,
};
use tokio_util::sync::CancellationToken;

use crate::sandboxes::SandboxService;
use crate::signing::Signer;
use crate::volumes::VolumeService;
use crate::{Inner, Node, ServerConfig, VolumeBackend};

/// How often expired resumable uploads, and temporary files of servers that died while this
/// one runs, are removed.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// A volume handle unused for this long is closed (it opens again on the next request).
pub const HANDLE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How often idle volume handles are looked for.
const IDLE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

impl Node {
    /// Starts a server's node for `config`, listening at `addr` (already bound by the caller):
    /// opens the data dir and the state store (bootstrapping the default tenant on first
    /// start), the volume backend and the sandbox runtime, makes storage and records agree,
    /// and starts the background work (peers, sandbox expiry, staging sweeps).
    pub async fn start(config: &ServerConfig, addr: SocketAddr) -> anyhow::Result<Node> {
        let nofile = raise_fd_limit();
        let data_dir = &config.data_dir;
        create_private_dir(data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        // The error names the database server, never the password.
        let store = nullspace_state::open(config.database_url.as_deref(), data_dir).await?;

        let bootstrap = config.bootstrap_key.as_deref().map(ApiKey::new);
        let created = store
            .bootstrap(bootstrap.as_ref())
            .await
            .context("cannot bootstrap the default tenant")?;
        write_client_file(data_dir, addr, created.as_ref()).context("cannot write client.json")?;
        if created.is_some() {
            tracing::info!(path = %data_dir.join("client.json").display(), "bootstrapped tenant \"default\"; its admin key is in client.json (mode 0600)");
        }

        let placement = open_placement(data_dir, config.volume_backend)?;
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
        let data = Arc::new(VolumeStore::shared(placement, owner, sink));
        // Connections get at most half the descriptors (see the API's server), volume handles
        // what the rest leaves after a reserve.
        let connections = (config.connections.max_connections as u64).min(nofile / 2);
        let budget = nullspace_volumes::handle_budget(nofile, connections);
        tracing::info!(
            open_file_limit = nofile,
            volume_handles = budget,
            "open volume handles bounded"
        );
        data.set_handle_budget(budget);
        let signer = Signer::load_or_create(&data_dir.join("signing.key"))
            .context("cannot load the URL signing key")?;
        let tenant_defaults = crate::limits::host_defaults(data_dir, &config.sandbox_limits);
        tracing::info!(?tenant_defaults, sandbox = ?config.sandbox_limits, "resource limits");
        let volumes = VolumeService::new(
            store.clone(),
            data.clone(),
            Arc::new(signer),
            tenant_defaults,
        );

        let server_id = match config.server_id.clone() {
            Some(id) if crate::valid_server_id(&id) => id,
            Some(id) => anyhow::bail!(
                "invalid --server-id {id:?}: use 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit"
            ),
            None => crate::default_server_id(addr.port()),
        };
        tracing::info!(server_id = %server_id, "sandboxes run here are recorded under this server id");
        let shutdown = CancellationToken::new();
        volumes.start_usage_writer(shutdown.clone());
        let sandboxes = SandboxService::start(
            &data_dir.join("sandboxes"),
            server_id,
            store.clone(),
            volumes.clone(),
            config.sandbox_limits,
            config.sandbox_runtime,
            shutdown.clone(),
        )
        .await;
        let node = Node {
            inner: Arc::new(Inner {
                store,
                volumes,
                sandboxes,
                shutdown,
            }),
        };
        if let (Some(channel), Some(rx)) = (peers, local_changes) {
            crate::peers::start(node.volumes().data(), channel, rx);
        }
        node.reconcile_volumes().await?;
        node.sandboxes()
            .reconcile()
            .await
            .context("cannot reconcile this server's sandboxes")?;
        let vols = data.clone();
        let shutdown = node.shutdown_token().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            let mut idle_tick = tokio::time::interval(IDLE_SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = idle_tick.tick() => {
                        vols.close_idle(HANDLE_IDLE);
                        continue;
                    }
                    _ = shutdown.cancelled() => return,
                }
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
        Ok(node)
    }

    /// Makes storage and records agree after a crash: every volume record has storage (an
    /// interrupted create), no storage lacks a record (an interrupted delete), and staging areas
    /// are cleaned of dead servers' leftovers. Volumes are not opened here (a server may have
    /// more volumes than descriptors): the first request for a volume opens it, which measures
    /// its usage from disk (recorded where it differs from the stored figure).
    async fn reconcile_volumes(&self) -> anyhow::Result<()> {
        let data = self.volumes().data().clone();
        // Storage first, records second: a volume that another live server creates meanwhile
        // (record, then storage) is then never taken for an orphan.
        let vols = data.clone();
        let on_disk = tokio::task::spawn_blocking(move || vols.volume_ids()).await??;
        let records = self
            .inner
            .store
            .all_volumes()
            .await
            .context("cannot list volumes")?;
        let known: HashSet<String> = records.iter().map(|v| v.id.clone()).collect();
        for id in on_disk.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(volume = %id, "removing storage of a deleted volume");
            let vols = data.clone();
            tokio::task::spawn_blocking(move || vols.destroy(&id)).await??;
        }
        for v in records {
            let vols = data.clone();
            let (id, cap) = (v.id.clone(), v.cap_bytes);
            // A volume whose storage cannot be found or mounted is logged; the rest start (its
            // contents can never stop the server). Requests for it try again and answer the
            // error.
            // Staging is cleaned of dead servers' leftovers now (one fd at a time; a loop image
            // is mounted, which holds none once done); the rest waits for the first open.
            let ready = tokio::task::spawn_blocking(move || match vols.clean_staging(&id) {
                Err(nullspace_volumes::FsError::NotFound(_)) => vols.create(&id, cap),
                // Storage is there but cannot be used (say, a mount failed): creating it anew
                // would destroy it.
                other => other.map(|_| ()),
            })
            .await?;
            if let Err(e) = ready {
                tracing::error!(volume = %v.name, id = %v.id, error = %e, "volume storage not ready at start-up");
            }
        }
        Ok(())
    }
}

/// Picks and opens the volume backend. A data root keeps the backend it was made with (the
/// `volume-backend` file in the data dir; a data root with volumes and no such file predates
/// the loop backend, so it is `directory`): opening loop images over directories, or the other
/// way round, would hide every volume's files.
fn open_placement(
    data_dir: &Path,
    asked: Option<VolumeBackend>,
) -> anyhow::Result<Box<dyn VolumePlacement>> {
    let marker = data_dir.join("volume-backend");
    let recorded: Option<VolumeBackend> = match std::fs::read_to_string(&marker) {
        Ok(s) => Some(
            s.parse()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("cannot read {}", marker.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_volumes = std::fs::read_dir(data_dir.join("volumes"))
                .map(|rd| {
                    rd.flatten()
                        .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
                })
                .unwrap_or(false);
            has_volumes.then_some(VolumeBackend::Directory)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
    };
    let backend = match (asked, recorded) {
        (Some(a), Some(r)) if a != r => anyhow::bail!(
            "--volume-backend {} was asked for, but the volumes in {} were made with the {} backend; start with --volume-backend {}",
            a.as_str(),
            data_dir.display(),
            r.as_str(),
            r.as_str()
        ),
        (Some(a), _) => a,
        (None, Some(r)) => r,
        (None, None) => match nullspace_volumes::loop_unavailable() {
            None => VolumeBackend::Loop,
            Some(why) => {
                tracing::warn!(reason = %why, "volumes are plain directories: sandbox writes are not capped (the loop backend needs root, /dev/loop-control and mkfs.ext4)");
                VolumeBackend::Directory
            }
        },
    };
    if backend == VolumeBackend::Directory && asked.is_none() && recorded.is_some() {
        tracing::warn!("volumes are plain directories: sandbox writes are not capped");
    }
    if recorded.is_none() {
        std::fs::write(&marker, format!("{}\n", backend.as_str()))
            .and_then(|()| std::fs::File::open(data_dir)?.sync_all())
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    tracing::info!(backend = backend.as_str(), "volume backend");
    Ok(match backend {
        VolumeBackend::Loop => Box::new(
            LoopPlacement::open(data_dir, LOOP_DIRECT_IO)
                .context("cannot open the loop volume backend")?,
        ),
        VolumeBackend::Directory => Box::new(
            DirectoryPlacement::open(&data_dir.join("volumes"))
                .context("cannot open the volume data root")?,
        ),
    })
}

/// Loop devices use direct I/O on their image (see bench/notes/issue6-loop.md).
const LOOP_DIRECT_IO: bool = true;

/// Raises the soft limit on open files to the hard one and returns the soft limit then in
/// force: every open volume holds three fds (its `data/`, its `staging/` and its usage
/// file), every connection one.
fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => lim.current = lim.maximum,
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    lim.current.unwrap_or(1 << 20)
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
