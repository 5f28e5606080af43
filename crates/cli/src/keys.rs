//! `nullspace key …`: create (the secret is printed once), list (never a secret), revoke.

use std::process::ExitCode;

use nullspace_client::{CreateKey, KeyInfo, Role};

use crate::transfer::parse_duration;
use crate::{config, output, Global};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it (shown only this once)
    Create {
        /// A name for people (up to 100 characters)
        #[arg(long)]
        name: Option<String>,
        /// admin, member or read-only (default member; a key makes keys of its role or lower)
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// Lifetime, e.g. 30d, 12h, 90m (at most 10 years); default: until revoked
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Make the key in this tenant (admin keys of the default tenant only)
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
    },
    /// List the tenant's keys: id, name, role, prefix, created, last used, expiry (no secrets)
    List,
    /// Revoke a key at once (and the volume tokens it made)
    Revoke {
        /// Key id (key_…), as `key list` shows it
        id: String,
    },
}

pub async fn run(cmd: KeyCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let client = config::client(global)?;
    match cmd {
        KeyCommand::Create {
            name,
            role,
            expires,
            tenant,
        } => {
            let role = role.as_deref().map(Role::parse).transpose()?;
            let expires_in = expires
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|d| d.as_secs());
            let created = client
                .create_key(&CreateKey {
                    name,
                    role,
                    expires_in,
                    tenant,
                })
                .await?;
            if global.json {
                output::json(&created)?;
            } else {
                output::line(&created.key)?;
            }
        }
        KeyCommand::List => {
            let keys = client.list_keys().await?;
            if global.json {
                output::json(&keys)?;
            } else {
                let rows: Vec<Vec<String>> = keys.iter().map(row).collect();
                output::table(
                    Some(&[
                        "ID",
                        "NAME",
                        "ROLE",
                        "PREFIX",
                        "CREATED",
                        "LAST USED",
                        "EXPIRES",
                    ]),
                    &rows,
                )?;
            }
        }
        KeyCommand::Revoke { id } => {
            let key = client.revoke_key(&id).await?;
            if global.json {
                output::json(&key)?;
            } else {
                output::line(format_args!("revoked {}", key.id))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row(k: &KeyInfo) -> Vec<String> {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let expires = if k.revoked_at.is_some() {
        format!("revoked {}", time(k.revoked_at))
    } else {
        time(k.expires_at)
    };
    vec![
        k.id.clone(),
        k.name.clone().unwrap_or_else(|| "-".into()),
        k.role.as_str().into(),
        format!("{}…", k.prefix),
        time(Some(k.created_at)),
        time(k.last_used_at),
        expires,
    ]
}
