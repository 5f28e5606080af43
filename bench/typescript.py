#!/usr/bin/env python3
"""Issue 15 item 6: the TypeScript SDK's throughput against the Python SDK and the CLI.

    cargo build --release -p nullspace-cli && (cd sdk/typescript && npm ci && npm run build)
    python3 bench/typescript.py --binary target/release/nullspace --python PY [--runs 3] [--write]

One server (release build, fresh data dir, SQLite, loop volumes as root); for each operation
the three clients run one after another, the order rotated per repetition (medians of
``--runs``). Each SDK measures its own operation inside its process (start-up excluded:
bench/typescript_worker.mjs and bench/typescript_py_worker.py); the CLI is timed as a whole
process (its start-up is a few ms). Operations:

* 1 GiB: ``files.write(p, stream of a local file)`` (CLI ``volume write --from``),
  ``readStream(p)`` to a local file (CLI ``volume read > file``), ``files.upload`` (tus; CLI
  ``volume upload``).
* 1,000 files of 4 KiB: one ``files.write`` per file and one ``readBytes`` per file, one at a
  time and 8 at once (Python: 8 threads). The CLI has no per-file verb worth timing 1,000
  times as processes, so its baseline is its own way to move a directory: ``volume upload DIR``
  (one all-or-nothing tar batch) and ``volume download DIR`` (one tar stream).

``--write`` stores bench/results/typescript.json; the note is bench/notes/issue15-typescript.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import benchlib
from benchlib import GiB, HERE, KiB, ROOT, load_now, machine, median, settle, source_state

VOL = "tsbench"
SMALL = 1000


def ts(server: benchlib.Server, *args: str) -> float:
    out = subprocess.run(["node", str(HERE / "typescript_worker.mjs"), *args], env=server.env,
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def py(server: benchlib.Server, python: str, *args: str) -> float:
    env = dict(server.env, PYTHONPATH=str(ROOT / "sdk" / "python"))
    out = subprocess.run([python, str(HERE / "typescript_py_worker.py"), *args], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def cli(server: benchlib.Server, *args: str, stdout=subprocess.DEVNULL) -> float:
    t = time.perf_counter()
    r = subprocess.run([str(server.binary), *args], env=server.env, stdout=stdout,
                       stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"nullspace {' '.join(args)}: {r.stderr.decode(errors='replace')[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "nullspace"))
    ap.add_argument("--python", default=sys.executable, help="a Python with httpx (the SDK comes from sdk/python)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=float, default=1, help="GiB of the big file (a multiple of 1/16)")
    ap.add_argument("--work", default="/work/benchtmp")
    ap.add_argument("--write", action="store_true", help="store bench/results/typescript.json")
    a = ap.parse_args()
    binary = Path(a.binary).resolve()
    Path(a.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ts-", dir=a.work))
    size = int(a.size * GiB)
    server = benchlib.Server(binary, work)
    (work / "home").mkdir()
    load_before = load_now()
    times: Dict[str, List[float]] = {}
    try:
        server.start()
        server.cli("admin", "tenant", "set-volume-cap", "default", f"{int(4 * a.size) + 2}GiB")
        server.cli("volume", "create", VOL)
        big = work / "big.bin"
        with open(big, "wb") as f:
            for _ in range(size // (64 << 20)):
                f.write(os.urandom(64 << 20))
        small = work / "small"
        small.mkdir()
        for i in range(SMALL):
            (small / f"f{i:04d}.txt").write_bytes(os.urandom(4 * KiB))
        out = work / "out"

        def fresh_out() -> Path:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            return out

        def clear(remote: str) -> None:
            server.run("volume", "rm", VOL, remote, "-r")
            settle()

        def case(key: str, fn: Callable[[], float], remote_to_clear: str = "") -> Callable[[], None]:
            def run() -> None:
                if remote_to_clear:
                    clear(remote_to_clear)
                fresh_out()
                settle()
                times.setdefault(key, []).append(fn())
            return run

        # The remote files the reads read.
        server.cli("volume", "write", VOL, "/big.bin", "--from", str(big))
        server.cli("volume", "upload", VOL, str(small), "/small")
        pyx = a.python
        groups = [
            [case("write ts", lambda: ts(server, "write-big", VOL, str(big), "/w.bin"), "/w.bin"),
             case("write py", lambda: py(server, pyx, "write-big", VOL, str(big), "/w.bin"), "/w.bin"),
             case("write cli", lambda: cli(server, "volume", "write", VOL, "/w.bin", "--from", str(big)), "/w.bin")],
            [case("read ts", lambda: ts(server, "read-big", VOL, "/big.bin", str(out / "r.bin"))),
             case("read py", lambda: py(server, pyx, "read-big", VOL, "/big.bin", str(out / "r.bin"))),
             case("read cli", lambda: cli(server, "volume", "read", VOL, "/big.bin", stdout=open(out / "r.bin", "wb")))],
            [case("upload ts", lambda: ts(server, "upload-big", VOL, str(big), "/u.bin"), "/u.bin"),
             case("upload py", lambda: py(server, pyx, "upload-big", VOL, str(big), "/u.bin"), "/u.bin"),
             case("upload cli", lambda: cli(server, "volume", "upload", VOL, str(big), "/u.bin"), "/u.bin")],
            [case("small write ts", lambda: ts(server, "write-small", VOL, str(small), "/sw", "1"), "/sw"),
             case("small write py", lambda: py(server, pyx, "write-small", VOL, str(small), "/sw", "1"), "/sw"),
             case("small write ts c8", lambda: ts(server, "write-small", VOL, str(small), "/sw", "8"), "/sw"),
             case("small write py c8", lambda: py(server, pyx, "write-small", VOL, str(small), "/sw", "8"), "/sw"),
             case("small write cli", lambda: cli(server, "volume", "upload", VOL, str(small), "/sw"), "/sw")],
            [case("small read ts", lambda: ts(server, "read-small", VOL, "/small", str(out), "1")),
             case("small read py", lambda: py(server, pyx, "read-small", VOL, "/small", str(out), "1")),
             case("small read ts c8", lambda: ts(server, "read-small", VOL, "/small", str(out), "8")),
             case("small read py c8", lambda: py(server, pyx, "read-small", VOL, "/small", str(out), "8")),
             case("small read cli", lambda: cli(server, "volume", "download", VOL, "/small", str(out / "d")))],
        ]
        for i in range(a.runs):
            for g in groups:
                benchlib.interleave(i, g)
                print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items() if len(v) == i + 1), flush=True)
        load_after = load_now()
        state = source_state(binary)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: median(v) for k, v in times.items()}
    gbs = lambda k: size / med[k] / 1e9  # noqa: E731
    fps = lambda k: SMALL / med[k]  # noqa: E731
    rows = []

    def row(what: str, ours: str, base: str, ratio_py: float, ratio_cli: float) -> None:
        rows.append({"subsystem": "SDK", "what": what, "ours": ours, "baseline": base,
                     "ratio": f"{ratio_py:.2f}x · {ratio_cli:.2f}x", "goal": "≥0.8x Python",
                     "met": "yes" if ratio_py >= 0.8 else "**no**"})

    for op, what in (("write", f"TS `files.write(p, stream)`, {a.size:g} GiB"),
                     ("read", f"TS `files.readStream(p)` → file, {a.size:g} GiB"),
                     ("upload", f"TS `files.upload` (tus), {a.size:g} GiB")):
        row(what, f"{gbs(op + ' ts'):.2f} GB/s",
            f"Python {gbs(op + ' py'):.2f} · CLI {gbs(op + ' cli'):.2f} GB/s",
            med[op + " py"] / med[op + " ts"], med[op + " cli"] / med[op + " ts"])
    for op, verb, cli_what in (("small write", "files.write", "upload DIR"), ("small read", "files.readBytes", "download DIR")):
        for c, label in (("", "one at a time"), (" c8", "8 at once")):
            row(f"TS `{verb}` × {SMALL:,} files of 4 KiB, {label}", f"{fps(op + ' ts' + c):,.0f} files/s",
                f"Python {fps(op + ' py' + c):,.0f} · CLI {cli_what} {fps(op + ' cli'):,.0f} files/s",
                med[op + " py" + c] / med[op + " ts" + c], med[op + " cli"] / med[op + " ts" + c])
    print("\n| what | TS SDK | baseline | ratio (vs Python · vs CLI) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['ours']} | {r['baseline']} | {r['ratio']} |")
    print(f"\nload before {load_before}; after {load_after}\n{state}\nraw: "
          + json.dumps({k: [round(x, 4) for x in v] for k, v in times.items()}))
    print(json.dumps(machine(Path(a.work))))
    if a.write:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        paths = ["crates/api/src", "crates/node/src", "crates/volumes/src", "crates/cli/src", "crates/client/src",
                 "sdk/python/nullspace", "sdk/typescript/src"]
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                                    text=True, check=True).stdout.strip())
        doc = {
            "bench": "typescript",
            "order": 47,
            "command": "python3 bench/typescript.py --binary target/release/nullspace --python PY --write",
            "measured": {"date": dt.date.today().isoformat(), "commit": commit, "dirty": dirty, "commit_is": "built"},
            "attribution": f"release build of this commit in the worktree of issue 15 (TypeScript SDK); {state}",
            "code_paths": paths,
            "notes": "bench/notes/issue15-typescript.md",
            "figures": rows,
        }
        out_file = ROOT / "bench" / "results" / "typescript.json"
        out_file.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
