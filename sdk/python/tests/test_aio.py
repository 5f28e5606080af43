"""What only the async SDK has: awaiting and entering streams, concurrency on one client,
async iterables as data, cancellation, and one default client per event loop. (Everything else
of `nullspace.aio` runs the whole suite through the `sdk` fixture.)"""

from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator, List

import pytest

import nullspace
from nullspace import aio
from nullspace.aio import AsyncClient, AsyncVolume

from conftest import Server, unique_name


def test_streams_concurrency_and_async_data(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, server.admin_key) as client:
            vol = await AsyncVolume.create(unique_name(), client=client)
            f = vol.files
            payloads = {f"/f{i}": os.urandom(4096) for i in range(32)}
            await asyncio.gather(*(f.write(p, d) for p, d in payloads.items()))
            got = await asyncio.gather(*(f.read_bytes(p) for p in payloads))
            assert got == list(payloads.values())

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(4):
                    yield bytes([i]) * 100_000

            st = await f.write("/gen.bin", chunks())
            assert st.size == 400_000
            stream = await f.read_stream("/gen.bin")          # awaited ...
            assert stream.size == 400_000 and stream.etag == st.etag
            assert len(await stream.read()) == 400_000 and stream.closed
            async with f.read_stream("/gen.bin", chunk_size=1000) as pieces:   # ... or entered
                sizes = {len(c) async for c in pieces}
            assert sizes == {1000} and pieces.closed
            names: List[str] = [e.path async for e in f.iter_list("/", page_size=5)]
            assert names == sorted([*payloads, "/gen.bin"])
            await AsyncVolume.delete(vol.name, client=client)

    asyncio.run(main())


def test_a_cancelled_watch_and_read_leave_the_client_usable(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, server.admin_key) as client:
            vol = await AsyncVolume.create(unique_name(), client=client)
            f = vol.files
            await f.write("/big.bin", os.urandom(8 << 20))
            events = await f.watch("/")
            # No change is coming: the wait is cancelled while it blocks on the stream.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(events.__anext__(), 0.2)
            await events.aclose()
            assert events.closed

            reading = asyncio.Event()

            async def read_one_chunk() -> None:
                async with f.read_stream("/big.bin") as chunks:
                    await chunks.__anext__()
                    reading.set()
                    await asyncio.Event().wait()  # blocks until cancelled

            task = asyncio.ensure_future(read_one_chunk())
            await reading.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The client goes on working: the cancelled calls closed what they held.
            assert await f.exists("/big.bin")
            assert len(await f.read_bytes("/big.bin", length=10)) == 10
            await AsyncVolume.delete(vol.name, client=client)

    asyncio.run(main())


def test_each_event_loop_gets_its_default_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)
    name = unique_name()

    async def make() -> AsyncClient:
        vol = await AsyncVolume.from_name(name, create_if_missing=True)
        return vol.client

    first = asyncio.run(make())
    second = asyncio.run(make())   # a new loop: a client of its own, not the closed loop's
    assert first is not second
    nullspace.Volume.delete(name, client=nullspace.Client(server.url, server.admin_key))
    with pytest.raises(TypeError):
        asyncio.run(AsyncVolume.from_name(name, client=nullspace.Client(server.url, server.admin_key)))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        aio.default_client()  # no running loop
