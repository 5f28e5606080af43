#!/usr/bin/env python3
"""Issue 12: the cost of crash-atomic batches. A batch of 3,000 small files through the API,
into a new directory (published by one rename) and merged into an existing tree (one rename
per file under a journal), by this tree's server and by the server before the change (per-file
renames, no journal; `--old BIN`), against `tar -x` + `sync -f` into the same disk, in one run.

    python3 bench/batch_atomic.py --new target/release/nullspace --old OLD_BIN [--runs 7]

Writes bench/results/batch_atomic.json (with --write) and prints the rows; notes in
bench/notes/issue12-atomic.md. Also run by `python3 bench/run.py --only batch_atomic`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import figures  # noqa: E402
from benchlib import Server, fmt_s, interleave, median, rm, settle  # noqa: E402

FILES = 3_000
DIRS = 30
SIZE = 1024


def make_tar(seed: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for i in range(FILES):
            data = (f"{seed}:{i}:".encode() * SIZE)[:SIZE]
            info = tarfile.TarInfo(f"d{i % DIRS:02d}/f{i:04d}.txt")
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def post(srv: Server, path: str, body: bytes, ctype: str = "application/x-tar") -> None:
    req = urllib.request.Request(f"{srv.url}{path}", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {srv.key}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()


def new_volume(srv: Server, name: str) -> None:
    post(srv, "/v1/volumes", json.dumps({"name": name}).encode(), "application/json")


def run(new: str, old: Optional[str], work: Path, runs: int) -> Dict[str, List[float]]:
    tar = make_tar(1)
    tarball = work / "batch.tar"
    tarball.write_bytes(tar)
    servers: Dict[str, Server] = {}
    for label, binary in (("ours", new), ("before", old)):
        if binary:
            d = work / label
            d.mkdir()
            s = Server(Path(binary), d)
            s.start()
            new_volume(s, "b")
            servers[label] = s
    t: Dict[str, List[float]] = {}
    count = [0]

    def batch(label: str, merge: bool) -> Callable[[], None]:
        key = f"{label} {'merge' if merge else 'new dir'}"
        t[key] = []

        def go() -> None:
            s = servers[label]
            count[0] += 1
            dest = "/m" if merge else f"/n{count[0]}/b"
            if merge:
                post(s, "/v1/volumes/b/files/batch?path=/m", tar)  # untimed: the tree exists
            settle()
            t0 = time.perf_counter()
            post(s, f"/v1/volumes/b/files/batch?path={dest}", tar)
            t[key].append(time.perf_counter() - t0)
            top = "/m" if merge else f"/n{count[0]}"
            req = urllib.request.Request(
                f"{s.url}/v1/volumes/b/files?path={top}&recursive=true",
                method="DELETE", headers={"Authorization": f"Bearer {s.key}"})
            urllib.request.urlopen(req, timeout=600).read()
        return go

    dst = work / "tar-dst"
    t["tar -x + sync"] = []

    def tar_x() -> None:
        rm(dst)
        dst.mkdir()
        settle()
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", f"tar -xf '{tarball}' -C '{dst}' && sync -f '{dst}'"], check=True)
        t["tar -x + sync"].append(time.perf_counter() - t0)
        rm(dst)

    fns = [tar_x] + [batch(label, m) for label in servers for m in (False, True)]
    try:
        for i in range(runs):
            interleave(i, fns)
    finally:
        for s in servers.values():
            s.stop()
    return t


def rows(t: Dict[str, List[float]], build: str) -> List[Dict[str, str]]:
    base = median(t["tar -x + sync"])
    out = []
    for kind in ("new dir", "merge"):
        o = median(t[f"ours {kind}"])
        b = t.get(f"before {kind}")
        what = (f"batch of {FILES:,} files of 1 KiB into a new directory (one rename), {build}"
                if kind == "new dir" else
                f"batch of {FILES:,} files of 1 KiB merged over an existing tree (journalled), {build}")
        before = f"; before the change {fmt_s(median(b))}" if b else ""
        out.append({"subsystem": "data plane", "what": what,
                    "ours": f"{fmt_s(o)} ({FILES / o:,.0f} files/s)",
                    "baseline": f"`tar -x` + `sync -f` {fmt_s(base)}{before}",
                    "ratio": f"{base / o:.2f}x" + (f" (before/ours {median(b) / o:.2f}x)" if b else ""),
                    "goal": "—", "met": "—"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", required=True, help="this tree's nullspace binary")
    ap.add_argument("--old", help="the binary before the change (optional)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--build", default="release build")
    ap.add_argument("--write", action="store_true", help="write bench/results/batch_atomic.json")
    ap.add_argument("--workdir-base", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.workdir_base, prefix="batch-atomic-") as w:
        t = run(a.new, a.old, Path(w), a.runs)
        mach = benchlib.machine(Path(w))
    print(json.dumps({k: [round(x, 4) for x in v] for k, v in t.items()}))
    for k, v in t.items():
        print(f"{k}: median {fmt_s(median(v))} of {len(v)}")
    rs = rows(t, a.build)
    for r in rs:
        print(f"| {r['what']} | {r['ours']} | {r['baseline']} | {r['ratio']} |")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in mach.items()) + "; " + benchlib.load_now())
    if a.write:
        doc = {"bench": "batch_atomic", "order": 75,
               "command": "python3 bench/batch_atomic.py --new NEW --old OLD --write",
               "measured": {"date": dt.date.today().isoformat(), "commit": figures.head(),
                            "dirty": False, "commit_is": "built"},
               "attribution": f"built from this commit ({a.build}); the old binary from its parent branch point",
               "code_paths": ["crates/volumes/src/handle/batch.rs", "crates/volumes/src/journal.rs"],
               "notes": "bench/notes/issue12-atomic.md",
               "figures": rs}
        (figures.RESULTS / "batch_atomic.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
