#!/usr/bin/env python3
"""Authentication cost per request (issue 17): requests per second of `GET /v1/whoami` and of
a 4 KiB read, on a server whose store holds 10 keys (the baseline: today's figure, the same
build) and on one whose store holds 100,000, side by side in one run.

    python3 bench/auth.py [--binary target/release/nullspace] [--rounds 5] [--seconds 3]
                          [--threads 4] [--keys 100000] [--write]

Both servers are the same binary on SQLite (the default control plane), each in its own data
dir. The 10-key store is the bootstrap key and 9 keys made through the API (`POST /v1/keys`);
the 100,000-key store gets 99,990 more rows inserted in bulk, in one transaction, straight
into its SQLite file (`api_keys`, the columns the server writes, each with a random secret's
SHA-256 and lookup id), while the server runs. Each round measures every (store, request)
pair for `--seconds` with `--threads` client threads on keep-alive connections, in rotated
order; the figures are medians over rounds. `--write` puts the headline rows in
bench/results/auth.json (commit, build, date). Standard library only."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, Server  # noqa: E402


def api(s: Server, method: str, path: str, body: bytes = b"", ctype: str = "application/json") -> bytes:
    req = urllib.request.Request(f"{s.url}{path}", data=body if method != "GET" else None,
                                 method=method,
                                 headers={"Authorization": f"Bearer {s.key}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def now_text(t: dt.datetime) -> str:
    """The server's SQLite timestamp form: RFC 3339, microseconds, `Z`."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bulk_insert(db: Path, n: int) -> float:
    """Inserts `n` member keys of the default tenant; seconds taken."""
    con = sqlite3.connect(str(db), timeout=60)
    (tenant,) = con.execute("SELECT id FROM tenants WHERE name = 'default'").fetchone()
    created = now_text(dt.datetime.now(dt.timezone.utc))
    rows = []
    for _ in range(n):
        key = "nsk_" + secrets.token_hex(24)
        h = hashlib.sha256(key.encode()).hexdigest()
        rows.append(("key_" + secrets.token_hex(8), tenant, h[:16], h, 0, created, None,
                     "member", key[:12]))
    t = time.perf_counter()
    with con:
        con.executemany(
            "INSERT INTO api_keys (id, tenant_id, lookup_id, key_hash, admin, created_at, name,"
            " role, prefix) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    took = time.perf_counter() - t
    (count,) = con.execute("SELECT COUNT(*) FROM api_keys").fetchone()
    con.close()
    assert count >= n, count
    return took


def load(s: Server, path: str, seconds: float, threads: int) -> float:
    """Requests per second of GET `path` with `threads` keep-alive clients for `seconds`."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads
    errors: List[str] = []

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        hdrs = {"Authorization": f"Bearer {s.key}"}
        n = 0
        while time.perf_counter() < stop:
            conn.request("GET", path, headers=hdrs)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(f"{path}: {r.status}")
                return
            n += 1
        counts[i] = n
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts) / took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.environ.get("NULLSPACE_BIN", "target/release/nullspace"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--write", action="store_true", help="write bench/results/auth.json")
    a = ap.parse_args()
    binary = Path(a.binary).resolve()
    work = Path(tempfile.mkdtemp(prefix="auth-bench"))
    servers: Dict[int, Server] = {}
    inserted_s = 0.0
    try:
        for n in (10, a.keys):
            (work / str(n)).mkdir()
            s = Server(binary, work / str(n))
            s.start()
            servers[n] = s
            api(s, "POST", "/v1/volumes", json.dumps({"name": "v"}).encode())
            api(s, "PUT", "/v1/volumes/v/files/content?path=/f", b"x" * 4096, "application/octet-stream")
            for _ in range(9):
                api(s, "POST", "/v1/keys", json.dumps({"role": "member"}).encode())
            if n > 10:
                inserted_s = bulk_insert(s.data / "nullspace.db", n - 10)
        paths = {"whoami": "/v1/whoami", "read 4 KiB": "/v1/volumes/v/files/content?path=/f"}
        pairs: List[Tuple[int, str]] = [(n, w) for n in servers for w in paths]
        got: Dict[Tuple[int, str], List[float]] = {p: [] for p in pairs}
        for r in range(a.rounds):
            order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
            for n, w in order:
                got[(n, w)].append(load(servers[n], paths[w], a.seconds, a.threads))
    finally:
        for s in servers.values():
            s.stop()
    med = {p: statistics.median(v) for p, v in got.items()}
    print(f"| request | {10} keys (baseline) | {a.keys:,} keys | ratio |")
    print("|---|---|---|---|")
    rows = []
    for w in paths:
        base, big = med[(10, w)], med[(a.keys, w)]
        print(f"| {w} | {base:,.0f} req/s | {big:,.0f} req/s | {big / base:.2f}x |")
        rows.append((w, base, big))
    print(f"\nrounds {a.rounds} x {a.seconds:g} s per pair, {a.threads} client threads; "
          f"{a.keys - 10:,} keys inserted in {inserted_s:.1f} s; raw: "
          + json.dumps({f"{n} {w}": [round(x) for x in v] for (n, w), v in got.items()}))
    if a.write:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "crates"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        build = "release" if "release" in binary.parts else "debug"
        doc = {
            "bench": "auth",
            "order": 80,
            "command": f"python3 bench/auth.py --binary {a.binary} --write",
            "measured": {"date": dt.date.today().isoformat(), "commit": commit, "dirty": dirty,
                         "commit_is": "built"},
            "attribution": f"built from this commit ({build} build) in the worktree of issue 17",
            "code_paths": ["crates/api/src/auth.rs", "crates/node/src/tenants.rs",
                           "crates/state/src/store.rs", "crates/state/src/keys.rs"],
            "notes": "bench/notes/issue17-auth.md",
            "figures": [
                {"subsystem": "control plane",
                 "what": f"{w}: requests/s with {a.keys:,} keys in the store ({build} build, "
                         f"{a.threads} clients)",
                 "ours": f"{big:,.0f} req/s", "baseline": f"10 keys: {base:,.0f} req/s",
                 "ratio": f"{big / base:.2f}x", "goal": "—", "met": "—"}
                for w, base, big in rows
            ],
        }
        out = ROOT / "bench" / "results" / "auth.json"
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
