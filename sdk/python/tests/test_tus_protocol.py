"""The tus endpoint over raw HTTP (httpx): every status docs/API.md promises, one by one."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

import httpx
import pytest

#: About the wire (the tus protocol, the OpenAPI document, foreign clients), not the SDK surface.
pytestmark = pytest.mark.sync_only

import nullspace

from conftest import Server, unique_name

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    # A fresh connection per request: an early refusal that leaves a request body unread
    # closes the connection (see test_early_refusal_of_a_body_says_connection_close).
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as c:
        yield c


def meta(path: str) -> str:
    return "path " + base64.b64encode(path.encode()).decode()


def create(http: httpx.Client, volume: str, path: str, length: int, **headers: str) -> httpx.Response:
    h: Dict[str, str] = {**TUS, "Upload-Length": str(length), "Upload-Metadata": meta(path), **headers}
    return http.post(f"/v1/volumes/{volume}/uploads", headers=h)


def new_upload(http: httpx.Client, volume: str, path: str, length: int) -> str:
    r = create(http, volume, path, length)
    assert r.status_code == 201, r.text
    loc = r.headers["location"]
    assert loc.startswith(f"/v1/volumes/{volume}/uploads/")
    return str(loc)


def patch(http: httpx.Client, url: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    h = {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset), **headers}
    return http.patch(url, headers=h, content=data)


def offset_of(http: httpx.Client, url: str) -> int:
    r = http.head(url, headers=TUS)
    assert r.status_code == 200, r.status_code
    return int(r.headers["upload-offset"])


def sha(algo: str, data: bytes) -> str:
    return f"{algo} " + base64.b64encode(hashlib.new(algo, data).digest()).decode()


def error_code(r: httpx.Response) -> str:
    doc = r.json()
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    return str(doc["error"]["code"])


def test_options_discovery_needs_no_key(server: Server, volume: nullspace.Volume) -> None:
    r = httpx.options(f"{server.url}/v1/volumes/{volume.name}/uploads")
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0"
    assert r.headers["tus-resumable"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "checksum", "expiration"
    }
    assert set(r.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256"}


def test_full_upload_head_and_publish(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/d/f.bin", 10)
    h = http.head(url, headers=TUS)
    assert h.status_code == 200
    assert h.headers["upload-offset"] == "0" and h.headers["upload-length"] == "10"
    assert h.headers["cache-control"] == "no-store"
    assert h.headers["upload-metadata"] == meta("/d/f.bin")
    expires = datetime.strptime(h.headers["upload-expires"], "%a, %d %b %Y %H:%M:%S GMT")
    assert timedelta(hours=23) < expires.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc) <= timedelta(hours=24)
    r = patch(http, url, 0, b"01234", **{"Upload-Checksum": sha("sha256", b"01234")})
    assert r.status_code == 204 and r.headers["upload-offset"] == "5"
    assert not volume.files.exists("/d/f.bin")
    r = patch(http, url, 5, b"56789", **{"Upload-Checksum": sha("sha1", b"56789")})
    assert r.status_code == 204 and r.headers["upload-offset"] == "10"
    assert r.headers["etag"].strip('"') == volume.files.stat("/d/f.bin").etag
    assert volume.files.read_bytes("/d/f.bin") == b"0123456789"
    info = volume.info()
    assert (info.used_bytes, info.file_count) == (10, 1)
    # A finished upload still answers HEAD (offset == length), so a client can confirm it.
    h = http.head(url, headers=TUS)
    assert (h.status_code, h.headers["upload-offset"], h.headers["upload-length"]) == (200, "10", "10")


def test_patch_after_completion_is_409(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 2)
    assert patch(http, url, 0, b"ab").status_code == 204
    r = patch(http, url, 2, b"c")
    assert r.status_code == 409, r.text
    assert r.headers["upload-offset"] == "2"


def test_creation_with_upload_and_filename(http: httpx.Client, volume: nullspace.Volume) -> None:
    r = http.post(
        f"/v1/volumes/{volume.name}/uploads",
        headers={**TUS, "Upload-Length": "3", "Content-Type": OCTETS,
                 "Upload-Metadata": "filename " + base64.b64encode(b"n.txt").decode()},
        content=b"abc",
    )
    assert r.status_code == 201, r.text
    assert r.headers["upload-offset"] == "3"
    assert volume.files.read_bytes("/n.txt") == b"abc"


def test_zero_length_upload_is_published_at_creation(http: httpx.Client, volume: nullspace.Volume) -> None:
    r = create(http, volume.name, "/empty", 0)
    assert r.status_code == 201 and r.headers["upload-offset"] == "0"
    assert volume.files.stat("/empty").size == 0


def test_offset_mismatch_is_409_with_current_offset(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 10)
    assert patch(http, url, 0, b"abc").status_code == 204
    for wrong in (0, 2, 4, 100):
        r = patch(http, url, wrong, b"z")
        assert r.status_code == 409, wrong
        assert r.headers["upload-offset"] == "3"
        assert error_code(r) == "conflict"
    assert offset_of(http, url) == 3


def test_wrong_content_type_is_415(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 10)
    for ct in ("application/octet-stream", "text/plain"):
        r = http.patch(url, headers={**TUS, "Content-Type": ct, "Upload-Offset": "0"}, content=b"abc")
        assert r.status_code == 415, ct
    r = http.patch(url, headers={**TUS, "Upload-Offset": "0"}, content=b"abc")
    assert r.status_code == 415
    assert offset_of(http, url) == 0


@pytest.mark.parametrize("algo", ["sha1", "sha256"])
def test_bad_checksum_is_460_and_offset_unchanged(http: httpx.Client, volume: nullspace.Volume, algo: str) -> None:
    url = new_upload(http, volume.name, "/f", 8)
    assert patch(http, url, 0, b"good", **{"Upload-Checksum": sha(algo, b"good")}).status_code == 204
    r = patch(http, url, 4, b"evil", **{"Upload-Checksum": sha(algo, b"good")})
    assert r.status_code == 460
    assert offset_of(http, url) == 4
    # The bytes of the refused chunk are not kept: the right chunk completes the file.
    assert patch(http, url, 4, b"fine", **{"Upload-Checksum": sha(algo, b"fine")}).status_code == 204
    assert volume.files.read_bytes("/f") == b"goodfine"


def test_unsupported_checksum_algorithm_is_400(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 4)
    r = patch(http, url, 0, b"abcd", **{"Upload-Checksum": "md5 " + base64.b64encode(b"x" * 16).decode()})
    assert r.status_code == 400
    assert offset_of(http, url) == 0


def test_unsupported_tus_version_is_412(http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 4)
    base = f"/v1/volumes/{volume.name}/uploads"
    for version in (None, "0.2.2", "2.0.0"):
        h = {} if version is None else {"Tus-Resumable": version}
        for r in (
            http.post(base, headers={**h, "Upload-Length": "4", "Upload-Metadata": meta("/g")}),
            http.head(url, headers=h),
            http.patch(url, headers={**h, "Content-Type": OCTETS, "Upload-Offset": "0"}, content=b"ab"),
            http.delete(url, headers=h),
        ):
            assert r.status_code == 412, (version, r.request.method)
            assert r.headers["tus-version"] == "1.0.0"
    assert offset_of(http, url) == 0
    assert not volume.files.exists("/g")


def test_length_over_the_cap_is_413(server: Server, tenant_client: Callable[..., nullspace.Client]) -> None:
    c = tenant_client(cap_bytes=1000)
    v = nullspace.Volume.create(unique_name(), client=c)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {c.config.key}"}) as http:
        r = create(http, v.name, "/big", 1001)
        assert r.status_code == 413
        assert error_code(r) == "payload_too_large"
        # A chunk past the declared length is 413 too, and nothing is kept.
        url = new_upload(http, v.name, "/f", 4)
        assert patch(http, url, 0, b"12345").status_code == 413
        assert offset_of(http, url) == 0


def test_length_over_what_is_left_is_507(server: Server, tenant_client: Callable[..., nullspace.Client]) -> None:
    c = tenant_client(cap_bytes=1000)
    v = nullspace.Volume.create(unique_name(), client=c)
    v.files.write("/existing", b"x" * 600)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {c.config.key}"}) as http:
        r = create(http, v.name, "/more", 401)
        assert r.status_code == 507
        assert error_code(r) == "quota_exceeded"
        # Replacing the existing file frees its bytes: that fits.
        assert create(http, v.name, "/existing", 1000).status_code == 201
        assert create(http, v.name, "/more", 400).status_code == 201
    assert v.info().used_bytes == 600


def test_unknown_upload_is_404(http: httpx.Client, volume: nullspace.Volume) -> None:
    base = f"/v1/volumes/{volume.name}/uploads"
    for upload_id in ("0" * 32, "f" * 32, "not-an-id", "..%2F..%2Fetc"):
        url = f"{base}/{upload_id}"
        assert http.head(url, headers=TUS).status_code == 404, upload_id
        assert patch(http, url, 0, b"a").status_code == 404, upload_id
        assert http.delete(url, headers=TUS).status_code == 404, upload_id


def test_upload_of_another_volume_is_404(http: httpx.Client, client: nullspace.Client, volume: nullspace.Volume) -> None:
    other = nullspace.Volume.create(unique_name(), client=client)
    try:
        url = new_upload(http, volume.name, "/f", 4)
        moved = url.replace(f"/volumes/{volume.name}/", f"/volumes/{other.name}/")
        assert http.head(moved, headers=TUS).status_code == 404
        assert patch(http, moved, 0, b"abcd").status_code == 404
    finally:
        nullspace.Volume.delete(other.name, client=client)


def state_file(server: Server, volume: nullspace.Volume, url: str) -> Path:
    upload_id = url.rsplit("/", 1)[1]
    return server.data_dir / "volumes" / volume.id / "staging" / "uploads" / f"{upload_id}.json"


def test_expired_upload_is_410_then_removed(server: Server, http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 10)
    assert patch(http, url, 0, b"abc").status_code == 204
    # Uploads expire after 24 hours: age this one by editing its state file.
    state = state_file(server, volume, url)
    doc = json.loads(state.read_text())
    doc["expires_at"] = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    state.write_text(json.dumps(doc))
    r = patch(http, url, 3, b"def")
    assert r.status_code == 410
    # Expired uploads are removed: afterwards the upload is unknown.
    assert http.head(url, headers=TUS).status_code == 404
    assert not state.exists()
    assert not state.with_suffix(".data").exists()
    assert not volume.files.exists("/f")


def test_expired_upload_head_is_410(server: Server, http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 10)
    state = state_file(server, volume, url)
    doc = json.loads(state.read_text())
    doc["expires_at"] = "2000-01-01T00:00:00Z"
    state.write_text(json.dumps(doc))
    assert http.head(url, headers=TUS).status_code == 410


def test_termination_then_404(server: Server, http: httpx.Client, volume: nullspace.Volume) -> None:
    url = new_upload(http, volume.name, "/f", 10)
    assert patch(http, url, 0, b"abc").status_code == 204
    r = http.delete(url, headers=TUS)
    assert r.status_code == 204
    assert r.headers["tus-resumable"] == "1.0.0"
    assert http.head(url, headers=TUS).status_code == 404
    assert patch(http, url, 3, b"def").status_code == 404
    assert http.delete(url, headers=TUS).status_code == 404
    assert not state_file(server, volume, url).exists()
    assert not volume.files.exists("/f")
    info = volume.info()
    assert (info.used_bytes, info.file_count) == (0, 0)


def test_tus_needs_a_key(server: Server, volume: nullspace.Volume, http: httpx.Client) -> None:
    url = new_upload(http, volume.name, "/f", 4)
    anon: Optional[httpx.Response] = None
    for anon in (
        httpx.post(f"{server.url}/v1/volumes/{volume.name}/uploads",
                   headers={**TUS, "Upload-Length": "4", "Upload-Metadata": meta("/g")}),
        httpx.head(f"{server.url}{url}", headers=TUS),
        httpx.patch(f"{server.url}{url}", headers={**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}, content=b"a"),
    ):
        assert anon.status_code == 401
    assert offset_of(http, url) == 0


def test_bad_creation_requests_are_400(http: httpx.Client, volume: nullspace.Volume) -> None:
    base = f"/v1/volumes/{volume.name}/uploads"
    for headers in (
        {"Upload-Metadata": meta("/f")},  # no length (deferred length is not supported)
        {"Upload-Length": "x", "Upload-Metadata": meta("/f")},
        {"Upload-Length": "4"},  # no destination
        {"Upload-Length": "4", "Upload-Metadata": "path !!!notbase64"},
        {"Upload-Length": "4", "Upload-Metadata": meta("/a/../../etc/passwd")},
        {"Upload-Length": "4", "Upload-Metadata": "filename " + base64.b64encode(b"a/b").decode()},
    ):
        r = http.post(base, headers={**TUS, **headers})
        assert r.status_code == 400, headers
        assert error_code(r) == "invalid_argument"
    assert volume.files.list("/") == []


def test_early_refusal_of_a_body_says_connection_close(server: Server, volume: nullspace.Volume) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = b"x" * 100_000
    head = (
        f"PATCH /v1/volumes/{volume.name}/uploads/{'0' * 32} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nContent-Type: {OCTETS}\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
        headers = answer.split(b"\r\n\r\n")[0].decode().lower()
        assert headers.startswith("http/1.1 412")
        if "connection: close" in headers:
            return
        # Without `Connection: close` the connection must stay usable.
        s.sendall(f"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        rest = b""
        try:
            while b"HTTP/1.1 200" not in rest:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except OSError:
            pass
        assert b"HTTP/1.1 200" in rest, "the server closed a connection it did not say it would close"


def test_an_abandoned_upload_is_shown_and_cancelled(
    server: Server, tenant_client: Callable[..., nullspace.Client]
) -> None:
    c = tenant_client(cap_bytes=1000)
    v = nullspace.Volume.create(unique_name(), client=c)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {c.config.key}"}) as http:
        url = new_upload(http, v.name, "/abandoned", 1000)
        assert patch(http, url, 0, b"x" * 998).status_code == 204
    # Its bytes count against the cap as they arrive, and show.
    assert v.info().pending_upload_bytes == 998
    assert v.info().used_bytes == 0
    [u] = v.uploads()
    assert (u.id, u.path, u.offset, u.length) == (url.rsplit("/", 1)[1], "/abandoned", 998, 1000)
    assert u.created_at is not None and u.expires_at is not None and u.expires_at > u.created_at
    with pytest.raises(nullspace.QuotaExceededError) as e:
        v.files.write("/small", b"hello")
    assert "pending uploads" in str(e.value) and "998" in str(e.value)
    v.cancel_upload(u.id)
    assert v.uploads() == []
    assert v.info().pending_upload_bytes == 0
    v.files.write("/small", b"hello")
    with pytest.raises(nullspace.NotFoundError):
        v.cancel_upload(u.id)
