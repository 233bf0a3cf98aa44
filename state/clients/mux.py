"""A multiplexed asyncio Redis connection for many concurrent small reads (the API).

Every caller writes its packed commands at once and waits on a future; one reader
task parses replies with hiredis and hands them out in order (Redis answers in the
order it received). Concurrent requests therefore share one socket and pipeline
themselves, with no lock, no pool checkout and no per-command packing or parsing in
Python. A lost connection fails every waiting caller and the next call reconnects;
a watchdog fails everything if the oldest request waits longer than ``timeout``.

>>> import asyncio
>>> from services.redis_server import RedisServer
>>> async def demo(url: str) -> list[object]:
...     mux = MuxConnection(url)
...     try:
...         await mux.execute([pack(b"SET", b"k", b"v")])
...         return await asyncio.gather(mux.execute([pack(b"GET", b"k"), pack(b"PING")]),
...                                     mux.execute([pack(b"GET", b"nope")]))
...     finally:
...         await mux.close()
>>> srv = RedisServer().start()
>>> asyncio.run(demo(srv.url))
[[b'v', b'PONG'], [None]]
>>> srv.stop()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import hiredis

from state.clients.resp import ReplyError, RespConnection, pack

__all__ = ["MuxConnection", "ReplyError", "pack"]


class MuxConnection:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._conf = RespConnection(url)  # URL parsing and the AUTH/SELECT handshake
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._opening: asyncio.Future[asyncio.StreamWriter] | None = None
        # one entry per caller: (future, number of replies, replies so far, sent at)
        self._waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any],
                                               float]] = collections.deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._out: list[bytes] = []  # commands to write at the end of this loop iteration

    async def execute(self, cmds: list[bytes], replies: int | None = None) -> list[Any]:
        """Send packed commands in one write; their replies in order (errors as ReplyError).
        ``replies``: how many to wait for, when a part of ``cmds`` packs several commands."""
        while self._writer is None:  # (re)connect; loop if it failed meanwhile
            await self._connect()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append((fut, replies or len(cmds), [], time.monotonic()))
        if not self._out:  # the callers of one loop iteration share one write
            loop.call_soon(self._flush)
        self._out += cmds
        return await fut

    async def execute_at(self, key: bytes | str, cmds: list[bytes],
                         replies: int | None = None) -> list[Any]:
        """:meth:`execute` (one node holds every key; see :mod:`state.clients.cluster`)."""
        return await self.execute(cmds, replies)

    async def execute_routed(self, keyed: list[tuple[bytes | str, bytes]]) -> list[Any]:
        """(key, command) pairs: their replies in order (one node holds every key)."""
        return await self.execute([c for _, c in keyed])

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._writer is not None:  # (_fail dropped the commands of a lost one)
            self._writer.write(b"".join(out))

    async def _connect(self) -> None:
        if self._opening is None:  # the first caller opens; the others wait for it
            self._opening = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(self._opening)
        finally:
            if self._opening is not None and self._opening.done():
                self._opening = None

    async def _open(self) -> asyncio.StreamWriter:
        conf = self._conf
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(conf.host, conf.port), self.timeout)
        hello: list[bytes] = []
        if conf.password is not None:
            hello.append(pack(b"AUTH", conf.username, conf.password) if conf.username
                         else pack(b"AUTH", conf.password))
        if conf.db:
            hello.append(pack(b"SELECT", conf.db))
        if hello:
            for rep in await asyncio.wait_for(conf._exchange(reader, writer, hello),
                                              self.timeout):
                if isinstance(rep, ReplyError):
                    writer.close()
                    raise rep
        self._writer = writer
        self._tasks = [asyncio.ensure_future(self._read(reader, writer)),
                       asyncio.ensure_future(self._watch(writer))]
        return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader(replyError=ReplyError)
        waiting = self._waiting
        error: BaseException = ConnectionError("redis closed the connection")
        try:
            while data := await reader.read(1 << 16):
                parser.feed(data)
                while (rep := parser.gets()) is not False:
                    fut, want, got, _ = waiting[0]
                    got.append(rep)
                    if len(got) == want:
                        waiting.popleft()
                        if not fut.done():
                            fut.set_result(got)
        except (OSError, IndexError, hiredis.ProtocolError) as exc:  # IndexError: unasked reply
            error = ConnectionError(f"redis connection failed: {exc!r}")
        self._fail(writer, error)

    async def _watch(self, writer: asyncio.StreamWriter) -> None:
        while self._writer is writer:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            if self._waiting and time.monotonic() - self._waiting[0][3] > self.timeout:
                self._fail(writer, TimeoutError(f"redis did not answer in {self.timeout} s"))

    def _fail(self, writer: asyncio.StreamWriter, error: BaseException) -> None:
        if self._writer is not writer:
            return
        self._writer = None
        self._out = []
        writer.close()
        while self._waiting:
            fut = self._waiting.popleft()[0]
            if not fut.done():
                fut.set_exception(error)

    async def close(self) -> None:
        writer = self._writer
        if writer is not None:
            self._fail(writer, ConnectionError("connection closed"))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
