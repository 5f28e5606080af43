#!/usr/bin/env python3
"""The open small-file volume benchmark (issue 14), modelled on the one published suite for a
shared sandbox volume (Sandbox0: 30,000 files of 4 KiB, 8 workers): writes/s, reads/s and
list+stat/s with p50/p95/p99 latency, with 1 and with 8 workers, through

- the **Python SDK** (one `nullspace.Client` per worker process, keep-alive, durable writes),
- a **sandbox mount** (the same worker code as the local disk, run by `python3` inside a
  sandbox with the volume mounted at /data),
- the **local disk** (the baseline: the same code on a directory of the same file system, in
  the same run).

Every worker is its own process (no GIL between workers). Files are spread over 30 directories
of 1,000; each worker takes an equal share of the directories. A write is one file of 4 KiB of
random bytes; on the local disk and in the sandbox it is `open, write, fsync, close` (durable,
as every API write is). A read reads a whole file. list+stat lists each directory and stats
every entry (one call each: `os.stat`, or `files.stat` through the SDK). Rates are operations
over the wall time of the whole phase (first start to last end).

    python3 bench/small_files.py [--binary target/release/nullspace] [--files 30000] [--json OUT]

Needs root (sandboxes) and the SDK installed (`pip install ./sdk/python`)."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

DIRS = 30
SIZE = 4096
PHASES = ("write", "read", "list+stat")


# ----------------------------------------------------------------- the worker (also run in a sandbox)


def _pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0.0


def _local_ops(root: str) -> Dict[str, Callable[..., None]]:
    def write(path: str, data: bytes) -> None:
        fd = os.open(os.path.join(root, path.lstrip("/")), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(path: str) -> None:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            f.read()

    def listdir(path: str) -> List[str]:
        return [path + "/" + n for n in os.listdir(os.path.join(root, path.lstrip("/")))]

    def stat(path: str) -> None:
        os.stat(os.path.join(root, path.lstrip("/")))

    def mkdir(path: str) -> None:
        os.makedirs(os.path.join(root, path.lstrip("/")), exist_ok=True)

    return {"write": write, "read": read, "list": listdir, "stat": stat, "mkdir": mkdir}


def _sdk_ops(volume: str) -> Dict[str, Callable[..., None]]:
    import nullspace  # type: ignore[import-not-found]

    files = nullspace.Volume.from_name(volume).files
    return {
        "write": lambda path, data: files.write(path, data),
        "read": lambda path: files.read_bytes(path),
        "list": lambda path: [e.path for e in files.iter_list(path)],
        "stat": lambda path: files.stat(path),
        "mkdir": lambda path: files.mkdir(path),
    }


def _worker(args: Tuple[str, str, str, List[int], int, "mp.Queue[object]"]) -> None:
    mode, target, phase, dirs, per_dir, out = args
    ops = _local_ops(target) if mode == "local" else _sdk_ops(target)
    lat: List[float] = []
    data = os.urandom(SIZE)
    t0 = time.time()
    if phase == "write":
        for d in dirs:
            ops["mkdir"](f"/bench/d{d:02d}")
            for f in range(per_dir):
                t = time.perf_counter()
                ops["write"](f"/bench/d{d:02d}/f{f:04d}", data)
                lat.append(time.perf_counter() - t)
    elif phase == "read":
        for d in dirs:
            for f in range(per_dir):
                t = time.perf_counter()
                ops["read"](f"/bench/d{d:02d}/f{f:04d}")
                lat.append(time.perf_counter() - t)
    else:
        for d in dirs:
            for p in ops["list"](f"/bench/d{d:02d}"):  # type: ignore[union-attr]
                t = time.perf_counter()
                ops["stat"](p)
                lat.append(time.perf_counter() - t)
    out.put((t0, time.time(), lat))


def run_phases(mode: str, target: str, workers: int, files: int) -> Dict[str, Dict[str, float]]:
    """Runs the three phases with `workers` processes; per phase: ops/s and latency percentiles."""
    per_dir = files // DIRS
    ctx = mp.get_context("fork")
    result: Dict[str, Dict[str, float]] = {}
    for phase in PHASES:
        q: "mp.Queue[object]" = ctx.Queue()
        procs = [ctx.Process(target=_worker, args=((mode, target, phase, list(range(w, DIRS, workers)), per_dir, q),))
                 for w in range(workers)]
        for p in procs:
            p.start()
        got = [q.get() for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"a {phase} worker failed ({p.exitcode})")
        start = min(g[0] for g in got)  # type: ignore[index]
        end = max(g[1] for g in got)  # type: ignore[index]
        lat = [x for g in got for x in g[2]]  # type: ignore[index]
        result[phase] = {"ops_per_s": len(lat) / (end - start), "p50_ms": _pct(lat, 50) * 1e3,
                         "p95_ms": _pct(lat, 95) * 1e3, "p99_ms": _pct(lat, 99) * 1e3, "ops": len(lat)}
    return result


# ----------------------------------------------------------------- the run


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":  # inside a sandbox: python3 - --worker ROOT W N
        root, workers, files = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(run_phases("local", root, workers, files)))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import ROOT as REPO, Server, load_now, rm  # noqa: E402

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=Path, default=REPO / "target/release/nullspace")
    ap.add_argument("--files", type=int, default=30_000)
    ap.add_argument("--workers", default="1,8")
    ap.add_argument("--workdir-base", type=Path, default=Path("/work/benchtmp"))
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    args.workdir_base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="small-files-", dir=args.workdir_base))
    s = Server(args.binary, work)
    script = Path(__file__).read_bytes()
    rows: List[Tuple[str, int, Dict[str, Dict[str, float]]]] = []
    load_before = load_now()
    sb = ""
    try:
        s.start()
        os.environ.update(NULLSPACE_API_URL=s.url, NULLSPACE_API_KEY=s.key)
        for w in (int(x) for x in args.workers.split(",")):
            local = work / f"local-{w}"
            local.mkdir()
            rows.append(("local disk", w, run_phases("local", str(local), w, args.files)))
            rm(local)
            vol = f"small-sdk-{w}"
            s.cli("volume", "create", vol)
            rows.append(("Python SDK", w, run_phases("sdk", vol, w, args.files)))
            s.cli("volume", "delete", vol, "--force")
            vol = f"small-sb-{w}"
            s.cli("volume", "create", vol)
            sb = s.cli("sandbox", "create", "--volume", f"ref={vol},mount=/data").strip()
            import subprocess
            out = subprocess.run([str(args.binary), "sandbox", "exec", sb, "-i", "--timeout", "3600", "--",
                                  "python3", "-", "--worker", "/data", str(w), str(args.files)],
                                 input=script, env=s.env, capture_output=True, check=True)
            rows.append(("sandbox mount", w, json.loads(out.stdout)))
            s.cli("sandbox", "destroy", sb)
            sb = ""
            s.cli("volume", "delete", vol, "--force")
    finally:
        if sb:
            s.run("sandbox", "destroy", sb)
        s.stop()
        rm(work)

    print(f"{args.files:,} files of 4 KiB in {DIRS} directories; load before: {load_before}; after: {load_now()}\n")
    print("| path | workers | writes/s | reads/s | list+stat/s | write p50/p95/p99 ms | read p50/p95/p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, w, r in rows:
        wr, rd, ls = r["write"], r["read"], r["list+stat"]
        print(f"| {name} | {w} | {wr['ops_per_s']:,.0f} | {rd['ops_per_s']:,.0f} | {ls['ops_per_s']:,.0f} | "
              f"{wr['p50_ms']:.2f} / {wr['p95_ms']:.2f} / {wr['p99_ms']:.2f} | "
              f"{rd['p50_ms']:.2f} / {rd['p95_ms']:.2f} / {rd['p99_ms']:.2f} |")
    print("| Sandbox0, as published (not measured here) | 8 | 903 | 1,566 | 7,681 | 8.6 (p50) | — |")
    if args.json:
        args.json.write_text(json.dumps([{"path": n, "workers": w, **r} for n, w, r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
