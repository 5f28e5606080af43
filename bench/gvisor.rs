//! gVisor runtime benchmark (issue 13). Run as root, with runsc installed:
//!
//! ```sh
//! cargo run -p nullspace-sandbox --example gvisor_bench [-- OUT.md]
//! ```
//!
//! In one run, for each runtime (namespace, gvisor): create with one volume until ready for
//! exec (p50/p99), exec `true` (p50), fork of a running sandbox; for gvisor also hibernate and
//! resume time and checkpoint image size with 64 MiB, 256 MiB and 1 GiB resident in a Python
//! process (namespace hibernate keeps no memory: its times are given beside). Then volume I/O
//! beside the host directory in the same run: 1 GiB sequential write (fsync) and read, 2,000
//! files of 4 KiB written and read by one Python process, and a syscall-heavy shell loop
//! (20,000 `echo`s, one write each). Writes Markdown tables to `bench/notes/issue13-gvisor.md`
//! (or the path given).

#[path = "runtime_setup.rs"]
mod runtime_setup;

use std::time::{Duration, Instant};

use anyhow::Result;
use nullspace_sandbox::{ExecRequest, MountSpec, SandboxRuntime, SandboxSpec};

const N: usize = 20;

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e3
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// One row of the I/O table: each workload in directory `d`, run by `run` (a shell command
/// line), timed whole; the median of three runs for the small ones.
fn io_row(what: &str, d: &str, run: impl Fn(&str) -> Result<Duration>) -> Result<String> {
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    let med = |f: &dyn Fn() -> Result<Duration>| -> Result<f64> {
        let mut v = vec![f()?, f()?, f()?];
        Ok(pct(&mut v, 0.5))
    };
    run(&format!("rm -rf {d}/big {d}/sf; mkdir -p {d}/sf"))?;
    let w = run(&format!(
        "dd if=/dev/zero of={d}/big bs=1M count=1024 conv=fsync 2>/dev/null"
    ))?;
    let r = run(&format!("dd if={d}/big of=/dev/null bs=1M 2>/dev/null"))?;
    let gib = |t: Duration| 1.0 / t.as_secs_f64();
    let sw = med(&|| {
        run(&format!(
            "python3 -c \"\nfor i in range(2000):\n  with open('{d}/sf/f%d' % i, 'wb') as f: f.write(b'x' * 4096)\""
        ))
    })?;
    let sr = med(&|| {
        run(&format!(
            "python3 -c \"\nfor i in range(2000):\n  with open('{d}/sf/f%d' % i, 'rb') as f: f.read()\""
        ))
    })?;
    let sys = med(&|| {
        run("i=0; while [ $i -lt 20000 ]; do echo x; i=$((i+1)); done > /tmp/syscall-loop")
    })?;
    run(&format!("rm -rf {d}/big {d}/sf"))?;
    Ok(format!(
        "| {what} | {:.0} ms ({:.2} GiB/s) | {:.0} ms ({:.2} GiB/s) | {sw:.0} ms | {sr:.0} ms | {sys:.0} ms |",
        ms(w),
        gib(w),
        ms(r),
        gib(r),
    ))
}

fn main() -> Result<()> {
    let runtime_setup::Setup {
        load,
        out_path,
        dir,
        rt,
    } = runtime_setup::setup("bench/notes/issue13-gvisor.md", "nsgvbench")?;
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol)?;
    let pid = std::process::id();
    let mut lines = vec![
        format!("load average at start: {load}"),
        String::new(),
        "| runtime | create + 1 volume p50 / p99 | exec `true` p50 | fork (running) | hibernate / resume, 64 MiB | image 64 MiB | hibernate / resume, 256 MiB | image 256 MiB | hibernate / resume, 1 GiB | image 1 GiB |".into(),
        "|---|---|---|---|---|---|---|---|---|---|".into(),
    ];
    let mut io_lines = vec![
        String::new(),
        "| where | 1 GiB write + fsync | 1 GiB read | 2,000 x 4 KiB write | 2,000 x 4 KiB read | 20,000 `echo`s (syscall loop) |".into(),
        "|---|---|---|---|---|---|".into(),
    ];
    let res = (|| -> Result<()> {
        for runtime in [SandboxRuntime::Namespace, SandboxRuntime::Gvisor] {
            let spec = |id: &str| {
                SandboxSpec::new(id)
                    .runtime(runtime)
                    .mount(MountSpec::new(&vol, "/data"))
            };
            let tag = runtime.as_str();
            let w = format!("w{tag}{pid}");
            rt.create(spec(&w))?;
            rt.destroy(&w)?;
            let (mut create, mut exec) = (Vec::new(), Vec::new());
            for i in 0..N {
                let id = format!("c{tag}{pid}-{i}");
                let t = Instant::now();
                rt.create(spec(&id))?;
                create.push(t.elapsed());
                for _ in 0..3 {
                    let e = Instant::now();
                    let r = rt.exec(&id, ExecRequest::new(["true"]))?;
                    anyhow::ensure!(r.exit_code == 0, "{r:?}");
                    exec.push(e.elapsed());
                }
                rt.destroy(&id)?;
            }
            let src = format!("f{tag}{pid}");
            rt.create(spec(&src))?;
            let t = Instant::now();
            rt.fork(&src, &format!("{src}-copy"))?;
            let fork = t.elapsed();
            rt.destroy(&format!("{src}-copy"))?;
            rt.destroy(&src)?;
            let mut hib = Vec::new();
            for mib in [64u64, 256, 1024] {
                let id = format!("h{tag}{pid}-{mib}");
                let mut sp = spec(&id);
                sp.limits.memory_bytes = (mib + 512) << 20;
                rt.create(sp)?;
                let hold = format!("python3 -c 'import time; b = bytearray({mib} << 20); b[::4096] = b\"x\" * (len(b) // 4096); import os; open(\"/tmp/held\", \"w\").write(str(os.getpid())); time.sleep(100000)' >/dev/null 2>&1 </dev/null &");
                rt.exec(&id, ExecRequest::shell(hold))?;
                let mut held = false;
                for _ in 0..400 {
                    if rt.exec(&id, ExecRequest::shell("cat /tmp/held"))?.exit_code == 0 {
                        held = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                anyhow::ensure!(held, "{id}: the memory holder did not start");
                let t = Instant::now();
                rt.hibernate(&id)?;
                let h = t.elapsed();
                let img = dir_size(
                    &dir.path()
                        .join("state/sandboxes")
                        .join(&id)
                        .join("checkpoint"),
                );
                let t = Instant::now();
                rt.resume(&id)?;
                let r = t.elapsed();
                // Whether the process holding the memory survived (namespace: no, by design).
                let kept = rt
                    .exec(&id, ExecRequest::shell("kill -0 \"$(cat /tmp/held)\""))?
                    .exit_code
                    == 0;
                rt.destroy(&id)?;
                hib.push(format!(
                    "{:.0} / {:.0} ms{}",
                    h.as_secs_f64() * 1e3,
                    r.as_secs_f64() * 1e3,
                    if kept { "" } else { " (process gone)" }
                ));
                hib.push(format!("{:.1} MB", img as f64 / 1e6));
            }
            lines.push(format!(
                "| {tag} | {:.1} / {:.1} ms | {:.1} ms | {:.0} ms | {} | {} | {} | {} | {} | {} |",
                pct(&mut create, 0.5),
                pct(&mut create, 0.99),
                pct(&mut exec, 0.5),
                fork.as_secs_f64() * 1e3,
                hib[0],
                hib[1],
                hib[2],
                hib[3],
                hib[4],
                hib[5],
            ));
        }
        // Volume I/O and a syscall-heavy loop: the host directory, then each runtime.
        let host_dir = dir.path().join("hostio");
        std::fs::create_dir_all(&host_dir)?;
        io_lines.push(io_row(
            "host directory",
            &host_dir.to_string_lossy(),
            |cmd| {
                let t = Instant::now();
                let out = std::process::Command::new("sh")
                    .args(["-c", cmd])
                    .output()?;
                anyhow::ensure!(out.status.success(), "{cmd}: {out:?}");
                Ok(t.elapsed())
            },
        )?);
        for runtime in [SandboxRuntime::Namespace, SandboxRuntime::Gvisor] {
            let id = format!("io{}{pid}", runtime.as_str());
            let mut sp = SandboxSpec::new(&id)
                .runtime(runtime)
                .mount(MountSpec::new(&vol, "/data"));
            sp.limits.memory_bytes = 2 << 30;
            rt.create(sp)?;
            let row = io_row(
                &format!("{} sandbox, volume mount", runtime.as_str()),
                "/data",
                |cmd| {
                    let t = Instant::now();
                    let r = rt.exec(&id, ExecRequest::shell(cmd))?;
                    anyhow::ensure!(r.exit_code == 0, "{cmd}: {r:?}");
                    Ok(t.elapsed())
                },
            );
            rt.destroy(&id)?;
            io_lines.push(row?);
        }
        Ok(())
    })();
    let _ = rt.destroy_all();
    res?;
    lines.extend(io_lines);
    let text = lines.join("\n") + "\n";
    print!("{text}");
    std::fs::write(&out_path, text)?;
    Ok(())
}
