"""The HTTP client: configuration, one ``httpx.Client``, retries and error mapping.

Everything that talks to the server goes through :meth:`Client.request`, so every capability
module (volumes, files, later transfers and sandboxes) gets the same retries and error types.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import httpx

from . import __version__
from ._config import ResolvedConfig, resolve_config
from .errors import (
    APIConnectionError,
    InternalError,
    NullspaceError,
    error_class_for_code,
)

__all__ = ["Client", "configure", "default_client"]

#: Query parameters: a mapping or a sequence of pairs (pairs allow repeated keys).
QueryParams = Union[Mapping[str, Any], Sequence[Tuple[str, Any]], None]
#: A request body: bytes (replayable), or a factory giving a fresh iterator of chunks per attempt.
Body = Union[bytes, Callable[[], Iterator[bytes]], None]

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


class Client:
    """A connection to one nullspace server, with an API key.

    Arguments left out are resolved from the environment (``NULLSPACE_API_URL``,
    ``NULLSPACE_API_KEY``), then the ``nullspace login`` profile, then the local server's
    ``client.json``; see :func:`nullspace.configure` for the full order.

    Args:
        url: base URL of the server, e.g. ``"http://127.0.0.1:7420"``.
        key: API key (``nsk_...``).
        timeout: seconds to wait for connecting and for each read or write on the socket.
        max_retries: how many times a failed idempotent request is retried (0 disables retries).
        retry_backoff: first delay between retries in seconds; it doubles each time.
        transport: an ``httpx`` transport to use instead of the network (for tests and proxies).

    A client is thread-safe and may be used as a context manager; :meth:`close` frees its
    connections.
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
        headers = {"User-Agent": f"nullspace-python/{__version__}"}
        if self._config.key:
            headers["Authorization"] = f"Bearer {self._config.key}"
        self._http = httpx.Client(
            base_url=self._config.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(float(timeout), 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._config.url

    @property
    def config(self) -> ResolvedConfig:
        """The resolved configuration, including where the URL and key came from."""
        return self._config

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def close(self) -> None:
        """Closes the client's connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        query = _encode_params(params)
        attempt = 0
        while True:
            body: Union[bytes, Iterator[bytes], None]
            body = content() if callable(content) else content
            extra: Dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            request = self._http.build_request(
                method, path, params=query, json=json, content=body, headers=headers, **extra
            )
            can_retry = replayable and attempt < self.max_retries
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as e:
                err = _connection_error(e, request.url, self.url)
                connect_failed = isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout))
                if can_retry and (idempotent or connect_failed):
                    self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise err from e
            if response.status_code < 400:
                if not stream:
                    try:
                        response.read()
                    except httpx.TransportError as e:
                        response.close()
                        raise _connection_error(e, request.url, self.url) from e
                    finally:
                        response.close()
                return response
            try:
                response.read()
            except httpx.TransportError as e:
                raise _connection_error(e, request.url, self.url) from e
            finally:
                response.close()
            api_err = error_from_response(response)
            retry = api_err.retryable or api_err.code in ("unavailable", "internal")
            if can_retry and idempotent and retry:
                self._sleep(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            raise api_err

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, and decodes the JSON body (``InternalError`` if it is not JSON)."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise InternalError(
                f"the server at {self.url} sent an answer that is not JSON to {method} {path} "
                f"(HTTP {response.status_code})",
                status=response.status_code,
            ) from None

    def _sleep(self, attempt: int, retry_after: Optional[str]) -> None:
        delay = self.retry_backoff * (2**attempt)
        delay = delay * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 30.0))
            except ValueError:
                pass
        if delay > 0:
            time.sleep(delay)


def _connection_error(e: httpx.TransportError, url: httpx.URL, base: str) -> APIConnectionError:
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
