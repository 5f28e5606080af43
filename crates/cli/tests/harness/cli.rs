//! Running the `nullspace` CLI and asserting on what it printed.

use std::path::Path;
use std::process::Output;

/// Assertions on a CLI run.
pub trait OutputExt {
    fn stdout_str(&self) -> String;
    fn stderr_str(&self) -> String;
    /// The exit code (-1 if killed by a signal).
    fn code(&self) -> i32;
    /// Requires exit 0 and an empty stderr; returns stdout.
    fn assert_ok(&self, what: &[&str]) -> String;
    /// Requires exit `code`, nothing on stdout, and exactly one stderr line
    /// `error: …` containing `needle`. Returns that line.
    fn assert_err(&self, code: i32, needle: &str) -> String;
}

impl OutputExt for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    fn assert_ok(&self, what: &[&str]) -> String {
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "`nullspace {}` failed ({}):\nstdout: {}\nstderr: {}",
            what.join(" "),
            self.status,
            self.stdout_str(),
            self.stderr_str()
        );
        self.stdout_str()
    }

    fn assert_err(&self, code: i32, needle: &str) -> String {
        let err = self.stderr_str();
        assert_eq!(
            self.code(),
            code,
            "exit code; stdout: {:?} stderr: {err:?}",
            self.stdout_str()
        );
        assert!(
            self.stdout.is_empty(),
            "stdout should be empty on error: {:?}",
            self.stdout_str()
        );
        assert!(err.starts_with("error: "), "stderr: {err:?}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line of stderr: {err:?}"
        );
        assert!(err.ends_with('\n'), "stderr ends with a newline: {err:?}");
        assert!(
            err.contains(needle),
            "stderr {err:?} should contain {needle:?}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err:?}"
        );
        err.trim_end().to_owned()
    }
}

/// Parses stdout as JSON.
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// Writes a local file, creating parents.
pub fn write_local(path: &Path, content: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, content).expect("write local file");
}
