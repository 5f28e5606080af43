"""The direct file API against the real server."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

import nullspace
from nullspace import FileStat, Volume


def test_write_and_read_text(volume: Volume) -> None:
    st = volume.files.write("/hello.txt", "persistent\n")
    assert isinstance(st, FileStat)
    assert (st.path, st.type, st.size) == ("/hello.txt", "file", 11)
    assert isinstance(st.mtime, datetime) and st.mtime.tzinfo is not None
    assert isinstance(st.mode, int) and st.etag
    assert volume.files.read("/hello.txt") == "persistent\n"
    assert volume.files.read_bytes("/hello.txt") == b"persistent\n"


def test_write_unicode_and_bytes(volume: Volume) -> None:
    volume.files.write("/dir/ünï cødé.txt", "héllo wörld ✓")
    assert volume.files.read("/dir/ünï cødé.txt") == "héllo wörld ✓"
    data = bytes(range(256)) * 10
    volume.files.write("/bin/all.bin", data)
    assert volume.files.read_bytes("/bin/all.bin") == data
    volume.files.write("/bin/ba.bin", bytearray(b"abc"))
    volume.files.write("/bin/mv.bin", memoryview(b"xyz"))
    assert volume.files.read_bytes("/bin/ba.bin") + volume.files.read_bytes("/bin/mv.bin") == b"abcxyz"
    volume.files.write("/empty", b"")
    assert volume.files.read_bytes("/empty") == b"" and volume.files.stat("/empty").size == 0


def test_paths_are_normalised(volume: Volume) -> None:
    st = volume.files.write("//a/./b.txt", "x")
    assert st.path == "/a/b.txt"
    assert volume.files.read("/a//b.txt") == "x"


def test_read_ranges(volume: Volume) -> None:
    volume.files.write("/r.txt", b"0123456789")
    assert volume.files.read_bytes("/r.txt", offset=3) == b"3456789"
    assert volume.files.read_bytes("/r.txt", offset=2, length=4) == b"2345"
    assert volume.files.read_bytes("/r.txt", length=0) == b""
    assert volume.files.read_bytes("/r.txt", offset=8, length=100) == b"89"
    assert volume.files.read_bytes("/r.txt", offset=100) == b""


def test_read_missing_and_directory(volume: Volume) -> None:
    with pytest.raises(nullspace.NotFoundError) as e:
        volume.files.read("/nope.txt")
    assert "/nope.txt" in e.value.message
    volume.files.mkdir("/d")
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.read("/d")


def test_read_stream(volume: Volume) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    st = volume.files.write("/big.bin", data)
    with volume.files.read_stream("/big.bin", chunk_size=256 * 1024) as stream:
        assert stream.size == len(data)
        assert stream.etag == st.etag
        chunks = list(stream)
    assert b"".join(chunks) == data
    assert all(len(c) == 256 * 1024 for c in chunks[:-1]) and len(chunks) == 13
    assert stream.closed
    # Exhausting the iterator closes the response without a with block.
    s2 = volume.files.read_stream("/big.bin", offset=10, length=5)
    assert b"".join(s2) == data[10:15] and s2.closed
    # Leaving a with block early closes it too.
    with volume.files.read_stream("/big.bin", chunk_size=1024) as s3:
        assert next(s3) == data[:1024]
    assert s3.closed and list(s3) == []
    assert volume.files.read_stream("/big.bin").read() == data


def test_read_stream_of_missing_file_raises_at_once(volume: Volume) -> None:
    with pytest.raises(nullspace.NotFoundError):
        volume.files.read_stream("/missing.bin")


def test_streaming_write_of_a_generator(volume: Volume) -> None:
    chunk = os.urandom(64 * 1024)
    produced = 0

    def gen() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(160):  # 10 MiB, never held in memory at once
            produced += 1
            yield chunk

    st = volume.files.write("/stream/gen.bin", gen())
    assert produced == 160 and st.size == 160 * len(chunk)
    h = hashlib.sha256()
    for c in volume.files.read_stream("/stream/gen.bin"):
        h.update(c)
    assert h.hexdigest() == hashlib.sha256(chunk * 160).hexdigest()


def test_write_file_objects_and_lists(volume: Volume, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(b"from disk" * 1000)
    with open(local, "rb") as f:
        st = volume.files.write("/from-file.bin", f)
    assert st.size == 9000 and volume.files.read_bytes("/from-file.bin") == local.read_bytes()
    volume.files.write("/from-bytesio", io.BytesIO(b"memory"))
    assert volume.files.read("/from-bytesio") == "memory"
    volume.files.write("/from-list", [b"a", b"b", b"c"])
    assert volume.files.read("/from-list") == "abc"
    r, w = os.pipe()
    os.write(w, b"through a pipe")
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        volume.files.write("/from-pipe", pipe)
    assert volume.files.read("/from-pipe") == "through a pipe"


def test_if_match_and_overwrite(volume: Volume) -> None:
    st1 = volume.files.write("/c.txt", "one")
    st2 = volume.files.write("/c.txt", "two", if_match=st1.etag)
    assert st2.etag != st1.etag
    with pytest.raises(nullspace.ConflictError) as e:
        volume.files.write("/c.txt", "three", if_match=st1.etag)
    assert e.value.status == 409 and e.value.code == "conflict"
    assert volume.files.read("/c.txt") == "two"
    volume.files.write("/c.txt", "three", if_match=st2)  # a FileStat works too
    with pytest.raises(nullspace.ConflictError):
        volume.files.write("/missing.txt", "x", if_match=st2.etag)
    assert not volume.files.exists("/missing.txt")
    with pytest.raises(nullspace.AlreadyExistsError):
        volume.files.write("/c.txt", "four", overwrite=False)
    assert volume.files.read("/c.txt") == "three"
    volume.files.write("/new.txt", "fresh", overwrite=False)
    assert volume.files.read("/new.txt") == "fresh"


def test_etag_changes_with_content(volume: Volume) -> None:
    a = volume.files.write("/e.txt", "1").etag
    assert volume.files.stat("/e.txt").etag == a
    b = volume.files.write("/e.txt", "2").etag
    assert a != b


def test_mkdir(volume: Volume) -> None:
    st = volume.files.mkdir("/a/b/c")
    assert (st.path, st.type, st.is_dir) == ("/a/b/c", "dir", True)
    volume.files.mkdir("/a/b/c")  # exists already: fine with parents=True
    with pytest.raises(nullspace.NotFoundError):
        volume.files.mkdir("/x/y", parents=False)
    volume.files.mkdir("/x", parents=False)
    with pytest.raises(nullspace.AlreadyExistsError):
        volume.files.mkdir("/x", parents=False)


def test_move(volume: Volume) -> None:
    volume.files.write("/m/src.txt", "move me")
    st = volume.files.move("/m/src.txt", "/m/dst.txt")
    assert st.path == "/m/dst.txt" and st.size == 7
    assert not volume.files.exists("/m/src.txt")
    volume.files.write("/m/other.txt", "other")
    with pytest.raises(nullspace.AlreadyExistsError):
        volume.files.move("/m/other.txt", "/m/dst.txt")
    volume.files.move("/m/other.txt", "/m/dst.txt", overwrite=True)
    assert volume.files.read("/m/dst.txt") == "other"
    with pytest.raises(nullspace.NotFoundError):
        volume.files.move("/m/ghost", "/m/ghost2")
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.move("/m", "/m/inside")
    volume.files.move("/m", "/renamed")
    assert volume.files.read("/renamed/dst.txt") == "other"


def test_copy(volume: Volume) -> None:
    volume.files.write("/t/a.txt", "A")
    volume.files.write("/t/sub/b.txt", "B")
    st = volume.files.copy("/t/a.txt", "/a-copy.txt")
    assert st.path == "/a-copy.txt" and volume.files.read("/a-copy.txt") == "A"
    with pytest.raises(nullspace.AlreadyExistsError):
        volume.files.copy("/t/a.txt", "/a-copy.txt")
    volume.files.write("/t/a.txt", "A2")
    volume.files.copy("/t/a.txt", "/a-copy.txt", overwrite=True)
    assert volume.files.read("/a-copy.txt") == "A2"
    st = volume.files.copy("/t", "/t2")  # recursive by default
    assert st.is_dir and volume.files.read("/t2/sub/b.txt") == "B"
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.copy("/t", "/t3", recursive=False)
    assert not volume.files.exists("/t3")
    with pytest.raises(nullspace.NotFoundError):
        volume.files.copy("/ghost", "/g2")
    assert volume.info(fields=["file_count"]).file_count == 5


def test_remove(volume: Volume) -> None:
    volume.files.write("/rm/a.txt", "a")
    volume.files.write("/rm/deep/b.txt", "b")
    volume.files.remove("/rm/a.txt")
    assert not volume.files.exists("/rm/a.txt")
    with pytest.raises(nullspace.NotFoundError):
        volume.files.remove("/rm/a.txt")
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.remove("/rm")
    volume.files.remove("/rm", recursive=True)
    assert not volume.files.exists("/rm")
    volume.files.mkdir("/empty-dir")
    volume.files.remove("/empty-dir")
    # The root cannot be removed; with recursive, its contents are.
    volume.files.write("/left/over.txt", "x")
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.remove("/")
    volume.files.remove("/", recursive=True)
    assert volume.files.stat("/").type == "dir" and volume.files.list("/") == []
    assert volume.info(fields=["used_bytes"]).used_bytes == 0


def test_list_stat_exists(volume: Volume) -> None:
    volume.files.write("/l/a.txt", "aa")
    volume.files.write("/l/b.py", "b")
    volume.files.write("/l/sub/c.txt", "ccc")
    top = volume.files.list("/l")
    assert [e.path for e in top] == ["/l/a.txt", "/l/b.py", "/l/sub"]
    assert [e.type for e in top] == ["file", "file", "dir"]
    assert all(isinstance(e, FileStat) for e in top)
    assert [e.path for e in volume.files.list("/l", recursive=True)] == [
        "/l/a.txt", "/l/b.py", "/l/sub", "/l/sub/c.txt"]
    assert [e.path for e in volume.files.list("/l", recursive=True, glob="*.txt")] == [
        "/l/a.txt", "/l/sub/c.txt"]
    assert [e.path for e in volume.files.list("/l", recursive=True, glob="sub/*")] == ["/l/sub/c.txt"]
    assert [e.path for e in volume.files.list("/l/a.txt")] == ["/l/a.txt"]
    assert [e.path for e in volume.files.list()] == ["/l"]
    with pytest.raises(nullspace.NotFoundError):
        volume.files.list("/nowhere")
    st = volume.files.stat("/l/sub/c.txt")
    assert (st.path, st.type, st.size, st.name) == ("/l/sub/c.txt", "file", 3, "c.txt")
    assert st.mode & 0o777 != 0
    assert volume.files.stat("/").type == "dir"
    with pytest.raises(nullspace.NotFoundError):
        volume.files.stat("/l/nothing")
    assert volume.files.exists("/l/sub") and volume.files.exists("/l/a.txt")
    assert not volume.files.exists("/l/zzz") and not volume.files.exists("/nope/deeper")


def test_list_pages_are_followed(volume: Volume) -> None:
    volume.files.write_batch({f"/p/f{i:03}.txt": str(i) for i in range(25)})
    paged = volume.files.list("/p", page_size=4)
    assert [e.path for e in paged] == [f"/p/f{i:03}.txt" for i in range(25)]
    it = volume.files.iter_list("/p", page_size=10)
    assert next(it).path == "/p/f000.txt"
    assert len(list(it)) == 24
    rec = volume.files.list("/", recursive=True, page_size=3)
    assert [e.path for e in rec] == ["/p"] + [f"/p/f{i:03}.txt" for i in range(25)]
    assert len(volume.files.list("/p", glob="f01*", page_size=2)) == 10


def test_write_batch(volume: Volume, tmp_path: Path) -> None:
    local = tmp_path / "x.bin"
    local.write_bytes(b"X" * 5000)

    def gen() -> Iterator[bytes]:
        yield b"gen"
        yield b"erated"

    with open(local, "rb") as f:
        res = volume.files.write_batch({
            "/batch/a.txt": "alpha",
            "/batch/deep/er/b.bin": b"\x00\x01",
            "/batch/file.bin": f,
            "/batch/gen.txt": gen(),
            "/top.txt": "top",
            "/batch/ünï.txt": "u",
            "/batch/" + "long" * 40 + ".txt": "long name",
        })
    assert isinstance(res, nullspace.BatchResult)
    assert res.files == 7 and res.bytes == 5 + 2 + 5000 + 9 + 3 + 1 + 9
    assert volume.files.read("/batch/a.txt") == "alpha"
    assert volume.files.read_bytes("/batch/deep/er/b.bin") == b"\x00\x01"
    assert volume.files.read_bytes("/batch/file.bin") == b"X" * 5000
    assert volume.files.read("/batch/gen.txt") == "generated"
    assert volume.files.read("/top.txt") == "top"
    assert volume.files.read("/batch/ünï.txt") == "u"
    assert volume.files.read("/batch/" + "long" * 40 + ".txt") == "long name"
    # Batches overwrite existing files.
    volume.files.write_batch({"/top.txt": "new top"})
    assert volume.files.read("/top.txt") == "new top"
    assert volume.files.write_batch({}) == nullspace.BatchResult(0, 0)


def test_write_batch_is_all_or_nothing_on_bad_entry(volume: Volume) -> None:
    volume.files.write("/occupied", "a file where a directory is needed")
    with pytest.raises(nullspace.NullspaceError):
        volume.files.write_batch({"/fresh.txt": "new", "/occupied/child.txt": "x"})
    assert not volume.files.exists("/fresh.txt")
    assert volume.files.read("/occupied") == "a file where a directory is needed"


def test_large_batch_spills_to_disk(volume: Volume) -> None:
    blob = os.urandom(6 * 1024 * 1024)
    res = volume.files.write_batch({"/big/1.bin": blob, "/big/2.bin": blob, "/big/3.bin": blob})
    assert res.files == 3 and res.bytes == 3 * len(blob)
    assert volume.files.read_bytes("/big/3.bin", offset=len(blob) - 10) == blob[-10:]


def test_bad_paths_refused_by_sdk(volume: Volume) -> None:
    with pytest.raises(ValueError):
        volume.files.read("relative.txt")
    with pytest.raises(ValueError):
        volume.files.write("/../escape.txt", "x")


@pytest.mark.sync_only
def test_large_reads_keep_their_connection_alive(volume: Volume) -> None:
    # read_stream and download read bodies through http.client (nullspace/_large.py) on
    # kept-alive connections: one connection for every read, also after an error answer and
    # after a stream abandoned halfway (its connection is dropped, not reused dirty).
    data = os.urandom(3 * 1024 * 1024 + 17)
    volume.files.write("/big.bin", data)
    with nullspace.Client(volume.client.url, volume.client.config.key) as own:
        _large_reads(Volume(volume.name, volume.id, client=own), data)


def _large_reads(volume: Volume, data: bytes) -> None:
    large = volume.client._large
    assert large is not None
    before = large.opened
    for _ in range(3):
        with volume.files.read_stream("/big.bin") as chunks:
            assert b"".join(chunks) == data
    with pytest.raises(nullspace.NotFoundError):
        volume.files.read_stream("/missing.bin")
    assert volume.files.read_stream("/big.bin", offset=5, length=10).read() == data[5:15]
    assert large.opened == before + 1
    with volume.files.read_stream("/big.bin") as chunks:
        next(chunks)
    with volume.files.read_stream("/big.bin", chunk_size=1000) as chunks:
        pieces = list(chunks)
    assert b"".join(pieces) == data and {len(p) for p in pieces[:-1]} == {1000}
    assert large.opened == before + 2
