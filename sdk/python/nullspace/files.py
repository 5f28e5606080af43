"""The direct file API of a volume: ``volume.files`` (no sandbox needed).

Paths are absolute inside the volume (``/a/b.txt``). Writes are atomic: readers see the old or
the new content, never a torn file, and a write that returned is durable.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    Union,
    cast,
)

import httpx

from ._client import Client
from ._util import (
    as_object,
    check_bool,
    check_int,
    check_path,
    field,
    malformed,
    opt_field,
    parse_datetime,
)
from .errors import APIConnectionError

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
        type: ``"file"``, ``"dir"`` or ``"symlink"`` (symlinks are reported, not followed).
        size: size in bytes.
        mode: permission bits as an integer (``0o644`` is 420).
        mtime: last modification time (timezone-aware, UTC).
        etag: changes whenever the content changes; pass it as ``if_match`` to make a write
            conditional.
    """

    path: str
    type: str
    size: int
    mode: int
    mtime: datetime
    etag: str

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


class ReadStream:
    """File content streamed in chunks; an iterator of ``bytes`` and a context manager.

    The HTTP response stays open until the content is exhausted, :meth:`close` is called or
    the ``with`` block ends. Memory use is bounded by ``chunk_size``.

    Example::

        with volume.files.read_stream("/big.bin") as chunks:
            for chunk in chunks:
                out.write(chunk)
    """

    def __init__(self, response: httpx.Response, chunk_size: int, base_url: str) -> None:
        """Wraps an open streaming response (use :meth:`VolumeFiles.read_stream`)."""
        self._response = response
        self._chunk_size = chunk_size
        self._base_url = base_url
        self._chunks: Optional[Iterator[bytes]] = None
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
        v = self._response.headers.get("content-length")
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    @property
    def closed(self) -> bool:
        """True once the response is closed."""
        return self._closed

    def __iter__(self) -> "ReadStream":
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        if self._chunks is None:
            self._chunks = self._response.iter_bytes(self._chunk_size)
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except httpx.TransportError as e:
            self.close()
            raise APIConnectionError(
                f"connection to the nullspace server at {self._base_url} failed while reading "
                f"{self._response.request.url}: {e or type(e).__name__}",
                retryable=True,
            ) from e
        except BaseException:
            self.close()
            raise

    def read(self) -> bytes:
        """Reads everything that is left and closes the stream."""
        return b"".join(self)

    def close(self) -> None:
        """Closes the underlying response (idempotent)."""
        if not self._closed:
            self._closed = True
            self._response.close()

    def __enter__(self) -> "ReadStream":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


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


def _prepare_body(data: object, chunk_size: int) -> Tuple[Union[bytes, Callable[[], Iterator[bytes]]], bool]:
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
    chunks = [body] if isinstance(body, bytes) else body()
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=BATCH_SPOOL_BYTES, dir=spool_dir)
    size = 0
    for c in chunks:
        spool.write(c)
        size += len(c)
    spool.seek(0)
    return spool, size, True


class VolumeFiles:
    """File operations on one volume; get it as ``volume.files``."""

    def __init__(self, volume: "Volume") -> None:
        """Binds the file API to ``volume`` (use ``volume.files``)."""
        self._volume = volume

    @property
    def _client(self) -> Client:
        return self._volume.client

    def _url(self, suffix: str) -> str:
        return f"/v1/volumes/{self._volume.name}/files{suffix}"

    def __repr__(self) -> str:
        return f"VolumeFiles(volume={self._volume.name!r})"

    # ------------------------------------------------------------------------------ reading

    def read(self, path: str, *, encoding: str = "utf-8") -> str:
        """Reads a whole file as text (UTF-8 by default).

        Raises:
            NotFoundError: no such file.
            InvalidArgumentError: the path is a directory.
            UnicodeDecodeError: the content is not valid in ``encoding``.
        """
        if not isinstance(encoding, str):
            raise TypeError(f"encoding must be a str, not {type(encoding).__name__}")
        return self.read_bytes(path).decode(encoding)

    def read_bytes(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        """Reads a file, or ``length`` bytes of it from ``offset``, as bytes.

        A range past the end of the file is cut short (an offset past the end gives ``b""``).
        """
        p = check_path(path)
        check_int("offset", offset)
        if length is not None:
            check_int("length", length)
        params: Dict[str, Any] = {"path": p}
        if offset:
            params["offset"] = offset
        if length is not None:
            params["length"] = length
        return self._client.request("GET", self._url("/content"), params=params).content

    def read_stream(
        self,
        path: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        offset: int = 0,
        length: Optional[int] = None,
    ) -> ReadStream:
        """Streams a file in chunks of ``chunk_size`` bytes (constant memory).

        The request is made at once, so a missing file raises here. Use the result in a
        ``with`` block, or exhaust it, so the connection is released.
        """
        p = check_path(path)
        check_int("chunk_size", chunk_size, minimum=1)
        check_int("offset", offset)
        if length is not None:
            check_int("length", length)
        params: Dict[str, Any] = {"path": p}
        if offset:
            params["offset"] = offset
        if length is not None:
            params["length"] = length
        response = self._client.request("GET", self._url("/content"), params=params, stream=True)
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
        p = check_path(path)
        if p == "/":
            raise ValueError("cannot write to '/': give a file path such as '/data.txt'")
        check_bool("overwrite", overwrite)
        etag = _etag_header(if_match)
        body, replayable = _prepare_body(data, DEFAULT_CHUNK_SIZE)
        headers = {"Content-Type": "application/octet-stream"}
        if etag is not None:
            headers["If-Match"] = etag
        doc = self._client.request_json(
            "PUT",
            self._url("/content"),
            params={"path": p, "overwrite": overwrite},
            content=body,
            headers=headers,
            replayable=replayable,
        )
        return FileStat._from_json(doc)

    def write_batch(self, files: Mapping[str, WriteData]) -> BatchResult:
        """Writes many files in one request, all or nothing.

        ``files`` maps absolute paths to data (anything :meth:`write` accepts). The batch is
        sent as one tar archive, built in memory up to 16 MiB and in a temporary file beyond
        that. Either every file is written or, on any error, none is.

        Raises:
            QuotaExceededError: the batch does not fit in the volume's cap; nothing changed.
        """
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
            total = archive.tell()
            archive.seek(0)

            def chunks() -> Iterator[bytes]:
                archive.seek(0)
                return _file_chunks(archive, DEFAULT_CHUNK_SIZE)

            doc = self._client.request_json(
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

    def mkdir(self, path: str, parents: bool = True) -> FileStat:
        """Creates a directory (and its missing parents, unless ``parents=False``).

        An existing directory is not an error when ``parents`` is true.
        """
        p = check_path(path)
        check_bool("parents", parents)
        doc = self._client.request_json("POST", self._url("/mkdir"), json={"path": p, "parents": parents})
        return FileStat._from_json(doc)

    def move(self, src: str, dst: str, overwrite: bool = False) -> FileStat:
        """Moves or renames a file or directory; returns the stat of ``dst``.

        Raises:
            AlreadyExistsError: ``dst`` exists and ``overwrite`` is false.
            InvalidArgumentError: moving a directory into itself.
        """
        s, d = check_path(src, "src"), check_path(dst, "dst")
        check_bool("overwrite", overwrite)
        doc = self._client.request_json(
            "POST", self._url("/move"), json={"src": s, "dst": d, "overwrite": overwrite}
        )
        return FileStat._from_json(doc)

    def copy(self, src: str, dst: str, overwrite: bool = False, recursive: bool = True) -> FileStat:
        """Copies a file, or a directory tree (symlinks copied as links); returns the stat of ``dst``.

        Unlike the HTTP API, ``recursive`` defaults to true, as with ``shutil.copytree``:
        pass ``recursive=False`` to refuse copying a directory.

        Raises:
            AlreadyExistsError: ``dst`` exists and ``overwrite`` is false.
            InvalidArgumentError: ``src`` is a directory and ``recursive`` is false.
            QuotaExceededError: the copy would exceed the cap; nothing changed.
        """
        s, d = check_path(src, "src"), check_path(dst, "dst")
        check_bool("overwrite", overwrite)
        check_bool("recursive", recursive)
        doc = self._client.request_json(
            "POST",
            self._url("/copy"),
            json={"src": s, "dst": d, "overwrite": overwrite, "recursive": recursive},
        )
        return FileStat._from_json(doc)

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, a symlink, an empty directory, or (``recursive=True``) a whole tree.

        Raises:
            NotFoundError: no such path.
            InvalidArgumentError: a non-empty directory without ``recursive``, or ``/``.
        """
        p = check_path(path)
        check_bool("recursive", recursive)
        self._client.request("DELETE", self._url(""), params={"path": p, "recursive": recursive})

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
        p = check_path(path)
        check_bool("recursive", recursive)
        if glob is not None and not isinstance(glob, str):
            raise TypeError(f"glob must be a str, not {type(glob).__name__}")
        if page_size is not None:
            check_int("page_size", page_size, minimum=1)
            if page_size > 100_000:
                raise ValueError(f"page_size must be at most 100000, not {page_size}")
        return self._pages(p, recursive, glob, page_size)

    def _pages(self, p: str, recursive: bool, glob: Optional[str], limit: Optional[int]) -> Iterator[FileStat]:
        cursor: Optional[str] = None
        while True:
            params: Dict[str, Any] = {"path": p, "recursive": recursive, "glob": glob, "limit": limit, "cursor": cursor}
            doc = as_object(self._client.request_json("GET", self._url("/list"), params=params), "file list")
            entries = field(doc, "entries", list, "file list")
            for e in entries:
                yield FileStat._from_json(e)
            cursor = opt_field(doc, "next_cursor", str, "file list")
            if not cursor:
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
        return [*self.iter_list(path, recursive, glob, page_size=page_size)]

    def stat(self, path: str) -> FileStat:
        """Returns the metadata of a file, directory or symlink (symlinks are not followed).

        Raises:
            NotFoundError: no such path.
        """
        p = check_path(path)
        return FileStat._from_json(self._client.request_json("GET", self._url("/stat"), params={"path": p}))

    def exists(self, path: str) -> bool:
        """True if ``path`` exists in the volume (a dangling symlink exists)."""
        p = check_path(path)
        doc = as_object(self._client.request_json("GET", self._url("/exists"), params={"path": p}), "exists")
        return field(doc, "exists", bool, "exists")
