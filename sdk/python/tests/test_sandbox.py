"""Sandbox exec options (env, cwd, stdin, timeout) and the sandbox lifetime timeout through
the SDK, against the real server and runtime."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

import nullspace
from nullspace import Sandbox


@pytest.fixture
def sandbox(sdk: Any, client: nullspace.Client) -> Iterator[Sandbox]:
    sb = sdk.Sandbox.create(client=client)
    try:
        yield sb
    finally:
        try:
            sb.destroy()
        except nullspace.NotFoundError:
            pass


def test_exec_env_cwd_and_stdin(sandbox: Sandbox) -> None:
    r = sandbox.exec(["sh", "-c", "echo $A; pwd; cat"], env={"A": "1"}, cwd="/tmp", stdin="in\n")
    assert (r.stdout, r.stderr, r.exit_code, r.timed_out) == ("1\n/tmp\nin\n", "", 0, False)
    # A string runs through `sh -c`; the sandbox's own view is what `files` sees.
    sandbox.files.write("/tmp/f.txt", "x")
    assert sandbox.exec("cat /tmp/f.txt && exit 3").stdout == "x"
    assert sandbox.exec("exit 3").exit_code == 3


def test_exec_binary_output_round_trips_and_a_flood_is_cut(sandbox: Sandbox) -> None:
    data = bytes(range(256)) * 64
    sandbox.files.write("/tmp/bin", data)
    r = sandbox.exec("cat /tmp/bin; printf 'caf\\303\\251\\n' >&2")
    assert (r.stdout, r.stdout_bytes, r.truncated) == ("", data, False)
    assert r.stdout_base64 is not None
    assert (r.stderr, r.stderr_bytes, r.stderr_base64) == ("café\n", "café\n".encode(), None)
    # 64 MiB of NUL bytes: cut to the answer's 8 MiB budget (base64), flagged.
    r = sandbox.exec("head -c 67108864 /dev/zero")
    assert r.truncated
    assert 0 < len(r.stdout_bytes) <= 6 << 20
    assert r.stdout_bytes == bytes(len(r.stdout_bytes))


def test_exec_timeout_kills_the_command(sandbox: Sandbox) -> None:
    r = sandbox.exec("echo started; sleep 60", timeout=1)
    assert r.timed_out
    assert r.exit_code != 0
    assert r.stdout == "started\n"
    # The sandbox is fine afterwards, and a command that ends in time is not affected.
    r = sandbox.exec(["echo", "ok"], timeout=30)
    assert (r.stdout, r.timed_out, r.exit_code) == ("ok\n", False, 0)
    for bad in (0, -1):
        with pytest.raises(nullspace.InvalidArgumentError, match="timeout"):
            sandbox.exec(["true"], timeout=bad)


def test_sandbox_timeout_destroys_it(sdk: Any, client: nullspace.Client) -> None:
    with pytest.raises(nullspace.InvalidArgumentError, match="timeout"):
        sdk.Sandbox.create(timeout=0, client=client)
    sb = sdk.Sandbox.create(timeout=2, client=client)
    try:
        info = sb.info()
        assert info.timeout == 2
        assert info.expires_at is not None and info.created_at is not None
        assert (info.expires_at - info.created_at).total_seconds() == 2
        assert info.server_id
        # Waits for the expiry (bounded; not a timing assertion).
        deadline = time.monotonic() + 60
        while True:
            try:
                sb.info()
            except nullspace.NotFoundError:
                break
            assert time.monotonic() < deadline, "sandbox not destroyed a minute after its timeout"
            time.sleep(0.2)
        assert sb.id not in [s.id for s in sdk.Sandbox.list(client=client)]
    finally:
        try:
            sb.destroy()
        except nullspace.NotFoundError:
            pass
