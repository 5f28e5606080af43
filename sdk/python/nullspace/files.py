"""The direct file API of a volume: ``volume.files`` (no sandbox needed).

Paths are absolute inside the volume (``/a/b.txt``). Writes are atomic: readers see the old or
the new content, never a torn file, and a write that returned is durable.
"""

from __future__ import annotations

import base64
import io
import os
import posixpath
import stat as stat_mod
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    AsyncIterable,
    Dict,
    Iterable,
    Iterator,
    List,
    Generic,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

import httpx

from ._client import BaseClient, Blocking, Body, Client, Close, Consume, Op
from ._util import (
    ResponseStream,
    as_object,
    check_bool,
    check_int,
    check_path,
    field,
    malformed,
    opt_field,
    parse_datetime,
)
from .content import ReplaceResult, SearchResults, Watch
from . import _transfer
from .errors import APIConnectionError, NotFoundError
from ._transfer import DEFAULT_TUS_CHUNK, DownloadResult, ProgressCallback, UploadResult

if TYPE_CHECKING:
    from .volume import Volume

__all__ = ["VolumeFiles", "FileStat", "BatchResult", "ReadStream", "WriteData"]

#: Chunk size used when streaming file content in either direction.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Batches up to this size are built in memory; larger ones spill to a temporary file.
BATCH_SPOOL_BYTES = 16 * 1024 * 1024

#: What :meth:`VolumeFiles.write` accepts: text (UTF-8 encoded), bytes, a binary file object
#: (read in chunks), or an iterable of bytes chunks (streamed).
WriteData = Union[str, bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]]


@dataclass(frozen=True)
class FileStat:
    """Metadata of one file, directory or symlink in a volume.

    Attributes:
        path: absolute path inside the volume.
        type: ``"file"``, ``"dir"``, ``"symlink"`` (reported, not followed), or ``"fifo"``,
        ``"socket"``, ``"device"`` for special files that sandbox code made.
        size: size in bytes.
        mode: permission bits as an integer (``0o644`` is 420).
        mtime: last modification time (timezone-aware, UTC).
        etag: changes whenever the content changes; pass it as ``if_match`` to make a write
            conditional.
        path_base64: only in listings, only for a path whose bytes are not UTF-8 (names that
            sandbox code made): the exact bytes, base64; ``path`` is then a display form with
            U+FFFD that several entries may share. ``path_bytes`` decodes it.
    """

    path: str
    type: str
    size: int
    mode: int
    mtime: datetime
    etag: str
    path_base64: Optional[str] = None

    @property
    def path_bytes(self) -> bytes:
        """The path's exact bytes (``path`` encoded as UTF-8 unless ``path_base64`` is set)."""
        if self.path_base64 is None:
            return self.path.encode("utf-8")
        return base64.b64decode(self.path_base64, validate=True)

    @property
    def name(self) -> str:
        """The last component of :attr:`path` (``""`` for the root)."""
        return posixpath.basename(self.path)

    @property
    def is_file(self) -> bool:
        """True for a regular file."""
        return self.type == "file"

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return self.type == "dir"

    @property
    def is_symlink(self) -> bool:
        """True for a symbolic link."""
        return self.type == "symlink"

    @classmethod
    def _from_json(cls, doc: object) -> "FileStat":
        what = "file stat"
        d = as_object(doc, what)
        mtime_s = field(d, "mtime", str, what)
        try:
            mtime = parse_datetime(mtime_s)
        except ValueError:
            raise malformed(f"{what}: 'mtime' is not a timestamp", d) from None
        return cls(
            path=field(d, "path", str, what),
            type=field(d, "type", str, what),
            size=field(d, "size", int, what),
            mode=field(d, "mode", int, what),
            mtime=mtime,
            etag=field(d, "etag", str, what),
            path_base64=opt_field(d, "path_base64", str, what),
        )


@dataclass(frozen=True)
class BatchResult:
    """What :meth:`VolumeFiles.write_batch` wrote.

    Attributes:
        files: number of files written.
        bytes: total bytes of file content written.
    """

    files: int
    bytes: int


class ReadStreamBase:
    """What the sync and the async read streams share: the open response and its headers."""

    def __init__(self, response: httpx.Response, chunk_size: int, base_url: str) -> None:
        """Wraps an open streaming response (use ``files.read_stream``)."""
        self._response = response
        self._chunk_size = chunk_size
        self._base_url = base_url
        self._closed = False

    @property
    def etag(self) -> Optional[str]:
        """The etag of the content being read (the ``ETag`` header, unquoted)."""
        v: Optional[str] = self._response.headers.get("etag")
        if not v:
            return None
        v = v.strip()
        if v.startswith("W/"):
            v = v[2:]
        return v.strip('"')

    @property
    def size(self) -> Optional[int]:
        """Number of bytes this stream will yield, when the server said so."""
        return _content_length(self._response)

    def _piece_size(self) -> Optional[int]:
        # The default size passes chunks on as they arrive (re-chunking costs a copy);
        # an explicit size gets chunks of exactly that size.
        return None if self._chunk_size == DEFAULT_CHUNK_SIZE else self._chunk_size

    def _lost(self, e: Exception) -> APIConnectionError:
        return APIConnectionError(
            f"connection to the nullspace server at {self._base_url} failed while reading "
            f"{self._response.request.url}: {e or type(e).__name__}",
            retryable=True,
        )


class ReadStream(ReadStreamBase, ResponseStream):
    """File content streamed in chunks; an iterator of ``bytes`` and a context manager.

    The HTTP response stays open until the content is exhausted, :meth:`close` is called or
    the ``with`` block ends. Memory use is bounded by ``chunk_size``.

    Example::

        with volume.files.read_stream("/big.bin") as chunks:
            for chunk in chunks:
                out.write(chunk)
    """

    _chunks: Optional[Iterator[bytes]] = None

    def __iter__(self) -> "ReadStream":
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        if self._chunks is None:
            self._chunks = self._response.iter_bytes(self._piece_size())
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except httpx.TransportError as e:
            self.close()
            raise self._lost(e) from e
        except BaseException:
            self.close()
            raise

    def read(self) -> bytes:
        """Reads everything that is left and closes the stream."""
        return b"".join(self)


def _file_chunks(f: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while True:
        chunk: Any = f.read(chunk_size)
        if isinstance(chunk, str):
            raise TypeError("the file object gives str; open it in binary mode ('rb')")
        if not chunk:
            return
        yield bytes(chunk)


def _checked_chunks(it: Iterable[Any]) -> Iterator[bytes]:
    for chunk in it:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            if len(chunk):
                yield bytes(chunk)
        else:
            raise TypeError(f"iterators passed to write() must yield bytes, not {type(chunk).__name__}")


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except Exception:
        return False


def _remaining_length(data: object) -> Optional[int]:
    """Bytes left in a seekable binary file object (``None`` for anything else)."""
    if isinstance(data, io.TextIOBase) or not hasattr(data, "read") or not _seekable(data):
        return None
    f = cast(IO[bytes], data)
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
        return max(0, end - here)
    except (OSError, ValueError):
        return None


def _prepare_body(data: object, chunk_size: int) -> Tuple[Body, bool]:
    """Turns write data into (bytes or a chunk-iterator factory, replayable)."""
    if isinstance(data, str):
        return data.encode("utf-8"), True
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), True
    if isinstance(data, io.TextIOBase):
        raise TypeError("data is a text file object; open the file in binary mode ('rb')")
    if hasattr(data, "read"):
        f = cast(IO[bytes], data)
        if _seekable(f):
            start = f.tell()

            def replay() -> Iterator[bytes]:
                f.seek(start)
                return _file_chunks(f, chunk_size)

            return replay, True
        once = _file_chunks(f, chunk_size)
        return (lambda: once), False
    if hasattr(data, "__aiter__"):
        agen = cast(AsyncIterable[bytes], data).__aiter__()
        return (lambda: agen), False  # sent by the async client only
    if isinstance(data, (list, tuple)):
        items = data
        return (lambda: _checked_chunks(items)), True
    if isinstance(data, Iterable) and not isinstance(data, (dict, set, frozenset)):
        gen = _checked_chunks(data)
        return (lambda: gen), False
    raise TypeError(
        f"data must be str, bytes, a binary file object or an iterator of bytes, not {type(data).__name__}"
    )


def _etag_header(if_match: object) -> Optional[str]:
    if if_match is None:
        return None
    if isinstance(if_match, FileStat):
        etag = if_match.etag
    elif isinstance(if_match, str):
        etag = if_match
    else:
        raise TypeError(f"if_match must be an etag str or a FileStat, not {type(if_match).__name__}")
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    etag = etag.strip('"')
    if not etag:
        raise ValueError("if_match must not be empty")
    return f'"{etag}"'


def _spool_size(data: object, spool_dir: Optional[str]) -> Tuple[IO[bytes], int, bool]:
    """Returns (file object positioned at the content, content size, whether we own it)."""
    if isinstance(data, str):
        b = data.encode("utf-8")
        return io.BytesIO(b), len(b), True
    if isinstance(data, (bytes, bytearray, memoryview)):
        b = bytes(data)
        return io.BytesIO(b), len(b), True
    if isinstance(data, io.TextIOBase):
        raise TypeError("a text file object was given; open the file in binary mode ('rb')")
    if hasattr(data, "read") and _seekable(data):
        f = cast(IO[bytes], data)
        start = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(start)
        return f, end - start, False
    body, _ = _prepare_body(data, DEFAULT_CHUNK_SIZE)
    produced = [body] if isinstance(body, bytes) else body() if body is not None else []
    if not isinstance(produced, (list, Iterator)):
        raise TypeError("write_batch takes no async iterators; give bytes or a file object")
    chunks: Iterable[bytes] = produced
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=BATCH_SPOOL_BYTES, dir=spool_dir)
    size = 0
    for c in chunks:
        spool.write(c)
        size += len(c)
    spool.seek(0)
    return spool, size, True


C = TypeVar("C", bound=BaseClient)


def _check_list_args(path: str, recursive: bool, glob: Optional[str], page_size: Optional[int]) -> str:
    p = check_path(path)
    check_bool("recursive", recursive)
    if glob is not None and not isinstance(glob, str):
        raise TypeError(f"glob must be a str, not {type(glob).__name__}")
    if page_size is not None:
        check_int("page_size", page_size, minimum=1)
        if page_size > 100_000:
            raise ValueError(f"page_size must be at most 100000, not {page_size}")
    return p


def check_watch_args(path: str, recursive: bool, last_event_id: Optional[int], reconnect_timeout: Optional[float]) -> str:
    """Checked arguments of ``files.watch``; returns the normalised path."""
    p = check_path(path)
    check_bool("recursive", recursive)
    if last_event_id is not None:
        check_int("last_event_id", last_event_id)
    if reconnect_timeout is not None:
        if isinstance(reconnect_timeout, bool) or not isinstance(reconnect_timeout, (int, float)):
            raise TypeError("reconnect_timeout must be a number of seconds or None")
        if reconnect_timeout < 0:
            raise ValueError(f"reconnect_timeout must be >= 0, not {reconnect_timeout}")
    return p


def _map_chunk_errors(chunks: Iterator[bytes], base: str, url: object) -> Iterator[bytes]:
    try:
        yield from chunks
    except httpx.TransportError as e:
        raise APIConnectionError(
            f"connection to the nullspace server at {base} failed while reading {url}: {e or type(e).__name__}",
            retryable=True,
        ) from e


class FilesOps(Generic[C]):
    """The file operations of one volume, written once (as operations, see ``_client``) for
    :class:`VolumeFiles` and :class:`nullspace.aio.AsyncVolumeFiles`."""

    def __init__(self, volume_name: str, client: C) -> None:
        self._volume_name = volume_name
        self._client: C = client

    def _url(self, suffix: str) -> str:
        return f"/v1/volumes/{self._volume_name}/files{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(volume={self._volume_name!r})"

    def _op_read_bytes(self, path: str, offset: int, length: Optional[int]) -> Op[bytes]:
        params = _range_params(path, offset, length)
        response = yield from self._client.op_request("GET", self._url("/content"), params=params)
        return response.content

    def _op_read_text(self, path: str, encoding: str) -> Op[str]:
        if not isinstance(encoding, str):
            raise TypeError(f"encoding must be a str, not {type(encoding).__name__}")
        data = yield from self._op_read_bytes(path, 0, None)
        return data.decode(encoding)

    def _op_open(self, path: str, chunk_size: int, offset: int, length: Optional[int]) -> Op[httpx.Response]:
        params = _range_params(path, offset, length)
        check_int("chunk_size", chunk_size, minimum=1)
        return (
            yield from self._client.op_request(
                "GET", self._url("/content"), params=params, stream=True, large_body=True
            )
        )

    def _op_write(self, path: str, data: object, if_match: object, overwrite: bool) -> Op[FileStat]:
        p = check_path(path)
        if p == "/":
            raise ValueError("cannot write to '/': give a file path such as '/data.txt'")
        check_bool("overwrite", overwrite)
        etag = _etag_header(if_match)
        body, replayable = _prepare_body(data, DEFAULT_CHUNK_SIZE)
        headers = {"Content-Type": "application/octet-stream"}
        if etag is not None:
            headers["If-Match"] = etag
        length = _remaining_length(data)
        if length is not None:
            # A known length avoids chunked encoding, which costs both sides CPU.
            headers["Content-Length"] = str(length)
        doc = yield from self._client.op_json(
            "PUT",
            self._url("/content"),
            params={"path": p, "overwrite": overwrite},
            content=body,
            headers=headers,
            replayable=replayable,
        )
        return FileStat._from_json(doc)

    def _op_write_batch(self, files: Mapping[str, WriteData]) -> Op[BatchResult]:
        if not isinstance(files, Mapping):
            raise TypeError(f"files must be a dict of path to data, not {type(files).__name__}")
        names: Dict[str, str] = {}
        for path in files:
            p = check_path(path)
            if p == "/":
                raise ValueError("cannot write a file at '/'")
            if p in names:
                raise ValueError(f"paths {names[p]!r} and {path!r} are the same file")
            names[p] = path
        if not names:
            return BatchResult(files=0, bytes=0)
        archive: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=BATCH_SPOOL_BYTES)
        try:
            total = yield Blocking(lambda: _pack_batch(archive, files, names))

            def chunks() -> Iterator[bytes]:
                archive.seek(0)
                return _file_chunks(archive, DEFAULT_CHUNK_SIZE)

            doc = yield from self._client.op_json(
                "POST",
                self._url("/batch"),
                params={"path": "/"},
                content=chunks,
                headers={"Content-Type": "application/x-tar", "Content-Length": str(total)},
            )
        finally:
            archive.close()
        d = as_object(doc, "batch result")
        return BatchResult(files=field(d, "files", int, "batch result"), bytes=field(d, "bytes", int, "batch result"))

    def _op_stat_call(self, verb: str, body: Dict[str, Any]) -> Op[FileStat]:
        doc = yield from self._client.op_json("POST", self._url(verb), json=body)
        return FileStat._from_json(doc)

    def _op_mkdir(self, path: str, parents: bool) -> Op[FileStat]:
        p = check_path(path)
        check_bool("parents", parents)
        return (yield from self._op_stat_call("/mkdir", {"path": p, "parents": parents}))

    def _op_move(self, src: str, dst: str, overwrite: bool) -> Op[FileStat]:
        s, d = check_path(src, "src"), check_path(dst, "dst")
        check_bool("overwrite", overwrite)
        return (yield from self._op_stat_call("/move", {"src": s, "dst": d, "overwrite": overwrite}))

    def _op_copy(self, src: str, dst: str, overwrite: bool, recursive: bool) -> Op[FileStat]:
        s, d = check_path(src, "src"), check_path(dst, "dst")
        check_bool("overwrite", overwrite)
        check_bool("recursive", recursive)
        body = {"src": s, "dst": d, "overwrite": overwrite, "recursive": recursive}
        return (yield from self._op_stat_call("/copy", body))

    def _op_remove(self, path: str, recursive: bool) -> Op[None]:
        p = check_path(path)
        check_bool("recursive", recursive)
        yield from self._client.op_request("DELETE", self._url(""), params={"path": p, "recursive": recursive})

    def _op_upload(
        self,
        local_path: Union[str, "os.PathLike[str]"],
        remote_path: Optional[str],
        chunk_size: int,
        resume: bool,
        checksum: bool,
        progress: Optional[ProgressCallback],
    ) -> Op[UploadResult]:
        local = Path(os.fspath(local_path))
        check_int("chunk_size", chunk_size, minimum=1)
        check_bool("resume", resume)
        check_bool("checksum", checksum)
        st = os.stat(local)
        base = local.resolve().name if local.name in ("", ".", "..") else local.name
        if stat_mod.S_ISDIR(st.st_mode):
            remote = check_path(remote_path if remote_path is not None else "/" + base, "remote_path")
            files, size, skipped = yield from _transfer.op_upload_tree(
                self._client, self._volume_name, local, remote, progress
            )
            return UploadResult(path=remote, files=files, bytes=size, skipped=tuple(skipped))
        if not stat_mod.S_ISREG(st.st_mode):
            raise ValueError(f"{local} is neither a regular file nor a directory")
        if remote_path is None:
            remote = check_path("/" + base, "remote_path")
        else:
            remote = check_path(remote_path, "remote_path")
            if remote == "/" or remote_path.endswith("/") or (yield from self._op_is_dir(remote)):
                remote = posixpath.join(remote, base)
        uploader = _transfer.TusUploader(
            self._client,
            self._volume_name,
            local,
            remote,
            chunk_size=chunk_size,
            resume=resume,
            checksum=checksum,
            progress=progress,
        )
        return (yield from uploader.op_run())

    def _op_is_dir(self, path: str) -> Op[bool]:
        try:
            st = yield from self._op_stat(path)
        except NotFoundError:
            return False
        return st.is_dir

    def _op_download(
        self,
        remote_path: str,
        local_path: Union[str, "os.PathLike[str]", None],
        progress: Optional[ProgressCallback],
    ) -> Op[DownloadResult]:
        remote = check_path(remote_path, "remote_path")
        st = yield from self._op_stat(remote)
        name = posixpath.basename(remote) or self._volume_name
        base = self._client.url
        if st.is_dir:
            dest = Path(os.fspath(local_path)) if local_path is not None else Path(name)
            response = yield from self._client.op_request(
                "GET", self._url("/archive"), params={"path": remote, "format": "tar"}, stream=True
            )
            done = [0]

            def count(n: int) -> None:
                done[0] += n
                if progress is not None:
                    progress(done[0], None)

            def unpack(chunks: Iterator[bytes]) -> DownloadResult:
                reader = _transfer.ResponseReader(_map_chunk_errors(chunks, base, response.request.url), count)
                return _transfer.unpack_tar(cast(IO[bytes], io.BufferedReader(reader, DEFAULT_CHUNK_SIZE)), dest)

            try:
                result: DownloadResult = yield Consume(response, unpack, DEFAULT_CHUNK_SIZE)
            finally:
                yield Close(response)
            return result
        local = Path(os.fspath(local_path)) if local_path is not None else Path(name)
        if local.is_dir():
            local = local / name
        response = yield from self._op_open(remote, DEFAULT_CHUNK_SIZE, 0, None)
        total = _content_length(response)

        def save(chunks: Iterator[bytes]) -> int:
            return _transfer.write_atomically(
                _map_chunk_errors(chunks, base, response.request.url),
                local,
                None if progress is None else (lambda k: progress(k, total)),
            )

        try:
            n: int = yield Consume(response, save)
        finally:
            yield Close(response)
        return DownloadResult(local_path=local, files=1, dirs=0, symlinks=0, bytes=n)

    def _op_download_archive(
        self,
        remote_path: str,
        local: Union[str, "os.PathLike[str]", IO[bytes]],
        format: str,
        progress: Optional[ProgressCallback],
    ) -> Op[int]:
        remote = check_path(remote_path, "remote_path")
        if format not in ("tar", "tar.gz", "zip"):
            raise ValueError(f"format must be 'tar', 'tar.gz' or 'zip', not {format!r}")
        response = yield from self._client.op_request(
            "GET", self._url("/archive"), params={"path": remote, "format": format}, stream=True
        )
        base = self._client.url

        def save(raw: Iterator[bytes]) -> int:
            chunks = _map_chunk_errors(raw, base, response.request.url)
            if hasattr(local, "write"):
                out = cast(IO[bytes], local)
                n = 0
                for c in chunks:
                    out.write(c)
                    n += len(c)
                    if progress is not None:
                        progress(n, None)
                return n
            path = Path(os.fspath(cast("os.PathLike[str]", local)))
            return _transfer.write_atomically(
                chunks, path, None if progress is None else (lambda k: progress(k, None))
            )

        try:
            size: int = yield Consume(response, save, DEFAULT_CHUNK_SIZE)
        finally:
            yield Close(response)
        return size

    def _op_url(self, path: str, expires: Union[int, float, timedelta], method: str) -> Op[str]:
        p = check_path(path)
        if isinstance(expires, timedelta):
            seconds = expires.total_seconds()
        elif isinstance(expires, (int, float)) and not isinstance(expires, bool):
            seconds = float(expires)
        else:
            raise TypeError(f"expires must be seconds or a timedelta, not {type(expires).__name__}")
        if seconds != int(seconds) or not 1 <= seconds <= 7 * 24 * 3600:
            raise ValueError(f"expires must be a whole number of seconds from 1 to 604800 (7 days), not {expires!r}")
        if not isinstance(method, str) or method.upper() not in ("GET", "PUT"):
            raise ValueError(f"method must be 'GET' or 'PUT', not {method!r}")
        body = {"path": p, "method": method.upper(), "expires_in": int(seconds)}
        doc = as_object((yield from self._client.op_json("POST", self._url("/url"), json=body)), "signed URL")
        return field(doc, "url", str, "signed URL")

    def _op_page(
        self, p: str, recursive: bool, glob: Optional[str], limit: Optional[int], cursor: Optional[str]
    ) -> Op[Tuple[List[FileStat], Optional[str]]]:
        """One page of a listing and the cursor of the next (``None``: it was the last)."""
        params: Dict[str, Any] = {"path": p, "recursive": recursive, "glob": glob, "limit": limit, "cursor": cursor}
        doc = as_object((yield from self._client.op_json("GET", self._url("/list"), params=params)), "file list")
        entries = [FileStat._from_json(e) for e in field(doc, "entries", list, "file list")]
        return entries, opt_field(doc, "next_cursor", str, "file list") or None

    def _op_list(self, path: str, recursive: bool, glob: Optional[str], page_size: Optional[int]) -> Op[List[FileStat]]:
        p = _check_list_args(path, recursive, glob, page_size)
        out: List[FileStat] = []
        cursor: Optional[str] = None
        while True:
            entries, cursor = yield from self._op_page(p, recursive, glob, page_size, cursor)
            out.extend(entries)
            if cursor is None:
                return out

    def _op_stat(self, path: str) -> Op[FileStat]:
        p = check_path(path)
        return FileStat._from_json((yield from self._client.op_json("GET", self._url("/stat"), params={"path": p})))

    def _op_exists(self, path: str) -> Op[bool]:
        p = check_path(path)
        doc = yield from self._client.op_json("GET", self._url("/exists"), params={"path": p})
        return field(as_object(doc, "exists"), "exists", bool, "exists")

    def _op_search(
        self,
        pattern: str,
        path: str,
        glob: Optional[str],
        regex: bool,
        ignore_case: bool,
        max_results: Optional[int],
    ) -> Op[httpx.Response]:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
        p = check_path(path)
        if glob is not None and not isinstance(glob, str):
            raise TypeError(f"glob must be a str, not {type(glob).__name__}")
        check_bool("regex", regex)
        check_bool("ignore_case", ignore_case)
        if max_results is not None:
            check_int("max_results", max_results)
        body = {
            "pattern": pattern,
            "path": p,
            "glob": glob,
            "regex": regex,
            "ignore_case": ignore_case,
            "max_results": max_results,
        }
        return (
            yield from self._client.op_request("POST", self._url("/search"), json=body, stream=True, idempotent=True)
        )

    def _op_replace(
        self,
        pattern: str,
        replacement: str,
        path: str,
        glob: Optional[str],
        regex: bool,
        dry_run: bool,
        ignore_case: bool,
    ) -> Op[ReplaceResult]:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
        if not isinstance(replacement, str):
            raise TypeError(f"replacement must be a str, not {type(replacement).__name__}")
        p = check_path(path)
        if glob is not None and not isinstance(glob, str):
            raise TypeError(f"glob must be a str, not {type(glob).__name__}")
        check_bool("regex", regex)
        check_bool("dry_run", dry_run)
        check_bool("ignore_case", ignore_case)
        body = {
            "pattern": pattern,
            "replacement": replacement,
            "path": p,
            "glob": glob,
            "regex": regex,
            "ignore_case": ignore_case,
            "dry_run": dry_run,
        }
        # A dry run changes nothing, so it may be retried; a real one is sent once.
        doc = yield from self._client.op_json("POST", self._url("/replace"), json=body, idempotent=dry_run)
        return ReplaceResult._from_json(doc)

    def _op_edit(self, path: str, old: str, new: str, count: Optional[int], if_match: object) -> Op[FileStat]:
        p = check_path(path)
        if not isinstance(old, str):
            raise TypeError(f"old must be a str, not {type(old).__name__}")
        if not isinstance(new, str):
            raise TypeError(f"new must be a str, not {type(new).__name__}")
        if not old:
            raise ValueError("old must not be empty")
        if count is not None:
            check_int("count", count)
        etag = _etag_header(if_match)
        body = {
            "path": p,
            "old": old,
            "new": new,
            "count": count,
            "if_match": etag.strip('"') if etag is not None else None,
        }
        return (yield from self._op_stat_call("/edit", body))

    def _watch_url(self) -> str:
        return f"/v1/volumes/{self._volume_name}/watch"


class VolumeFiles(FilesOps[Client]):
    """File operations on one volume; get it as ``volume.files``."""

    def __init__(self, volume: "Volume") -> None:
        """Binds the file API to ``volume`` (use ``volume.files``)."""
        super().__init__(volume.name, volume.client)

    # ------------------------------------------------------------------------------ reading

    def read(self, path: str, *, encoding: str = "utf-8") -> str:
        """Reads a whole file as text (UTF-8 by default).

        Raises:
            NotFoundError: no such file.
            InvalidArgumentError: the path is a directory.
            UnicodeDecodeError: the content is not valid in ``encoding``.
        """
        return self._client.run(self._op_read_text(path, encoding))

    def read_bytes(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        """Reads a file, or ``length`` bytes of it from ``offset``, as bytes.

        A range past the end of the file is cut short (an offset past the end gives ``b""``).
        """
        return self._client.run(self._op_read_bytes(path, offset, length))

    def read_stream(
        self,
        path: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        offset: int = 0,
        length: Optional[int] = None,
    ) -> ReadStream:
        """Streams a file in constant memory: chunks as they arrive from the network (at most
        ``chunk_size`` bytes each) by default, or of exactly ``chunk_size`` bytes when given.

        The request is made at once, so a missing file raises here. Use the result in a
        ``with`` block, or exhaust it, so the connection is released.
        """
        response = self._client.run(self._op_open(path, chunk_size, offset, length))
        return ReadStream(response, chunk_size, self._client.url)

    # ------------------------------------------------------------------------------ writing

    def write(
        self,
        path: str,
        data: WriteData,
        if_match: Union[str, FileStat, None] = None,
        overwrite: bool = True,
    ) -> FileStat:
        """Writes a whole file atomically, creating missing parent directories.

        ``data`` may be ``str`` (written as UTF-8), ``bytes``, a binary file object, or an
        iterable of ``bytes`` chunks; file objects and iterators are streamed in constant
        memory. Iterators that are not lists or tuples cannot be sent twice, so such writes
        are not retried after a failure.

        Args:
            if_match: an etag (or a :class:`FileStat`): write only if the file still has it.
            overwrite: when false, an existing file is an error.

        Raises:
            ConflictError: ``if_match`` is stale, or the file does not exist.
            AlreadyExistsError: the file exists and ``overwrite`` is false.
            QuotaExceededError: the volume's cap would be exceeded; nothing changed.
        """
        return self._client.run(self._op_write(path, data, if_match, overwrite))

    def write_batch(self, files: Mapping[str, WriteData]) -> BatchResult:
        """Writes many files in one request, all or nothing.

        ``files`` maps absolute paths to data (anything :meth:`write` accepts). The batch is
        sent as one tar archive, built in memory up to 16 MiB and in a temporary file beyond
        that. Either every file is written or, on any error, none is.

        Raises:
            QuotaExceededError: the batch does not fit in the volume's cap; nothing changed.
        """
        return self._client.run(self._op_write_batch(files))

    def mkdir(self, path: str, parents: bool = True) -> FileStat:
        """Creates a directory (and its missing parents, unless ``parents=False``).

        An existing directory is not an error when ``parents`` is true.
        """
        return self._client.run(self._op_mkdir(path, parents))

    def move(self, src: str, dst: str, overwrite: bool = False) -> FileStat:
        """Moves or renames a file or directory; returns the stat of ``dst``.

        Raises:
            AlreadyExistsError: ``dst`` exists and ``overwrite`` is false.
            InvalidArgumentError: moving a directory into itself.
        """
        return self._client.run(self._op_move(src, dst, overwrite))

    def copy(self, src: str, dst: str, overwrite: bool = False, recursive: bool = True) -> FileStat:
        """Copies a file, or a directory tree (symlinks copied as links); returns the stat of ``dst``.

        Unlike the HTTP API, ``recursive`` defaults to true, as with ``shutil.copytree``:
        pass ``recursive=False`` to refuse copying a directory.

        Raises:
            AlreadyExistsError: ``dst`` exists and ``overwrite`` is false.
            InvalidArgumentError: ``src`` is a directory and ``recursive`` is false.
            QuotaExceededError: the copy would exceed the cap; nothing changed.
        """
        return self._client.run(self._op_copy(src, dst, overwrite, recursive))

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, a symlink, an empty directory, or (``recursive=True``) a whole tree.

        Raises:
            NotFoundError: no such path.
            InvalidArgumentError: a non-empty directory without ``recursive``, or ``/``.
        """
        self._client.run(self._op_remove(path, recursive))

    # ------------------------------------------------------------------------------ transfers

    def upload(
        self,
        local_path: Union[str, "os.PathLike[str]"],
        remote_path: Optional[str] = None,
        *,
        chunk_size: int = DEFAULT_TUS_CHUNK,
        resume: bool = True,
        checksum: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> UploadResult:
        """Uploads a local file or directory tree.

        A file goes through the resumable (tus) endpoint in chunks of ``chunk_size`` bytes and
        appears at ``remote_path`` atomically when complete. Each chunk is durable on the server
        before the next is sent; with ``checksum=True`` each also carries its sha256, which the
        server checks (TCP and the server's own offset check already catch what the CLI's
        uploads rely on, so the default is off, as in the CLI). If an upload is interrupted
        (the process killed, the connection or the server gone), calling ``upload`` again with
        the same arguments continues from what the server had stored: the upload's URL is kept
        meanwhile under ``$XDG_CACHE_HOME/nullspace/uploads/`` (``resume=False`` neither reads
        nor writes that record). A path ending in ``/`` or naming an existing directory puts
        the file inside it.

        A directory is sent as one streamed, all-or-nothing tar batch: layout and empty
        directories are kept, its contents go into ``remote_path`` (created if missing;
        existing files are replaced), and symlinks and special files are skipped (listed in
        :attr:`UploadResult.skipped`).

        Args:
            local_path: the local file or directory.
            remote_path: destination in the volume; default ``/`` + the local name.
            chunk_size: bytes per resumable chunk (files only).
            resume: continue an earlier interrupted upload of the same file.
            checksum: send an ``Upload-Checksum: sha256`` with every chunk (files only).
            progress: called as ``progress(bytes_done, total_or_None)`` while sending.

        Raises:
            QuotaExceededError: the file does not fit in the volume; nothing changed.
            PayloadTooLargeError: the file is larger than the volume's cap.
            FileNotFoundError: ``local_path`` does not exist.
        """
        return self._client.run(self._op_upload(local_path, remote_path, chunk_size, resume, checksum, progress))

    def download(
        self,
        remote_path: str,
        local_path: Union[str, "os.PathLike[str]", None] = None,
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> DownloadResult:
        """Downloads a file, or a directory tree into a local directory.

        A file is streamed to a temporary file beside ``local_path``, fsynced and renamed into
        place (default: its name in the current directory; inside ``local_path`` when that is
        an existing directory). A directory is fetched as one tar stream and unpacked into
        ``local_path`` (default: its name; created if missing): entries that would land outside
        it (absolute names, ``..``, writing through a symlink) are refused with ``ValueError``.

        Raises:
            NotFoundError: no such path in the volume.
        """
        return self._client.run(self._op_download(remote_path, local_path, progress))

    def download_archive(
        self,
        remote_path: str,
        local: Union[str, "os.PathLike[str]", IO[bytes]],
        format: str = "tar",
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> int:
        """Downloads a directory as one ``tar``, ``tar.gz`` or ``zip`` archive; returns its size.

        ``local`` is a file path (written through a temporary file and renamed into place) or
        a binary file object to write to. The archive is streamed: memory stays constant.

        Raises:
            NotFoundError: no such path in the volume.
            InvalidArgumentError: the path is a file, not a directory.
            ValueError: an unknown ``format``.
        """
        return self._client.run(self._op_download_archive(remote_path, local, format, progress))

    def url(
        self,
        path: str,
        expires: Union[int, float, timedelta] = 3600,
        method: str = "GET",
    ) -> str:
        """Returns a signed URL that downloads (``GET``) or uploads (``PUT``) ``path``.

        Anyone holding the URL can use it without an API key until it expires; it is bound to
        this volume, the path and the method, and any change to it makes it invalid (403).

        Args:
            expires: lifetime in seconds (or a ``timedelta``), from 1 s to 7 days.
            method: ``"GET"`` or ``"PUT"``.

        Raises:
            ValueError: ``expires`` out of range or an unknown ``method``.
        """
        return self._client.run(self._op_url(path, expires, method))

    # ------------------------------------------------------------------------------ metadata

    def iter_list(
        self,
        path: str = "/",
        recursive: bool = False,
        glob: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> Iterator[FileStat]:
        """Lists a directory lazily, fetching pages of ``page_size`` entries (server default 1000).

        Entries are sorted by path, depth first. ``glob`` uses shell syntax (``*``, ``?``,
        ``[ab]``, ``{a,b}``, ``**``); without ``/`` it matches names, with ``/`` paths relative
        to ``path``. Listing a file gives that one entry.
        """
        p = _check_list_args(path, recursive, glob, page_size)
        return self._pages(p, recursive, glob, page_size)

    def _pages(self, p: str, recursive: bool, glob: Optional[str], limit: Optional[int]) -> Iterator[FileStat]:
        cursor: Optional[str] = None
        while True:
            entries, cursor = self._client.run(self._op_page(p, recursive, glob, limit, cursor))
            yield from entries
            if cursor is None:
                return

    def list(
        self,
        path: str = "/",
        recursive: bool = False,
        glob: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> List[FileStat]:
        """Lists a directory (all pages); see :meth:`iter_list` for the arguments."""
        return self._client.run(self._op_list(path, recursive, glob, page_size))

    def stat(self, path: str) -> FileStat:
        """Returns the metadata of a file, directory or symlink (symlinks are not followed).

        Raises:
            NotFoundError: no such path.
        """
        return self._client.run(self._op_stat(path))

    def exists(self, path: str) -> bool:
        """True if ``path`` exists in the volume (a dangling symlink exists)."""
        return self._client.run(self._op_exists(path))

    # ------------------------------------------------------------------------------ contents

    def search(
        self,
        pattern: str,
        path: str = "/",
        glob: Optional[str] = None,
        regex: bool = True,
        ignore_case: bool = False,
        max_results: Optional[int] = None,
    ) -> SearchResults:
        """Searches file contents below ``path``; matching lines stream as the server finds them.

        ``pattern`` is Rust regex syntax (or a literal string with ``regex=False``). Files that
        look binary (a NUL byte) are skipped; results come in path order. ``glob`` selects
        files as in :meth:`list`. With ``max_results`` the search stops after that many lines
        (``results.truncated`` is then true). The request is made at once, so a bad pattern or
        a missing path raises here.

        Example::

            with volume.files.search("TODO|FIXME", "/src", glob="*.py") as results:
                for m in results:
                    print(f"{m.path}:{m.line}:{m.column}: {m.text}")

        Raises:
            InvalidArgumentError: the pattern or glob is invalid (the message quotes the parser).
            NotFoundError: ``path`` does not exist.
        """
        response = self._client.run(self._op_search(pattern, path, glob, regex, ignore_case, max_results))
        return SearchResults(response, self._client)

    def replace(
        self,
        pattern: str,
        replacement: str,
        path: str = "/",
        glob: Optional[str] = None,
        regex: bool = True,
        dry_run: bool = False,
        *,
        ignore_case: bool = False,
    ) -> ReplaceResult:
        """Replaces every match of ``pattern`` in the files below ``path``.

        The selection is the same as :meth:`search`'s. With a regex, ``replacement`` may use
        ``$1`` or ``${name}`` (``$$`` is a ``$``); with ``regex=False`` both are literal. Each
        changed file is rewritten atomically (its etag changes). With ``dry_run`` the result
        lists the same files and counts and nothing changes. A file changed by someone else
        during the rewrite is left alone and listed with ``skipped="conflict"``.

        Raises:
            InvalidArgumentError: the pattern or glob is invalid.
            NotFoundError: ``path`` does not exist.
            QuotaExceededError: the rewritten files would not fit in the volume's cap;
                nothing changed.
        """
        return self._client.run(self._op_replace(pattern, replacement, path, glob, regex, dry_run, ignore_case))

    def edit(
        self,
        path: str,
        old: str,
        new: str,
        count: Optional[int] = 1,
        if_match: Union[str, FileStat, None] = None,
    ) -> FileStat:
        """Replaces exactly ``count`` occurrences of the literal text ``old`` with ``new`` in
        one file, atomically; ``count=None`` replaces all of them (at least one).

        Finding any other number of occurrences changes nothing and raises ``ConflictError``,
        whose message says how many were found. Returns the file's new stat.

        Raises:
            NotFoundError: no such file.
            ConflictError: another number of occurrences was found, or ``if_match`` is stale.
            QuotaExceededError: the edited file would not fit in the volume's cap.
        """
        return self._client.run(self._op_edit(path, old, new, count, if_match))

    def watch(
        self,
        path: str = "/",
        recursive: bool = True,
        *,
        last_event_id: Optional[int] = None,
        reconnect_timeout: Optional[float] = None,
    ) -> Watch:
        """Watches ``path`` for changes: an iterator of :class:`WatchEvent` that reconnects by
        itself (see :class:`Watch`), best used as a context manager.

        Changes made through the API are reported (and, once sandboxes mount volumes, changes
        made by sandbox code). ``recursive=False`` reports only ``path`` and its direct
        entries. ``last_event_id`` resumes after an event id seen earlier: the retained events
        after it come first (after a ``"gap"`` event if some are gone). The connection is made
        at once, so a missing path raises here.

        Example::

            with volume.files.watch("/inbox") as events:
                for ev in events:
                    if ev.is_gap:
                        resync()
                    elif ev.type == "created" and not ev.is_dir:
                        handle(ev.path)

        Raises:
            NotFoundError: ``path`` does not exist.
        """
        p = check_watch_args(path, recursive, last_event_id, reconnect_timeout)
        return Watch(self._client, self._watch_url(), p, recursive, last_event_id, reconnect_timeout)


def _content_length(response: httpx.Response) -> Optional[int]:
    v = response.headers.get("content-length")
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _pack_batch(archive: IO[bytes], files: Mapping[str, WriteData], names: Dict[str, str]) -> int:
    """Writes the tar of a batch into ``archive``; returns its size."""
    now = int(time.time())
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p, original in names.items():
            src, size, owned = _spool_size(files[original], None)
            try:
                info = tarfile.TarInfo(p.lstrip("/"))
                info.size = size
                info.mode = 0o644
                info.mtime = now
                info.type = tarfile.REGTYPE
                tar.addfile(info, src)
            finally:
                if owned:
                    src.close()
    return archive.tell()


def _range_params(path: str, offset: int, length: Optional[int]) -> Dict[str, Any]:
    """Checked query parameters of a read of ``length`` bytes (or the rest) from ``offset``."""
    params: Dict[str, Any] = {"path": check_path(path)}
    check_int("offset", offset)
    if offset:
        params["offset"] = offset
    if length is not None:
        check_int("length", length)
        params["length"] = length
    return params
