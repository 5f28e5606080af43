"""The async SDK: the same surface as the sync one, on one ``httpx.AsyncClient``.

Example::

    import asyncio
    from nullspace.aio import AsyncVolume

    async def main() -> None:
        volume = await AsyncVolume.from_name("team-data", create_if_missing=True)
        await volume.files.write("/hello.txt", "persistent\\n")
        print(await volume.files.read("/hello.txt"))

    asyncio.run(main())

The names follow what users of E2B (``AsyncSandbox``) and Daytona (``AsyncDaytona``) know: each
sync class has an ``Async`` twin whose methods are coroutines, with the same arguments and
results (the result types, errors and :class:`~nullspace.Mount` are the very same classes).
Streams are async iterators and async context managers: ``read_stream``, ``search`` and
``watch`` may be awaited or entered directly (``async with volume.files.watch("/") as ev``).

Nothing here re-implements a request: every method runs the operation its sync twin runs
(see ``nullspace._client``), on :class:`AsyncClient`'s driver instead of the blocking one.
Configuration is resolved as for :class:`nullspace.Client`. Without ``client=``, a default
:class:`AsyncClient` is made per event loop (connections belong to the loop that opened them).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
import weakref
from datetime import timedelta
from types import TracebackType
from typing import (
    IO,
    Any,
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Dict,
    Generator,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
    cast,
)

import httpx

from ._client import (
    BaseClient,
    Blocking,
    Body,
    Close,
    Consume,
    Lines,
    NextLine,
    Op,
    Outcome,
    QueryParams,
    Read,
    Send,
    Sleep,
    Step,
)
from .content import ReplaceResult, SearchCore, SearchMatch, WatchCore, WatchEvent
from .files import (
    DEFAULT_CHUNK_SIZE,
    BatchResult,
    FileStat,
    FilesOps,
    ReadStreamBase,
    WriteData,
    _check_list_args,
    check_watch_args,
)
from .keys import CreatedKey, KeyInfo, op_create, op_list, op_revoke
from ._transfer import DEFAULT_TUS_CHUNK, DownloadResult, ProgressCallback, UploadResult
from .sandbox import (
    Attachment,
    ExecResult,
    SandboxCore,
    SandboxInfo,
    op_create_sandbox,
    op_list_sandboxes,
)
from .volume import Mount, PendingUpload, VolumeCore, VolumeInfo, op_create_volume, op_delete_volume
from .volume import op_list_volumes, op_volume_doc, volume_ref

__all__ = [
    "AsyncClient",
    "configure",
    "default_client",
    "reset_default_client",
    "AsyncVolume",
    "AsyncVolumeFiles",
    "AsyncReadStream",
    "AsyncSearchResults",
    "AsyncWatch",
    "AsyncSandbox",
    "AsyncSandboxFiles",
    "AsyncSandboxVolumes",
    "keys",
]

T = TypeVar("T")
S = TypeVar("S", bound="_AsyncClosing")

#: Body chunks handed at once from the loop to a worker thread (``Consume``).
_BRIDGE_BYTES = 1024 * 1024


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking iterator of request-body chunks (a file, a tar being built) made async:
    each chunk is produced on a worker thread."""
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        yield chunk


async def _take(chunks: AsyncIterator[bytes]) -> List[bytes]:
    """The next chunks of a body, about ``_BRIDGE_BYTES`` of them (``[]`` at the end)."""
    out: List[bytes] = []
    size = 0
    while size < _BRIDGE_BYTES:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            break
        out.append(chunk)
        size += len(chunk)
    return out


class AsyncClient(BaseClient):
    """The async twin of :class:`nullspace.Client`: same arguments, same configuration order,
    same retries and errors, on one ``httpx.AsyncClient`` whose connections are reused by every
    call. Use it as an async context manager, or ``await client.aclose()``."""

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_backoff: float = 0.25,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        super().__init__(url, key, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._http_options(timeout))

    async def aclose(self) -> None:
        """Closes the client's connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, op: Op[T]) -> T:
        """Runs an operation with async I/O and returns its result."""
        outcome = Outcome()
        step = outcome.resume(op)
        while step is not None:
            try:
                outcome.value = await self._step(step)
            except BaseException as e:  # cancellation too: the operation closes what it opened
                outcome.error = e
            step = outcome.resume(op)
        return cast(T, outcome.result)

    async def _step(self, step: Step) -> Any:
        if isinstance(step, Send):
            args = step.args
            content = args.get("content")
            if isinstance(content, Iterator):
                args = {**args, "content": _async_chunks(content)}
            return await self._http.send(self._http.build_request(**args), stream=True)
        if isinstance(step, Read):
            try:
                return await step.response.aread()
            finally:
                await step.response.aclose()
        if isinstance(step, Close):
            await step.response.aclose()
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Lines):
            return step.response.aiter_lines()
        elif isinstance(step, NextLine):
            try:
                return await step.lines.__anext__()
            except StopAsyncIteration:
                return None
        elif isinstance(step, Consume):
            return await self._consume(step)
        elif isinstance(step, Blocking):
            return await asyncio.to_thread(step.fn)
        return None

    async def _consume(self, step: Consume) -> Any:
        """Runs ``step.fn`` on a worker thread over the body, which the loop keeps reading."""
        loop = asyncio.get_running_loop()
        body = step.response.aiter_bytes(step.chunk_size)

        def chunks() -> Iterator[bytes]:
            while True:
                batch = asyncio.run_coroutine_threadsafe(_take(body), loop).result()
                if not batch:
                    return
                yield from batch

        return await asyncio.to_thread(step.fn, chunks())

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams = None,
        json: Any = None,
        content: Body = None,
        headers: Optional[Mapping[str, str]] = None,
        stream: bool = False,
        replayable: bool = True,
        idempotent: Optional[bool] = None,
        timeout: Optional[httpx.Timeout] = None,
    ) -> httpx.Response:
        """Sends one API request; see :meth:`nullspace.Client.request`."""
        op = self.op_request(
            method, path, params=params, json=json, content=content, headers=headers, stream=stream,
            replayable=replayable, idempotent=idempotent, timeout=timeout,
        )
        return await self.run(op)

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, and decodes the JSON body."""
        return await self.run(self.op_json(method, path, **kwargs))


# ------------------------------------------------------------------------------ default client

_settings_lock = threading.Lock()
_settings: Dict[str, Any] = {}
_defaults: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient]" = weakref.WeakKeyDictionary()


def configure(
    url: Optional[str] = None,
    key: Optional[str] = None,
    *,
    timeout: float = 60.0,
    max_retries: int = 3,
    retry_backoff: float = 0.25,
) -> None:
    """Sets what the default :class:`AsyncClient` of each event loop is made with (see
    :func:`nullspace.configure` for the resolution order). Checked at once."""
    BaseClient(url, key, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff)
    with _settings_lock:
        _settings.clear()
        _settings.update(url=url, key=key, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff)
        _defaults.clear()


def default_client() -> AsyncClient:
    """The default :class:`AsyncClient` of the running event loop (made at its first use)."""
    loop = asyncio.get_running_loop()
    with _settings_lock:
        client = _defaults.get(loop)
        if client is None:
            client = _defaults[loop] = AsyncClient(**_settings)
        return client


def reset_default_client() -> None:
    """Forgets the configuration and the default clients; the next use resolves it again."""
    with _settings_lock:
        _settings.clear()
        _defaults.clear()


def resolve_client(client: Optional[AsyncClient]) -> AsyncClient:
    """``client`` itself, or the running loop's default client."""
    if client is None:
        return default_client()
    if not isinstance(client, AsyncClient):
        raise TypeError(f"client must be a nullspace.aio.AsyncClient, not {type(client).__name__}")
    return client


# ------------------------------------------------------------------------------ streams


class _AsyncClosing:
    """``async with`` plumbing for objects that hold a connection open; subclasses define
    :meth:`aclose`."""

    _closed: bool = False

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    async def aclose(self) -> None:
        """Closes (idempotent)."""
        raise NotImplementedError

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


class _Opening(Generic[S]):
    """A stream being opened: ``await`` it for the stream, or enter it with ``async with``
    (which opens it and closes it at the end)."""

    def __init__(self, opening: Coroutine[Any, Any, S]) -> None:
        self._opening = opening
        self._stream: Optional[S] = None

    def __await__(self) -> Generator[Any, None, S]:
        return self._opening.__await__()

    async def __aenter__(self) -> S:
        self._stream = await self._opening
        return self._stream

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()


class AsyncReadStream(ReadStreamBase, _AsyncClosing):
    """File content streamed in chunks: an async iterator of ``bytes`` and an async context
    manager (see :class:`nullspace.ReadStream`)."""

    _chunks: Optional[AsyncIterator[bytes]] = None

    def __aiter__(self) -> "AsyncReadStream":
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        if self._chunks is None:
            self._chunks = self._response.aiter_bytes(self._piece_size())
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise
        except httpx.TransportError as e:
            await self.aclose()
            raise self._lost(e) from e
        except BaseException:
            await self.aclose()
            raise

    async def read(self) -> bytes:
        """Reads everything that is left and closes the stream."""
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        """Closes the underlying response (idempotent); iteration then stops."""
        if not self._closed:
            self._closed = True
            await self._response.aclose()


class AsyncSearchResults(SearchCore[AsyncClient], _AsyncClosing):
    """Matches of :meth:`AsyncVolumeFiles.search`: an async iterator of
    :class:`~nullspace.SearchMatch` (see :class:`nullspace.SearchResults`)."""

    def __aiter__(self) -> "AsyncSearchResults":
        return self

    async def __anext__(self) -> SearchMatch:
        match = await self._client.run(self._op_next())
        if match is None:
            raise StopAsyncIteration
        return match

    async def aclose(self) -> None:
        """Closes the underlying response (idempotent); iteration then stops."""
        await self._client.run(self._op_close())


class AsyncWatch(WatchCore[AsyncClient], _AsyncClosing):
    """Change events below a path: an async iterator of :class:`~nullspace.WatchEvent` that
    reconnects by itself (see :class:`nullspace.Watch`). :meth:`aclose` (or leaving the
    ``async with`` block, or cancelling the task iterating it) stops it."""

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> WatchEvent:
        ev = await self._client.run(self._op_next())
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def _drop(self) -> None:
        """Drops the connection, as a network failure would (the next event reconnects)."""
        await self._client.run(self._op_drop())

    async def aclose(self) -> None:
        """Stops watching and closes the connection (idempotent)."""
        if not self._closed:
            await self._client.run(self._op_close())


# ------------------------------------------------------------------------------ volumes


class AsyncVolumeFiles(FilesOps[AsyncClient]):
    """The async twin of :class:`nullspace.VolumeFiles`; get it as ``volume.files``."""

    def __init__(self, volume: "AsyncVolume") -> None:
        super().__init__(volume.name, volume.client)

    async def read(self, path: str, *, encoding: str = "utf-8") -> str:
        """See :meth:`nullspace.VolumeFiles.read`."""
        return await self._client.run(self._op_read_text(path, encoding))

    async def read_bytes(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        """See :meth:`nullspace.VolumeFiles.read_bytes`."""
        return await self._client.run(self._op_read_bytes(path, offset, length))

    def read_stream(
        self,
        path: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        offset: int = 0,
        length: Optional[int] = None,
    ) -> _Opening[AsyncReadStream]:
        """See :meth:`nullspace.VolumeFiles.read_stream`; ``await`` it or ``async with`` it."""

        async def opening() -> AsyncReadStream:
            response = await self._client.run(self._op_open(path, chunk_size, offset, length))
            return AsyncReadStream(response, chunk_size, self._client.url)

        return _Opening(opening())

    async def write(
        self,
        path: str,
        data: Union[WriteData, AsyncIterable[bytes]],
        if_match: Union[str, FileStat, None] = None,
        overwrite: bool = True,
    ) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.write`; ``data`` may also be an async iterable of
        ``bytes`` (streamed, not retried)."""
        return await self._client.run(self._op_write(path, data, if_match, overwrite))

    async def write_batch(self, files: Mapping[str, WriteData]) -> BatchResult:
        """See :meth:`nullspace.VolumeFiles.write_batch`."""
        return await self._client.run(self._op_write_batch(files))

    async def mkdir(self, path: str, parents: bool = True) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.mkdir`."""
        return await self._client.run(self._op_mkdir(path, parents))

    async def move(self, src: str, dst: str, overwrite: bool = False) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.move`."""
        return await self._client.run(self._op_move(src, dst, overwrite))

    async def copy(self, src: str, dst: str, overwrite: bool = False, recursive: bool = True) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.copy`."""
        return await self._client.run(self._op_copy(src, dst, overwrite, recursive))

    async def remove(self, path: str, recursive: bool = False) -> None:
        """See :meth:`nullspace.VolumeFiles.remove`."""
        await self._client.run(self._op_remove(path, recursive))

    async def upload(
        self,
        local_path: Union[str, "os.PathLike[str]"],
        remote_path: Optional[str] = None,
        *,
        chunk_size: int = DEFAULT_TUS_CHUNK,
        resume: bool = True,
        checksum: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> UploadResult:
        """See :meth:`nullspace.VolumeFiles.upload` (local files are read on worker threads)."""
        op = self._op_upload(local_path, remote_path, chunk_size, resume, checksum, progress)
        return await self._client.run(op)

    async def download(
        self,
        remote_path: str,
        local_path: Union[str, "os.PathLike[str]", None] = None,
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> DownloadResult:
        """See :meth:`nullspace.VolumeFiles.download` (local files are written on a worker
        thread; ``progress`` is called there)."""
        return await self._client.run(self._op_download(remote_path, local_path, progress))

    async def download_archive(
        self,
        remote_path: str,
        local: Union[str, "os.PathLike[str]", IO[bytes]],
        format: str = "tar",
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> int:
        """See :meth:`nullspace.VolumeFiles.download_archive`."""
        return await self._client.run(self._op_download_archive(remote_path, local, format, progress))

    async def url(self, path: str, expires: Union[int, float, timedelta] = 3600, method: str = "GET") -> str:
        """See :meth:`nullspace.VolumeFiles.url`."""
        return await self._client.run(self._op_url(path, expires, method))

    def iter_list(
        self,
        path: str = "/",
        recursive: bool = False,
        glob: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[FileStat]:
        """See :meth:`nullspace.VolumeFiles.iter_list`: an async iterator, fetching page by page."""
        p = _check_list_args(path, recursive, glob, page_size)
        return self._pages(p, recursive, glob, page_size)

    async def _pages(self, p: str, recursive: bool, glob: Optional[str], limit: Optional[int]) -> AsyncIterator[FileStat]:
        cursor: Optional[str] = None
        while True:
            entries, cursor = await self._client.run(self._op_page(p, recursive, glob, limit, cursor))
            for entry in entries:
                yield entry
            if cursor is None:
                return

    async def list(
        self,
        path: str = "/",
        recursive: bool = False,
        glob: Optional[str] = None,
        *,
        page_size: Optional[int] = None,
    ) -> List[FileStat]:
        """See :meth:`nullspace.VolumeFiles.list`."""
        return await self._client.run(self._op_list(path, recursive, glob, page_size))

    async def stat(self, path: str) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.stat`."""
        return await self._client.run(self._op_stat(path))

    async def exists(self, path: str) -> bool:
        """See :meth:`nullspace.VolumeFiles.exists`."""
        return await self._client.run(self._op_exists(path))

    def search(
        self,
        pattern: str,
        path: str = "/",
        glob: Optional[str] = None,
        regex: bool = True,
        ignore_case: bool = False,
        max_results: Optional[int] = None,
    ) -> _Opening[AsyncSearchResults]:
        """See :meth:`nullspace.VolumeFiles.search`; ``await`` it or ``async with`` it."""

        async def opening() -> AsyncSearchResults:
            op = self._op_search(pattern, path, glob, regex, ignore_case, max_results)
            return AsyncSearchResults(await self._client.run(op), self._client)

        return _Opening(opening())

    async def replace(
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
        """See :meth:`nullspace.VolumeFiles.replace`."""
        op = self._op_replace(pattern, replacement, path, glob, regex, dry_run, ignore_case)
        return await self._client.run(op)

    async def edit(
        self,
        path: str,
        old: str,
        new: str,
        count: Optional[int] = 1,
        if_match: Union[str, FileStat, None] = None,
    ) -> FileStat:
        """See :meth:`nullspace.VolumeFiles.edit`."""
        return await self._client.run(self._op_edit(path, old, new, count, if_match))

    def watch(
        self,
        path: str = "/",
        recursive: bool = True,
        *,
        last_event_id: Optional[int] = None,
        reconnect_timeout: Optional[float] = None,
    ) -> _Opening[AsyncWatch]:
        """See :meth:`nullspace.VolumeFiles.watch`: ``async with volume.files.watch("/") as
        events: async for ev in events: ...`` (or ``await`` it)."""

        async def opening() -> AsyncWatch:
            p = check_watch_args(path, recursive, last_event_id, reconnect_timeout)
            w = AsyncWatch(self._client, self._watch_url(), p, recursive, last_event_id, reconnect_timeout)
            await self._client.run(w._op_connect())
            return w

        return _Opening(opening())


class AsyncVolume(VolumeCore[AsyncClient]):
    """The async twin of :class:`nullspace.Volume`.

    Example::

        volume = await AsyncVolume.from_name("team-data", create_if_missing=True)
        await volume.files.write("/hello.txt", "persistent\\n")
    """

    def __init__(self, name: str, id: str, *, client: Optional[AsyncClient] = None) -> None:
        """Wraps an existing volume; prefer :meth:`from_name`, which checks it exists."""
        super().__init__(name, id, resolve_client(client))
        self._files: Optional[AsyncVolumeFiles] = None

    @classmethod
    async def from_name(
        cls, name: str, create_if_missing: bool = False, *, client: Optional[AsyncClient] = None
    ) -> "AsyncVolume":
        """See :meth:`nullspace.Volume.from_name`."""
        c = resolve_client(client)
        return cls(*volume_ref(await c.run(op_volume_doc(c, name, create_if_missing))), client=c)

    @classmethod
    async def create(
        cls, name: str, labels: Optional[Mapping[str, str]] = None, *, client: Optional[AsyncClient] = None
    ) -> "AsyncVolume":
        """See :meth:`nullspace.Volume.create`."""
        c = resolve_client(client)
        return cls(*volume_ref(await c.run(op_create_volume(c, name, labels))), client=c)

    @classmethod
    async def list(
        cls,
        labels: Optional[Mapping[str, str]] = None,
        fields: Optional[Sequence[str]] = None,
        *,
        client: Optional[AsyncClient] = None,
    ) -> List[VolumeInfo]:
        """See :meth:`nullspace.Volume.list`."""
        c = resolve_client(client)
        return await c.run(op_list_volumes(c, labels, fields))

    @classmethod
    async def delete(
        cls, name: str, force: bool = False, *, if_exists: bool = False, client: Optional[AsyncClient] = None
    ) -> None:
        """See :meth:`nullspace.Volume.delete`."""
        c = resolve_client(client)
        await c.run(op_delete_volume(c, name, force, if_exists))

    @property
    def files(self) -> AsyncVolumeFiles:
        """The direct file API of this volume."""
        if self._files is None:
            self._files = AsyncVolumeFiles(self)
        return self._files

    async def token(self, path: str = "/", read_only: bool = False, expires: int = 3600) -> CreatedKey:
        """See :meth:`nullspace.Volume.token`."""
        return await self._client.run(self._op_token(path, read_only, expires))

    async def info(self, fields: Optional[Sequence[str]] = None) -> VolumeInfo:
        """See :meth:`nullspace.Volume.info`."""
        return await self._client.run(self._op_info(fields))

    async def rename(self, new_name: str) -> None:
        """See :meth:`nullspace.Volume.rename`."""
        await self._client.run(self._op_rename(new_name))

    async def uploads(self) -> List[PendingUpload]:
        """See :meth:`nullspace.Volume.uploads`."""
        return await self._client.run(self._op_uploads())

    async def cancel_upload(self, id: str) -> None:  # noqa: A002 - the upload's id
        """See :meth:`nullspace.Volume.cancel_upload`."""
        await self._client.run(self._op_cancel_upload(id))


# ------------------------------------------------------------------------------ sandboxes


class AsyncSandboxFiles:
    """Files as the sandbox sees them (see :class:`nullspace.SandboxFiles`)."""

    def __init__(self, sandbox: "AsyncSandbox") -> None:
        self._sb = sandbox

    async def read_bytes(self, path: str) -> bytes:
        """The whole file at ``path`` (absolute, inside the sandbox)."""
        return await self._sb._client.run(self._sb._op_read_file(path))

    async def read(self, path: str) -> str:
        """The whole file at ``path`` decoded as UTF-8."""
        return await self._sb._client.run(self._sb._op_read_text(path))

    async def write(self, path: str, data: Union[str, bytes]) -> None:
        """Writes ``data`` to ``path`` inside the sandbox (replacing it)."""
        await self._sb._client.run(self._sb._op_write_file(path, data))

    async def list(self, path: str = "/") -> List[Dict[str, Any]]:
        """Entries of a directory: ``{"name", "kind", "size"}`` dicts."""
        return await self._sb._client.run(self._sb._op_list_files(path))


class AsyncSandboxVolumes:
    """The volumes attached to a sandbox (see :class:`nullspace.SandboxVolumes`)."""

    def __init__(self, sandbox: "AsyncSandbox") -> None:
        self._sb = sandbox

    async def attach(self, mount: Mount) -> Attachment:
        """Mounts a volume into the running sandbox."""
        return await self._sb._client.run(self._sb._op_attach(mount))

    async def detach(self, mount_path: str) -> Attachment:
        """Releases the volume mounted at ``mount_path``; its data stays in the volume."""
        return await self._sb._client.run(self._sb._op_detach(mount_path))

    async def list(self) -> List[Attachment]:
        """Every attachment record of the sandbox."""
        return await self._sb._client.run(self._sb._op_attachments())


class AsyncSandbox(SandboxCore[AsyncClient]):
    """The async twin of :class:`nullspace.Sandbox`; ``async with`` destroys it at the end::

        async with await AsyncSandbox.create(volumes=[volume.mount("/data")]) as sandbox:
            print((await sandbox.exec(["ls", "/data"])).stdout)
    """

    def __init__(self, id: str, *, client: Optional[AsyncClient] = None) -> None:
        """Wraps an existing sandbox id; prefer :meth:`connect`, which checks it exists."""
        super().__init__(id, resolve_client(client))
        self.files = AsyncSandboxFiles(self)
        self.volumes = AsyncSandboxVolumes(self)

    @classmethod
    async def create(
        cls,
        template: str = "base",
        volumes: Optional[Sequence[Mount]] = None,
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[int] = None,
        cpu: Optional[float] = None,
        memory: Optional[Union[int, str]] = None,
        disk: Optional[Union[int, str]] = None,
        runtime: Optional[str] = None,
        *,
        client: Optional[AsyncClient] = None,
    ) -> "AsyncSandbox":
        """See :meth:`nullspace.Sandbox.create`."""
        c = resolve_client(client)
        op = op_create_sandbox(c, template, volumes, name, env, timeout, cpu, memory, disk, runtime)
        return cls(await c.run(op), client=c)

    @classmethod
    async def connect(cls, id: str, *, client: Optional[AsyncClient] = None) -> "AsyncSandbox":
        """An existing sandbox by id. Raises :class:`~nullspace.NotFoundError` when there is none."""
        sb = cls(id, client=client)
        await sb.info()
        return sb

    @classmethod
    async def list(cls, *, client: Optional[AsyncClient] = None) -> List[SandboxInfo]:
        """This tenant's sandboxes."""
        c = resolve_client(client)
        return await c.run(op_list_sandboxes(c))

    async def info(self) -> SandboxInfo:
        """The sandbox's current record."""
        return await self._client.run(self._op_info())

    async def exec(
        self,
        cmd: Union[str, Sequence[str]],
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """See :meth:`nullspace.Sandbox.exec`."""
        return await self._client.run(self._op_exec(cmd, env, cwd, stdin, timeout))

    async def pause(self) -> SandboxInfo:
        """See :meth:`nullspace.Sandbox.pause`."""
        return await self._client.run(self._op_lifecycle("pause"))

    async def resume(self) -> SandboxInfo:
        """See :meth:`nullspace.Sandbox.resume`."""
        return await self._client.run(self._op_lifecycle("resume"))

    async def hibernate(self) -> SandboxInfo:
        """See :meth:`nullspace.Sandbox.hibernate`."""
        return await self._client.run(self._op_lifecycle("hibernate"))

    async def fork(self) -> "AsyncSandbox":
        """See :meth:`nullspace.Sandbox.fork`."""
        info = await self._client.run(self._op_lifecycle("fork"))
        return AsyncSandbox(info.id, client=self._client)

    async def destroy(self) -> None:
        """See :meth:`nullspace.Sandbox.destroy`."""
        await self._client.run(self._op_destroy())

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.destroy()


# ------------------------------------------------------------------------------ keys


class _Keys:
    """``nullspace.aio.keys``: the async twin of :mod:`nullspace.keys`."""

    ROLES = ("admin", "member", "read-only")

    async def create(
        self,
        *,
        name: Optional[str] = None,
        role: str = "member",
        expires: Optional[int] = None,
        tenant: Optional[str] = None,
        client: Optional[AsyncClient] = None,
    ) -> CreatedKey:
        """See :func:`nullspace.keys.create`."""
        c = resolve_client(client)
        return await c.run(op_create(c, name, role, expires, tenant))

    async def list(self, *, client: Optional[AsyncClient] = None) -> builtins.list[KeyInfo]:
        """See :func:`nullspace.keys.list`."""
        c = resolve_client(client)
        return await c.run(op_list(c))

    async def revoke(self, id: str, *, client: Optional[AsyncClient] = None) -> KeyInfo:  # noqa: A002
        """See :func:`nullspace.keys.revoke`."""
        c = resolve_client(client)
        return await c.run(op_revoke(c, id))


#: ``await nullspace.aio.keys.create(...)``, ``list()``, ``revoke(id)``.
keys = _Keys()

