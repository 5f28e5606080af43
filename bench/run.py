#!/usr/bin/env python3
"""Benchmarks of nullspace Volumes (issues 2 and 3), each against a named baseline in the same
run, and the summary table of BENCHMARKS.md.

    python3 bench/run.py                 # everything, full sizes: writes the figures (below)
    python3 bench/run.py --quick         # smaller sizes and fewer runs; prints only
    python3 bench/run.py --only batch,ls # some benchmarks: writes their figures only
    python3 bench/run.py --summary       # BENCHMARKS.md's summary from bench/results/*.json
    python3 bench/run.py --check         # verifies that summary and that no figure is stale

A full-size run writes each benchmark's headline figures to bench/results/<bench>.json (with
the commit it measured and the code paths it describes) and the whole report to
bench/notes/issue2-3.md (add --no-md for neither), then rewrites the summary. The summary is
built from every bench/results/*.json (the other benchmarks' files are kept by hand from their
own scripts' output; bench/notes/README.md) and is refused while any figure is older than
its code: a later commit touched its code paths, or it was measured on uncommitted code.
``--allow-stale`` writes it anyway with those rows marked; ``--check --allow-stale`` (run by
scripts/test.sh) only fails when the summary is not what the result files give. See
bench/figures.py.

Benchmarks: transfer, batch, ls, stat, sdk_transfer, sdk_small (bench/notes/issue2-3.md says how
each is measured), batch_atomic (issue 12, bench/batch_atomic.py; bench/notes/issue12-atomic.md). The script starts its own server (a copy of target/release/nullspace, so a rebuild
during the run changes nothing) on a free port, with its data dir in a fresh directory under
/work/benchtmp (``--workdir-base``), where every baseline puts its data too (same filesystem,
checked). Each measurement is repeated and ours and the baseline are interleaved; medians are
reported. Needs Python 3.9+, the SDK (``pip install ./sdk/python``) and, for the load test,
``wrk`` (``apt-get install wrk``; without it a Python load generator is used and says so).
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import benchlib
import figures
from benchlib import (GiB, HERE, KiB, MiB, ROOT, fmt_s, interleave, load_now, median, proc_cpu,
                      proc_status, reset_hwm, rm, run_ok, settle, source_state)

ALL = ["transfer", "batch", "ls", "stat", "sdk_transfer", "sdk_small", "diag", "batch_atomic", "hostile_load"]


# ------------------------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of the results table."""

    issue: int
    what: str
    ours: str
    baseline: str
    ratio: str = "—"
    goal: str = "—"
    met: str = "—"
    bench: str = ""  # the benchmark that measured it (BENCHES key)


@dataclass
class Results:
    rows: List[Row] = field(default_factory=list)
    notes: Dict[str, List[str]] = field(default_factory=dict)  # benchmark -> how it was measured
    raw: Dict[str, object] = field(default_factory=dict)
    current: str = ""  # the benchmark running now

    def add(self, *a, **k) -> None:
        self.rows.append(Row(*a, **k, bench=self.current))


def fmt_rate(nbytes: int, s: float) -> str:
    return f"{nbytes / s / 1e9:.2f} GB/s"


def fmt_mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def spread(xs: Sequence[float]) -> str:
    return f"[{min(xs) * 1000:.0f}–{max(xs) * 1000:.0f} ms, n={len(xs)}]"


def timed(cmd: Sequence[str], *, stdout=subprocess.DEVNULL, env=None, shell=False) -> tuple[float, int]:
    """Runs a command; returns (wall seconds, child's peak RSS in KiB). Fails on non-zero exit."""
    r = benchlib.timed(cmd, stdout=stdout, env=env, shell=shell)
    return r.wall, r.rss_kb


class RssSampler:
    """Samples a process's VmRSS every 10 ms (a second opinion next to VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except OSError:
                return
            time.sleep(0.01)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


# ------------------------------------------------------------------------------------ the server


class Server(benchlib.Server):
    def volume(self, name: str) -> str:
        """Creates a volume; returns its id."""
        self.cli("volume", "create", name)
        return json.loads(self.cli("volume", "get", name, "--json"))["id"]



# ------------------------------------------------------------------------------------ benchmarks


@dataclass
class Ctx:
    args: argparse.Namespace
    srv: Server
    work: Path
    res: Results

    @property
    def runs(self) -> int:
        return self.args.runs or (3 if self.args.quick else 5)

    def bin(self) -> str:
        return str(self.srv.binary)


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def bench_transfer(c: Ctx) -> None:
    """Issue 2 #1: CLI write + read of a big file vs cp / cp+sync / cat, and server peak RSS."""
    sizes = [64 * MiB, 256 * MiB] if c.args.quick else [256 * MiB, GiB]
    vid = c.srv.volume("xfer")
    out, cp_dst = c.work / "xfer-out.bin", c.work / "xfer-cp.bin"
    big = max(sizes)
    hwm: Dict[int, List[int]] = {}
    sampled: Dict[int, List[int]] = {}
    cli_rss: Dict[int, List[int]] = {}
    times: Dict[int, Dict[str, List[float]]] = {}
    for size in sizes:
        src = c.work / f"src-{size >> 20}m.bin"
        make_file(src, size)
        t: Dict[str, List[float]] = {k: [] for k in ("write", "read", "cp", "cp+sync", "cat", "curl write", "curl read")}
        hwm[size], sampled[size], cli_rss[size] = [], [], []

        def ours_write() -> None:
            settle()
            reset_hwm(c.srv.pid)
            with RssSampler(c.srv.pid) as s:
                w, crss = timed([c.bin(), "volume", "write", "xfer", "/big", "--from", str(src)], env=c.srv.env)
            hwm[size].append(proc_status(c.srv.pid)["VmHWM"])
            sampled[size].append(s.peak)
            cli_rss[size].append(crss)
            t["write"].append(w)
            # read right after, as a user would: the file is in the page cache, like cat's source
            rm(out)
            reset_hwm(c.srv.pid)
            with open(out, "wb") as f, RssSampler(c.srv.pid) as s:
                r, crss = timed([c.bin(), "volume", "read", "xfer", "/big"], stdout=f, env=c.srv.env)
            hwm[size].append(proc_status(c.srv.pid)["VmHWM"])
            sampled[size].append(s.peak)
            cli_rss[size].append(crss)
            t["read"].append(r)
            if os.path.getsize(out) != size:
                raise RuntimeError("read returned the wrong size")
            rm(out)
            c.srv.cli("volume", "rm", "xfer", "/big")

        def cp() -> None:
            rm(cp_dst)
            settle()
            t["cp"].append(timed(["cp", str(src), str(cp_dst)])[0])
            rm(cp_dst)

        def cp_sync() -> None:
            rm(cp_dst)
            settle()
            # `sync FILE DIR` fsyncs the file and its directory, as the server does.
            t["cp+sync"].append(timed(["sh", "-c", f"cp '{src}' '{cp_dst}' && sync '{cp_dst}' '{c.work}'"])[0])
            rm(cp_dst)

        def cat() -> None:
            rm(out)
            settle()
            t["cat"].append(timed(["sh", "-c", f"cat '{src}' > '{out}'"])[0])
            rm(out)

        def curl() -> None:
            # The same server with another client (curl): separates the CLI's share from the server's.
            url = f"{c.srv.url}/v1/volumes/xfer/files/content?path=/curl"
            auth = f"Authorization: Bearer {c.srv.key}"
            settle()
            t["curl write"].append(timed(["curl", "-sSf", "-o", "/dev/null", "-H", auth, "-T", str(src), url])[0])
            rm(out)
            t["curl read"].append(timed(["curl", "-sSf", "-o", str(out), "-H", auth, url])[0])
            rm(out)
            c.srv.cli("volume", "rm", "xfer", "/curl")

        for i in range(c.runs):
            interleave(i, [ours_write, cp, cp_sync, cat, curl])
        times[size] = t
        c.res.raw[f"transfer_{size >> 20}MiB"] = {k: v for k, v in t.items()} | {
            "server_hwm_kb": hwm[size], "server_sampled_kb": sampled[size], "cli_maxrss_kb": cli_rss[size]}
        if size != big:
            rm(src)

    t = times[big]
    gib = f"{big >> 20} MiB" if big < GiB else f"{big >> 30} GiB"
    w, r = median(t["write"]), median(t["read"])
    for label, ours, base_name, goal_ok_note in (
        (f"CLI write {gib} (`volume write --from`)", w, "cp", None),
        (f"CLI write {gib}, vs a durable copy", w, "cp+sync", None),
        (f"CLI read {gib} (`volume read > OUT`)", r, "cat", None),
    ):
        b = median(t[base_name])
        ratio = b / ours
        c.res.add(2, label, fmt_rate(big, ours), f"`{base_name}` {fmt_rate(big, b)}", f"{ratio:.2f}x",
                  "≥0.5x (target 0.8x)", verdict(ratio >= 0.5) + ("" if ratio >= 0.8 else ", below target"))
    cw, cr = median(t["curl write"]), median(t["curl read"])
    c.res.add(2, f"same {gib} with curl as the client (`curl -T` / `curl -o`): the server alone",
              f"{fmt_rate(big, cw)} / {fmt_rate(big, cr)}", f"`cp` {fmt_rate(big, median(t['cp']))} / `cat` "
              f"{fmt_rate(big, median(t['cat']))}", f"{median(t['cp']) / cw:.2f}x / {median(t['cat']) / cr:.2f}x",
              "— (diagnostic)", "—")
    lo, hi = min(sizes), big
    h_lo, h_hi = max(hwm[lo]), max(hwm[hi])
    ok = h_hi <= h_lo * 1.25 + 8 * 1024
    c.res.add(2, f"server peak RSS during write+read, {lo >> 20} MiB vs {hi >> 20} MiB file",
              f"{fmt_mib(h_lo)} / {fmt_mib(h_hi)}", "(same server, smaller file)",
              f"{h_hi / h_lo:.2f}x", "no growth with size", verdict(ok))
    c.res.add(2, f"CLI process peak RSS, {lo >> 20} MiB vs {hi >> 20} MiB file",
              f"{fmt_mib(max(cli_rss[lo]))} / {fmt_mib(max(cli_rss[hi]))}", "(smaller file)",
              f"{max(cli_rss[hi]) / max(cli_rss[lo]):.2f}x", "no growth with size",
              verdict(max(cli_rss[hi]) <= max(cli_rss[lo]) * 1.25 + 8 * 1024))
    c.res.notes["transfer"] = [
        f"File of random bytes ({', '.join(str(s >> 20) + ' MiB' for s in sizes)}) in the work dir, "
        "in the page cache. Each repetition runs, in rotated order: our `volume write` (to `/big`, "
        "removed between runs, untimed) immediately followed by `volume read /big > OUT`; "
        "`cp SRC DST` (coreutils 9: one in-kernel `copy_file_range`, no user-space copy); `cp SRC DST && sync DST DIR` (fsync of file and directory, as the server "
        "does); `cat SRC > OUT`. `sync` (untimed) before each timed command so no command pays for "
        "the previous one's writeback; destinations removed (untimed) before each. A diagnostic "
        "variant sends the same file with `curl -T` (PUT) and reads it with `curl -o OUT`, to "
        "separate what the CLI adds from what the server does.",
        "Wall time of the whole command (process start included). Median of "
        f"{c.runs}: " + "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items()) + ".",
        "Server peak RSS: VmHWM from /proc/PID/status, reset (clear_refs 5) before each command; "
        f"max over runs. {lo >> 20} MiB: {fmt_mib(h_lo)}, {hi >> 20} MiB: {fmt_mib(h_hi)} "
        f"(10 ms VmRSS sampling: {fmt_mib(max(sampled[lo]))} / {fmt_mib(max(sampled[hi]))}). "
        "CLI peak RSS from wait4 ru_maxrss.",
    ]


def make_tree(root: Path, dirs: int, per_dir: int, size: int, parts: int = 1, flat: bool = False) -> None:
    """root/[partK/]dNNN/fNNNN (or, flat, root/partK/fKNNNNN): `dirs` x `per_dir` files."""
    if root.exists():
        return
    tmp = root.with_name(root.name + ".tmp")
    rm(tmp)
    tmp.mkdir()
    for d in range(dirs):
        base = tmp / f"part{d * parts // dirs}" if parts > 1 else tmp
        dd = base if flat else base / f"d{d:03d}"
        dd.mkdir(parents=True, exist_ok=True)
        for f in range(per_dir):
            with open(dd / (f"f{d:03d}{f:04d}" if flat else f"f{f:04d}"), "wb") as fh:
                fh.write(os.urandom(size) if size else b"")
    tmp.rename(root)


def bench_batch(c: Ctx) -> None:
    """Issue 2 #2: write-batch of N files of 4 KiB vs tar -x (and tar -x + syncfs)."""
    n = 2000 if c.args.quick else 10_000
    dirs = 100
    local = c.work / f"batch-src-{n}"
    make_tree(local, dirs, n // dirs, 4 * KiB)
    tarball = c.work / f"batch-{n}.tar"
    run_ok(["tar", "-cf", str(tarball), "-C", str(local), "."])
    c.srv.volume("batch")
    t: Dict[str, List[float]] = {"write-batch": [], "tar -x": [], "tar -x + sync": []}
    dst = c.work / "batch-tar-dst"

    def ours() -> None:
        settle()
        t["write-batch"].append(timed([c.bin(), "volume", "write-batch", "batch", str(local), "/b"], env=c.srv.env)[0])
        c.srv.cli("volume", "rm", "batch", "/b", "-r")

    def tar_x(sync: bool) -> Callable[[], None]:
        def go() -> None:
            rm(dst)
            dst.mkdir()
            settle()
            cmd = f"tar -xf '{tarball}' -C '{dst}'" + (f" && sync -f '{dst}'" if sync else "")
            t["tar -x + sync" if sync else "tar -x"].append(timed(["sh", "-c", cmd])[0])
            rm(dst)
        return go

    for i in range(c.runs):
        interleave(i, [ours, tar_x(False), tar_x(True)])
    c.res.raw["batch"] = t
    o = median(t["write-batch"])
    for base in ("tar -x", "tar -x + sync"):
        b = median(t[base])
        ratio = b / o
        c.res.add(2, f"`volume write-batch` of {n:,} files of 4 KiB", f"{fmt_s(o)} ({n / o:,.0f} files/s)",
                  f"`{base}` {fmt_s(b)} ({n / b:,.0f} files/s)", f"{ratio:.2f}x", "≥0.3x", verdict(ratio >= 0.3))
    c.res.notes["batch"] = [
        f"{n:,} files of 4 KiB of random bytes in {dirs} directories; the tar is made once beforehand "
        "(`tar -cf`). Ours: `volume write-batch batch LOCAL_DIR /b` (the CLI builds the tar stream "
        "itself while sending), then `/b` removed (untimed). Baselines: `tar -xf T -C DIR` into an "
        "empty directory on the same filesystem, and the same followed by `sync -f DIR` (syncfs, "
        "which is what the server does to make a batch durable). `sync` (untimed) before each; "
        f"rotated order; medians of {c.runs}: " + "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items()) + ".",
        "Ratio = baseline time / our time (higher is better).",
    ]


#: Populate in parts of at most this many files: before commit c26d20f, write-batch held one
#: directory fd per file, so a batch larger than RLIMIT_NOFILE failed (EMFILE → 500).
BATCH_PART_FILES = 10_000


def bench_ls(c: Ctx) -> None:
    """Issue 2 #3: recursive listing of a volume with 100,000 entries vs find over its data dir."""
    total = 20_000 if c.args.quick else 100_000
    t: Dict[str, List[float]] = {}
    counts: Dict[str, str] = {}
    for layout, dirs, per_dir, runs in (("nested", 100, total // 100 - 1, max(c.runs, 5)),
                                       ("flat", 100, total // 100, 3)):
        files = dirs * per_dir
        parts = -(-files // BATCH_PART_FILES)
        local = c.work / f"ls-src-{layout}-{total}"
        make_tree(local, dirs, per_dir, 64, parts=parts, flat=layout == "flat")
        vol = f"ls-{layout}"
        vid = c.srv.volume(vol)
        for part in sorted(local.iterdir()) if parts > 1 else [local]:
            c.srv.cli("volume", "write-batch", vol, str(part), "/")
        data = c.srv.volume_data_dir(vid)
        n_find = int(run_ok(["sh", "-c", f"find '{data}' -mindepth 1 | wc -l"]).strip())
        n_ls = run_ok([c.bin(), "volume", "ls", vol, "/", "-r"], env=c.srv.env).count("\n")
        counts[layout] = f"{n_ls:,} entries listed by ours, {n_find:,} by find"
        k_ours, k_find, k_stat = f"{layout}: ls -r", f"{layout}: find", f"{layout}: find -printf"
        k_page = f"{layout}: one request, limit=100000 (curl)"

        def ours() -> None:
            t.setdefault(k_ours, []).append(timed([c.bin(), "volume", "ls", vol, "/", "-r"], env=c.srv.env)[0])

        def find() -> None:
            t.setdefault(k_find, []).append(timed(["find", str(data)])[0])

        def one_page() -> None:
            url = f"{c.srv.url}/v1/volumes/{vol}/files/list?path=/&recursive=true&limit=100000"
            t.setdefault(k_page, []).append(timed(["curl", "-sSf", "-o", "/dev/null", "-H",
                                                   f"Authorization: Bearer {c.srv.key}", url])[0])

        def find_stat() -> None:
            t.setdefault(k_stat, []).append(timed(["find", str(data), "-printf", "%p %s %m %T@\n"])[0])

        ours(); find(); find_stat(); one_page()  # warm the dentry/inode caches for all
        for k in (k_ours, k_find, k_stat, k_page):
            t.pop(k)
        for i in range(runs):
            interleave(i, [ours, find, find_stat, one_page])
        o, b, bs = median(t[k_ours]), median(t[k_find]), median(t[k_stat])
        what = (f"`volume ls / -r`, {n_ls:,} entries: {dirs} dirs of {per_dir} files" if layout == "nested"
                else f"`volume ls / -r`, {n_ls:,} files in one directory")
        c.res.add(2, what, fmt_s(o), f"`find DATA_DIR` {fmt_s(b)}", f"{o / b:.1f}x", "≤3x", verdict(o / b <= 3))
        c.res.add(2, f"same ({layout}), vs a find that stats every entry", fmt_s(o),
                  f"`find DATA_DIR -printf '%p %s %m %T@'` {fmt_s(bs)}", f"{o / bs:.1f}x", "— (diagnostic)", "—")
        op = median(t[k_page])
        c.res.add(2, f"same ({layout}), the server alone: one `list` request of limit=100000 (curl)", fmt_s(op),
                  f"`find DATA_DIR` {fmt_s(b)}", f"{op / b:.1f}x", "— (diagnostic)", "—")
    c.res.raw["ls"] = t
    c.res.notes["ls"] = [
        f"Two volumes populated with write-batch (in batches of at most {BATCH_PART_FILES:,} files, "
        "see the analysis), files of 64 bytes: *nested* = 100 directories of "
        f"{total // 100 - 1} files ({counts['nested']}); *flat* = {total:,} files in one directory "
        f"({counts['flat']}). Ours: `volume ls NAME / -r > /dev/null` (the CLI follows `next_cursor` "
        "with whatever page size and fields it asks for). Baselines: `find DATA_DIR/volumes/<id>/data > "
        "/dev/null` (readdir only), and, as a diagnostic, `find … -printf '%p %s %m %T@\\n'`, which "
        "stats every entry as the server must; and one `GET …/files/list?recursive=true&limit=100000` "
        "with curl (the whole listing in one page: the server's cost without the CLI's paging). Caches warmed by one untimed run of each; rotated "
        f"order; medians of {max(c.runs, 5)} (nested) and 3 (flat): "
        + "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items()) + ".",
        "Ratio = our time / find's time (lower is better).",
    ]


def load(url: str, key: str, seconds: float, conns: int = 16) -> tuple[float, str]:
    """Requests per second of GET url with `conns` keep-alive connections."""
    if shutil.which("wrk"):
        out = run_ok(["wrk", "-t2", f"-c{conns}", f"-d{seconds:g}s", "-H", f"Authorization: Bearer {key}", url])
        if "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError("wrk saw errors:\n" + out)
        rps = float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
        return rps, "wrk -t2 -c16"
    return py_load(url, key, seconds, conns), "Python threads + http.client (wrk not installed)"


def py_load(url: str, key: str, seconds: float, conns: int) -> float:
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    target = u.path + ("?" + u.query if u.query else "")
    counts = [0] * conns
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port)
        while time.perf_counter() < stop:
            conn.request("GET", target, headers={"Authorization": f"Bearer {key}"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            counts[i] += 1

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return sum(counts) / (time.perf_counter() - t0)


def ctx_switches(pid: int) -> int:
    """Context switches of all live threads of a process (threads that exited are not counted)."""
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def bench_stat(c: Ctx) -> None:
    """Issue 2 #4: stat requests per second with 16 keep-alive clients (idle RSS is in main)."""
    secs = 3 if c.args.quick else 10
    c.srv.volume("stat")
    subprocess.run([c.bin(), "volume", "write", "stat", "/f"], input=b"x" * 100, env=c.srv.env, check=True)
    urls = {
        "stat": f"{c.srv.url}/v1/volumes/stat/files/stat?path=/f",
        "whoami": f"{c.srv.url}/v1/whoami",
        "health": f"{c.srv.url}/v1/health",
    }
    t: Dict[str, List[float]] = {k: [] for k in urls}
    cpu: Dict[str, List[float]] = {k: [] for k in urls}
    cs: Dict[str, List[float]] = {k: [] for k in urls}
    tool = ""
    load(urls["stat"], c.srv.key, 1)  # warm-up

    def one(kind: str) -> Callable[[], None]:
        def go() -> None:
            nonlocal tool
            c0, w0, s0 = proc_cpu(c.srv.pid), time.perf_counter(), ctx_switches(c.srv.pid)
            rps, tool = load(urls[kind], c.srv.key, secs)
            wall = time.perf_counter() - w0
            cpu[kind].append((proc_cpu(c.srv.pid) - c0) / wall)
            cs[kind].append((ctx_switches(c.srv.pid) - s0) / (rps * secs))
            t[kind].append(rps)
        return go

    for i in range(3):
        interleave(i, [one(k) for k in urls])
    c.res.raw["stat"] = {"rps": t, "server_cpu_cores": cpu, "ctx_switches_per_request": cs}
    m = {k: median(v) for k, v in t.items()}
    c.res.add(2, "`GET …/files/stat?path=/f`, 16 keep-alive clients", f"{m['stat']:,.0f} req/s",
              f"`GET /v1/health` (no auth, no disk) {m['health']:,.0f} req/s", f"{m['stat'] / m['health']:.2f}x",
              "— (no goal set)", "—")
    c.res.add(2, "`GET /v1/whoami` (auth only: one key lookup), 16 clients", f"{m['whoami']:,.0f} req/s",
              f"`GET /v1/health` {m['health']:,.0f} req/s", f"{m['whoami'] / m['health']:.2f}x", "— (diagnostic)", "—")
    c.res.notes["stat"] = [
        f"Load tool: {tool}, {secs} s per run, 3 runs of each endpoint, rotated order (plus a 1 s "
        "warm-up). Baseline: the same server's `/v1/health`, the ceiling of its HTTP stack on this "
        "machine; `/v1/whoami` (authentication only) shows where the time goes in between. The load "
        "generator shares the 2 cores with the server. Medians: "
        + "; ".join(f"{k} {m[k]:,.0f} req/s (server CPU {median(cpu[k]):.2f} cores, "
                    f"{median(cs[k]):.1f} context switches per request)" for k in urls)
        + ". Runs: " + "; ".join(f"{k} {', '.join(f'{x:,.0f}' for x in v)}" for k, v in t.items()) + ".",
    ]


def sdk_job(c: Ctx, *args: str) -> Dict[str, float]:
    out = run_ok([sys.executable, str(HERE / "sdk_job.py"), *args], env=c.srv.env)
    return json.loads(out.strip().splitlines()[-1])


def bench_sdk_transfer(c: Ctx) -> None:
    """Issue 3 #5: SDK write + read_stream of a big file vs the CLI, and the SDK's peak RSS."""
    sizes = [64 * MiB, 256 * MiB] if c.args.quick else [256 * MiB, GiB]
    vid = c.srv.volume("sdk")
    out = c.work / "sdk-out.bin"
    big = max(sizes)
    rss: Dict[int, List[int]] = {}
    srv_hwm: Dict[int, List[int]] = {}
    times: Dict[int, Dict[str, List[float]]] = {}
    for size in sizes:
        src = c.work / f"src-{size >> 20}m.bin"
        make_file(src, size)
        t: Dict[str, List[float]] = {k: [] for k in ("sdk write", "sdk read", "cli write", "cli read")}
        rss[size], srv_hwm[size] = [], []

        def sdk() -> None:
            settle()
            reset_hwm(c.srv.pid)
            r = sdk_job(c, "write", "sdk", vid, "/big-sdk", str(src))
            t["sdk write"].append(r["seconds"]); rss[size].append(int(r["maxrss_kb"]))
            rm(out)
            r = sdk_job(c, "read", "sdk", vid, "/big-sdk", str(out))
            t["sdk read"].append(r["seconds"]); rss[size].append(int(r["maxrss_kb"]))
            srv_hwm[size].append(proc_status(c.srv.pid)["VmHWM"])
            if os.path.getsize(out) != size:
                raise RuntimeError("SDK read returned the wrong size")
            rm(out)
            c.srv.cli("volume", "rm", "sdk", "/big-sdk")

        def cli() -> None:
            settle()
            t["cli write"].append(timed([c.bin(), "volume", "write", "sdk", "/big-cli", "--from", str(src)], env=c.srv.env)[0])
            rm(out)
            with open(out, "wb") as f:
                t["cli read"].append(timed([c.bin(), "volume", "read", "sdk", "/big-cli"], stdout=f, env=c.srv.env)[0])
            rm(out)
            c.srv.cli("volume", "rm", "sdk", "/big-cli")

        for i in range(c.runs):
            interleave(i, [sdk, cli])
        times[size] = t
        c.res.raw[f"sdk_transfer_{size >> 20}MiB"] = dict(t) | {"sdk_maxrss_kb": rss[size], "server_hwm_kb": srv_hwm[size]}
        if size != big:
            rm(src)
    t = times[big]
    gib = f"{big >> 20} MiB" if big < GiB else f"{big >> 30} GiB"
    for op in ("write", "read"):
        o, b = median(t[f"sdk {op}"]), median(t[f"cli {op}"])
        name = "`files.write(p, open(f, 'rb'))`" if op == "write" else "`files.read_stream(p)` → file"
        c.res.add(3, f"SDK {name}, {gib}", fmt_rate(big, o), f"CLI {fmt_rate(big, b)}", f"{b / o:.2f}x",
                  "≥0.8x", verdict(b / o >= 0.8))
    lo, hi = min(sizes), big
    r_lo, r_hi = max(rss[lo]), max(rss[hi])
    c.res.add(3, f"SDK process peak RSS, {lo >> 20} MiB vs {hi >> 20} MiB file", f"{fmt_mib(r_lo)} / {fmt_mib(r_hi)}",
              "(smaller file)", f"{r_hi / r_lo:.2f}x", "no growth with size", verdict(r_hi <= r_lo * 1.25 + 8 * 1024))
    c.res.notes["sdk_transfer"] = [
        "Each SDK job is its own `python3 bench/sdk_job.py` process (so ru_maxrss is that job's "
        "peak); its time covers the call only (not the interpreter start or `import nullspace`, "
        "about 0.1–0.2 s). Write: `Volume(name, id).files.write(p, open(f, 'rb'))`; read: "
        "`read_stream(p)` chunks written to a file. CLI: `volume write --from F` / `volume read > "
        "OUT`, whole process timed. Same source file (page cache), same volume, rotated order, "
        f"`sync` before each pair. Medians of {c.runs}: " + "; ".join(f"{k} {fmt_s(median(v))} {spread(v)}" for k, v in t.items()) + ".",
        f"Peak RSS (ru_maxrss, max over write and read jobs): {lo >> 20} MiB {fmt_mib(r_lo)}, "
        f"{hi >> 20} MiB {fmt_mib(r_hi)}; server VmHWM over the SDK jobs {fmt_mib(max(srv_hwm[lo]))} / "
        f"{fmt_mib(max(srv_hwm[hi]))}.",
    ]


def bench_sdk_small(c: Ctx) -> None:
    """Issue 3 #6: many small writes, with and without connection reuse."""
    n = 200 if c.args.quick else 1000
    size = 100
    vid = c.srv.volume("small")
    modes = ["reuse", "new", "close", "raw"]
    t: Dict[str, List[float]] = {m: [] for m in modes}

    for i in range(3):
        def job(m: str) -> Callable[[], None]:
            def go() -> None:
                settle()
                r = sdk_job(c, "small", "small", vid, m, str(n), str(size), f"/{m}-{i}")
                t[m].append(n / r["seconds"])
                c.srv.cli("volume", "rm", "small", f"/{m}-{i}", "-r")
            return go
        interleave(i, [job(m) for m in modes])
    c.res.raw["sdk_small"] = t
    med = {m: median(v) for m, v in t.items()}
    c.res.add(3, f"{n:,} `files.write()` of {size} B, one Client (keep-alive)", f"{med['reuse']:,.0f} writes/s",
              f"a new `Client` per call {med['new']:,.0f} writes/s", f"{med['reuse'] / med['new']:.2f}x", "— (no goal set)", "—")
    c.res.add(3, f"same, one Client, `Connection: close` on each request", f"{med['close']:,.0f} writes/s",
              f"one Client, keep-alive {med['reuse']:,.0f} writes/s", f"{med['close'] / med['reuse']:.2f}x", "—", "—")
    c.res.add(3, f"same, one SDK Client (keep-alive)", f"{med['reuse']:,.0f} writes/s",
              f"stdlib `http.client` keep-alive, no SDK {med['raw']:,.0f} writes/s", f"{med['reuse'] / med['raw']:.2f}x",
              "—", "—")
    c.res.notes["sdk_small"] = [
        f"{n:,} sequential writes of {size} random bytes to distinct new paths `/MODE-RUN/fI`, one "
        "process per mode and run (`bench/sdk_job.py small`), 3 runs, rotated order, the directory "
        "removed after each (untimed). Modes: *reuse* = one `nullspace.Client` (one httpx "
        "connection pool) for all calls, connected before the clock starts; *new* = `with Client() "
        "as c: Volume(name, id, client=c).files.write(...)` per call (the SDK has no per-call "
        "option to disable keep-alive, so this is what a user without reuse does); *close* = one "
        "Client, `Client.request_json('PUT', …, headers={'Connection': 'close'})` (isolates the TCP "
        "connection cost from the client construction cost); *raw* = stdlib `http.client` "
        "keep-alive PUTs with the same query and body (the floor of a Python client). Every write "
        "is durable on the server (fsync of the file and its directory), which bounds all modes. "
        "Runs (writes/s): " + "; ".join(f"{m} {', '.join(f'{x:,.0f}' for x in v)}" for m, v in t.items()) + ".",
    ]


def bench_diag(c: Ctx) -> None:
    """Diagnostics behind the misses: what chunked uploads, re-chunked downloads and new clients cost."""
    size = 256 * MiB if c.args.quick else GiB
    src = c.work / f"src-{size >> 20}m.bin"
    make_file(src, size)
    vid = c.srv.volume("diag")
    out = c.work / "diag-out.bin"
    url = f"{c.srv.url}/v1/volumes/diag/files/content?path=/d"
    auth = f"Authorization: Bearer {c.srv.key}"
    t: Dict[str, List[float]] = {}
    cpu: Dict[str, List[float]] = {}

    def curl_put(chunked: bool) -> Callable[[], None]:
        def go() -> None:
            k = "curl PUT, chunked" if chunked else "curl PUT, Content-Length"
            settle()
            c0 = proc_cpu(c.srv.pid)
            cmd = ["curl", "-sSf", "-o", "/dev/null", "-H", auth, "-T", str(src), url]
            if chunked:
                cmd[1:1] = ["-H", "Transfer-Encoding: chunked"]
            t.setdefault(k, []).append(timed(cmd)[0])
            cpu.setdefault(k, []).append(proc_cpu(c.srv.pid) - c0)
        return go

    def httpx_put(mode: str) -> Callable[[], None]:
        def go() -> None:
            settle()
            r = sdk_job(c, "httpx-put", "diag", "-", "/d", str(src), mode)
            t.setdefault(f"httpx PUT, {mode}", []).append(r["seconds"])
        return go

    def httpx_get(mode: str) -> Callable[[], None]:
        def go() -> None:
            rm(out)
            r = sdk_job(c, "httpx-get", "diag", "-", "/d", str(out), mode)
            t.setdefault(f"httpx GET, {mode}", []).append(r["seconds"])
            rm(out)
        return go

    fns = [curl_put(False), curl_put(True), httpx_put("chunked"), httpx_put("length"),
           httpx_get("chunk1m"), httpx_get("as-received")]
    for i in range(3):
        interleave(i, fns)
    cc = sdk_job(c, "client-cost", "-", "-", "20")
    c.res.raw["diag"] = {"seconds": t, "server_cpu_seconds": cpu, "client_cost": cc}
    m = {k: median(v) for k, v in t.items()}
    mc = {k: median(v) for k, v in cpu.items()}
    gib = f"{size >> 20} MiB" if size < GiB else f"{size >> 30} GiB"
    a, b = "curl PUT, chunked", "curl PUT, Content-Length"
    c.res.add(2, f"upload {gib} with `Transfer-Encoding: chunked` (as the CLI and SDK send) (curl)",
              f"{fmt_rate(size, m[a])}, server CPU {mc[a]:.2f} s", f"with Content-Length {fmt_rate(size, m[b])}, "
              f"server CPU {mc[b]:.2f} s", f"{m[b] / m[a]:.2f}x", "— (diagnostic)", "—")
    a, b = "httpx PUT, chunked", "httpx PUT, length"
    c.res.add(3, f"the SDK's upload loop (1 MiB generator) in plain httpx, chunked, {gib}", fmt_rate(size, m[a]),
              f"same generator with a Content-Length header {fmt_rate(size, m[b])}", f"{m[b] / m[a]:.2f}x",
              "— (diagnostic)", "—")
    a, b = "httpx GET, chunk1m", "httpx GET, as-received"
    c.res.add(3, f"the SDK's download loop: httpx `iter_bytes(1 MiB)`, {gib}", fmt_rate(size, m[a]),
              f"`iter_bytes()` (chunks as received) {fmt_rate(size, m[b])}", f"{m[b] / m[a]:.2f}x",
              "— (diagnostic)", "—")
    c.res.add(3, "constructing a `nullspace.Client()`", f"{cc['seconds'] * 1000:.1f} ms",
              f"`ssl.create_default_context()` {cc['ssl_context_seconds'] * 1000:.1f} ms",
              f"{cc['ssl_context_seconds'] / cc['seconds']:.2f} of it", "— (diagnostic)", "—")
    c.res.notes["diag"] = [
        f"Diagnostics for the misses ({gib} random file, 3 runs, rotated, medians): the same PUT "
        "with `curl -T` with and without `-H 'Transfer-Encoding: chunked'` (server CPU = utime+stime "
        "of the server process over the request); the SDK's own loops rebuilt in plain httpx "
        "(`bench/sdk_job.py httpx-put/httpx-get`): a generator of 1 MiB `f.read()`s sent chunked "
        "(what `files.write(p, open(f, 'rb'))` does) or with a Content-Length header; the response "
        "read with `iter_bytes(1 MiB)` (what `read_stream` does) or `iter_bytes()`; and the cost of "
        "`nullspace.Client()` (20 constructions) next to `ssl.create_default_context()`. Medians: "
        + "; ".join(f"{k} {fmt_s(v)}" for k, v in m.items()) + ".",
    ]
    c.res.notes["diag3"] = ["the diagnostic rows are measured as described under Issue 2 (**diag**)."]


def bench_batch_atomic(c: Ctx) -> None:
    """Issue 12: crash-atomic batches of 3,000 files, into a new directory and merged, vs
    `tar -x` + `sync -f` (bench/batch_atomic.py; the binary before the change, for the
    before/after ratio, from $NULLSPACE_BENCH_OLD_BIN when set)."""
    import batch_atomic

    work = c.work / "batch-atomic"
    work.mkdir(exist_ok=True)
    t = batch_atomic.run(c.bin(), os.environ.get("NULLSPACE_BENCH_OLD_BIN"), work, c.runs)
    c.res.raw["batch_atomic"] = t
    for r in batch_atomic.rows(t, "release build"):
        c.res.add(12, r["what"], r["ours"], r["baseline"], r["ratio"], r["goal"], r["met"])
    c.res.notes["batch_atomic"] = ["See bench/notes/issue12-atomic.md (bench/batch_atomic.py)."]
def pct(xs: Sequence[float], p: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(round(p / 100 * (len(ys) - 1))))]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


HL_VOLUMES = 1000
HL_SOCKETS = 1000


def bench_hostile_load(c: Ctx) -> None:
    """Issue 12: server RSS with 1,000 volume handles open, then after they were closed as idle;
    request p50/p99 with 1,000 idle sockets held open against none, alternating in one run."""
    import resource
    import socket
    import urllib.request

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, HL_SOCKETS + 512)), hard))
    nvol = 100 if c.args.quick else HL_VOLUMES
    work = c.work / "hostile"
    work.mkdir(exist_ok=True)
    srv = Server(c.srv.binary, work)
    # Directory volumes: 1,000 loop images would mostly measure mkfs.
    srv.env["NULLSPACE_VOLUME_BACKEND"] = "directory"
    srv.start()
    try:
        key = srv.key
        srv.cli("admin", "tenant", "set-limits", "default", "--max-volumes", str(nvol + 10))

        def req(method: str, path: str, data: bytes | None = None) -> bytes:
            r = urllib.request.Request(f"{srv.url}{path}", data=data, method=method,
                                       headers={"Authorization": f"Bearer {key}",
                                                "Content-Type": "application/json"})
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.read()

        time.sleep(1)
        rss_empty = proc_status(srv.pid)["VmRSS"]
        for i in range(nvol):
            req("POST", "/v1/volumes", json.dumps({"name": f"v{i}"}).encode())
            req("PUT", f"/v1/volumes/v{i}/files/content?path=/f", b"x" * 4096)
        for i in range(nvol):
            req("GET", f"/v1/volumes/v{i}/files/content?path=/f")
        time.sleep(1)
        rss_open, fds_open = proc_status(srv.pid)["VmRSS"], fd_count(srv.pid)
        # Handles idle for 60 s are closed (checked every 15 s): wait until the fds went.
        t0 = time.time()
        while fd_count(srv.pid) > fds_open - 2 * nvol and time.time() - t0 < 150:
            time.sleep(2)
        closed_after = time.time() - t0
        time.sleep(1)
        rss_idle, fds_idle = proc_status(srv.pid)["VmRSS"], fd_count(srv.pid)
        c.res.add(12, f"server RSS: {nvol} volume handles open / after they closed as idle (directory volumes)",
                  f"{fmt_mib(rss_open)} / {fmt_mib(rss_idle)}", f"empty server {fmt_mib(rss_empty)}",
                  f"{(rss_open - rss_empty) / max(1, nvol):.0f} KiB per open handle",
                  f"idle handles closed (fds {fds_open} → {fds_idle})", verdict(fds_idle < fds_open - 2 * nvol))

        n = 150 if c.args.quick else 400

        def timed_gets() -> List[float]:
            out = []
            for i in range(n):
                t = time.perf_counter()
                req("GET", f"/v1/volumes/v{i % 10}/files/content?path=/f")
                out.append((time.perf_counter() - t) * 1000)
            return out

        quiet: List[float] = []
        loaded: List[float] = []
        rounds = 2 if c.args.quick else 3
        for _ in range(rounds):
            quiet += timed_gets()
            socks = []
            for _ in range(HL_SOCKETS):
                s = socket.create_connection(("127.0.0.1", srv.port))
                socks.append(s)
            time.sleep(0.5)
            loaded += timed_gets()
            for s in socks:
                s.close()
            time.sleep(0.5)
        alive = srv.proc is not None and srv.proc.poll() is None
        c.res.add(12, f"4 KiB GET p50 / p99 beside {HL_SOCKETS} idle sockets (new connection per request)",
                  f"{median(loaded):.2f} / {pct(loaded, 99):.2f} ms",
                  f"no idle sockets {median(quiet):.2f} / {pct(quiet, 99):.2f} ms",
                  f"{pct(loaded, 99) / pct(quiet, 99):.2f}x (p99)", "every request answered", verdict(alive))
        c.res.raw["hostile_load"] = {"rss_empty_kib": rss_empty, "rss_open_kib": rss_open, "rss_idle_kib": rss_idle,
                                     "fds_open": fds_open, "fds_idle": fds_idle, "closed_after_s": closed_after,
                                     "quiet_ms": quiet, "loaded_ms": loaded}
        c.res.notes["hostile_load"] = [
            f"a second server (directory volumes) in the run's directory; {nvol} volumes each get a 4 KiB file "
            f"written and read, then VmRSS is read (fds {fds_open}); then the run waits until the idle handles are "
            f"closed (60 s idle, 15 s sweep: {closed_after:.0f} s, fds {fds_idle}) and reads VmRSS again. Then, "
            f"{rounds} rounds of {n} sequential 4 KiB GETs (a new connection each, urllib) with no idle socket and "
            f"with {HL_SOCKETS} connected sockets that send nothing, alternating; p50/p99 over all rounds."]
    finally:
        srv.stop()


BENCHES = {
    "batch_atomic": bench_batch_atomic,
    "transfer": bench_transfer,
    "batch": bench_batch,
    "ls": bench_ls,
    "stat": bench_stat,
    "sdk_transfer": bench_sdk_transfer,
    "sdk_small": bench_sdk_small,
    "diag": bench_diag,
    "hostile_load": bench_hostile_load,
}


# ------------------------------------------------------------------------------------ report


LOAD_NOTE: Dict[str, str] = {}


def machine(work: Path) -> Dict[str, str]:
    return dict(benchlib.machine(work), **{"other work on the machine": LOAD_NOTE.get("text", "?")})


def table(rows: List[Row], issue: int) -> str:
    out = ["| what | ours | baseline | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.issue == issue:
            out.append(f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {r.met} |")
    return "\n".join(out)


def write_md(path: Path, res: Results, mach: Dict[str, str], src: str, args: argparse.Namespace, started: str) -> None:
    notes = res.notes
    lines = [
        "# Issues 2 and 3 — volumes core and Python SDK",
        "",
        f"Measured {started} by `python3 bench/run.py{' --quick' if args.quick else ''}` "
        f"({src}). Rerun with that command; it starts its own server, runs everything and rewrites "
        "this file and the figures in bench/results/. Each figure is a median of repeated runs, ours and the baseline interleaved in "
        "the same run; ratios compare them (the machine is shared and noisy: absolute numbers move "
        "between runs, ratios much less).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in mach.items()) + ". All data (server data dir, "
        "sources, baseline outputs) in one fresh directory under /work/benchtmp, on that same filesystem.",
        "",
    ]
    for issue, title, keys in (
        (2, "Issue 2 — volumes core", ["transfer", "batch", "ls", "stat", "idle", "diag"]),
        (3, "Issue 3 — Python SDK", ["sdk_transfer", "sdk_small", "diag3"]),
    ):
        if not any(r.issue == issue for r in res.rows):
            continue
        lines += [f"## {title}", "", table(res.rows, issue), "", "How each was measured:", ""]
        for k in keys:
            for n in notes.get(k, []):
                lines.append(f"- **{k}**: {n}")
        lines.append("")
    analysis = HERE / "notes" / "issue2-3-analysis.md"
    if analysis.exists():
        lines += [analysis.read_text().rstrip(), ""]
    path.write_text("\n".join(lines))


def headline(r: Row) -> bool:
    """Whether a row goes into the summary: it has a goal, or is a figure without one; not a
    diagnostic and not a row without any goal column."""
    return r.goal != "—" and "diagnostic" not in r.goal


def write_results(res: Results, only: List[str], binary: Path, started: str) -> List[Path]:
    """bench/results/<bench>.json for each benchmark run, from its headline rows. Written only
    when the binary was built after the last commit to the measured code, so that HEAD is what
    was measured."""
    head = figures.head()
    paths = sorted({p for n in only for p in figures.CODE_PATHS[n]})
    changed = int(figures.git("log", "-1", "--format=%ct", head, "--", *paths) or 0)
    if binary.stat().st_mtime < changed:
        print(f"figures not written: {binary} was built before the last commit to the code it "
              "runs; rebuild it (cargo build --release -p nullspace-cli) and run again", file=sys.stderr)
        return []
    cmd = "python3 bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])
    written = []
    for name in only:
        rows = [r for r in res.rows if r.bench == name and headline(r)]
        if not rows:
            continue
        paths = figures.CODE_PATHS[name]
        dirty = bool(figures.git("status", "--porcelain", "--untracked-files=no", "--", *paths))
        doc = {
            "bench": name,
            "order": 10 * (ALL.index(name) + 1),
            "command": cmd,
            "measured": {"date": started[:10], "commit": head, "dirty": dirty, "commit_is": "built"},
            "attribution": "written by bench/run.py from the checkout it ran in",
            "code_paths": paths,
            "notes": figures.NOTES_OF.get(name, figures.RUN_NOTES),
            "figures": [{"subsystem": figures.RUN_SUBSYSTEM[r.issue],
                         **{k: getattr(r, k).replace("|", "\\|") for k in ("what", "ours", "baseline", "ratio", "goal", "met")}}
                        for r in rows],
        }
        out = figures.RESULTS / f"{name}.json"
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        written.append(out)
    return written


def summary(allow_stale: bool) -> int:
    try:
        stale = figures.write_summary(allow_stale)
    except figures.FigureError as e:
        print(f"summary not written: {e}", file=sys.stderr)
        return 1
    print(f"wrote the summary of {figures.DOC}" + (" with stale figures marked:" if stale else ""))
    for s in stale:
        print(f"  {s}")
    return 0


def check(allow_stale: bool) -> int:
    problems, warnings = figures.check(allow_stale)
    for w in warnings:
        print(f"warning: {w}")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not problems:
        print("BENCHMARKS.md: the summary is what bench/results/*.json give"
              + ("" if allow_stale else ", and no figure is older than its code"))
    return 1 if problems else 0


def print_table(res: Results) -> None:
    cols = ["issue", "what", "ours", "baseline", "ratio", "goal", "met"]
    rows = [[str(getattr(r, c)) for c in cols] for r in res.rows]
    w = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(cols)))
    for r in rows:
        print("  ".join(v.ljust(w[i]) for i, v in enumerate(r)))


# ------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs; writes nothing")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--runs", type=int, help="repetitions per measurement (default 5, quick 3)")
    ap.add_argument("--bin", default=str(ROOT / "target/release/nullspace"), help="the nullspace binary")
    ap.add_argument("--workdir-base", default="/work/benchtmp", help="where the run's directory is made")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    ap.add_argument("--write-md", action="store_true", help="write bench/notes/issue2-3.md even with --quick/--only")
    ap.add_argument("--no-md", action="store_true",
                    help="write no report, no figures and no summary (print only)")
    ap.add_argument("--render", metavar="REPORT_JSON",
                    help="rewrite bench/notes/issue2-3.md from a saved report (e.g. after editing "
                         "bench/notes/issue2-3-analysis.md); runs nothing")
    ap.add_argument("--summary", action="store_true",
                    help="rewrite BENCHMARKS.md's summary from bench/results/*.json; runs nothing")
    ap.add_argument("--check", action="store_true",
                    help="verify BENCHMARKS.md's summary and the figures' freshness; runs nothing")
    ap.add_argument("--allow-stale", action="store_true",
                    help="with --summary: write it with stale figures marked; with --check: only warn of them")
    args = ap.parse_args()
    if args.check:
        return check(args.allow_stale)
    if args.summary:
        return summary(args.allow_stale)
    if args.render:
        rep = json.loads(Path(args.render).read_text())
        res = Results(rows=[Row(**r) for r in rep["rows"]], notes=rep["notes"])
        args.quick = rep["quick"]
        write_md(ROOT / figures.RUN_NOTES, res, rep["machine"], rep["source"], args, rep["started"])
        print(f"wrote {ROOT / figures.RUN_NOTES} from {args.render}")
        return 0
    only = args.only.split(",") if args.only else ALL
    for o in only:
        if o not in BENCHES:
            ap.error(f"unknown benchmark {o!r}; one of {', '.join(ALL)}")
    src_bin = Path(args.bin)
    if not src_bin.exists():
        ap.error(f"{src_bin} not found: cargo build --release -p nullspace-cli")
    Path(args.workdir_base).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir_base))
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    binary = work / "nullspace"
    shutil.copy2(src_bin, binary)
    src_state = source_state(binary)
    srv = Server(binary, work)
    res = Results()
    print(f"work dir {work}; server {srv.url}", flush=True)
    try:
        srv.start()
        if os.stat(srv.data).st_dev != os.stat(work).st_dev:
            raise RuntimeError("server data dir and work dir are on different filesystems")
        time.sleep(1)
        idle_start = proc_status(srv.pid)["VmRSS"]
        load_start = load_now()
        srv.cli("admin", "tenant", "set-volume-cap", "default", "64GiB")
        ctx = Ctx(args, srv, work, res)
        rss_after: Dict[str, int] = {}
        for name in only:
            print(f"== {name}", flush=True)
            t0 = time.time()
            res.current = name
            BENCHES[name](ctx)
            rss_after[name] = proc_status(srv.pid)["VmRSS"]
            print(f"   {time.time() - t0:.0f} s", flush=True)
        time.sleep(2)
        res.current = ""  # the idle row is the run's, not its last benchmark's
        st = proc_status(srv.pid)
        LOAD_NOTE["text"] = f"at start {load_start}; at end {load_now()}"
        res.add(2, "idle server RSS: after start / after the runs above", f"{fmt_mib(idle_start)} / {fmt_mib(st['VmRSS'])}",
                "—", "—", "—", "—")
        res.notes["idle"] = [
            "VmRSS of the server 1 s after it first answered `/v1/health` (empty data dir), and 2 s "
            f"after the last benchmark ({', '.join(only)}) finished. Lifetime VmHWM is not meaningful "
            "here (it is reset during the transfer benchmark). VmRSS right after each benchmark: "
            + ", ".join(f"{k} {fmt_mib(v)}" for k, v in rss_after.items()) + "."]
        res.rows.sort(key=lambda r: r.issue)
        mach = machine(work)
        print()
        print_table(res)
        (work / "results.json").write_text(json.dumps(res.raw, indent=1))
        src = src_state
        report = Path(args.workdir_base) / ("last-report-quick.json" if args.quick or args.only else "last-report.json")
        report.write_text(json.dumps({"rows": [r.__dict__ for r in res.rows], "notes": res.notes, "machine": mach,
                                      "source": src, "started": started, "quick": args.quick, "raw": res.raw}, indent=1))
        print(f"\nreport saved to {report} (re-render with --render {report})")
        if not args.no_md and (args.write_md or (not args.quick and not args.only)):
            write_md(ROOT / figures.RUN_NOTES, res, mach, src, args, started)
            print(f"wrote {ROOT / figures.RUN_NOTES}")
        if not args.no_md and not args.quick:
            for out in write_results(res, only, src_bin, started):
                print(f"wrote {out}")
            summary(allow_stale=False)  # says why when it refuses; the figures are kept either way
        return 0
    finally:
        srv.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
