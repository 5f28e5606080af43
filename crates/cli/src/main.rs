//! `nullspace`: the server (`nullspace server`) and the command-line client of its HTTP API.
//!
//! Architecture invariant: every client verb goes through `nullspace-client`; this crate only
//! parses arguments, validates them with core's parsers, resolves configuration and prints.

mod admin;
mod config;
mod content;
mod examples;
mod keys;
mod output;
mod sandbox;
mod server;
mod transfer;
mod unpack;
mod volume;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use nullspace_core::{Error, ErrorCode};

use crate::output::StdoutClosed;

const EXIT_CODES: &str = "\
Configuration (client verbs): --url/--key, else NULLSPACE_API_URL/NULLSPACE_API_KEY, else the
profile saved by `nullspace login` ($XDG_CONFIG_HOME/nullspace/config.json), else the local
server's client.json in its data dir. A saved key is only sent to the URL it was saved with.

Exit codes:
  0  success (`volume exists`: the path exists)
  1  `volume exists`: the path does not exist; `volume search`: nothing matched; other
     errors (local I/O)
  2  invalid usage or invalid argument
  3  unauthenticated or permission denied
  4  not found
  5  already exists, conflict, or volume in use
  6  quota exceeded, payload too large, or a tenant limit reached (resource exhausted)
  7  server unavailable (cannot reach it)
  8  internal server error";

/// nullspace Volumes: durable shared filesystems for sandboxes.
#[derive(Parser)]
#[command(name = "nullspace", version, after_long_help = EXIT_CODES)]
struct Cli {
    /// Server URL [default: the saved profile's, else http://127.0.0.1:7420]
    #[arg(
        long,
        global = true,
        env = "NULLSPACE_API_URL",
        value_name = "URL",
        display_order = 100
    )]
    url: Option<String>,
    /// API key [default: the saved profile's]
    #[arg(
        long,
        global = true,
        env = "NULLSPACE_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        display_order = 101
    )]
    key: Option<String>,
    /// Print JSON documents instead of tables and messages
    #[arg(long, global = true, display_order = 102)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API, control-plane state and volume data
    Server(server::ServerArgs),
    /// Check a key against a server and save both as the default profile
    Login,
    /// Show which tenant the configured key belongs to
    Whoami,
    /// Operator commands (need an admin key)
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Create, inspect and delete volumes, and manage their files
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Create sandboxes, run commands in them and attach volumes
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Print a shell completion script (bash, zsh or fish) to stdout
    Completion {
        /// The shell to complete in
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
}

/// Options every client verb shares.
pub struct Global {
    pub url: Option<String>,
    pub key: Option<String>,
    pub json: bool,
}

/// The command tree with the examples of every command's `--help`.
fn cli_command() -> clap::Command {
    examples::with_examples(Cli::command())
}

/// Parses the command line; for `server`, with the `--config` file's settings added (see
/// `server`'s module doc), and `--print-config` answered here.
fn parse_command_line() -> Cli {
    let matches = cli_command().get_matches();
    let Some(server_matches) = matches.subcommand_matches("server") else {
        return Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    };
    let (flags, from_file) = match server::config_file_flags(server_matches) {
        Ok(found) => found,
        Err(e) => {
            output::eprint_line(&format!("error: {e:#}"));
            std::process::exit(2);
        }
    };
    let matches = if flags.is_empty() {
        matches
    } else {
        let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        argv.extend(flags);
        cli_command()
            .try_get_matches_from(argv)
            .unwrap_or_else(|e| {
                output::eprint_line("error: in a setting of the --config file:");
                e.exit()
            })
    };
    let server_matches = matches
        .subcommand_matches("server")
        .expect("parsed as server before");
    if server_matches.get_flag("print_config") {
        print!("{}", server::effective_config(server_matches, &from_file));
        std::process::exit(0);
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse_command_line();
    let global = Global {
        url: non_empty(cli.url),
        key: non_empty(cli.key),
        json: cli.json,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Login => config::login(&global).await,
            Command::Whoami => config::whoami(&global).await,
            Command::Admin(cmd) => admin::run(cmd, &global).await,
            Command::Key(cmd) => keys::run(cmd, &global).await,
            Command::Volume(cmd) => volume::run(cmd, &global).await,
            Command::Sandbox(cmd) => sandbox::run(cmd, &global).await,
            Command::Completion { shell } => completion(&shell),
        }
    });
    // Streams still being read (stdin) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) if e.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            let msg = format!("{e:#}").replace('\n', " ");
            output::eprint_line(&format!("error: {msg}"));
            ExitCode::from(code)
        }
    }
}

/// Writes the completion script of `shell` for the whole command tree to stdout.
fn completion(shell: &str) -> anyhow::Result<ExitCode> {
    use clap_complete::Shell;
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli_command(), "nullspace", &mut out);
    output::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// The process exit code of an error (see `EXIT_CODES`).
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>().map(|e| e.code) {
        Some(ErrorCode::InvalidArgument) => 2,
        Some(ErrorCode::Unauthenticated | ErrorCode::PermissionDenied) => 3,
        Some(ErrorCode::NotFound) => 4,
        Some(ErrorCode::AlreadyExists | ErrorCode::Conflict | ErrorCode::VolumeInUse) => 5,
        Some(
            ErrorCode::QuotaExceeded | ErrorCode::PayloadTooLarge | ErrorCode::ResourceExhausted,
        ) => 6,
        Some(ErrorCode::Unavailable) => 7,
        Some(ErrorCode::Internal) => 8,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&Error::not_found("x").into()), 4);
        assert_eq!(exit_code(&anyhow::anyhow!("local")), 1);
        let wrapped = anyhow::Error::from(Error::quota_exceeded("full")).context("writing");
        assert_eq!(exit_code(&wrapped), 6);
    }
}
