"""Test fixtures: a real `nullspace server` per test session, clients, tenants and volumes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest

import nullspace
from nullspace import _client, aio

from blocking import Portal, blocking_sdk, close_client, sync_sdk

# tests/ -> python/ -> sdk/ -> repository root
REPO_ROOT = Path(__file__).resolve().parents[3]


def server_binary() -> Path:
    """`$NULLSPACE_BIN`, else the debug build in the repository's target dir."""
    env = os.environ.get("NULLSPACE_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "nullspace"


class TestDatabase:
    """With NULLSPACE_TEST_STATE=postgres, a fresh PostgreSQL database for the server's control
    plane: created with psql on NULLSPACE_TEST_PG_URL (default: the local server, trust auth),
    dropped (WITH (FORCE)) afterwards. Otherwise the server keeps SQLite in its data dir."""

    def __init__(self) -> None:
        self.admin_url = os.environ.get("NULLSPACE_TEST_PG_URL") or "postgres://root@127.0.0.1:5432/postgres"
        self.name = f"nstest_py_{os.getpid()}_{secrets.token_hex(6)}"
        scheme, rest = self.admin_url.split("://", 1)
        authority = rest.split("/", 1)[0].split("?", 1)[0]
        self.url = f"{scheme}://{authority}/{self.name}"

    @staticmethod
    def selected() -> bool:
        return os.environ.get("NULLSPACE_TEST_STATE", "").strip() == "postgres"

    def _psql(self, sql: str) -> None:
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.admin_url, "-c", sql],
            check=True,
            stdin=subprocess.DEVNULL,
        )

    def create(self) -> None:
        self._psql(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def unmount_all_below(root: Path) -> None:
    """Detaches (MNT_DETACH) every mount at or below `root`, deepest first. The server mounts
    each volume's file system (loop backend) in the host's mount namespace and leaves it mounted
    when it stops; without this the temp dir could not be removed and loop devices would leak."""
    import ctypes

    base = str(root.resolve())
    try:
        table = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return
    points = {
        line.split(" ")[4].replace("\\040", " ")
        for line in table.splitlines()
        if len(line.split(" ")) > 4
    }
    mine = [p for p in points if p == base or p.startswith(base + "/")]
    libc = ctypes.CDLL(None, use_errno=True)
    for p in sorted(mine, key=len, reverse=True):
        libc.umount2(p.encode(), 2)  # MNT_DETACH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _written_url(data_dir: Path) -> str:
    """The URL in the server's ``client.json``, or "" while it has not written one."""
    try:
        doc = json.loads((data_dir / "client.json").read_text())
    except (OSError, ValueError):
        return ""
    url = doc.get("url", "") if isinstance(doc, dict) else ""
    return url if isinstance(url, str) else ""


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    proc: "subprocess.Popen[bytes]"
    log: Path

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"})

    def create_tenant(self, name: Optional[str] = None, cap_bytes: Optional[int] = None) -> str:
        """Creates a tenant with the admin API and returns its key."""
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        with self.admin() as http:
            r = http.post("/v1/admin/tenants", json={"name": name})
            assert r.status_code == 201, r.text
            key = r.json()["key"]
            if cap_bytes is not None:
                r = http.put(f"/v1/admin/tenants/{name}/volume-cap", json={"cap_bytes": cap_bytes})
                assert r.status_code == 200, r.text
        assert isinstance(key, str)
        return key


@contextlib.contextmanager
def start_server(root: Path) -> Iterator[Server]:
    """Starts `nullspace server` on port 0 with its data under `root` (and, when selected, a
    fresh PostgreSQL database); stops it and cleans up at the end."""
    binary = server_binary()
    if not binary.exists():
        pytest.skip(f"server binary not found at {binary}: run `cargo build -p nullspace-cli` or set NULLSPACE_BIN")
    data_dir = root / "server-data"
    data_dir.mkdir(parents=True)
    log = root / "server.log"
    key = "nsk_" + secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NULLSPACE_")}
    env.setdefault("RUST_LOG", "info")
    database = TestDatabase() if TestDatabase.selected() else None
    database_args: list[str] = []
    if database is not None:
        database.create()
        database_args = ["--database-url", database.url]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--bootstrap-key", key, *database_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            # The server writes its URL once it has bound port 0; until then there is none.
            url = _written_url(data_dir)
            if url:
                try:
                    r = httpx.get(f"{url}/v1/health", timeout=2)
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /v1/health within 60 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Server(url=url, admin_key=key, data_dir=data_dir, proc=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        unmount_all_below(data_dir)
        if database is not None:
            database.drop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("server")) as s:
        yield s


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No test sees the developer's real configuration; the default client is fresh."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("NULLSPACE_API_URL", "NULLSPACE_API_KEY", "NULLSPACE_DATA_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    _client.reset_default_client()
    aio.reset_default_client()
    yield home
    _client.reset_default_client()
    aio.reset_default_client()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sync_only: the test is about the sync client or the wire, not the SDK surface"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the SDK (the `sdk`, `client`, `volume` or `tenant_client`
    fixtures) runs twice: over the sync SDK and over the async one (`nullspace.aio`)."""
    if "sdk" in metafunc.fixturenames:
        flavours = ["sync"] if metafunc.definition.get_closest_marker("sync_only") else ["sync", "async"]
        # NULLSPACE_TEST_SDK=sync (scripts/test.sh's PostgreSQL pass, which tests the server's
        # engine, not the SDK) narrows the run.
        wanted = [f for f in os.environ.get("NULLSPACE_TEST_SDK", "").split(",") if f]
        flavours = [f for f in flavours if not wanted or f in wanted]
        metafunc.parametrize("sdk", flavours, indirect=True, scope="session")


@pytest.fixture(scope="session")
def portal() -> Iterator[Portal]:
    """An event loop on a thread, for the async SDK."""
    p = Portal()
    yield p
    p.close()


@pytest.fixture(scope="session")
def sdk(request: pytest.FixtureRequest) -> Any:
    """The SDK under test: the `nullspace` module, or the same names over `nullspace.aio`
    (`sdk.Volume` is then `AsyncVolume`, each call awaited; see tests/blocking.py)."""
    if request.param == "sync":
        return sync_sdk()
    return blocking_sdk(request.getfixturevalue("portal"))


@pytest.fixture(scope="session")
def client(server: Server, sdk: Any) -> Iterator[nullspace.Client]:
    """A client of the default tenant (whose key is the admin key), of the SDK under test."""
    with sdk.Client(server.url, server.admin_key, retry_backoff=0.05) as c:
        yield c


def unique_name(prefix: str = "v") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def volume(client: nullspace.Client, sdk: Any) -> Iterator[nullspace.Volume]:
    """A fresh empty volume, deleted after the test."""
    v = sdk.Volume.create(unique_name(), client=client)
    yield v
    sdk.Volume.delete(v.name, if_exists=True, client=client)


@pytest.fixture
def tenant_client(server: Server, sdk: Any) -> Iterator[Callable[..., nullspace.Client]]:
    """Factory: a client of a new tenant (optionally with a default volume cap)."""
    made = []

    def make(cap_bytes: Optional[int] = None) -> nullspace.Client:
        key = server.create_tenant(cap_bytes=cap_bytes)
        c: nullspace.Client = sdk.Client(server.url, key, retry_backoff=0.05)
        made.append(c)
        return c

    yield make
    for c in made:
        close_client(getattr(sdk, "portal", None), c)
