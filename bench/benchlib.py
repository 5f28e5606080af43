"""What every benchmark script shares: our server, timed child processes, and the run's facts.

Used by bench/run.py (issues 2 and 3), bench/content.py (issue 4) and bench/transfers.py
(issue 5). Python 3.9+, standard library only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fmt_s(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def free_port() -> int:
    """A loopback port that was free a moment ago (benchmarks run alone, so that is enough)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------ processes


class Ran:
    """One timed command: wall seconds, peak RSS (KiB) and CPU seconds of the child."""

    def __init__(self, wall: float, rss_kb: int, cpu: float) -> None:
        self.wall, self.rss_kb, self.cpu = wall, rss_kb, cpu


def timed(cmd, *, stdout=subprocess.DEVNULL, env=None, shell=False) -> Ran:
    """Runs a command (fails on a non-zero exit); wall time, ru_maxrss and CPU of that child.
    For a shell pipeline ru_maxrss is the largest process of the pipeline."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, shell=shell)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {p.returncode}: {err.strip()[-800:]}")
    return Ran(wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime)


def run_ok(cmd: Sequence[str], env=None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {r.returncode}: {r.stderr.strip()[-800:]}")
    return r.stdout


def proc_status(pid: int) -> Dict[str, int]:
    """VmRSS / VmHWM of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def reset_hwm(pid: int) -> None:
    """Resets VmHWM to the current RSS (proc(5): clear_refs, value 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def settle() -> None:
    """Untimed: write back dirty pages so no measurement pays for the previous one."""
    os.sync()


def interleave(i: int, fns: List[Callable[[], None]]) -> None:
    """Runs every variant once, the order rotated per repetition."""
    k = i % len(fns)
    for fn in fns[k:] + fns[:k]:
        fn()


# ------------------------------------------------------------------------------------ the run


def load_now() -> str:
    la = " ".join(open("/proc/loadavg").read().split()[:3])
    try:
        psi = open("/proc/pressure/cpu").readline().split()[2].split("=")[1]
    except (OSError, IndexError):
        psi = "?"
    return f"loadavg {la}, CPU pressure avg60 {psi}%"


def machine(work: Path) -> Dict[str, str]:
    fs = run_ok(["findmnt", "-no", "FSTYPE,SOURCE,OPTIONS", "-T", str(work)]).split()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "disk": f"{fs[1]} ({fs[0]}{', ' + fs[2] if len(fs) > 2 else ''})",
        "python": platform.python_version(),
    }


def source_state(binary: Path) -> str:
    try:
        head = run_ok(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
        dirty = run_ok(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                        "crates", "sdk"]).strip()
    except (RuntimeError, OSError):
        head, dirty = "?", ""
    h = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    built = dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"tree at commit {head}{' + uncommitted changes in crates/ or sdk/' if dirty else ''} when the run "
            f"started; binary built {built}, sha256 {h}")


def unmount_below(path: Path) -> None:
    """Lazily unmounts every mount at or below `path` (deepest first)."""
    try:
        root = str(path.resolve())
        table = open("/proc/self/mountinfo").read().splitlines()
    except OSError:
        return
    points = {l.split()[4].replace("\\040", " ") for l in table}
    for p in sorted((p for p in points if p == root or p.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], check=False, capture_output=True)


# ------------------------------------------------------------------------------------ our server


class Server:
    """`nullspace server` on a free loopback port, its data dir and log in `work`; the CLI runs
    with this server's URL and key and with its config inside `work`."""

    def __init__(self, binary: Path, work: Path, *, stop_grace: float = 20.0) -> None:
        self.binary = binary
        self.data = work / "data"
        self.key = "nsk_" + secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "server.log", "wb")
        self.proc: Optional[subprocess.Popen] = None
        self.stop_grace = stop_grace
        self.env = dict(os.environ, NULLSPACE_API_URL=self.url, NULLSPACE_API_KEY=self.key,
                        XDG_CONFIG_HOME=str(work / "config"), HOME=str(work / "home"))
        for k in ("NULLSPACE_DATA_DIR", "NULLSPACE_LISTEN", "http_proxy", "HTTP_PROXY"):
            self.env.pop(k, None)

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             str(self.data), "--bootstrap-key", self.key],
            stdout=self.log, stderr=self.log, env=dict(self.env, RUST_LOG="warn"))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}; see {self.log.name}")
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer /v1/health within {timeout:.0f} s")

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Loop-backed volumes stay mounted after the server stops (by design: another server
        # may share the data dir); the run's directory is removed next.
        unmount_below(self.data)

    def cli(self, *args: str) -> str:
        """Runs `nullspace ARGS`; its stdout, or RuntimeError on a non-zero exit."""
        return run_ok([str(self.binary), *args], env=self.env)

    def run(self, *args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess:
        """Runs `nullspace ARGS` whatever its exit code."""
        return subprocess.run([str(self.binary), *args], env=self.env, stdout=stdout,
                              stderr=subprocess.PIPE, check=False)

    def volume_data_dir(self, vol_id: str) -> Path:
        """Where the volume's files are on the server's disk."""
        return self.data / "volumes" / vol_id / "data"
