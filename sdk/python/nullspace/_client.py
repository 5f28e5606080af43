"""The HTTP clients: configuration, retries and error mapping, written once for both APIs.

Every operation of the SDK is written once, without I/O, as an *operation*: a generator that
yields :class:`Step` objects (send this request, read that body, sleep, ...) and gets their
results back (or has their exceptions thrown in). :class:`Client` runs operations with blocking
I/O on one ``httpx.Client``; :class:`nullspace.aio.AsyncClient` runs the very same generators
on one ``httpx.AsyncClient``. Request building, retries, error mapping and response decoding are
therefore shared by the sync and the async SDK; only the two small drivers (``run``) differ.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

import httpx

from . import __version__
from ._config import ResolvedConfig, resolve_config
from ._large import LargeBodies
from ._large import usable as large_usable
from .errors import (
    APIConnectionError,
    InternalError,
    NullspaceError,
    error_class_for_code,
)

__all__ = ["Client", "configure", "default_client", "Op"]

T = TypeVar("T")

#: Query parameters: a mapping or a sequence of pairs (pairs allow repeated keys).
QueryParams = Union[Mapping[str, Any], Sequence[Tuple[str, Any]], None]
#: A request body: bytes (replayable), or a factory giving a fresh iterator of chunks per attempt
#: (an async iterator only for the async client).
Body = Union[bytes, Callable[[], Union[Iterator[bytes], AsyncIterator[bytes]]], None]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _encode_params(params: QueryParams) -> List[Tuple[str, Union[str, int, float, bool, None]]]:
    if params is None:
        return []
    items: Iterable[Tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    return [(k, _query_value(v)) for k, v in items if v is not None]


# ------------------------------------------------------------------------------ operations


@dataclass(frozen=True)
class Send:
    """Step: build a request from these ``httpx`` arguments and send it; the result is the
    response, open (``stream=True``). Connection failures are thrown into the operation."""

    args: Dict[str, Any]
    #: A GET whose body may be large: the sync client reads it through ``_large`` when it can.
    large_body: bool = False


@dataclass(frozen=True)
class Read:
    """Step: read the whole body of ``response`` and close it, whatever happens."""

    response: httpx.Response


@dataclass(frozen=True)
class Close:
    """Step: close ``response``."""

    response: httpx.Response


@dataclass(frozen=True)
class Sleep:
    """Step: wait ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Lines:
    """Step: the result is an iterator over the lines of the open ``response`` (sync or async:
    opaque to the operation, which only hands it back in :class:`NextLine`)."""

    response: httpx.Response


@dataclass(frozen=True)
class NextLine:
    """Step: the next line of ``lines`` (from :class:`Lines`), or ``None`` at the end."""

    lines: Any


@dataclass(frozen=True)
class Consume:
    """Step: call ``fn`` with a blocking iterator of the body chunks of the open ``response``
    (at most ``chunk_size`` bytes each, ``None``: as they arrive); the result is ``fn``'s.
    The async client runs ``fn`` on a worker thread, so local file I/O never blocks its loop."""

    response: httpx.Response
    fn: Callable[[Iterator[bytes]], Any]
    chunk_size: Optional[int] = None


@dataclass(frozen=True)
class Blocking:
    """Step: the result of ``fn()``, blocking work such as reading a local file (the async
    client runs it on a worker thread)."""

    fn: Callable[[], Any]


#: One step of an operation.
Step = Union[Send, Read, Close, Sleep, Lines, NextLine, Consume, Blocking]
#: An operation giving a ``T``: run it with ``Client.run`` or ``await AsyncClient.run``.
Op = Generator[Step, Any, T]


class Outcome:
    """Where a run of an operation stands, for both drivers: what the last step gave (or
    raised) is sent (or thrown) back into the operation, which answers with its next step."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        #: The operation's result, once it returned.
        self.result: Any = None

    def resume(self, op: Op[Any]) -> Optional[Step]:
        """The operation's next step, or ``None`` once it returned (its result in :attr:`result`)."""
        value, error = self.value, self.error
        self.value = self.error = None
        try:
            return op.throw(error) if error is not None else op.send(value)
        except StopIteration as done:
            self.result = done.value
            return None

    def capture(self, perform: Callable[[Step], Any], step: Step) -> None:
        """Performs a step (blocking), keeping its result or its exception (cancellation and
        interrupts too: the operation closes what it opened, then lets them through)."""
        try:
            self.value = perform(step)
        except BaseException as e:
            self.error = e


def _request_url(e: httpx.TransportError, fallback: str) -> str:
    try:
        return str(e.request.url)
    except RuntimeError:
        return fallback


class BaseClient:
    """What the sync and the async client share: configuration, default headers, and the
    request operation with its retries and error mapping. Subclasses add a driver ``run``."""

    def __init__(
        self,
        url: Optional[str],
        key: Optional[str],
        *,
        timeout: float,
        max_retries: int,
        retry_backoff: float,
    ) -> None:
        if url is not None and not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError("max_retries must be an int")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(retry_backoff, bool) or not isinstance(retry_backoff, (int, float)) or retry_backoff < 0:
            raise ValueError(f"retry_backoff must be a number >= 0, not {retry_backoff!r}")
        self._config: ResolvedConfig = resolve_config(url, key)
        self.max_retries: int = max_retries
        self.retry_backoff: float = float(retry_backoff)

    def _http_options(self, timeout: float) -> Dict[str, Any]:
        """Arguments for ``httpx.Client``/``httpx.AsyncClient``: one pool of kept-alive
        connections, large enough that 64 concurrent callers all reuse theirs."""
        headers = {"User-Agent": f"nullspace-python/{__version__}"}
        if self._config.key:
            headers["Authorization"] = f"Bearer {self._config.key}"
        return {
            "base_url": self._config.url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout, connect=min(float(timeout), 10.0)),
            "limits": httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30.0),
            "follow_redirects": False,
        }

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._config.url

    @property
    def config(self) -> ResolvedConfig:
        """The resolved configuration, including where the URL and key came from."""
        return self._config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def op_request(
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
        large_body: bool = False,
    ) -> Op[httpx.Response]:
        """The operation behind ``Client.request`` (see there); ``large_body`` marks a GET
        whose answer may be large (see ``_large``)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        query = _encode_params(params)
        attempt = 0
        while True:
            body = content() if callable(content) else content
            args: Dict[str, Any] = {
                "method": method, "url": path, "params": query, "json": json, "content": body, "headers": headers
            }
            if timeout is not None:
                args["timeout"] = timeout
            can_retry = replayable and attempt < self.max_retries
            try:
                response: httpx.Response = yield Send(args, large_body)
            except httpx.TransportError as e:
                connect_failed = isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout))
                if can_retry and (idempotent or connect_failed):
                    yield Sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise _connection_error(e, _request_url(e, path), self.url) from e
            if response.status_code < 400 and stream:
                return response
            try:
                yield Read(response)
            except httpx.TransportError as e:
                raise _connection_error(e, str(response.request.url), self.url) from e
            if response.status_code < 400:
                return response
            api_err = error_from_response(response)
            retry = api_err.retryable or api_err.code in ("unavailable", "internal")
            if can_retry and idempotent and retry:
                yield Sleep(self._delay(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            raise api_err

    def op_json(self, method: str, path: str, **kwargs: Any) -> Op[Any]:
        """Like :meth:`op_request`, and decodes the JSON body (``InternalError`` if it is not JSON)."""
        response = yield from self.op_request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise InternalError(
                f"the server at {self.url} sent an answer that is not JSON to {method} {path} "
                f"(HTTP {response.status_code})",
                status=response.status_code,
            ) from None

    def _delay(self, attempt: int, retry_after: Optional[str]) -> float:
        delay: float = self.retry_backoff * (2**attempt)
        delay = delay * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 30.0))
            except ValueError:
                pass
        return delay


class Client(BaseClient):
    """A connection to one nullspace server, with an API key.

    Arguments left out are resolved from the environment (``NULLSPACE_API_URL``,
    ``NULLSPACE_API_KEY``), then the ``nullspace login`` profile, then the local server's
    ``client.json``; see :func:`nullspace.configure` for the full order.

    Args:
        url: base URL of the server, e.g. ``"http://localhost:7420"``.
        key: API key (``nsk_...``).
        timeout: seconds to wait for connecting and for each read or write on the socket.
        max_retries: how many times a failed idempotent request is retried (0 disables retries).
        retry_backoff: first delay between retries in seconds; it doubles each time.
        transport: an ``httpx`` transport to use instead of the network (for tests and proxies).

    A client is thread-safe and may be used as a context manager; :meth:`close` frees its
    connections. Its connections are kept alive and reused by every call (up to 64 idle).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_backoff: float = 0.25,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        super().__init__(url, key, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff)
        self._http = httpx.Client(transport=transport, **self._http_options(timeout))
        self._large = LargeBodies(self.url, float(timeout)) if large_usable(self.url, transport) else None

    def close(self) -> None:
        """Closes the client's connections."""
        self._http.close()
        if self._large is not None:
            self._large.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, op: Op[T]) -> T:
        """Runs an operation with blocking I/O and returns its result."""
        outcome = Outcome()
        while True:
            step = outcome.resume(op)
            if step is None:
                return cast(T, outcome.result)
            outcome.capture(self._step, step)

    def _step(self, step: Step) -> Any:
        if isinstance(step, Send):
            request = self._http.build_request(**step.args)
            if step.large_body and self._large is not None:
                return self._large.send(request)
            return self._http.send(request, stream=True)
        if isinstance(step, Read):
            try:
                return step.response.read()
            finally:
                step.response.close()
        if isinstance(step, Close):
            step.response.close()
        elif isinstance(step, Sleep):
            if step.seconds > 0:
                time.sleep(step.seconds)
        elif isinstance(step, Lines):
            return step.response.iter_lines()
        elif isinstance(step, NextLine):
            return next(step.lines, None)
        elif isinstance(step, Consume):
            return step.fn(step.response.iter_bytes(step.chunk_size))
        elif isinstance(step, Blocking):
            return step.fn()
        return None

    # ----------------------------------------------------------------------------- requests

    def request(
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
        """Sends one API request and returns the successful response.

        Errors become :class:`~nullspace.NullspaceError` subclasses. Retryable failures
        (``unavailable``, ``internal``, and connection failures) are retried with exponential
        backoff when the request is idempotent (GET, HEAD, PUT, DELETE) and its body can be
        sent again (``replayable``). A request that could not connect at all is retried
        whatever its method, as long as its body is replayable.

        With ``stream=True`` the body is not read; the caller must close the response.
        ``timeout`` replaces the client's timeouts for this request.
        """
        return self.run(
            self.op_request(
                method, path, params=params, json=json, content=content, headers=headers, stream=stream,
                replayable=replayable, idempotent=idempotent, timeout=timeout,
            )
        )

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, and decodes the JSON body (``InternalError`` if it is not JSON)."""
        return self.run(self.op_json(method, path, **kwargs))

def _connection_error(e: httpx.TransportError, url: object, base: str) -> APIConnectionError:
    if isinstance(e, httpx.TimeoutException):
        what = f"timed out talking to the nullspace server at {base} ({url})"
    elif isinstance(e, httpx.ConnectError):
        what = (
            f"cannot reach the nullspace server at {base} ({url}): {e or type(e).__name__}; "
            "is `nullspace server` running? (set NULLSPACE_API_URL or run `nullspace login`)"
        )
    else:
        what = f"connection to the nullspace server at {base} failed ({url}): {e or type(e).__name__}"
    return APIConnectionError(what, retryable=True)


def error_from_response(response: httpx.Response) -> NullspaceError:
    """Turns an error response (status >= 400, body already read) into an exception."""
    status = response.status_code
    code: Optional[str] = None
    message: Optional[str] = None
    retryable: Optional[bool] = None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        e: Dict[str, Any] = doc["error"]
        if isinstance(e.get("code"), str):
            code = e["code"]
        if isinstance(e.get("message"), str):
            message = e["message"]
        if isinstance(e.get("retryable"), bool):
            retryable = e["retryable"]
    cls = error_class_for_code(code, status)
    if message is None:
        text = response.text.strip()[:200] if response.content else ""
        req = response.request
        message = f"HTTP {status} from {req.method} {req.url}" + (f": {text}" if text else "")
    if retryable is None:
        retryable = status in (502, 503, 504)
    return cls(message, code=code, status=status, retryable=retryable)


_default_lock = threading.Lock()
_default: Optional[Client] = None


def configure(
    url: Optional[str] = None,
    key: Optional[str] = None,
    *,
    timeout: float = 60.0,
    max_retries: int = 3,
    retry_backoff: float = 0.25,
) -> Client:
    """Sets the client used when no ``client=`` argument is given, and returns it.

    Configuration is resolved in this order, first value wins:

    1. the arguments given here (or to :class:`Client`);
    2. environment variables ``NULLSPACE_API_URL`` and ``NULLSPACE_API_KEY``;
    3. the profile written by ``nullspace login``:
       ``$XDG_CONFIG_HOME/nullspace/config.json`` (default ``~/.config/nullspace/config.json``);
    4. the local server's bootstrap file ``client.json`` in ``$NULLSPACE_DATA_DIR``, else
       ``$XDG_DATA_HOME/nullspace``, else ``~/.local/share/nullspace``;
    5. the URL ``http://127.0.0.1:7420``.

    A file's key is only used for the URL written in that same file.
    """
    global _default
    client = Client(url, key, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def default_client() -> Client:
    """Returns the client set by :func:`configure`, creating one from the environment if needed."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def reset_default_client() -> None:
    """Forgets the default client; the next call resolves configuration again."""
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is not None:
        old.close()


def resolve_client(client: Optional[Client]) -> Client:
    """``client`` itself, or the default client."""
    if client is None:
        return default_client()
    if not isinstance(client, Client):
        raise TypeError(f"client must be a nullspace.Client, not {type(client).__name__}")
    return client
