//! Sandbox limits benchmark (issue 11). Run as root:
//!
//! ```sh
//! cargo run --release -p nullspace-sandbox --example sandbox_limits_bench [-- OUT.md]
//! ```
//!
//! In one run: sandbox create with one volume mount until ready for exec (p50/p99 over 50;
//! every sandbox has its memory, cpu and pids cgroups and a 4 GiB capped writable layer),
//! first exec, fork and destroy; exec in one sandbox while another spins on every core
//! (against the same idle, one run); and the two ways to make a layer image, `mkfs.ext4` of a
//! fresh 4 GiB image against the sparse copy of a formatted template that create uses.
//! Writes a Markdown table to `bench/notes/issue11-limits.md` (or the path given).

#[path = "runtime_setup.rs"]
mod runtime_setup;

use std::time::{Duration, Instant};

use anyhow::Result;
use nullspace_sandbox::{ExecRequest, MountSpec, SandboxSpec};

const N: usize = 50;

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let runtime_setup::Setup {
        load,
        out_path,
        dir,
        rt,
    } = runtime_setup::setup("bench/notes/issue11-limits.md", "nsbench")?;
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol)?;
    let pid = std::process::id();
    let spec = |id: &str| SandboxSpec::new(id).mount(MountSpec::new(&vol, "/data"));
    let mut lines = Vec::new();
    let res = (|| -> Result<()> {
        // Warm up (template images, page cache of /usr).
        for i in 0..3 {
            let id = format!("lw{pid}-{i}");
            rt.create(spec(&id))?;
            rt.destroy(&id)?;
        }
        let (mut create, mut exec, mut fork, mut destroy) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..N {
            let id = format!("lc{pid}-{i}");
            let t = Instant::now();
            rt.create(spec(&id))?;
            create.push(t.elapsed());
            let e = Instant::now();
            let r = rt.exec(&id, ExecRequest::new(["true"]))?;
            anyhow::ensure!(r.exit_code == 0);
            exec.push(e.elapsed());
            let f = Instant::now();
            let child = format!("lf{pid}-{i}");
            rt.fork(&id, &child)?;
            fork.push(f.elapsed());
            let d = Instant::now();
            rt.destroy(&id)?;
            destroy.push(d.elapsed());
            rt.destroy(&child)?;
        }
        // Noisy neighbour: exec latency in B idle, then with A spinning on every core (A's
        // quota: one core).
        let b = format!("lb{pid}");
        rt.create(spec(&b))?;
        let exec_b = |out: &mut Vec<Duration>| -> Result<()> {
            for _ in 0..N {
                let e = Instant::now();
                let r = rt.exec(&b, ExecRequest::new(["true"]))?;
                anyhow::ensure!(r.exit_code == 0);
                out.push(e.elapsed());
            }
            Ok(())
        };
        let (mut idle, mut noisy) = (Vec::new(), Vec::new());
        exec_b(&mut idle)?;
        let a = format!("la{pid}");
        rt.create(spec(&a))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let r = rt.exec(
            &a,
            ExecRequest::shell(format!(
                "for i in $(seq {cores}); do (while :; do :; done) >/dev/null 2>&1 & done"
            )),
        )?;
        anyhow::ensure!(r.exit_code == 0);
        std::thread::sleep(Duration::from_millis(500));
        exec_b(&mut noisy)?;
        rt.destroy(&a)?;
        rt.destroy(&b)?;
        let mkfs = nullspace_blockimage::find_mkfs().expect("mkfs.ext4");
        let (mut fresh, mut copy) = (Vec::new(), Vec::new());
        let tpl = dir.path().join("template.ext4");
        nullspace_blockimage::format(&mkfs, &tpl, 4 << 30)?;
        for i in 0..10 {
            let p = dir.path().join(format!("fresh{i}.ext4"));
            let t = Instant::now();
            nullspace_blockimage::format(&mkfs, &p, 4 << 30)?;
            fresh.push(t.elapsed());
            std::fs::remove_file(&p)?;
            let p = dir.path().join(format!("copy{i}.ext4"));
            let t = Instant::now();
            nullspace_blockimage::copy_sparse(&tpl, &p)?;
            copy.push(t.elapsed());
            std::fs::remove_file(&p)?;
        }
        lines.push(format!(
            "| create, one volume, limits + 4 GiB layer | {:.1} ms | {:.1} ms |",
            pct(&mut create, 0.5),
            pct(&mut create, 0.99)
        ));
        for (name, v) in [
            ("first exec `true`", &mut exec),
            ("exec `true` in B, idle neighbour", &mut idle),
            (
                "exec `true` in B, neighbour spinning on every core",
                &mut noisy,
            ),
            ("fork (running source)", &mut fork),
            ("destroy (loop device freed)", &mut destroy),
            ("layer image: mkfs.ext4 of 4 GiB", &mut fresh),
            ("layer image: sparse copy of the template", &mut copy),
        ] {
            lines.push(format!(
                "| {name} | {:.1} ms | {:.1} ms |",
                pct(v, 0.5),
                pct(v, 0.99)
            ));
        }
        Ok(())
    })();
    let _ = rt.destroy_all();
    res?;
    let text = format!(
        "# Sandbox limits (issue 11)\n\nLoad average at start: {load}. {N} creates; images 10 each.\n\n| what | p50 | p99 |\n|---|---|---|\n{}\n",
        lines.join("\n")
    );
    print!("{text}");
    std::fs::write(&out_path, text)?;
    Ok(())
}
