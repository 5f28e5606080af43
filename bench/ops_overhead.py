#!/usr/bin/env python3
"""Overhead of metrics and access logging (issue 16): requests per second of a 4 KiB read
(`GET /v1/volumes/{name}/files/content`) under wrk with 16 connections, on four servers side
by side in one run:

- **main**: the binary of the commit before issue 16 (`--baseline`): no access layer at all;
- **off**: this build with `--access-log false` and no `--metrics-listen` (request ids only;
  recording metrics is a no-op without a recorder);
- **on**: this build with the access log (text, to a file) and `--metrics-listen`, scraped
  once a second while wrk runs;
- **on, JSON**: the same with `--log-format json`.

    python3 bench/ops_overhead.py --binary BIN --baseline MAIN_BIN [--rounds 7] [--seconds 5]
                                  [--connections 16] [--threads 2] [--write]

Every server runs on SQLite in its own data dir with the directory backend, `RUST_LOG=info`,
its log on disk; each has one volume with one 4 KiB file. Each round runs wrk against every
server for `--seconds`, in rotated order; figures are medians over rounds. `--write` puts the
headline rows in bench/results/ops_overhead.json. Needs wrk (Debian package wrk)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, Server, load_now  # noqa: E402


class Variant(Server):
    """A benchlib server with more flags and `RUST_LOG=info`."""

    def __init__(self, name: str, binary: Path, work: Path, flags: List[str]) -> None:
        work.mkdir(parents=True)
        super().__init__(binary, work)
        self.name = name
        self.flags = flags
        self.metrics: Optional[str] = None

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             str(self.data), "--bootstrap-key", self.key, "--volume-backend", "directory",
             *self.flags],
            stdout=self.log, stderr=self.log, env=dict(self.env, RUST_LOG="info"))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}")
            time.sleep(0.05)
        if "--metrics-listen" in self.flags:
            text = Path(self.log.name).read_text(errors="replace")
            m = re.search(r"(http://[0-9.:]+/metrics)", text)
            if not m:
                raise RuntimeError(f"{self.name}: no metrics URL logged")
            self.metrics = m.group(1)

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> None:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()


def wrk(s: Variant, seconds: float, connections: int, threads: int) -> float:
    """Requests/s of wrk reading the 4 KiB file; while it runs, /metrics is scraped each second."""
    stop = threading.Event()

    def scrape() -> None:
        while s.metrics and not stop.wait(1.0):
            with urllib.request.urlopen(s.metrics, timeout=10) as r:
                r.read()

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-H",
         f"Authorization: Bearer {s.key}",
         f"{s.url}/v1/volumes/bench/files/content?path=/f4k"],
        capture_output=True, text=True, check=True).stdout
    stop.set()
    scraper.join()
    if "Non-2xx" in out:
        raise RuntimeError(f"{s.name}: wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", type=Path, required=True)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="main's binary (before issue 16); without it the baseline is `off`")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--commit", default=None, help="the commit --binary was built from")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nullspace-ops-bench-"))
    variants = [
        Variant("off", args.binary, work / "off", ["--access-log", "false"]),
        Variant("on", args.binary, work / "on", ["--metrics-listen", "127.0.0.1:0"]),
        Variant("on-json", args.binary, work / "json",
                ["--metrics-listen", "127.0.0.1:0", "--log-format", "json"]),
    ]
    if args.baseline:
        variants.insert(0, Variant("main", args.baseline, work / "main", []))
    base = "main" if args.baseline else "off"
    base_text = ("main (no access layer)" if args.baseline
                 else "this build, access log off and no metrics")
    load_before = load_now()
    rates: Dict[str, List[float]] = {v.name: [] for v in variants}
    try:
        for v in variants:
            v.start()
            v.request("POST", "/v1/volumes", json.dumps({"name": "bench"}).encode())
            v.request("PUT", "/v1/volumes/bench/files/content?path=/f4k", b"x" * 4096)
            wrk(v, 1, args.connections, args.threads)  # warm-up, not counted
        for i in range(args.rounds):
            k = i % len(variants)
            for v in variants[k:] + variants[:k]:
                rates[v.name].append(wrk(v, args.seconds, args.connections, args.threads))
            print(f"round {i + 1}: " + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items()),
                  flush=True)
        lines = {v.name: sum(1 for l in open(v.log.name, errors="replace") if "nullspace::access" in l)
                 for v in variants}
    finally:
        for v in variants:
            v.stop()
    load_after = load_now()
    med = {n: statistics.median(r) for n, r in rates.items()}
    print(f"medians: " + ", ".join(f"{n} {m:,.0f} req/s" for n, m in med.items()))
    print(f"ratios to {base}: " + ", ".join(f"{n} {m / med[base]:.3f}" for n, m in med.items()))
    print(f"access-log lines: {lines}")
    print(f"load before: {load_before}; after: {load_after}")
    print("raw: " + json.dumps(rates))
    if not args.write:
        return
    commit = args.commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
    setup = (f"release build, 4 KiB GET, wrk {args.threads} threads {args.connections} connections, "
             f"{args.rounds} x {args.seconds:g} s, medians")

    def fig(name: str, what: str) -> dict:
        ratio = med[name] / med[base]
        return {"subsystem": "data plane",
                "what": f"{what} ({setup})",
                "ours": f"{med[name]:,.0f} req/s",
                "baseline": f"{base_text}: {med[base]:,.0f} req/s",
                "ratio": f"{ratio:.2f}x",
                "goal": "≤ 3 % overhead (≥ 0.97x)",
                "met": "yes" if ratio >= 0.97 else "no"}

    doc = {
        "bench": "ops_overhead",
        "order": 90,
        "command": "python3 bench/ops_overhead.py --binary BIN --baseline MAIN_BIN --write",
        "measured": {"date": dt.date.today().isoformat(), "commit": commit, "dirty": False,
                     "commit_is": "built"},
        "attribution": f"release build of this commit in the worktree of issue 16"
                       f"{' (and of main)' if args.baseline else ''}; "
                       f"load before: {load_before}; after: {load_after}",
        "code_paths": ["crates/api/src/access.rs", "crates/api/src/metrics.rs",
                       "crates/api/src/server.rs"],
        "notes": "bench/notes/issue16-ops.md",
        "figures": [fig("on", "metrics + access log (text): 4 KiB reads/s"),
                    fig("on-json", "metrics + access log (JSON): 4 KiB reads/s")]
                   + ([fig("off", "access log off, no metrics (request ids only): 4 KiB reads/s")]
                      if args.baseline else []),
    }
    out = ROOT / "bench" / "results" / "ops_overhead.json"
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
