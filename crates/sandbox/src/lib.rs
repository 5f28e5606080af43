//! The local sandbox runtime of nullspace: Linux namespaces, volume mounts, lifecycle.
//!
//! **What is where.** `Runtime` (this file) owns the sandboxes of one state dir and their
//! lifecycle: create, exec, attach/detach, pause/resume, hibernate, fork, destroy, files,
//! reconcile; it persists one `sandbox.json` per sandbox. `init.rs` starts a sandbox: a user
//! namespace (root inside = `uid_base` outside, 65,536 ids, made by a short-lived helper that
//! `unshare`s it while we write its maps), then `clone3(CLONE_NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET|
//! CLONE_PIDFD)` of an init that joins the cgroups, unshares a cgroup namespace, makes `/`
//! private, mounts the root (overlayfs: the `base` skeleton under a per-sandbox `upper`), moves
//! in an idmapped read-only clone of the host's `/usr`, builds `/dev` (tmpfs + bind mounts of
//! null, zero, full, random, urandom, tty; devpts; shm), mounts its own `/proc`, sets the host
//! name, brings up `lo`, `pivot_root`s, and only then `setns`es into the user namespace, drops
//! every capability and reaps zombies as pid 1. `exec.rs` runs commands (helper `setns` through
//! the init's pidfd, then a child in the PID namespace with a reduced capability set,
//! no_new_privs and every fd close-on-exec). `mounts.rs` resolves volume directories and
//! subpaths with `openat2(RESOLVE_BENEATH)`, clones them with `open_tree` from the resolved fd,
//! sets `mount_setattr` (idmap, rdonly, nosuid, nodev, private) while detached, and
//! `move_mount`s them from a thread that `setns`ed into the sandbox's mount namespace.
//! `cgroup.rs` the sandbox's cgroups on v1 or v2 (freezer, and the `Limits`: memory, CPU
//! quota, pids); `layer.rs` the capped writable layer (an ext4 image per sandbox, mounted
//! detached); `rootfs.rs` the template skeleton and the fd-based tree copy; `files.rs` the sandbox-view file API
//! (`/proc/<init>/root` + `RESOLVE_IN_ROOT`); `sys.rs` the raw syscalls rustix lacks.
//! `gvisor/` is the second runtime (a record's `runtime`: every public method below hands a
//! gvisor sandbox to its `gv_*` half): runsc containers, hibernate that keeps memory.
//!
//! **Why this shape.** Every namespace but the user namespace is owned by the host's user
//! namespace, so sandbox root — root only in its own user namespace — holds no mount, network
//! or UTS privilege over any of them: it cannot mount, unmount or remount anything (read-only
//! volume mounts stay read-only, create-time and runtime-attached alike), and on top of that
//! its processes lose CAP_SYS_ADMIN and the other dangerous capabilities from every set,
//! bounding set included. Nothing is ever mounted in the host's mount namespace (the
//! sandbox's mounts die with it), so no stray host mount can outlive a crash. The code that
//! runs between `clone3` and `exec` is prepared by the parent and makes raw syscalls only,
//! because the server is multi-threaded; `setns` into a mount namespace runs on a dedicated
//! thread after `unshare(CLONE_FS)`. All pure logic (validation, mountinfo, PATH lookup, env)
//! is unit-tested; the privileged paths are tested for real as root in `tests/`.

mod cgroup;
mod error;
mod exec;
mod files;
mod gvisor;
mod init;
mod layer;
pub mod mounts;
mod rootfs;
mod seccomp;
pub mod spec;
mod sys;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use error::{Result, SandboxError};
pub use mounts::{parse_mountinfo, MountInfo};
pub use spec::{
    AttachmentState, DirEntry, ExecRequest, ExecResult, Limits, MountSpec, MountStatus,
    SandboxInfo, SandboxRuntime, SandboxSpec, SandboxState, TEMPLATES,
};

use cgroup::Cgroups;
use spec::{validate_id, validate_spec, validate_target};

/// How the runtime is set up. `RuntimeConfig::new(state_dir)` gives the defaults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where templates and sandboxes' writable layers live.
    pub state_dir: PathBuf,
    /// Mount point of the cgroup v1 hierarchies (`freezer` required, `pids` used if present).
    pub cgroup_root: PathBuf,
    /// Cgroup directory under each controller that holds one cgroup per sandbox.
    pub cgroup_parent: String,
    /// First host uid/gid of the sandbox's id range (root inside is this uid outside).
    pub uid_base: u32,
    /// Number of ids mapped.
    pub uid_count: u32,
    /// The most processes any sandbox may hold, whatever its `Limits.pids` says.
    pub pids_max: Option<u64>,
    /// Whether sandbox processes run under the seccomp filter (`seccomp.rs`). Always on in
    /// the server; off only to measure what the filter costs.
    pub seccomp: bool,
}

impl RuntimeConfig {
    /// Defaults: `/sys/fs/cgroup`, parent `nullspace`, ids 100000..165536, 4,096 processes.
    pub fn new(state_dir: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            state_dir: state_dir.into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "nullspace".into(),
            uid_base: 100_000,
            uid_count: 65_536,
            pids_max: Some(4096),
            seccomp: true,
        }
    }
}

/// What `reconcile` found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sandboxes whose init still runs, taken over as they are.
    pub adopted: Vec<String>,
    /// Sandboxes whose init was gone: cleaned up, kept as hibernated (writable layer intact).
    pub hibernated: Vec<String>,
    /// Half-created sandbox directories removed (with their cgroups).
    pub removed: Vec<String>,
    /// Mounts under the state dir found in the host's mount table and detached.
    pub stray_mounts: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MountRecord {
    spec: MountSpec,
    state: AttachmentState,
    error: Option<String>,
    mnt_id: Option<u64>,
    /// gvisor: the bundle's bind (`vols/<i>`) that serves this mount (`None`: a runtime
    /// attach, which gvisor cannot make).
    #[serde(default)]
    bind: Option<usize>,
    /// gvisor: a runtime attach's directory under the attach roots (`attach/{rw,ro}/<name>`).
    #[serde(default)]
    attach: Option<String>,
    /// gvisor: the bind of that directory onto the target exists in the sandbox's kernel
    /// (kept in its memory, so across a checkpoint and restore too).
    #[serde(default)]
    inside: bool,
}

/// gvisor: a detached runtime attach whose bind still lives in a checkpoint's kernel: undone
/// right after the restore (its directory is made, empty, so the restore finds it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unbind {
    name: String,
    target: String,
    read_only: bool,
}

/// What is persisted per sandbox (`sandboxes/<id>/sandbox.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    template: String,
    hostname: String,
    env: BTreeMap<String, String>,
    state: SandboxState,
    init_pid: Option<i32>,
    init_start: Option<u64>,
    mounts: Vec<MountRecord>,
    /// Written by servers before limits existed: read as the defaults.
    #[serde(default)]
    limits: Limits,
    /// Written by servers before runtimes existed: read as `namespace`.
    #[serde(default)]
    runtime: SandboxRuntime,
    /// gvisor: binds inside to undo after the next restore (`Unbind`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gv_unbind: Vec<Unbind>,
}

/// A running init and the fds we keep for it.
struct Live {
    pid: i32,
    pidfd: OwnedFd,
    userns: OwnedFd,
    cgroup_procs: Vec<OwnedFd>,
    /// Started by this process (so we reap it); false when adopted after a restart.
    our_child: bool,
}

struct Sandbox {
    record: Record,
    live: Option<Live>,
    /// The running container of a gvisor sandbox.
    gv: Option<gvisor::Live>,
    dir: PathBuf,
    cgroups: Cgroups,
}

/// The sandbox runtime of one state dir. Methods block (run them off an async executor, e.g.
/// with `spawn_blocking`); different sandboxes proceed in parallel, one sandbox's operations
/// are serialised. Sandboxes outlive the `Runtime` (and the process): `reconcile` adopts them.
pub struct Runtime {
    cfg: RuntimeConfig,
    template_dir: PathBuf,
    layers: layer::Layers,
    /// The seccomp filter's program, built once (`None` when configured off).
    seccomp: Option<Vec<seccompiler::sock_filter>>,
    sandboxes: Mutex<HashMap<String, Arc<Mutex<Sandbox>>>>,
    /// Ids being created or forked right now (reconcile leaves their directories alone).
    creating: Mutex<HashSet<String>>,
    /// The gvisor runtime, or why this host cannot run it.
    gvisor: std::result::Result<gvisor::Gvisor, String>,
}

/// Marks an id as being created for as long as it lives.
struct Creating<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| SandboxError::invalid("path", format!("{s:?} contains NUL")))
}

impl Runtime {
    /// A runtime with default settings over `state_dir` (created if missing). Reconciles.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Runtime> {
        Runtime::with_config(RuntimeConfig::new(state_dir))
    }

    /// A runtime with explicit settings. Checks the host, builds the `base` template if
    /// missing and reconciles what an earlier run left (see `reconcile`).
    pub fn with_config(cfg: RuntimeConfig) -> Result<Runtime> {
        if rustix::process::geteuid().as_raw() != 0 {
            return Err(SandboxError::Unavailable(
                "the sandbox runtime needs root".into(),
            ));
        }
        if let Some(why) = cgroup::unavailable(&cfg.cgroup_root) {
            return Err(SandboxError::Unavailable(format!(
                "sandboxes cannot be limited, so none will run: {why}"
            )));
        }
        let sd = cfg.state_dir.to_string_lossy();
        if sd.contains([',', ':', '\n']) || !cfg.state_dir.is_absolute() {
            return Err(SandboxError::invalid(
                "state_dir",
                format!("{sd:?} must be absolute, without ',' or ':'"),
            ));
        }
        fs::create_dir_all(cfg.state_dir.join("sandboxes"))
            .map_err(|e| SandboxError::sys("mkdir", cfg.state_dir.display().to_string(), e))?;
        let template_dir = rootfs::ensure_base_template(&cfg.state_dir, cfg.uid_base)?;
        let layers = layer::Layers::new(&cfg.state_dir)?;
        let seccomp = if cfg.seccomp {
            Some(seccomp::program()?)
        } else {
            None
        };
        let gvisor = gvisor::Gvisor::find(&cfg.state_dir);
        let rt = Runtime {
            gvisor,
            cfg,
            template_dir,
            layers,
            seccomp,
            sandboxes: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
        };
        rt.reconcile()?;
        Ok(rt)
    }

    /// The templates `create` accepts.
    pub fn templates(&self) -> Vec<String> {
        TEMPLATES.iter().map(|s| s.to_string()).collect()
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("sandboxes").join(id)
    }

    fn cgroups_of(&self, id: &str) -> Cgroups {
        Cgroups::new(&self.cfg.cgroup_root, &self.cfg.cgroup_parent, id)
    }

    fn creating(&self, id: &str) -> Creating<'_> {
        lock(&self.creating).insert(id.to_string());
        Creating {
            set: &self.creating,
            id: id.to_string(),
        }
    }

    fn get(&self, id: &str) -> Result<Arc<Mutex<Sandbox>>> {
        lock(&self.sandboxes)
            .get(id)
            .cloned()
            .ok_or_else(|| SandboxError::not_found(id))
    }

    /// Creates and starts a sandbox; returns when it is ready for `exec`, every mount in place.
    /// Any failure undoes everything (no half-made sandbox, no mount left).
    pub fn create(&self, spec: SandboxSpec) -> Result<SandboxInfo> {
        validate_spec(&spec)?;
        if spec.runtime == SandboxRuntime::Gvisor {
            self.gvisor()?;
        }
        let sources = spec
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| mounts::resolve_source(m, &format!("mounts[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let _creating = self.creating(&spec.id);
        let dir = self.dir_of(&spec.id);
        // The directory is the reservation of the id.
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::AlreadyExists {
                    id: spec.id.clone(),
                })
            }
            Err(e) => return Err(SandboxError::sys("mkdir", dir.display().to_string(), e)),
        }
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| spec.id.chars().take(63).collect());
        let cgroups = self.cgroups_of(&spec.id);
        let mut sb = Sandbox {
            record: Record {
                id: spec.id.clone(),
                template: spec.template.clone(),
                hostname,
                env: spec.env.clone(),
                limits: spec.limits,
                runtime: spec.runtime,
                gv_unbind: Vec::new(),
                state: SandboxState::Hibernated,
                init_pid: None,
                init_start: None,
                mounts: spec
                    .mounts
                    .iter()
                    .map(|m| MountRecord {
                        spec: m.clone(),
                        state: AttachmentState::Released,
                        error: None,
                        mnt_id: None,
                        bind: None,
                        attach: None,
                        inside: false,
                    })
                    .collect(),
            },
            live: None,
            gv: None,
            dir: dir.clone(),
            cgroups,
        };
        let built = (|| {
            self.layers.make(&dir, spec.limits.disk_bytes)?;
            let m = layer::mount(&dir)?;
            if spec.runtime == SandboxRuntime::Gvisor {
                // gVisor's root is the host's root on the files it serves: no id shift.
                rootfs::create_layer(&dir, &m.upper(), 0, &sb.record.hostname)?;
                self.gv_create(&mut sb, m)?;
                return self.persist(&sb);
            }
            rootfs::create_layer(&dir, &m.upper(), self.cfg.uid_base, &sb.record.hostname)?;
            self.boot(&mut sb, Some(m))?;
            let live = sb.live.as_ref().expect("booted");
            let trees = sources
                .iter()
                .zip(&spec.mounts)
                .map(|(src, m)| mounts::prepare_tree(src.as_fd(), m.read_only, live.userns.as_fd()))
                .collect::<Result<Vec<_>>>()?;
            let targets: Vec<String> = spec.mounts.iter().map(|m| m.target.clone()).collect();
            let ids = mounts::in_mount_ns(live.pidfd.as_fd(), self.cfg.uid_base, |root| {
                trees
                    .iter()
                    .zip(&targets)
                    .map(|(t, target)| mounts::attach_here(root, t.as_fd(), target))
                    .collect()
            })?;
            let ids: Vec<u64> = ids;
            for (rec, id) in sb.record.mounts.iter_mut().zip(ids) {
                rec.state = AttachmentState::Mounted;
                rec.mnt_id = Some(id);
            }
            self.persist(&sb)
        })();
        if let Err(e) = built {
            self.undo(&mut sb);
            return Err(e);
        }
        let info = info_of(&sb);
        lock(&self.sandboxes).insert(spec.id, Arc::new(Mutex::new(sb)));
        Ok(info)
    }

    /// Undoes a half-made sandbox (create, fork): processes, cgroups, layer, directory.
    fn undo(&self, sb: &mut Sandbox) {
        if sb.record.runtime == SandboxRuntime::Gvisor {
            self.gv_teardown(sb);
        } else {
            let _ = self.teardown(sb);
        }
        let _ = sb.cgroups.remove();
        let _ = layer::release(&sb.dir);
        let _ = fs::remove_dir_all(&sb.dir);
    }

    /// Starts the init over the sandbox's existing writable layer (no volume mounts yet);
    /// `layer`: already mounted by the caller (else mounted here).
    fn boot(&self, sb: &mut Sandbox, layer: Option<layer::Mounted>) -> Result<()> {
        let layer = match layer {
            Some(m) => m,
            None => layer::mount(&sb.dir)?,
        };
        rootfs::sanitize_upper(&layer.upper())?;
        sb.cgroups.create(&sb.record.limits, self.cfg.pids_max)?;
        let userns = init::new_userns(self.cfg.uid_base, self.cfg.uid_count)?;
        let usr = mounts::usr_tree(userns.as_fd())?;
        let d = |p: &Path| p.to_string_lossy().into_owned();
        let u = self.cfg.uid_base;
        let stage = sb.dir.join("stage");
        fs::create_dir_all(&stage).map_err(|e| SandboxError::sys("mkdir", d(&stage), e))?;
        let layer_source = match layer.tree() {
            Some(fd) => init::LayerSource::Tree(
                fd.try_clone_to_owned()
                    .map_err(|e| SandboxError::sys("dup", "layer", e))?,
            ),
            None => init::LayerSource::Dir(cstring(&d(&layer.root))?),
        };
        let plan = init::InitPlan {
            cgroup_procs: sb.cgroups.procs_fds()?,
            rootfs: cstring(&d(&sb.dir.join("rootfs")))?,
            stage: cstring(&d(&stage))?,
            lower: cstring(&d(&self.template_dir))?,
            layer: layer_source,
            seccomp: self.seccomp.clone(),
            usr_tree: usr,
            userns: userns
                .try_clone()
                .map_err(|e| SandboxError::sys("dup", "userns", e))?,
            hostname: cstring(&sb.record.hostname)?,
            dev_data: cstring(&format!("mode=755,size=1m,uid={u},gid={u}"))?,
            shm_data: cstring(&format!("mode=1777,size=64m,uid={u},gid={u}"))?,
            arg_areas: init::arg_areas(),
        };
        let p = init::start_init(&plan)?;
        // The init's overlay holds the layer's file system now.
        drop(layer);
        // The OOM killer picks among the sandbox's own processes, never its pid 1 (whose
        // death would end the sandbox); exec'd processes do not inherit this.
        let _ = fs::write(format!("/proc/{}/oom_score_adj", p.pid), "-1000");
        sb.record.init_pid = Some(p.pid);
        sb.record.init_start = start_time(p.pid);
        sb.record.state = SandboxState::Running;
        sb.live = Some(Live {
            pid: p.pid,
            pidfd: p.pidfd,
            userns,
            cgroup_procs: plan.cgroup_procs,
            our_child: true,
        });
        Ok(())
    }

    /// Stops every process of the sandbox and releases its mounts; keeps the directory.
    fn teardown(&self, sb: &mut Sandbox) -> Result<()> {
        if let Some(live) = sb.live.take() {
            if !sys::pidfd_exited(live.pidfd.as_raw_fd()) && sb.cgroups.state() != "FROZEN" {
                // Release volume mounts first, so their references drop now, not lazily.
                let _ = self.release_mounts(sb, &live);
            }
            let _ = sys::pidfd_kill(live.pidfd.as_raw_fd());
            // The init's exit takes its whole PID namespace with it; a frozen one must thaw to die.
            let _ = sb.cgroups.thaw();
            sys::pidfd_wait_exit(live.pidfd.as_raw_fd(), 2000);
            sb.cgroups.kill_all()?;
            let _ = sb.cgroups.thaw();
            if live.our_child {
                let _ = sys::wait_pid(live.pid);
            }
        } else {
            sb.cgroups.kill_all()?;
        }
        for m in &mut sb.record.mounts {
            if m.state == AttachmentState::Mounted {
                m.state = AttachmentState::Released;
            }
            m.mnt_id = None;
        }
        sb.record.init_pid = None;
        sb.record.init_start = None;
        sb.record.state = SandboxState::Hibernated;
        Ok(())
    }

    /// Detaches every mounted volume (records go `released`).
    fn release_mounts(&self, sb: &mut Sandbox, live: &Live) -> Result<()> {
        let table = mounts::mountinfo_of(Some(live.pid)).unwrap_or_default();
        let todo: Vec<(usize, String, u64)> = sb
            .record
            .mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| m.state == AttachmentState::Mounted)
            .filter_map(|(i, m)| {
                let id = m.mnt_id?;
                let mp = table
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.mount_point.clone())?;
                Some((i, mp, id))
            })
            .collect();
        let res = mounts::in_mount_ns(live.pidfd.as_fd(), self.cfg.uid_base, |root| {
            for (_, mp, id) in &todo {
                mounts::detach_here(root, mp, *id)?;
            }
            Ok(())
        });
        for m in &mut sb.record.mounts {
            if m.state == AttachmentState::Mounted {
                m.state = AttachmentState::Released;
                m.mnt_id = None;
            }
        }
        res
    }

    /// Mounts every recorded mount again (resume, wake, fork); each ends `mounted` or `failed`.
    fn remount_all(&self, sb: &mut Sandbox) {
        let Some(live) = sb.live.as_ref() else { return };
        let mut prepared = Vec::new();
        for (i, m) in sb.record.mounts.iter_mut().enumerate() {
            let tree = mounts::resolve_source(&m.spec, &format!("mounts[{i}]")).and_then(|fd| {
                mounts::prepare_tree(fd.as_fd(), m.spec.read_only, live.userns.as_fd())
            });
            match tree {
                Ok(t) => prepared.push((i, t)),
                Err(e) => {
                    m.state = AttachmentState::Failed;
                    m.error = Some(e.to_string());
                    m.mnt_id = None;
                }
            }
        }
        let targets: Vec<String> = prepared
            .iter()
            .map(|(i, _)| sb.record.mounts[*i].spec.target.clone())
            .collect();
        let results = mounts::in_mount_ns(live.pidfd.as_fd(), self.cfg.uid_base, |root| {
            Ok(prepared
                .iter()
                .zip(&targets)
                .map(|((_, t), target)| mounts::attach_here(root, t.as_fd(), target))
                .collect::<Vec<_>>())
        });
        match results {
            Ok(results) => {
                for ((i, _), r) in prepared.iter().zip(results) {
                    let m = &mut sb.record.mounts[*i];
                    match r {
                        Ok(id) => {
                            m.state = AttachmentState::Mounted;
                            m.error = None;
                            m.mnt_id = Some(id);
                        }
                        Err(e) => {
                            m.state = AttachmentState::Failed;
                            m.error = Some(e.to_string());
                            m.mnt_id = None;
                        }
                    }
                }
            }
            Err(e) => {
                for (i, _) in &prepared {
                    let m = &mut sb.record.mounts[*i];
                    m.state = AttachmentState::Failed;
                    m.error = Some(e.to_string());
                }
            }
        }
    }

    fn persist(&self, sb: &Sandbox) -> Result<()> {
        let p = sb.dir.join("sandbox.json");
        let tmp = sb.dir.join(".sandbox.json.tmp");
        let text = serde_json::to_vec_pretty(&sb.record).expect("record serialises");
        fs::write(&tmp, text)
            .map_err(|e| SandboxError::sys("write", tmp.display().to_string(), e))?;
        fs::rename(&tmp, &p).map_err(|e| SandboxError::sys("rename", p.display().to_string(), e))
    }

    /// If the init died behind our back, clean up and call the sandbox hibernated.
    fn check_alive(&self, sb: &mut Sandbox) -> Result<()> {
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_check_alive(sb);
        }
        let dead = sb
            .live
            .as_ref()
            .is_some_and(|l| sys::pidfd_exited(l.pidfd.as_raw_fd()));
        if dead {
            tracing::warn!(id = %sb.record.id, "sandbox init exited; keeping the sandbox as hibernated");
            self.teardown(sb)?;
            let _ = sb.cgroups.remove();
            self.persist(sb)?;
        }
        Ok(())
    }

    /// Wakes a hibernated sandbox (used by exec and files, which auto-resume).
    fn ensure_running(&self, sb: &mut Sandbox) -> Result<()> {
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_ensure_running(sb);
        }
        self.check_alive(sb)?;
        match sb.record.state {
            SandboxState::Running => Ok(()),
            SandboxState::Hibernated => self.wake(sb),
            SandboxState::Paused => Err(SandboxError::Conflict {
                id: sb.record.id.clone(),
                reason: "sandbox is paused; resume it first".into(),
            }),
        }
    }

    fn wake(&self, sb: &mut Sandbox) -> Result<()> {
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_wake(sb);
        }
        self.wake_with(sb, None)
    }

    fn wake_with(&self, sb: &mut Sandbox, layer: Option<layer::Mounted>) -> Result<()> {
        if let Err(e) = self.boot(sb, layer) {
            let _ = self.teardown(sb);
            let _ = sb.cgroups.remove();
            return Err(e);
        }
        self.remount_all(sb);
        self.persist(sb)
    }

    /// The sandbox's state and mounts.
    pub fn info(&self, id: &str) -> Result<SandboxInfo> {
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        self.check_alive(&mut sb)?;
        Ok(info_of(&sb))
    }

    /// Every sandbox of this runtime.
    pub fn list(&self) -> Vec<SandboxInfo> {
        let all: Vec<_> = lock(&self.sandboxes).values().cloned().collect();
        let mut out: Vec<SandboxInfo> = all.iter().map(|s| info_of(&lock(s))).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Runs a command in the sandbox (waking it if hibernated). A program that does not exist
    /// is exit code 127, not an error.
    pub fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecResult> {
        let sb = self.get(id)?;
        let (pidfd, cgroup_procs, env, cgroups) = {
            let mut sb = lock(&sb);
            if sb.record.runtime == SandboxRuntime::Gvisor {
                return self.gv_exec(&mut sb, &req);
            }
            self.ensure_running(&mut sb)?;
            let live = sb.live.as_ref().expect("running");
            let dup = |f: &OwnedFd| {
                f.try_clone()
                    .map_err(|e| SandboxError::sys("dup", "sandbox fd", e))
            };
            (
                dup(&live.pidfd)?,
                live.cgroup_procs
                    .iter()
                    .map(dup)
                    .collect::<Result<Vec<_>>>()?,
                sb.record.env.clone(),
                sb.cgroups.clone(),
            )
        };
        let ooms = cgroups.oom_kills();
        let mut res = exec::run(
            &exec::Target {
                pidfd: &pidfd,
                cgroup_procs: &cgroup_procs,
                sandbox_env: &env,
                seccomp: self.seccomp.as_deref(),
            },
            &req,
        )?;
        // Any OOM kill in the sandbox while the command ran (another exec's included).
        res.oom_killed = cgroups.oom_kills() > ooms;
        Ok(res)
    }

    /// Attaches a volume to a running sandbox. Bad input is an error and records nothing; on
    /// success the mount is visible inside at once. On a paused or hibernated sandbox the
    /// intent is recorded (`released`) and mounted on resume.
    pub fn attach(&self, id: &str, mount: MountSpec) -> Result<MountStatus> {
        validate_target("target", &mount.target)?;
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        self.check_alive(&mut sb)?;
        if sb
            .record
            .mounts
            .iter()
            .any(|m| m.spec.target == mount.target)
        {
            return Err(SandboxError::invalid(
                "target",
                format!("{:?} already has a mount", mount.target),
            ));
        }
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_attach(&mut sb, mount);
        }
        let source = mounts::resolve_source(&mount, "")?;
        let mut rec = MountRecord {
            spec: mount,
            state: AttachmentState::Released,
            error: None,
            mnt_id: None,
            bind: None,
            attach: None,
            inside: false,
        };
        if let (SandboxState::Running, Some(live)) = (sb.record.state, sb.live.as_ref()) {
            let tree =
                mounts::prepare_tree(source.as_fd(), rec.spec.read_only, live.userns.as_fd())?;
            let target = rec.spec.target.clone();
            let id = mounts::in_mount_ns(live.pidfd.as_fd(), self.cfg.uid_base, |root| {
                mounts::attach_here(root, tree.as_fd(), &target)
            })?;
            rec.state = AttachmentState::Mounted;
            rec.mnt_id = Some(id);
        }
        let status = status_of(&rec);
        sb.record.mounts.push(rec);
        self.persist(&sb)?;
        Ok(status)
    }

    /// Detaches the mount at `target` and forgets it.
    pub fn detach(&self, id: &str, target: &str) -> Result<()> {
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        self.check_alive(&mut sb)?;
        let Some(i) = sb
            .record
            .mounts
            .iter()
            .position(|m| m.spec.target == target)
        else {
            return Err(SandboxError::NotFound {
                kind: "mount",
                name: target.to_string(),
            });
        };
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_detach(&mut sb, i);
        }
        let rec = sb.record.mounts[i].clone();
        if let (AttachmentState::Mounted, Some(live), Some(mnt_id)) =
            (rec.state, sb.live.as_ref(), rec.mnt_id)
        {
            let table = mounts::mountinfo_of(Some(live.pid))
                .map_err(|e| SandboxError::sys("read", "mountinfo of sandbox", e))?;
            if let Some(mp) = table
                .iter()
                .find(|t| t.id == mnt_id)
                .map(|t| t.mount_point.clone())
            {
                mounts::in_mount_ns(live.pidfd.as_fd(), self.cfg.uid_base, |root| {
                    mounts::detach_here(root, &mp, mnt_id)
                })?;
            }
        }
        sb.record.mounts.remove(i);
        self.persist(&sb)
    }

    /// Freezes every process (cgroup freezer) and releases the volume mounts.
    pub fn pause(&self, id: &str) -> Result<SandboxInfo> {
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_pause(&mut sb);
        }
        self.check_alive(&mut sb)?;
        if sb.record.state != SandboxState::Running {
            return Ok(info_of(&sb));
        }
        sb.cgroups.freeze()?;
        let live = sb.live.take().expect("running");
        let res = self.release_mounts(&mut sb, &live);
        sb.live = Some(live);
        sb.record.state = SandboxState::Paused;
        self.persist(&sb)?;
        res?;
        Ok(info_of(&sb))
    }

    /// Resumes a paused sandbox (mounts again, then thaws) or wakes a hibernated one.
    /// A mount that cannot be made again ends `failed` with the reason; the sandbox runs.
    pub fn resume(&self, id: &str) -> Result<SandboxInfo> {
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_resume(&mut sb);
        }
        self.check_alive(&mut sb)?;
        match sb.record.state {
            SandboxState::Running => {}
            SandboxState::Paused => {
                self.remount_all(&mut sb);
                sb.cgroups.thaw()?;
                sb.record.state = SandboxState::Running;
                self.persist(&sb)?;
            }
            SandboxState::Hibernated => self.wake(&mut sb)?,
        }
        Ok(info_of(&sb))
    }

    /// Stops every process and frees its memory, keeping the writable layer and the mount
    /// intents (`released`). `exec`, `files` and `resume` wake it.
    pub fn hibernate(&self, id: &str) -> Result<SandboxInfo> {
        let sb = self.get(id)?;
        let mut sb = lock(&sb);
        if sb.record.runtime == SandboxRuntime::Gvisor {
            return self.gv_hibernate(&mut sb);
        }
        self.check_alive(&mut sb)?;
        if sb.record.state != SandboxState::Hibernated {
            self.teardown(&mut sb)?;
            sb.cgroups.remove()?;
            self.persist(&sb)?;
        }
        Ok(info_of(&sb))
    }

    /// Kills everything, releases every mount and removes the sandbox's state (volume data is
    /// never touched: it is only ever mounted, never copied or deleted).
    pub fn destroy(&self, id: &str) -> Result<()> {
        let arc = self.get(id)?;
        let mut sb = lock(&arc);
        if sb.record.runtime == SandboxRuntime::Gvisor {
            self.gv_destroy(&mut sb)?;
        } else {
            self.teardown(&mut sb)?;
        }
        sb.cgroups.remove()?;
        layer::release(&sb.dir)?;
        fs::remove_dir_all(&sb.dir)
            .map_err(|e| SandboxError::sys("remove", sb.dir.display().to_string(), e))?;
        lock(&self.sandboxes).remove(id);
        Ok(())
    }

    /// Destroys every sandbox of this runtime (tests, benchmarks, shutdown of a throwaway
    /// runtime). Returns the first error after trying all.
    pub fn destroy_all(&self) -> Result<()> {
        let ids: Vec<String> = lock(&self.sandboxes).keys().cloned().collect();
        let mut first = None;
        for id in ids {
            if let Err(e) = self.destroy(&id) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// A new sandbox `new_id` with a copy of `src`'s writable layer and the same mounts
    /// (volumes are shared, never copied). A running source is frozen during the copy.
    pub fn fork(&self, src: &str, new_id: &str) -> Result<SandboxInfo> {
        validate_id("new_id", new_id)?;
        let src_arc = self.get(src)?;
        let _creating = self.creating(new_id);
        let dir = self.dir_of(new_id);
        if lock(&src_arc).record.runtime == SandboxRuntime::Gvisor {
            return self.fork_gvisor(&src_arc, new_id, dir);
        }
        let (record, copy_res) = {
            let mut s = lock(&src_arc);
            self.check_alive(&mut s)?;
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(SandboxError::AlreadyExists {
                        id: new_id.to_string(),
                    })
                }
                Err(e) => return Err(SandboxError::sys("mkdir", dir.display().to_string(), e)),
            }
            let froze = s.record.state == SandboxState::Running;
            if froze {
                if let Err(e) = s.cgroups.freeze() {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
            let r = match (layer::has_image(&s.dir), &s.live) {
                // Frozen (or paused): flush its file system, then copy the image.
                (true, Some(live)) => layer::sync_live(live.pid)
                    .and_then(|()| layer::copy_image(&s.dir.join(layer::IMAGE), &dir)),
                (true, None) => layer::copy_image(&s.dir.join(layer::IMAGE), &dir),
                // An old uncapped layer: copied into a fresh capped one.
                (false, _) => self.layers.make(&dir, s.record.limits.disk_bytes),
            };
            let r = r.and_then(|()| rootfs::make_mount_point(&dir));
            let r = match r {
                Ok(()) if !layer::has_image(&s.dir) => layer::mount(&dir)
                    .and_then(|m| rootfs::copy_upper(&s.dir.join("upper"), &m.upper())),
                other => other,
            };
            if froze {
                let _ = s.cgroups.thaw();
            }
            (s.record.clone(), r)
        };
        let hostname: String = new_id.chars().take(63).collect();
        let mut sb = Sandbox {
            record: Record {
                id: new_id.to_string(),
                template: record.template,
                hostname: hostname.clone(),
                env: record.env,
                limits: record.limits,
                runtime: record.runtime,
                gv_unbind: Vec::new(),
                state: SandboxState::Hibernated,
                init_pid: None,
                init_start: None,
                mounts: record
                    .mounts
                    .into_iter()
                    .map(|m| MountRecord {
                        spec: m.spec,
                        state: AttachmentState::Released,
                        error: None,
                        mnt_id: None,
                        bind: None,
                        attach: None,
                        inside: false,
                    })
                    .collect(),
            },
            live: None,
            gv: None,
            dir: dir.clone(),
            cgroups: self.cgroups_of(new_id),
        };
        let built = copy_res.and_then(|()| layer::mount(&dir)).and_then(|m| {
            rootfs::write_identity(&m.upper(), self.cfg.uid_base, &hostname)?;
            self.wake_with(&mut sb, Some(m))
        });
        if let Err(e) = built {
            self.undo(&mut sb);
            return Err(e);
        }
        let info = info_of(&sb);
        lock(&self.sandboxes).insert(new_id.to_string(), Arc::new(Mutex::new(sb)));
        Ok(info)
    }

    /// `fork` of a gvisor sandbox: memory and processes included (`gvisor::gv_fork`).
    fn fork_gvisor(
        &self,
        src_arc: &Arc<Mutex<Sandbox>>,
        new_id: &str,
        dir: PathBuf,
    ) -> Result<SandboxInfo> {
        let mut s = lock(src_arc);
        self.gvisor()?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::AlreadyExists {
                    id: new_id.to_string(),
                })
            }
            Err(e) => return Err(SandboxError::sys("mkdir", dir.display().to_string(), e)),
        }
        let mut record = s.record.clone();
        record.id = new_id.to_string();
        record.hostname = new_id.chars().take(63).collect();
        record.state = SandboxState::Hibernated;
        record.init_pid = None;
        record.init_start = None;
        for m in &mut record.mounts {
            m.state = AttachmentState::Released;
            m.error = None;
            m.mnt_id = None;
        }
        let mut sb = Sandbox {
            record,
            live: None,
            gv: None,
            dir,
            cgroups: self.cgroups_of(new_id),
        };
        let built = self
            .gv_fork(&mut s, &mut sb)
            .and_then(|()| self.persist(&sb));
        drop(s);
        if let Err(e) = built {
            self.undo(&mut sb);
            return Err(e);
        }
        let info = info_of(&sb);
        lock(&self.sandboxes).insert(new_id.to_string(), Arc::new(Mutex::new(sb)));
        Ok(info)
    }

    fn runtime_of(&self, id: &str) -> Result<SandboxRuntime> {
        let sb = self.get(id)?;
        let runtime = lock(&sb).record.runtime;
        Ok(runtime)
    }

    fn with_files<T: Send>(
        &self,
        id: &str,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        let sb = self.get(id)?;
        let (pid, pidfd) = {
            let mut sb = lock(&sb);
            self.check_alive(&mut sb)?;
            if sb.record.state == SandboxState::Hibernated {
                self.wake(&mut sb)?;
            }
            let live = sb.live.as_ref().expect("running or paused");
            (
                live.pid,
                live.pidfd
                    .try_clone()
                    .map_err(|e| SandboxError::sys("dup", "pidfd", e))?,
            )
        };
        files::with_view(pid, pidfd.as_fd(), self.cfg.uid_base, f)
    }

    /// Reads a file as the sandbox sees it (volume mounts included).
    pub fn read_file(&self, id: &str, path: &str) -> Result<Vec<u8>> {
        if self.runtime_of(id)? == SandboxRuntime::Gvisor {
            return self.gv_read(id, path);
        }
        self.with_files(id, |root| files::read(root, path))
    }

    /// Writes a file as the sandbox's root would (parents created, atomic replace).
    pub fn write_file(&self, id: &str, path: &str, data: &[u8]) -> Result<()> {
        if self.runtime_of(id)? == SandboxRuntime::Gvisor {
            return self.gv_write(id, path, data);
        }
        self.with_files(id, |root| files::write(root, path, data))
    }

    /// Lists a directory as the sandbox sees it.
    pub fn list_dir(&self, id: &str, path: &str) -> Result<Vec<DirEntry>> {
        if self.runtime_of(id)? == SandboxRuntime::Gvisor {
            return self.gv_list(id, path);
        }
        self.with_files(id, |root| files::list(root, path))
    }

    /// Brings records and the host in line after a (re)start: adopts sandboxes whose init
    /// still runs; for those whose init is gone, kills what is left in their cgroup and keeps
    /// them hibernated; removes half-created sandboxes (and their cgroups); detaches any mount
    /// under the state dir from the host's mount table (the runtime makes none there, so
    /// this only finds leftovers of a foreign or older process).
    pub fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        if let Ok(table) = mounts::mountinfo_of(None) {
            let sd = self.cfg.state_dir.to_string_lossy().into_owned();
            let mut stray: Vec<&MountInfo> = table
                .iter()
                .filter(|m| m.mount_point == sd || m.mount_point.starts_with(&format!("{sd}/")))
                .collect();
            stray.sort_by_key(|m| std::cmp::Reverse(m.mount_point.len()));
            for m in stray {
                if rustix::mount::unmount(
                    m.mount_point.as_str(),
                    rustix::mount::UnmountFlags::DETACH,
                )
                .is_ok()
                {
                    report.stray_mounts += 1;
                }
            }
        }
        let root = self.cfg.state_dir.join("sandboxes");
        let entries = fs::read_dir(&root)
            .map_err(|e| SandboxError::sys("readdir", root.display().to_string(), e))?;
        for ent in entries.flatten() {
            let Ok(id) = ent.file_name().into_string() else {
                continue;
            };
            if lock(&self.sandboxes).contains_key(&id) || lock(&self.creating).contains(&id) {
                continue;
            }
            let dir = ent.path();
            let cgroups = self.cgroups_of(&id);
            let record: Option<Record> = fs::read(dir.join("sandbox.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(record) = record else {
                let _ = cgroups.kill_all();
                let _ = cgroups.remove();
                let _ = layer::release(&dir);
                let _ = fs::remove_dir_all(&dir);
                report.removed.push(id);
                continue;
            };
            let mut sb = Sandbox {
                record,
                live: None,
                gv: None,
                dir,
                cgroups,
            };
            if sb.record.runtime == SandboxRuntime::Gvisor {
                let was = sb.record.state;
                if self.gv_reconcile(&mut sb) {
                    report.adopted.push(id.clone());
                } else if was != SandboxState::Hibernated {
                    report.hibernated.push(id.clone());
                }
                self.persist(&sb)?;
                lock(&self.sandboxes).insert(id, Arc::new(Mutex::new(sb)));
                continue;
            }
            match adopt(&sb.record, &sb.cgroups) {
                Some(live) => {
                    sb.record.state = if sb.cgroups.state() == "FROZEN" {
                        SandboxState::Paused
                    } else {
                        SandboxState::Running
                    };
                    let table = mounts::mountinfo_of(Some(live.pid)).unwrap_or_default();
                    for m in &mut sb.record.mounts {
                        if m.state == AttachmentState::Mounted
                            && !m.mnt_id.is_some_and(|id| table.iter().any(|t| t.id == id))
                        {
                            m.state = AttachmentState::Released;
                            m.mnt_id = None;
                        }
                    }
                    sb.live = Some(live);
                    report.adopted.push(id.clone());
                }
                None => {
                    let was = sb.record.state;
                    self.teardown(&mut sb)?;
                    let _ = sb.cgroups.remove();
                    if was != SandboxState::Hibernated {
                        report.hibernated.push(id.clone());
                    }
                }
            }
            self.persist(&sb)?;
            lock(&self.sandboxes).insert(id, Arc::new(Mutex::new(sb)));
        }
        Ok(report)
    }
}

/// Takes over a sandbox whose init still runs (same pid, same start time).
fn adopt(record: &Record, cgroups: &Cgroups) -> Option<Live> {
    let pid = record.init_pid?;
    if start_time(pid)? != record.init_start? {
        return None;
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid)?,
        rustix::process::PidfdFlags::empty(),
    )
    .ok()?;
    let userns: OwnedFd = fs::File::open(format!("/proc/{pid}/ns/user")).ok()?.into();
    // Checked after opening: the fds above belong to our init, not to a reused pid.
    if sys::pidfd_exited(pidfd.as_raw_fd()) || start_time(pid)? != record.init_start? {
        return None;
    }
    let cgroup_procs = cgroups.procs_fds().ok()?;
    Some(Live {
        pid,
        pidfd,
        userns,
        cgroup_procs,
        our_child: false,
    })
}

/// A process's start time (clock ticks since boot; field 22 of /proc/<pid>/stat).
fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn status_of(m: &MountRecord) -> MountStatus {
    MountStatus {
        spec: m.spec.clone(),
        state: m.state,
        error: m.error.clone(),
    }
}

fn info_of(sb: &Sandbox) -> SandboxInfo {
    SandboxInfo {
        id: sb.record.id.clone(),
        template: sb.record.template.clone(),
        state: sb.record.state,
        runtime: sb.record.runtime,
        init_pid: sb
            .live
            .as_ref()
            .map(|l| l.pid)
            .or(sb.gv.as_ref().map(|l| l.pid)),
        hostname: sb.record.hostname.clone(),
        env: sb.record.env.clone(),
        mounts: sb.record.mounts.iter().map(status_of).collect(),
        limits: sb.record.limits,
    }
}
