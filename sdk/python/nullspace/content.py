"""Results of ``volume.files.search``, ``replace`` and ``watch``: streamed matches, replace
summaries, and a self-reconnecting iterator of change events.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Generic, List, Optional, TypeVar

import httpx

from ._client import BaseClient, Client, Close, Lines, NextLine, Op, Sleep
from ._util import Closing, as_object, field, malformed, opt_field, parse_datetime
from .errors import APIConnectionError, UnavailableError, error_class_for_code

__all__ = ["SearchMatch", "SearchResults", "ReplacedFile", "ReplaceResult", "WatchEvent", "Watch"]

C = TypeVar("C", bound=BaseClient)

#: A watch connection that receives nothing for this long (the server sends a keep-alive every
#: 15 s) is taken for dead and replaced.
WATCH_IDLE_TIMEOUT = 45.0
#: First wait before reconnecting after a failed attempt; it doubles up to WATCH_MAX_BACKOFF.
WATCH_FIRST_BACKOFF = 0.1
WATCH_MAX_BACKOFF = 5.0


def _connection_lost(e: httpx.TransportError, base: str, what: str) -> APIConnectionError:
    return APIConnectionError(
        f"connection to the nullspace server at {base} failed while reading {what}: {e or type(e).__name__}",
        retryable=True,
    )


@dataclass(frozen=True)
class SearchMatch:
    """One matching line.

    Attributes:
        path: absolute path of the file.
        line: 1-based line number.
        column: 1-based byte column of the first match on the line.
        text: the line without its newline, cut at 1000 bytes.
    """

    path: str
    line: int
    column: int
    text: str


class SearchCore(Generic[C]):
    """Search results as operations (see ``_client``), shared by :class:`SearchResults` and
    :class:`nullspace.aio.AsyncSearchResults`."""

    def __init__(self, response: httpx.Response, client: C) -> None:
        """Wraps an open streaming response (use ``files.search``)."""
        self._response = response
        self._client: C = client
        self._base_url = client.url
        self._lines: Any = None
        self._closed = False
        #: Number of matching lines, once the summary arrived.
        self.total: Optional[int] = None
        #: Whether ``max_results`` stopped the search, once the summary arrived.
        self.truncated: Optional[bool] = None

    def _op_close(self) -> Op[None]:
        if not self._closed:
            self._closed = True
            yield Close(self._response)

    def _op_next(self) -> Op[Optional[SearchMatch]]:
        """The next match, or ``None`` once the summary arrived (or the results were closed)."""
        while True:
            if self._closed:
                return None
            if self._lines is None:
                self._lines = yield Lines(self._response)
            try:
                line: Optional[str] = yield NextLine(self._lines)
            except httpx.TransportError as e:
                yield from self._op_close()
                raise _connection_lost(e, self._base_url, "search results") from e
            except BaseException:
                yield from self._op_close()
                raise
            if line is None:
                yield from self._op_close()
                if self.total is None:
                    raise APIConnectionError(
                        f"the search answer from {self._base_url} ended before its summary", retryable=True
                    )
                return None
            if not line.strip():
                continue
            try:
                doc = as_object(json.loads(line), "search result")
            except ValueError:
                yield from self._op_close()
                raise malformed("search result", line) from None
            if "error" in doc:
                yield from self._op_close()
                err = as_object(doc["error"], "search error")
                code = opt_field(err, "code", str, "search error")
                message = opt_field(err, "message", str, "search error") or "the search failed"
                raise error_class_for_code(code)(message, code=code)
            if doc.get("done") is True:
                self.total = field(doc, "matches", int, "search summary")
                self.truncated = field(doc, "truncated", bool, "search summary")
                yield from self._op_close()
                return None
            return SearchMatch(
                path=field(doc, "path", str, "search match"),
                line=field(doc, "line", int, "search match"),
                column=field(doc, "column", int, "search match"),
                text=field(doc, "text", str, "search match"),
            )


class SearchResults(SearchCore[Client], Closing):
    """Matches of :meth:`VolumeFiles.search <nullspace.VolumeFiles.search>`, streamed as the
    server finds them; an iterator of :class:`SearchMatch` and a context manager.

    Once exhausted, :attr:`total` is the number of matching lines and :attr:`truncated` says
    whether ``max_results`` cut the search short (both are ``None`` before). The response stays
    open until the results are exhausted, :meth:`close` is called or the ``with`` block ends.
    """

    def __iter__(self) -> "SearchResults":
        return self

    def __next__(self) -> SearchMatch:
        match = self._client.run(self._op_next())
        if match is None:
            raise StopIteration
        return match

    def close(self) -> None:
        """Closes the underlying response (idempotent); iteration then stops."""
        self._client.run(self._op_close())


@dataclass(frozen=True)
class ReplacedFile:
    """One file in which a replace found matches.

    Attributes:
        path: absolute path of the file.
        replacements: matches replaced (or, in a dry run, that would be).
        skipped: why the file was left alone (``"conflict"``: it changed while being
            rewritten), else ``None``.
    """

    path: str
    replacements: int
    skipped: Optional[str] = None


@dataclass(frozen=True)
class ReplaceResult:
    """What :meth:`VolumeFiles.replace <nullspace.VolumeFiles.replace>` did (or, with
    ``dry_run``, would do).

    Attributes:
        files: files with matches, in path order.
        files_changed: files rewritten (or that would be).
        replacements: matches replaced in those files.
        dry_run: true when nothing was changed.
    """

    files: List[ReplacedFile]
    files_changed: int
    replacements: int
    dry_run: bool

    @classmethod
    def _from_json(cls, doc: object) -> "ReplaceResult":
        what = "replace result"
        d = as_object(doc, what)
        files = [
            ReplacedFile(
                path=field(f, "path", str, what),
                replacements=field(f, "replacements", int, what),
                skipped=opt_field(f, "skipped", str, what),
            )
            for f in (as_object(x, what) for x in field(d, "files", list, what))
        ]
        return cls(
            files=files,
            files_changed=field(d, "files_changed", int, what),
            replacements=field(d, "replacements", int, what),
            dry_run=field(d, "dry_run", bool, what),
        )


@dataclass(frozen=True)
class WatchEvent:
    """One change in a watched volume, or a gap marker.

    Attributes:
        id: increasing event id (for a gap: the last id the watcher had seen).
        type: ``"created"``, ``"modified"``, ``"deleted"``, ``"moved"``, or ``"gap"``.
        path: the path that changed (for a gap: the watched path).
        old_path: the previous path of a ``"moved"`` entry, else ``None``.
        is_dir: whether the entry is a directory.
        time: when the change happened (for a gap: when it was reported), UTC.
        oldest_available: for a gap, the oldest event id the server still had; else ``None``.

    A ``"gap"`` means the server no longer had every event after :attr:`id` when the watcher
    reconnected (it keeps the last 10,000 per volume, and none across a restart): changes
    below :attr:`path` may have been missed, so re-read what you depend on (``list``, ``read``).
    The events it still had follow the gap.
    """

    id: int
    type: str
    path: str
    old_path: Optional[str]
    is_dir: bool
    time: datetime
    oldest_available: Optional[int] = None

    @property
    def is_gap(self) -> bool:
        """True for a gap marker (events were missed)."""
        return self.type == "gap"

    @classmethod
    def _from_json(cls, doc: object) -> "WatchEvent":
        what = "watch event"
        d = as_object(doc, what)
        try:
            when = parse_datetime(field(d, "time", str, what))
        except ValueError:
            raise malformed(f"{what}: 'time' is not a timestamp", d) from None
        return cls(
            id=field(d, "id", int, what),
            type=field(d, "type", str, what),
            path=field(d, "path", str, what),
            old_path=opt_field(d, "old_path", str, what),
            is_dir=field(d, "is_dir", bool, what),
            time=when,
        )


class WatchCore(Generic[C]):
    """A watch's connection, SSE parsing and reconnection as operations (see ``_client``),
    shared by :class:`Watch` and :class:`nullspace.aio.AsyncWatch`."""

    def __init__(
        self,
        client: C,
        url: str,
        path: str,
        recursive: bool,
        last_event_id: Optional[int],
        reconnect_timeout: Optional[float],
    ) -> None:
        """Prepares the watch; ``_op_connect`` makes the first connection."""
        self._client: C = client
        self._url = url
        self._path = path
        self._recursive = recursive
        self._reconnect_timeout = reconnect_timeout
        #: The id of the last change delivered (or the one the watch started after).
        self.last_event_id: Optional[int] = last_event_id
        self._lock = threading.Lock()
        self._closed = False
        self._response: Optional[httpx.Response] = None
        self._lines: Any = None
        self._delivered = False

    @property
    def closed(self) -> bool:
        """True once closed (or a fatal error ended the watch)."""
        return self._closed

    def _op_connect(self) -> Op[None]:
        params: Dict[str, Any] = {"path": self._path, "recursive": self._recursive}
        if self.last_event_id is not None:
            params["last_event_id"] = self.last_event_id
        response = yield from self._client.op_request(
            "GET",
            self._url,
            params=params,
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=httpx.Timeout(WATCH_IDLE_TIMEOUT, connect=10.0),
        )
        with self._lock:
            closed = self._closed
            if not closed:
                self._response = response
        if closed:
            yield Close(response)
            return
        self._lines = yield Lines(response)
        self._delivered = False

    def _op_drop(self) -> Op[None]:
        with self._lock:
            response, self._response, self._lines = self._response, None, None
        if response is not None:
            yield Close(response)

    def _op_reconnect(self) -> Op[None]:
        backoff = WATCH_FIRST_BACKOFF
        started = time.monotonic()
        first = True
        while not self._closed:
            if not (first and self._delivered):
                yield Sleep(backoff * (0.5 + random.random() / 2))
                backoff = min(backoff * 2, WATCH_MAX_BACKOFF)
            first = False
            try:
                yield from self._op_connect()
                return
            except UnavailableError:
                limit = self._reconnect_timeout
                if limit is not None and time.monotonic() - started >= limit:
                    raise

    def _op_close(self) -> Op[None]:
        with self._lock:
            self._closed = True
        yield from self._op_drop()

    def _op_next(self) -> Op[Optional[WatchEvent]]:
        """The next event, or ``None`` once the watch is closed."""
        event = ""
        data: List[str] = []
        while True:
            if self._closed:
                return None
            lines = self._lines
            if lines is None:
                try:
                    yield from self._op_reconnect()
                except BaseException:
                    yield from self._op_close()
                    raise
                event, data = "", []
                continue
            try:
                line: Optional[str] = yield NextLine(lines)
            except Exception as e:
                if self._closed:
                    return None
                if not isinstance(e, (httpx.TransportError, httpx.StreamError)):
                    raise
                line = None
            if line is None:
                # Dropped, broken off or silent: resume after the last id.
                yield from self._op_drop()
                continue
            if line:
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                continue
            if not data:
                event = ""
                continue
            kind, payload = event or "message", "\n".join(data)
            event, data = "", []
            try:
                doc = as_object(json.loads(payload), f"{kind} event")
            except ValueError:
                raise malformed(f"{kind} event", payload) from None
            if kind == "change":
                ev = WatchEvent._from_json(doc)
                self.last_event_id = ev.id
                self._delivered = True
                return ev
            if kind == "gap":
                self._delivered = True
                return WatchEvent(
                    id=field(doc, "last_event_id", int, "gap event"),
                    type="gap",
                    path=self._path,
                    old_path=None,
                    is_dir=False,
                    time=datetime.now(timezone.utc),
                    oldest_available=field(doc, "oldest_available", int, "gap event"),
                )
            if kind == "overflow":
                # The server drops a watcher that fell behind; catch up from the last id.
                self._delivered = True
                yield from self._op_drop()
            # Other event types are for newer clients.


class Watch(WatchCore[Client], Closing):
    """Change events below a path, from :meth:`VolumeFiles.watch <nullspace.VolumeFiles.watch>`:
    an iterator of :class:`WatchEvent` that reconnects by itself, and a context manager.

    The first connection is made when the watch is created, so every change made after that is
    delivered. When the connection drops, goes silent for 45 s, or the server says this watcher
    fell behind (``overflow``), a new connection resumes after the last event id seen: nothing
    is lost, unless the server no longer has the missed events, which it reports as a
    ``"gap"`` event (see :class:`WatchEvent`). While the server is unavailable, reconnection is
    retried with a backoff (0.1 s doubling to 5 s) — forever, or until ``reconnect_timeout``
    seconds have passed without a connection, when the last error is raised. Other errors (the
    volume or path was deleted, the key revoked) are raised at once.

    :meth:`close` ends the iteration; it may be called from another thread to stop a blocked
    ``for`` loop. A connection lost before the first event resumes without an id (the server
    sends no id before the first change), so changes made while it was down are not replayed.
    """

    def __init__(
        self,
        client: Client,
        url: str,
        path: str,
        recursive: bool,
        last_event_id: Optional[int],
        reconnect_timeout: Optional[float],
    ) -> None:
        """Connects (use :meth:`VolumeFiles.watch`)."""
        super().__init__(client, url, path, recursive, last_event_id, reconnect_timeout)
        client.run(self._op_connect())

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> WatchEvent:
        ev = self._client.run(self._op_next())
        if ev is None:
            raise StopIteration
        return ev

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or a fatal error ended the watch)."""
        return self._closed

    def _drop(self) -> None:
        """Drops the connection, as a network failure would (the next event reconnects)."""
        self._client.run(self._op_drop())

    def close(self) -> None:
        """Stops watching and closes the connection (idempotent, thread-safe)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            response = self._response
        if response is not None:
            # Closing a response does not wake a thread blocked reading it; shutting the socket
            # down does.
            try:
                stream = response.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass
        self._client.run(self._op_drop())
