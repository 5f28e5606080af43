#!/usr/bin/env python3
"""The cost of the iterative tree walks (issue 12) against the recursive ones they replaced,
side by side in one run: two servers, one built from the last commit with recursive walks
(`--old`) and one from the tree under test (`--new`), each with the same volume of 100,000
entries (100 directories of 999 files of 64 bytes, written with `write-batch`).

Measured, interleaved, medians of `--runs`:
- `ls -r`: one `GET …/files/list?recursive=true&limit=100000` (curl; the server's walk alone),
  and `nullspace volume ls NAME / -r` (the new CLI against either server; it pages);
- the usage walk: `sandbox exec SB -- true` in a sandbox with the volume mounted (the server
  re-measures a volume's usage after every exec, with a full walk), minus the same exec in a
  sandbox without volumes;
- baselines on the same data: `find DATA_DIR` and `du -s --apparent-size DATA_DIR`.

    python3 bench/walks.py --old /path/to/old/nullspace --new target/release/nullspace [--runs 7]

Prints a Markdown table and writes nothing else; the figures go into bench/results/walks.json by
hand (bench/notes/README.md). Needs root (sandboxes)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Server, fmt_s, interleave, load_now, median, settle, timed  # noqa: E402
from run import make_tree  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="server binary with recursive walks")
    ap.add_argument("--new", type=Path, required=True, help="server binary under test")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--workdir-base", type=Path, default=Path("/work/benchtmp"))
    args = ap.parse_args()
    args.workdir_base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="walks-", dir=args.workdir_base))
    local = work / "src"
    make_tree(local, 100, 999, 64, parts=10)
    cli = str(args.new)
    servers: Dict[str, Server] = {}
    sandboxes: Dict[str, List[str]] = {}
    t: Dict[str, List[float]] = {}
    try:
        for name, binary in (("old", args.old), ("new", args.new)):
            (work / name).mkdir()
            s = Server(binary, work / name)
            s.start()
            servers[name] = s
            s.cli("volume", "create", "tree")
            for part in sorted(local.iterdir()):
                s.cli("volume", "write-batch", "tree", str(part), "/")
            with_vol = s.cli("sandbox", "create", "--volume", "ref=tree,mount=/data").strip()
            bare = s.cli("sandbox", "create").strip()
            sandboxes[name] = [with_vol, bare]
        vid = servers["new"].cli("volume", "get", "tree", "--json")
        import json
        data = servers["new"].volume_data_dir(json.loads(vid)["id"])

        def add(key: str, cmd: List[str], env=None) -> None:
            settle()
            t.setdefault(key, []).append(timed(cmd, env=env).wall)

        fns = []
        for name, s in servers.items():
            url = f"{s.url}/v1/volumes/tree/files/list?path=/&recursive=true&limit=100000&fields=path,type"
            fns.append(lambda s=s, name=name, url=url: add(
                f"{name}: one list request", ["curl", "-sSf", "-o", "/dev/null", "-H",
                                              f"Authorization: Bearer {s.key}", url]))
            fns.append(lambda s=s, name=name: add(f"{name}: volume ls -r", [cli, "volume", "ls", "tree", "/", "-r"],
                                                  env=s.env))
            with_vol, bare = sandboxes[name]
            fns.append(lambda s=s, name=name, sb=with_vol: add(
                f"{name}: exec true, volume mounted", [cli, "sandbox", "exec", sb, "--", "true"], env=s.env))
            fns.append(lambda s=s, name=name, sb=bare: add(
                f"{name}: exec true, no volume", [cli, "sandbox", "exec", sb, "--", "true"], env=s.env))
        fns.append(lambda: add("find DATA_DIR", ["find", str(data)]))
        fns.append(lambda: add("du -s --apparent-size DATA_DIR", ["du", "-s", "--apparent-size", str(data)]))
        for f in fns:  # warm caches
            f()
        t.clear()
        for i in range(args.runs):
            interleave(i, fns)
    finally:
        for name, s in servers.items():
            for sb in sandboxes.get(name, []):
                s.run("sandbox", "destroy", sb)
            s.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    m = {k: median(v) for k, v in t.items()}
    walk = {n: m[f"{n}: exec true, volume mounted"] - m[f"{n}: exec true, no volume"] for n in ("old", "new")}
    print(f"load: {load_now()}; medians of {args.runs}\n")
    print("| what | recursive (old) | iterative (new) | new/old | baseline |")
    print("|---|---|---|---|---|")
    print(f"| one list request, 100,000 entries | {fmt_s(m['old: one list request'])} | "
          f"{fmt_s(m['new: one list request'])} | {m['new: one list request'] / m['old: one list request']:.2f}x | "
          f"`find` {fmt_s(m['find DATA_DIR'])} |")
    print(f"| `volume ls / -r`, 100,000 entries | {fmt_s(m['old: volume ls -r'])} | {fmt_s(m['new: volume ls -r'])} | "
          f"{m['new: volume ls -r'] / m['old: volume ls -r']:.2f}x | `find` {fmt_s(m['find DATA_DIR'])} |")
    print(f"| usage walk after exec (exec with the volume − without) | {fmt_s(walk['old'])} | {fmt_s(walk['new'])} | "
          f"{walk['new'] / walk['old']:.2f}x | `du -s --apparent-size` {fmt_s(m['du -s --apparent-size DATA_DIR'])} |")
    print("\nall medians: " + "; ".join(f"{k} {fmt_s(v)}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
