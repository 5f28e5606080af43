//! Server configuration: one struct, every field a flag and an env var (see the CLI).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `nullspace server` needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (`--listen`, `NULLSPACE_LISTEN`), default `127.0.0.1:7420`.
    pub listen: SocketAddr,
    /// Data directory (`--data-dir`, `NULLSPACE_DATA_DIR`): the SQLite database, volume data,
    /// and `client.json` with the bootstrap key for local clients.
    pub data_dir: PathBuf,
    /// Control-plane database (`--database-url`); `None` means SQLite in the data dir.
    pub database_url: Option<String>,
    /// Key to use as the default tenant's first admin key on first start (`--bootstrap-key`).
    pub bootstrap_key: Option<String>,
    /// This server's id among the servers sharing one database (`--server-id`,
    /// `NULLSPACE_SERVER_ID`): the sandboxes it runs are recorded under it, and its runtime
    /// keeps them in `<data_dir>/sandboxes/servers/<server_id>`. It must stay the same across restarts
    /// and differ between servers. `None`: `<hostname>-<port>` of the bound listen address.
    pub server_id: Option<String>,
    /// Where volumes' files live (`--volume-backend`, `NULLSPACE_VOLUME_BACKEND`); `None`
    /// picks one (see [`VolumeBackend`]).
    pub volume_backend: Option<VolumeBackend>,
    /// What a sandbox gets when its create does not say (`--sandbox-cpu`, `--sandbox-memory`,
    /// `--sandbox-disk`, `--sandbox-pids`; default 1 core, 1 GiB, 4 GiB, 1,024).
    pub sandbox_limits: nullspace_sandbox::Limits,
    /// The runtime of a sandbox whose create does not say (`--sandbox-runtime`; default
    /// `namespace`).
    pub sandbox_runtime: nullspace_sandbox::SandboxRuntime,
    /// Bounds on HTTP connections (`--max-connections`, `--idle-timeout`, `--body-timeout`).
    pub connections: ConnectionLimits,
}

/// Bounds on the HTTP connections of one server (see docs/operating.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; one more is answered `503` and closed. Capped at half the
    /// open-file limit at start.
    pub max_connections: usize,
    /// How long a connection may take to send a complete request head, counted from when it
    /// was accepted or its previous response was sent: an idle keep-alive connection, or one
    /// sending its headers slowly, is closed after this.
    pub idle_timeout: std::time::Duration,
    /// How long a request body may go without a byte arriving (a slow but live upload is
    /// never cut off).
    pub body_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            idle_timeout: std::time::Duration::from_secs(60),
            body_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Whether `id` can be a server id: 1–63 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit
/// (it names a directory and appears in messages).
pub fn valid_server_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The default server id: `<hostname>-<port>` (a host name reduced to the allowed characters).
/// Two servers on one host listen on different ports, so they get different ids; a server
/// listening on port 0 gets a new id at each start and should be given `--server-id`.
pub fn default_server_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    let host = host.trim_start_matches(['.', '_', '-']);
    if host.is_empty() {
        format!("localhost-{port}")
    } else {
        format!("{host}-{port}")
    }
}

/// Where each volume's files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeBackend {
    /// Its own ext4 file system on a loop device, sized to the cap: sandbox writes are capped
    /// by the kernel. Needs root, `/dev/loop-control` and mkfs.ext4. The default when they
    /// are there.
    Loop,
    /// A plain directory: the cap holds for API writes only. For a data root on a distributed
    /// file system that enforces its own directory quotas.
    Directory,
}

impl VolumeBackend {
    /// The name used by the flag and in the data dir's `volume-backend` file.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeBackend::Loop => "loop",
            VolumeBackend::Directory => "directory",
        }
    }
}

impl std::str::FromStr for VolumeBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<VolumeBackend, String> {
        match s.trim() {
            "loop" => Ok(VolumeBackend::Loop),
            "directory" => Ok(VolumeBackend::Directory),
            other => Err(format!(
                "unknown volume backend {other:?}: use loop or directory"
            )),
        }
    }
}

impl ServerConfig {
    /// The default data dir: `$XDG_DATA_HOME/nullspace` or `~/.local/share/nullspace`.
    pub fn default_data_dir() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("nullspace");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".local/share/nullspace")
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "bootstrap_key",
                &self.bootstrap_key.as_ref().map(|_| "<redacted>"),
            )
            .field("server_id", &self.server_id)
            .field("volume_backend", &self.volume_backend)
            .field("sandbox_limits", &self.sandbox_limits)
            .field("sandbox_runtime", &self.sandbox_runtime)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids() {
        assert!(valid_server_id("host-a.example_1"));
        assert!(!valid_server_id(""));
        assert!(!valid_server_id("-x"));
        assert!(!valid_server_id("a/b"));
        assert!(!valid_server_id("a:1"));
        assert!(!valid_server_id(&"a".repeat(64)));
        let id = default_server_id(7420);
        assert!(id.ends_with("-7420") && valid_server_id(&id), "{id}");
    }
}
