"""Keys with roles, expiry and revocation through the SDK, against the real server."""

from __future__ import annotations

import time

from typing import Any

import pytest

import nullspace
from nullspace import keys

from conftest import Server, unique_name


def client_of(sdk: Any, server: Server, key: str) -> nullspace.Client:
    return sdk.Client(server.url, key, retry_backoff=0.05, max_retries=0)


def test_create_list_revoke_and_roles(sdk: Any, server: Server, client: nullspace.Client) -> None:
    made = sdk.keys.create(name="py-ro", role="read-only", client=client)
    assert made.key.startswith("nsk_") and made.info.role == "read-only"
    assert made.key not in repr(made), "repr hides the secret"
    assert made.info.prefix == made.key[:12]

    listed = sdk.keys.list(client=client)
    mine = [k for k in listed if k.id == made.info.id]
    assert len(mine) == 1 and mine[0].name == "py-ro" and mine[0].revoked_at is None
    assert made.key not in repr(listed)

    v = sdk.Volume.create(unique_name(), client=client)
    try:
        v.files.write("/f.txt", "data")
        with client_of(sdk, server, made.key) as ro:
            rv = sdk.Volume.from_name(v.name, client=ro)
            assert rv.files.read("/f.txt") == "data"
            with pytest.raises(nullspace.PermissionDeniedError):
                rv.files.write("/f.txt", "evil")
            with pytest.raises(nullspace.PermissionDeniedError):
                sdk.keys.create(role="read-only", client=ro)
            assert v.files.read("/f.txt") == "data"

            revoked = sdk.keys.revoke(made.info.id, client=client)
            assert revoked.revoked_at is not None
            with pytest.raises(nullspace.UnauthenticatedError):
                rv.files.read("/f.txt")
    finally:
        sdk.Volume.delete(v.name, if_exists=True, client=client)


def test_a_member_cannot_make_admin_keys(sdk: Any, server: Server, client: nullspace.Client) -> None:
    member = sdk.keys.create(role="member", client=client)
    with client_of(sdk, server, member.key) as m:
        with pytest.raises(nullspace.PermissionDeniedError):
            sdk.keys.create(role="admin", client=m)
        assert sdk.keys.create(role="read-only", client=m).info.role == "read-only"
    with pytest.raises(nullspace.InvalidArgumentError):
        sdk.keys.create(role="root", client=client)


def test_an_expired_key_is_unauthenticated(sdk: Any, server: Server, client: nullspace.Client) -> None:
    made = sdk.keys.create(role="member", expires=1, client=client)
    assert made.info.expires_at is not None
    with client_of(sdk, server, made.key) as c:
        deadline = time.monotonic() + 10
        while True:
            try:
                sdk.keys.list(client=c)
            except nullspace.UnauthenticatedError:
                break
            assert time.monotonic() < deadline, "the key never expired"
            time.sleep(0.05)


def test_a_volume_token_reaches_its_volume_only(sdk: Any, server: Server, client: nullspace.Client) -> None:
    v = sdk.Volume.create(unique_name(), client=client)
    other = sdk.Volume.create(unique_name(), client=client)
    try:
        other.files.write("/secret.txt", "theirs")
        tok = v.token(read_only=False, expires=600)
        assert tok.info.volume_id == v.id and not tok.info.read_only
        assert tok.key not in repr(tok)
        with client_of(sdk, server, tok.key) as tc:
            mine = sdk.Volume(v.name, v.id, client=tc)
            mine.files.write("/a.txt", "ok")
            assert mine.files.read("/a.txt") == "ok"
            theirs = sdk.Volume(other.name, other.id, client=tc)
            with pytest.raises(nullspace.NotFoundError):
                theirs.files.read("/secret.txt")
            with pytest.raises(nullspace.PermissionDeniedError):
                sdk.keys.list(client=tc)
            with pytest.raises(nullspace.PermissionDeniedError):
                sdk.Volume.create(unique_name(), client=tc)
        ro = v.token(read_only=True)
        with client_of(sdk, server, ro.key) as rc:
            r = sdk.Volume(v.name, v.id, client=rc)
            assert r.files.read("/a.txt") == "ok"
            with pytest.raises(nullspace.PermissionDeniedError):
                r.files.write("/a.txt", "evil")
            sdk.keys.revoke(ro.info.id, client=client)
            with pytest.raises(nullspace.UnauthenticatedError):
                r.files.read("/a.txt")
        assert v.files.read("/a.txt") == "ok"
        with pytest.raises(ValueError):
            v.token(path="dir")
        with pytest.raises(nullspace.NotFoundError):
            v.token(path="/no-such-dir")
        with pytest.raises(nullspace.InvalidArgumentError):
            v.token(expires=8 * 86400)
    finally:
        sdk.Volume.delete(v.name, if_exists=True, client=client)
        sdk.Volume.delete(other.name, if_exists=True, client=client)


def test_a_path_token_reaches_its_directory_only(sdk: Any, server: Server, client: nullspace.Client) -> None:
    v = sdk.Volume.create(unique_name(), client=client)
    try:
        v.files.write("/dir/in.txt", "inside")
        v.files.write("/out.txt", "outside")
        tok = v.token(path="/dir", expires=600)
        assert tok.info.path == "/dir" and tok.info.volume_id == v.id
        assert [k.path for k in sdk.keys.list(client=client) if k.id == tok.info.id] == ["/dir"]
        with client_of(sdk, server, tok.key) as tc:
            mine = sdk.Volume(v.name, v.id, client=tc)
            # Volume paths, in and out.
            assert mine.files.read("/dir/in.txt") == "inside"
            mine.files.write("/dir/new.txt", "new")
            for outside in ("/out.txt", "/", "/dir2/x"):
                with pytest.raises(nullspace.NotFoundError):
                    mine.files.read(outside)
            with pytest.raises(nullspace.NotFoundError):
                mine.files.write("/out.txt", "evil")
            assert not mine.files.exists("/out.txt")
        assert v.files.read("/out.txt") == "outside"
        assert v.files.read("/dir/new.txt") == "new"
    finally:
        sdk.Volume.delete(v.name, if_exists=True, client=client)
