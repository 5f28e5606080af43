//! `nullspace sandbox …`: sandboxes, their commands and their volume attachments.

use std::collections::BTreeMap;
use std::process::ExitCode;

use nullspace_client::SandboxMount;
use nullspace_core::Error;
use serde_json::Value;

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
    },
    /// List sandboxes
    List,
    /// Show one sandbox
    Get { id: String },
    /// Run a command in a sandbox; exits with its exit code
    Exec {
        id: String,
        /// Program and arguments
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
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

fn attachment_rows(atts: &[Value]) -> Vec<Vec<String>> {
    let s = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    atts.iter()
        .map(|a| {
            vec![
                s(a, "id"),
                s(a, "volume"),
                s(a, "mount_path"),
                if a["read_only"].as_bool() == Some(true) {
                    "ro".into()
                } else {
                    "rw".into()
                },
                s(a, "subpath"),
                s(a, "state"),
                s(a, "error"),
            ]
        })
        .collect()
}

const ATT_HEADER: &[&str] = &["ID", "VOLUME", "MOUNT", "MODE", "SUBPATH", "STATE", "ERROR"];

pub async fn run(cmd: SandboxCommand, g: &Global) -> anyhow::Result<ExitCode> {
    let client = config::client(g)?;
    let print_record = |v: &Value, msg: String| -> anyhow::Result<()> {
        if g.json {
            output::json(v)
        } else {
            output::line(msg)
        }
    };
    match cmd {
        SandboxCommand::Create {
            template,
            volumes,
            env,
            name,
        } => {
            let mounts = volumes
                .iter()
                .map(|s| parse_mount(s))
                .collect::<Result<Vec<_>, _>>()?;
            let mut envs = BTreeMap::new();
            for kv in &env {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Error::invalid_argument(format!("invalid --env {kv:?}: expected KEY=VALUE"))
                })?;
                envs.insert(k.to_owned(), v.to_owned());
            }
            let sb = client
                .create_sandbox(&template, &mounts, name.as_deref(), &envs)
                .await?;
            print_record(&sb, sb["id"].as_str().unwrap_or_default().to_owned())?;
        }
        SandboxCommand::List => {
            let list = client.list_sandboxes().await?;
            if g.json {
                output::json(&serde_json::json!({ "sandboxes": list }))?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s["id"].as_str().unwrap_or_default().to_owned(),
                            s["name"].as_str().unwrap_or("-").to_owned(),
                            s["template"].as_str().unwrap_or_default().to_owned(),
                            s["state"].as_str().unwrap_or_default().to_owned(),
                            s["attachments"].as_array().map_or(0, Vec::len).to_string(),
                            output::time_str(s["created_at"].as_str().unwrap_or_default()),
                        ]
                    })
                    .collect();
                output::table(
                    Some(&["ID", "NAME", "TEMPLATE", "STATE", "ATTACHMENTS", "CREATED"]),
                    &rows,
                )?;
            }
        }
        SandboxCommand::Get { id } => {
            let sb = client.get_sandbox(&id).await?;
            output::json(&sb)?;
        }
        SandboxCommand::Exec { id, cmd } => {
            let out = client.exec(&id, &cmd).await?;
            if g.json {
                output::json(&serde_json::json!({
                    "stdout": out.stdout, "stderr": out.stderr, "exit_code": out.exit_code,
                }))?;
            } else {
                output::write_stdout(out.stdout.as_bytes())?;
                eprint!("{}", out.stderr);
            }
            return Ok(ExitCode::from((out.exit_code & 0xff) as u8));
        }
        SandboxCommand::Attach { id, volume } => {
            let a = client.attach(&id, &parse_mount(&volume)?).await?;
            let msg = format!(
                "attached {} at {} ({})",
                a["volume"].as_str().unwrap_or_default(),
                a["mount_path"].as_str().unwrap_or_default(),
                a["state"].as_str().unwrap_or_default()
            );
            print_record(&a, msg)?;
        }
        SandboxCommand::Detach { id, mount } => {
            let a = client.detach(&id, &mount).await?;
            print_record(&a, format!("detached {mount}"))?;
        }
        SandboxCommand::Attachments { id } => {
            let list = client.attachments(&id).await?;
            if g.json {
                output::json(&serde_json::json!({ "attachments": list }))?;
            } else {
                output::table(Some(ATT_HEADER), &attachment_rows(&list))?;
            }
        }
        SandboxCommand::Pause { id } => lifecycle(&client, g, &id, "pause").await?,
        SandboxCommand::Resume { id } => lifecycle(&client, g, &id, "resume").await?,
        SandboxCommand::Hibernate { id } => lifecycle(&client, g, &id, "hibernate").await?,
        SandboxCommand::Fork { id } => {
            let sb = client.sandbox_lifecycle(&id, "fork").await?;
            print_record(&sb, sb["id"].as_str().unwrap_or_default().to_owned())?;
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
        output::line(format_args!(
            "sandbox {id}: {}",
            sb["state"].as_str().unwrap_or_default()
        ))
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
