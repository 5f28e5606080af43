//! `nullspace key …`: create (the secret is printed once), list (never a secret), revoke.

use std::process::ExitCode;

use nullspace_client::{CreateKey, CreateToken, KeyInfo, Role};
use nullspace_core::VolumeName;

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

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    cmd: Option<TokenCommand>,
    /// The volume whose files the token reaches
    #[arg(required = true)]
    name: Option<String>,
    /// Confine the token to this directory of the volume (it must exist); default the whole
    /// volume
    #[arg(long, value_name = "DIR")]
    path: Option<String>,
    /// The token only reads
    #[arg(long)]
    read_only: bool,
    /// Lifetime, e.g. 15m, 1h, 7d (at most 7 days); default 1h
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    expires: String,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// List the tenant's volume tokens (no secrets)
    List,
    /// Revoke a token at once
    Revoke {
        /// Token id (key_…), as `volume token list` shows it
        id: String,
    },
}

pub async fn token(args: TokenArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let client = config::client(global)?;
    match args.cmd {
        Some(TokenCommand::List) => {
            let tokens: Vec<KeyInfo> = client
                .list_keys()
                .await?
                .into_iter()
                .filter(|k| k.volume_id.is_some())
                .collect();
            print_keys(global.json, &tokens)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(TokenCommand::Revoke { id }) => Box::pin(run(KeyCommand::Revoke { id }, global)).await,
        None => {
            let name = VolumeName::parse(args.name.as_deref().unwrap_or_default())?;
            let expires_in = parse_duration(&args.expires)?.as_secs();
            let created = client
                .create_token(
                    &name,
                    &CreateToken {
                        path: args.path,
                        read_only: args.read_only,
                        expires_in,
                    },
                )
                .await?;
            if global.json {
                output::json(&created)?;
            } else {
                output::line(&created.key)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
            print_keys(global.json, &keys)?;
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

/// Keys (or tokens) as JSON or as a table: the same columns for both.
fn print_keys(json: bool, keys: &[KeyInfo]) -> anyhow::Result<()> {
    if json {
        return output::json(&serde_json::json!({ "keys": keys }));
    }
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
    )
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
