//! `nullspace admin …`: operator verbs (admin keys only).

use std::process::ExitCode;

use nullspace_core::wire::{SetTenantLimits, TenantLimits};
use nullspace_core::{format_size, parse_size, TenantName};

use crate::{config, output, Global};

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Manage tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first API key (shown only once)
    Create {
        /// Tenant name: 1-63 of a-z 0-9 . _ -, starting with a letter or digit
        name: String,
    },
    /// Set the cap that the tenant's new volumes get (e.g. 10GiB, 500MB, 1048576)
    SetVolumeCap {
        /// Tenant name
        tenant: String,
        /// Byte count, or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB
        size: String,
    },
    /// Set some of the tenant's resource limits (the others stay); prints all of them
    SetLimits {
        /// Tenant name
        tenant: String,
        /// Most sandboxes (any state) at once
        #[arg(long, value_name = "N")]
        max_sandboxes: Option<u64>,
        /// Most volumes
        #[arg(long, value_name = "N")]
        max_volumes: Option<u64>,
        /// Largest CPU quota of one sandbox, in cores
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        max_cpu: Option<String>,
        /// Largest memory limit of one sandbox
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        max_sandbox_memory: Option<String>,
        /// Most memory of all the tenant's sandboxes together
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        max_total_memory: Option<String>,
        /// Most writable-layer disk of all the tenant's sandboxes together
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        max_total_disk: Option<String>,
        /// Most live keys and volume tokens together
        #[arg(long, value_name = "N")]
        max_keys: Option<u64>,
    },
    /// Show the tenant's resource limits in force and what it holds
    GetLimits {
        /// Tenant name
        tenant: String,
    },
}

pub async fn run(cmd: AdminCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let AdminCommand::Tenant(cmd) = cmd;
    match cmd {
        TenantCommand::Create { name } => {
            let name = TenantName::parse(&name)?;
            let created = config::client(global)?.create_tenant(&name).await?;
            if global.json {
                output::json(&created)?;
            } else {
                output::line(&created.key)?;
            }
        }
        TenantCommand::SetVolumeCap { tenant, size } => {
            let tenant = TenantName::parse(&tenant)?;
            let cap = parse_size(&size)?;
            let t = config::client(global)?.set_volume_cap(&tenant, cap).await?;
            if global.json {
                output::json(&t)?;
            } else {
                output::line(format_args!(
                    "new volumes of tenant {} get a cap of {} ({cap} bytes)",
                    t.name,
                    format_size(cap)
                ))?;
            }
        }
        TenantCommand::SetLimits {
            tenant,
            max_sandboxes,
            max_volumes,
            max_cpu,
            max_sandbox_memory,
            max_total_memory,
            max_total_disk,
            max_keys,
        } => {
            let tenant = TenantName::parse(&tenant)?;
            let text = |v: Option<String>| v.map(serde_json::Value::String);
            let req = SetTenantLimits {
                max_sandboxes,
                max_volumes,
                max_cpu: text(max_cpu),
                max_sandbox_memory: text(max_sandbox_memory),
                max_total_memory: text(max_total_memory),
                max_total_disk: text(max_total_disk),
                max_keys,
            };
            let l = config::client(global)?
                .set_tenant_limits(&tenant, &req)
                .await?;
            print_limits(global, &l)?;
        }
        TenantCommand::GetLimits { tenant } => {
            let tenant = TenantName::parse(&tenant)?;
            let l = config::client(global)?.tenant_limits(&tenant).await?;
            print_limits(global, &l)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One `LIMIT VALUE USED SOURCE` row per limit, or the JSON.
fn print_limits(global: &Global, l: &TenantLimits) -> anyhow::Result<()> {
    if global.json {
        return output::json(l);
    }
    let source = |name: &str| {
        if l.custom.iter().any(|c| c == name) {
            "tenant"
        } else {
            "default"
        }
    };
    let u = &l.usage;
    let rows: Vec<Vec<String>> = [
        (
            "max_sandboxes",
            l.max_sandboxes.to_string(),
            u.sandboxes.to_string(),
        ),
        (
            "max_volumes",
            l.max_volumes.to_string(),
            u.volumes.to_string(),
        ),
        ("max_cpu", l.max_cpu.to_string(), "-".to_owned()),
        (
            "max_sandbox_memory",
            format_size(l.max_sandbox_memory),
            "-".to_owned(),
        ),
        (
            "max_total_memory",
            format_size(l.max_total_memory),
            format_size(u.memory_bytes),
        ),
        (
            "max_total_disk",
            format_size(l.max_total_disk),
            format_size(u.disk_bytes),
        ),
        ("max_keys", l.max_keys.to_string(), u.keys.to_string()),
    ]
    .into_iter()
    .map(|(n, v, used)| vec![n.to_owned(), v, used, source(n).to_owned()])
    .collect();
    output::table(Some(&["LIMIT", "VALUE", "USED", "SOURCE"]), &rows)
}
