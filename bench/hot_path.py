#!/usr/bin/env python3
"""The server's per-request cost (issue 14), side by side in one run:

- 4 KiB GET with 16 wrk clients (keep-alive): ours vs nginx serving the same file;
- one keep-alive client (wrk, 1 connection): ours (goal 3,000 req/s), nginx beside it;
- `stat` vs `GET /v1/health` with 16 wrk clients (health: no auth, no disk) and `whoami`
  (authentication only) between them;
- through the Python SDK: `read_bytes` of 4 KiB on one client, and durable 100 B `write`s
  with 1 and with 8 worker processes (does throughput grow with clients: group commit);
- no regression: GET of a 1 GiB file with curl, ours vs nginx, and the server's peak RSS.

    python3 bench/hot_path.py --binary target/release/nullspace [--seconds 5] [--json OUT]

Needs wrk and nginx (Debian packages `wrk`, `nginx-light` or `nginx`), curl, and the SDK
installed (`pip install ./sdk/python`)."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from transfers import Nginx  # noqa: E402

VOL = "hot"


def wrk(url: str, conns: int, seconds: float, key: str = "") -> float:
    """Requests/s wrk reports for `conns` keep-alive connections (threads: min(conns, 2))."""
    cmd = ["wrk", "-t", str(min(conns, 2)), "-c", str(conns), "-d", f"{seconds:.0f}s", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = benchlib.run_ok(cmd)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors for {url}:\n{out}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"no rate in wrk's output:\n{out}")
    return float(m.group(1))


def api(srv: benchlib.Server, method: str, path: str, body: bytes = b"") -> bytes:
    req = urllib.request.Request(srv.url + path, data=body if method != "GET" else None, method=method,
                                 headers={"Authorization": f"Bearer {srv.key}",
                                          "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def _sdk_reads(n: int, out: "mp.Queue[object]") -> None:
    import nullspace  # type: ignore[import-not-found]

    files = nullspace.Volume.from_name(VOL).files
    files.read_bytes("/4k.bin")
    t = time.perf_counter()
    for _ in range(n):
        files.read_bytes("/4k.bin")
    out.put(n / (time.perf_counter() - t))


def _sdk_writes(w: int, n: int, out: "mp.Queue[object]") -> None:
    import nullspace  # type: ignore[import-not-found]

    files = nullspace.Volume.from_name(VOL).files
    data = b"x" * 100
    t0 = time.time()
    for i in range(n):
        files.write(f"/w/{w}/{i}.txt", data)
    out.put((t0, time.time(), n))


def sdk_reads(n: int) -> float:
    ctx = mp.get_context("fork")
    q: "mp.Queue[object]" = ctx.Queue()
    p = ctx.Process(target=_sdk_reads, args=(n, q))
    p.start()
    r = q.get()
    p.join()
    return float(r)  # type: ignore[arg-type]


def sdk_writes(workers: int, per_worker: int) -> float:
    """Durable 100 B writes/s over the wall time of `workers` processes (each its own Client)."""
    ctx = mp.get_context("fork")
    q: "mp.Queue[object]" = ctx.Queue()
    procs = [ctx.Process(target=_sdk_writes, args=(w + 100 * workers, per_worker, q)) for w in range(workers)]
    for p in procs:
        p.start()
    got = [q.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError("an SDK writer failed")
    start = min(g[0] for g in got)  # type: ignore[index]
    end = max(g[1] for g in got)  # type: ignore[index]
    return sum(g[2] for g in got) / (end - start)  # type: ignore[index,misc]


def curl_get(url: str, key: str = "") -> float:
    cmd = ["curl", "-sSf", "-o", "/dev/null", "-w", "%{speed_download}", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}"]
    return float(benchlib.run_ok(cmd)) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=Path("target/release/nullspace"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every wrk pair (medians)")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument("--write", action="store_true", help="write bench/results/hot_path.json")
    a = ap.parse_args()
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install wrk nginx-light curl)")
    binary = a.binary.resolve()
    work = Path(tempfile.mkdtemp(prefix="nullspace-hot-"))
    srv = benchlib.Server(binary, work)
    nginx = Nginx(work)
    raw: Dict[str, List[float]] = {}
    try:
        srv.start()
        nginx.start()
        os.environ.update(NULLSPACE_API_URL=srv.url, NULLSPACE_API_KEY=srv.key)
        srv.cli("volume", "create", VOL)
        block = os.urandom(4096)
        api(srv, "PUT", f"/v1/volumes/{VOL}/files/content?path=/4k.bin", block)
        (nginx.root / "files" / "4k.bin").write_bytes(block)
        big = work / "1g.bin"
        subprocess.run(["dd", "if=/dev/urandom", f"of={big}", "bs=1M", "count=1024", "status=none"], check=True)
        shutil.copy(big, nginx.root / "files" / "1g.bin")
        subprocess.run(["curl", "-sSf", "-o", "/dev/null", "-H", f"Authorization: Bearer {srv.key}", "-T", str(big),
                        f"{srv.url}/v1/volumes/{VOL}/files/content?path=/1g.bin"], check=True)
        big.unlink()
        load_before = benchlib.load_now()
        get4k = f"{srv.url}/v1/volumes/{VOL}/files/content?path=%2F4k.bin"
        stat = f"{srv.url}/v1/volumes/{VOL}/files/stat?path=%2F4k.bin"
        pairs = {
            "get4k_16": lambda: wrk(get4k, 16, a.seconds, srv.key),
            "nginx_get4k_16": lambda: wrk(f"{nginx.url}/files/4k.bin", 16, a.seconds),
            "get4k_1": lambda: wrk(get4k, 1, a.seconds, srv.key),
            "nginx_get4k_1": lambda: wrk(f"{nginx.url}/files/4k.bin", 1, a.seconds),
            "stat_16": lambda: wrk(stat, 16, a.seconds, srv.key),
            "health_16": lambda: wrk(f"{srv.url}/v1/health", 16, a.seconds),
            "whoami_16": lambda: wrk(f"{srv.url}/v1/whoami", 16, a.seconds, srv.key),
        }
        for r in range(a.rounds):
            for name, f in pairs.items():
                raw.setdefault(name, []).append(f())
            raw.setdefault("sdk_read_bytes_1", []).append(sdk_reads(3000))
            raw.setdefault("sdk_write_100b_1", []).append(sdk_writes(1, 400))
            raw.setdefault("sdk_write_100b_8", []).append(sdk_writes(8, 150))
            raw.setdefault("get1g_gbps", []).append(
                curl_get(f"{srv.url}/v1/volumes/{VOL}/files/content?path=%2F1g.bin", srv.key))
            raw.setdefault("nginx_get1g_gbps", []).append(curl_get(f"{nginx.url}/files/1g.bin"))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.2f}" for k, v in raw.items()), flush=True)
        rss = benchlib.proc_status(srv.pid)
        load_after = benchlib.load_now()
    finally:
        nginx.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    m = {k: benchlib.median(v) for k, v in raw.items()}
    report = {"median": m, "raw": raw, "server_rss_kib": rss, "load_before": load_before,
              "load_after": load_after, "source": benchlib.source_state(binary)}
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    if a.write:
        write_results(m, rss, load_before, load_after)


def write_results(m: Dict[str, float], rss: Dict[str, int], before: str, after: str) -> None:
    """bench/results/hot_path.json in the shape bench/figures.py reads."""
    root = Path(__file__).resolve().parent.parent
    code = ["crates/api/src", "crates/node/src", "crates/state/src", "crates/volumes/src", "sdk/python/nullspace"]
    git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True).stdout.strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *code))

    def fig(sub: str, what: str, ours: str, base: str, ratio: str, goal: str, met: bool) -> Dict[str, str]:
        return {"subsystem": sub, "what": what, "ours": ours, "baseline": base, "ratio": ratio, "goal": goal,
                "met": "yes" if met else "no"}

    r16 = m["get4k_16"] / m["nginx_get4k_16"]
    rstat = m["stat_16"] / m["health_16"]
    rw = m["sdk_write_100b_8"] / m["sdk_write_100b_1"]
    r1g = m["get1g_gbps"] / m["nginx_get1g_gbps"]
    figures = [
        fig("data plane", "4 KiB GET, 16 wrk clients (keep-alive, release build)", f"{m['get4k_16']:,.0f} req/s",
            f"nginx, same file: {m['nginx_get4k_16']:,.0f} req/s", f"{r16:.2f}x", "≥ 0.3x nginx", r16 >= 0.3),
        fig("data plane", "4 KiB GET, one keep-alive client (wrk)", f"{m['get4k_1']:,.0f} req/s",
            f"nginx: {m['nginx_get4k_1']:,.0f} req/s", f"{m['get4k_1'] / m['nginx_get4k_1']:.2f}x",
            "≥ 3,000 req/s", m["get4k_1"] >= 3000),
        fig("data plane", "stat, 16 wrk clients", f"{m['stat_16']:,.0f} req/s",
            f"`GET /v1/health` (no auth, no disk): {m['health_16']:,.0f} req/s", f"{rstat:.2f}x", "≥ 0.3x health",
            rstat >= 0.3),
        fig("SDK", "`read_bytes` of 4 KiB, one client (keep-alive)", f"{m['sdk_read_bytes_1']:,.0f} reads/s",
            "—", "—", "≥ 2,000/s", m["sdk_read_bytes_1"] >= 2000),
        fig("SDK", "durable 100 B `write`s, 8 worker processes", f"{m['sdk_write_100b_8']:,.0f} writes/s",
            f"1 worker: {m['sdk_write_100b_1']:,.0f} writes/s", f"{rw:.2f}x", "≥ 1,000/s",
            m["sdk_write_100b_8"] >= 1000),
        fig("transfers", "GET of a 1 GiB file (curl), beside the hot-path run", f"{m['get1g_gbps']:.2f} GB/s",
            f"nginx: {m['nginx_get1g_gbps']:.2f} GB/s", f"{r1g:.2f}x", "≥ 1x nginx (1.23x before)",
            r1g >= 1.0),
    ]
    doc = {
        "bench": "hot_path", "order": 2, "command": "python3 bench/hot_path.py --binary target/release/nullspace --write",
        "measured": {"date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": git("rev-parse", "HEAD"),
                     "dirty": dirty, "commit_is": "built"},
        "attribution": f"release build of this commit in the worktree of issue 14; load before: {before}; after: "
                       f"{after}; server peak RSS {rss.get('VmHWM', 0) / 1024:.0f} MiB",
        "code_paths": code, "notes": "bench/notes/issue14-small-files.md", "figures": figures,
    }
    (root / "bench" / "results" / "hot_path.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
