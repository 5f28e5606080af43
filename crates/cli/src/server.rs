//! `nullspace server`: flags and env vars into a `ServerConfig`, then `nullspace_api::run`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use nullspace_api::ServerConfig;
use tracing_subscriber::EnvFilter;

/// Flags of `nullspace server`; each is also an environment variable.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to listen on
    #[arg(long, env = "NULLSPACE_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:7420", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Data directory: database, volume data, client.json [default: $XDG_DATA_HOME/nullspace or ~/.local/share/nullspace]
    #[arg(long, env = "NULLSPACE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Control-plane database [default: SQLite in the data dir]
    #[arg(
        long,
        env = "NULLSPACE_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    /// On first start, use this as the default tenant's admin key instead of a random one
    #[arg(
        long,
        env = "NULLSPACE_BOOTSTRAP_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    bootstrap_key: Option<String>,
    /// This server's id among servers sharing one database; must stay the same across restarts [default: HOSTNAME-PORT]
    #[arg(long, env = "NULLSPACE_SERVER_ID", value_name = "ID")]
    server_id: Option<String>,
    /// Where volumes' files live: `loop` (an ext4 file system per volume on a loop device,
    /// capping sandbox writes; needs root) or `directory` (a plain directory; only API writes
    /// are capped) [default: loop when running as root with /dev/loop-control, else directory]
    #[arg(long, env = "NULLSPACE_VOLUME_BACKEND", value_name = "BACKEND")]
    volume_backend: Option<String>,
    /// CPU quota of a sandbox whose create does not say, in cores (fractions allowed)
    #[arg(
        long,
        env = "NULLSPACE_SANDBOX_CPU",
        value_name = "N",
        default_value = "1"
    )]
    sandbox_cpu: String,
    /// Memory limit of a sandbox whose create does not say (at least 16MiB)
    #[arg(
        long,
        env = "NULLSPACE_SANDBOX_MEMORY",
        value_name = "SIZE",
        default_value = "1GiB"
    )]
    sandbox_memory: String,
    /// Writable-layer cap of a sandbox whose create does not say (at least 16MiB)
    #[arg(
        long,
        env = "NULLSPACE_SANDBOX_DISK",
        value_name = "SIZE",
        default_value = "4GiB"
    )]
    sandbox_disk: String,
    /// Most processes and threads alive at once in one sandbox
    #[arg(long, env = "NULLSPACE_SANDBOX_PIDS", value_name = "N", default_value = "1024",
          value_parser = clap::value_parser!(u32).range(16..=4_194_304))]
    sandbox_pids: u32,
    /// Runtime of a sandbox whose create does not say: namespace, or gvisor (needs runsc)
    #[arg(long, env = "NULLSPACE_SANDBOX_RUNTIME", value_name = "RUNTIME", default_value = "namespace",
          value_parser = ["namespace", "gvisor"])]
    sandbox_runtime: String,
    /// Connections served at once; one more is answered 503 and closed (capped at half the
    /// open-file limit)
    #[arg(long, env = "NULLSPACE_MAX_CONNECTIONS", value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a connection may take to send a complete request head after it was accepted or
    /// its previous response was sent (closes idle keep-alive and slow-header connections)
    #[arg(long, env = "NULLSPACE_IDLE_TIMEOUT", value_name = "SECS", default_value_t = 60.0, value_parser = parse_secs)]
    idle_timeout: f64,
    /// Seconds a request body may go without a byte arriving (slow but live uploads go on)
    #[arg(long, env = "NULLSPACE_BODY_TIMEOUT", value_name = "SECS", default_value_t = 60.0, value_parser = parse_secs)]
    body_timeout: f64,
    /// Let pages on this browser origin (`https://app.example.com`) call the API, tus uploads and
    /// signed URLs (CORS); repeatable, or `*` for any origin [default: off]
    #[arg(
        long = "cors-origin",
        env = "NULLSPACE_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
}

/// The per-sandbox defaults from the flags, with the bounds a create request meets.
fn sandbox_limits(args: &ServerArgs) -> anyhow::Result<nullspace_api::SandboxLimits> {
    use nullspace_core::limits::{cpu_value, size_value, MIN_SANDBOX_DISK, MIN_SANDBOX_MEMORY};
    let text = |s: &str| serde_json::Value::String(s.to_owned());
    let limits = nullspace_api::SandboxLimits {
        cpu_millicores: cpu_value("--sandbox-cpu", &text(&args.sandbox_cpu))?,
        memory_bytes: size_value("--sandbox-memory", &text(&args.sandbox_memory))?,
        disk_bytes: size_value("--sandbox-disk", &text(&args.sandbox_disk))?,
        pids: args.sandbox_pids,
    };
    if limits.memory_bytes < MIN_SANDBOX_MEMORY {
        anyhow::bail!("--sandbox-memory must be at least 16MiB");
    }
    if limits.disk_bytes < MIN_SANDBOX_DISK {
        anyhow::bail!("--sandbox-disk must be at least 16MiB");
    }
    Ok(limits)
}

/// A positive number of seconds, at most a day.
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "expected seconds, more than 0 and at most 86400 (got {s:?})"
        )),
    }
}

/// Accepts `IP:PORT` and `HOST:PORT` (resolved once, first address).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let sandbox_limits = sandbox_limits(&args)?;
    let http = nullspace_api::HttpOptions {
        cors_origins: nullspace_api::CorsOrigins::parse(&args.cors_origins)
            .map_err(anyhow::Error::msg)?,
    };
    let config = ServerConfig {
        sandbox_limits,
        sandbox_runtime: nullspace_api::SandboxRuntime::parse(&args.sandbox_runtime)
            .expect("clap checked the value"),
        listen: args.listen,
        data_dir: args
            .data_dir
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(ServerConfig::default_data_dir),
        database_url: args.database_url.filter(|u| !u.is_empty()),
        bootstrap_key: args.bootstrap_key.filter(|k| !k.is_empty()),
        server_id: args.server_id.filter(|i| !i.is_empty()),
        volume_backend: match args.volume_backend.filter(|b| !b.trim().is_empty()) {
            Some(b) => Some(b.parse().map_err(anyhow::Error::msg)?),
            None => None,
        },
        connections: nullspace_api::ConnectionLimits {
            max_connections: args.max_connections as usize,
            idle_timeout: std::time::Duration::from_secs_f64(args.idle_timeout),
            body_timeout: std::time::Duration::from_secs_f64(args.body_timeout),
        },
    };
    nullspace_api::run(config, http).await?;
    Ok(ExitCode::SUCCESS)
}
