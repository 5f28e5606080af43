//! The sandbox's cgroups, on cgroup v1 or v2, and its resource limits.
//!
//! **v1** (one hierarchy per controller, `<root>/<controller>/<parent>/<id>`): `freezer`
//! (pause/resume, and the list of every process to kill) and `memory` are required; `cpu`
//! (CFS quota) and `pids` are used when mounted. **v2** (the unified hierarchy, detected by
//! `<root>/cgroup.controllers`): one directory `<root>/<parent>/<id>` with `memory`, `cpu` and
//! `pids` enabled in the parents' `cgroup.subtree_control`, and `cgroup.freeze` as the freezer.
//!
//! Limits: memory `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` equal to it when
//! swap is accounted, `memory.swappiness` 0) on v1, `memory.max` and `memory.swap.max` 0 on
//! v2; CPU a CFS quota of `cpu_millicores / 1000` periods of 100 ms; pids `pids.max`. The
//! OOM-kill counter (`oom_kill` of v1's `memory.oom_control`, v2's `memory.events`) tells exec
//! whether the kernel killed something in the sandbox.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, SandboxError};
use crate::spec::Limits;

/// CFS period: 100 ms, the kernel's default.
pub(crate) const CFS_PERIOD_US: u64 = 100_000;

/// Which cgroup hierarchy a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// Which layout `root` is: v2 when it is the unified hierarchy itself.
pub(crate) fn detect(root: &Path) -> Version {
    if root.join("cgroup.controllers").is_file() {
        Version::V2
    } else {
        Version::V1
    }
}

/// Why sandboxes cannot be limited under `root` (`None`: they can).
pub(crate) fn unavailable(root: &Path) -> Option<String> {
    match detect(root) {
        Version::V1 => {
            for c in ["freezer", "memory"] {
                if !root.join(c).join("cgroup.procs").is_file() {
                    return Some(format!(
                        "the cgroup v1 {c} controller is not mounted at {}",
                        root.join(c).display()
                    ));
                }
            }
            None
        }
        Version::V2 => {
            let have = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let have: Vec<&str> = have.split_whitespace().collect();
            for c in ["memory", "pids", "cpu"] {
                if !have.contains(&c) {
                    return Some(format!(
                        "the cgroup v2 {c} controller is not available at {}",
                        root.display()
                    ));
                }
            }
            None
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let f = dir.join(file);
    fs::write(&f, value).map_err(|e| SandboxError::sys("write", f.display().to_string(), e))
}

/// The `key value` line `key` of a flat-keyed cgroup file (`memory.events`, `oom_control`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// v2's `cpu.max` for a quota in millicores.
pub(crate) fn cpu_max(millicores: u32) -> String {
    format!("{} {CFS_PERIOD_US}", cfs_quota_us(millicores))
}

/// The CFS quota per period for `millicores` (the kernel's minimum is 1 ms).
pub(crate) fn cfs_quota_us(millicores: u32) -> u64 {
    (u64::from(millicores) * CFS_PERIOD_US / 1000).max(1000)
}

/// The cgroups of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    version: Version,
    root: PathBuf,
    parent: String,
    /// v1: the freezer's cgroup; v2: the sandbox's one cgroup.
    main: PathBuf,
    /// v1 only: the memory cgroup.
    memory: Option<PathBuf>,
    /// v1 only: the cpu cgroup, when mounted.
    cpu: Option<PathBuf>,
    /// v1 only: the pids cgroup, when mounted.
    pids: Option<PathBuf>,
}

impl Cgroups {
    /// The paths (nothing is created).
    pub fn new(root: &Path, parent: &str, id: &str) -> Cgroups {
        let version = detect(root);
        let v1 = |c: &str| {
            let ctl = root.join(c);
            (version == Version::V1 && ctl.join("cgroup.procs").exists())
                .then(|| ctl.join(parent).join(id))
        };
        Cgroups {
            version,
            root: root.to_path_buf(),
            parent: parent.to_string(),
            main: match version {
                Version::V1 => root.join("freezer").join(parent).join(id),
                Version::V2 => root.join(parent).join(id),
            },
            memory: v1("memory"),
            cpu: v1("cpu"),
            pids: v1("pids"),
        }
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.main)
            .chain(self.memory.iter())
            .chain(self.cpu.iter())
            .chain(self.pids.iter())
    }

    /// Creates the directories and sets the limits (`pids_cap`: a runtime-wide maximum).
    pub fn create(&self, limits: &Limits, pids_cap: Option<u64>) -> Result<()> {
        if let Some(why) = unavailable(&self.root) {
            return Err(SandboxError::Unavailable(why));
        }
        if self.version == Version::V2 {
            // Controllers reach a cgroup only through every ancestor's subtree_control.
            let parent = self.root.join(&self.parent);
            fs::create_dir_all(&parent)
                .map_err(|e| SandboxError::sys("mkdir", parent.display().to_string(), e))?;
            for d in [&self.root, &parent] {
                write(d, "cgroup.subtree_control", "+memory +cpu +pids")?;
            }
        }
        for d in self.dirs() {
            fs::create_dir_all(d)
                .map_err(|e| SandboxError::sys("mkdir", d.display().to_string(), e))?;
        }
        self.apply(limits, pids_cap)
    }

    /// Writes the limits into the (existing) cgroups.
    fn apply(&self, limits: &Limits, pids_cap: Option<u64>) -> Result<()> {
        let mem = limits.memory_bytes.to_string();
        let pids = match pids_cap {
            Some(cap) => u64::from(limits.pids).min(cap),
            None => u64::from(limits.pids),
        }
        .to_string();
        match self.version {
            Version::V1 => {
                let m = self
                    .memory
                    .as_ref()
                    .expect("memory checked by unavailable()");
                let _ = write(m, "memory.swappiness", "0");
                write(m, "memory.limit_in_bytes", &mem)?;
                if m.join("memory.memsw.limit_in_bytes").exists() {
                    write(m, "memory.memsw.limit_in_bytes", &mem)?;
                }
                if let Some(c) = &self.cpu {
                    write(c, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                    write(
                        c,
                        "cpu.cfs_quota_us",
                        &cfs_quota_us(limits.cpu_millicores).to_string(),
                    )?;
                }
                if let Some(p) = &self.pids {
                    write(p, "pids.max", &pids)?;
                }
            }
            Version::V2 => {
                write(&self.main, "memory.max", &mem)?;
                if self.main.join("memory.swap.max").exists() {
                    write(&self.main, "memory.swap.max", "0")?;
                }
                write(&self.main, "cpu.max", &cpu_max(limits.cpu_millicores))?;
                write(&self.main, "pids.max", &pids)?;
            }
        }
        Ok(())
    }

    /// How many processes the kernel's OOM killer has killed in the sandbox's cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (dir, file) = match self.version {
            Version::V1 => (self.memory.as_ref(), "memory.oom_control"),
            Version::V2 => (Some(&self.main), "memory.events"),
        };
        dir.and_then(|d| fs::read_to_string(d.join(file)).ok())
            .and_then(|t| keyed(&t, "oom_kill"))
            .unwrap_or(0)
    }

    /// `cgroup.procs` of every controller, open for writing ("0" moves the writer in).
    pub fn procs_fds(&self) -> Result<Vec<OwnedFd>> {
        self.dirs()
            .map(|d| {
                let p = d.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(|e| SandboxError::sys("open", p.display().to_string(), e))
            })
            .collect()
    }

    /// Host pids of every process in the sandbox's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.main.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn exists(&self) -> bool {
        self.main.exists()
    }

    fn set_state(&self, state: &str) -> Result<()> {
        match self.version {
            Version::V1 => write(&self.main, "freezer.state", state),
            Version::V2 => write(
                &self.main,
                "cgroup.freeze",
                if state == "FROZEN" { "1" } else { "0" },
            ),
        }
    }

    /// The freezer's state: `THAWED`, `FREEZING` or `FROZEN` (v2's `cgroup.freeze` and
    /// `cgroup.events` mapped onto the same three).
    pub fn state(&self) -> String {
        match self.version {
            Version::V1 => fs::read_to_string(self.main.join("freezer.state"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            Version::V2 => {
                let want = fs::read_to_string(self.main.join("cgroup.freeze"))
                    .map(|s| s.trim() == "1")
                    .unwrap_or(false);
                let frozen = fs::read_to_string(self.main.join("cgroup.events"))
                    .ok()
                    .and_then(|t| keyed(&t, "frozen"))
                    == Some(1);
                match (want, frozen) {
                    (true, true) => "FROZEN",
                    (true, false) => "FREEZING",
                    (false, _) => "THAWED",
                }
                .to_string()
            }
        }
    }

    /// Freezes every process and waits until the kernel says FROZEN.
    pub fn freeze(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.set_state("FROZEN")?;
            if self.state() == "FROZEN" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.set_state("THAWED");
                return Err(SandboxError::Unavailable(
                    "processes did not freeze within 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_state("THAWED")
    }

    /// Kills every process in the cgroup (frozen ones included) and waits until it is empty.
    pub fn kill_all(&self) -> Result<()> {
        if !self.exists() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return Ok(());
            }
            // Freeze so nothing forks between listing and killing; SIGKILL lands on thaw.
            let _ = self.set_state("FROZEN");
            for pid in self.pids() {
                // SAFETY: kill with integer arguments.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = self.thaw();
            if Instant::now() > deadline {
                return Err(SandboxError::Unavailable(format!(
                    "processes {pids:?} did not die within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Removes the directories (the cgroup must be empty).
    pub fn remove(&self) -> Result<()> {
        for d in self.dirs() {
            if d.exists() {
                let mut tries = 0;
                loop {
                    match fs::remove_dir(d) {
                        Ok(()) => break,
                        // A just-killed process can linger a moment in the cgroup.
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 5000 => {
                            tries += 1;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) => {
                            return Err(SandboxError::sys("rmdir", d.display().to_string(), e))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The file-writing layer over temporary directories laid out like each hierarchy (the
    //! kernel's files are plain files here; this machine runs v1, so v2 is only tested so).
    use super::*;

    fn limits() -> Limits {
        Limits {
            cpu_millicores: 1500,
            memory_bytes: 256 << 20,
            disk_bytes: 1 << 30,
            pids: 300,
        }
    }

    fn touch(d: &Path, files: &[&str]) {
        fs::create_dir_all(d).unwrap();
        for f in files {
            fs::write(d.join(f), "").unwrap();
        }
    }

    /// mkdir in a real cgroupfs makes the control files; here the test makes them first.
    fn fake_v2(root: &Path, id: &str) {
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        touch(root, &["cgroup.procs", "cgroup.subtree_control"]);
        let files = [
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.freeze",
            "memory.max",
            "memory.swap.max",
            "cpu.max",
            "pids.max",
        ];
        touch(&root.join("nullspace"), &files);
        touch(&root.join("nullspace").join(id), &files);
    }

    #[test]
    fn v2_layout_gets_its_limits_in_one_cgroup() {
        let t = tempfile::tempdir().unwrap();
        fake_v2(t.path(), "sb1");
        assert_eq!(detect(t.path()), Version::V2);
        assert_eq!(unavailable(t.path()), None);
        let cg = Cgroups::new(t.path(), "nullspace", "sb1");
        cg.create(&limits(), Some(200)).unwrap();
        let d = t.path().join("nullspace/sb1");
        let rd = |f: &str| fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(rd("memory.max"), (256u64 << 20).to_string());
        assert_eq!(rd("memory.swap.max"), "0");
        assert_eq!(rd("cpu.max"), "150000 100000");
        // The runtime's cap wins over a larger sandbox limit.
        assert_eq!(rd("pids.max"), "200");
        for p in [t.path().to_path_buf(), t.path().join("nullspace")] {
            assert_eq!(
                fs::read_to_string(p.join("cgroup.subtree_control")).unwrap(),
                "+memory +cpu +pids"
            );
        }
        assert_eq!(cg.procs_fds().unwrap().len(), 1);
        // The kernel would report `frozen 1` once every process stopped.
        fs::write(d.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cg.freeze().unwrap();
        assert_eq!(rd("cgroup.freeze"), "1");
        assert_eq!(cg.state(), "FROZEN");
        cg.thaw().unwrap();
        assert_eq!(cg.state(), "THAWED");
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 3\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 3);
    }

    #[test]
    fn v2_without_the_memory_controller_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpu io pids\n").unwrap();
        let why = unavailable(t.path()).unwrap();
        assert!(why.contains("memory"), "{why}");
        let cg = Cgroups::new(t.path(), "nullspace", "x");
        assert!(matches!(
            cg.create(&limits(), None),
            Err(SandboxError::Unavailable(_))
        ));
    }

    #[test]
    fn v1_layout_writes_each_controller() {
        let t = tempfile::tempdir().unwrap();
        for c in ["freezer", "memory", "cpu", "pids"] {
            touch(&t.path().join(c), &["cgroup.procs"]);
        }
        let sb = |c: &str| t.path().join(c).join("nullspace/sb2");
        touch(&sb("memory"), &["memory.memsw.limit_in_bytes"]);
        let cg = Cgroups::new(t.path(), "nullspace", "sb2");
        cg.create(&limits(), None).unwrap();
        let rd = |c: &str, f: &str| fs::read_to_string(sb(c).join(f)).unwrap();
        assert_eq!(rd("memory", "memory.limit_in_bytes"), "268435456");
        assert_eq!(rd("memory", "memory.memsw.limit_in_bytes"), "268435456");
        assert_eq!(rd("memory", "memory.swappiness"), "0");
        assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "150000");
        assert_eq!(rd("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(rd("pids", "pids.max"), "300");
        fs::write(
            sb("memory").join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 2);
    }

    #[test]
    fn v1_without_memory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("freezer"), &["cgroup.procs"]);
        let why = unavailable(t.path()).unwrap();
        assert!(why.contains("memory"), "{why}");
    }

    #[test]
    fn quotas() {
        assert_eq!(cfs_quota_us(1000), 100_000);
        assert_eq!(cfs_quota_us(250), 25_000);
        // Below the kernel's 1 ms minimum: the minimum.
        assert_eq!(cfs_quota_us(1), 1000);
        assert_eq!(cpu_max(2000), "200000 100000");
        assert_eq!(keyed("a 1\noom_kill 7\n", "oom_kill"), Some(7));
        assert_eq!(keyed("a 1\n", "oom_kill"), None);
    }
}
