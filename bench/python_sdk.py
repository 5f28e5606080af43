"""Issue 15/14: the Python SDK — async against threads, and large transfers against the CLI.

    /path/to/venv/bin/python bench/python_sdk.py --binary target/release/nullspace \
        [--size-mib 1024] [--runs 3] [--reads 3200] [--json bench/results/python_sdk.json]

Needs a Python with httpx (the SDK's one dependency); the SDK is imported from sdk/python. One
server (the given binary, a fresh data dir), one volume, and in the same run, interleaved with
rotated order (bench/benchlib.py):

- small reads: 32 files of 4 KiB; ``--reads`` ``read_bytes`` calls in total, made by 32
  concurrent callers — 32 asyncio tasks on one ``nullspace.aio.AsyncClient`` against 32
  threads sharing one ``nullspace.Client`` (each caller reads its own file, sequentially);
- large read: ``files.read_stream(p)`` chunks written to a file, against ``nullspace volume read
  NAME P > file`` (the whole CLI process timed);
- large upload: ``files.upload(local, p, resume=False)`` (tus, no per-chunk checksum: the
  default), and the same with ``checksum=True``, against ``nullspace volume upload NAME local p``.

- diagnostic, no nullspace server: the same ``read_stream`` loop against a minimal HTTP server
  that ``sendfile``s the same file, through the SDK's large-body path (``http.client``) and
  through httpx (h11; what ``read_stream`` used before): what the client side alone costs.

Prints the figures; with ``--json`` writes them in the shape of bench/results/*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk" / "python"))

from benchlib import GiB, MiB, Server, interleave, load_now, machine, median, rm, settle, source_state  # noqa: E402

import nullspace  # noqa: E402
from nullspace import aio  # noqa: E402

CALLERS = 32


def fmt_rate(n: int, s: float) -> str:
    return f"{n / s / 1e9:.2f} GB/s"


def small_sync(vol: nullspace.Volume, paths: List[str], reads: int) -> float:
    per = reads // len(paths)

    def caller(p: str) -> None:
        for _ in range(per):
            vol.files.read_bytes(p)

    with ThreadPoolExecutor(len(paths)) as pool:
        t = time.perf_counter()
        list(pool.map(caller, paths))
        return time.perf_counter() - t


def small_async(url: str, key: str, name: str, vid: str, paths: List[str], reads: int) -> float:
    per = reads // len(paths)

    async def main() -> float:
        async with aio.AsyncClient(url, key) as client:
            vol = aio.AsyncVolume(name, vid, client=client)
            await vol.files.read_bytes(paths[0])  # connect before the clock starts

            async def caller(p: str) -> None:
                for _ in range(per):
                    await vol.files.read_bytes(p)

            t = time.perf_counter()
            await asyncio.gather(*(caller(p) for p in paths))
            return time.perf_counter() - t

    return asyncio.run(main())


SENDFILE_SERVER = r"""
import os, socket, sys, threading
path = sys.argv[1]
size = os.path.getsize(path)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
def serve(c):
    with c, open(path, "rb") as f:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf.split(b"\r\n\r\n", 1)[1]
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            f.seek(0)
            c.sendfile(f)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


def client_paths(src: Path, runs: int, size: int) -> Dict[str, List[float]]:
    """read_stream through http.client and through httpx, from a sendfile server."""
    import httpx

    proc = subprocess.Popen([sys.executable, "-c", SENDFILE_SERVER, str(src)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        fast = nullspace.Volume("diag", "vol_diag", client=nullspace.Client(url, "k"))
        slow = nullspace.Volume("diag", "vol_diag", client=nullspace.Client(url, "k", transport=httpx.HTTPTransport()))
        out: Dict[str, List[float]] = {"http.client": [], "httpx": []}

        def reader(name: str, vol: nullspace.Volume) -> Callable[[], None]:
            def run() -> None:
                s = time.perf_counter()
                n = 0
                with open(os.devnull, "wb") as f, vol.files.read_stream("/x") as chunks:
                    for chunk in chunks:
                        f.write(chunk)
                        n += len(chunk)
                assert n == size
                out[name].append(time.perf_counter() - s)
            return run

        for i in range(runs):
            interleave(i, [reader("http.client", fast), reader("httpx", slow)])
        return out
    finally:
        proc.kill()
        proc.wait()


def timed_cli(cmd: List[str], env: Dict[str, str], stdout: object = subprocess.DEVNULL) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=Path, required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reads", type=int, default=3200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="nullspace-pysdk-", dir=os.environ.get("TMPDIR")))
    facts = {"machine": machine(work), "source": source_state(args.binary), "load_before": load_now()}
    srv = Server(args.binary.resolve(), work)
    srv.start()
    try:
        srv.cli("volume", "create", "py")
        srv.cli("volume", "create", "up")  # uploads go to a volume of their own (the cap is 2 GiB)
        client = nullspace.Client(srv.url, srv.key)
        vol = nullspace.Volume.from_name("py", client=client)
        up = nullspace.Volume.from_name("up", client=client)
        paths = [f"/small/f{i}" for i in range(CALLERS)]
        for p in paths:
            vol.files.write(p, os.urandom(4096))
        small_sync(vol, paths, CALLERS)  # warm: every thread's connection made
        t: Dict[str, List[float]] = {k: [] for k in (
            "async 32 tasks", "sync 32 threads", "sdk read_stream", "cli read",
            "sdk upload", "sdk upload checksum", "cli upload")}

        def run_small_sync() -> None:
            t["sync 32 threads"].append(small_sync(vol, paths, args.reads))

        def run_small_async() -> None:
            t["async 32 tasks"].append(small_async(srv.url, srv.key, "py", vol.id, paths, args.reads))

        for i in range(args.runs):
            interleave(i, [run_small_sync, run_small_async])

        src = work / "src.bin"
        with open(src, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        srv.cli("volume", "write", "py", "/big", "--from", str(src))
        out = work / "out.bin"

        def sdk_read() -> None:
            settle()
            s = time.perf_counter()
            with open(out, "wb") as f, vol.files.read_stream("/big") as chunks:
                for chunk in chunks:
                    f.write(chunk)
            t["sdk read_stream"].append(time.perf_counter() - s)
            assert out.stat().st_size == size
            rm(out)

        def cli_read() -> None:
            settle()
            with open(out, "wb") as f:
                t["cli read"].append(timed_cli([str(args.binary), "volume", "read", "py", "/big"], srv.env, f))
            assert out.stat().st_size == size
            rm(out)

        def upload(checksum: bool) -> Callable[[], None]:
            def run() -> None:
                settle()
                s = time.perf_counter()
                up.files.upload(src, "/up-sdk", resume=False, checksum=checksum)
                t["sdk upload checksum" if checksum else "sdk upload"].append(time.perf_counter() - s)
                up.files.remove("/up-sdk")
            return run

        def cli_upload() -> None:
            settle()
            t["cli upload"].append(timed_cli([str(args.binary), "volume", "upload", "up", str(src), "/up-cli"], srv.env))
            up.files.remove("/up-cli")

        for i in range(args.runs):
            interleave(i, [sdk_read, cli_read])
        for i in range(args.runs):
            interleave(i, [upload(False), cli_upload, upload(True)])
        client.close()
        diag = client_paths(src, args.runs, size)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    facts["load_after"] = load_now()
    m = {k: median(v) for k, v in t.items()}
    reads = (args.reads // CALLERS) * CALLERS
    a_rate, s_rate = reads / m["async 32 tasks"], reads / m["sync 32 threads"]
    gib = f"{size >> 30} GiB" if size >= GiB else f"{size >> 20} MiB"
    figures = [
        {"subsystem": "SDK", "what": f"32 concurrent `read_bytes` of 4 KiB files ({reads} reads): `nullspace.aio`, 32 tasks, one AsyncClient",
         "ours": f"{a_rate:,.0f} reads/s", "baseline": f"sync SDK, 32 threads, one Client: {s_rate:,.0f} reads/s",
         "ratio": f"{a_rate / s_rate:.2f}x", "goal": "— (issue 15: measured)", "met": "—"},
        {"subsystem": "SDK", "what": f"`files.read_stream(p)` → file, {gib}",
         "ours": fmt_rate(size, m["sdk read_stream"]), "baseline": f"CLI `volume read` {fmt_rate(size, m['cli read'])}",
         "ratio": f"{m['cli read'] / m['sdk read_stream']:.2f}x", "goal": "≥0.9x",
         "met": "yes" if m["cli read"] / m["sdk read_stream"] >= 0.9 else "**no**"},
        {"subsystem": "SDK", "what": f"`files.upload(f, p)` (tus, no per-chunk checksum), {gib}",
         "ours": fmt_rate(size, m["sdk upload"]), "baseline": f"CLI `volume upload` {fmt_rate(size, m['cli upload'])}",
         "ratio": f"{m['cli upload'] / m['sdk upload']:.2f}x", "goal": "— (issue 14: as the CLI, no checksums)",
         "met": "—"},
        {"subsystem": "SDK", "what": f"`files.upload(f, p, checksum=True)` (sha256 per 16 MiB chunk), {gib}",
         "ours": fmt_rate(size, m["sdk upload checksum"]), "baseline": f"the default upload {fmt_rate(size, m['sdk upload'])}",
         "ratio": f"{m['sdk upload'] / m['sdk upload checksum']:.2f}x", "goal": "— (what the old default cost)", "met": "—"},
    ]
    d_fast, d_slow = median(diag["http.client"]), median(diag["httpx"])
    figures.append(
        {"subsystem": "SDK", "what": f"diagnostic: `read_stream` → /dev/null from a bare sendfile HTTP server, {gib}: the large-body path (http.client)",
         "ours": fmt_rate(size, d_fast), "baseline": f"httpx/h11 (the old path) {fmt_rate(size, d_slow)}",
         "ratio": f"{d_slow / d_fast:.2f}x", "goal": "— (client cost alone)", "met": "—"})
    t.update({f"diag {k}": v for k, v in diag.items()})
    for f in figures:
        print(f"{f['what']}: {f['ours']} vs {f['baseline']} = {f['ratio']}")
    print(json.dumps({"raw_seconds": t, "facts": facts}, indent=1))
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "crates", "sdk"],
                                    capture_output=True, text=True).stdout.strip())
        doc = {
            "bench": "python_sdk",
            "order": 46,
            "command": f"python bench/python_sdk.py --binary {args.binary} --size-mib {args.size_mib} --runs {args.runs} --reads {args.reads}",
            "measured": {"date": dt.date.today().isoformat(), "commit": commit, "dirty": dirty, "commit_is": "built"},
            "attribution": f"{facts['source']}; {facts['load_before']} before, {facts['load_after']} after",
            "code_paths": ["crates/api/src", "crates/node/src", "crates/volumes/src", "crates/cli/src",
                           "crates/client/src", "sdk/python/nullspace"],
            "notes": "bench/notes/issue15-python.md",
            "figures": figures,
        }
        args.json.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
