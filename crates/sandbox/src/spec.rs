//! What callers ask for (`SandboxSpec`, `MountSpec`, `ExecRequest`) and what they get back
//! (`SandboxInfo`, `MountStatus`, `ExecResult`), with the pure validation rules. No syscalls here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nullspace_core::VolumePath;
pub use nullspace_core::{AttachmentState, SandboxState};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SandboxError};

/// The templates this runtime can start.
pub const TEMPLATES: &[&str] = &["base"];

/// Longest accepted mount path or subpath, in bytes.
const MAX_PATH: usize = 1024;

/// A volume mount: `source` (a volume's data directory on the host) appears at `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// The volume's data directory on the host (trusted: it comes from the server, not a user).
    pub source: PathBuf,
    /// Absolute, normalised path inside the sandbox.
    pub target: String,
    /// Mount read-only (in the kernel; not undoable from inside).
    #[serde(default)]
    pub read_only: bool,
    /// Mount only this directory of the volume (created if missing; never leaves the volume).
    #[serde(default, deserialize_with = "legacy_subpath")]
    pub subpath: Option<VolumePath>,
}

impl MountSpec {
    /// A read-write mount of the whole volume.
    pub fn new(source: impl Into<PathBuf>, target: impl Into<String>) -> MountSpec {
        MountSpec {
            source: source.into(),
            target: target.into(),
            read_only: false,
            subpath: None,
        }
    }

    /// The same mount, read-only.
    pub fn read_only(mut self) -> MountSpec {
        self.read_only = true;
        self
    }

    /// The same mount, of one directory of the volume.
    pub fn subpath(mut self, subpath: VolumePath) -> MountSpec {
        self.subpath = Some(subpath);
        self
    }

    /// The names from the volume's root down to the mounted directory (none: the whole
    /// volume).
    pub fn subpath_components(&self) -> impl Iterator<Item = &str> {
        self.subpath.iter().flat_map(|p| p.components())
    }
}

/// Reads a persisted subpath: `/a/b`, or `a/b` as runtimes before the one parser stored it.
fn legacy_subpath<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<VolumePath>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let abs = if s.starts_with('/') {
        s
    } else {
        format!("/{s}")
    };
    VolumePath::parse(&abs)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(e.message))
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Sandbox id: 1–64 chars of `A-Z a-z 0-9 _ - .`, not starting with `.`.
    pub id: String,
    /// Template name (`base`).
    pub template: String,
    /// Volume mounts made before the sandbox is ready.
    pub mounts: Vec<MountSpec>,
    /// Environment of every process started in the sandbox (exec env overrides it).
    pub env: BTreeMap<String, String>,
    /// Host name inside (defaults to the id, cut to 63 bytes).
    pub hostname: Option<String>,
    /// What the sandbox may use. Records written before limits existed read as the defaults.
    #[serde(default)]
    pub limits: Limits,
    /// Which runtime runs it. Specs and records written before runtimes existed read as
    /// `namespace`.
    #[serde(default)]
    pub runtime: SandboxRuntime,
}

/// The runtime that runs a sandbox: Linux namespaces on the host kernel, or gVisor's `runsc`
/// (a user-space kernel between the sandbox and the host; hibernate keeps process memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxRuntime {
    #[default]
    Namespace,
    Gvisor,
}

impl SandboxRuntime {
    /// The name used in records, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxRuntime::Namespace => "namespace",
            SandboxRuntime::Gvisor => "gvisor",
        }
    }

    /// Parses `namespace` or `gvisor`.
    pub fn parse(s: &str) -> Option<SandboxRuntime> {
        match s {
            "namespace" => Some(SandboxRuntime::Namespace),
            "gvisor" => Some(SandboxRuntime::Gvisor),
            _ => None,
        }
    }
}

/// The resources one sandbox may use: chosen by the node (request, server defaults, tenant
/// maxima), applied by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU quota in thousandths of a core (1000 = one core).
    pub cpu_millicores: u32,
    /// Hard memory limit of all the sandbox's processes together.
    pub memory_bytes: u64,
    /// Cap of the writable layer (everything outside the volume mounts).
    pub disk_bytes: u64,
    /// Most processes (and threads) alive at once.
    pub pids: u32,
}

impl Default for Limits {
    /// One core, 1 GiB of memory, a 4 GiB writable layer, 1,024 processes.
    fn default() -> Limits {
        Limits {
            cpu_millicores: 1000,
            memory_bytes: 1 << 30,
            disk_bytes: 4 << 30,
            pids: 1024,
        }
    }
}

impl SandboxSpec {
    /// A `base` sandbox with no mounts.
    pub fn new(id: impl Into<String>) -> SandboxSpec {
        SandboxSpec {
            id: id.into(),
            template: "base".into(),
            mounts: Vec::new(),
            env: BTreeMap::new(),
            hostname: None,
            limits: Limits::default(),
            runtime: SandboxRuntime::Namespace,
        }
    }

    /// Chooses the runtime.
    pub fn runtime(mut self, runtime: SandboxRuntime) -> SandboxSpec {
        self.runtime = runtime;
        self
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: MountSpec) -> SandboxSpec {
        self.mounts.push(mount);
        self
    }
}

/// One mount and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountStatus {
    pub spec: MountSpec,
    pub state: AttachmentState,
    pub error: Option<String>,
}

/// What the runtime knows about a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: String,
    pub template: String,
    pub state: SandboxState,
    /// The runtime that runs it.
    pub runtime: SandboxRuntime,
    /// Host pid of the sandbox's init (pid 1 inside), when it runs.
    pub init_pid: Option<i32>,
    pub hostname: String,
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<MountStatus>,
    pub limits: Limits,
}

/// A command to run in a sandbox.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// Program and arguments; a program without `/` is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Extra environment (over the sandbox's own).
    pub env: BTreeMap<String, String>,
    /// Working directory inside (default `/`).
    pub cwd: Option<String>,
    /// Bytes for standard input (default: empty, like `/dev/null`).
    pub stdin: Option<Vec<u8>>,
    /// Kill the command (and its process group) after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of each of stdout and stderr (default 8 MiB).
    pub max_output: Option<usize>,
}

impl ExecRequest {
    /// Runs `argv` as is.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> ExecRequest {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Runs `command` with `/bin/sh -c`.
    pub fn shell(command: impl Into<String>) -> ExecRequest {
        ExecRequest::new(["/bin/sh".to_string(), "-c".to_string(), command.into()])
    }
}

/// What a command did. A missing program is exit code 127 (126: found but not executable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code; `128 + signal` when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Killed because the timeout passed.
    pub timed_out: bool,
    /// Some output was dropped past `max_output`.
    pub truncated: bool,
    /// The sandbox's memory limit was reached while the command ran and the kernel killed a
    /// process of the sandbox.
    pub oom_killed: bool,
}

/// An entry of a directory listed through the sandbox's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
}

/// Checks a sandbox id.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if id.is_empty() || id.len() > 64 || !ok_chars || id.starts_with('.') {
        return Err(SandboxError::invalid(
            field,
            format!("{id:?} must be 1-64 characters of A-Z a-z 0-9 _ - . not starting with '.'"),
        ));
    }
    Ok(())
}

/// Checks a mount path: absolute, normalised, not `/`, not under `/proc`, `/sys` or `/dev`.
pub fn validate_target(field: &str, target: &str) -> Result<()> {
    let bad = |reason: &str| Err(SandboxError::invalid(field, format!("{target:?} {reason}")));
    if target.len() > MAX_PATH {
        return bad("is too long");
    }
    if target.contains('\0') {
        return bad("contains NUL");
    }
    if !target.starts_with('/') {
        return bad("must be an absolute path");
    }
    if target == "/" {
        return bad("must not be / itself");
    }
    for comp in target[1..].split('/') {
        match comp {
            "" => return bad("must be normalised (no empty component or trailing /)"),
            "." | ".." => return bad("must be normalised (no . or .. component)"),
            c if c.len() > 255 => return bad("has a component longer than 255 bytes"),
            _ => {}
        }
    }
    for reserved in ["/proc", "/sys", "/dev"] {
        if target == reserved || target.starts_with(&format!("{reserved}/")) {
            return bad(&format!("must not be under {reserved}"));
        }
    }
    Ok(())
}

/// Checks environment names and values.
pub fn validate_env(field: &str, env: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(SandboxError::invalid(
                field,
                format!("bad variable name {k:?}"),
            ));
        }
        if v.contains('\0') {
            return Err(SandboxError::invalid(
                field,
                format!("value of {k:?} contains NUL"),
            ));
        }
    }
    Ok(())
}

/// Checks a whole mount list: every target, and no two mounts on one path (subpaths are
/// `VolumePath`s, checked when they were parsed).
pub fn validate_mounts(mounts: &[MountSpec]) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        validate_target(&format!("mounts[{i}].target"), &m.target)?;
        if mounts[..i].iter().any(|o| o.target == m.target) {
            return Err(SandboxError::invalid(
                format!("mounts[{i}].target"),
                format!("{:?} is used by two mounts", m.target),
            ));
        }
    }
    Ok(())
}

/// Checks a whole sandbox spec.
pub fn validate_spec(spec: &SandboxSpec) -> Result<()> {
    validate_id("id", &spec.id)?;
    if !TEMPLATES.contains(&spec.template.as_str()) {
        return Err(SandboxError::invalid(
            "template",
            format!(
                "unknown template {:?} (available: {})",
                spec.template,
                TEMPLATES.join(", ")
            ),
        ));
    }
    validate_mounts(&spec.mounts)?;
    validate_env("env", &spec.env)?;
    validate_limits(&spec.limits)?;
    if let Some(h) = &spec.hostname {
        if h.is_empty() || h.len() > 64 || h.contains(['\0', '/']) {
            return Err(SandboxError::invalid(
                "hostname",
                format!("{h:?} is not a host name"),
            ));
        }
    }
    Ok(())
}

/// The runtime's bounds of [`Limits`] (the node narrows them further by tenant): below them
/// a sandbox cannot start a shell, above them the kernel or the file system refuses.
pub const MIN_CPU_MILLICORES: u32 = 10;
pub const MAX_CPU_MILLICORES: u32 = 1_024_000;
pub const MIN_MEMORY_BYTES: u64 = 16 << 20;
pub const MIN_DISK_BYTES: u64 = 16 << 20;
pub const MAX_DISK_BYTES: u64 = 16 << 40;
pub const MIN_PIDS: u32 = 8;
pub const MAX_PIDS: u32 = 4_194_304;

/// Checks every limit against the runtime's bounds; the error names the field.
pub fn validate_limits(l: &Limits) -> Result<()> {
    let bad = |field: &str, v: u64, lo: u64, hi: u64| {
        if v < lo || v > hi {
            Err(SandboxError::invalid(
                format!("limits.{field}"),
                format!("{v} is outside {lo}..={hi}"),
            ))
        } else {
            Ok(())
        }
    };
    bad(
        "cpu_millicores",
        l.cpu_millicores.into(),
        MIN_CPU_MILLICORES.into(),
        MAX_CPU_MILLICORES.into(),
    )?;
    bad(
        "memory_bytes",
        l.memory_bytes,
        MIN_MEMORY_BYTES,
        i64::MAX as u64,
    )?;
    bad("disk_bytes", l.disk_bytes, MIN_DISK_BYTES, MAX_DISK_BYTES)?;
    bad("pids", l.pids.into(), MIN_PIDS.into(), MAX_PIDS.into())
}

/// The program paths to try for `argv0` with this `PATH` (a name with `/` is used as is).
pub fn program_candidates(argv0: &str, path_var: Option<&str>) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    let path = path_var.unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
        .collect()
}

/// `PATH` of sandbox processes unless the caller sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment a command starts with: defaults, then the sandbox's, then the request's.
pub fn exec_env(
    sandbox: &BTreeMap<String, String>,
    request: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    env.insert("HOME".to_string(), "/root".to_string());
    env.insert("LANG".to_string(), "C.UTF-8".to_string());
    env.insert("TERM".to_string(), "xterm".to_string());
    env.extend(sandbox.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(request.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_bounds_name_the_field() {
        validate_limits(&Limits::default()).unwrap();
        let d = Limits::default();
        for (l, field) in [
            (
                Limits {
                    cpu_millicores: 0,
                    ..d
                },
                "limits.cpu_millicores",
            ),
            (
                Limits {
                    memory_bytes: 0,
                    ..d
                },
                "limits.memory_bytes",
            ),
            (
                Limits {
                    memory_bytes: 1 << 20,
                    ..d
                },
                "limits.memory_bytes",
            ),
            (Limits { disk_bytes: 0, ..d }, "limits.disk_bytes"),
            (
                Limits {
                    disk_bytes: u64::MAX,
                    ..d
                },
                "limits.disk_bytes",
            ),
            (Limits { pids: 0, ..d }, "limits.pids"),
        ] {
            match validate_limits(&l) {
                Err(SandboxError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{l:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn targets() {
        for ok in [
            "/workspace",
            "/workspace/shared",
            "/data.v1/x_y",
            "/procfs",
            "/devices",
        ] {
            validate_target("t", ok).unwrap();
        }
        for bad in [
            "",
            "workspace",
            "./x",
            "/",
            "//",
            "/a//b",
            "/a/",
            "/a/./b",
            "/a/../b",
            "/..",
            "/proc",
            "/proc/x",
            "/sys",
            "/sys/fs",
            "/dev",
            "/dev/x",
            "/a\0b",
        ] {
            let e = validate_target("mounts[0].target", bad).unwrap_err();
            assert_eq!(e.code().as_str(), "invalid_argument", "{bad:?}");
            assert!(e.to_string().contains("mounts[0].target"), "{e}");
        }
    }

    #[test]
    fn persisted_subpaths_read_in_both_spellings() {
        let read = |sub: &str| {
            let json = format!(r#"{{"source": "/v", "target": "/m", "subpath": {sub}}}"#);
            serde_json::from_str::<MountSpec>(&json).map(|m| m.subpath)
        };
        let vp = |s: &str| VolumePath::parse(s).unwrap();
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(read(r#""a/b""#).unwrap(), Some(vp("/a/b")));
        assert_eq!(read(r#""/a/b""#).unwrap(), Some(vp("/a/b")));
        for bad in [r#"".."#, r#""a/../b""#, r#""a\u0000""#] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let m = MountSpec::new("/v", "/m").subpath(vp("/a/b"));
        assert_eq!(m.subpath_components().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(MountSpec::new("/v", "/m").subpath_components().count(), 0);
    }

    #[test]
    fn duplicate_targets_are_refused() {
        let m = vec![
            MountSpec::new("/v1", "/data"),
            MountSpec::new("/v2", "/data"),
        ];
        let e = validate_mounts(&m).unwrap_err();
        assert!(e.to_string().contains("mounts[1].target"), "{e}");
    }

    #[test]
    fn ids_templates_env() {
        validate_id("id", "sb-1.a_B").unwrap();
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_id("id", bad).is_err(), "{bad:?}");
        }
        let mut spec = SandboxSpec::new("x");
        spec.template = "nope".into();
        assert!(validate_spec(&spec)
            .unwrap_err()
            .to_string()
            .contains("template"));
        let mut env = BTreeMap::new();
        env.insert("A=B".to_string(), "x".to_string());
        assert!(validate_env("env", &env).is_err());
    }

    #[test]
    fn candidates() {
        assert_eq!(program_candidates("/bin/sh", None), vec!["/bin/sh"]);
        assert_eq!(
            program_candidates("sh", Some("/a:/b/")),
            vec!["/a/sh", "/b/sh"]
        );
        let env = exec_env(
            &[("A".to_string(), "1".to_string())].into(),
            &[("A".to_string(), "2".to_string())].into(),
        );
        assert_eq!(env["A"], "2");
        assert_eq!(env["PATH"], DEFAULT_PATH);
    }
}
