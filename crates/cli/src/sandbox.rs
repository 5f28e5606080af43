//! `nullspace sandbox …`: sandboxes, their commands and their volume attachments.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use nullspace_client::{ExecOptions, SandboxMount};
use nullspace_core::wire::{
    Attachment, AttachmentList, CreateSandbox, SandboxDirList, SandboxList,
};
use nullspace_core::Error;

use crate::output;
use crate::{config, Global};

#[derive(clap::Subcommand)]
pub enum SandboxCommand {
    /// Create and start a sandbox; prints its id
    Create {
        /// Template to start from
        #[arg(long, default_value = "base")]
        template: String,
        /// Volume to mount: ref=VOLUME,mount=/abs/path[,readonly][,subpath=dir] (repeatable)
        #[arg(long = "volume", value_name = "SPEC")]
        volumes: Vec<String>,
        /// Environment variable of every process in the sandbox (repeatable)
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// A name for the sandbox
        #[arg(long)]
        name: Option<String>,
        /// Destroy the sandbox this long after creating it (seconds, or 30s, 15m, 1h, 1d)
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// CPU quota in cores, fractions allowed (e.g. 0.5) [default: the server's --sandbox-cpu]
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        cpu: Option<String>,
        /// Hard memory limit (e.g. 512MiB, 2GiB) [default: the server's --sandbox-memory]
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        memory: Option<String>,
        /// Cap of the sandbox's own writable layer (e.g. 4GiB) [default: the server's --sandbox-disk]
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        disk: Option<String>,
        /// namespace, or gvisor (hibernate keeps memory and processes) [default: the server's --sandbox-runtime]
        #[arg(long, value_name = "RUNTIME")]
        runtime: Option<String>,
    },
    /// List sandboxes
    List,
    /// Show one sandbox
    Get { id: String },
    /// Run a command in a sandbox; exits with its exit code (124 if it timed out)
    Exec {
        id: String,
        /// Environment variable for the command (repeatable)
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the sandbox
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// Pass this command's standard input to the command (UTF-8 text)
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Kill the command after this long (seconds, or 30s, 15m, 1h)
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Program and arguments
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Files as the sandbox sees them (its own filesystem and its mounted volumes)
    #[command(subcommand)]
    Files(FilesCommand),
    /// Attach a volume to a running sandbox
    Attach {
        id: String,
        /// ref=VOLUME,mount=/abs/path[,readonly][,subpath=dir]
        #[arg(long = "volume", value_name = "SPEC")]
        volume: String,
    },
    /// Detach the volume mounted at MOUNT
    Detach { id: String, mount: String },
    /// List a sandbox's volume attachments
    Attachments { id: String },
    /// Freeze a sandbox's processes (releases its mounts)
    Pause { id: String },
    /// Resume a paused or hibernated sandbox (remounts its volumes)
    Resume { id: String },
    /// Stop a sandbox's processes, keeping its filesystem
    Hibernate { id: String },
    /// Make a new sandbox from a copy of this one's filesystem; prints the new id
    Fork { id: String },
    /// Destroy a sandbox (its volumes and their data stay)
    Destroy { id: String },
}

#[derive(clap::Subcommand)]
pub enum FilesCommand {
    /// Print a file to stdout
    Read {
        id: String,
        /// Absolute path inside the sandbox
        path: String,
    },
    /// Write a file from stdin (or --from FILE), replacing it; prints nothing unless --json
    Write {
        id: String,
        /// Absolute path inside the sandbox
        path: String,
        /// Local file to send instead of stdin (`-` is stdin)
        #[arg(long, value_name = "FILE")]
        from: Option<std::path::PathBuf>,
    },
    /// List a directory
    #[command(visible_alias = "ls")]
    List {
        id: String,
        /// Absolute path inside the sandbox
        #[arg(default_value = "/")]
        path: String,
    },
}

/// Parses `KEY=VALUE` flags into a map (`flag` names the flag in errors).
fn parse_env(flag: &str, pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut envs = BTreeMap::new();
    for kv in pairs {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Error::invalid_argument(format!("invalid {flag} {kv:?}: expected KEY=VALUE"))
        })?;
        if k.is_empty() {
            return Err(Error::invalid_argument(format!(
                "invalid {flag} {kv:?}: the name is empty"
            )));
        }
        envs.insert(k.to_owned(), v.to_owned());
    }
    Ok(envs)
}

/// A `--timeout` value: seconds or a duration such as `30s`, `15m`, `1h`; never zero.
fn parse_timeout(s: &str) -> Result<std::time::Duration, Error> {
    let d = crate::transfer::parse_duration(s)
        .map_err(|e| Error::invalid_argument(format!("--timeout: {}", e.message)))?;
    if d.is_zero() {
        return Err(Error::invalid_argument(format!(
            "--timeout: {s:?} is zero; give a positive duration"
        )));
    }
    Ok(d)
}

/// Parses `ref=VOLUME,mount=/abs/path[,readonly][,subpath=dir]`.
pub fn parse_mount(spec: &str) -> Result<SandboxMount, Error> {
    let bad = |why: &str| Error::invalid_argument(format!("invalid volume spec {spec:?}: {why}"));
    let (mut volume, mut mount, mut read_only, mut subpath) = (None, None, false, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("ref", v)) => volume = Some(v.to_owned()),
            Some(("mount", v)) => mount = Some(v.to_owned()),
            Some(("subpath", v)) => subpath = Some(v.to_owned()),
            None if part == "readonly" || part == "ro" => read_only = true,
            _ => return Err(bad(&format!("unknown part {part:?}"))),
        }
    }
    Ok(SandboxMount {
        volume: volume
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("ref=VOLUME is missing"))?,
        mount_path: mount
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("mount=/path is missing"))?,
        read_only,
        subpath,
    })
}

fn attachment_rows(atts: &[Attachment]) -> Vec<Vec<String>> {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    atts.iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.volume.clone(),
                a.mount_path.clone(),
                if a.read_only { "ro" } else { "rw" }.into(),
                or_dash(&a.subpath),
                a.state.to_string(),
                or_dash(&a.error),
            ]
        })
        .collect()
}

const ATT_HEADER: &[&str] = &["ID", "VOLUME", "MOUNT", "MODE", "SUBPATH", "STATE", "ERROR"];

pub async fn run(cmd: SandboxCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let client = config::client(g)?;
    fn print_record(g: &Global, v: &impl serde::Serialize, msg: String) -> anyhow::Result<()> {
        if g.json {
            output::json(v)
        } else {
            output::line(msg)
        }
    }
    match cmd {
        SandboxCommand::Create {
            template,
            volumes,
            env,
            name,
            timeout,
            cpu,
            memory,
            disk,
            runtime,
        } => {
            let mounts = volumes
                .iter()
                .map(|s| parse_mount(s))
                .collect::<Result<Vec<_>, _>>()?;
            let envs = parse_env("--env", &env)?;
            let timeout = timeout.as_deref().map(parse_timeout).transpose()?;
            // The server parses the values (one parser; its errors name the field).
            let sb = client
                .create_sandbox_with(&CreateSandbox {
                    template,
                    volumes: mounts,
                    name,
                    env: envs,
                    timeout: timeout.map(|t| t.as_secs()),
                    cpu: cpu.map(serde_json::Value::String),
                    memory: memory.map(serde_json::Value::String),
                    disk: disk.map(serde_json::Value::String),
                    runtime,
                })
                .await?;
            print_record(g, &sb, sb.id.clone())?;
        }
        SandboxCommand::List => {
            let list = client.list_sandboxes().await?;
            if g.json {
                output::json(&SandboxList { sandboxes: list })?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.clone(),
                            s.name.clone().unwrap_or_else(|| "-".into()),
                            s.template.clone(),
                            s.runtime.clone(),
                            s.state.to_string(),
                            s.attachments.len().to_string(),
                            output::time(&s.created_at),
                        ]
                    })
                    .collect();
                output::table(
                    Some(&[
                        "ID",
                        "NAME",
                        "TEMPLATE",
                        "RUNTIME",
                        "STATE",
                        "ATTACHMENTS",
                        "CREATED",
                    ]),
                    &rows,
                )?;
            }
        }
        SandboxCommand::Get { id } => {
            let sb = client.get_sandbox(&id).await?;
            output::json(&sb)?;
        }
        SandboxCommand::Exec {
            id,
            env,
            cwd,
            stdin,
            timeout,
            cmd,
        } => {
            let timeout = timeout.as_deref().map(parse_timeout).transpose()?;
            let opts = ExecOptions {
                env: parse_env("--env", &env)?,
                cwd,
                stdin: if stdin {
                    Some(read_stdin_text().await?)
                } else {
                    None
                },
                timeout,
            };
            let out = client.exec_with(&id, &cmd, &opts).await?;
            if g.json {
                output::json(&out)?;
            } else {
                // The original bytes, text or not (binary output comes as base64).
                output::write_stdout(&out.stdout_bytes().context("exec answer: stdout_base64")?)?;
                let err = out.stderr_bytes().context("exec answer: stderr_base64")?;
                std::io::Write::write_all(&mut std::io::stderr().lock(), &err)?;
                if out.truncated {
                    output::eprint_line(
                        "warning: the command's output passed the server's limit and was cut",
                    );
                }
                if out.timed_out {
                    let t = timeout.map_or(0.0, |t| t.as_secs_f64());
                    output::eprint_line(&format!(
                        "error: the command timed out after {t}s and was killed"
                    ));
                }
            }
            // As coreutils' `timeout` does: 124 when the command ran out of time.
            if out.timed_out {
                return Ok(ExitCode::from(124));
            }
            return Ok(ExitCode::from((out.exit_code & 0xff) as u8));
        }
        SandboxCommand::Files(cmd) => files(&client, g, cmd).await?,
        SandboxCommand::Attach { id, volume } => {
            let a = client.attach(&id, &parse_mount(&volume)?).await?;
            let msg = format!("attached {} at {} ({})", a.volume, a.mount_path, a.state);
            print_record(g, &a, msg)?;
        }
        SandboxCommand::Detach { id, mount } => {
            let a = client.detach(&id, &mount).await?;
            print_record(g, &a, format!("detached {mount}"))?;
        }
        SandboxCommand::Attachments { id } => {
            let list = client.attachments(&id).await?;
            if g.json {
                output::json(&AttachmentList { attachments: list })?;
            } else {
                output::table(Some(ATT_HEADER), &attachment_rows(&list))?;
            }
        }
        SandboxCommand::Pause { id } => lifecycle(&client, g, &id, "pause").await?,
        SandboxCommand::Resume { id } => lifecycle(&client, g, &id, "resume").await?,
        SandboxCommand::Hibernate { id } => lifecycle(&client, g, &id, "hibernate").await?,
        SandboxCommand::Fork { id } => {
            let sb = client.sandbox_lifecycle(&id, "fork").await?;
            print_record(g, &sb, sb.id.clone())?;
        }
        SandboxCommand::Destroy { id } => {
            client.destroy_sandbox(&id).await?;
            if g.json {
                output::json(&serde_json::json!({ "id": id, "destroyed": true }))?;
            } else {
                output::line(format_args!("destroyed sandbox {id}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// All of this process's standard input, which must be UTF-8 text (the API's `stdin`).
async fn read_stdin_text() -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut buf)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot read stdin"))?;
    String::from_utf8(buf)
        .map_err(|_| Error::invalid_argument("--stdin: standard input is not UTF-8 text").into())
}

async fn files(
    client: &nullspace_client::Client,
    g: &Global,
    cmd: FilesCommand,
) -> anyhow::Result<()> {
    match cmd {
        FilesCommand::Read { id, path } => {
            let data = client.sandbox_read(&id, &path).await?;
            output::write_stdout(&data)
        }
        FilesCommand::Write { id, path, from } => {
            let data = match from.filter(|f| f.as_os_str() != "-") {
                None => {
                    use tokio::io::AsyncReadExt;
                    let mut buf = Vec::new();
                    tokio::io::stdin()
                        .read_to_end(&mut buf)
                        .await
                        .map_err(|e| anyhow::Error::new(e).context("cannot read stdin"))?;
                    buf
                }
                Some(file) => tokio::fs::read(&file)
                    .await
                    .with_context(|| format!("cannot read {}", file.display()))?,
            };
            let size = data.len();
            client.sandbox_write(&id, &path, data).await?;
            // Silent on success so that pipelines stay clean.
            if g.json {
                output::json(&serde_json::json!({ "path": path, "size": size }))?;
            }
            Ok(())
        }
        FilesCommand::List { id, path } => {
            let entries = client.sandbox_list(&id, &path).await?;
            if g.json {
                return output::json(&SandboxDirList { entries });
            }
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.kind.clone(),
                        e.size.to_string(),
                        if e.kind == "dir" {
                            format!("{}/", e.name)
                        } else {
                            e.name.clone()
                        },
                    ]
                })
                .collect();
            output::table(None, &rows)
        }
    }
}

async fn lifecycle(
    client: &nullspace_client::Client,
    g: &Global,
    id: &str,
    op: &str,
) -> anyhow::Result<()> {
    let sb = client.sandbox_lifecycle(id, op).await?;
    if g.json {
        output::json(&sb)
    } else {
        output::line(format_args!("sandbox {id}: {}", sb.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = parse_mount("ref=team-data,mount=/workspace/shared").unwrap();
        assert_eq!(
            (m.volume.as_str(), m.mount_path.as_str()),
            ("team-data", "/workspace/shared")
        );
        assert!(!m.read_only && m.subpath.is_none());
        let m = parse_mount("ref=v,mount=/m,readonly,subpath=a/b").unwrap();
        assert!(m.read_only);
        assert_eq!(m.subpath.as_deref(), Some("a/b"));
        assert!(parse_mount("mount=/m").is_err());
        assert!(parse_mount("ref=v").is_err());
        assert!(parse_mount("ref=v,mount=/m,bogus").is_err());
    }
}
