//! `nullspace admin …`: operator verbs (admin keys only).

use std::process::ExitCode;

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
    }
    Ok(ExitCode::SUCCESS)
}
