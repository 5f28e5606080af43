"""The volume half of the SPEC's quick example, verbatim, configured by environment variables."""

from __future__ import annotations

import os

from typing import Any

import pytest

from conftest import Server


def test_quick_example_volume_half(sdk: Any, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)

    from nullspace import Volume

    volume = sdk.Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\n")

    assert volume.files.read("/hello.txt").strip() == "persistent"
    assert sdk.Volume.from_name("team-data").id == volume.id
    mount = volume.mount("/workspace/shared")
    assert mount.path == "/workspace/shared" and mount.volume == "team-data"
    sdk.Volume.delete("team-data")


def test_quick_example_verbatim(sdk: Any, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)

    from nullspace import Sandbox, Volume

    volume = sdk.Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\n")

    with sdk.Sandbox.create(volumes=[volume.mount("/workspace/shared")]) as sandbox:
        print(sandbox.files.read("/workspace/shared/hello.txt").strip())

    assert capsys.readouterr().out == "persistent\n"
    assert sdk.Sandbox.list() == []


@pytest.mark.skipif(not os.path.isfile("/usr/bin/runsc"), reason="runsc is not installed (apt-get install runsc)")
def test_quick_example_verbatim_with_runtime_gvisor(
    sdk: Any,
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)

    from nullspace import Sandbox, Volume

    volume = sdk.Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\n")

    with sdk.Sandbox.create(volumes=[volume.mount("/workspace/shared")], runtime="gvisor") as sandbox:
        print(sandbox.files.read("/workspace/shared/hello.txt").strip())
        assert sandbox.info().runtime == "gvisor"

    assert capsys.readouterr().out == "persistent\n"
    assert sdk.Sandbox.list() == []


def test_sandbox_sdk_surface(sdk: Any, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)

    from nullspace import NotFoundError, Sandbox, Volume, VolumeInUseError

    vol = sdk.Volume.from_name("sdk-data", create_if_missing=True)
    extra = sdk.Volume.from_name("sdk-extra", create_if_missing=True)
    with sdk.Sandbox.create(volumes=[vol.mount("/data")], env={"GREETING": "hi"}) as sb:
        assert sdk.Sandbox.connect(sb.id).id == sb.id
        assert [s.id for s in sdk.Sandbox.list()] == [sb.id]
        r = sb.exec("echo $GREETING > /data/out.txt; echo done; echo err >&2; exit 4")
        assert (r.stdout, r.stderr, r.exit_code) == ("done\n", "err\n", 4)
        assert vol.files.read("/out.txt") == "hi\n"
        assert sb.exec(["cat"], stdin="piped").stdout == "piped"
        assert sb.exec(["pwd"], cwd="/tmp").stdout == "/tmp\n"
        sb.files.write("/tmp/x.txt", "inside")
        assert sb.files.read("/tmp/x.txt") == "inside"
        assert "x.txt" in [e["name"] for e in sb.files.list("/tmp")]
        a = sb.volumes.attach(extra.mount("/extra", read_only=True))
        assert (a.state, a.read_only, a.volume) == ("mounted", True, "sdk-extra")
        assert sorted(x.mount_path for x in sb.volumes.list()) == ["/data", "/extra"]
        assert sb.volumes.detach("/extra").state == "released"
        with pytest.raises(VolumeInUseError):
            sdk.Volume.delete("sdk-data")
        assert sb.pause().state == "paused"
        assert sb.resume().state == "running"
        fork = sb.fork()
        assert fork.exec(["cat", "/data/out.txt"]).stdout == "hi\n"
        fork.destroy()
    with pytest.raises(NotFoundError):
        sdk.Sandbox.connect(sb.id)
    sdk.Volume.delete("sdk-data")
    sdk.Volume.delete("sdk-extra")
