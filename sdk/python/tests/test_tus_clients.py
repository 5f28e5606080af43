"""The tus endpoint with real tus clients nobody here wrote: tuspy (PyPI) and tus-js-client (npm).

Every upload is interrupted and resumed (the client stopped part-way, or its process killed
with SIGKILL), and the published file's sha256 is compared with the local one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

#: About the wire (the tus protocol, the OpenAPI document, foreign clients), not the SDK surface.
pytestmark = pytest.mark.sync_only
from tusclient import client as tus_client
from tusclient.storage import filestorage

import nullspace

from conftest import Server

MiB = 1024 * 1024
#: tus-js-client is installed here on first use (outside the per-test HOME).
NODE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "nullspace-test-node"
TUS_JS_VERSION = "4.3.1"


def random_file(path: Path, size: int) -> str:
    """Writes `size` random bytes to `path`; returns their sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def remote_sha256(volume: nullspace.Volume, path: str) -> str:
    h = hashlib.sha256()
    with volume.files.read_stream(path) as chunks:
        for c in chunks:
            h.update(c)
    return h.hexdigest()


def tus(server: Server, volume: nullspace.Volume) -> tus_client.TusClient:
    return tus_client.TusClient(
        f"{server.url}/v1/volumes/{volume.name}/uploads",
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )


def head_offset(server: Server, url: str) -> int:
    import httpx

    r = httpx.head(url, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {server.admin_key}"})
    assert r.status_code == 200, r.status_code
    return int(r.headers["upload-offset"])


@pytest.mark.parametrize("size", [0, 1, 5 * MiB])
def test_tuspy_interrupted_and_resumed(server: Server, volume: nullspace.Volume, tmp_path: Path, size: int) -> None:
    local = tmp_path / "f.bin"
    digest = random_file(local, size)
    remote = f"/tuspy/{size}.bin"
    chunk = 1 * MiB
    first = tus(server, volume).uploader(
        str(local), chunk_size=chunk, metadata={"path": remote}, upload_checksum=True
    )
    # Interrupt: stop half-way (for 1 byte: right after creation, before any data).
    stop_at = (size // 2) // chunk * chunk
    if size == 0:
        first.upload()
    else:
        first.set_url(first.create_url())
        if stop_at:
            first.upload(stop_at=stop_at)
        assert head_offset(server, first.url) == stop_at
        assert not volume.files.exists(remote), "an unfinished upload is invisible"
        # Resume with a new uploader that knows only the URL: it asks the server (HEAD).
        second = tus(server, volume).uploader(
            str(local), url=first.url, chunk_size=chunk, metadata={"path": remote}, upload_checksum=True
        )
        assert second.offset == stop_at
        second.upload()
        assert second.offset == size
    st = volume.files.stat(remote)
    assert st.size == size
    assert remote_sha256(volume, remote) == digest
    info = volume.info()
    assert (info.used_bytes, info.file_count) == (size, 1)


# Runs tuspy in its own process, storing the upload URL in a file (tuspy's FileStorage), one
# line per stored chunk, so the parent can SIGKILL it mid-upload.
TUSPY_SCRIPT = textwrap.dedent(
    """
    import sys
    from tusclient import client
    from tusclient.storage import filestorage

    endpoint, key, local, remote, storage = sys.argv[1:6]
    c = client.TusClient(endpoint, headers={"Authorization": "Bearer " + key})
    up = c.uploader(local, chunk_size=4 * 1024 * 1024, metadata={"path": remote},
                    store_url=True, url_storage=filestorage.FileStorage(storage), upload_checksum=True)
    print("start", up.url, up.offset, flush=True)
    size = up.get_file_size()
    while up.offset < size:
        up.upload_chunk()
        print("offset", up.offset, up.url, flush=True)
    print("done", flush=True)
    """
)


def run_tuspy(server: Server, volume: nullspace.Volume, local: Path, remote: str, storage: Path,
              kill_after: Optional[int]) -> List[str]:
    """Runs the script; with `kill_after`, SIGKILLs it once it reports that offset."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TUSPY_SCRIPT, f"{server.url}/v1/volumes/{volume.name}/uploads",
         server.admin_key, str(local), remote, str(storage)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: List[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if kill_after is not None and line.startswith("offset") and int(line.split()[1]) >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=600)
    if kill_after is None:
        assert proc.returncode == 0, lines
    else:
        assert proc.returncode == -signal.SIGKILL
    return lines


def test_tuspy_200mib_killed_and_resumed(server: Server, volume: nullspace.Volume, tmp_path: Path) -> None:
    size = 200 * MiB
    local = tmp_path / "big.bin"
    digest = random_file(local, size)
    storage = tmp_path / "tus-urls.json"
    remote = "/tuspy/big.bin"

    first = run_tuspy(server, volume, local, remote, storage, kill_after=48 * MiB)
    assert first[0] == "start None 0"
    killed_at, url = int(first[-1].split()[1]), first[-1].split()[2]
    assert not volume.files.exists(remote)

    second = run_tuspy(server, volume, local, remote, storage, kill_after=None)
    # The same upload, resumed at the server's durable offset: at least what the client saw
    # acknowledged, at most one more chunk (its response may have been lost with the process),
    # and on a chunk boundary (a chunk cut by the kill fails its checksum and is dropped).
    assert second[0].split()[1] == url
    resumed = int(second[0].split()[2])
    assert killed_at <= resumed <= killed_at + 4 * MiB
    assert resumed % (4 * MiB) == 0
    assert second[-1] == "done"
    assert remote_sha256(volume, remote) == digest
    info = volume.info()
    assert (info.used_bytes, info.file_count) == (size, 1)
    # Nothing of the upload is left in staging once it is published.
    uploads = server.data_dir / "volumes" / volume.id / "staging" / "uploads"
    assert not list(uploads.glob("*.data"))


def test_tuspy_resumes_from_its_url_storage(server: Server, volume: nullspace.Volume, tmp_path: Path) -> None:
    """tuspy's own resumability: a second uploader finds the URL in its storage by fingerprint."""
    local = tmp_path / "f.bin"
    digest = random_file(local, 3 * MiB)
    store = filestorage.FileStorage(str(tmp_path / "store.json"))
    kwargs: Dict[str, object] = dict(
        chunk_size=MiB, metadata={"path": "/tuspy/stored.bin"}, store_url=True, url_storage=store
    )
    up = tus(server, volume).uploader(str(local), **kwargs)
    up.upload(stop_at=MiB)
    again = tus(server, volume).uploader(str(local), **kwargs)
    assert (again.url, again.offset) == (up.url, MiB)
    again.upload()
    assert remote_sha256(volume, "/tuspy/stored.bin") == digest


# ------------------------------------------------------------------------------ tus-js-client


def tus_js_dir() -> Path:
    """tus-js-client installed in a cached node_modules (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: cannot run tus-js-client")
    pkg = NODE_CACHE / "node_modules" / "tus-js-client" / "package.json"
    if pkg.exists() and json.loads(pkg.read_text()).get("version") == TUS_JS_VERSION:
        return NODE_CACHE
    NODE_CACHE.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(NODE_CACHE),
         f"tus-js-client@{TUS_JS_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        out = r.stdout + r.stderr
        if any(s in out for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network")):
            pytest.skip(f"the npm registry is unreachable, cannot install tus-js-client: {out[-300:]}")
        pytest.fail(f"npm install tus-js-client failed:\n{out}")
    return NODE_CACHE


TUS_JS_SCRIPT = textwrap.dedent(
    """
    const tus = require("tus-js-client");
    const fs = require("fs");
    const [endpoint, key, local, remote] = process.argv.slice(2);
    const data = fs.readFileSync(local);
    const options = {
      endpoint,
      headers: { Authorization: "Bearer " + key },
      metadata: { path: remote },
      chunkSize: 1024 * 1024,
      retryDelays: null,
    };
    function run(extra) {
      return new Promise((resolve, reject) => {
        const upload = new tus.Upload(data, {
          ...options,
          ...extra,
          onError: reject,
          onSuccess: () => resolve(upload),
          onChunkComplete: (chunk, sent, total) => {
            if (extra.abortAt && sent >= extra.abortAt) {
              upload.abort().then(() => resolve(upload));
            }
          },
        });
        upload.start();
      });
    }
    (async () => {
      // Interrupted after the first chunks...
      const first = await run({ abortAt: 2 * 1024 * 1024 });
      console.log("aborted " + first.url);
      // ...and resumed by a new Upload that knows only the URL (it asks the server, HEAD).
      const second = await run({ uploadUrl: first.url });
      console.log("done " + second.url);
    })().catch((e) => { console.error("tus-js-client failed: " + e); process.exit(1); });
    """
)


def test_tus_js_client_interrupted_and_resumed(server: Server, volume: nullspace.Volume, tmp_path: Path) -> None:
    node_dir = tus_js_dir()
    local = tmp_path / "js.bin"
    size = 5 * MiB + 123
    digest = random_file(local, size)
    script = node_dir / "tus_upload_test.js"
    script.write_text(TUS_JS_SCRIPT)
    r = subprocess.run(
        ["node", str(script), f"{server.url}/v1/volumes/{volume.name}/uploads", server.admin_key,
         str(local), "/js/upload.bin"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=node_dir,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split()
    assert lines[0] == "aborted" and lines[2] == "done"
    assert lines[1] == lines[3], "the second run continued the same upload"
    assert remote_sha256(volume, "/js/upload.bin") == digest
    assert volume.files.stat("/js/upload.bin").size == size
