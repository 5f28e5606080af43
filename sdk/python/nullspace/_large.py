"""Large response bodies over the standard library's ``http.client``, for the sync client.

httpx parses HTTP/1.1 with h11, in pure Python: each 64 KiB read off the socket is copied into
h11's buffer and out again, which caps a streamed download at well under what the CLI reads
(measured: bench/notes/issue15-python.md). ``http.client`` reads a body straight from the
socket into the chunk it returns (a C buffered reader), so ``read_stream`` and file downloads
send their GET through it: the same request (headers, key, query) built by httpx, the answer
wrapped back into an ``httpx.Response`` whose stream reads 1 MiB at a time. Everything else
(status handling, retries, error mapping, decoding) stays the shared code's.

Only plain ``http://`` servers without a proxy in the environment and without a custom
transport take this path; others use httpx. Its connections are kept alive and reused (up to
8 idle), like httpx's own pool.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.request
from typing import Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import httpx

#: Bytes asked of the socket per chunk.
CHUNK = 1024 * 1024
#: Idle connections kept for reuse.
MAX_IDLE = 8


def usable(base_url: str, transport: object) -> bool:
    """Whether bodies from ``base_url`` may take this path."""
    u = urlsplit(base_url)
    if transport is not None or u.scheme != "http" or not u.hostname:
        return False
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all"))


class LargeBodies:
    """A small pool of kept-alive ``http.client`` connections to one server."""

    def __init__(self, base_url: str, timeout: float) -> None:
        u = urlsplit(base_url)
        assert u.hostname is not None
        self._host: str = u.hostname
        self._port: int = u.port or 80
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: List[http.client.HTTPConnection] = []
        #: Connections opened so far (the tests check that they are reused).
        self.opened = 0

    def close(self) -> None:
        """Closes the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            self.opened += 1
        return _Connection(self._host, self._port, timeout=self._timeout), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def send(self, request: httpx.Request) -> httpx.Response:
        """Sends a bodiless request; the response's body is read as it is iterated."""
        target = request.url.raw_path.decode("ascii")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        while True:
            conn, reused = self._take()
            try:
                conn.request(request.method, target, headers=headers)
                answer = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if reused:
                    continue  # a kept-alive connection the server had closed: a new one
                raise _transport_error(e, request, connecting=not isinstance(e, http.client.HTTPException)) from e
            return httpx.Response(
                answer.status,
                headers=answer.getheaders(),
                stream=_Body(self, conn, answer, request),
                request=request,
            )


class _Connection(http.client.HTTPConnection):
    """An ``http.client`` connection with ``TCP_NODELAY``, as httpcore's are."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Body(httpx.SyncByteStream):
    def __init__(
        self,
        pool: LargeBodies,
        conn: http.client.HTTPConnection,
        answer: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._pool = pool
        self._conn: Optional[http.client.HTTPConnection] = conn
        self._answer = answer
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        answer = self._answer
        while True:
            try:
                chunk = answer.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise _transport_error(e, self._request, connecting=False) from e
            if not chunk:
                if answer.length:
                    self.close()
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection before the end of the body", request=self._request
                    )
                break
            yield chunk
        conn, self._conn = self._conn, None
        if conn is not None:
            if answer.will_close:
                conn.close()
            else:
                self._pool._give_back(conn)

    def close(self) -> None:
        # Closed before the end: the rest of the body is still on the wire, so the
        # connection cannot be reused.
        conn, self._conn = self._conn, None
        if conn is not None:
            self._answer.close()
            conn.close()


def _transport_error(e: Exception, request: httpx.Request, *, connecting: bool) -> httpx.TransportError:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return httpx.ConnectTimeout(str(e), request=request) if connecting else httpx.ReadTimeout(str(e), request=request)
    if connecting and isinstance(e, ConnectionRefusedError):
        return httpx.ConnectError(str(e) or type(e).__name__, request=request)
    if isinstance(e, http.client.HTTPException):
        return httpx.RemoteProtocolError(str(e) or type(e).__name__, request=request)
    return httpx.ReadError(str(e) or type(e).__name__, request=request)
