#!/usr/bin/env python3
"""Benchmarks of issue 4 (search, replace, watch), each against a named baseline in the same run.

    python3 bench/content.py                  # everything; prints a table, writes results.json
    python3 bench/content.py --only search    # some of: search, replace, watch
    python3 bench/content.py --quick          # smaller sizes, fewer runs
    python3 bench/content.py --json-out r.json  # also keep every measurement

- search: ``nullspace volume search`` over a volume of about 200 MB of Rust sources (the .rs
  files of ~/.cargo/registry/src, repeated until 200 MB) against ``rg`` with the same pattern
  over the same files (the volume's directory on the server's disk), output to a file for both.
- replace: ``nullspace volume replace`` across 1,000 source files against ``sed -i`` over a
  copy of the same files (and ``sed -i`` followed by ``sync`` of those files, since every file
  we rewrite is fsynced before the answer).
- watch: from a write's HTTP response to the arrival of its event at a Python SDK watcher,
  over 500 writes; and, in the same run, from a write made by a shell inside a sandbox (the
  volume mounted read-write; the event comes from the file-system source) to its arrival.

The server is a copy of target/release/nullspace (``--bin``), started on a free port with its
data dir in a fresh directory under /work/benchtmp (``--workdir-base``), where the baselines'
files live too (same filesystem). Measurements of ours and the baseline are interleaved and
repeated; medians are reported. Needs ripgrep (``apt-get install ripgrep``), GNU sed, and the
SDK (``pip install ./sdk/python``, or run from the repository: it adds sdk/python to the path).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import benchlib
from benchlib import ROOT, fmt_s, median

sys.path.insert(0, str(ROOT / "sdk" / "python"))

import nullspace  # noqa: E402

MB = 1_000_000
BATCH_FILES = 4_000  # a batch holds a descriptor per file: stay well under the open-file limit


class Server(benchlib.Server):
    """Our server; open watch streams keep a graceful shutdown waiting, so do not wait long."""

    def __init__(self, binary: Path, work: Path) -> None:
        super().__init__(binary, work, stop_grace=5)

    def ok(self, *args: str) -> str:
        return self.cli(*args)

    def volume_dir(self, name: str) -> Path:
        vid = json.loads(self.ok("--json", "volume", "get", name))["id"]
        return self.volume_data_dir(vid)


def build_corpus(dest: Path, target_bytes: int) -> Tuple[int, int]:
    """Copies .rs files of the cargo registry into dest/pN/ (at most BATCH_FILES per part),
    repeating them until `target_bytes`. Returns (files, bytes)."""
    src = Path.home() / ".cargo" / "registry" / "src"
    sources = sorted(p for p in src.rglob("*.rs") if p.is_file() and not p.is_symlink())
    if not sources:
        raise RuntimeError(f"no .rs files under {src}")
    files = total = 0
    copy = 0
    while total < target_bytes:
        for p in sources:
            if total >= target_bytes:
                break
            rel = p.relative_to(src)
            out = dest / f"p{files // BATCH_FILES:02}" / f"c{copy}" / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)
            files += 1
            total += out.stat().st_size
        copy += 1
    return files, total


def upload(srv: Server, vol: str, local: Path) -> None:
    """Uploads every part directory of `local` with write-batch (one batch per part)."""
    for part in sorted(local.iterdir()):
        srv.ok("volume", "write-batch", vol, str(part), f"/{part.name}")


def timed(cmd: List[str], env: Dict[str, str], out: Path) -> Tuple[float, int]:
    """Runs `cmd` with stdout to `out`; returns (seconds, lines of output)."""
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.PIPE, check=False)
        dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[0]}: exit {r.returncode}: {r.stderr.decode()}")
    with open(out, "rb") as f:
        n = sum(1 for _ in f)
    return dt, n


def bench_search(srv: Server, work: Path, runs: int, size: int, out: Dict[str, object]) -> None:
    corpus = work / "corpus"
    files, total = build_corpus(corpus, size)
    print(f"   corpus: {files} files, {total / MB:.0f} MB", flush=True)
    srv.ok("volume", "create", "src")
    upload(srv, "src", corpus)
    vdir = srv.volume_dir("src")
    rg = ["rg", "--no-ignore", "--hidden", "--no-heading", "--line-number", "--column",
          "--color", "never"]
    results = []
    for pattern in (r"PhantomData", r"fn [a-z_]+\(&mut self"):
        cases = {
            "nullspace volume search": [str(srv.binary), "volume", "search", "src", pattern],
            "rg (parallel)": [*rg, pattern, str(vdir)],
            "rg --sort path (one thread, path order like ours)": [*rg, "--sort", "path", pattern, str(vdir)],
        }
        times: Dict[str, List[float]] = {k: [] for k in cases}
        lines: Dict[str, int] = {}
        for k, cmd in cases.items():  # warm the page cache and check the answers agree
            _, lines[k] = timed(cmd, srv.env, work / "search.out")
        for _ in range(runs):
            for k, cmd in cases.items():
                dt, _ = timed(cmd, srv.env, work / "search.out")
                times[k].append(dt)
        row = {k: median(v) for k, v in times.items()}
        results.append({"pattern": pattern, "median_s": row, "runs": times, "matching_lines": lines})
        ours, base = row["nullspace volume search"], row["rg (parallel)"]
        print(f"   {pattern!r}: ours {fmt_s(ours)}, rg {fmt_s(base)} ({ours / base:.2f}x), "
              f"rg --sort path {fmt_s(row['rg --sort path (one thread, path order like ours)'])}; "
              f"lines {lines}", flush=True)
    out["search"] = {"files": files, "bytes": total, "results": results}


def bench_replace(srv: Server, work: Path, runs: int, nfiles: int, out: Dict[str, object]) -> None:
    src = Path.home() / ".cargo" / "registry" / "src"
    picked = [p for p in sorted(src.rglob("*.rs")) if p.is_file() and 2_000 <= p.stat().st_size <= 64_000]
    step = max(1, len(picked) // nfiles)
    picked = picked[::step][:nfiles]
    orig = work / "replace-orig" / "p00"
    for i, p in enumerate(picked):
        d = orig / f"d{i // 100:02}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / f"f{i:04}_{p.name}")
    nbytes = sum(f.stat().st_size for f in orig.rglob("*") if f.is_file())
    srv.ok("volume", "create", "rep")
    pattern, replacement = "Result", "Outcome"
    with_match = sum(1 for f in orig.rglob("*") if f.is_file() and pattern.encode() in f.read_bytes())
    print(f"   {len(picked)} files, {nbytes / MB:.1f} MB, {with_match} with {pattern!r}", flush=True)
    local = work / "replace-sed"
    listing = lambda: sorted(str(f) for f in local.rglob("*") if f.is_file())  # noqa: E731
    times: Dict[str, List[float]] = {"ours": [], "sed -i": [], "sed -i + sync": []}
    changed: Dict[str, int] = {}
    for _ in range(runs):
        # Fresh files for each run (untimed), then the same replace on both sides.
        srv.ok("volume", "rm", "rep", "/", "-r")
        upload(srv, "rep", orig.parent)
        t0 = time.perf_counter()
        summary = json.loads(srv.ok("--json", "volume", "replace", "rep", pattern, replacement, "--fixed"))
        times["ours"].append(time.perf_counter() - t0)
        changed["ours"] = summary["files_changed"]
        for variant in ("sed -i", "sed -i + sync"):
            shutil.rmtree(local, ignore_errors=True)
            shutil.copytree(orig.parent, local)
            subprocess.run(["sync"], check=True)
            names = listing()
            t0 = time.perf_counter()
            subprocess.run(["sed", "-i", f"s/{pattern}/{replacement}/g", *names], check=True)
            if variant.endswith("sync"):
                dirs = sorted({str(Path(n).parent) for n in names})
                subprocess.run(["sync", *names, *dirs], check=True)
            times[variant].append(time.perf_counter() - t0)
    row = {k: median(v) for k, v in times.items()}
    print(f"   ours {fmt_s(row['ours'])}, sed -i {fmt_s(row['sed -i'])} "
          f"({row['ours'] / row['sed -i']:.2f}x), sed -i + sync {fmt_s(row['sed -i + sync'])} "
          f"({row['ours'] / row['sed -i + sync']:.2f}x); files changed by ours: {changed['ours']}", flush=True)
    out["replace"] = {"files": len(picked), "bytes": nbytes, "files_with_match": with_match,
                      "files_changed": changed["ours"], "median_s": row, "runs": times}


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


WATCHER = r"""
import sys, time
sys.path.insert(0, sys.argv[4])
import nullspace
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = nullspace.Client(url, key)
vol = nullspace.Volume.from_name("watched", client=client)
with vol.files.watch(sys.argv[5]) as events:
    print("ready", flush=True)
    seen = 0
    for ev in events:
        print(ev.path, time.time_ns(), flush=True)
        seen += 1
        if seen == n:
            break
"""


def bench_watch(srv: Server, work: Path, writes: int, out: Dict[str, object]) -> None:
    """Writes through the SDK; a watcher in another process (the SDK's `watch`) stamps each
    event's arrival. Both sides use the wall clock of this machine."""
    client = nullspace.Client(srv.url, srv.key)
    vol = nullspace.Volume.create("watched", client=client)
    vol.files.mkdir("/w")
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER, srv.url, srv.key, str(writes), str(ROOT / "sdk" / "python"), "/w"],
        stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    if watcher.stdout.readline().strip() != "ready":
        raise RuntimeError("the watcher did not start")
    sent: Dict[str, Tuple[int, int]] = {}
    for i in range(writes):
        p = f"/w/f{i:04}"
        t0 = time.time_ns()
        vol.files.write(p, b"x" * 100)
        sent[p] = (t0, time.time_ns())
        time.sleep(0.002)
    try:
        lines, _ = watcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        watcher.kill()
        raise RuntimeError("not every event arrived within 60 s") from None
    client.close()
    arrived = {path: int(ns) for path, ns in (line.split() for line in lines.splitlines())}
    if len(arrived) != writes:
        raise RuntimeError(f"{len(arrived)} of {writes} events arrived")
    after_response = [(arrived[p] - r) / 1e6 for p, (_, r) in sent.items()]
    after_request = [(arrived[p] - s) / 1e6 for p, (s, _) in sent.items()]
    early = sum(1 for x in after_response if x < 0)
    clamped = [max(0.0, x) for x in after_response]
    res = {
        "writes": writes,
        "after_response_ms": {"p50": pct(clamped, 0.5), "p99": pct(clamped, 0.99), "max": max(clamped)},
        "arrived_before_response": early,
        "after_request_start_ms": {"p50": pct(after_request, 0.5), "p99": pct(after_request, 0.99)},
        "write_ms": {"p50": pct([(r - s) / 1e6 for s, r in sent.values()], 0.5)},
    }
    print(f"   after the response: p50 {res['after_response_ms']['p50']:.2f} ms, "
          f"p99 {res['after_response_ms']['p99']:.2f} ms ({early} of {writes} arrived before the "
          f"write's response); after the request started: p50 {res['after_request_start_ms']['p50']:.2f} ms, "
          f"p99 {res['after_request_start_ms']['p99']:.2f} ms; write p50 {res['write_ms']['p50']:.2f} ms",
          flush=True)
    out["watch"] = res
    bench_watch_sandbox(srv, writes, out)


SANDBOX_WRITER = r"""
i=0
while [ $i -lt {n} ]; do
  t0=$(date +%s%N); echo 0123456789 > /mnt/v/s/f$i; t1=$(date +%s%N)
  echo "/s/f$i $t0 $t1"; sleep 0.002; i=$((i+1))
done
"""


def bench_watch_sandbox(srv: Server, writes: int, out: Dict[str, object]) -> None:
    """A shell in a sandbox writes files into the mounted volume, stamping each write before
    and after (`date +%s%N`, the same wall clock); a watcher process stamps each arrival."""
    client = nullspace.Client(srv.url, srv.key)
    vol = nullspace.Volume.from_name("watched", client=client)
    vol.files.mkdir("/s")
    with nullspace.Sandbox.create(volumes=[vol.mount("/mnt/v")], client=client) as sb:
        watcher = subprocess.Popen(
            [sys.executable, "-c", WATCHER, srv.url, srv.key, str(writes), str(ROOT / "sdk" / "python"), "/s"],
            stdout=subprocess.PIPE, text=True)
        assert watcher.stdout is not None
        if watcher.stdout.readline().strip() != "ready":
            raise RuntimeError("the watcher did not start")
        r = sb.exec(SANDBOX_WRITER.format(n=writes), timeout=600)
        if r.exit_code != 0:
            raise RuntimeError(f"sandbox writer: exit {r.exit_code}: {r.stderr}")
        try:
            lines, _ = watcher.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise RuntimeError("not every sandbox event arrived within 60 s") from None
    client.close()
    sent = {path: (int(t0), int(t1)) for path, t0, t1 in (ln.split() for ln in r.stdout.splitlines())}
    arrived = {path: int(ns) for path, ns in (line.split() for line in lines.splitlines())}
    if len(arrived) != writes or set(arrived) != set(sent):
        raise RuntimeError(f"{len(arrived)} of {writes} sandbox events arrived")
    after_write = [max(0.0, (arrived[p] - t1) / 1e6) for p, (_, t1) in sent.items()]
    after_start = [(arrived[p] - t0) / 1e6 for p, (t0, _) in sent.items()]
    res = {
        "writes": writes,
        "after_write_ms": {"p50": pct(after_write, 0.5), "p99": pct(after_write, 0.99), "max": max(after_write)},
        "after_write_start_ms": {"p50": pct(after_start, 0.5), "p99": pct(after_start, 0.99)},
    }
    print(f"   sandbox write → event: after the write: p50 {res['after_write_ms']['p50']:.2f} ms, "
          f"p99 {res['after_write_ms']['p99']:.2f} ms; after it started: "
          f"p50 {res['after_write_start_ms']['p50']:.2f} ms, p99 {res['after_write_start_ms']['p99']:.2f} ms",
          flush=True)
    out["watch_sandbox"] = res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated subset of search,replace,watch")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    ap.add_argument("--runs", type=int, help="repetitions per measurement (default 5, quick 2)")
    ap.add_argument("--bin", default=str(ROOT / "target/release/nullspace"))
    ap.add_argument("--workdir-base", default="/work/benchtmp")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    ap.add_argument("--json-out", help="write every measurement to this JSON file")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else ["search", "replace", "watch"]
    runs = args.runs or (2 if args.quick else 5)
    if shutil.which("rg") is None and "search" in only:
        ap.error("rg not found: apt-get install ripgrep")
    src_bin = Path(args.bin)
    if not src_bin.exists():
        ap.error(f"{src_bin} not found: cargo build --release -p nullspace-cli")
    Path(args.workdir_base).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="issue4-", dir=args.workdir_base))
    binary = work / "nullspace"
    shutil.copy2(src_bin, binary)
    srv = Server(binary, work)
    out: Dict[str, object] = {"runs": runs}
    print(f"work dir {work}; server {srv.url}", flush=True)
    try:
        srv.start()
        srv.ok("admin", "tenant", "set-volume-cap", "default", "64GiB")
        for name in only:
            print(f"== {name}", flush=True)
            t0 = time.time()
            if name == "search":
                bench_search(srv, work, runs, (20 if args.quick else 200) * MB, out)
            elif name == "replace":
                bench_replace(srv, work, runs, 200 if args.quick else 1000, out)
            elif name == "watch":
                bench_watch(srv, work, 100 if args.quick else 500, out)
            else:
                ap.error(f"unknown benchmark {name!r}")
            print(f"   {time.time() - t0:.0f} s", flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(out, indent=1))
            print(f"wrote {args.json_out}")
        return 0
    finally:
        srv.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
