"""Tests that need no server: validation, error mapping, retries, timestamps, mounts."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, List

import httpx
import pytest

import nullspace
from nullspace import errors
from nullspace._util import check_path, parse_datetime

CODES = {
    "invalid_argument": (nullspace.InvalidArgumentError, 400),
    "unauthenticated": (nullspace.UnauthenticatedError, 401),
    "permission_denied": (nullspace.PermissionDeniedError, 403),
    "not_found": (nullspace.NotFoundError, 404),
    "already_exists": (nullspace.AlreadyExistsError, 409),
    "conflict": (nullspace.ConflictError, 409),
    "volume_in_use": (nullspace.VolumeInUseError, 409),
    "payload_too_large": (nullspace.PayloadTooLargeError, 413),
    "quota_exceeded": (nullspace.QuotaExceededError, 507),
    "resource_exhausted": (nullspace.ResourceExhaustedError, 429),
    "unavailable": (nullspace.UnavailableError, 503),
    "internal": (nullspace.InternalError, 500),
}

STAT = {"path": "/a", "type": "file", "size": 1, "mode": 420, "mtime": "2026-11-29T03:40:24.123456789Z", "etag": "e1"}


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> nullspace.Client:
    return nullspace.Client(
        "http://nullspace.test", "nsk_test", transport=httpx.MockTransport(handler), retry_backoff=0, **kw  # type: ignore[arg-type]
    )


def err(code: str, status: int, retryable: bool = False, message: str = "boom") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "retryable": retryable}})


def fake_volume(client: nullspace.Client) -> nullspace.Volume:
    return nullspace.Volume("vol1", "vol_123", client=client)


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_maps_to_its_class(code: str) -> None:
    cls, status = CODES[code]
    c = mock_client(lambda req: err(code, status, message=f"{code} happened"), max_retries=0)
    with pytest.raises(cls) as info:
        c.request("POST", "/v1/x")
    e = info.value
    assert isinstance(e, nullspace.NullspaceError)
    assert (e.code, e.status, e.message, e.retryable) == (code, status, f"{code} happened", False)
    assert str(e) == f"{code} happened"
    assert code in repr(e)


def test_error_without_json_body_maps_by_status() -> None:
    c = mock_client(lambda req: httpx.Response(502, text="bad gateway"), max_retries=0)
    with pytest.raises(nullspace.UnavailableError) as info:
        c.request("GET", "/v1/x")
    assert info.value.status == 502 and info.value.retryable
    assert "502" in info.value.message and "bad gateway" in info.value.message
    c = mock_client(lambda req: httpx.Response(418, text=""), max_retries=0)
    with pytest.raises(nullspace.InvalidArgumentError):
        c.request("GET", "/v1/x")


def test_malformed_success_answer_is_internal_error() -> None:
    c = mock_client(lambda req: httpx.Response(200, text="not json"))
    with pytest.raises(nullspace.InternalError):
        fake_volume(c).files.stat("/a")
    c = mock_client(lambda req: httpx.Response(200, json={"path": "/a"}))
    with pytest.raises(nullspace.InternalError):
        fake_volume(c).files.stat("/a")
    c = mock_client(lambda req: httpx.Response(200, json={"volumes": [{"id": 3}]}))
    with pytest.raises(nullspace.InternalError):
        nullspace.Volume.list(client=c)


def test_connection_refused_names_the_url() -> None:
    c = nullspace.Client("http://127.0.0.1:9", "k", retry_backoff=0, max_retries=1, timeout=5)
    with pytest.raises(nullspace.APIConnectionError) as info:
        nullspace.Volume.list(client=c)
    e = info.value
    assert isinstance(e, nullspace.UnavailableError) and isinstance(e, nullspace.NullspaceError)
    assert "http://127.0.0.1:9" in e.message
    assert e.status is None and e.retryable and e.code == "unavailable"


def test_error_class_for_unknown_code_falls_back_on_status() -> None:
    assert errors.error_class_for_code("weird", 404) is nullspace.NotFoundError
    assert errors.error_class_for_code(None, 599) is nullspace.InternalError
    assert errors.error_class_for_code(None, None) is nullspace.NullspaceError


# --------------------------------------------------------------------------- retries


class Counter:
    def __init__(self, answers: List[httpx.Response]) -> None:
        self.answers = answers
        self.calls = 0
        self.bodies: List[bytes] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.bodies.append(req.read())
        a = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return a


def test_get_is_retried_on_unavailable_then_succeeds() -> None:
    h = Counter([err("unavailable", 503, True), err("unavailable", 503, True), httpx.Response(200, json=STAT)])
    st = fake_volume(mock_client(h)).files.stat("/a")
    assert h.calls == 3 and st.path == "/a"


def test_retries_stop_after_max_retries() -> None:
    h = Counter([err("unavailable", 503, True)])
    with pytest.raises(nullspace.UnavailableError):
        fake_volume(mock_client(h, max_retries=2)).files.stat("/a")
    assert h.calls == 3


def test_internal_error_is_retried_for_idempotent_requests_only() -> None:
    h = Counter([err("internal", 500), httpx.Response(200, json=STAT)])
    fake_volume(mock_client(h)).files.stat("/a")
    assert h.calls == 2
    h = Counter([err("internal", 500), httpx.Response(200, json=STAT)])
    with pytest.raises(nullspace.InternalError):
        fake_volume(mock_client(h)).files.mkdir("/a")
    assert h.calls == 1


def test_non_retryable_errors_are_not_retried() -> None:
    for code, status in (("not_found", 404), ("conflict", 409), ("quota_exceeded", 507)):
        h = Counter([err(code, status)])
        with pytest.raises(nullspace.NullspaceError):
            fake_volume(mock_client(h)).files.stat("/a")
        assert h.calls == 1


def test_post_is_not_retried() -> None:
    h = Counter([err("unavailable", 503, True), httpx.Response(200, json=STAT)])
    with pytest.raises(nullspace.UnavailableError):
        fake_volume(mock_client(h)).files.move("/a", "/b")
    assert h.calls == 1


def test_put_of_bytes_is_retried_with_the_same_body() -> None:
    h = Counter([err("unavailable", 503, True), httpx.Response(200, json=STAT)])
    fake_volume(mock_client(h)).files.write("/a", b"payload")
    assert h.calls == 2 and h.bodies == [b"payload", b"payload"]


def test_put_of_seekable_file_is_replayed_from_its_start() -> None:
    h = Counter([err("unavailable", 503, True), httpx.Response(200, json=STAT)])
    f = io.BytesIO(b"xxheader-content")
    f.seek(2)
    fake_volume(mock_client(h)).files.write("/a", f)
    assert h.bodies == [b"header-content", b"header-content"]


def test_put_of_generator_is_not_retried() -> None:
    h = Counter([err("unavailable", 503, True), httpx.Response(200, json=STAT)])

    def gen() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    with pytest.raises(nullspace.UnavailableError):
        fake_volume(mock_client(h)).files.write("/a", gen())
    assert h.calls == 1 and h.bodies == [b"ab"]


def test_request_shapes() -> None:
    seen: List[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=STAT)

    files = fake_volume(mock_client(handler)).files
    files.write("/dir/a b.txt", "hi", if_match="abc", overwrite=False)
    r = seen[-1]
    assert r.method == "PUT" and r.url.path == "/v1/volumes/vol1/files/content"
    assert r.url.params["path"] == "/dir/a b.txt" and r.url.params["overwrite"] == "false"
    assert r.headers["if-match"] == '"abc"' and r.headers["authorization"] == "Bearer nsk_test"
    files.copy("/a", "/b")
    assert json.loads(seen[-1].content) == {"src": "/a", "dst": "/b", "overwrite": False, "recursive": True}


# --------------------------------------------------------------------------- validation


def test_bad_paths_are_refused_before_any_request() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    files = fake_volume(mock_client(handler)).files
    for bad in ("relative.txt", "", "/a/../b", "/a\x00b", "/" + "x" * 256):
        with pytest.raises(ValueError):
            files.stat(bad)
    with pytest.raises(TypeError):
        files.stat(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        files.read_bytes("/a", offset=-1)
    with pytest.raises(ValueError):
        files.read_bytes("/a", length=-5)
    with pytest.raises(TypeError):
        files.read_bytes("/a", offset="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        files.write("/a", 12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        files.write("/a", io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        files.write("/a", b"x", if_match=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        files.write("/", b"x")
    with pytest.raises(TypeError):
        files.remove("/a", recursive="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        files.list("/", page_size=0)
    with pytest.raises(TypeError):
        files.write_batch([("/a", b"x")])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        files.write_batch({"/a": b"x", "//a": b"y"})
    with pytest.raises(ValueError):
        files.read_stream("/a", chunk_size=0)


def test_iterator_yielding_str_is_a_type_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        req.read()
        return httpx.Response(200, json=STAT)

    with pytest.raises(TypeError):
        fake_volume(mock_client(handler)).files.write("/a", iter(["text"]))  # type: ignore[arg-type]


def test_path_normalisation() -> None:
    assert check_path("//a/./b//c/") == "/a/b/c"
    assert check_path("/") == "/"


def test_bad_volume_arguments() -> None:
    c = mock_client(lambda req: httpx.Response(500))
    for bad in ("", "Upper", "-dash", "a" * 64, "sp ace", "ünï"):
        with pytest.raises(ValueError):
            nullspace.Volume.from_name(bad, client=c)
    with pytest.raises(TypeError):
        nullspace.Volume.from_name(None, client=c)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        nullspace.Volume.create("ok", labels=["a"], client=c)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        nullspace.Volume.create("ok", labels={"a": 1}, client=c)  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        nullspace.Volume.list(fields=["name", "colour"], client=c)
    with pytest.raises(TypeError):
        nullspace.Volume.list(fields="name", client=c)
    with pytest.raises(ValueError):
        nullspace.Volume.list(fields=[], client=c)
    with pytest.raises(TypeError):
        nullspace.Volume.delete("ok", force="yes", client=c)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        nullspace.Volume.list(client="http://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        nullspace.Client("http://x", max_retries=-1)


# --------------------------------------------------------------------------- mounts


def test_mount_is_validated_and_normalised() -> None:
    v = fake_volume(mock_client(lambda req: httpx.Response(500)))
    m = v.mount("/workspace//shared/./")
    assert m == nullspace.Mount(volume="vol1", path="/workspace/shared", read_only=False, subpath=None, volume_id="vol_123")
    assert m.to_spec() == "ref=vol1,mount=/workspace/shared"
    m = v.mount("/data", read_only=True, subpath="/projects//a/")
    assert (m.read_only, m.subpath) == (True, "projects/a")
    assert m.to_spec() == "ref=vol1,mount=/data,readonly,subpath=projects/a"
    with pytest.raises(AttributeError):
        m.path = "/other"  # type: ignore[misc]
    for bad in ("relative", "/", "//", "/proc", "/proc/x", "/sys/fs", "/dev", "/dev/shm", "/a/../b"):
        with pytest.raises(ValueError):
            v.mount(bad)
    assert v.mount("/devices").path == "/devices"
    with pytest.raises(ValueError):
        v.mount("/data", subpath="../up")
    with pytest.raises(ValueError):
        v.mount("/data", subpath="/")
    with pytest.raises(TypeError):
        v.mount("/data", read_only=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        v.mount(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- timestamps


def test_parse_datetime() -> None:
    d = parse_datetime("2026-11-29T03:40:24.123456789Z")
    assert d == datetime(2026, 11, 29, 3, 40, 24, 123456, tzinfo=timezone.utc)
    d = parse_datetime("2026-11-29T05:40:24+02:00")
    assert d == datetime(2026, 11, 29, 3, 40, 24, tzinfo=timezone.utc)
    assert d.utcoffset() == timedelta(hours=2)
    assert parse_datetime("2026-01-01T00:00:00.5Z").microsecond == 500000
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


def test_filestat_is_a_frozen_dataclass() -> None:
    st = nullspace.FileStat._from_json(STAT)
    assert st.mtime.tzinfo is not None and st.is_file and not st.is_dir and st.name == "a"
    with pytest.raises(AttributeError):
        st.size = 3  # type: ignore[misc]
