//! Loop volume backend benchmark (issue 6, the cap from inside a sandbox). Run as root:
//!
//! ```sh
//! cargo run --release -p nullspace-sandbox --example loop_volume_bench [-- OUT.md]
//! ```
//!
//! In one run, for a loop-backed volume (an ext4 image on a loop device, as `nullspace server
//! --volume-backend loop` makes them) with and without `LO_FLAGS_DIRECT_IO`, against a plain
//! host directory on the file system that holds the images: the first 1 GiB written into a
//! fresh volume; then, after the volume has been written through once (so its image blocks
//! exist), sequential write (1 MiB writes + fsync) and read of 1 GiB, and creating 10,000
//! files of 512 B, run by the same Python script
//! inside a sandbox on the volume's mount and on the host directory, alternating, medians of
//! seven rounds. Also volume create and delete latency, directory vs loop backend (medians of
//! 20). Writes a Markdown table to `bench/out/issue6-loop.md` (or the path given).

#[path = "runtime_setup.rs"]
mod runtime_setup;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use nullspace_sandbox::{ExecRequest, MountSpec, Runtime, SandboxSpec};
use nullspace_volumes::{DirectoryPlacement, LoopPlacement, VolumePlacement};

const ROUNDS: usize = 7;
const CREATES: usize = 20;
const CAP: u64 = 2 << 30;

/// The same script as bench/sandbox.rs (bench/sandbox_io.py): `rw` writes 1 GiB and reads it
/// back; `files` makes 10,000.
const IO_SCRIPT: &str = include_str!("sandbox_io.py");

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn parse(s: &str) -> Result<Vec<f64>> {
    s.split_whitespace()
        .map(|x| x.parse::<f64>().context("io.py output"))
        .collect()
}

/// Medians (write s, read s, files s) inside the sandbox and on the host dir.
fn data_path(rt: &Runtime, sandbox: &str, script: &Path, host: &Path) -> Result<[f64; 6]> {
    let inside = |args: &str| -> Result<Vec<f64>> {
        let r = rt.exec(
            sandbox,
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
            .arg(script)
            .args(args.split(' '))
            .output()?;
        anyhow::ensure!(
            o.status.success(),
            "io.py: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        parse(&String::from_utf8_lossy(&o.stdout))
    };
    let h = host.display();
    let mut cols: [Vec<f64>; 6] = Default::default();
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither always pays the other's writeback.
        let inside_first = round % 2 == 0;
        for side in [inside_first, !inside_first] {
            if side {
                let rw = inside("/data rw")?;
                let f = inside(&format!("/data/small{round} files"))?;
                cols[0].push(rw[0]);
                cols[2].push(rw[1]);
                cols[4].push(f[0]);
            } else {
                let rw = outside(&format!("{h} rw"))?;
                let f = outside(&format!("{h}/small{round} files"))?;
                cols[1].push(rw[0]);
                cols[3].push(rw[1]);
                cols[5].push(f[0]);
            }
        }
        // Each round starts from empty directories.
        let _ = rt.exec(
            sandbox,
            ExecRequest::shell(format!("rm -rf /data/small{round}")),
        );
        let _ = std::fs::remove_dir_all(host.join(format!("small{round}")));
    }
    let mut out = [0.0; 6];
    for (o, c) in out.iter_mut().zip(cols.iter_mut()) {
        *o = median(c);
    }
    Ok(out)
}

fn create_latency(p: &dyn VolumePlacement, tag: &str) -> Result<(f64, f64)> {
    let (mut create, mut destroy) = (Vec::new(), Vec::new());
    for i in 0..CREATES {
        let id = format!("lat-{tag}-{i}");
        let t = Instant::now();
        p.create(&id, 2 << 30)?;
        create.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        p.destroy(&id)?;
        destroy.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&mut create), median(&mut destroy)))
}

fn main() -> Result<()> {
    let runtime_setup::Setup {
        load,
        out_path,
        dir,
        rt,
    } = runtime_setup::setup("bench/out/issue6-loop.md", "nsloopbench")?;
    let host = dir.path().join("hostdir");
    std::fs::create_dir_all(&host)?;
    let script = dir.path().join("io.py");
    std::fs::write(&script, IO_SCRIPT)?;
    let pid = std::process::id();
    let mut lines = vec![
        "| measure | loop volume, in a sandbox | host dir | ratio (goal) |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    let mut placements = Vec::new();
    let res = (|| -> Result<()> {
        // `LOOP_BENCH_ONLY=create`: only the create/delete latency (quick).
        let only_create = std::env::var("LOOP_BENCH_ONLY").is_ok_and(|v| v == "create");
        for direct_io in [false, true] {
            let root = dir.path().join(format!("data-dio-{direct_io}"));
            let p = LoopPlacement::open(&root, direct_io)?;
            let vroot = p.create("bench", CAP)?;
            placements.push((p, root));
            let data = vroot.join("data");
            std::fs::copy(&script, data.join("io.py"))?;
            if only_create {
                continue;
            }
            let id = format!("lb{pid}-{direct_io}");
            rt.create(SandboxSpec::new(&id).mount(MountSpec::new(&data, "/data")))?;
            // The first write into a fresh volume (never-written image blocks), then the rest
            // of the volume written once, so the rounds below measure a volume in use.
            let fresh = rt.exec(
                &id,
                ExecRequest::shell("python3 /data/io.py /data rw && dd if=/dev/zero of=/data/fill bs=1M count=1900 conv=fsync 2>/dev/null; rm -f /data/fill"),
            )?;
            anyhow::ensure!(
                fresh.exit_code == 0,
                "fresh write: {}",
                String::from_utf8_lossy(&fresh.stderr)
            );
            let fresh = parse(&String::from_utf8_lossy(&fresh.stdout))?;
            let m = data_path(&rt, &id, &script, &host)?;
            rt.destroy(&id)?;
            let tag = if direct_io { "direct I/O" } else { "buffered" };
            lines.push(format!(
                "| first write of 1 GiB + fsync into a fresh volume, loop {tag} | {:.2} GiB/s | (host median below) {:.2} GiB/s | {:.2}x |",
                1.0 / fresh[0], 1.0 / m[1], m[1] / fresh[0]
            ));
            lines.push(format!(
                "| sequential write 1 GiB + fsync, loop {tag} | {:.2} GiB/s | {:.2} GiB/s | {:.2}x (≥ 0.95x) |",
                1.0 / m[0], 1.0 / m[1], m[1] / m[0]
            ));
            lines.push(format!(
                "| sequential read 1 GiB, loop {tag} | {:.2} GiB/s | {:.2} GiB/s | {:.2}x (≥ 0.95x) |",
                1.0 / m[2], 1.0 / m[3], m[3] / m[2]
            ));
            lines.push(format!(
                "| 10,000 files of 512 B, loop {tag} | {:.0} ms | {:.0} ms | {:.2}x (≥ 0.9x) |",
                m[4] * 1e3,
                m[5] * 1e3,
                m[5] / m[4]
            ));
        }
        let dirp = DirectoryPlacement::open(&dir.path().join("dirs"))?;
        let (dc, dd) = create_latency(&dirp, "dir")?;
        let (p, _) = &placements[1];
        let (lc, ld) = create_latency(p, "loop")?;
        lines.push(format!(
            "| volume create (2 GiB cap), median of {CREATES} | loop {lc:.1} ms | directory {dc:.1} ms | |"
        ));
        lines.push(format!(
            "| volume delete, median of {CREATES} | loop {ld:.1} ms | directory {dd:.1} ms | |"
        ));
        Ok(())
    })();
    let _ = rt.destroy_all();
    for (p, _) in &placements {
        let _ = p.destroy("bench");
    }
    res?;
    let text = format!(
        "Measured by `cargo run --release -p nullspace-sandbox --example loop_volume_bench` on this \
         machine (2 shared cores, host ext4, kernel {}, load average {} at the start), one run, \
         medians of {ROUNDS} alternating rounds. Ratio: host time / loop time (1.0 = same speed).\n\n{}\n",
        rustix::system::uname().release().to_string_lossy(),
        load,
        lines.join("\n")
    );
    println!("{text}");
    if let Some(parent) = Path::new(&out_path).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out_path, &text).with_context(|| format!("write {out_path}"))?;
    Ok(())
}
