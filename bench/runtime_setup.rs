//! The set-up the runtime benchmarks share (included by each with `#[path]`): the load
//! average at start, where the report goes, and a runtime in a fresh directory.

use anyhow::Result;
use nullspace_sandbox::Runtime;

pub struct Setup {
    /// The 1-minute load average when the run started.
    pub load: String,
    /// The report's path: the first argument, else the benchmark's default.
    pub out_path: String,
    /// A fresh directory under `$BENCH_DIR` (default /var/tmp), removed at the end.
    pub dir: tempfile::TempDir,
    /// A runtime whose state dir is `dir/state`.
    pub rt: Runtime,
}

pub fn setup(default_out: &str, prefix: &str) -> Result<Setup> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_string())
        .unwrap_or_default();
    let out_path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default_out.into());
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(base)?;
    let rt = Runtime::new(dir.path().join("state"))?;
    Ok(Setup {
        load,
        out_path,
        dir,
        rt,
    })
}
