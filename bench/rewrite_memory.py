#!/usr/bin/env python3
"""Issue 12, memory: the time and peak server RSS of a replace, the streamed rewrite against
the whole-file rewrite it replaced (main's binary), with ``sed -i`` (plus ``sync``) as the
time baseline for the same edit on a copy of the file.

    python3 bench/rewrite_memory.py --ours target/debug/nullspace --before /path/to/main/nullspace
    python3 bench/rewrite_memory.py ... --json-out bench/notes/issue12-memory.json

Cases (each run rewrites a fresh copy of the file; ours, before and sed interleaved, 3 runs,
medians):
- 1 MiB of ``x\\n`` lines, every ``x`` replaced by 200 bytes (a 100 MiB result: the probe of
  issue 12);
- 64 MiB of 64-byte lines, one word per line replaced by 13 bytes (a 77 MiB result).
Peak RSS: VmHWM of the server after the request, the high-water mark reset just before it
(/proc/<pid>/clear_refs), minus its VmRSS then.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

import benchlib
from benchlib import median, proc_status, reset_hwm

CASES = {
    "1 MiB, every `x` → 200 bytes": (b"x\n" * (512 << 10), "x", "R" * 200),
    "64 MiB, one word per line → 13 bytes": (
        (b"word " + b"." * 58 + b"\n") * (1 << 20), "word", "WORD-REPLACED"),
}


def request(srv: benchlib.Server, method: str, path: str, body: bytes, ctype: str) -> bytes:
    req = urllib.request.Request(srv.url + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {srv.key}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def replace_once(srv: benchlib.Server, data: bytes, pattern: str, repl: str) -> Dict[str, float]:
    request(srv, "PUT", "/v1/volumes/bench/files/content?path=/f.txt", data, "application/octet-stream")
    base = proc_status(srv.pid)["VmRSS"]
    reset_hwm(srv.pid)
    body = json.dumps({"pattern": pattern, "replacement": repl, "path": "/f.txt", "regex": False}).encode()
    t0 = time.perf_counter()
    out = json.loads(request(srv, "POST", "/v1/volumes/bench/files/replace", body, "application/json"))
    secs = time.perf_counter() - t0
    assert out["files_changed"] == 1, out
    return {"s": secs, "peak_mib": (proc_status(srv.pid)["VmHWM"] - base) / 1024}


def sed_once(work: Path, data: bytes, pattern: str, repl: str) -> Dict[str, float]:
    f = work / "sed.txt"
    f.write_bytes(data)
    t0 = time.perf_counter()
    subprocess.run(["sed", "-i", f"s/{pattern}/{repl}/g", str(f)], check=True)
    subprocess.run(["sync", str(f)], check=True)
    return {"s": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, type=Path)
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir-base", default="/work/benchtmp")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    Path(args.workdir_base).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rewrite-mem-", dir=args.workdir_base))
    servers = {}
    for name, binary in (("ours", args.ours), ("before", args.before)):
        (work / name).mkdir()
        srv = benchlib.Server(binary, work / name)
        srv.start()
        srv.cli("volume", "create", "bench")
        servers[name] = srv
    raw: Dict[str, Dict[str, List[Dict[str, float]]]] = {}
    try:
        for case, (data, pattern, repl) in CASES.items():
            raw[case] = {"ours": [], "before": [], "sed": []}
            for name, srv in servers.items():  # warm-up
                replace_once(srv, data[:4096], pattern, repl)
            for _ in range(args.runs):
                for name, srv in servers.items():
                    raw[case][name].append(replace_once(srv, data, pattern, repl))
                raw[case]["sed"].append(sed_once(work, data, pattern, repl))
    finally:
        for srv in servers.values():
            srv.stop()
    rows = []
    for case, r in raw.items():
        m = {k: median([x["s"] for x in v]) for k, v in r.items()}
        p = {k: median([x["peak_mib"] for x in v]) for k, v in r.items() if k != "sed"}
        rows.append({"case": case, "time_s": m, "peak_mib": p})
        print(f"{case}: ours {m['ours']:.3f} s / +{p['ours']:.1f} MiB; before {m['before']:.3f} s / "
              f"+{p['before']:.1f} MiB; sed -i + sync {m['sed']:.3f} s")
    if args.json_out:
        args.json_out.write_text(json.dumps({"rows": rows, "raw": raw}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
