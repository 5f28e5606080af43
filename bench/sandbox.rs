//! Sandbox runtime benchmark (issue 6). Run as root:
//!
//! ```sh
//! cargo run --release -p nullspace-sandbox --example sandbox_bench [-- OUT.md]
//! ```
//!
//! Measures, in one run: sandbox create with one volume mount until ready for exec (p50/p99
//! over 50), the same full cycle as bubblewrap runs it (create + `true` + destroy) against
//! `bwrap` as the floor, runtime attach p50, sequential write+read of 1 GiB inside the mount
//! against the same on the host directory, and creating 10,000 small files inside against the
//! host. Writes a Markdown table to `bench/notes/issue6.md` (or the path given).

#[path = "runtime_setup.rs"]
mod runtime_setup;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nullspace_sandbox::{ExecRequest, MountSpec, Runtime, SandboxSpec};

const CREATES: usize = 50;

/// `io.py DIR rw`: write 1 GiB (1 MiB writes, fsync), read it back, print both times;
/// `io.py DIR files`: create 10,000 files of 512 B in DIR, print the time.
const IO_SCRIPT: &str = include_str!("sandbox_io.py");

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e3
}

fn ok(rt: &Runtime, id: &str, cmd: &str) -> Result<Duration> {
    let t = Instant::now();
    let r = rt.exec(id, ExecRequest::shell(cmd))?;
    let took = t.elapsed();
    anyhow::ensure!(
        r.exit_code == 0,
        "{cmd}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    Ok(took)
}

fn bwrap(vol: &Path) -> Result<Duration> {
    let t = Instant::now();
    let st = Command::new("bwrap")
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-ipc",
            "--unshare-net",
        ])
        .args([
            "--unshare-cgroup",
            "--uid",
            "0",
            "--gid",
            "0",
            "--ro-bind",
            "/usr",
            "/usr",
        ])
        .args([
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
        ])
        .args([
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ])
        .arg("--bind")
        .arg(vol)
        .args(["/data", "--die-with-parent", "/usr/bin/true"])
        .status()?;
    let took = t.elapsed();
    anyhow::ensure!(st.success(), "bwrap failed");
    Ok(took)
}

fn main() -> Result<()> {
    let runtime_setup::Setup {
        load,
        out_path,
        dir,
        rt,
    } = runtime_setup::setup("bench/notes/issue6.md", "nsbench")?;
    let vol = dir.path().join("vol");
    let hostdir = dir.path().join("hostdir");
    std::fs::create_dir_all(&vol)?;
    std::fs::create_dir_all(&hostdir)?;
    let pid = std::process::id();
    let mut lines = Vec::new();
    let res = (|| -> Result<()> {
        // Warm up (template, page cache of /usr).
        for i in 0..3 {
            let id = format!("bw{pid}-{i}");
            rt.create(SandboxSpec::new(&id).mount(MountSpec::new(&vol, "/data")))?;
            ok(&rt, &id, "true")?;
            rt.destroy(&id)?;
        }
        let (mut create, mut cycle, mut first_exec, mut destroy) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..CREATES {
            let id = format!("bc{pid}-{i}");
            let t = Instant::now();
            rt.create(SandboxSpec::new(&id).mount(MountSpec::new(&vol, "/data")))?;
            create.push(t.elapsed());
            let e = Instant::now();
            let r = rt.exec(&id, ExecRequest::new(["true"]))?;
            anyhow::ensure!(r.exit_code == 0);
            first_exec.push(e.elapsed());
            let d = Instant::now();
            rt.destroy(&id)?;
            destroy.push(d.elapsed());
            cycle.push(t.elapsed());
        }
        let bwrap_ok = Command::new("bwrap").arg("--version").output().is_ok();
        let mut bw = Vec::new();
        if bwrap_ok {
            for _ in 0..CREATES {
                bw.push(bwrap(&vol)?);
            }
        }
        lines.push("| measure | nullspace | baseline | ratio / goal |".to_string());
        lines.push("|---|---|---|---|".to_string());
        lines.push(format!(
            "| create + 1 volume, ready for exec (n={CREATES}) | p50 {:.1} ms, p99 {:.1} ms | — | goal p50 < 50 ms |",
            pct(&mut create, 0.5),
            pct(&mut create, 0.99)
        ));
        lines.push(format!(
            "| first exec of `true` after create | p50 {:.1} ms, p99 {:.1} ms | — | |",
            pct(&mut first_exec, 0.5),
            pct(&mut first_exec, 0.99)
        ));
        lines.push(format!(
            "| destroy (kill, unmount, remove layer) | p50 {:.1} ms, p99 {:.1} ms | — | |",
            pct(&mut destroy, 0.5),
            pct(&mut destroy, 0.99)
        ));
        if bwrap_ok {
            lines.push(format!(
                "| full cycle: create + `true` + destroy vs `bwrap … true` | p50 {:.1} ms, p99 {:.1} ms | bwrap p50 {:.1} ms, p99 {:.1} ms | {:.1}x the floor |",
                pct(&mut cycle, 0.5),
                pct(&mut cycle, 0.99),
                pct(&mut bw, 0.5),
                pct(&mut bw, 0.99),
                pct(&mut cycle, 0.5) / pct(&mut bw, 0.5)
            ));
        }

        // Runtime attach into a running sandbox.
        let id = format!("ba{pid}");
        rt.create(SandboxSpec::new(&id))?;
        let mut attach = Vec::new();
        for i in 0..CREATES {
            let target = format!("/mnt/v{i}");
            let t = Instant::now();
            rt.attach(&id, MountSpec::new(&vol, &target))?;
            attach.push(t.elapsed());
            rt.detach(&id, &target)?;
        }
        lines.push(format!(
            "| runtime attach (n={CREATES}) | p50 {:.2} ms, p99 {:.2} ms | — | goal p50 < 20 ms |",
            pct(&mut attach, 0.5),
            pct(&mut attach, 0.99)
        ));

        // Data path: the same dd/python commands inside (on the mount) and on the host dir.
        rt.attach(&id, MountSpec::new(&vol, "/data"))?;
        let h = hostdir.display();
        let mut rows = Vec::new();
        // The same Python script inside (on the mount) and on the host dir; it times its own
        // I/O, so process start-up and exec costs stay out of the comparison.
        std::fs::write(vol.join("io.py"), IO_SCRIPT)?;
        let script = vol.join("io.py");
        let parse = |s: &str| -> Result<Vec<f64>> {
            s.split_whitespace()
                .map(|x| x.parse::<f64>().context("io.py output"))
                .collect()
        };
        let inside = |args: &str| -> Result<Vec<f64>> {
            let r = rt.exec(
                &id,
                ExecRequest::shell(format!("python3 /data/io.py {args}")),
            )?;
            anyhow::ensure!(
                r.exit_code == 0,
                "io.py: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            parse(&String::from_utf8_lossy(&r.stdout))
        };
        let outside = |args: &str| -> Result<Vec<f64>> {
            let o = Command::new("/usr/bin/python3")
                .arg(&script)
                .args(args.split(' '))
                .output()?;
            anyhow::ensure!(
                o.status.success(),
                "io.py: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            parse(&String::from_utf8_lossy(&o.stdout))
        };
        for round in 0..5 {
            // Alternate which side goes first, so neither always pays the other's writeback.
            let inside_first = round % 2 == 0;
            let mut t = [Duration::ZERO; 6];
            for side in [inside_first, !inside_first] {
                let d = |x: f64| Duration::from_secs_f64(x);
                if side {
                    let rw = inside("/data rw")?;
                    let f = inside(&format!("/data/small{round} files"))?;
                    (t[0], t[2], t[4]) = (d(rw[0]), d(rw[1]), d(f[0]));
                } else {
                    let rw = outside(&format!("{h} rw"))?;
                    let f = outside(&format!("{h}/small{round} files"))?;
                    (t[1], t[3], t[5]) = (d(rw[0]), d(rw[1]), d(f[0]));
                }
            }
            rows.push(t);
        }
        // Report the best of five rounds for each side (noisy shared machine).
        let best = |k: usize| {
            rows.iter()
                .map(|r: &[Duration; 6]| r[k])
                .min()
                .unwrap()
                .as_secs_f64()
        };
        let gib = 1.0;
        let (wi, wh) = (best(0), best(1));
        let (ri, rh) = (best(2), best(3));
        let (fi, fh) = (best(4), best(5));
        lines.push(format!(
            "| sequential write 1 GiB (1 MiB writes + fsync) | {:.2} GiB/s | host dir {:.2} GiB/s | {:.2}x (goal ≥ 0.95x) |",
            gib / wi,
            gib / wh,
            wh / wi
        ));
        lines.push(format!(
            "| sequential read 1 GiB (1 MiB reads, page cache) | {:.2} GiB/s | host dir {:.2} GiB/s | {:.2}x (goal ≥ 0.95x) |",
            gib / ri,
            gib / rh,
            rh / ri
        ));
        lines.push(format!(
            "| create 10,000 files of 512 B | {:.0} ms | host dir {:.0} ms | {:.2}x (goal ≥ 0.9x) |",
            fi * 1e3,
            fh * 1e3,
            fh / fi
        ));
        Ok(())
    })();
    let _ = rt.destroy_all();
    res?;
    let text = format!(
        "## Sandbox runtime (issue 6)\n\nMeasured by `cargo run --release -p nullspace-sandbox --example sandbox_bench` \
         on this machine (2 shared cores, ext4, kernel {}, load average {} at the start), all figures \
         from one run. Ratios: host time / sandbox time (1.0 = same speed).\n\n{}\n",
        rustix::system::uname().release().to_string_lossy(),
        load,
        lines.join("\n")
    );
    println!("{text}");
    std::fs::write(&out_path, &text).with_context(|| format!("write {out_path}"))?;
    Ok(())
}
