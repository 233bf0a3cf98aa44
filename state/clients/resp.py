"""A minimal asyncio Redis connection for the hot path: packed commands in, hiredis replies out.

The worker sends one MULTI/EXEC of ~1000 script calls per batch. redis-py spends
more time packing those commands and reading ~1000 ``QUEUED`` replies one await
at a time than Redis spends running the scripts (bench/), so this connection
packs RESP itself and parses replies with hiredis in bulk. Everything else
(API, admin, tests) uses redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis


class ReplyError(Exception):
    """An error reply from Redis (``NOSCRIPT ...``, ``EXECABORT ...``, ...)."""


class StateLost(Exception):
    """A guarded transaction found the state epoch missing or changed (Redis lost its
    data, or another worker rebuilt it): nothing of the transaction was applied."""


class Fenced(Exception):
    """A guarded transaction wrote to a partition another worker has claimed since (a
    rebalance moved it): nothing of the transaction was applied."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition} is another worker's now")
        self.partition = partition


class Contended(Exception):
    """A guarded transaction passed its checks but a key they read changed before it
    ran (a claim or a new epoch meanwhile): nothing applied; retry."""


def pack(*args: object) -> bytes:
    """One command in RESP: an array of bulk strings (bytes, str or int arguments).

    >>> pack(b"HSET", "k", 1)
    b'*3\\r\\n$4\\r\\nHSET\\r\\n$1\\r\\nk\\r\\n$1\\r\\n1\\r\\n'
    """
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


_MULTI = pack(b"MULTI")
_EXEC = pack(b"EXEC")


class RespConnection:
    """Up to ``size`` lazily opened connections, one exchange on each at a time; a failed
    exchange closes its connection (the next call opens a new one). Exchanges of
    concurrent callers (the processor's lanes, stream/worker/lanes.py) go out at once on
    their own sockets, so Redis runs one while the other's caller computes; one caller's
    exchanges stay in order (each waits for its reply)."""

    def __init__(self, url: str, timeout: float = 30.0, size: int = 8) -> None:
        u = urlparse(url)
        if u.scheme not in ("redis", ""):
            raise ValueError(f"hot-path connection supports redis:// URLs, not {u.scheme}://")
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 6379
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        self.db = int(u.path.lstrip("/") or 0)
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._busy = asyncio.Semaphore(max(1, size))
        self._generation = 0  # close() drops the connections in use too, once returned
        # the commands sent before the MULTI of a transaction writing to a key's slot and
        # to some partitions (state/epoch.py: WATCH + a check that touches a watched key
        # on a mismatch, so EXEC aborts): None = unguarded
        self.guard_for: Callable[[bytes | str, Sequence[int]], list[bytes]] | None = None
        # awaited with an exchange function on every new connection, before any command
        # (state/epoch checks: a Redis that restarted may not hold what it held)
        self.on_open: Callable[[Callable[[list[bytes]], Awaitable[list[Any]]]],
                               Awaitable[None]] | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout)
        try:
            hello: list[bytes] = []
            if self.password is not None:
                auth = (b"AUTH", self.username, self.password) if self.username else (
                    b"AUTH", self.password)
                hello.append(pack(*auth))
            if self.db:
                hello.append(pack(b"SELECT", self.db))
            if hello:
                for rep in await self._exchange(reader, writer, hello):
                    if isinstance(rep, ReplyError):
                        raise rep
            if self.on_open is not None:
                await self.on_open(lambda cmds: self._exchange(reader, writer, cmds))
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        cmds: list[bytes]) -> list[Any]:
        writer.writelines(cmds)
        await writer.drain()
        parser = hiredis.Reader(replyError=ReplyError)
        replies: list[Any] = []
        want = len(cmds)
        while len(replies) < want:
            data = await reader.read(1 << 18)
            if not data:
                raise ConnectionError("redis closed the connection")
            parser.feed(data)
            while (rep := parser.gets()) is not False:
                replies.append(rep)
        return replies

    async def execute(self, cmds: list[bytes]) -> list[Any]:
        """Send packed commands in one write; their replies in order (errors as ReplyError)."""
        async with self._busy:
            rw = self._idle.pop() if self._idle else None
            generation = self._generation
            try:
                if rw is None:
                    rw = await self._open()
                out = await asyncio.wait_for(self._exchange(*rw, cmds), self.timeout)
            except BaseException:
                if rw is not None:
                    await _close(rw[1])
                raise
            if generation == self._generation:
                self._idle.append(rw)
            else:
                await _close(rw[1])
            return out

    async def transaction(self, cmds: list[bytes], key: bytes | str = b"",
                          partitions: Sequence[int] = ()) -> list[Any]:
        """MULTI, ``cmds``, EXEC: the EXEC reply (all or nothing). With a :attr:`guard_for`,
        :class:`StateLost`, :class:`Fenced` or :class:`Contended` when it aborted it."""
        guard = self.guard_for(key, partitions) if self.guard_for else []
        replies = await self.execute([*guard, _MULTI, *cmds, _EXEC])
        return self.finish(replies[len(guard):], replies[len(guard) - 1] if guard else None)

    async def transactions(self, groups: Sequence[tuple[bytes | str, list[bytes],
                                                        Sequence[int]]]) -> list[list[Any]]:
        """The groups' commands as one transaction (a single Redis has every slot; see
        :mod:`state.clients.cluster`): each group's replies. A group is (a key of its
        slot, its commands, the partitions it writes to: fenced, see state/epoch.py)."""
        parts = sorted({p for _, _, ps in groups for p in ps})
        flat = await self.transaction([c for _, cmds, _ in groups for c in cmds],
                                      groups[0][0] if groups else b"", parts)
        out, pos = [], 0
        for _, cmds, _ in groups:
            out.append(flat[pos:pos + len(cmds)])
            pos += len(cmds)
        return out

    async def execute_at(self, key: bytes | str, cmds: list[bytes]) -> list[Any]:
        """:meth:`execute` (one node holds every key)."""
        return await self.execute(cmds)

    @staticmethod
    def finish(replies: list[Any], guard: Any = None) -> list[Any]:
        """The EXEC reply of [MULTI, queued..., EXEC] replies, or the error; ``guard``: the
        reply of the guard script before them (state/epoch.py), None if unguarded."""
        queued = [r for r in replies[1:-1] if isinstance(r, ReplyError)]
        result = replies[-1]
        for rep in (replies[0], *queued, result):
            if isinstance(rep, ReplyError) and str(rep).startswith("LOADING"):
                raise ConnectionError(f"redis is loading its data set: {rep}")
        if result is None and guard is not None:
            if isinstance(guard, int) and guard <= -1:
                raise Fenced(-1 - guard)
            if guard == 0:
                raise StateLost("redis state epoch missing or changed: transaction not applied")
            raise Contended("a claim or the epoch changed under the transaction")
        if isinstance(result, ReplyError):
            raise queued[0] if queued else result
        for rep in result:
            if isinstance(rep, ReplyError):  # e.g. NOSCRIPT after a server restart
                raise rep
        return list(result)

    async def close(self) -> None:
        """Close every connection (those in use once their exchange ends)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for _, writer in idle:
            await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
