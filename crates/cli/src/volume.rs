//! `nullspace volume …`: volume lifecycle and the direct file API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use nullspace_client::{
    BatchUpload, EditCount, EditOptions, Fields, FileContent, ListOptions, ReplaceOptions,
    SearchOptions, WatchOptions, WriteOptions,
};
use nullspace_core::{
    format_size, parse_size, Error, FileStat, FileType, LabelSelector, Labels, VolumeField,
    VolumeName, VolumePath,
};
use serde_json::Value;

use crate::output::{self, stdout_error};
use crate::{config, content, transfer, Global};

#[derive(clap::Subcommand)]
pub enum VolumeCommand {
    /// Make a token for one volume's files (printed once); or `token list`, `token revoke ID`
    Token(crate::keys::TokenArgs),
    /// List the volume's pending resumable uploads (each reserves its length against the
    /// cap); or `uploads cancel NAME ID`
    Uploads(UploadsArgs),
    /// Create a volume
    Create {
        /// 1-63 of a-z 0-9 . _ -, starting with a letter or digit
        name: String,
        /// Label to attach (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Succeed (and change nothing) when the volume already exists
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List volumes
    List {
        /// Only volumes with this label (repeatable: all must match)
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Comma-separated fields to show: id, name, created_at, updated_at, cap_bytes,
        /// used_bytes, file_count, labels, state, attachments, pending_upload_bytes
        #[arg(long, value_name = "A,B")]
        fields: Option<String>,
    },
    /// Show one volume
    Get {
        /// Volume name
        name: String,
        /// Comma-separated fields to show (see `list`)
        #[arg(long, value_name = "A,B")]
        fields: Option<String>,
    },
    /// Delete a volume and all its files
    Delete {
        /// Volume name
        name: String,
        /// Release live sandbox attachments first instead of failing
        #[arg(long)]
        force: bool,
        /// Succeed when the volume does not exist
        #[arg(long)]
        if_exists: bool,
    },
    /// Rename a volume (refused while a sandbox has it attached; its files, id, keys and
    /// tokens stay; signed URLs for the old name stop working)
    Rename {
        /// Current volume name
        old: String,
        /// New volume name
        new: String,
    },
    /// Print a file's content (or a byte range) to stdout, streamed
    Read {
        /// Volume name
        name: String,
        /// Absolute path inside the volume
        path: String,
        /// First byte to read
        #[arg(long, value_name = "N")]
        offset: Option<String>,
        /// Number of bytes to read
        #[arg(long, value_name = "N")]
        length: Option<String>,
    },
    /// Write a file from stdin (or --from FILE), atomically; prints nothing unless --json
    Write {
        /// Volume name
        name: String,
        /// Absolute path inside the volume; missing parent directories are created
        path: String,
        /// Local file to upload instead of stdin (`-` is stdin)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Fail if the file already exists
        #[arg(long)]
        no_overwrite: bool,
        /// Write only if the file's current etag is ETAG
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Upload a local directory tree in one all-or-nothing batch
    WriteBatch {
        /// Volume name
        name: String,
        /// Local directory whose contents are uploaded
        local_dir: PathBuf,
        /// Directory inside the volume to put them in
        #[arg(default_value = "/")]
        remote_dir: String,
    },
    /// Upload a file (resumable), a directory tree, or stdin (`-`, not resumable)
    Upload(transfer::UploadArgs),
    /// Download a file, a directory (unpacked, or as an archive with --archive), or to stdout
    Download(transfer::DownloadArgs),
    /// Print a signed URL that downloads (GET) or uploads (PUT) one path without an API key
    Url(transfer::UrlArgs),
    /// Make a directory
    Mkdir {
        /// Volume name
        name: String,
        /// Path inside the volume
        path: String,
        /// Create missing parents, and succeed if the directory exists
        #[arg(short = 'p', long)]
        parents: bool,
    },
    /// Move or rename a file or directory
    Mv {
        /// Volume name
        name: String,
        /// Source path inside the volume
        src: String,
        /// Destination path inside the volume
        dst: String,
        /// Replace an existing destination
        #[arg(long)]
        force: bool,
    },
    /// Copy a file (or, with -r, a directory)
    Cp {
        /// Volume name
        name: String,
        /// Source path inside the volume
        src: String,
        /// Destination path inside the volume
        dst: String,
        /// Copy directories recursively
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Replace an existing destination
        #[arg(long)]
        force: bool,
    },
    /// Remove a file (or, with -r, a directory and its contents)
    Rm {
        /// Volume name
        name: String,
        /// Path inside the volume
        path: String,
        /// Remove directories and their contents
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// List a directory, one path per line
    Ls {
        /// Volume name
        name: String,
        /// Directory (or file) inside the volume
        #[arg(default_value = "/")]
        path: String,
        /// List subdirectories too
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Only entries matching this shell glob (without `/`: the name; with: the relative path)
        #[arg(long, value_name = "GLOB")]
        glob: Option<String>,
        /// Show type, size and modification time
        #[arg(short = 'l', long)]
        long: bool,
    },
    /// Show a file's metadata
    Stat {
        /// Volume name
        name: String,
        /// Path inside the volume
        path: String,
    },
    /// Print whether a path exists (exit 0 if it does, 1 if not)
    Exists {
        /// Volume name
        name: String,
        /// Path inside the volume
        path: String,
    },
    /// Search file contents; prints `path:line:column: text` per matching line as found
    /// (exit 1 when nothing matches)
    Search {
        /// Volume name
        name: String,
        /// Rust regex syntax (a literal string with --fixed)
        pattern: String,
        /// Directory (or file) to search
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        matching: Matching,
        /// Stop after N matching lines
        #[arg(long, value_name = "N")]
        max: Option<u64>,
    },
    /// Replace matches in every selected file, each rewritten atomically; prints a line per
    /// file and a total
    Replace {
        /// Volume name
        name: String,
        /// Rust regex syntax (a literal string with --fixed)
        pattern: String,
        /// Replacement; with a regex, `$1` / `${name}` insert groups and `$$` is a `$`
        #[arg(allow_hyphen_values = true)]
        replacement: String,
        /// Directory (or file) to change
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        matching: Matching,
        /// Report what would be replaced, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace exactly N occurrences (default 1) of a literal string in one file; any other
    /// number found is a conflict and nothing changes
    Edit {
        /// Volume name
        name: String,
        /// Path of the file inside the volume
        path: String,
        /// Text to find (literal, may span lines)
        #[arg(long, value_name = "S", allow_hyphen_values = true)]
        old: String,
        /// Text to put in its place
        #[arg(long, value_name = "S", allow_hyphen_values = true)]
        new: String,
        /// Number of occurrences that must be found [default: 1]
        #[arg(long, value_name = "N", conflicts_with = "all")]
        count: Option<u64>,
        /// Replace every occurrence (at least one must be found)
        #[arg(long)]
        all: bool,
        /// Edit only if the file's current etag is ETAG
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Print change events as JSON lines until interrupted, reconnecting by itself
    Watch {
        /// Volume name
        name: String,
        /// Directory (or file) to watch
        #[arg(default_value = "/")]
        path: String,
        /// Only the path itself and its direct entries, not deeper
        #[arg(long)]
        no_recursive: bool,
        /// Start after this event id: retained events after it are printed first
        #[arg(long, value_name = "ID")]
        since: Option<u64>,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct UploadsArgs {
    #[command(subcommand)]
    cmd: Option<UploadsCommand>,
    /// Volume name
    #[arg(required = true)]
    name: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum UploadsCommand {
    /// Cancel a pending upload: its data goes and its reserved bytes are free again
    Cancel {
        /// Volume name
        name: String,
        /// Upload id, as `volume uploads NAME` shows it
        id: String,
    },
}

async fn uploads(args: UploadsArgs, g: &Global) -> anyhow::Result<()> {
    let client = config::client(g)?;
    match args.cmd {
        Some(UploadsCommand::Cancel { name, id }) => {
            let name = VolumeName::parse(&name)?;
            client.cancel_upload(&name, &id).await?;
            if !g.json {
                output::line(format_args!("cancelled upload {id}"))?;
            }
        }
        None => {
            let name = VolumeName::parse(args.name.as_deref().unwrap_or_default())?;
            let list = client.list_uploads(&name).await?;
            if g.json {
                output::json(&serde_json::json!({ "uploads": list }))?;
            } else {
                let body: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            u.path.clone(),
                            format_size(u.offset),
                            format_size(u.length),
                            output::time_str(&u.created_at.to_rfc3339()),
                            output::time_str(&u.expires_at.to_rfc3339()),
                        ]
                    })
                    .collect();
                let head = ["ID", "PATH", "OFFSET", "LENGTH", "CREATED", "EXPIRES"];
                output::table(Some(&head), &body)?;
            }
        }
    }
    Ok(())
}

/// Columns of `volume list` when no `--fields` are given.
const LIST_COLUMNS: [VolumeField; 7] = [
    VolumeField::Name,
    VolumeField::UsedBytes,
    VolumeField::CapBytes,
    VolumeField::FileCount,
    VolumeField::Attachments,
    VolumeField::Labels,
    VolumeField::CreatedAt,
];

fn header(f: VolumeField) -> &'static str {
    match f {
        VolumeField::Id => "ID",
        VolumeField::Name => "NAME",
        VolumeField::CreatedAt => "CREATED",
        VolumeField::UpdatedAt => "UPDATED",
        VolumeField::CapBytes => "CAP",
        VolumeField::UsedBytes => "USED",
        VolumeField::FileCount => "FILES",
        VolumeField::Labels => "LABELS",
        VolumeField::State => "STATE",
        VolumeField::Attachments => "ATTACHMENTS",
        VolumeField::PendingUploadBytes => "PENDING",
    }
}

/// One field of a volume as a table cell: sizes and times for humans.
fn cell(f: VolumeField, v: Option<&Value>) -> String {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return "-".into();
    };
    match (f, v) {
        (
            VolumeField::CapBytes | VolumeField::UsedBytes | VolumeField::PendingUploadBytes,
            Value::Number(n),
        ) => n.as_u64().map(format_size).unwrap_or_else(|| n.to_string()),
        (VolumeField::CreatedAt | VolumeField::UpdatedAt, Value::String(s)) => output::time_str(s),
        (VolumeField::Labels, Value::Object(m)) if m.is_empty() => "-".into(),
        (VolumeField::Labels, Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn parse_fields(fields: Option<&str>) -> Result<Option<Vec<VolumeField>>, Error> {
    fields.map(VolumeField::parse_list).transpose()
}

fn parse_selectors(labels: &[String]) -> Result<Vec<LabelSelector>, Error> {
    labels.iter().map(|l| LabelSelector::parse(l)).collect()
}

/// Which files and how PATTERN matches, for `search` and `replace`.
#[derive(Debug, clap::Args)]
pub struct Matching {
    /// Only files matching this shell glob (without `/`: the name; with: the relative path)
    #[arg(long, value_name = "GLOB")]
    glob: Option<String>,
    /// Treat PATTERN as a literal string (for replace, REPLACEMENT too)
    #[arg(short = 'F', long)]
    fixed: bool,
    /// Match case-insensitively
    #[arg(short = 'i', long)]
    ignore_case: bool,
}

/// Reports a directory upload: a warning per skipped entry, then the result (`VERB N files (SIZE)
/// to VOLUME:DIR`, or JSON).
pub(crate) fn print_batch(
    g: &Global,
    verb: &str,
    up: &BatchUpload,
    name: &VolumeName,
    remote: &VolumePath,
) -> anyhow::Result<()> {
    for s in &up.skipped {
        output::eprint_line(&format!(
            "warning: skipped {} (only regular files and directories are uploaded)",
            s.display()
        ));
    }
    if g.json {
        return output::json(&up.result);
    }
    let files = if up.result.files == 1 {
        "file"
    } else {
        "files"
    };
    output::line(format_args!(
        "{verb} {} {files} ({}) to {name}:{remote}",
        up.result.files,
        format_size(up.result.bytes)
    ))
}

pub(crate) fn parse_path(what: &str, p: &str) -> Result<VolumePath, Error> {
    VolumePath::parse(p).map_err(|e| Error::invalid_argument(format!("{what}: {}", e.message)))
}

fn parse_count(flag: &str, s: Option<&str>) -> Result<Option<u64>, Error> {
    s.map(|s| {
        parse_size(s).map_err(|_| {
            Error::invalid_argument(format!(
                "invalid {flag} {s:?}: expected a byte count such as 1024 or 4KiB"
            ))
        })
    })
    .transpose()
}

fn to_fields(v: &impl serde::Serialize) -> anyhow::Result<Fields> {
    match serde_json::to_value(v)? {
        Value::Object(m) => Ok(m),
        _ => anyhow::bail!("expected a JSON object"),
    }
}

pub async fn run(cmd: VolumeCommand, g: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCommand::Token(args) => return crate::keys::token(args, g).await,
        VolumeCommand::Uploads(args) => uploads(args, g).await?,
        VolumeCommand::Create {
            name,
            labels,
            if_not_exists,
        } => {
            let name = VolumeName::parse(&name)?;
            let mut map = Labels::new();
            for sel in parse_selectors(&labels)? {
                map.insert(sel.key, sel.value);
            }
            let (vol, created) = config::client(g)?
                .create_volume(&name, &map, if_not_exists)
                .await?;
            if g.json {
                output::json(&vol)?;
            } else if created {
                output::line(format_args!("created volume {}", vol.name))?;
            } else {
                output::line(format_args!("volume {} already exists", vol.name))?;
            }
        }
        VolumeCommand::List { labels, fields } => {
            let selectors = parse_selectors(&labels)?;
            let fields = parse_fields(fields.as_deref())?;
            let client = config::client(g)?;
            let rows: Vec<Fields> = match &fields {
                Some(f) => client.list_volumes_fields(&selectors, f).await?,
                None => client
                    .list_volumes(&selectors)
                    .await?
                    .iter()
                    .map(to_fields)
                    .collect::<Result<_, _>>()?,
            };
            if g.json {
                output::json(&serde_json::json!({ "volumes": rows }))?;
            } else {
                let cols = fields.unwrap_or_else(|| LIST_COLUMNS.to_vec());
                let head: Vec<&str> = cols.iter().map(|f| header(*f)).collect();
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| cols.iter().map(|f| cell(*f, r.get(f.as_str()))).collect())
                    .collect();
                output::table(Some(&head), &body)?;
            }
        }
        VolumeCommand::Get { name, fields } => {
            let name = VolumeName::parse(&name)?;
            let fields = parse_fields(fields.as_deref())?;
            let client = config::client(g)?;
            let obj = match &fields {
                Some(f) => client.get_volume_fields(&name, f).await?,
                None => to_fields(&client.get_volume(&name).await?)?,
            };
            if g.json {
                output::json(&obj)?;
            } else {
                let cols = fields.unwrap_or_else(|| VolumeField::ALL.to_vec());
                let body: Vec<Vec<String>> = cols
                    .iter()
                    .map(|f| vec![f.as_str().to_owned(), cell(*f, obj.get(f.as_str()))])
                    .collect();
                output::table(None, &body)?;
            }
        }
        VolumeCommand::Delete {
            name,
            force,
            if_exists,
        } => {
            let name = VolumeName::parse(&name)?;
            config::client(g)?
                .delete_volume(&name, force, if_exists)
                .await?;
            if g.json {
                output::json(&serde_json::json!({ "name": name.as_str(), "deleted": true }))?;
            } else {
                output::line(format_args!("deleted volume {name}"))?;
            }
        }
        VolumeCommand::Rename { old, new } => {
            let (old, new) = (VolumeName::parse(&old)?, VolumeName::parse(&new)?);
            let v = config::client(g)?.rename_volume(&old, &new).await?;
            if g.json {
                output::json(&v)?;
            } else {
                output::line(format_args!("renamed volume {old} to {}", v.name))?;
            }
        }
        VolumeCommand::Read {
            name,
            path,
            offset,
            length,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let offset = parse_count("--offset", offset.as_deref())?;
            let length = parse_count("--length", length.as_deref())?;
            let content = config::client(g)?
                .read_file(&name, &path, offset, length)
                .await?;
            stream_to_stdout(content).await?;
        }
        VolumeCommand::Write {
            name,
            path,
            from,
            no_overwrite,
            if_match,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let opts = WriteOptions {
                overwrite: !no_overwrite,
                if_match,
            };
            let client = config::client(g)?;
            let stat = match from.filter(|f| f.as_os_str() != "-") {
                None => {
                    client
                        .write_reader(&name, &path, tokio::io::stdin(), &opts)
                        .await?
                }
                Some(file) => {
                    let f = tokio::fs::File::open(&file)
                        .await
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    let meta = f
                        .metadata()
                        .await
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    if meta.is_dir() {
                        return Err(Error::invalid_argument(format!(
                            "{} is a directory: use `nullspace volume write-batch` to upload a directory",
                            file.display()
                        ))
                        .into());
                    }
                    if meta.is_file() {
                        // Its size is known: read on a thread of its own, sent with its length.
                        client
                            .write_local_file(&name, &path, f.into_std().await, &opts)
                            .await?
                    } else {
                        // A pipe or a device: streamed to its end.
                        client.write_reader(&name, &path, f, &opts).await?
                    }
                }
            };
            // Silent on success so that pipelines stay clean.
            if g.json {
                output::json(&stat)?;
            }
        }
        VolumeCommand::WriteBatch {
            name,
            local_dir,
            remote_dir,
        } => {
            let name = VolumeName::parse(&name)?;
            let remote = parse_path("remote dir", &remote_dir)?;
            let up = config::client(g)?
                .write_batch_dir(&name, &local_dir, &remote)
                .await?;
            print_batch(g, "wrote", &up, &name, &remote)?;
        }
        VolumeCommand::Upload(a) => return transfer::upload(a, g).await,
        VolumeCommand::Download(a) => return transfer::download(a, g).await,
        VolumeCommand::Url(a) => return transfer::url(a, g).await,
        VolumeCommand::Mkdir {
            name,
            path,
            parents,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let stat = config::client(g)?.mkdir(&name, &path, parents).await?;
            done(g, &stat, format_args!("created directory {}", stat.path))?;
        }
        VolumeCommand::Mv {
            name,
            src,
            dst,
            force,
        } => {
            let name = VolumeName::parse(&name)?;
            let (src, dst) = (
                parse_path("source", &src)?,
                parse_path("destination", &dst)?,
            );
            let stat = config::client(g)?.rename(&name, &src, &dst, force).await?;
            done(g, &stat, format_args!("moved {src} to {}", stat.path))?;
        }
        VolumeCommand::Cp {
            name,
            src,
            dst,
            recursive,
            force,
        } => {
            let name = VolumeName::parse(&name)?;
            let (src, dst) = (
                parse_path("source", &src)?,
                parse_path("destination", &dst)?,
            );
            let stat = config::client(g)?
                .copy(&name, &src, &dst, force, recursive)
                .await?;
            done(g, &stat, format_args!("copied {src} to {}", stat.path))?;
        }
        VolumeCommand::Rm {
            name,
            path,
            recursive,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            config::client(g)?.remove(&name, &path, recursive).await?;
            if g.json {
                output::json(&serde_json::json!({ "path": path.as_str(), "removed": true }))?;
            } else if path.is_root() {
                output::line(format_args!("emptied volume {name}"))?;
            } else {
                output::line(format_args!("removed {path}"))?;
            }
        }
        VolumeCommand::Ls {
            name,
            path,
            recursive,
            glob,
            long,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            // Large pages: each page costs the server one sorted read of the directories on
            // the cursor's path, so fewer pages make huge directories fast.
            let opts = ListOptions {
                recursive,
                glob,
                page_size: Some(LS_PAGE),
            };
            let client = config::client(g)?;
            if long || g.json {
                ls(g, long, client.list_stream(&name, &path, &opts)).await?;
            } else {
                // Plain paths need no metadata: the server reads only the directories.
                let paths = client.list_paths_stream(&name, &path, &opts);
                ls_paths(paths).await?;
            }
        }
        VolumeCommand::Stat { name, path } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let st = config::client(g)?.stat(&name, &path).await?;
            if g.json {
                output::json(&st)?;
            } else {
                let size = if st.size >= 1024 {
                    format!("{} ({} bytes)", format_size(st.size), st.size)
                } else {
                    format_size(st.size)
                };
                let rows = [
                    ("path", st.path.clone()),
                    ("type", file_type(st.file_type).to_owned()),
                    ("size", size),
                    ("mode", format!("{:04o}", st.mode)),
                    ("mtime", output::time(&st.mtime)),
                    ("etag", st.etag.clone()),
                ];
                let body: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|(k, v)| vec![k.to_owned(), v])
                    .collect();
                output::table(None, &body)?;
            }
        }
        VolumeCommand::Exists { name, path } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let exists = config::client(g)?.exists(&name, &path).await?;
            if g.json {
                output::json(&serde_json::json!({ "exists": exists }))?;
            } else {
                output::line(exists)?;
            }
            return Ok(if exists {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        VolumeCommand::Search {
            name,
            pattern,
            path,
            matching,
            max,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let opts = SearchOptions {
                pattern,
                regex: !matching.fixed,
                ignore_case: matching.ignore_case,
                glob: matching.glob,
                max_results: max,
            };
            return content::search(g, &name, &path, &opts).await;
        }
        VolumeCommand::Replace {
            name,
            pattern,
            replacement,
            path,
            matching,
            dry_run,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let opts = ReplaceOptions {
                pattern,
                replacement,
                regex: !matching.fixed,
                ignore_case: matching.ignore_case,
                glob: matching.glob,
                dry_run,
            };
            content::replace(g, &name, &path, &opts).await?;
        }
        VolumeCommand::Edit {
            name,
            path,
            old,
            new,
            count,
            all,
            if_match,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let opts = EditOptions {
                count: if all {
                    EditCount::All
                } else {
                    EditCount::Exactly(count.unwrap_or(1))
                },
                if_match,
            };
            let stat = config::client(g)?
                .edit(&name, &path, &old, &new, &opts)
                .await?;
            done(g, &stat, format_args!("edited {}", stat.path))?;
        }
        VolumeCommand::Watch {
            name,
            path,
            no_recursive,
            since,
        } => {
            let name = VolumeName::parse(&name)?;
            let path = parse_path("path", &path)?;
            let opts = WatchOptions {
                recursive: !no_recursive,
                last_event_id: since,
            };
            content::watch(g, &name, &path, &opts).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Confirms a change: the entry's stat with `--json`, a short message otherwise.
fn done(g: &Global, stat: &FileStat, msg: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    if g.json {
        output::json(stat)
    } else {
        output::line(msg)
    }
}

fn file_type(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::Device => "device",
    }
}

/// Entries per listing request made by `ls`.
const LS_PAGE: usize = 100_000;

/// Prints one path per line as the listing arrives.
async fn ls_paths(
    entries: impl futures::Stream<Item = nullspace_core::Result<nullspace_client::PathEntry>>,
) -> anyhow::Result<()> {
    const FLUSH_AT: usize = 64 * 1024;
    let mut entries = std::pin::pin!(entries);
    let mut buf = String::new();
    while let Some(e) = entries.next().await {
        buf.push_str(&e?.path);
        buf.push('\n');
        if buf.len() >= FLUSH_AT {
            output::write_stdout(buf.as_bytes())?;
            buf.clear();
        }
    }
    output::write_stdout(buf.as_bytes())?;
    Ok(())
}

/// Prints a listing as it arrives page by page (`-l` aligns columns, so it waits for all).
async fn ls(
    g: &Global,
    long: bool,
    entries: impl futures::Stream<Item = nullspace_core::Result<FileStat>>,
) -> anyhow::Result<()> {
    const FLUSH_AT: usize = 64 * 1024;
    let mut entries = std::pin::pin!(entries);
    if long && !g.json {
        let mut rows = Vec::new();
        while let Some(st) = entries.next().await {
            let st = st?;
            let size = if st.file_type == FileType::Dir {
                "-".to_owned()
            } else {
                format_size(st.size)
            };
            rows.push(vec![
                file_type(st.file_type).to_owned(),
                size,
                output::time(&st.mtime),
                st.path,
            ]);
        }
        return output::table(None, &rows);
    }
    // JSON is one `{"entries": [...]}` document (the convention of every list, see
    // docs/cli.md), written incrementally so huge listings need no memory.
    let mut buf = String::new();
    let mut first = true;
    if g.json {
        buf.push_str("{\"entries\": [");
    }
    while let Some(st) = entries.next().await {
        let st = st?;
        if g.json {
            buf.push_str(if first { "\n  " } else { ",\n  " });
            buf.push_str(&serde_json::to_string(&st)?);
        } else {
            buf.push_str(&st.path);
            buf.push('\n');
        }
        first = false;
        if buf.len() >= FLUSH_AT {
            output::write_stdout(buf.as_bytes())?;
            buf.clear();
        }
    }
    if g.json {
        buf.push_str(if first { "]}\n" } else { "\n]}\n" });
    }
    output::write_stdout(buf.as_bytes())
}

/// Chunks of a file on their way to stdout, at most (each as the network delivered it).
const STDOUT_QUEUE: usize = 16;

/// Writes a file's content to stdout from a thread of its own, straight to the descriptor:
/// no hop to the blocking pool and no copy into a buffer per chunk, and what has arrived
/// meanwhile goes out in one `writev`. The network and the disk work at the same time.
async fn stream_to_stdout(mut content: FileContent) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(stdout_error)?;
    let mut out = std::fs::File::from(fd);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(STDOUT_QUEUE);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut batch = Vec::with_capacity(STDOUT_QUEUE);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            write_all_vectored(&mut out, &batch)?;
            batch.clear();
        }
        Ok(())
    });
    let mut failed = None;
    while let Some(chunk) = content.next().await {
        match chunk {
            // A send fails only when the writer stopped: its error is the answer.
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| anyhow::anyhow!("the stdout writer failed: {e}"))?
        .map_err(|_| anyhow::anyhow!("the stdout writer panicked"))?;
    written.map_err(stdout_error)?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// `write_all` over several buffers with `writev`, resumed after partial writes.
pub(crate) fn write_all_vectored(
    out: &mut impl std::io::Write,
    bufs: &[bytes::Bytes],
) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut left = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `step` bytes per call, as a pipe or a slow disk may.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[std::io::IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_resume_after_partial_writes_and_interruptions() {
        let bufs: Vec<bytes::Bytes> = [&b""[..], b"abc", b"", b"defghij", b"k", b""]
            .iter()
            .map(|b| bytes::Bytes::copy_from_slice(b))
            .collect();
        for step in [1, 2, 4, 100] {
            let mut t = Trickle {
                out: Vec::new(),
                step,
                calls: 0,
            };
            write_all_vectored(&mut t, &bufs).unwrap();
            assert_eq!(t.out, b"abcdefghijk", "step {step}");
        }
        let mut t = Trickle {
            out: Vec::new(),
            step: 1,
            calls: 0,
        };
        write_all_vectored(&mut t, &[]).unwrap();
        assert_eq!(t.calls, 0, "nothing to write: no call");
    }
}
