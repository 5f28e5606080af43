"""The Python SDK's side of bench/typescript.py: the same operations as typescript_worker.mjs."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from nullspace import Volume

op, name, a, b = sys.argv[1:5]
conc = int(sys.argv[5]) if len(sys.argv) > 5 else 1
volume = Volume.from_name(name)
t0 = time.perf_counter()
if op == "write-big":
    with open(a, "rb") as f:
        volume.files.write(b, f)
elif op == "read-big":
    with volume.files.read_stream(a) as s, open(b, "wb") as out:
        for chunk in s:
            out.write(chunk)
elif op == "upload-big":
    volume.files.upload(a, b, resume=False)
elif op == "write-small":
    names = sorted(os.listdir(a))

    def put(n: str) -> None:
        with open(os.path.join(a, n), "rb") as f:
            volume.files.write(f"{b}/{n}", f.read())

    with ThreadPoolExecutor(conc) as ex:
        list(ex.map(put, names))
elif op == "read-small":
    paths = [e.path for e in volume.files.list(a)]

    def get(p: str) -> None:
        with open(os.path.join(b, p.rsplit("/", 1)[1]), "wb") as f:
            f.write(volume.files.read_bytes(p))

    with ThreadPoolExecutor(conc) as ex:
        list(ex.map(get, paths))
else:
    raise SystemExit(f"unknown op {op}")
print(json.dumps({"seconds": time.perf_counter() - t0}))
