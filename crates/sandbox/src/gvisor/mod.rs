//! The gVisor runtime: a sandbox is a runsc container (`--platform=ptrace --network=none`,
//! one state root per server: `<state_dir>/runsc`), started from an OCI bundle per sandbox
//! (`bundle.rs`) by the launcher (`launch.rs`), which holds the sandbox's mounts in a private
//! mount namespace. Hibernate is `runsc checkpoint` (memory and processes into
//! `<sandbox>/checkpoint`, the container stops and its memory is freed) and wake is `runsc
//! restore` through the launcher with the same mounts; processes go on where they were.
//! Exec and the file API go through `runsc exec` (pipes, never regular files: the sentry
//! writes at its own offset). Runtime attach: every bundle declares two attach roots (one
//! read-only) over a small tmpfs of the launcher; an attach moves the volume's tree into it
//! inside the gofer's mount namespace (the gofer then serves it) and binds it onto its target
//! inside with `runsc exec --cap CAP_SYS_ADMIN` (a checkpoint's mount list never changes, so
//! hibernate and fork keep working; the bind lives in the sandbox kernel's memory).
//!
//! `Runtime` (lib.rs) dispatches here on the record's runtime; the methods below are the
//! gvisor halves of its public methods.

mod bundle;
mod launch;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::mount::OpenTreeFlags;

use crate::error::{Result, SandboxError};
use crate::spec::{AttachmentState, DirEntry, ExecRequest, ExecResult, MountSpec, MountStatus};
use crate::spec::{SandboxInfo, SandboxState};
use crate::{
    info_of, layer, lock, mounts, rootfs, status_of, sys, MountRecord, Runtime, Sandbox, Unbind,
};

/// What to install when runsc is missing.
pub(crate) const INSTALL_HINT: &str =
    "the gvisor runtime needs gVisor's runsc: install it (apt-get install runsc)";

/// How a command runs under `runsc exec`: its standard streams are files in the sandbox's own
/// /tmp, never the exec's host pipes, which a process left running would hold into a
/// checkpoint (this runsc cannot restore them). Output is handed back when the command ends
/// (background processes keep writing to the unlinked files). A missing program is 127 (126:
/// not executable), as in the namespace runtime. No `setsid` and no group kill: on this runsc
/// both can bring the sandbox down (urpc EOF), so a timeout kills the command's own process.
/// `$1`: scratch prefix, `$2`: 1 if stdin is given.
const EXEC_WRAPPER: &str = r#"d=$1; i=/dev/null; umask 077
[ "$2" = 1 ] && { i="$d.in"; cat > "$i" || exit 125; }
shift 2
"$@" <"$i" >"$d.out" 2>"$d.err" &
echo $! > "$d.pid"
wait $!; s=$?
cat "$d.out"; cat "$d.err" >&2
rm -f "$d.in" "$d.out" "$d.err" "$d.pid"
exit $s"#;

/// Why a sandbox made before the attach roots existed cannot attach.
const NO_ATTACH_ROOT: &str = "this gvisor sandbox was created before runtime attach worked on gvisor (its bundle has no attach root): create the sandbox with the mount, or a new sandbox";

/// The runsc binary and this server's state root.
#[derive(Debug)]
pub(crate) struct Gvisor {
    runsc: PathBuf,
    root: PathBuf,
}

/// A running (or paused) gVisor sandbox: its sandbox process on the host.
pub(crate) struct Live {
    pub pid: i32,
    pidfd: OwnedFd,
}

/// The last lines of a runsc log (error messages).
pub(crate) fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    // A Go panic's first line says what happened; its stack follows.
    if let Some(p) = text
        .lines()
        .find(|l| l.starts_with("panic:") || l.contains("error"))
    {
        return p.to_string();
    }
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

impl Gvisor {
    /// Finds runsc (`NULLSPACE_RUNSC`, else `/usr/bin/runsc`, `/usr/local/bin/runsc`); the
    /// error says what to install.
    pub fn find(state_dir: &Path) -> std::result::Result<Gvisor, String> {
        let candidates: Vec<PathBuf> = std::env::var_os("NULLSPACE_RUNSC")
            .map(PathBuf::from)
            .into_iter()
            .chain(["/usr/bin/runsc", "/usr/local/bin/runsc"].map(PathBuf::from))
            .collect();
        let runsc = candidates
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| INSTALL_HINT.to_string())?;
        let root = state_dir.join("runsc");
        fs::create_dir_all(&root).map_err(|e| format!("mkdir {}: {e}", root.display()))?;
        Ok(Gvisor { runsc, root })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.runsc);
        c.arg("--root")
            .arg(&self.root)
            .args(["--platform=ptrace", "--network=none"]);
        c
    }

    /// Runs a runsc subcommand to completion; its stdout, or the error with its stderr.
    fn call(&self, args: &[&str]) -> Result<String> {
        let out = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| SandboxError::sys("spawn", "runsc", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(SandboxError::Unavailable(format!(
                "runsc {} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// `runsc state`: the container's status and host pid (None: no such container).
    fn state(&self, id: &str) -> Option<(String, i32)> {
        let text = self.call(&["state", id]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some((
            v["status"].as_str()?.to_string(),
            v["pid"].as_i64().unwrap_or(0) as i32,
        ))
    }

    /// The status and sandbox pid of a container runsc has just started, from its state file
    /// (what `runsc state` reads, without starting another runsc).
    fn state_just_started(&self, id: &str) -> Option<(String, i32)> {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(self.state_file(id)).ok()?).ok()?;
        Some((
            v["status"].as_str()?.to_string(),
            i32::try_from(v["sandbox"]["pid"].as_i64()?).ok()?,
        ))
    }

    /// Kills and deletes the container if runsc has one of that id.
    fn delete(&self, id: &str) {
        if self.state_file(id).exists() {
            let _ = self.call(&["delete", "--force", id]);
        }
    }

    /// runsc's record of the container (`<root>/<id>_sandbox:<id>.state`, and its lock).
    fn state_file(&self, id: &str) -> PathBuf {
        self.root.join(format!("{id}_sandbox:{id}.state"))
    }

    /// Forgets a container whose processes have ended: what `runsc delete` does after it has
    /// waited for them, which it does until they are reaped (on a host whose init reaps
    /// slowly, seconds after they exited and freed their memory).
    fn forget(&self, id: &str) {
        let _ = fs::remove_file(self.state_file(id));
        let _ = fs::remove_file(self.root.join(format!("{id}_sandbox:{id}.lock")));
    }
}

fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

fn has_checkpoint(dir: &Path) -> bool {
    checkpoint_dir(dir).join("checkpoint.img").is_file()
}

/// A detached clone of a resolved volume directory (nosuid, nodev, read-only if asked). No
/// idmap: gVisor's root is the host's root on the files it serves.
fn volume_tree(dir: std::os::fd::BorrowedFd<'_>, read_only: bool) -> Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        dir,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| SandboxError::sys("open_tree", "volume", e))?;
    let mut set = sys::attr::NOSUID | sys::attr::NODEV;
    if read_only {
        set |= sys::attr::RDONLY;
    }
    sys::mount_setattr(tree.as_raw_fd(), set, None)
        .map_err(|e| SandboxError::errno("mount_setattr", "volume", e))?;
    Ok(tree)
}

impl Runtime {
    pub(crate) fn gvisor(&self) -> Result<&Gvisor> {
        self.gvisor
            .as_ref()
            .map_err(|why| SandboxError::Unavailable(why.clone()))
    }

    /// Writes a new sandbox's bundle (every mount a bind of the bundle) and starts it.
    pub(crate) fn gv_create(&self, sb: &mut Sandbox, m: layer::Mounted) -> Result<()> {
        for (i, rec) in sb.record.mounts.iter_mut().enumerate() {
            rec.bind = Some(i);
        }
        self.gv_write_bundle(sb)?;
        self.gv_start(sb, Some(m), false)
    }

    fn gv_write_bundle(&self, sb: &Sandbox) -> Result<()> {
        let binds = sb
            .record
            .mounts
            .iter()
            .filter_map(|m| {
                Some(bundle::Bind {
                    index: m.bind?,
                    target: m.spec.target.clone(),
                    read_only: m.spec.read_only,
                })
            })
            .collect();
        bundle::write(
            &sb.dir,
            &bundle::Config {
                hostname: &sb.record.hostname,
                env: &sb.record.env,
                limits: &sb.record.limits,
                pids_max: self.cfg.pids_max,
                cgroups_path: format!("/{}/{}", self.cfg.cgroup_parent, sb.record.id),
                binds,
            },
        )
        .map(drop)
    }

    /// Starts the container (`run`, or `restore` from the sandbox's checkpoint) through the
    /// launcher. A volume that cannot be resolved leaves its bind empty and its record
    /// `failed` (the mount list of a checkpoint must not change).
    fn gv_start(&self, sb: &mut Sandbox, m: Option<layer::Mounted>, restore: bool) -> Result<()> {
        let gv = self.gvisor()?;
        let m = match m {
            Some(m) => m,
            None => layer::mount(&sb.dir)?,
        };
        rootfs::sanitize_upper(&m.upper())?;
        let layer_fd = m
            .tree()
            .ok_or_else(|| {
                SandboxError::Unavailable("a gvisor sandbox needs a capped layer image".into())
            })?
            .try_clone_to_owned()
            .map_err(|e| SandboxError::sys("dup", "layer", e))?;
        let bundle = bundle::bundle_dir(&sb.dir);
        let mut vols = Vec::new();
        let mut mounted = Vec::new();
        for (i, rec) in sb.record.mounts.iter_mut().enumerate() {
            let Some(b) = rec.bind else { continue };
            let tree = mounts::resolve_source(&rec.spec, &format!("mounts[{i}]"))
                .and_then(|fd| volume_tree(fd.as_fd(), rec.spec.read_only));
            match tree {
                Ok(t) => {
                    vols.push((t, cstring(&format!("vols/{b}"))?));
                    mounted.push(i);
                }
                Err(e) => {
                    rec.state = AttachmentState::Failed;
                    rec.error = Some(e.to_string());
                    rec.mnt_id = None;
                }
            }
        }
        let attach_root = bundle.join("attach").is_dir();
        let mut attached = Vec::new();
        let mut attach_empty = Vec::new();
        let mut hosted = Vec::new();
        for (i, rec) in sb.record.mounts.iter_mut().enumerate() {
            let Some(name) = rec.attach.clone() else {
                continue;
            };
            let dir = cstring(&format!("attach/{name}"))?;
            if !attach_root || rec.state == AttachmentState::Failed {
                attach_empty.push(dir);
                continue;
            }
            let probed =
                mounts::resolve_source(&rec.spec, &format!("mounts[{i}]")).and_then(|fd| {
                    let probe = some_entry(fd.as_fd());
                    volume_tree(fd.as_fd(), rec.spec.read_only).map(|t| (t, probe))
                });
            match probed {
                Ok((t, probe)) => {
                    attached.push((t, dir));
                    hosted.push((i, probe));
                }
                Err(e) => {
                    rec.state = AttachmentState::Failed;
                    rec.error = Some(e.to_string());
                    attach_empty.push(dir);
                }
            }
        }
        for u in &sb.record.gv_unbind {
            attach_empty.push(cstring(&format!("attach/{}", u.name))?);
        }
        let id = sb.record.id.clone();
        // A container left behind (stopped, or from a crash) would block the id.
        gv.delete(&id);
        let mut cmd = gv.cmd();
        let b = bundle.to_string_lossy().into_owned();
        if restore {
            let img = checkpoint_dir(&sb.dir).to_string_lossy().into_owned();
            cmd.args([
                "restore",
                "--detach",
                "--bundle",
                &b,
                "--image-path",
                &img,
                &id,
            ]);
        } else {
            cmd.args(["run", "--detach", "--bundle", &b, &id]);
        }
        let launched = launch::run(
            cmd,
            launch::Mounts {
                layer: layer_fd,
                lower: cstring(&self.template_dir.to_string_lossy())?,
                bundle: cstring(&b)?,
                vols,
                attached,
                attach_empty,
                attach_root,
            },
            &sb.dir.join("runsc.log"),
        );
        drop(m);
        if let Err(e) = launched {
            gv.delete(&id);
            let _ = sb.cgroups.remove();
            return Err(e);
        }
        let live = gv
            .state_just_started(&id)
            .filter(|(s, pid)| s == "running" && *pid > 0)
            .and_then(|(_, pid)| {
                let pidfd = rustix::process::pidfd_open(
                    rustix::process::Pid::from_raw(pid)?,
                    rustix::process::PidfdFlags::empty(),
                )
                .ok()?;
                Some(Live { pid, pidfd })
            });
        let Some(live) = live else {
            gv.delete(&id);
            let _ = sb.cgroups.remove();
            return Err(SandboxError::Unavailable(format!(
                "runsc started {id} but it is not running: {}",
                log_tail(&sb.dir.join("runsc.log"))
            )));
        };
        if restore {
            // The image is spent: the layer moves on from here, the memory must not go back.
            let _ = fs::remove_dir_all(checkpoint_dir(&sb.dir));
        }
        for i in mounted {
            let rec = &mut sb.record.mounts[i];
            rec.state = AttachmentState::Mounted;
            rec.error = None;
        }
        sb.record.init_pid = Some(live.pid);
        sb.record.init_start = crate::start_time(live.pid);
        sb.record.state = SandboxState::Running;
        sb.gv = Some(live);
        if attach_root {
            self.gv_settle_attaches(sb, restore, &hosted);
        }
        Ok(())
    }

    /// `gv_start`, and when a restore fails, a fresh boot over the same layer (the processes
    /// are lost, the files kept). A restore fails on this runsc when a process still held an
    /// exec's standard streams at checkpoint time (they were host pipes that no longer exist).
    fn gv_start_or_boot(
        &self,
        sb: &mut Sandbox,
        m: Option<layer::Mounted>,
        restore: bool,
    ) -> Result<()> {
        match self.gv_start(sb, m, restore) {
            Err(e) if restore => {
                tracing::warn!(id = %sb.record.id, error = %e, "gvisor restore failed; booting the sandbox afresh from its layer");
                let _ = fs::remove_dir_all(checkpoint_dir(&sb.dir));
                self.gv_start(sb, None, false)
            }
            r => r,
        }
    }

    /// Stops the container without a checkpoint (its processes are gone); keeps the dir.
    pub(crate) fn gv_teardown(&self, sb: &mut Sandbox) {
        let gofer = self.gv_gofer(sb).ok();
        let pids: Vec<i32> = sb
            .gv
            .iter()
            .map(|l| l.pid)
            .chain(gofer.iter().map(|g| g.pid))
            .collect();
        self.gv_stop(sb, gofer);
        // Gone means gone from the process table too (as `runsc delete` waits): the host's
        // init reaps them, a poll is all there is to see that by.
        for pid in pids {
            wait_reaped(pid, Duration::from_secs(5));
        }
        gv_released(sb);
    }

    /// Ends the container's sandbox and gofer processes (SIGKILL through pidfds, waited for
    /// until they exit: the sandbox's memory is free then, and with the gofer go the
    /// launcher's mounts) and the container (runsc's record, the cgroups). A container we do
    /// not hold (left by a crash) goes through `runsc delete`.
    fn gv_stop(&self, sb: &mut Sandbox, gofer: Option<Gofer>) {
        let Ok(gv) = self.gvisor() else { return };
        match sb.gv.take() {
            Some(live) => {
                let _ = sys::pidfd_kill(live.pidfd.as_raw_fd());
                sys::pidfd_wait_exit(live.pidfd.as_raw_fd(), 5000);
                if let Some(g) = gofer {
                    let _ = sys::pidfd_kill(g.pidfd.as_raw_fd());
                    sys::pidfd_wait_exit(g.pidfd.as_raw_fd(), 5000);
                }
                gv.forget(&sb.record.id);
            }
            None => gv.delete(&sb.record.id),
        }
        let _ = sb.cgroups.kill_all();
        let _ = sb.cgroups.remove();
    }

    /// If the sandbox process died behind our back: hibernated, without memory.
    pub(crate) fn gv_check_alive(&self, sb: &mut Sandbox) -> Result<()> {
        if sb
            .gv
            .as_ref()
            .is_some_and(|l| sys::pidfd_exited(l.pidfd.as_raw_fd()))
        {
            tracing::warn!(id = %sb.record.id, "gvisor sandbox exited; keeping it as hibernated");
            self.gv_teardown(sb);
            self.persist(sb)?;
        }
        Ok(())
    }

    /// Wakes a hibernated sandbox: restores its checkpoint, or boots it afresh without one.
    pub(crate) fn gv_wake(&self, sb: &mut Sandbox) -> Result<()> {
        let restore = has_checkpoint(&sb.dir);
        let r = self.gv_start_or_boot(sb, None, restore);
        if r.is_err() {
            gv_released(sb);
        }
        self.persist(sb)?;
        r
    }

    pub(crate) fn gv_ensure_running(&self, sb: &mut Sandbox) -> Result<()> {
        self.gv_check_alive(sb)?;
        match sb.record.state {
            SandboxState::Running => Ok(()),
            SandboxState::Hibernated => self.gv_wake(sb),
            SandboxState::Paused => Err(SandboxError::Conflict {
                id: sb.record.id.clone(),
                reason: "sandbox is paused; resume it first".into(),
            }),
        }
    }

    pub(crate) fn gv_pause(&self, sb: &mut Sandbox) -> Result<SandboxInfo> {
        self.gv_check_alive(sb)?;
        if sb.record.state == SandboxState::Running {
            self.gvisor()?.call(&["pause", &sb.record.id])?;
            sb.record.state = SandboxState::Paused;
            self.persist(sb)?;
        }
        Ok(info_of(sb))
    }

    pub(crate) fn gv_resume(&self, sb: &mut Sandbox) -> Result<SandboxInfo> {
        self.gv_check_alive(sb)?;
        match sb.record.state {
            SandboxState::Running => {}
            SandboxState::Paused => {
                self.gvisor()?.call(&["resume", &sb.record.id])?;
                sb.record.state = SandboxState::Running;
                self.gv_after_pause(sb);
                self.persist(sb)?;
            }
            SandboxState::Hibernated => self.gv_wake(sb)?,
        }
        Ok(info_of(sb))
    }

    /// Checkpoints memory and processes into `<dir>/checkpoint`; the container stops and is
    /// deleted (its memory and cgroup freed).
    pub(crate) fn gv_hibernate(&self, sb: &mut Sandbox) -> Result<SandboxInfo> {
        self.gv_check_alive(sb)?;
        if sb.record.state == SandboxState::Hibernated {
            return Ok(info_of(sb));
        }
        self.gv_checkpoint(sb)?;
        self.persist(sb)?;
        Ok(info_of(sb))
    }

    fn gv_checkpoint(&self, sb: &mut Sandbox) -> Result<()> {
        let gv = self.gvisor()?;
        let id = sb.record.id.clone();
        if sb.record.state == SandboxState::Paused {
            gv.call(&["resume", &id])?;
            sb.record.state = SandboxState::Running;
        }
        let img = checkpoint_dir(&sb.dir);
        let _ = fs::remove_dir_all(&img);
        fs::create_dir_all(&img)
            .map_err(|e| SandboxError::sys("mkdir", img.display().to_string(), e))?;
        let img_s = img.to_string_lossy().into_owned();
        // Found first: after the checkpoint the gofer exits on its own.
        let gofer = self.gv_gofer(sb).ok();
        if let Err(e) = gv.call(&["checkpoint", "--image-path", &img_s, &id]) {
            let _ = fs::remove_dir_all(&img);
            return Err(e);
        }
        // The container has stopped (the image is complete when runsc returns).
        self.gv_stop(sb, gofer);
        gv_released(sb);
        Ok(())
    }

    pub(crate) fn gv_destroy(&self, sb: &mut Sandbox) -> Result<()> {
        self.gv_teardown(sb);
        Ok(())
    }

    /// Runs a command through `runsc exec`.
    pub(crate) fn gv_exec(&self, sb: &mut Sandbox, req: &ExecRequest) -> Result<ExecResult> {
        self.gv_ensure_running(sb)?;
        let env = sb.record.env.clone();
        let id = sb.record.id.clone();
        let ooms = sb.cgroups.oom_kills();
        let mut res = self.gv_run(&id, &sb.dir, &env, req)?;
        res.oom_killed = sb.cgroups.oom_kills() > ooms;
        Ok(res)
    }

    fn gv_run(
        &self,
        id: &str,
        dir: &Path,
        sandbox_env: &BTreeMap<String, String>,
        req: &ExecRequest,
    ) -> Result<ExecResult> {
        let gv = self.gvisor()?;
        if req.argv.is_empty() || req.argv[0].is_empty() {
            return Err(SandboxError::invalid("argv", "must name a program"));
        }
        crate::spec::validate_env("env", &req.env)?;
        let cwd = req.cwd.as_deref().unwrap_or("/");
        if !cwd.starts_with('/') {
            return Err(SandboxError::invalid(
                "cwd",
                format!("{cwd:?} must be an absolute path"),
            ));
        }
        for a in &req.argv {
            cstring(a).map_err(|_| SandboxError::invalid("argv", "contains NUL"))?;
        }
        let _ = dir;
        let scratch = format!("/tmp/.nullspace-exec-{}", rootfs::unique());
        let mut cmd = gv.cmd();
        cmd.arg("exec").arg("--cwd").arg(cwd);
        for (k, v) in crate::spec::exec_env(sandbox_env, &req.env) {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        let has_stdin = if req.stdin.as_ref().is_some_and(|s| !s.is_empty()) {
            "1"
        } else {
            "0"
        };
        cmd.arg(id)
            .args(["/bin/sh", "-c", EXEC_WRAPPER, "sh", &scratch, has_stdin]);
        cmd.args(&req.argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::sys("spawn", "runsc exec", e))?;
        pump(gv, id, &mut child, &scratch, req)
    }

    /// A runtime attach: mounted at once on a running sandbox (`failed` with the reason if
    /// that cannot be done), recorded `released` on a paused or hibernated one (mounted when
    /// it runs again).
    pub(crate) fn gv_attach(&self, sb: &mut Sandbox, mount: MountSpec) -> Result<MountStatus> {
        // Bad input is still an error that records nothing.
        mounts::resolve_source(&mount, "")?;
        let mut rec = MountRecord {
            spec: mount,
            state: AttachmentState::Released,
            error: None,
            mnt_id: None,
            bind: None,
            attach: Some(format!("a{}", rootfs::unique())),
            inside: false,
        };
        if !bundle::bundle_dir(&sb.dir).join("attach").is_dir() {
            rec.state = AttachmentState::Failed;
            rec.error = Some(NO_ATTACH_ROOT.into());
            rec.attach = None;
        }
        sb.record.mounts.push(rec);
        let i = sb.record.mounts.len() - 1;
        if sb.record.state == SandboxState::Running && sb.record.mounts[i].attach.is_some() {
            match self.gv_mount_attach(sb, i) {
                Ok(()) => sb.record.mounts[i].state = AttachmentState::Mounted,
                Err(e) if e.code().as_str() == "invalid_argument" => {
                    sb.record.mounts.pop();
                    return Err(e);
                }
                Err(e) => {
                    let m = &mut sb.record.mounts[i];
                    m.state = AttachmentState::Failed;
                    m.error = Some(e.to_string());
                    m.attach = None;
                }
            }
        }
        let status = status_of(&sb.record.mounts[i]);
        self.persist(sb)?;
        Ok(status)
    }

    /// Detaches a runtime attach: its bind inside goes, then its volume from the attach root
    /// (the sandbox no longer sees the files). On a paused sandbox the volume goes at once
    /// and the bind when it resumes; on a hibernated one, right after its restore.
    /// A create-time mount is a bind of the sandbox's spec, which a checkpoint's restore
    /// needs unchanged: it stays until the sandbox is destroyed.
    pub(crate) fn gv_detach(&self, sb: &mut Sandbox, i: usize) -> Result<()> {
        let rec = sb.record.mounts[i].clone();
        if rec.bind.is_some() {
            return Err(SandboxError::Conflict {
                id: sb.record.id.clone(),
                reason: format!(
                    "a create-time mount cannot be detached on the gvisor runtime (a checkpoint's mount list must not change): {} stays mounted until the sandbox is destroyed",
                    rec.spec.target
                ),
            });
        }
        if let Some(name) = &rec.attach {
            let unbind = || Unbind {
                name: name.clone(),
                target: rec.spec.target.clone(),
                read_only: rec.spec.read_only,
            };
            match sb.record.state {
                SandboxState::Running => {
                    if rec.inside {
                        self.gv_unbind_inside(&sb.record.id, &rec.spec.target, name)?;
                    }
                    let gofer = self.gv_gofer(sb)?;
                    in_gofer_ns(&gofer, |root| host_detach(root, name, true))?;
                }
                SandboxState::Paused => {
                    let gofer = self.gv_gofer(sb)?;
                    in_gofer_ns(&gofer, |root| host_detach(root, name, !rec.inside))?;
                    if rec.inside {
                        sb.record.gv_unbind.push(unbind());
                    }
                }
                SandboxState::Hibernated => {
                    if rec.inside && has_checkpoint(&sb.dir) {
                        sb.record.gv_unbind.push(unbind());
                    }
                }
            }
        }
        sb.record.mounts.remove(i);
        self.persist(sb)
    }

    /// After a paused sandbox runs again: the binds of detaches made while it was paused go,
    /// attaches made while it was paused are mounted.
    fn gv_after_pause(&self, sb: &mut Sandbox) {
        let id = sb.record.id.clone();
        let gofer = self.gv_gofer(sb);
        for u in std::mem::take(&mut sb.record.gv_unbind) {
            if self.gv_unbind_inside(&id, &u.target, &u.name).is_ok() {
                if let Ok(g) = &gofer {
                    let _ = in_gofer_ns(g, |root| host_detach(root, &u.name, true));
                }
            }
        }
        for i in 0..sb.record.mounts.len() {
            let m = &sb.record.mounts[i];
            if m.attach.is_none() || m.state != AttachmentState::Released {
                continue;
            }
            let r = self.gv_mount_attach(sb, i);
            let m = &mut sb.record.mounts[i];
            match r {
                Ok(()) => {
                    m.state = AttachmentState::Mounted;
                    m.error = None;
                }
                Err(e) => {
                    m.state = AttachmentState::Failed;
                    m.error = Some(e.to_string());
                }
            }
        }
    }

    /// A fork: the source is checkpointed (and stopped), its layer image and checkpoint are
    /// copied, then both restore from the same moment; the copy with the same volume binds.
    pub(crate) fn gv_fork(&self, s: &mut Sandbox, new: &mut Sandbox) -> Result<()> {
        self.gv_check_alive(s)?;
        let was_live = s.record.state != SandboxState::Hibernated;
        if was_live {
            self.gv_checkpoint(s)?;
            layer::release(&s.dir)?;
        }
        let copied = layer::copy_image(&s.dir.join(layer::IMAGE), &new.dir).and_then(|()| {
            if has_checkpoint(&s.dir) {
                copy_dir(&checkpoint_dir(&s.dir), &checkpoint_dir(&new.dir))
            } else {
                Ok(())
            }
        });
        if was_live {
            let r = self.gv_start_or_boot(s, None, true);
            if r.is_err() {
                gv_released(s);
            }
            self.persist(s)?;
            r?;
        }
        copied?;
        for rec in new.record.mounts.iter_mut() {
            rec.bind = None;
        }
        for (i, rec) in s.record.mounts.iter().enumerate() {
            if let Some(b) = rec.bind {
                new.record.mounts[i].bind = Some(b);
            }
        }
        // Attaches that failed on the source are not the fork's (a bind its kernel still has
        // is undone after the restore).
        let mut unbind = Vec::new();
        new.record.mounts.retain(|m| {
            let keep = m.bind.is_some()
                || (m.attach.is_some()
                    && s.record
                        .mounts
                        .iter()
                        .any(|sm| sm.attach == m.attach && sm.state != AttachmentState::Failed));
            if !keep && m.inside {
                if let Some(name) = &m.attach {
                    unbind.push(Unbind {
                        name: name.clone(),
                        target: m.spec.target.clone(),
                        read_only: m.spec.read_only,
                    });
                }
            }
            keep
        });
        for m in &mut new.record.mounts {
            if m.attach.is_some() {
                let src = s.record.mounts.iter().find(|sm| sm.attach == m.attach);
                m.inside = src.is_some_and(|sm| sm.inside);
                m.state = AttachmentState::Released;
                m.error = None;
            }
        }
        new.record.gv_unbind = s.record.gv_unbind.clone();
        new.record.gv_unbind.extend(unbind);
        self.gv_write_bundle(new)?;
        let restore = has_checkpoint(&new.dir);
        let m = layer::mount(&new.dir)?;
        rootfs::write_identity(&m.upper(), 0, &new.record.hostname)?;
        self.gv_start_or_boot(new, Some(m), restore)?;
        if restore {
            // The host name lives in the restored kernel's memory: set the copy's own.
            self.gvisor()?.call(&[
                "exec",
                "--cap",
                "CAP_SYS_ADMIN",
                &new.record.id,
                "/bin/hostname",
                &new.record.hostname,
            ])?;
        }
        Ok(())
    }

    /// Reconcile of one gVisor record: a running (or paused) container is adopted, anything
    /// else is hibernated (with its checkpoint, if it has one).
    pub(crate) fn gv_reconcile(&self, sb: &mut Sandbox) -> bool {
        let Ok(gv) = self.gvisor() else {
            gv_released(sb);
            return false;
        };
        if let Some((status, pid)) = gv.state(&sb.record.id) {
            if (status == "running" || status == "paused") && pid > 0 {
                if let Some(pidfd) = rustix::process::Pid::from_raw(pid).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                }) {
                    sb.record.state = if status == "paused" {
                        SandboxState::Paused
                    } else {
                        SandboxState::Running
                    };
                    sb.record.init_pid = Some(pid);
                    sb.gv = Some(Live { pid, pidfd });
                    return true;
                }
            }
        }
        self.gv_teardown(sb);
        false
    }

    /// The file API through `runsc exec` (the sandbox's own view: its /tmp lives in gVisor's
    /// memory, volumes at their targets).
    fn gv_files(
        &self,
        id: &str,
        script: &str,
        args: &[&str],
        stdin: Vec<u8>,
    ) -> Result<ExecResult> {
        crate::files::relative(args[0])?;
        let sb = self.get(id)?;
        let (dir, env) = {
            let mut sb = lock(&sb);
            self.gv_check_alive(&mut sb)?;
            match sb.record.state {
                SandboxState::Hibernated => self.gv_wake(&mut sb)?,
                // runsc cannot exec in a paused container (`gv_paused_volume` serves its
                // volume paths).
                SandboxState::Paused => {
                    return Err(SandboxError::Conflict {
                        id: id.to_string(),
                        reason: "sandbox is paused (gvisor): resume it to use its files".into(),
                    })
                }
                SandboxState::Running => {}
            }
            (sb.dir.clone(), sb.record.env.clone())
        };
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            script.into(),
            "sh".into(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let req = ExecRequest {
            argv,
            stdin: Some(stdin),
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let r = self.gv_run(id, &dir, &env, &req)?;
        let path = args[0];
        match r.exit_code {
            0 => Ok(r),
            3 => Err(SandboxError::NotFound {
                kind: "path",
                name: path.to_string(),
            }),
            4 => Err(SandboxError::invalid(
                "path",
                format!("{path:?} is not a regular file"),
            )),
            5 => Err(SandboxError::invalid(
                "path",
                format!("{path:?} is not a directory"),
            )),
            _ => Err(SandboxError::sys(
                "files",
                format!("{path}: {}", String::from_utf8_lossy(&r.stderr).trim()),
                std::io::Error::from_raw_os_error(libc::EIO),
            )),
        }
    }

    /// On a paused sandbox (runsc cannot exec in it, and its /tmp and file cache are in its
    /// kernel's memory): a path in one of its volume mounts, as the volume directory and the
    /// path below it (the host serves it; the sandbox's kernel revalidates what it cached of
    /// a volume); any other path is a conflict. `None`: not paused, go through the sandbox.
    fn gv_paused_volume(&self, id: &str, path: &str) -> Result<Option<(OwnedFd, String, bool)>> {
        crate::files::relative(path)?;
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        self.gv_check_alive(&mut sb)?;
        if sb.record.state != SandboxState::Paused {
            return Ok(None);
        }
        let under = |target: &str| {
            path == target
                || path
                    .strip_prefix(target)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let Some(m) = sb
            .record
            .mounts
            .iter()
            .filter(|m| m.state == AttachmentState::Mounted && under(&m.spec.target))
            .max_by_key(|m| m.spec.target.len())
        else {
            return Err(SandboxError::Conflict {
                id: id.to_string(),
                reason: format!(
                    "sandbox is paused (gvisor): {path} is in no volume mount; resume it to use its other files"
                ),
            });
        };
        let rest = format!("/{}", path[m.spec.target.len()..].trim_start_matches('/'));
        let dir = mounts::resolve_source(&m.spec, "volume")?;
        Ok(Some((dir, rest, m.spec.read_only)))
    }

    pub(crate) fn gv_read(&self, id: &str, path: &str) -> Result<Vec<u8>> {
        if let Some((dir, rest, _)) = self.gv_paused_volume(id, path)? {
            return crate::files::read(dir.as_fd(), &rest);
        }
        let r = self.gv_files(
            id,
            "[ -e \"$1\" ] || exit 3; [ -f \"$1\" ] || exit 4; exec cat -- \"$1\"",
            &[path],
            Vec::new(),
        )?;
        Ok(r.stdout)
    }

    pub(crate) fn gv_write(&self, id: &str, path: &str, data: &[u8]) -> Result<()> {
        if let Some((dir, rest, read_only)) = self.gv_paused_volume(id, path)? {
            if read_only {
                return Err(SandboxError::sys(
                    "write",
                    path.to_string(),
                    std::io::Error::from_raw_os_error(libc::EROFS),
                ));
            }
            return crate::files::write(dir.as_fd(), &rest, data);
        }
        self.gv_files(
            id,
            "d=$(dirname -- \"$1\"); mkdir -p -- \"$d\" || exit 1; [ -d \"$1\" ] && exit 4; \
             t=\"$d/.nullspace-write.$$\"; cat > \"$t\" && mv -f -- \"$t\" \"$1\" || { rm -f -- \"$t\"; exit 1; }",
            &[path],
            data.to_vec(),
        )
        .map(drop)
    }

    pub(crate) fn gv_list(&self, id: &str, path: &str) -> Result<Vec<DirEntry>> {
        if let Some((dir, rest, _)) = self.gv_paused_volume(id, path)? {
            return crate::files::list(dir.as_fd(), &rest);
        }
        let r = self.gv_files(
            id,
            "[ -e \"$1\" ] || exit 3; [ -d \"$1\" ] || exit 5; \
             exec find \"$1/\" -mindepth 1 -maxdepth 1 -printf '%f\\0%y\\0%s\\0'",
            &[path],
            Vec::new(),
        )?;
        let fields: Vec<&[u8]> = r.stdout.split(|b| *b == 0).collect();
        let mut out: Vec<DirEntry> = fields
            .chunks_exact(3)
            .map(|c| DirEntry {
                name: String::from_utf8_lossy(c[0]).into_owned(),
                kind: match c[1] {
                    b"f" => "file",
                    b"d" => "dir",
                    b"l" => "symlink",
                    _ => "other",
                }
                .to_string(),
                size: String::from_utf8_lossy(c[2]).parse().unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Waits (bounded) until process `pid`, which has exited, is reaped by the host's init (it is
/// not our child: runsc detached it).
fn wait_reaped(pid: i32, limit: Duration) {
    let start = Instant::now();
    let stat = format!("/proc/{pid}/stat");
    while Path::new(&stat).exists() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records after the container stopped: mounted binds are `released`, no process.
fn gv_released(sb: &mut Sandbox) {
    for m in &mut sb.record.mounts {
        if m.state == AttachmentState::Mounted {
            m.state = AttachmentState::Released;
        }
    }
    sb.gv = None;
    sb.record.init_pid = None;
    sb.record.init_start = None;
    sb.record.state = SandboxState::Hibernated;
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| SandboxError::invalid("path", format!("{s:?} contains NUL")))
}

/// Copies a checkpoint directory (regular files only).
fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    let e = |op: &'static str, p: &Path| {
        let d = p.display().to_string();
        move |err| SandboxError::sys(op, d, err)
    };
    fs::create_dir_all(dst).map_err(e("mkdir", dst))?;
    for ent in fs::read_dir(src).map_err(e("readdir", src))? {
        let ent = ent.map_err(e("readdir", src))?;
        if ent.file_type().map_err(e("stat", src))?.is_file() {
            fs::copy(ent.path(), dst.join(ent.file_name())).map_err(e("copy", dst))?;
        }
    }
    Ok(())
}

/// Feeds stdin, collects bounded output and waits for `runsc exec`; on timeout kills the
/// command inside (by its pid in the sandbox) and then the client.
fn pump(
    gv: &Gvisor,
    id: &str,
    child: &mut std::process::Child,
    scratch: &str,
    req: &ExecRequest,
) -> Result<ExecResult> {
    use crate::exec::{drain, set_nonblocking};
    let max = req.max_output.unwrap_or(crate::exec::DEFAULT_MAX_OUTPUT);
    let deadline = req.timeout.map(|t| Instant::now() + t);
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(child),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| SandboxError::sys("pidfd_open", "runsc exec", e))?;
    let stdout: OwnedFd = child.stdout.take().expect("piped").into();
    let stderr: OwnedFd = child.stderr.take().expect("piped").into();
    let mut stdin: Option<OwnedFd> = child.stdin.take().map(Into::into);
    let data: &[u8] = req.stdin.as_deref().unwrap_or(&[]);
    let mut off = 0;
    for fd in [&stdout, &stderr].into_iter().chain(stdin.as_ref()) {
        set_nonblocking(fd);
    }
    if data.is_empty() {
        stdin = None;
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut truncated = false;
    let mut timed_out = false;
    let mut killed_at: Option<Instant> = None;
    loop {
        let wait = match (deadline, killed_at) {
            (_, Some(k)) => Some(Duration::from_secs(5).saturating_sub(k.elapsed())),
            (Some(d), None) => Some(d.saturating_duration_since(Instant::now())),
            (None, None) => None,
        };
        if wait == Some(Duration::ZERO) {
            if killed_at.is_none() {
                timed_out = true;
                // The command itself (what it started goes on); the wrapper then hands back
                // what the command wrote and ends.
                let _ = gv.call(&[
                    "exec",
                    id,
                    "/bin/sh",
                    "-c",
                    "kill -KILL \"$(cat \"$1.pid\")\"",
                    "sh",
                    scratch,
                ]);
                killed_at = Some(Instant::now());
                continue;
            }
            let _ = child.kill();
        }
        let open = [(out_open, &stdout), (err_open, &stderr)];
        crate::exec::wait_for_streams(&pidfd, open, stdin.as_ref(), wait)?;
        if out_open {
            out_open = drain(&stdout, &mut out, max, &mut truncated);
        }
        if err_open {
            err_open = drain(&stderr, &mut err, max, &mut truncated);
        }
        if let Some(w) = &stdin {
            match rustix::io::write(w, &data[off..]) {
                Ok(n) => off += n,
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => off = data.len(),
            }
            if off >= data.len() {
                stdin = None;
            }
        }
        if sys::pidfd_exited(pidfd.as_raw_fd()) {
            // Background processes that still hold the pipes do not keep us waiting.
            drain(&stdout, &mut out, max, &mut truncated);
            drain(&stderr, &mut err, max, &mut truncated);
            break;
        }
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::sys("wait", "runsc exec", e))?;
    let code = status.code().unwrap_or(128 + 9);
    Ok(ExecResult {
        stdout: out,
        stderr: err,
        exit_code: code,
        signal: (code > 128 && timed_out).then_some(code - 128),
        timed_out,
        truncated,
        oom_killed: false,
    })
}

/// Binds an attach root's directory onto the target inside the sandbox (run by `runsc exec
/// --cap CAP_SYS_ADMIN`; nothing of the sandbox's own holds that capability), then checks the
/// sandbox sees the volume there. `$1` source, `$2` target, `$3` one entry of the volume
/// (or empty). Exit 2: the target is unusable inside (a symlink, not a directory).
const BIND_INSIDE: &str = r#"src=$1; dst=$2
[ -d "$src" ] || { echo "the volume did not appear under the attach root" >&2; exit 1; }
p=; rest=${dst#/}
while [ -n "$rest" ]; do
  c=${rest%%/*}; if [ "$c" = "$rest" ]; then rest=; else rest=${rest#*/}; fi; p=$p/$c
  [ -L "$p" ] && { echo "invalid target $dst: $p is a symlink inside the sandbox" >&2; exit 2; }
  [ -e "$p" ] || mkdir -- "$p"
  [ -d "$p" ] || { echo "invalid target $dst: $p is not a directory inside the sandbox" >&2; exit 2; }
done
[ "$(realpath -e -- "$dst")" = "$dst" ] || { echo "invalid target $dst: it moved while mounting" >&2; exit 2; }
mount --bind -- "$src" "$dst" || exit 1
ino() { find "$1" -maxdepth 0 -printf '%D:%i'; }
[ "$(ino "$src")" = "$(ino "$dst")" ] || { umount -l -- "$dst"; echo "$dst does not show the volume" >&2; exit 1; }
[ -z "$3" ] || [ -e "$dst/$3" ] || [ -L "$dst/$3" ] || { umount -l -- "$dst"; echo "$dst does not show the volume's files" >&2; exit 1; }"#;

/// Undoes such a bind (lazily, as the namespace runtime detaches: a process inside it keeps
/// what it holds open), if the target is one: `$1` the target as mountinfo writes it, `$2`
/// the bind's root (`/<name>`), `$3` the target.
const UNBIND_INSIDE: &str = r#"grep -q -F -e " $2 $1 " /proc/self/mountinfo || exit 0
umount -l -- "$3""#;

/// Where a runtime attach named `name` appears inside the sandbox.
fn attach_source(read_only: bool, name: &str) -> String {
    let root = if read_only {
        bundle::ATTACH_ROOTS[1].1
    } else {
        bundle::ATTACH_ROOTS[0].1
    };
    format!("{root}/{name}")
}

/// One entry name of a volume directory (the probe that the sandbox sees its files).
fn some_entry(dir: std::os::fd::BorrowedFd<'_>) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let fd = rustix::fs::openat(
        dir,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let d = rustix::fs::Dir::read_from(&fd).ok()?;
    d.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_bytes().to_vec())
        .find(|n| n != b"." && n != b"..")
        .map(|n| std::ffi::OsStr::from_bytes(&n).to_owned())
}

/// Runs `f` on a fresh thread inside the mount namespace of the sandbox's gofer, with an fd
/// of the gofer's root (the sandbox's root as the gofer serves it).
fn in_gofer_ns<T: Send>(
    gofer: &Gofer,
    f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: CLONE_FS on this thread only; no other code shares its fs_struct.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(|e| SandboxError::sys("unshare(CLONE_FS)", "attach thread", e))?;
            let root = rustix::fs::open(
                format!("/proc/{}/root", gofer.pid),
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| SandboxError::sys("open", "root of the gofer", e))?;
            // Opened by pid: still ours only if the pidfd's process still runs.
            if sys::pidfd_exited(gofer.pidfd.as_raw_fd()) {
                return Err(SandboxError::Unavailable(
                    "the sandbox's gofer exited".into(),
                ));
            }
            rustix::thread::move_into_thread_name_spaces(
                gofer.pidfd.as_fd(),
                rustix::thread::ThreadNameSpaceType::MOUNT,
            )
            .map_err(|e| SandboxError::sys("setns(CLONE_NEWNS)", "gofer", e))?;
            f(root.as_fd())
        })
        .join()
        .unwrap_or_else(|_| Err(SandboxError::Unavailable("attach thread panicked".into())))
    })
}

/// In the gofer's namespace: makes `<attach root>/<name>` and moves the volume's tree onto
/// it (through the read-only root for a read-only attach).
fn host_attach(
    root: std::os::fd::BorrowedFd<'_>,
    tree: std::os::fd::BorrowedFd<'_>,
    read_only: bool,
    name: &str,
) -> Result<()> {
    use rustix::mount::MoveMountFlags;
    let rw = mounts::open_mount_point(root, bundle::ATTACH_ROOTS[0].1, false)?;
    rustix::fs::mkdirat(&rw, name, rustix::fs::Mode::from_raw_mode(0o755))
        .map_err(|e| SandboxError::sys("mkdirat", format!("attach root/{name}"), e))?;
    let point = mounts::open_mount_point(root, &attach_source(read_only, name), false)?;
    rustix::mount::move_mount(
        tree,
        "",
        point.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| SandboxError::sys("move_mount", format!("volume onto attach root/{name}"), e))
}

/// In the gofer's namespace: unmounts whatever is mounted at `<root>/<name>` under both attach
/// roots (after a restore, a volume shows under both) and removes the directory (`remove`;
/// kept while a bind inside still refers to it).
fn host_detach(root: std::os::fd::BorrowedFd<'_>, name: &str, remove: bool) -> Result<()> {
    use rustix::fs::{AtFlags, OFlags, StatxFlags};
    for (_, dest) in bundle::ATTACH_ROOTS {
        let Ok(dir) = mounts::open_mount_point(root, dest, false) else {
            continue;
        };
        // Bounded: a name holds one mount per root (a few, if stacked).
        for _ in 0..8 {
            let fd = match rustix::fs::openat(
                &dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(_) => break,
            };
            let st = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
                .map_err(|e| SandboxError::sys("statx", format!("attach root/{name}"), e))?;
            if !st
                .stx_attributes
                .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
            {
                break;
            }
            rustix::process::fchdir(&fd)
                .map_err(|e| SandboxError::sys("fchdir", format!("attach root/{name}"), e))?;
            let r = rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH);
            let _ = rustix::process::fchdir(root);
            r.map_err(|e| SandboxError::sys("umount2", format!("attach root/{name}"), e))?;
        }
    }
    if remove {
        if let Ok(rw) = mounts::open_mount_point(root, bundle::ATTACH_ROOTS[0].1, false) {
            let _ = rustix::fs::unlinkat(&rw, name, AtFlags::REMOVEDIR);
        }
    }
    Ok(())
}

/// A sandbox's gofer process (it holds the mount namespace runsc serves files from).
struct Gofer {
    pid: i32,
    pidfd: OwnedFd,
}

impl Gvisor {
    /// The gofer of a running container: its pid from runsc's state file, checked against
    /// its command line (`gofer --bundle <bundle>`) after its pidfd is open.
    fn gofer(&self, id: &str, bundle: &Path) -> Result<Gofer> {
        let unavailable = |why: String| SandboxError::Unavailable(format!("gofer of {id}: {why}"));
        let p = self.state_file(id);
        let text = fs::read(&p).map_err(|e| unavailable(format!("{}: {e}", p.display())))?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| unavailable(e.to_string()))?;
        let pid = v["goferPid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| unavailable("no goferPid in runsc's state".into()))?;
        let pidfd = rustix::process::Pid::from_raw(pid)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
            .ok_or_else(|| unavailable(format!("pid {pid} is gone")))?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let mut want = b"\0--bundle\0".to_vec();
        want.extend_from_slice(bundle.as_os_str().as_encoded_bytes());
        want.push(0);
        let is_ours = cmdline.windows(want.len()).any(|w| w == want.as_slice())
            && cmdline.windows(7).any(|w| w == b"\0gofer\0");
        if !is_ours || sys::pidfd_exited(pidfd.as_raw_fd()) {
            return Err(unavailable(format!(
                "pid {pid} is not this sandbox's gofer"
            )));
        }
        Ok(Gofer { pid, pidfd })
    }

    /// `runsc exec --cap CAP_SYS_ADMIN` of `sh -c script` with `args`: exit code and stderr.
    fn admin_sh(&self, id: &str, script: &str, args: &[&std::ffi::OsStr]) -> Result<(i32, String)> {
        let out = self
            .cmd()
            .args([
                "exec",
                "--cap",
                "CAP_SYS_ADMIN",
                "--cap",
                "CAP_DAC_OVERRIDE",
            ])
            .args([id, "/bin/sh", "-c", script, "sh"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| SandboxError::sys("spawn", "runsc exec", e))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// A target as /proc/self/mountinfo writes it (octal escapes for space, tab, newline, `\`).
fn mountinfo_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Runtime {
    fn gv_gofer(&self, sb: &Sandbox) -> Result<Gofer> {
        self.gvisor()?
            .gofer(&sb.record.id, &bundle::bundle_dir(&sb.dir))
    }

    /// Mounts runtime attach `i` of a running sandbox: the volume under the attach root (host
    /// side, in the gofer's namespace), then its bind inside. An unusable target is
    /// `invalid_argument`; anything else leaves nothing mounted and says why.
    fn gv_mount_attach(&self, sb: &mut Sandbox, i: usize) -> Result<()> {
        let rec = &sb.record.mounts[i];
        let name = rec.attach.clone().expect("a runtime attach");
        let read_only = rec.spec.read_only;
        let src = mounts::resolve_source(&rec.spec, "volume")?;
        let probe = some_entry(src.as_fd());
        let tree = volume_tree(src.as_fd(), read_only)?;
        let gofer = self.gv_gofer(sb)?;
        in_gofer_ns(&gofer, |root| {
            host_attach(root, tree.as_fd(), read_only, &name)
        })?;
        let r = self.gv_bind_inside(sb, i, probe);
        if r.is_err() {
            let _ = in_gofer_ns(&gofer, |root| host_detach(root, &name, true));
        }
        r
    }

    /// The bind inside of runtime attach `i` (its volume already under the attach root).
    fn gv_bind_inside(
        &self,
        sb: &mut Sandbox,
        i: usize,
        probe: Option<std::ffi::OsString>,
    ) -> Result<()> {
        let rec = &sb.record.mounts[i];
        let name = rec.attach.clone().expect("a runtime attach");
        let src = attach_source(rec.spec.read_only, &name);
        let target = rec.spec.target.clone();
        let probe = probe.unwrap_or_default();
        let (code, err) = self.gvisor()?.admin_sh(
            &sb.record.id,
            BIND_INSIDE,
            &[src.as_ref(), target.as_ref(), probe.as_os_str()],
        )?;
        match code {
            0 => {
                sb.record.mounts[i].inside = true;
                Ok(())
            }
            2 => Err(SandboxError::invalid("target", err)),
            _ => Err(SandboxError::Unavailable(format!(
                "the bind of {target} inside the sandbox failed: {err}"
            ))),
        }
    }

    /// Undoes the bind inside of an attach (nothing if it is not there).
    fn gv_unbind_inside(&self, id: &str, target: &str, name: &str) -> Result<()> {
        let (code, err) = self.gvisor()?.admin_sh(
            id,
            UNBIND_INSIDE,
            &[
                mountinfo_escape(target).as_ref(),
                format!("/{name}").as_ref(),
                target.as_ref(),
            ],
        )?;
        if code != 0 {
            return Err(SandboxError::Unavailable(format!(
                "the unmount of {target} inside the sandbox failed: {err}"
            )));
        }
        Ok(())
    }

    /// Right after the container runs (started, restored or resumed): undoes the binds of
    /// detaches it missed, and mounts or binds every runtime attach it does not show yet.
    /// `restored`: its kernel came from a checkpoint (the binds it had are there).
    /// `hosted`: the attaches whose volumes the launcher mounted under the attach root.
    fn gv_settle_attaches(
        &self,
        sb: &mut Sandbox,
        restored: bool,
        hosted: &[(usize, Option<std::ffi::OsString>)],
    ) {
        let id = sb.record.id.clone();
        if !restored {
            sb.record.gv_unbind.clear();
            for m in &mut sb.record.mounts {
                m.inside = false;
            }
        }
        let gofer = self.gv_gofer(sb);
        for u in std::mem::take(&mut sb.record.gv_unbind) {
            let r = self.gv_unbind_inside(&id, &u.target, &u.name);
            if let Err(e) = &r {
                tracing::warn!(%id, target = %u.target, error = %e, "gvisor: a detached bind stays inside");
            }
            if let Ok(g) = &gofer {
                let _ = in_gofer_ns(g, |root| host_detach(root, &u.name, r.is_ok()));
            }
        }
        for i in 0..sb.record.mounts.len() {
            let m = &sb.record.mounts[i];
            let Some(name) = m.attach.clone() else {
                continue;
            };
            match hosted.iter().find(|(h, _)| *h == i) {
                Some((_, probe)) if m.state != AttachmentState::Failed => {
                    let r = if m.inside {
                        Ok(())
                    } else {
                        self.gv_bind_inside(sb, i, probe.clone())
                    };
                    let m = &mut sb.record.mounts[i];
                    match r {
                        Ok(()) => {
                            m.state = AttachmentState::Mounted;
                            m.error = None;
                        }
                        Err(e) => {
                            m.state = AttachmentState::Failed;
                            m.error = Some(e.to_string());
                        }
                    }
                }
                _ => {
                    // Not under the attach root (its volume could not be mounted again): a
                    // bind the restored kernel still has goes, the record says why.
                    if m.inside {
                        let target = m.spec.target.clone();
                        if self.gv_unbind_inside(&id, &target, &name).is_ok() {
                            sb.record.mounts[i].inside = false;
                        }
                    }
                    if let Ok(g) = &gofer {
                        let _ = in_gofer_ns(g, |root| {
                            host_detach(root, &name, !sb.record.mounts[i].inside)
                        });
                    }
                    let m = &mut sb.record.mounts[i];
                    if m.state != AttachmentState::Failed {
                        m.state = AttachmentState::Failed;
                        m.error
                            .get_or_insert_with(|| "the volume could not be mounted again".into());
                    }
                }
            }
        }
    }
}
