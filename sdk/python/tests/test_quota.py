"""Volume caps: quota_exceeded changes nothing, for single writes, streams, copies and batches."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

import nullspace
from nullspace import Client, Volume

from conftest import unique_name

CAP = 1000


@pytest.fixture
def capped(sdk: Any, tenant_client: Callable[..., Client]) -> Iterator[Volume]:
    c = tenant_client(cap_bytes=CAP)
    v = sdk.Volume.create(unique_name("capped"), client=c)
    yield v
    sdk.Volume.delete(v.name, if_exists=True, client=c)


def used(v: Volume) -> int:
    n = v.info(fields=["used_bytes"]).used_bytes
    assert n is not None
    return n


def test_tenant_cap_applies_to_new_volumes(capped: Volume) -> None:
    assert capped.info().cap_bytes == CAP


def test_write_past_cap_is_quota_exceeded_and_changes_nothing(capped: Volume) -> None:
    capped.files.write("/a.bin", b"a" * 600)
    with pytest.raises(nullspace.QuotaExceededError) as e:
        capped.files.write("/b.bin", b"b" * 600)
    assert e.value.status == 507 and e.value.code == "quota_exceeded" and not e.value.retryable
    assert not capped.files.exists("/b.bin")
    assert used(capped) == 600
    # Replacing a file only counts the difference.
    capped.files.write("/a.bin", b"A" * 900)
    assert used(capped) == 900
    with pytest.raises(nullspace.QuotaExceededError):
        capped.files.write("/a.bin", b"A" * 1001)
    assert capped.files.read_bytes("/a.bin") == b"A" * 900


def test_streamed_write_past_cap(capped: Volume) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(100):
            yield b"z" * 100

    with pytest.raises(nullspace.QuotaExceededError):
        capped.files.write("/stream.bin", gen())
    assert not capped.files.exists("/stream.bin")
    assert used(capped) == 0


def test_copy_past_cap(capped: Volume) -> None:
    capped.files.write("/src.bin", b"s" * 600)
    with pytest.raises(nullspace.QuotaExceededError):
        capped.files.copy("/src.bin", "/dst.bin")
    assert not capped.files.exists("/dst.bin") and used(capped) == 600


def test_batch_past_cap_leaves_nothing(capped: Volume) -> None:
    capped.files.write("/base.bin", b"b" * 400)
    with pytest.raises(nullspace.QuotaExceededError):
        capped.files.write_batch({"/x/1.bin": b"1" * 300, "/x/2.bin": b"2" * 300, "/x/3.bin": b"3" * 300})
    for p in ("/x/1.bin", "/x/2.bin", "/x/3.bin"):
        assert not capped.files.exists(p)
    assert not capped.files.exists("/x")
    assert used(capped) == 400
    assert capped.info(fields=["file_count"]).file_count == 1
    res = capped.files.write_batch({"/x/1.bin": b"1" * 300, "/x/2.bin": b"2" * 300})
    assert (res.files, res.bytes) == (2, 600) and used(capped) == 1000
