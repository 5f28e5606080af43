//! `nullspace server`: flags, env vars and the config file into a `ServerConfig`, then
//! `nullspace_api::run_with`.
//!
//! Every setting comes from, in this order of precedence: its flag, its `NULLSPACE_…`
//! environment variable, the TOML file of `--config` (key: the flag's name with `_` for `-`),
//! its default. The file's values go through the flags' own parsers: the file is read, and each
//! of its keys that no flag or variable set is added to the command line as `--flag=value`
//! before it is parsed again (see [`config_file_flags`]). A key that is no flag is an error.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use nullspace_api::ServerConfig;
use tracing_subscriber::EnvFilter;

/// Settings that are not settings of the server: never read from the file, never printed.
const NOT_SETTINGS: [&str; 3] = ["config", "print_config", "help"];

/// Flags of `nullspace server`; each is also an environment variable and a key of the
/// `--config` file.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Read settings from this TOML file (keys: the flags' names with `_` for `-`, e.g.
    /// `data_dir = "/var/lib/nullspace"`); flags and environment variables win over it
    #[arg(long, env = "NULLSPACE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective settings (as a config file, secrets redacted, each with where it
    /// came from) and exit
    #[arg(long)]
    print_config: bool,
    /// Log lines as `text` (for people) or `json` (one object per line, for collectors)
    #[arg(long, env = "NULLSPACE_LOG_FORMAT", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    /// Log one line per request (method, route, status, bytes, duration, tenant, request id)
    #[arg(long, env = "NULLSPACE_ACCESS_LOG", value_name = "BOOL", default_value_t = true,
          action = clap::ArgAction::Set)]
    access_log: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (no authentication: bind it to
    /// loopback or a private network) [default: no metrics]
    #[arg(long, env = "NULLSPACE_METRICS_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    metrics_listen: Option<SocketAddr>,
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
    cors_origin: Vec<String>,
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

/// The `--flag=value` arguments that bring in the `--config` file's settings which no flag or
/// environment variable set (empty without `--config`); `matches` are `nullspace server`'s.
/// Also returns the names of the settings taken from the file.
pub fn config_file_flags(matches: &ArgMatches) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
    let Some(path) = matches.get_one::<PathBuf>("config") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let table = read_config_file(path)?;
    let command = ServerArgs::augment_args(clap::Command::new("server"));
    let settings: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .collect();
    let mut flags = Vec::new();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let Some(arg) = settings.iter().find(|a| a.get_id().as_str() == key) else {
            let known: Vec<&str> = settings.iter().map(|a| a.get_id().as_str()).collect();
            anyhow::bail!(
                "{}: unknown setting {key:?} (the settings are: {})",
                path.display(),
                known.join(", ")
            );
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A repeatable setting (`cors_origin = ["https://a.example.com", …]`): its values
            // go to the flag's own delimiter.
            toml::Value::Array(items) if arg.get_value_delimiter().is_some() => {
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    let Some(text) = item.as_str() else {
                        anyhow::bail!("{}: {key}: expected a list of strings", path.display());
                    };
                    texts.push(text.to_owned());
                }
                texts.join(&arg.get_value_delimiter().unwrap_or(',').to_string())
            }
            _ => anyhow::bail!(
                "{}: {key}: expected a string, a number or a boolean",
                path.display()
            ),
        };
        if matches!(
            matches.value_source(key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = arg.get_long().expect("every setting is a long flag");
        let mut flag = OsString::from(format!("--{long}="));
        flag.push(text);
        flags.push(flag);
        from_file.push(key.clone());
    }
    Ok((flags, from_file))
}

/// The TOML table of a config file (an error names the file and, for bad TOML, the line).
fn read_config_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The effective settings as a config file: every setting with its value (a secret's
/// redacted) and where it came from. `from_file` names the settings the file gave.
pub fn effective_config(matches: &ArgMatches, from_file: &[String]) -> String {
    let command = ServerArgs::augment_args(clap::Command::new("server"));
    let mut out = String::from(
        "# nullspace server: effective settings (flag > environment > config file > default)\n",
    );
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_SETTINGS.contains(&id) {
            continue;
        }
        let source = if from_file.iter().any(|k| k == id) {
            "config file".to_owned()
        } else {
            match matches.value_source(id) {
                Some(ValueSource::CommandLine) => format!("--{}", arg.get_long().unwrap_or(id)),
                Some(ValueSource::EnvVariable) => {
                    arg.get_env().map_or("environment".to_owned(), |e| {
                        e.to_string_lossy().into_owned()
                    })
                }
                Some(ValueSource::DefaultValue) => "default".to_owned(),
                _ => "default".to_owned(),
            }
        };
        // A repeatable setting's values joined by its delimiter, as a file may give them.
        let delimiter = arg.get_value_delimiter().unwrap_or(',').to_string();
        let value = matches.get_raw(id).map(|values| {
            values
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(&delimiter)
        });
        match value {
            Some(v) => {
                let v = if arg.is_hide_env_values_set() {
                    redact(id, &v)
                } else {
                    v
                };
                out.push_str(&format!("{id} = {}  # {source}\n", toml_value(&v)));
            }
            None => out.push_str(&format!("# {id} is not set  # {source}\n")),
        }
    }
    out
}

/// A secret setting's value as it may be shown: a database URL without its password (and
/// query, which may hold one), anything else not at all.
fn redact(id: &str, value: &str) -> String {
    if id == "database_url" {
        if let Some((scheme, rest)) = value.split_once("://") {
            let rest = rest.split('?').next().unwrap_or_default();
            let rest = match rest.rsplit_once('@') {
                Some((user, host)) => {
                    let user = user.split(':').next().unwrap_or_default();
                    format!("{user}:<redacted>@{host}")
                }
                None => rest.to_owned(),
            };
            let query = if value.contains('?') {
                "?<redacted>"
            } else {
                ""
            };
            return format!("{scheme}://{rest}{query}");
        }
    }
    "<redacted>".to_owned()
}

/// A raw flag value as a TOML value: a number or boolean bare, anything else a string.
fn toml_value(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
        return v.to_owned();
    }
    if v.parse::<f64>().is_ok_and(f64::is_finite) && !v.contains(['e', 'E', 'i', 'n']) {
        return v.to_owned();
    }
    toml::Value::String(v.to_owned()).to_string()
}

/// Sets up logging to stderr in the chosen format.
fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(ansi).init();
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log_format);
    let sandbox_limits = sandbox_limits(&args)?;
    let http = nullspace_api::HttpOptions {
        cors_origins: nullspace_api::CorsOrigins::parse(&args.cors_origin)
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
    let observe = nullspace_api::Observability {
        metrics_listen: args.metrics_listen,
        access_log: args.access_log,
    };
    nullspace_api::run_with(config, observe, http).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_user_and_host_only() {
        assert_eq!(
            redact(
                "database_url",
                "postgres://u:pw@db.example.com:5432/ns?sslmode=require&password=x"
            ),
            "postgres://u:<redacted>@db.example.com:5432/ns?<redacted>"
        );
        assert_eq!(
            redact("database_url", "postgres://db.example.com/ns"),
            "postgres://db.example.com/ns"
        );
        // A password holding '@' or ':' does not leak a piece.
        assert_eq!(
            redact("database_url", "postgres://u:p@ss:w@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(redact("database_url", "not a url"), "<redacted>");
        assert_eq!(redact("bootstrap_key", "nsk_abc"), "<redacted>");
    }

    #[test]
    fn printed_values_are_toml_that_reads_back() {
        for (raw, printed) in [
            ("1024", "1024"),
            ("60", "60"),
            ("0.5", "0.5"),
            ("true", "true"),
            ("1GiB", "\"1GiB\""),
            ("127.0.0.1:7420", "\"127.0.0.1:7420\""),
            ("inf", "\"inf\""),
            ("1e3", "\"1e3\""),
        ] {
            assert_eq!(toml_value(raw), printed, "{raw}");
            let doc: toml::Table = format!("k = {printed}").parse().unwrap();
            assert!(doc.contains_key("k"));
        }
        let raw = "a \"quoted\" path\\";
        let doc: toml::Table = format!("k = {}", toml_value(raw)).parse().unwrap();
        assert_eq!(doc["k"].as_str(), Some(raw));
    }

    #[test]
    fn every_setting_is_a_long_flag_with_an_env_var() {
        let command = ServerArgs::augment_args(clap::Command::new("server"));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["print_config", "help"].contains(&id) {
                continue;
            }
            assert_eq!(
                arg.get_long().map(|l| l.replace('-', "_")).as_deref(),
                Some(id)
            );
            assert!(arg.get_env().is_some(), "{id} has no environment variable");
        }
    }
}
