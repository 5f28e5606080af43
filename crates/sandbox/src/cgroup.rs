//! The sandbox's cgroups (v1): `freezer` (pause/resume, and the list of every process to kill)
//! and, when mounted, `pids` (a process limit). One directory per controller:
//! `<cgroup_root>/<controller>/<parent>/<id>`.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, SandboxError};

/// The cgroups of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    freezer_ctl: PathBuf,
    freezer: PathBuf,
    pids: Option<PathBuf>,
}

impl Cgroups {
    /// The paths (nothing is created).
    pub fn new(root: &Path, parent: &str, id: &str) -> Cgroups {
        let pids_ctl = root.join("pids");
        Cgroups {
            freezer_ctl: root.join("freezer"),
            freezer: root.join("freezer").join(parent).join(id),
            pids: pids_ctl
                .join("cgroup.procs")
                .exists()
                .then(|| pids_ctl.join(parent).join(id)),
        }
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.freezer).chain(self.pids.iter())
    }

    /// Creates the directories and sets the process limit.
    pub fn create(&self, pids_max: Option<u64>) -> Result<()> {
        if !self.freezer_ctl.join("cgroup.procs").exists() {
            return Err(SandboxError::Unavailable(format!(
                "cgroup v1 freezer not mounted at {}",
                self.freezer_ctl.display()
            )));
        }
        for d in self.dirs() {
            fs::create_dir_all(d)
                .map_err(|e| SandboxError::sys("mkdir", d.display().to_string(), e))?;
        }
        if let (Some(p), Some(max)) = (&self.pids, pids_max) {
            let f = p.join("pids.max");
            fs::write(&f, max.to_string())
                .map_err(|e| SandboxError::sys("write", f.display().to_string(), e))?;
        }
        Ok(())
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
        fs::read_to_string(self.freezer.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn exists(&self) -> bool {
        self.freezer.exists()
    }

    fn set_state(&self, state: &str) -> Result<()> {
        let f = self.freezer.join("freezer.state");
        fs::write(&f, state).map_err(|e| SandboxError::sys("write", f.display().to_string(), e))
    }

    /// The freezer's state: `THAWED`, `FREEZING` or `FROZEN`.
    pub fn state(&self) -> String {
        fs::read_to_string(self.freezer.join("freezer.state"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
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
