"""Transfers: resumable (tus 1.0) file uploads, directory uploads and downloads, archives.

Used by :class:`nullspace.VolumeFiles` (``upload``, ``download``, ``download_archive``). A file
upload keeps the URL of its tus upload in a small resume record under
``$XDG_CACHE_HOME/nullspace/uploads/`` (default ``~/.cache/nullspace/uploads/``), keyed by the
server, the volume, the remote path and the local file's size and modification time: running
the same upload again continues from the server's durable offset. The CLI derives the same
record names, so either can resume an upload the other started.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import queue
import stat as stat_mod
import tarfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Dict, Iterator, List, NoReturn, Optional, Tuple, Union
from urllib.parse import urljoin, urlsplit

import httpx

from ._client import BaseClient, Blocking, Op, Read, Send, Sleep, error_from_response
from .errors import APIConnectionError, NotFoundError, NullspaceError

__all__ = [
    "TUS_VERSION",
    "DEFAULT_TUS_CHUNK",
    "ProgressCallback",
    "UploadResult",
    "DownloadResult",
    "record_name",
    "records_dir",
    "TusUploader",
    "op_upload_tree",
    "unpack_tar",
]

#: The tus protocol version spoken.
TUS_VERSION = "1.0.0"
#: Bytes per tus ``PATCH`` by default.
DEFAULT_TUS_CHUNK = 16 * 1024 * 1024
#: Called with (bytes done, total bytes or ``None`` when unknown).
ProgressCallback = Callable[[int, Optional[int]], None]

_OFFSET_TYPE = "application/offset+octet-stream"
_PIPE_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    """What :meth:`VolumeFiles.upload` did.

    Attributes:
        path: where the file or tree went in the volume.
        files: number of files written (1 for a file upload).
        bytes: bytes of file content written.
        resumed_from: bytes that were already on the server from an earlier, interrupted
            run of the same upload (0 for a fresh upload or a directory).
        etag: the etag of the uploaded file (``None`` for a directory).
        skipped: local entries left out of a directory upload (symlinks, sockets, devices).
    """

    path: str
    files: int
    bytes: int
    resumed_from: int = 0
    etag: Optional[str] = None
    skipped: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DownloadResult:
    """What :meth:`VolumeFiles.download` wrote.

    Attributes:
        local_path: the local file or directory written.
        files: number of files written.
        dirs: number of directories made (including existing ones the archive named).
        symlinks: number of symbolic links made.
        bytes: bytes of file content written.
        skipped_symlinks: links not made because they point outside ``local_path`` (each
            with a warning).
    """

    local_path: Path
    files: int
    dirs: int
    symlinks: int
    bytes: int
    skipped_symlinks: int = 0


# ------------------------------------------------------------------------------ resume records


def records_dir() -> Optional[Path]:
    """``$XDG_CACHE_HOME/nullspace/uploads``, else ``~/.cache/nullspace/uploads``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "nullspace" / "uploads"
    home = os.environ.get("HOME", "")
    if home and os.path.isabs(home):
        return Path(home) / ".cache" / "nullspace" / "uploads"
    return None


def record_name(server: str, volume: str, path: str, size: int, mtime_ns: int) -> str:
    """The file name of a resume record (the same as the CLI's)."""
    key = f"{server}\n{volume}\n{path}\n{size}\n{mtime_ns}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json"


def _read_record(path: Path) -> Optional[str]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    url = doc.get("upload_url") if isinstance(doc, dict) else None
    return url if isinstance(url, str) and url else None


def _write_record(path: Path, doc: Dict[str, object]) -> None:
    """Writes atomically, readable by the user only; a failure only costs resumability."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(doc).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        pass


# ------------------------------------------------------------------------------ tus


def raise_connection_error(base: str, method: str, url: str) -> NoReturn:
    """Raises the SDK's connection error for a tus request that got no answer."""
    raise APIConnectionError(
        f"connection to the nullspace server at {base} failed ({method} {url}): the server closed "
        "the connection without answering",
        retryable=True,
    )


class TusUploader:
    """Uploads one local file to one volume path through the tus endpoint, resumably.

    Each ``PATCH`` carries ``chunk_size`` bytes (and, with ``checksum``, an
    ``Upload-Checksum: sha256``). A dropped connection, a bad checksum or an offset mismatch is
    retried up to ``retries`` times after asking the server (``HEAD``) for its durable offset.
    Run :meth:`op_run` with the client (sync or async) it was made with.
    """

    def __init__(
        self,
        client: BaseClient,
        volume: str,
        local: Path,
        remote: str,
        *,
        chunk_size: int = DEFAULT_TUS_CHUNK,
        resume: bool = True,
        checksum: bool = False,
        retries: int = 5,
        retry_delay: float = 0.5,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        """Prepares the upload; nothing is sent until :meth:`op_run` runs."""
        self._client = client
        self._volume = volume
        self._local = local
        self._remote = remote
        self._chunk_size = chunk_size
        self._resume = resume
        self._checksum = checksum
        self._retries = retries
        self._retry_delay = retry_delay
        self._progress = progress
        st = os.stat(local)
        self._size = st.st_size
        self._mtime_ns = st.st_mtime_ns
        d = records_dir() if resume else None
        self.record: Optional[Path] = (
            d / record_name(client.url, volume, remote, self._size, self._mtime_ns) if d else None
        )

    # ---- HTTP

    def _op_tus(
        self, method: str, url: str, headers: Optional[Dict[str, str]] = None, content: Optional[bytes] = None
    ) -> Op[httpx.Response]:
        all_headers = {"Tus-Resumable": TUS_VERSION, **(headers or {})}
        attempts = 2 if method in ("HEAD", "DELETE") else 1
        for attempt in range(attempts):
            try:
                response: httpx.Response = yield Send(
                    {"method": method, "url": url, "headers": all_headers, "content": content}
                )
                yield Read(response)
                return response
            except httpx.RemoteProtocolError:
                # A pooled connection the server closed after an early refusal: ask again.
                if attempt + 1 < attempts:
                    continue
                raise_connection_error(self._client.url, method, url)
            except httpx.TransportError as e:
                raise APIConnectionError(
                    f"connection to the nullspace server at {self._client.url} failed ({method} {url}): "
                    f"{e or type(e).__name__}",
                    retryable=True,
                ) from e
        raise_connection_error(self._client.url, method, url)

    def _same_server(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self._client.url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def _op_create(self) -> Op[str]:
        meta = "path " + base64.b64encode(self._remote.encode("utf-8")).decode("ascii")
        r = yield from self._op_tus(
            "POST",
            f"/v1/volumes/{self._volume}/uploads",
            headers={"Upload-Length": str(self._size), "Upload-Metadata": meta},
        )
        if r.status_code != 201:
            raise error_from_response(r)
        location = r.headers.get("location")
        if not location:
            raise NullspaceError(f"the server at {self._client.url} created an upload without a Location")
        url: str = urljoin(self._client.url + "/", str(location))
        if self.record is not None:
            _write_record(
                self.record,
                {
                    "upload_url": url,
                    "server": self._client.url,
                    "volume": self._volume,
                    "path": self._remote,
                    "size": self._size,
                    "mtime_ns": self._mtime_ns,
                },
            )
        return url

    def _op_offset(self, url: str) -> Op[Optional[int]]:
        """The durable offset, or ``None`` if the server no longer has the upload (404/410)."""
        r = yield from self._op_tus("HEAD", url)
        if r.status_code in (404, 410):
            return None
        if r.status_code >= 400:
            raise error_from_response(r)
        length = int(r.headers.get("upload-length", "-1"))
        if length != self._size:
            return None
        return int(r.headers["upload-offset"])

    def _report(self, done: int) -> None:
        if self._progress is not None:
            self._progress(done, self._size)

    def _patch_headers(self, offset: int, chunk: bytes) -> Dict[str, str]:
        headers = {"Content-Type": _OFFSET_TYPE, "Upload-Offset": str(offset)}
        if self._checksum:
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode("ascii")
            headers["Upload-Checksum"] = f"sha256 {digest}"
        return headers

    # ---- the loop

    def op_run(self) -> Op[UploadResult]:
        """Sends the file (or what the server does not have yet) and returns the outcome."""
        url: Optional[str] = None
        offset = 0
        if self.record is not None:
            stored = _read_record(self.record)
            if stored and self._same_server(stored):
                found = yield from self._op_offset(stored)
                if found is not None and found < self._size:
                    url, offset = stored, found
        resumed_from = offset
        if url is None:
            url = yield from self._op_create()
        self._report(offset)
        etag: Optional[str] = None
        failures = 0
        restarted = False
        with open(self._local, "rb") as f:
            while offset < self._size:
                at, want = offset, min(self._chunk_size, self._size - offset)
                chunk: bytes = yield Blocking(lambda: os.pread(f.fileno(), want, at))
                if len(chunk) == 0:
                    raise ValueError(f"{self._local} shrank while it was being uploaded")
                error: Optional[NullspaceError] = None
                try:
                    r = yield from self._op_tus("PATCH", url, headers=self._patch_headers(offset, chunk), content=chunk)
                except APIConnectionError as e:
                    error = e
                else:
                    if r.status_code < 300:
                        offset = int(r.headers["upload-offset"])
                        etag = (r.headers.get("etag") or "").strip('"') or None
                        failures = 0
                        self._report(offset)
                        continue
                    if r.status_code in (404, 410):
                        if restarted:
                            raise NotFoundError(f"upload {url} disappeared from the server twice", status=404)
                        restarted = True
                        url, offset = (yield from self._op_create()), 0
                        self._report(offset)
                        continue
                    error = error_from_response(r)
                    if r.status_code not in (409, 423, 460, 500, 502, 503, 504):
                        raise error
                failures += 1
                if failures > self._retries:
                    raise error
                yield Sleep(min(self._retry_delay * (2 ** (failures - 1)), 10.0))
                try:
                    found = yield from self._op_offset(url)
                except APIConnectionError:
                    continue
                if found is None:
                    if restarted:
                        raise error
                    restarted = True
                    url, found = (yield from self._op_create()), 0
                offset = found
                self._report(offset)
        if self.record is not None:
            try:
                self.record.unlink()
            except OSError:
                pass
        return UploadResult(
            path=self._remote, files=1, bytes=self._size, resumed_from=resumed_from, etag=etag
        )


# ------------------------------------------------------------------------------ directory upload


class _QueueWriter(io.RawIOBase):
    """A write-only file whose bytes are handed, in chunks, to a bounded queue."""

    def __init__(self, q: "queue.Queue[Optional[bytes]]", stop: threading.Event) -> None:
        self._q = q
        self._stop = stop
        self._buf = bytearray()
        self.sent = 0

    def writable(self) -> bool:
        return True

    def write(self, b: "Union[bytes, bytearray, memoryview]") -> int:  # type: ignore[override]
        if self._stop.is_set():
            raise BrokenPipeError("the upload stopped")
        self._buf += b
        if len(self._buf) >= _PIPE_CHUNK:
            self._push()
        return len(b)

    def _push(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            while not self._stop.is_set():
                try:
                    self._q.put(data, timeout=0.2)
                    self.sent += len(data)
                    return
                except queue.Full:
                    continue
            raise BrokenPipeError("the upload stopped")

    def flush(self) -> None:
        self._push()


def _add_tree(tar: tarfile.TarFile, root: Path, rel: str, skipped: List[str]) -> None:
    for entry in sorted(os.scandir(root / rel if rel else root), key=lambda e: e.name):
        name = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        if stat_mod.S_ISDIR(st.st_mode):
            info = tarfile.TarInfo(name + "/")
            info.type = tarfile.DIRTYPE
            info.mode = st.st_mode & 0o7777
            info.mtime = int(st.st_mtime)
            tar.addfile(info)
            _add_tree(tar, root, name, skipped)
        elif stat_mod.S_ISREG(st.st_mode):
            info = tarfile.TarInfo(name)
            info.size = st.st_size
            info.mode = st.st_mode & 0o7777
            info.mtime = int(st.st_mtime)
            with open(entry.path, "rb") as f:
                tar.addfile(info, f)
        else:
            skipped.append(entry.path)


def op_upload_tree(
    client: BaseClient,
    volume: str,
    local: Path,
    remote: str,
    progress: Optional[ProgressCallback] = None,
) -> Op[Tuple[int, int, List[str]]]:
    """Sends the tree under ``local`` into ``remote`` as one streamed tar batch.

    The archive is built on a thread while it is sent, through a small queue, so memory stays
    constant. Returns (files, bytes, skipped local paths).
    """
    q: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=4)
    stop = threading.Event()
    skipped: List[str] = []
    failure: List[BaseException] = []

    def build() -> None:
        writer = _QueueWriter(q, stop)
        try:
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_tree(tar, local, "", skipped)
            writer.flush()
        except BaseException as e:  # reported to the caller below
            failure.append(e)
        finally:
            while not stop.is_set():
                try:
                    q.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def body() -> Iterator[bytes]:
        done = 0
        while True:
            item = q.get()
            if item is None:
                if failure:
                    raise failure[0]
                return
            done += len(item)
            if progress is not None:
                progress(done, None)
            yield item

    builder = threading.Thread(target=build, name="nullspace-tar", daemon=True)
    builder.start()
    try:
        doc = yield from client.op_json(
            "POST",
            f"/v1/volumes/{volume}/files/batch",
            params={"path": remote},
            content=lambda: body(),
            headers={"Content-Type": "application/x-tar"},
            replayable=False,
        )
    except BaseException:
        if failure and isinstance(failure[0], OSError):
            stop.set()
            yield Blocking(builder.join)
            raise failure[0] from None
        raise
    finally:
        stop.set()
        yield Blocking(builder.join)
    if failure:
        raise failure[0]
    files = int(doc.get("files", 0)) if isinstance(doc, dict) else 0
    size = int(doc.get("bytes", 0)) if isinstance(doc, dict) else 0
    return files, size, skipped


# ------------------------------------------------------------------------------ downloads


class ResponseReader(io.RawIOBase):
    """A readable file over a streamed HTTP response (for ``tarfile`` in stream mode)."""

    def __init__(self, chunks: Iterator[bytes], on_bytes: Optional[Callable[[int], None]] = None) -> None:
        self._chunks = chunks
        self._buf = b""
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, b: "Union[bytearray, memoryview]") -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
            if self._on_bytes is not None:
                self._on_bytes(len(self._buf))
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the target directory."""


def _safe_parts(name: str) -> List[str]:
    if name.startswith("/"):
        raise UnsafeArchiveError(f"refusing archive entry {name!r}: it escapes the target directory")
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise UnsafeArchiveError(f"refusing archive entry {name!r}: it escapes the target directory")
        parts.append(p)
    return parts


def _ensure_parents(dest: Path, parts: List[str], name: str) -> Path:
    at = dest
    for p in parts[:-1]:
        at = at / p
        try:
            st = os.lstat(at)
        except FileNotFoundError:
            os.mkdir(at)
            continue
        if not stat_mod.S_ISDIR(st.st_mode):
            raise UnsafeArchiveError(f"refusing archive entry {name!r}: {at} is not a directory")
    return at / parts[-1]


def _clear(target: Path, name: str) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat_mod.S_ISDIR(st.st_mode):
        raise UnsafeArchiveError(f"refusing archive entry {name!r}: a directory is in the way at {target}")
    os.unlink(target)


def _link_stays_inside(parts: List[str], linkname: str) -> bool:
    """Whether a link at ``parts`` (below the target) pointing to ``linkname`` stays below the
    target: relative, its ``..`` all first (one after a name could climb out through another
    link), never above the top. The CLI applies the same rule."""
    if linkname.startswith("/"):
        return False
    depth = len(parts) - 1
    named = False
    for c in linkname.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if named or depth == 0:
                return False
            depth -= 1
        else:
            named = True
    return True


def unpack_tar(stream: IO[bytes], dest: Path) -> DownloadResult:
    """Unpacks a tar stream into ``dest`` (created if missing), safely.

    Every entry must stay below ``dest``: absolute names, ``..`` and writing through a
    symlink are refused with :class:`UnsafeArchiveError`. Files replace files of the same
    name; hard links and special files are skipped. A symlink that points outside ``dest``
    is skipped with a warning, and an entry below it is refused.
    """
    dest.mkdir(parents=True, exist_ok=True)
    files = dirs = links = size = skipped_links = 0
    skipped: List[Tuple[str, ...]] = []
    dir_modes: List[Tuple[Path, int]] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            parts = _safe_parts(m.name)
            if not parts:
                continue
            key = tuple(parts)
            for link in skipped:
                if len(key) > len(link) and key[: len(link)] == link:
                    raise UnsafeArchiveError(
                        f"refusing archive entry {m.name!r}: it is below the symlink "
                        f"{'/'.join(link)!r} (skipped: it points outside)"
                    )
            # An entry of the skipped link's own name takes its place.
            skipped = [link for link in skipped if link != key]
            target = _ensure_parents(dest, parts, m.name)
            mode = m.mode & 0o777
            if m.isdir():
                try:
                    st = os.lstat(target)
                    if not stat_mod.S_ISDIR(st.st_mode):
                        os.unlink(target)
                        os.mkdir(target)
                except FileNotFoundError:
                    os.mkdir(target)
                dir_modes.append((target, mode | 0o700))
                dirs += 1
            elif m.isfile():
                _clear(target, m.name)
                src = tar.extractfile(m)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
                with os.fdopen(fd, "wb") as out:
                    if src is not None:
                        while True:
                            block = src.read(1024 * 1024)
                            if not block:
                                break
                            out.write(block)
                            size += len(block)
                os.utime(target, (m.mtime, m.mtime))
                files += 1
            elif m.issym():
                if not _link_stays_inside(list(parts), m.linkname):
                    warnings.warn(
                        f"skipping symlink {'/'.join(parts)} -> {m.linkname}: it points outside {dest}",
                        stacklevel=2,
                    )
                    skipped.append(key)
                    skipped_links += 1
                    continue
                _clear(target, m.name)
                os.symlink(m.linkname, target)
                links += 1
    for d, mode in reversed(dir_modes):
        try:
            os.chmod(d, mode)
        except OSError:
            pass
    return DownloadResult(
        local_path=dest, files=files, dirs=dirs, symlinks=links, bytes=size, skipped_symlinks=skipped_links
    )


def write_atomically(chunks: Iterator[bytes], local: Path, on_bytes: Optional[Callable[[int], None]] = None) -> int:
    """Streams chunks into a temp file beside ``local``, fsyncs it and renames it into place."""
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp{os.getpid()}.nspart")
    n = 0
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
                n += len(c)
                if on_bytes is not None:
                    on_bytes(n)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, local)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return n
