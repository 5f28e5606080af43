//! Shared set-up of the runtime tests: a temporary state dir per test, unique sandbox ids,
//! and a guard that destroys every sandbox of the test even when it fails.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use nullspace_sandbox::{ExecRequest, ExecResult, Runtime};

pub struct TestEnv {
    pub rt: Runtime,
    pub dir: tempfile::TempDir,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = self.rt.destroy_all();
    }
}

impl TestEnv {
    /// A new volume directory on the host.
    pub fn volume(&self, name: &str) -> std::path::PathBuf {
        let p = self.dir.path().join("volumes").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Runs `sh -c cmd` in `id` and returns the result.
    pub fn sh(&self, id: &str, cmd: &str) -> ExecResult {
        self.rt.exec(id, ExecRequest::shell(cmd)).unwrap()
    }

    /// Runs `sh -c cmd`, asserts exit 0, returns stdout.
    pub fn ok(&self, id: &str, cmd: &str) -> String {
        let r = self.sh(id, cmd);
        assert_eq!(
            r.exit_code,
            0,
            "{cmd}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8(r.stdout).unwrap()
    }
}

pub fn env() -> TestEnv {
    let dir = tempfile::Builder::new().prefix("nsbx").tempdir().unwrap();
    let rt = Runtime::new(dir.path().join("state")).unwrap();
    TestEnv { rt, dir }
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A sandbox id unique across test processes and tests.
pub fn id(prefix: &str) -> String {
    format!(
        "t{}-{}-{}",
        std::process::id(),
        prefix,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A subpath as the server passes it: `a/b` or `/a/b`, parsed into a `VolumePath`.
pub fn sub(s: &str) -> nullspace_core::VolumePath {
    nullspace_core::VolumePath::parse(&format!("/{}", s.trim_start_matches('/'))).unwrap()
}

/// The runtimes a suite runs over: `namespace` always, `gvisor` when runsc is installed
/// (else the gvisor cases print that they were skipped and why).
pub fn runtimes(test: &str) -> Vec<nullspace_sandbox::SandboxRuntime> {
    let mut all = vec![nullspace_sandbox::SandboxRuntime::Namespace];
    match gvisor_missing() {
        None => all.push(nullspace_sandbox::SandboxRuntime::Gvisor),
        Some(why) => eprintln!("{test}: gvisor case skipped: {why}"),
    }
    all
}

/// Why the gvisor runtime cannot run here (None: it can).
pub fn gvisor_missing() -> Option<String> {
    let found = std::env::var_os("NULLSPACE_RUNSC")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/runsc".into(), "/usr/local/bin/runsc".into()])
        .any(|p: std::path::PathBuf| p.is_file());
    (!found).then(|| "runsc is not installed (apt-get install runsc)".to_string())
}

/// For gvisor-only tests: false (and a note) when runsc is missing.
pub fn gvisor_or_skip(test: &str) -> bool {
    match gvisor_missing() {
        None => true,
        Some(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}
