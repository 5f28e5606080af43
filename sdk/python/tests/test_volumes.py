"""Volume lifecycle against the real server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

import nullspace
from nullspace import Client, Volume, VolumeInfo

from conftest import Server, free_port, unique_name


def test_create_from_name_info_delete(sdk: Any, client: Client) -> None:
    name = unique_name()
    v = sdk.Volume.create(name, labels={"team": "ml"}, client=client)
    try:
        assert v.name == name and v.id.startswith("vol_")
        assert repr(v) == f"{sdk.Volume.__name__}(name={name!r}, id={v.id!r})"
        same = sdk.Volume.from_name(name, client=client)
        assert same.id == v.id and same == v and hash(same) == hash(v)
        info = v.info()
        assert isinstance(info, VolumeInfo)
        assert info.id == v.id and info.name == name and info.labels == {"team": "ml"}
        assert info.cap_bytes == 2 * 1024**3 and info.used_bytes == 0 and info.file_count == 0
        assert info.state == "ready" and info.attachments == 0
        assert isinstance(info.created_at, datetime) and info.created_at.tzinfo is not None
        assert isinstance(info.updated_at, datetime)
        assert abs(datetime.now(timezone.utc) - info.created_at) < timedelta(minutes=5)
    finally:
        sdk.Volume.delete(name, client=client)
    with pytest.raises(nullspace.NotFoundError):
        sdk.Volume.from_name(name, client=client)
    with pytest.raises(nullspace.NotFoundError):
        v.info()


def test_info_with_fields(volume: Volume) -> None:
    volume.files.write("/a.txt", "12345")
    info = volume.info(fields=["name", "used_bytes", "file_count"])
    assert (info.name, info.used_bytes, info.file_count) == (volume.name, 5, 1)
    assert info.id is None and info.labels is None and info.created_at is None and info.cap_bytes is None


def test_from_name_create_if_missing(sdk: Any, client: Client) -> None:
    name = unique_name()
    with pytest.raises(nullspace.NotFoundError) as e:
        sdk.Volume.from_name(name, client=client)
    assert e.value.status == 404 and e.value.code == "not_found" and name in e.value.message
    v1 = sdk.Volume.from_name(name, create_if_missing=True, client=client)
    v2 = sdk.Volume.from_name(name, create_if_missing=True, client=client)
    assert v1.id == v2.id
    sdk.Volume.delete(name, client=client)


def test_create_twice_is_already_exists(sdk: Any, volume: Volume, client: Client) -> None:
    with pytest.raises(nullspace.AlreadyExistsError) as e:
        sdk.Volume.create(volume.name, client=client)
    assert e.value.status == 409 and e.value.code == "already_exists"


def test_list_with_labels_and_fields(sdk: Any, client: Client) -> None:
    tag = unique_name("tag")
    a = sdk.Volume.create(unique_name(), labels={"suite": tag, "kind": "a"}, client=client)
    b = sdk.Volume.create(unique_name(), labels={"suite": tag, "kind": "b"}, client=client)
    try:
        everything = sdk.Volume.list(client=client)
        assert {a.name, b.name} <= {v.name for v in everything}
        assert all(isinstance(v, VolumeInfo) and v.id for v in everything)
        mine = sdk.Volume.list(labels={"suite": tag}, client=client)
        assert sorted(v.name or "" for v in mine) == sorted([a.name, b.name])
        only_a = sdk.Volume.list(labels={"suite": tag, "kind": "a"}, client=client)
        assert [v.id for v in only_a] == [a.id]
        slim = sdk.Volume.list(labels={"suite": tag}, fields=["name", "labels"], client=client)
        assert {v.name for v in slim} == {a.name, b.name}
        assert all(v.id is None and v.used_bytes is None and v.labels for v in slim)
        assert sdk.Volume.list(labels={"suite": "no-such-" + tag}, client=client) == []
    finally:
        sdk.Volume.delete(a.name, client=client)
        sdk.Volume.delete(b.name, client=client)


def test_invalid_label_is_refused_by_the_server(sdk: Any, client: Client) -> None:
    with pytest.raises(nullspace.InvalidArgumentError):
        sdk.Volume.create(unique_name(), labels={"bad key!": "x"}, client=client)


def test_delete_missing_and_if_exists_and_force(sdk: Any, client: Client) -> None:
    name = unique_name()
    with pytest.raises(nullspace.NotFoundError):
        sdk.Volume.delete(name, client=client)
    sdk.Volume.delete(name, if_exists=True, client=client)
    sdk.Volume.create(name, client=client)
    sdk.Volume.delete(name, force=True, client=client)
    assert name not in [v.name for v in sdk.Volume.list(fields=["name"], client=client)]


def test_deleted_and_recreated_volume_is_noticed(sdk: Any, client: Client) -> None:
    name = unique_name()
    old = sdk.Volume.create(name, client=client)
    sdk.Volume.delete(name, client=client)
    sdk.Volume.create(name, client=client)
    try:
        with pytest.raises(nullspace.NotFoundError):
            old.info()
    finally:
        sdk.Volume.delete(name, client=client)


def test_data_survives_new_handles(sdk: Any, volume: Volume, client: Client) -> None:
    volume.files.write("/keep.txt", "kept")
    again = sdk.Volume.from_name(volume.name, client=client)
    assert again.files.read("/keep.txt") == "kept"


def test_mount_of_a_real_volume(volume: Volume) -> None:
    m = volume.mount("/workspace/shared")
    assert (m.volume, m.path, m.read_only, m.subpath, m.volume_id) == (
        volume.name, "/workspace/shared", False, None, volume.id)


def test_wrong_key_is_unauthenticated(sdk: Any, server: Server) -> None:
    with sdk.Client(server.url, "nsk_" + "0" * 48) as bad:
        with pytest.raises(nullspace.UnauthenticatedError) as e:
            sdk.Volume.list(client=bad)
        assert e.value.status == 401 and not e.value.retryable
        with pytest.raises(nullspace.UnauthenticatedError):
            sdk.Volume.from_name("anything", client=bad)


def test_missing_key_is_unauthenticated(sdk: Any, server: Server) -> None:
    with sdk.Client(server.url) as nokey:
        assert nokey.config.key is None
        with pytest.raises(nullspace.UnauthenticatedError) as e:
            sdk.Volume.list(client=nokey)
        assert "NULLSPACE_API_KEY" in e.value.message


def test_tenant_isolation(sdk: Any, volume: Volume, tenant_client: Callable[..., Client]) -> None:
    volume.files.write("/secret.txt", "mine")
    other = tenant_client()
    with pytest.raises(nullspace.NotFoundError):
        sdk.Volume.from_name(volume.name, client=other)
    assert volume.name not in [v.name for v in sdk.Volume.list(client=other)]
    with pytest.raises(nullspace.NotFoundError):
        sdk.Volume.delete(volume.name, client=other)
    spy = sdk.Volume(volume.name, volume.id, client=other)
    with pytest.raises(nullspace.NotFoundError):
        spy.files.read("/secret.txt")
    with pytest.raises(nullspace.NotFoundError):
        spy.files.write("/planted.txt", "x")
    with pytest.raises(nullspace.NotFoundError):
        spy.info()
    # The other tenant may use the same name for its own volume.
    theirs = sdk.Volume.create(volume.name, client=other)
    assert theirs.id != volume.id
    assert not theirs.files.exists("/secret.txt")
    sdk.Volume.delete(volume.name, client=other)
    assert volume.files.read("/secret.txt") == "mine"


def test_unreachable_server_names_its_url(sdk: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with sdk.Client(url, "k", max_retries=1, retry_backoff=0) as c:
        with pytest.raises(nullspace.APIConnectionError) as e:
            sdk.Volume.from_name("team-data", client=c)
    assert url in str(e.value)
    assert isinstance(e.value, nullspace.UnavailableError)


def test_rename_keeps_the_volume(client: Client, sdk: Any) -> None:
    name, new, taken = unique_name(), unique_name(), unique_name()
    v = sdk.Volume.create(name, client=client)
    sdk.Volume.create(taken, client=client)
    try:
        v.files.write("/a.txt", "kept")
        v.rename(new)
        assert v.name == new
        again = sdk.Volume.from_name(new, client=client)
        assert again.id == v.id and again.files.read("/a.txt") == "kept"
        with pytest.raises(nullspace.NotFoundError):
            sdk.Volume.from_name(name, client=client)
        with pytest.raises(nullspace.AlreadyExistsError):
            v.rename(taken)
        assert v.name == new
    finally:
        sdk.Volume.delete(v.name, if_exists=True, client=client)
        sdk.Volume.delete(taken, if_exists=True, client=client)
