//! Where the client verbs find their server and key, and `nullspace login`.
//!
//! Order: `--url`/`--key`, then `NULLSPACE_API_URL`/`NULLSPACE_API_KEY` (clap reads both), then
//! the profile saved by `nullspace login`, then the local server's `client.json`, then the
//! default URL. A key read from a file is only sent to the URL saved beside it, so pointing
//! `--url` at another server never leaks the saved key to it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use nullspace_client::{Client, DEFAULT_URL};
use nullspace_core::Error;
use serde::{Deserialize, Serialize};

use crate::{output, Global};

/// A saved server and key: `{"url": ..., "key": ...}` (also the shape of `client.json`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Option<PathBuf> {
    env_dir("HOME")
}

/// `$XDG_CONFIG_HOME/nullspace/config.json`, else `~/.config/nullspace/config.json`.
pub fn profile_path() -> Option<PathBuf> {
    let base = env_dir("XDG_CONFIG_HOME").or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("nullspace").join("config.json"))
}

/// The local server's `client.json`: in `$NULLSPACE_DATA_DIR`, else `$XDG_DATA_HOME/nullspace`,
/// else `~/.local/share/nullspace` (the server's own default data dir).
pub fn bootstrap_path() -> Option<PathBuf> {
    let dir = env_dir("NULLSPACE_DATA_DIR")
        .or_else(|| env_dir("XDG_DATA_HOME").map(|d| d.join("nullspace")))
        .or_else(|| home().map(|h| h.join(".local/share/nullspace")))?;
    Some(dir.join("client.json"))
}

/// Reads a profile; a missing file is `None`, a damaged one an error naming it.
fn read_profile(path: &Path) -> anyhow::Result<Option<Profile>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let p = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid_argument(format!("invalid profile {}: {e}", path.display()))
            })?;
            Ok(Some(p))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// The server URL and key to use.
#[derive(Debug)]
pub struct Resolved {
    pub url: String,
    pub key: Option<String>,
}

/// Resolves the URL and key (see the module doc).
pub fn resolve(global: &Global) -> anyhow::Result<Resolved> {
    let mut url = global.url.clone();
    let mut key = global.key.clone();
    let mut sources = Vec::new();
    if let Some(p) = profile_path() {
        if let Some(profile) = read_profile(&p)? {
            sources.push(profile);
        }
    }
    if let Some(p) = bootstrap_path() {
        // The server's file is only a convenience: if it is unreadable (another user's
        // server), carry on without it.
        if let Ok(Some(profile)) = read_profile(&p) {
            sources.push(profile);
        }
    }
    for source in sources {
        if url.is_some() && key.is_some() {
            break;
        }
        let Some(source_url) = source.url.filter(|u| !u.trim().is_empty()) else {
            continue;
        };
        match &url {
            None => {
                url = Some(source_url);
                if key.is_none() {
                    key = source.key;
                }
            }
            Some(u) if key.is_none() && same_url(u, &source_url) => key = source.key,
            Some(_) => {}
        }
    }
    Ok(Resolved {
        url: url.unwrap_or_else(|| DEFAULT_URL.to_owned()),
        key: key.filter(|k| !k.is_empty()),
    })
}

/// A client built from the resolved configuration.
pub fn client(global: &Global) -> anyhow::Result<Client> {
    let r = resolve(global)?;
    Ok(Client::new(&r.url, r.key.unwrap_or_default())?)
}

/// Writes the profile atomically: directory 0700, file 0600.
pub fn save_profile(path: &Path, profile: &Profile) -> anyhow::Result<()> {
    let dir = path.parent().context("the profile path has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    let tmp = dir.join(".config.json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` only applies to new files: make sure a leftover temp file is private too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(serde_json::to_string_pretty(profile)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// `nullspace login`: checks the key with `GET /v1/whoami`, then saves URL and key.
pub async fn login(global: &Global) -> anyhow::Result<ExitCode> {
    let key = global.key.clone().ok_or_else(|| {
        Error::invalid_argument("login needs a key: nullspace login --url URL --key KEY")
    })?;
    let url = match &global.url {
        Some(u) => u.clone(),
        None => resolve(global)?.url,
    };
    let client = Client::new(&url, key.clone())?;
    let me = client.whoami().await?;
    let path = profile_path().ok_or_else(|| {
        Error::invalid_argument("cannot find a config directory: set HOME or XDG_CONFIG_HOME")
    })?;
    save_profile(
        &path,
        &Profile {
            url: Some(client.url().to_owned()),
            key: Some(key),
        },
    )?;
    if global.json {
        output::json(&serde_json::json!({
            "url": client.url(), "tenant": me.tenant, "tenant_id": me.tenant_id,
            "admin": me.admin, "profile": path,
        }))?;
    } else {
        let role = if me.admin { " (admin key)" } else { "" };
        output::line(format_args!(
            "logged in to {} as tenant {}{role}; saved to {}",
            client.url(),
            me.tenant,
            path.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `nullspace whoami`.
pub async fn whoami(global: &Global) -> anyhow::Result<ExitCode> {
    let client = client(global)?;
    let me = client.whoami().await?;
    if global.json {
        output::json(&me)?;
    } else {
        let role = if me.admin { " (admin key)" } else { "" };
        output::line(format_args!(
            "tenant {} at {}{role}",
            me.tenant,
            client.url()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_trailing_slash() {
        assert!(same_url("http://a:1/", "http://a:1"));
        assert!(!same_url("http://a:1", "http://a:2"));
    }
}
