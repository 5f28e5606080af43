#!/usr/bin/env python3
"""Issue 5 ("Transfers") benchmarks, each against a named baseline in the same run.

    cargo build --release -p nullspace-cli
    python3 bench/transfers.py                  # full sizes, 3 runs; writes bench/notes/issue5.md
    python3 bench/transfers.py --runs 5
    python3 bench/transfers.py --quick          # 256 MiB / 2,000 files; prints only
    python3 bench/transfers.py --only file,dir  # some of: file, dir, archive

What it measures (ours and the baseline interleaved, order rotated per repetition, medians):

* file:    upload and download of a 1 GiB file. Baseline: nginx (Debian package) on loopback,
           `curl -T` to a WebDAV `PUT` location and `curl -o /dev/null` of the same file.
           Ours: the `nullspace volume upload` / `download` CLI when the binary has them, and
           always curl against our API (`PUT files/content`, tus creation-with-upload, and
           `GET files/content`). Peak RSS of the server (VmHWM) and of the client at 256 MiB and
           1 GiB (must not grow with the size).
* dir:     upload of a directory of 10,000 files of 4 KiB: files/s. Baselines: `tar c | nc` over
           loopback into `nc -l | tar x` (+ syncfs), and local `tar c | tar x` (+ syncfs).
* archive: `GET files/archive?format=tar.gz` of that directory against `tar czf` of it (and
           `format=tar` against `tar cf`, to separate walking from compressing).

Prerequisites: nginx, curl, nc (netcat-openbsd), tar, gzip. The script installs the Debian
packages `nginx` and `netcat-openbsd` with `apt-get update && apt-get install -y ...` when they
are missing (it says so first; needs root). It starts its own nullspace server (a copy of
target/release/nullspace) and its own nginx (`nginx -c` with a minimal config, on a free loopback
port, never the system service), both with their data in one fresh directory under
/work/benchtmp, on one filesystem. It never touches bench/run.py or BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import base64
import errno
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import benchlib
from benchlib import (GiB, HERE, KiB, MiB, ROOT, Ran, free_port, interleave, load_now, machine,
                      median, proc_cpu, proc_status, reset_hwm, rm, run_ok, settle, source_state,
                      timed)

ALL = ["file", "dir", "archive"]
VOL = "xfer5"


# ------------------------------------------------------------------------------------ helpers


def spread(xs: Sequence[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in sorted(xs)) + "]"


def gbps(nbytes: int, s: float) -> str:
    return f"{nbytes / s / 1e9:.2f} GB/s"


def mib(kb: float) -> str:
    return f"{kb / 1024:.1f} MiB"


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (from /proc/net/tcp, without connecting)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(l.split()[1] == want and l.split()[3] == "0A" for l in list(f)[1:])


def ensure_tools() -> None:
    """Installs nginx and netcat-openbsd (Debian packages) when missing."""
    missing = [pkg for tool, pkg in (("nginx", "nginx"), ("nc", "netcat-openbsd")) if not shutil.which(tool)
               and not (tool == "nginx" and Path("/usr/sbin/nginx").exists())]
    if missing:
        print(f"installing {' '.join(missing)} (Debian packages): apt-get update && apt-get install -y "
              f"{' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    for tool in ("curl", "tar", "gzip"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


# ------------------------------------------------------------------------------------ servers


class Ours(benchlib.Server):
    def __init__(self, binary: Path, work: Path) -> None:
        super().__init__(binary, work)
        self.auth = f"Authorization: Bearer {self.key}"

    def has_verb(self, verb: str) -> bool:
        r = subprocess.run([str(self.binary), "volume", verb, "--help"], capture_output=True, env=self.env)
        return r.returncode == 0

    def api(self, method: str, path: str, body: Optional[bytes] = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.read()

    def content_url(self, path: str) -> str:
        return f"{self.url}/v1/volumes/{VOL}/files/content?path={path}"

    def remove(self, path: str) -> None:
        self.api("DELETE", f"/v1/volumes/{VOL}/files?path={path}&recursive=true")

    def volume_dir(self, vol_id: str) -> Path:
        return self.volume_data_dir(vol_id)


class Nginx:
    """A private nginx: minimal config, WebDAV PUT under /dav/, static files under /files/."""

    def __init__(self, work: Path) -> None:
        self.prefix = work / "nginx"
        self.root = self.prefix / "root"
        for d in ("root/dav", "root/files", "tmp", "logs"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user = "user root root;" if os.geteuid() == 0 else ""
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {self.prefix}/tmp;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
        }}
        location /files/ {{ }}
    }}
}}
""")
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.proc = subprocess.Popen([nginx_bin(), "-p", str(self.prefix), "-c", str(self.conf), "-e",
                                      str(self.prefix / "logs/error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/files/", timeout=1)
            except urllib.error.HTTPError:
                return  # 403/404: it answers
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited; see {self.prefix}/logs/error.log")
                time.sleep(0.05)
                continue
            return
        raise RuntimeError("nginx did not answer within 20 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu(self) -> float:
        """CPU seconds of the master and its workers so far."""
        assert self.proc
        pids = [self.proc.pid]
        try:
            pids += [int(x) for x in open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()]
        except OSError:
            pass
        return sum(proc_cpu(p) for p in pids)

    def version(self) -> str:
        r = subprocess.run([nginx_bin(), "-v"], capture_output=True, text=True)
        return (r.stderr or r.stdout).strip().replace("nginx version: ", "")


# ------------------------------------------------------------------------------------ context


class Ctx:
    def __init__(self, args, ours: Ours, nginx: Nginx, work: Path) -> None:
        self.args, self.ours, self.nginx, self.work = args, ours, nginx, work
        self.rows: List[Tuple[str, str, str, str, str, str]] = []
        self.notes: Dict[str, List[str]] = {}
        self.raw: Dict[str, object] = {}
        self.vol_id = ""

    @property
    def runs(self) -> int:
        return self.args.runs

    def row(self, what: str, ours: str, base: str, ratio: str = "—", goal: str = "—", met: str = "—") -> None:
        self.rows.append((what, ours, base, ratio, goal, met))
        print(f"  {what}: ours {ours} | baseline {base} | {ratio} (goal {goal}: {met})", flush=True)


def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def make_dir(root: Path, n: int, size: int) -> None:
    """`n` files of `size` random bytes, flat in `root`."""
    if root.exists() and len(os.listdir(root)) == n:
        return
    rm(root)
    tmp = root.with_name(root.name + ".tmp")
    rm(tmp)
    tmp.mkdir(parents=True)
    for i in range(n):
        with open(tmp / f"f{i:05d}.bin", "wb") as f:
            f.write(os.urandom(size))
    tmp.rename(root)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# ------------------------------------------------------------------------------------ (a) one big file


def bench_file(c: Ctx) -> None:
    o, ng = c.ours, c.nginx
    big = 256 * MiB if c.args.quick else GiB
    small = 64 * MiB if c.args.quick else 256 * MiB
    cli_up, cli_down = o.has_verb("upload"), o.has_verb("download")
    env = o.env
    rss: Dict[str, Dict[int, List[int]]] = {}  # variant -> size -> KiB
    srv_rss: Dict[str, Dict[int, List[int]]] = {}
    srv_cpu: Dict[str, Dict[int, List[float]]] = {}
    cli_cpu: Dict[str, Dict[int, List[float]]] = {}
    times: Dict[int, Dict[str, List[float]]] = {}

    def record(variant: str, size: int, r: Ran, hwm: Optional[int], scpu: Optional[float]) -> None:
        times[size].setdefault(variant, []).append(r.wall)
        rss.setdefault(variant, {}).setdefault(size, []).append(r.rss_kb)
        cli_cpu.setdefault(variant, {}).setdefault(size, []).append(r.cpu)
        if hwm is not None:
            srv_rss.setdefault(variant, {}).setdefault(size, []).append(hwm)
        if scpu is not None:
            srv_cpu.setdefault(variant, {}).setdefault(size, []).append(scpu)

    def ours_timed(cmd, stdout=subprocess.DEVNULL, shell=False) -> Tuple[Ran, int, float]:
        settle()
        reset_hwm(o.pid)
        cpu0 = proc_cpu(o.pid)
        r = timed(cmd, stdout=stdout, env=env, shell=shell)
        return r, proc_status(o.pid)["VmHWM"], proc_cpu(o.pid) - cpu0

    for size in (small, big):
        src = c.work / f"src-{size >> 20}MiB.bin"
        make_file(src, size)
        name = f"/big-{size >> 20}.bin"
        # The download source: the same bytes in our volume (uploaded untimed) and in nginx's
        # root, hard-linked to that very file when the volume is a plain directory (one inode
        # in the page cache), else a copy (a loop volume is its own file system); both are
        # read once untimed, so both servers serve from the page cache.
        o.cli("volume", "write", VOL, name, "--from", str(src))
        served = o.volume_dir(c.vol_id) / name.lstrip("/")
        ng_file = ng.root / "files" / f"big-{size >> 20}.bin"
        rm(ng_file)
        try:
            os.link(served, ng_file)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.copyfile(served, ng_file)
        for f in (served, ng_file):
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        times[size] = {}
        expect = "-H", "Expect:"  # no 100-continue round trip, for every curl upload

        def nginx_put() -> None:
            settle()
            cpu0 = ng.cpu()
            r = timed(["curl", "-sSf", *expect, "-o", "/dev/null", "-T", str(src), f"{ng.url}/dav/up.bin"])
            record("nginx PUT (curl)", size, r, None, ng.cpu() - cpu0)
            rm(ng.root / "dav" / "up.bin")

        def ours_put() -> None:
            r, h, s = ours_timed(["curl", "-sSf", *expect, "-o", "/dev/null", "-H", o.auth, "-T", str(src),
                                  o.content_url("/up-put.bin")])
            record("ours PUT files/content (curl)", size, r, h, s)
            o.remove("/up-put.bin")

        def ours_tus() -> None:
            # tus creation-with-upload: the whole file in the POST (curl -T streams it).
            r, h, s = ours_timed(["curl", "-sSf", *expect, "-o", "/dev/null", "-X", "POST", "-H", o.auth,
                                  "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}",
                                  "-H", f"Upload-Metadata: path {b64('/up-tus.bin')}",
                                  "-H", "Content-Type: application/offset+octet-stream",
                                  "-T", str(src), f"{o.url}/v1/volumes/{VOL}/uploads"])
            record("ours tus POST, one request (curl)", size, r, h, s)
            o.remove("/up-tus.bin")

        def ours_cli_upload() -> None:
            r, h, s = ours_timed([str(o.binary), "volume", "upload", VOL, str(src), "/up-cli.bin"])
            record("ours CLI `volume upload`", size, r, h, s)
            o.remove("/up-cli.bin")

        def nginx_get() -> None:
            settle()
            cpu0 = ng.cpu()
            r = timed(["curl", "-sSf", "-o", "/dev/null", f"{ng.url}/files/{ng_file.name}"])
            record("nginx GET (curl)", size, r, None, ng.cpu() - cpu0)

        def ours_get() -> None:
            r, h, s = ours_timed(["curl", "-sSf", "-o", "/dev/null", "-H", o.auth, o.content_url(name)])
            record("ours GET files/content (curl)", size, r, h, s)

        def ours_cli_download() -> None:
            r, h, s = ours_timed([str(o.binary), "volume", "download", VOL, name, "-"])
            record("ours CLI `volume download … -`", size, r, h, s)

        fns = [nginx_put, ours_put, ours_tus, nginx_get, ours_get]
        if cli_up:
            fns.append(ours_cli_upload)
        if cli_down:
            fns.append(ours_cli_download)
        print(f"file {size >> 20} MiB: {c.runs} runs of {len(fns)} variants", flush=True)
        for i in range(c.runs):
            interleave(i, fns)
        if size != big:
            rm(src)

    c.raw["file"] = {"times": times, "client_maxrss_kb": rss, "server_hwm_kb": srv_rss,
                     "server_cpu_s": srv_cpu, "client_cpu_s": cli_cpu}
    t = times[big]
    label = f"{big >> 30} GiB" if big >= GiB else f"{big >> 20} MiB"
    nput, nget = median(t["nginx PUT (curl)"]), median(t["nginx GET (curl)"])

    def vs(kind: str, variant: str, base: float) -> None:
        if variant not in t:
            return
        m = median(t[variant])
        ratio = base / m
        c.row(f"{kind} {label}: {variant}", gbps(big, m),
              f"nginx {'WebDAV PUT' if kind == 'upload' else 'GET'} (curl) {gbps(big, base)}",
              f"{ratio:.2f}x", "≥0.8x", "yes" if ratio >= 0.8 else "**no**")

    for v in ("ours CLI `volume upload`", "ours PUT files/content (curl)", "ours tus POST, one request (curl)"):
        vs("upload", v, nput)
    for v in ("ours CLI `volume download … -`", "ours GET files/content (curl)"):
        vs("download", v, nget)

    for v in sorted(srv_rss):
        lo, hi = max(srv_rss[v][small]), max(srv_rss[v][big])
        ok = hi <= lo * 1.25 + 8 * 1024
        c.row(f"server peak RSS (VmHWM), {v}: {small >> 20} MiB / {big >> 20} MiB", f"{mib(lo)} / {mib(hi)}",
              "(same server, smaller file)", f"{hi / lo:.2f}x", "no growth", "yes" if ok else "**no**")
    for v in sorted(rss):
        lo, hi = max(rss[v][small]), max(rss[v][big])
        ok = hi <= lo * 1.25 + 8 * 1024
        c.row(f"client peak RSS, {v}: {small >> 20} MiB / {big >> 20} MiB", f"{mib(lo)} / {mib(hi)}",
              "(smaller file)", f"{hi / lo:.2f}x", "no growth", "yes" if ok else "**no**")
    c.notes["file"] = [
        f"Files of random bytes ({small >> 20} MiB and {label}) in the work dir (in the page cache). Every "
        "upload goes to a new path, removed (untimed) after; `sync` (untimed) before each timed command. "
        "nginx: `curl -T SRC http://127.0.0.1:P/dav/up.bin` (WebDAV `PUT`, `client_max_body_size 0`, temp "
        "files on the same filesystem; nginx does not fsync). Ours: `curl -T` to `PUT files/content` "
        "(temp file, fsync, rename, fsync of the directory), tus creation-with-upload with the whole file "
        "in one `POST` (fsync, state file, publish)"
        + (", and the CLI `volume upload` (tus, PATCHes of 16 MiB by default)" if cli_up else
           "; the CLI has no `volume upload` in this binary, so it is not measured") + ". "
        "Every curl upload sends `Expect:` (no 100-continue wait).",
        "Downloads: the file served by both is one inode (our volume's file, hard-linked into nginx's "
        "root), in the page cache; `curl -o /dev/null` for nginx (sendfile) and for `GET files/content`"
        + (", and `volume download VOL PATH -` > /dev/null for the CLI" if cli_down else "") + ".",
        f"Wall time of the whole command; medians of {c.runs}, order rotated per repetition. {label}: "
        + "; ".join(f"{k} {median(v):.2f} s {spread(v)}" for k, v in t.items()) + ".",
        "CPU seconds (user+sys) per run at " + label + ", median — server (ours, or nginx master+worker): "
        + "; ".join(f"{k} {median(v[big]):.2f}" for k, v in srv_cpu.items())
        + " — client: " + "; ".join(f"{k} {median(v[big]):.2f}" for k, v in cli_cpu.items()) + ".",
        "Server peak RSS: VmHWM from /proc/PID/status, reset (`clear_refs` 5) before each command, max "
        "over runs. Client peak RSS: `wait4` ru_maxrss of the command.",
    ]


# ------------------------------------------------------------------------------------ (b) many small files


def bench_dir(c: Ctx) -> None:
    o = c.ours
    n = 2_000 if c.args.quick else 10_000
    local = c.work / f"small-{n}"
    make_dir(local, n, 4 * KiB)
    cli_up = o.has_verb("upload")
    have_nc = bool(shutil.which("nc"))
    t: Dict[str, List[float]] = {}
    dst = c.work / "small-dst"
    k = [0]

    def rec(name: str, r: Ran) -> None:
        t.setdefault(name, []).append(r.wall)

    def next_remote() -> str:
        k[0] += 1
        return f"/up-small-{k[0]}"

    def ours_cli_upload() -> None:
        remote = next_remote()
        settle()
        rec("ours CLI `volume upload DIR`", timed([str(o.binary), "volume", "upload", VOL, str(local), remote],
                                                  env=o.env))
        o.remove(remote)

    def ours_write_batch() -> None:
        remote = next_remote()
        settle()
        rec("ours CLI `volume write-batch`", timed([str(o.binary), "volume", "write-batch", VOL, str(local), remote],
                                                   env=o.env))
        o.remove(remote)

    def ours_curl_batch() -> None:
        remote = next_remote()
        settle()
        cmd = (f"tar -c -C '{local}' . | curl -sSf -o /dev/null -H 'Expect:' -H '{o.auth}' -H "
               f"'Content-Type: application/x-tar' -X POST -T - "
               f"'{o.url}/v1/volumes/{VOL}/files/batch?path={remote}'")
        rec("ours `tar c | curl` POST files/batch", timed(cmd, shell=True))
        o.remove(remote)

    def tar_nc() -> None:
        rm(dst)
        dst.mkdir()
        port = free_port()
        settle()
        recv = subprocess.Popen(f"nc -l 127.0.0.1 {port} | tar -x -C '{dst}' && sync -f '{dst}'", shell=True)
        deadline = time.time() + 10
        while not listening(port):  # the listener is up before the clock starts
            if time.time() > deadline or recv.poll() is not None:
                raise RuntimeError("nc -l did not start listening")
            time.sleep(0.002)
        t0 = time.perf_counter()
        send = subprocess.run(f"tar -c -C '{local}' . | nc -N 127.0.0.1 {port}", shell=True)
        if recv.wait() != 0 or send.returncode != 0:
            raise RuntimeError("tar | nc failed")
        t.setdefault("`tar c | nc` → `nc -l | tar x` + syncfs", []).append(time.perf_counter() - t0)
        if len(os.listdir(dst)) != n:
            raise RuntimeError("tar | nc did not deliver every file")
        rm(dst)

    def tar_local() -> None:
        rm(dst)
        dst.mkdir()
        settle()
        rec("`tar c | tar x` (local) + syncfs",
            timed(f"tar -c -C '{local}' . | tar -x -C '{dst}' && sync -f '{dst}'", shell=True))
        rm(dst)

    fns = [ours_write_batch, ours_curl_batch, tar_local] + ([tar_nc] if have_nc else [])
    if cli_up:
        fns.insert(0, ours_cli_upload)
    print(f"dir {n} files: {c.runs} runs of {len(fns)} variants", flush=True)
    for i in range(c.runs):
        interleave(i, fns)
    c.raw["dir"] = t
    bases = [b for b in t if not b.startswith("ours")]
    for v in [v for v in t if v.startswith("ours")]:
        m = median(t[v])
        for b in bases:
            bm = median(t[b])
            c.row(f"upload of {n:,} files of 4 KiB: {v}", f"{m:.2f} s ({n / m:,.0f} files/s)",
                  f"{b} {bm:.2f} s ({n / bm:,.0f} files/s)", f"{bm / m:.2f}x")
    c.notes["dir"] = [
        f"{n:,} files of 4 KiB of random bytes, flat in one local directory. Ours: "
        + ("`volume upload VOL DIR /remote` (the CLI's directory upload), " if cli_up else
           "(no `volume upload` in this binary), ")
        + "`volume write-batch VOL DIR /remote` (one tar stream, one request), and the same tar stream from "
        "`tar c` piped into `curl -T - POST files/batch`; the server stages the files, syncs them (syncfs) "
        "and publishes them. Each to a new remote directory, removed (untimed) after. Baselines: `tar c` "
        "piped over loopback with `nc -N` into `nc -l | tar x` then `sync -f` (syncfs, as the server does), "
        "timed from the sender's start (the listener is up before) to the receiver's end; and local "
        "`tar c | tar x && sync -f` (the ceiling). `sync` (untimed) before each.",
        f"Medians of {c.runs}, rotated order: " + "; ".join(f"{k} {median(v):.2f} s {spread(v)}" for k, v in t.items())
        + ". Ratio = baseline time / our time (higher is better; no goal in the issue).",
    ]


# ------------------------------------------------------------------------------------ (c) tar.gz archive


def bench_archive(c: Ctx) -> None:
    o = c.ours
    n = 2_000 if c.args.quick else 10_000
    local = c.work / f"small-{n}"
    make_dir(local, n, 4 * KiB)
    remote = "/arch"
    o.cli("volume", "write-batch", VOL, str(local), remote)
    cli_down = o.has_verb("download")
    out = c.work / "archive-out"
    t: Dict[str, List[float]] = {}
    sizes: Dict[str, int] = {}
    srv_cpu: Dict[str, List[float]] = {}

    def keep(name: str, r: Ran, scpu: Optional[float] = None) -> None:
        t.setdefault(name, []).append(r.wall)
        sizes[name] = out.stat().st_size
        if scpu is not None:
            srv_cpu.setdefault(name, []).append(scpu)
        rm(out)

    def ours_curl(fmt: str) -> Callable[[], None]:
        def go() -> None:
            rm(out)
            settle()
            cpu0 = proc_cpu(o.pid)
            r = timed(["curl", "-sSf", "-o", str(out), "-H", o.auth,
                       f"{o.url}/v1/volumes/{VOL}/files/archive?path={remote}&format={fmt}"])
            keep(f"ours GET files/archive?format={fmt} (curl)", r, proc_cpu(o.pid) - cpu0)
        return go

    def ours_cli() -> None:
        rm(out)
        settle()
        cpu0 = proc_cpu(o.pid)
        r = timed([str(o.binary), "volume", "download", VOL, remote, str(out), "--archive", "tar.gz"], env=o.env)
        keep("ours CLI `volume download --archive tar.gz`", r, proc_cpu(o.pid) - cpu0)

    def tar(flags: str, name: str) -> Callable[[], None]:
        def go() -> None:
            rm(out)
            settle()
            keep(name, timed(["tar", flags, str(out), "-C", str(local), "."]))
        return go

    fns = [ours_curl("tar.gz"), tar("-czf", "`tar czf`"), ours_curl("tar"), tar("-cf", "`tar cf`")]
    if cli_down:
        fns.insert(1, ours_cli)
    print(f"archive of {n} files: {c.runs} runs of {len(fns)} variants", flush=True)
    for i in range(c.runs):
        interleave(i, fns)
    c.raw["archive"] = {"times": t, "bytes": sizes, "server_cpu_s": srv_cpu}
    base = median(t["`tar czf`"])
    for v in [v for v in t if v.startswith("ours") and "tar.gz" in v]:
        m = median(t[v])
        c.row(f"tar.gz of {n:,} files of 4 KiB: {v}", f"{m:.2f} s", f"`tar czf` {base:.2f} s",
              f"{base / m:.2f}x", "≥0.7x", "yes" if base / m >= 0.7 else "**no**")
    m, b = median(t["ours GET files/archive?format=tar (curl)"]), median(t["`tar cf`"])
    c.row("tar (no compression) of the same: ours GET format=tar (curl)", f"{m:.2f} s", f"`tar cf` {b:.2f} s",
          f"{b / m:.2f}x", "— (diagnostic)")
    c.notes["archive"] = [
        f"The {n:,}-file directory, written into the volume once (untimed, `write-batch`). Ours: `curl -o FILE` "
        f"of `GET files/archive?path={remote}&format=tar.gz`"
        + (" and the CLI `volume download VOL /arch FILE --archive tar.gz`" if cli_down else "")
        + "; baseline: `tar czf FILE -C DIR .` (GNU tar piping through gzip -6; the server uses flate2's "
        "default level 6, miniz_oxide backend). Diagnostic: `format=tar` against `tar cf`, which separates "
        "walking and reading from compressing. Output written to a file in the work dir; `sync` (untimed) before each.",
        f"Medians of {c.runs}: " + "; ".join(f"{k} {median(v):.2f} s {spread(v)}" for k, v in t.items())
        + ". Output sizes: " + "; ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sizes.items())
        + ". Server CPU seconds per request (median): " + "; ".join(f"{k} {median(v):.2f}" for k, v in srv_cpu.items())
        + ".",
    ]


# ------------------------------------------------------------------------------------ report


def write_md(path: Path, c: Ctx, mach: Dict[str, str], src: str, started: str, loads: List[str],
             versions: str, cmdline: str) -> None:
    lines = [
        "# Issue 5 — Transfers: benchmark figures",
        "",
        f"Measured {started} by `{cmdline}` ({src}). Each figure is a median of {c.runs} runs, ours and "
        "the baseline interleaved in the same run (order rotated per repetition); ratios compare them "
        "(the machine is shared and noisy: absolute numbers move between runs, ratios less).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in mach.items()) + f". Tools: {versions}. "
        f"Load: {' → '.join(loads)}. All data (server data dir, nginx root and temp files, sources, outputs) in "
        "one fresh directory under /work/benchtmp, on one filesystem.",
        "",
        "| what | ours | baseline | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in c.rows]
    lines += ["", "How each was measured:", ""]
    for k in ALL:
        for n in c.notes.get(k, []):
            lines.append(f"- **{k}**: {n}")
    analysis = HERE / "notes" / "issue5-analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 MiB / 2,000 files; does not write bench/notes/issue5.md")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per measurement (default 3)")
    ap.add_argument("--bin", default=str(ROOT / "target/release/nullspace"), help="the nullspace binary")
    ap.add_argument("--workdir-base", default="/work/benchtmp", help="where the run's directory is made")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory")
    ap.add_argument("--out", default=str(HERE / "notes" / "issue5.md"), help="where the figures go")
    ap.add_argument("--no-md", action="store_true", help="print only")
    args = ap.parse_args()
    if args.runs < 3:
        ap.error("--runs must be at least 3 (medians of at least 3)")
    only = args.only.split(",") if args.only else ALL
    for x in only:
        if x not in ALL:
            ap.error(f"unknown benchmark {x!r}; one of {', '.join(ALL)}")
    src_bin = Path(args.bin)
    if not src_bin.exists():
        ap.error(f"{src_bin} not found: cargo build --release -p nullspace-cli")
    ensure_tools()
    Path(args.workdir_base).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="issue5-", dir=args.workdir_base))
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    binary = work / "nullspace"
    shutil.copy2(src_bin, binary)
    for d in ("config", "home"):
        (work / d).mkdir()
    ours, nginx = Ours(binary, work), Nginx(work)
    c = Ctx(args, ours, nginx, work)
    loads = [load_now()]
    print(f"work dir {work}; ours {ours.url}; nginx {nginx.url}", flush=True)
    try:
        ours.start()
        nginx.start()
        if os.stat(ours.data).st_dev != os.stat(nginx.root).st_dev:
            raise RuntimeError("server data dir and nginx root are on different filesystems")
        ours.cli("admin", "tenant", "set-volume-cap", "default", "64GiB")
        ours.cli("volume", "create", VOL)
        c.vol_id = json.loads(ours.cli("volume", "get", VOL, "--json"))["id"]
        for name, fn in (("file", bench_file), ("dir", bench_dir), ("archive", bench_archive)):
            if name in only:
                fn(c)
        loads.append(load_now())
    finally:
        ours.stop()
        nginx.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    curl_v = run_ok(["curl", "--version"]).split()[1]
    tar_v = run_ok(["tar", "--version"]).splitlines()[0].split()[-1]
    versions = f"nginx {nginx.version()}, curl {curl_v}, GNU tar {tar_v}"
    print()
    for r in c.rows:
        print(" | ".join(r))
    cmdline = "python3 bench/transfers.py" + "".join(f" {a}" for a in sys.argv[1:])
    if not args.quick and not args.no_md:
        write_md(Path(args.out), c, machine(Path(args.workdir_base)), source_state(src_bin), started, loads,
                 versions, cmdline)
        (Path(args.out).with_suffix(".json")).write_text(json.dumps(c.raw, indent=1, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
