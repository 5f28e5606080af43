#!/usr/bin/env python3
"""The API's latency beside a noisy neighbour (issue 11): p50/p99 of `GET /v1/volumes/{v}`
and of a 4 KiB read, first with every sandbox idle, then with one sandbox (1 core, the
default) spinning one busy loop per host core, alternating idle and noisy rounds in one run;
and exec `true` latency in a second, quiet sandbox in both states.

    python3 bench/noisy_neighbour.py [--binary target/release/nullspace] [--rounds 4]

Prints a Markdown table. Needs root (sandboxes) and the server binary."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Server  # noqa: E402


def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed_get(url: str, key: str, n: int) -> List[float]:
    out = []
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.environ.get("NULLSPACE_BIN", "target/release/nullspace"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="noisy-bench"))
    s = Server(Path(a.binary).resolve(), work)
    s.start()
    try:
        s.cli("volume", "create", "v")
        urllib.request.urlopen(urllib.request.Request(
            f"{s.url}/v1/volumes/v/files/content?path=/f", data=b"x" * 4096, method="PUT",
            headers={"Authorization": f"Bearer {s.key}"}), timeout=30).read()
        noisy = s.cli("sandbox", "create").strip()
        quiet = s.cli("sandbox", "create").strip()
        cores = os.cpu_count() or 1
        results = {k: {"idle": [], "noisy": []} for k in ("stat", "read", "exec")}
        for _ in range(a.rounds):
            for state in ("idle", "noisy"):
                if state == "noisy":
                    s.cli("sandbox", "exec", noisy, "--", "sh", "-c",
                          f"for i in $(seq {cores}); do (while :; do :; done) >/dev/null 2>&1 & done")
                    time.sleep(1)
                results["stat"][state] += timed_get(f"{s.url}/v1/volumes/v", s.key, a.requests)
                results["read"][state] += timed_get(
                    f"{s.url}/v1/volumes/v/files/content?path=/f", s.key, a.requests)
                for _ in range(20):
                    t = time.perf_counter()
                    s.cli("sandbox", "exec", quiet, "--", "true")
                    results["exec"][state].append((time.perf_counter() - t) * 1000)
                if state == "noisy":
                    s.cli("sandbox", "exec", noisy, "--", "sh", "-c", "kill -9 -1 || true")
                    time.sleep(0.5)
        print(f"| what | idle p50 / p99 (ms) | noisy p50 / p99 (ms) | p99 ratio |")
        print("|---|---|---|---|")
        names = {"stat": "GET volume", "read": "4 KiB read", "exec": "CLI exec `true` in a quiet sandbox"}
        summary = {}
        for k, v in results.items():
            i50, i99, n50, n99 = pct(v["idle"], 50), pct(v["idle"], 99), pct(v["noisy"], 50), pct(v["noisy"], 99)
            summary[k] = dict(idle_p50=i50, idle_p99=i99, noisy_p50=n50, noisy_p99=n99)
            print(f"| {names[k]} | {i50:.2f} / {i99:.2f} | {n50:.2f} / {n99:.2f} | {n99 / i99:.2f}x |")
        print(json.dumps(summary))
        for sb in (noisy, quiet):
            s.run("sandbox", "destroy", sb)
    finally:
        s.stop()


if __name__ == "__main__":
    main()
