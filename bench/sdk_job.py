"""One measured Python SDK job, run by bench/run.py in its own process.

Its own process so that ``ru_maxrss`` is the peak of this job alone. The server URL and key
come from NULLSPACE_API_URL / NULLSPACE_API_KEY. Prints one JSON line:
``{"seconds": ..., "maxrss_kb": ...}``; ``seconds`` covers the measured calls only (not the
interpreter start or the imports).

    python3 sdk_job.py write VOLUME VOLUME_ID REMOTE_PATH LOCAL_FILE
    python3 sdk_job.py read  VOLUME VOLUME_ID REMOTE_PATH OUT_FILE
    python3 sdk_job.py small VOLUME VOLUME_ID MODE N SIZE REMOTE_DIR
        MODE: reuse (one Client), new (a new Client per call), close (one Client, but every
        request says "Connection: close"), raw (http.client keep-alive, no SDK: the baseline)

Diagnostics (plain httpx, to show what the SDK's choices cost):

    python3 sdk_job.py httpx-put VOLUME - REMOTE_PATH LOCAL_FILE chunked|length
    python3 sdk_job.py httpx-get VOLUME - REMOTE_PATH OUT_FILE chunk1m|as-received
    python3 sdk_job.py client-cost - - N
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import sys
import time
import urllib.parse

import nullspace
from nullspace import Client, Volume


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def write(vol: Volume, remote: str, local: str) -> float:
    t = time.perf_counter()
    with open(local, "rb") as f:
        vol.files.write(remote, f)
    return time.perf_counter() - t


def read(vol: Volume, remote: str, out: str) -> float:
    t = time.perf_counter()
    with open(out, "wb") as f, vol.files.read_stream(remote) as chunks:
        for chunk in chunks:
            f.write(chunk)
    return time.perf_counter() - t


def small(name: str, vol_id: str, mode: str, n: int, size: int, remote_dir: str) -> float:
    data = os.urandom(size)
    paths = [f"{remote_dir}/f{i}" for i in range(n)]
    if mode == "reuse":
        vol = Volume(name, vol_id, client=Client())
        vol.files.write(f"{remote_dir}/warm", data)  # connect once before the clock starts
        t = time.perf_counter()
        for p in paths:
            vol.files.write(p, data)
        return time.perf_counter() - t
    if mode == "new":
        t = time.perf_counter()
        for p in paths:
            with Client() as c:
                Volume(name, vol_id, client=c).files.write(p, data)
        return time.perf_counter() - t
    if mode == "close":
        c = Client()
        url = f"/v1/volumes/{name}/files/content"
        hdrs = {"Content-Type": "application/octet-stream", "Connection": "close"}
        t = time.perf_counter()
        for p in paths:
            c.request_json("PUT", url, params={"path": p, "overwrite": True}, content=data, headers=hdrs)
        return time.perf_counter() - t
    if mode == "raw":
        cfg = Client().config
        u = urllib.parse.urlsplit(cfg.url)
        conn = http.client.HTTPConnection(u.hostname, u.port or 80)
        hdrs = {
            "Authorization": f"Bearer {cfg.key}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        base = f"/v1/volumes/{name}/files/content?overwrite=true&path="

        def put(p: str) -> None:
            conn.request("PUT", base + urllib.parse.quote(p, safe="/"), body=data, headers=hdrs)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise SystemExit(f"raw PUT {p}: HTTP {r.status} {body[:200]!r}")
            json.loads(body)  # the SDK decodes the FileStat too

        put(f"{remote_dir}/warm")
        t = time.perf_counter()
        for p in paths:
            put(p)
        return time.perf_counter() - t
    raise SystemExit(f"unknown mode {mode}")


def _httpx() -> "httpx.Client":
    import httpx

    cfg = Client().config
    return httpx.Client(base_url=cfg.url, headers={"Authorization": f"Bearer {cfg.key}"}, timeout=600)


def httpx_put(name: str, remote: str, local: str, mode: str) -> float:
    """The SDK's upload (a generator of 1 MiB reads), sent chunked or with a Content-Length."""
    c = _httpx()
    headers = {"Content-Type": "application/octet-stream"}
    if mode == "length":
        headers["Content-Length"] = str(os.path.getsize(local))
    t = time.perf_counter()
    with open(local, "rb") as f:
        def gen():
            while True:
                b = f.read(1 << 20)
                if not b:
                    return
                yield b
        r = c.put(f"/v1/volumes/{name}/files/content", params={"path": remote}, content=gen(), headers=headers)
        r.raise_for_status()
    return time.perf_counter() - t


def httpx_get(name: str, remote: str, out: str, mode: str) -> float:
    """The SDK's download loop with httpx's 1 MiB re-chunking, or with chunks as received."""
    c = _httpx()
    t = time.perf_counter()
    with open(out, "wb") as f, c.stream("GET", f"/v1/volumes/{name}/files/content", params={"path": remote}) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20) if mode == "chunk1m" else r.iter_bytes():
            f.write(chunk)
    return time.perf_counter() - t


def client_cost(n: int) -> dict:
    import ssl

    t = time.perf_counter()
    for _ in range(n):
        Client().close()
    client = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(n):
        ssl.create_default_context()
    return {"seconds": client, "ssl_context_seconds": (time.perf_counter() - t) / n, "maxrss_kb": _maxrss_kb()}


def main(argv: list[str]) -> None:
    job, name, vol_id = argv[0], argv[1], argv[2]
    if job == "write":
        secs = write(Volume(name, vol_id), argv[3], argv[4])
    elif job == "read":
        secs = read(Volume(name, vol_id), argv[3], argv[4])
    elif job == "httpx-put":
        secs = httpx_put(name, argv[3], argv[4], argv[5])
    elif job == "httpx-get":
        secs = httpx_get(name, argv[3], argv[4], argv[5])
    elif job == "client-cost":
        print(json.dumps(client_cost(int(argv[3]))))
        return
    elif job == "small":
        secs = small(name, vol_id, argv[3], int(argv[4]), int(argv[5]), argv[6])
    else:
        raise SystemExit(f"unknown job {job}")
    print(json.dumps({"seconds": secs, "maxrss_kb": _maxrss_kb(), "sdk": nullspace.__version__}))


if __name__ == "__main__":
    main(sys.argv[1:])
