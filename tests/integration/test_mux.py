"""The API's multiplexed Redis connection against a real redis-server: concurrent callers
get their own replies, failures reach every waiting caller, and it reconnects."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.redis_server import RedisServer, free_port
from state.clients.mux import MuxConnection, ReplyError, pack


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    srv = RedisServer().start()
    yield srv
    srv.stop()


def test_concurrent_callers_get_their_own_replies(server: RedisServer) -> None:
    async def go() -> None:
        mux = MuxConnection(server.url)
        await mux.execute([pack(b"MSET", *[x for i in range(500) for x in (f"k{i}", i)])])
        rng = random.Random(5)

        async def caller(c: int) -> None:
            for _ in range(50):
                ks = [rng.randrange(600) for _ in range(rng.randrange(1, 4))]
                got = await mux.execute([pack(b"GET", f"k{k}") for k in ks])
                assert got == [str(k).encode() if k < 500 else None for k in ks]
                if rng.random() < 0.3:
                    await asyncio.sleep(0)

        await asyncio.gather(*[caller(c) for c in range(40)])
        # one part packing two commands; an error reply arrives in place, others still work
        both = pack(b"GET", b"k1") + pack(b"GET", b"k2")
        assert await mux.execute([both], replies=2) == [b"1", b"2"]
        got = await mux.execute([pack(b"INCR", b"k1"), pack(b"HGET", b"k1", b"f")])
        assert got[0] == 2 and isinstance(got[1], ReplyError)
        assert await mux.execute([pack(b"GET", b"k1")]) == [b"2"]
        await mux.close()

    asyncio.run(go())


def test_lost_server_fails_waiting_callers_then_reconnects() -> None:
    port = free_port()
    servers = [RedisServer(port=port).start()]
    srv = servers[0]

    async def go() -> None:
        mux = MuxConnection(srv.url, timeout=5)
        assert await mux.execute([pack(b"SET", b"a", b"1")]) == [b"OK"]
        blocked = asyncio.ensure_future(mux.execute([pack(b"BLPOP", b"never", b"0")]))
        await asyncio.sleep(0.2)
        srv.stop()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(blocked, 5)
        with pytest.raises(OSError):  # refused while down: fails fast, no hang
            await mux.execute([pack(b"PING")])
        servers.append(RedisServer(port=port).start())
        assert await mux.execute([pack(b"PING")]) == [b"PONG"]
        await mux.close()

    try:
        asyncio.run(go())
    finally:
        for s in servers:
            s.stop()


def test_a_silent_server_times_out_every_waiting_caller() -> None:
    async def go() -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answers

        silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        mux = MuxConnection(f"redis://127.0.0.1:{port}/0", timeout=0.5)
        calls = [asyncio.ensure_future(mux.execute([pack(b"PING")])) for _ in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert all(isinstance(r, TimeoutError) for r in results), results
        await mux.close()
        silent.close()

    asyncio.run(go())
