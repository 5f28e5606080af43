"""The volume half of the SPEC's quick example, verbatim, configured by environment variables."""

from __future__ import annotations

import pytest

from conftest import Server


def test_quick_example_volume_half(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)

    from nullspace import Volume

    volume = Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\n")

    assert volume.files.read("/hello.txt").strip() == "persistent"
    assert Volume.from_name("team-data").id == volume.id
    mount = volume.mount("/workspace/shared")
    assert mount.path == "/workspace/shared" and mount.volume == "team-data"
    Volume.delete("team-data")
