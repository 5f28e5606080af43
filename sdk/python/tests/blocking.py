"""The async SDK seen through blocking calls, so that one test runs over both SDKs.

:class:`Portal` runs an event loop on a thread; :func:`blocking_sdk` gives a namespace shaped
like the ``nullspace`` module whose ``Volume``, ``Sandbox``, ``Client`` and ``keys`` are the
async SDK's (``AsyncVolume``, ...), each call awaited on that loop. Results that are async SDK
objects come back wrapped the same way; async iterators become iterators, async context
managers context managers, and streams that the async SDK opens lazily (``read_stream``,
``search``, ``watch``) are opened at once, as the sync SDK does. Nothing of the SDK is
re-implemented here: every call runs the async code itself.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import types
from typing import Any, Coroutine, Dict, Iterator, Optional, TypeVar

import nullspace
from nullspace import aio

T = TypeVar("T")


class Portal:
    """An event loop on a daemon thread, and a blocking way into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio-portal", daemon=True)
        self._thread.start()

    def call(self, coro: "Coroutine[Any, Any, T]") -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def _is_sdk_object(value: Any) -> bool:
    return isinstance(
        value,
        (
            aio.AsyncClient,
            aio.AsyncVolume,
            aio.AsyncVolumeFiles,
            aio.AsyncSandbox,
            aio.AsyncSandboxFiles,
            aio.AsyncSandboxVolumes,
            type(aio.keys),
        ),
    ) or (isinstance(value, type) and value.__module__ == aio.__name__)


def unwrap(value: Any) -> Any:
    """The async object behind a proxy (in lists, tuples and dicts too)."""
    if isinstance(value, Proxy):
        return value._target
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


class Stream:
    """An async iterator (and async context manager) as a blocking one."""

    def __init__(self, portal: Portal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Any:
        async def step() -> Any:
            try:
                return True, await self._target.__anext__()
            except StopAsyncIteration:
                return False, None

        more, value = self._portal.call(step())
        if not more:
            raise StopIteration
        return value

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        closer = getattr(self._target, "aclose", None)
        if closer is not None:
            self._portal.call(closer())

    def __getattr__(self, name: str) -> Any:
        return wrap(self._portal, getattr(self._target, name))


class Proxy:
    """An async SDK object whose methods block until their coroutine is done."""

    def __init__(self, portal: Portal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return wrap(self._portal, getattr(self._target, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return wrap(self._portal, self._target(*unwrap(list(args)), **unwrap(kwargs)))

    def __enter__(self) -> Any:
        return wrap(self._portal, self._portal.call(self._target.__aenter__()))

    def __exit__(self, *exc: Any) -> None:
        self._portal.call(self._target.__aexit__(*exc))

    def __eq__(self, other: object) -> bool:
        return bool(self._target == unwrap(other))

    def __hash__(self) -> int:
        return hash(self._target)

    def __repr__(self) -> str:
        return repr(self._target)

    def __instancecheck__(self, value: Any) -> bool:
        return isinstance(unwrap(value), self._target)


def wrap(portal: Portal, value: Any) -> Any:
    """A blocking view of what an async SDK call gave."""
    if isinstance(value, aio._Opening):
        value = portal.call(_opened(value))
    if inspect.iscoroutine(value):
        value = portal.call(value)
    if hasattr(value, "__anext__"):
        return Stream(portal, value)
    if inspect.ismethod(value) or inspect.isfunction(value) or _is_sdk_object(value):
        return Proxy(portal, value)
    return value


async def _opened(opening: "aio._Opening[Any]") -> Any:
    return await opening


def blocking_sdk(portal: Portal) -> types.SimpleNamespace:
    """A namespace like the ``nullspace`` module, over the async SDK."""
    names: Dict[str, Any] = {k: getattr(nullspace, k) for k in nullspace.__all__}
    names.update(
        Client=Proxy(portal, aio.AsyncClient),
        Volume=Proxy(portal, aio.AsyncVolume),
        Sandbox=Proxy(portal, aio.AsyncSandbox),
        keys=Proxy(portal, aio.keys),
        flavour="async",
        portal=portal,
    )
    return types.SimpleNamespace(**names)


def close_client(portal: Optional[Portal], client: Any) -> None:
    """Closes a client of either SDK."""
    if isinstance(client, Proxy):
        assert portal is not None
        portal.call(client._target.aclose())
    else:
        client.close()


def sync_sdk() -> types.SimpleNamespace:
    """The ``nullspace`` module as the same kind of namespace."""
    names: Dict[str, Any] = {k: getattr(nullspace, k) for k in nullspace.__all__}
    names.update(flavour="sync")
    return types.SimpleNamespace(**names)


__all__ = ["Portal", "Proxy", "Stream", "blocking_sdk", "sync_sdk", "unwrap", "wrap", "close_client", "Iterator"]
