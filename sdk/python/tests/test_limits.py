"""Sandbox limits through the SDK (issue 11): ``Sandbox.create(cpu=, memory=, disk=)``,
``SandboxInfo.cpu/memory_bytes/disk_bytes/pids``, ``ExecResult.oom_killed``, bad values as
``InvalidArgumentError`` naming the field, and a tenant at its limit as
``ResourceExhaustedError`` naming the limit — against the real server and runtime."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pytest

import nullspace
from nullspace import Sandbox

from conftest import Server, unique_name

MIB = 1 << 20
GIB = 1 << 30


@pytest.fixture
def made() -> Iterator[List[Sandbox]]:
    sandboxes: List[Sandbox] = []
    yield sandboxes
    for sb in sandboxes:
        try:
            sb.destroy()
        except nullspace.NotFoundError:
            pass


def set_limits(server: Server, tenant: str, body: Dict[str, Any]) -> Dict[str, Any]:
    with server.admin() as http:
        r = http.put(f"/v1/admin/tenants/{tenant}/limits", json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert isinstance(doc, dict)
        return doc


def test_requested_limits_and_defaults_show_in_the_info(sdk: Any, client: nullspace.Client, made: List[Sandbox]) -> None:
    sb = sdk.Sandbox.create(cpu=0.5, memory="256MiB", disk=GIB, client=client)
    made.append(sb)
    info = sb.info()
    assert info.cpu == 0.5
    assert info.memory_bytes == 256 * MIB
    assert info.disk_bytes == GIB
    assert info.pids == 1024
    plain = sdk.Sandbox.create(client=client)
    made.append(plain)
    info = plain.info()
    assert (info.cpu, info.memory_bytes, info.disk_bytes) == (1.0, GIB, 4 * GIB)
    listed = [s for s in sdk.Sandbox.list(client=client) if s.id == sb.id]
    assert listed and listed[0].memory_bytes == 256 * MIB
    out = sb.exec("echo hi")
    assert out.stdout == "hi\n"
    assert out.oom_killed is False


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cpu": 0}, "cpu"),
        ({"cpu": -1.5}, "cpu"),
        ({"memory": 0}, "memory"),
        ({"memory": "lots"}, "memory"),
        ({"memory": "1MiB"}, "memory"),
        ({"disk": -1}, "disk"),
        ({"disk": "1.5GiB"}, "disk"),
    ],
)
def test_bad_values_are_invalid_argument_naming_the_field(
    sdk: Any,
    client: nullspace.Client, kwargs: Dict[str, Any], field: str
) -> None:
    before = len(sdk.Sandbox.list(client=client))
    with pytest.raises(nullspace.InvalidArgumentError) as e:
        sdk.Sandbox.create(client=client, **kwargs)
    assert field in str(e.value)
    assert len(sdk.Sandbox.list(client=client)) == before


def test_wrong_types_are_refused_before_sending(sdk: Any, client: nullspace.Client) -> None:
    with pytest.raises(TypeError):
        sdk.Sandbox.create(cpu="1", client=client)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sdk.Sandbox.create(memory=1.5, client=client)  # type: ignore[arg-type]


def test_a_tenant_at_its_limit_is_resource_exhausted(sdk: Any, server: Server, made: List[Sandbox]) -> None:
    name = unique_name("t")
    key = server.create_tenant(name=name)
    limits = set_limits(server, name, {"max_sandboxes": 1, "max_sandbox_memory": "64MiB"})
    assert limits["max_sandboxes"] == 1 and limits["max_sandbox_memory"] == 64 * MIB
    with sdk.Client(server.url, key, retry_backoff=0.05) as c:
        with pytest.raises(nullspace.InvalidArgumentError) as bad:
            sdk.Sandbox.create(memory="128MiB", client=c)
        assert "max_sandbox_memory" in str(bad.value)
        sb = sdk.Sandbox.create(memory="32MiB", client=c)
        made.append(sb)
        with pytest.raises(nullspace.ResourceExhaustedError) as full:
            sdk.Sandbox.create(memory="32MiB", client=c)
        assert "max_sandboxes" in str(full.value)
        assert full.value.retryable is False
        with pytest.raises(nullspace.ResourceExhaustedError):
            sb.fork()
        assert [s.id for s in sdk.Sandbox.list(client=c)] == [sb.id]
        sb.destroy()
        made.remove(sb)
