//! What the seccomp filter costs (issue 11): a syscall-heavy loop inside a sandbox with the
//! filter and inside one without it (a second runtime configured with `seccomp: false`), in
//! one run, alternating, medians of the per-call times the loop measures itself.
//!
//!     cargo run --release -p nullspace-sandbox --example seccomp_bench
//!
//! Two loops: `getppid` (the cheapest system call: the filter's share is largest there) and
//! `stat` + `open`/`close` of a file (an everyday mix). Prints a Markdown table.

use std::time::Duration;

use anyhow::{ensure, Result};
use nullspace_sandbox::{ExecRequest, Runtime, RuntimeConfig, SandboxSpec};

const LOOP_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    double t0 = now();
    if (strcmp(argv[1], "getppid") == 0) {
        for (long i = 0; i < n; i++) getppid();
    } else {
        struct stat st;
        for (long i = 0; i < n; i++) { stat("/etc/hostname", &st); close(open("/etc/hostname", O_RDONLY)); }
    }
    printf("%.1f\n", (now() - t0) / n);
    return 0;
}
"#;

const RUNS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(rt: &Runtime, id: &str, args: &str) -> Result<f64> {
    let r = rt.exec(id, ExecRequest::shell(format!("/tmp/loop {args}")))?;
    ensure!(
        r.exit_code == 0,
        "loop failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    Ok(String::from_utf8(r.stdout)?.trim().parse()?)
}

fn main() -> Result<()> {
    let base = tempfile::Builder::new().prefix("seccomp-bench").tempdir()?;
    let make = |name: &str, seccomp: bool| -> Result<Runtime> {
        let mut cfg = RuntimeConfig::new(base.path().join(name));
        cfg.seccomp = seccomp;
        cfg.cgroup_parent = format!("nullspace-bench-{name}");
        Ok(Runtime::with_config(cfg)?)
    };
    let on = make("on", true)?;
    let off = make("off", false)?;
    let pid = std::process::id();
    let (a, b) = (format!("son{pid}"), format!("soff{pid}"));
    on.create(SandboxSpec::new(&a))?;
    off.create(SandboxSpec::new(&b))?;
    for (rt, id) in [(&on, &a), (&off, &b)] {
        rt.write_file(id, "/tmp/loop.c", LOOP_C.as_bytes())?;
        let mut req = ExecRequest::shell("cc -O2 -o /tmp/loop /tmp/loop.c");
        req.timeout = Some(Duration::from_secs(120));
        let r = rt.exec(id, req)?;
        ensure!(
            r.exit_code == 0,
            "cc: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    println!("| loop | with filter (ns/call) | without (ns/call) | ratio |");
    println!("|---|---|---|---|");
    for (name, args) in [
        ("getppid × 2,000,000", "getppid 2000000"),
        ("stat + open/close × 200,000", "mix 200000"),
    ] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            with.push(run(&on, &a, args)?);
            without.push(run(&off, &b, args)?);
        }
        let (w, wo) = (median(with), median(without));
        println!("| {name} | {w:.1} | {wo:.1} | {:.3}x |", w / wo);
    }
    on.destroy(&a)?;
    off.destroy(&b)?;
    Ok(())
}
