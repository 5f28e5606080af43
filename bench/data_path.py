#!/usr/bin/env python3
"""The CLI's data path (issue 14), each figure against its baseline in the same run:

- transfer: `volume write --from F` of a 1 GiB file vs `cp F DST && sync DST DIR` (the same
  durability: the server fsyncs the file and its directory before it answers), and
  `volume read > OUT` vs `cat F > OUT`; `curl` as the client (diagnostic: the server alone);
  server peak RSS with a 256 MiB and a 1 GiB file (it must not grow with the size).
- batch: `volume write-batch` of 10,000 files of 4 KiB (100 directories) vs `tar -xf` of the
  same tree into the same file system followed by `sync -f` (syncfs: durable, as the batch is
  before the server answers); plain `tar -x` (page cache only) as a second row.
- search: a corpus of ~300 MB of text in 2,000 files (made here, deterministic), `volume
  search` of a pattern found nowhere vs `rg` with the same flags, and of one found on ~170,000
  lines vs `rg -n --column` (same output shape: `path:line:column:text`); both write to a file.

Every measurement is repeated (`--runs`, default 5) with the variants interleaved in rotated
order; medians are reported, with the load of the machine (`/proc/loadavg`) at the start and
the end. Writes bench/results/data_path.json (with `--write`) and prints everything.

    python3 bench/data_path.py --bin /path/to/release/nullspace [--runs 5] [--only search] [--write]

Needs curl, tar, ripgrep (`apt-get install ripgrep`) and a release build of the binary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import benchlib
from benchlib import GiB, HERE, KiB, MiB, ROOT, fmt_s, interleave, load_now, median, proc_status, reset_hwm, rm, settle

# The code each group of figures measures (a later commit touching one makes them stale).
CODE_PATHS = {
    "data_path": ["crates/api/src/files.rs", "crates/volumes/src/handle", "crates/volumes/src/staging.rs",
                  "crates/node/src/volumes.rs", "crates/client/src/lib.rs", "crates/client/src/batch.rs",
                  "crates/cli/src/volume.rs"],
    "data_path_search": ["crates/volumes/src/search.rs", "crates/volumes/src/walk.rs", "crates/api/src/content.rs",
                         "crates/node/src/volumes.rs", "crates/client/src/content.rs", "crates/client/src/sse.rs",
                         "crates/cli/src/content.rs"],
}
MB = 1_000_000


def rate(nbytes: int, s: float) -> str:
    return f"{nbytes / s / 1e9:.2f} GB/s"


def timed(cmd, env=None, stdout=subprocess.DEVNULL, shell=False) -> float:
    return benchlib.timed(cmd, env=env, stdout=stdout, shell=shell).wall


def spread(xs: List[float]) -> str:
    return f"({fmt_s(min(xs))}–{fmt_s(max(xs))})"


class Run:
    def __init__(self, srv: benchlib.Server, work: Path, runs: int) -> None:
        self.srv, self.work, self.runs = srv, work, runs
        self.figures: Dict[str, List[dict]] = {}
        self.group = "data_path"
        self.raw: Dict[str, object] = {}
        self.notes: List[str] = []

    def bin(self) -> str:
        return str(self.srv.binary)

    def add(self, what: str, ours: str, baseline: str, ratio: float, goal: str, ok, subsystem: str = "data plane") -> None:
        met = "—" if ok is None else "yes" if ok else "**no**"
        f = {"subsystem": subsystem, "what": what, "ours": ours, "baseline": baseline,
             "ratio": f"{ratio:.2f}x", "goal": goal, "met": met}
        print(f"   {what}: ours {ours}, {baseline}, {f['ratio']} (goal {goal}): {f['met']}", flush=True)
        self.figures.setdefault(self.group, []).append(f)

    def volume(self, name: str) -> Path:
        self.srv.cli("volume", "create", name)
        vid = json.loads(self.srv.cli("volume", "get", name, "--json"))["id"]
        return self.srv.volume_data_dir(vid)


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def bench_transfer(r: Run, big: int) -> None:
    src_of = {}
    for size in (256 * MiB, big):
        src_of[size] = r.work / f"src-{size >> 20}m.bin"
        make_file(src_of[size], size)
    r.volume("xfer")
    out, dst = r.work / "xfer-out.bin", r.work / "xfer-cp.bin"
    hwm: Dict[int, int] = {}
    t: Dict[str, List[float]] = {k: [] for k in ("write", "read", "cp+sync", "cat", "curl write", "curl read")}
    url = f"{r.srv.url}/v1/volumes/xfer/files/content?path=/curl"
    auth = f"Authorization: Bearer {r.srv.key}"

    def ours(size: int, record: bool) -> None:
        src = src_of[size]
        settle()
        reset_hwm(r.srv.pid)
        w = timed([r.bin(), "volume", "write", "xfer", "/big", "--from", str(src)], env=r.srv.env)
        rm(out)
        with open(out, "wb") as f:
            rd = timed([r.bin(), "volume", "read", "xfer", "/big"], env=r.srv.env, stdout=f)
        hwm[size] = max(hwm.get(size, 0), proc_status(r.srv.pid)["VmHWM"])
        if os.path.getsize(out) != size:
            raise RuntimeError("read returned the wrong size")
        rm(out)
        r.srv.cli("volume", "rm", "xfer", "/big")
        if record:
            t["write"].append(w)
            t["read"].append(rd)

    def cp_sync() -> None:
        rm(dst)
        settle()
        t["cp+sync"].append(timed(["sh", "-c", f"cp '{src_of[big]}' '{dst}' && sync '{dst}' '{r.work}'"]))
        rm(dst)

    def cat() -> None:
        rm(out)
        settle()
        t["cat"].append(timed(["sh", "-c", f"cat '{src_of[big]}' > '{out}'"]))
        rm(out)

    def curl() -> None:
        settle()
        t["curl write"].append(timed(["curl", "-sSf", "-o", "/dev/null", "-H", auth, "-T", str(src_of[big]), url]))
        rm(out)
        t["curl read"].append(timed(["curl", "-sSf", "-o", str(out), "-H", auth, url]))
        rm(out)
        r.srv.cli("volume", "rm", "xfer", "/curl")

    ours(256 * MiB, False)  # server RSS with the smaller file
    for i in range(r.runs):
        interleave(i, [lambda: ours(big, True), cp_sync, cat, curl])
    r.raw["transfer"] = t | {"server_hwm_kb": hwm}
    g = f"{big >> 30} GiB" if big >= GiB else f"{big >> 20} MiB"
    w, rd, cs, ca = (median(t[k]) for k in ("write", "read", "cp+sync", "cat"))
    r.add(f"CLI write {g} (`volume write --from`) vs a durable copy", rate(big, w), f"`cp`+`sync` {rate(big, cs)}",
          cs / w, "≥0.8x", cs / w >= 0.8)
    r.add(f"CLI read {g} (`volume read > OUT`)", rate(big, rd), f"`cat` {rate(big, ca)}", ca / rd, "≥0.8x", ca / rd >= 0.8)
    cw, cr = median(t["curl write"]), median(t["curl read"])
    r.add(f"same {g} with curl as the client (`-T` / `-o`): the server alone", f"{rate(big, cw)} / {rate(big, cr)}",
          f"`cp`+`sync` / `cat`", cs / cw, "— (diagnostic; ratio of the write)", None)
    lo, hi = hwm[256 * MiB], hwm[big]
    r.add(f"server peak RSS during write+read, 256 MiB vs {g}", f"{lo / 1024:.1f} / {hi / 1024:.1f} MiB",
          "(smaller file)", hi / lo, "no growth", hi <= lo * 1.25 + 8 * 1024)
    r.notes.append("transfer: medians of %d: %s." % (r.runs, "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items())))
    for p in src_of.values():
        rm(p)


def make_tree(root: Path, dirs: int, per_dir: int, size: int) -> None:
    rm(root)
    for d in range(dirs):
        dd = root / f"d{d:03d}"
        dd.mkdir(parents=True)
        for f in range(per_dir):
            (dd / f"f{f:04d}").write_bytes(os.urandom(size))


def bench_batch(r: Run, n: int) -> None:
    local, tarball, dst = r.work / "batch-src", r.work / "batch.tar", r.work / "batch-dst"
    make_tree(local, 100, n // 100, 4 * KiB)
    benchlib.run_ok(["tar", "-cf", str(tarball), "-C", str(local), "."])
    r.volume("batch")
    t: Dict[str, List[float]] = {"write-batch": [], "tar -x + sync": [], "tar -x": []}

    def ours() -> None:
        settle()
        t["write-batch"].append(timed([r.bin(), "volume", "write-batch", "batch", str(local), "/b"], env=r.srv.env))
        r.srv.cli("volume", "rm", "batch", "/b", "-r")

    def tar_x(sync: bool) -> Callable[[], None]:
        def go() -> None:
            rm(dst)
            dst.mkdir()
            settle()
            cmd = f"tar -xf '{tarball}' -C '{dst}'" + (f" && sync -f '{dst}'" if sync else "")
            t["tar -x + sync" if sync else "tar -x"].append(timed(["sh", "-c", cmd]))
            rm(dst)
        return go

    for i in range(r.runs):
        interleave(i, [ours, tar_x(True), tar_x(False)])
    r.raw["batch"] = t
    o = median(t["write-batch"])
    for base, note in (("tar -x + sync", "same durability"), ("tar -x", "page cache only")):
        b = median(t[base])
        r.add(f"`volume write-batch` of {n:,} files of 4 KiB vs `{base}` ({note})", f"{fmt_s(o)} ({n / o:,.0f} files/s)",
              f"`{base}` {fmt_s(b)} ({n / b:,.0f} files/s)", b / o, "≥0.5x", b / o >= 0.5)
    r.notes.append("batch: medians of %d: %s." % (r.runs, "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items())))
    rm(local)
    rm(tarball)


WORDS_SEED = 14


def make_corpus(root: Path, files: int, total: int, hit_every: int) -> int:
    """`files` text files (20 directories) of about total/files bytes; one line in `hit_every`
    holds the word `needlework`. 40 distinct bodies, each written files/40 times. Returns bytes."""
    rm(root)
    rnd = random.Random(WORDS_SEED)
    vocab = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(3000)]
    vocab = [w for w in vocab if "needle" not in w and "zqxjv" not in w]
    per = total // files
    bodies = []
    for _ in range(40):
        lines, size = [], 0
        while size < per:
            words = rnd.choices(vocab, k=rnd.randint(4, 14))
            if rnd.randrange(hit_every) == 0:
                words.insert(rnd.randrange(len(words)), "needlework")
            line = " ".join(words) + "\n"
            lines.append(line)
            size += len(line)
        bodies.append("".join(lines).encode())
    written = 0
    for i in range(files):
        d = root / f"dir{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        body = bodies[i % len(bodies)]
        (d / f"file{i:05d}.txt").write_bytes(body)
        written += len(body)
    return written


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def bench_search(r: Run, files: int, total: int) -> None:
    corpus = r.work / "corpus"
    nbytes = make_corpus(corpus, files, total, hit_every=30)
    vdir = r.volume("text")
    r.srv.cli("volume", "write-batch", "text", str(corpus), "/")
    if not (vdir / "dir00").is_dir():
        raise RuntimeError(f"{vdir} does not hold the volume's files")
    rm(corpus)
    out = r.work / "search.out"
    rg = ["rg", "--no-ignore", "--hidden", "--no-heading", "-n", "--column", "--color", "never"]
    for label, pattern in (("no match", "zqxjv"), ("~170,000 matching lines", "needlework")):
        cases = {"ours": [r.bin(), "volume", "search", "text", pattern], "rg": [*rg, pattern, str(vdir)]}
        lines = {}
        for k, cmd in cases.items():  # warm the page cache; the answers must agree
            with open(out, "wb") as f:
                subprocess.run(cmd, env=r.srv.env, stdout=f, check=False)
            lines[k] = count_lines(out)
        if lines["ours"] != lines["rg"]:
            raise RuntimeError(f"{pattern!r}: ours {lines['ours']} lines, rg {lines['rg']}")
        t: Dict[str, List[float]] = {k: [] for k in cases}

        def one(k: str) -> Callable[[], None]:
            def go() -> None:
                with open(out, "wb") as f:
                    # grep's exit code 1 (no match) is not a failure here
                    cmd = cases[k]
                    start = benchlib.time.perf_counter()
                    subprocess.run(cmd, env=r.srv.env, stdout=f, check=False)
                    t[k].append(benchlib.time.perf_counter() - start)
            return go

        for i in range(r.runs):
            interleave(i, [one("ours"), one("rg")])
        o, b = median(t["ours"]), median(t["rg"])
        r.raw[f"search {label}"] = t | {"lines": lines["ours"]}
        r.add(f"`volume search` over {nbytes / MB:.0f} MB in {files:,} files, {label} ({lines['ours']:,} lines)",
              fmt_s(o), f"`rg -n --column` {fmt_s(b)}", o / b, "≤2x", o / b <= 2.0)
        r.notes.append(f"search {label}: medians of {r.runs}: ours {fmt_s(o)} {spread(t['ours'])}, rg {fmt_s(b)} {spread(t['rg'])}.")
    rm(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/nullspace"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="transfer,batch,search")
    ap.add_argument("--size", type=int, default=GiB, help="transfer file size in bytes")
    ap.add_argument("--files", type=int, default=10_000, help="batch files")
    ap.add_argument("--search-mb", type=int, default=300, help="search corpus size (2,000 files)")
    ap.add_argument("--workdir-base", default="/work/benchtmp")
    ap.add_argument("--write", action="store_true", help="write bench/results/data_path.json")
    a = ap.parse_args()
    Path(a.workdir_base).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="data-path-", dir=a.workdir_base))
    binary = work / "nullspace"
    shutil.copy2(a.bin, binary)
    state = benchlib.source_state(Path(a.bin))
    srv = benchlib.Server(binary, work)
    r = Run(srv, work, a.runs)
    load_start = load_now()
    print(f"data path benchmark in {work}; {state}; {load_start}", flush=True)
    try:
        srv.start()
        only = a.only.split(",")
        if "transfer" in only:
            bench_transfer(r, a.size)
        if "batch" in only:
            bench_batch(r, a.files)
        if "search" in only:
            r.group = "data_path_search"
            bench_search(r, 2000, a.search_mb * MB)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_end = load_now()
    print(f"done; {load_end}", flush=True)
    for n in r.notes:
        print("  " + n)
    if a.write:
        head = benchlib.run_ok(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).strip()
        for order, (group, figs) in enumerate(sorted(r.figures.items()), start=15):
            paths = CODE_PATHS[group]
            dirty = bool(benchlib.run_ok(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                                          "--", *paths]).strip())
            doc = {
                "bench": group,
                "order": order,
                "command": f"python3 bench/data_path.py --runs {a.runs} --only {a.only} --write",
                "measured": {"date": dt.date.today().isoformat(), "commit": head, "dirty": dirty, "commit_is": "built"},
                "attribution": f"bench/notes/issue14-data-path.md; {state}; load at start: {load_start}; at end: {load_end}",
                "code_paths": paths,
                "notes": "bench/notes/issue14-data-path.md",
                "figures": figs,
                "raw": {"notes": r.notes},
            }
            (HERE / "results" / f"{group}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
