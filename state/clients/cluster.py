"""Redis Cluster routing for the hot-path and lookup connections: one connection per
primary (:class:`~state.clients.resp.RespConnection` or
:class:`~state.clients.mux.MuxConnection`), the slot map from ``CLUSTER SLOTS``, and
the two calls the store makes on either placement (the single-node connections have
the same two; see ``docs/architecture.md``, "Redis layout"):

- ``transactions(groups)``: a list of (key, commands, partitions); each group's commands
  touch keys of ``key``'s hash slot only (and write to ``partitions``: fenced by
  state/epoch.py). On a single Redis all groups are one MULTI/EXEC (as before); on a
  cluster each group is its own MULTI/EXEC on the primary owning its
  slot, the groups of one primary sent in one write, the primaries concurrently.
- ``execute_at(key, commands)``: commands sent to the primary owning ``key``'s slot.

A MOVED/ASK reply or a lost connection marks the slot map stale; it is re-read before
the next call (the caller retries: the store's callers repeat a batch safely).

>>> key_slot(b"foo"), key_slot(b"{user1000}.following") == key_slot(b"{user1000}.x")
(12182, True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse, urlunparse

from state.clients.resp import ReplyError, RespConnection, pack


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()


def key_slot(key: bytes | str) -> int:
    """The hash slot of ``key`` (CRC16/XMODEM of its hash tag, if any, mod 16384)."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    crc = 0
    for byte in k:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc % 16384


def is_cluster_url(url: str) -> bool:
    return url.startswith("redis+cluster://")


def node_url(url: str, host: str | None = None, port: int | None = None) -> str:
    """``redis://`` URL of one node (the seed's credentials, the node's address)."""
    u = urlparse(url.replace("redis+cluster://", "redis://", 1))
    if host is None:
        return urlunparse(u._replace(path=""))
    auth = u.netloc.rpartition("@")[0]
    return urlunparse(u._replace(netloc=f"{auth + '@' if auth else ''}{host}:{port}", path=""))


_MULTI, _EXEC = pack(b"MULTI"), pack(b"EXEC")


class ClusterConnection:
    """Connections to every primary of a Redis Cluster, routed by hash slot."""

    def __init__(self, url: str, factory: Callable[[str], Any] = RespConnection,
                 timeout: float = 30.0) -> None:
        self.url = url
        self.factory = factory
        self.timeout = timeout
        self.nodes: dict[tuple[str, int], Any] = {}
        self._slots: list[tuple[str, int]] | None = None
        self._refreshing = asyncio.Lock()
        # the commands to send before the MULTI of a group, by the group's key and
        # partitions (state/epoch.py: the epoch copy of its slot, its owners); None =
        # unguarded
        self.guard_for: Callable[[bytes | str, Sequence[int]], list[bytes]] | None = None

    def _node(self, addr: tuple[str, int]) -> Any:
        conn = self.nodes.get(addr)
        if conn is None:
            conn = self.nodes[addr] = self.factory(node_url(self.url, *addr))
            if hasattr(conn, "timeout"):
                conn.timeout = self.timeout
        return conn

    async def _refresh(self) -> list[tuple[str, int]]:
        async with self._refreshing:
            if self._slots is not None:
                return self._slots
            seeds: list[tuple[str, int] | None] = [*self.nodes] or [None]
            last: BaseException | None = None
            for addr in seeds:
                conn = RespConnection(node_url(self.url) if addr is None
                                      else node_url(self.url, *addr), timeout=self.timeout)
                try:
                    (ranges,) = await conn.execute([pack(b"CLUSTER", b"SLOTS")])
                except (TimeoutError, OSError, ConnectionError, ReplyError) as exc:
                    last = exc
                    continue
                finally:
                    await conn.close()
                slots: list[tuple[str, int]] = [("", 0)] * 16384
                for lo, hi, primary, *_ in ranges:
                    addr_ = (primary[0].decode(), int(primary[1]))
                    slots[lo:hi + 1] = [addr_] * (hi - lo + 1)
                self._slots = slots
                return slots
            raise ConnectionError(f"no node of the cluster answered CLUSTER SLOTS: {last}")

    def stale(self) -> None:
        self._slots = None

    async def conn_at(self, key: bytes | str) -> Any:
        slots = self._slots or await self._refresh()
        return self._node(slots[key_slot(key)])

    async def execute_at(self, key: bytes | str, cmds: list[bytes],
                         replies: int | None = None) -> list[Any]:
        conn = await self.conn_at(key)
        try:
            out = await (conn.execute(cmds, replies) if replies is not None
                         else conn.execute(cmds))
        except (TimeoutError, OSError, ConnectionError):
            self.stale()
            raise
        self._check_moved(out)
        return list(out)

    async def execute_routed(self, keyed: list[tuple[bytes | str, bytes]]) -> list[Any]:
        """(key, command) pairs, each sent to its key's primary (one write per primary,
        the primaries concurrently): their replies in order."""
        slots = self._slots or await self._refresh()
        by_node: dict[tuple[str, int], list[int]] = {}
        for i, (key, _) in enumerate(keyed):
            by_node.setdefault(slots[key_slot(key)], []).append(i)
        out: list[Any] = [None] * len(keyed)

        async def run(addr: tuple[str, int], idx: list[int]) -> None:
            try:
                got = await self._node(addr).execute([keyed[i][1] for i in idx])
            except (TimeoutError, OSError, ConnectionError):
                self.stale()
                raise
            self._check_moved(got)
            for i, rep in zip(idx, got, strict=True):
                out[i] = rep

        await asyncio.gather(*(run(a, idx) for a, idx in by_node.items()))
        return out

    def _check_moved(self, replies: Sequence[Any]) -> None:
        for rep in replies:
            if isinstance(rep, ReplyError) and str(rep).startswith(("MOVED", "ASK")):
                self.stale()
                raise ConnectionError(f"cluster slot moved: {rep}")

    async def transactions(self, groups: Sequence[tuple[bytes | str, list[bytes],
                                                        Sequence[int]]]) -> list[list[Any]]:
        """One MULTI/EXEC per group on its slot's primary (see the module docstring)."""
        slots = self._slots or await self._refresh()
        by_node: dict[tuple[str, int], list[int]] = {}
        for i, (key, _, _) in enumerate(groups):
            by_node.setdefault(slots[key_slot(key)], []).append(i)
        out: list[list[Any]] = [[] for _ in groups]

        async def run(addr: tuple[str, int], idx: list[int]) -> None:
            if not idx:
                return
            conn = self._node(addr)
            sizes, cmds = [], []
            for i in idx:
                key, body, parts = groups[i]
                guard = self.guard_for(key, parts) if self.guard_for else []
                cmds += [*guard, _MULTI, *body, _EXEC]
                sizes.append((len(guard), len(body)))
            try:
                replies = await conn.execute(cmds)
            except (TimeoutError, OSError, ConnectionError):
                self.stale()
                raise
            pos = 0
            for i, (ng, nb) in zip(idx, sizes, strict=True):
                out[i] = conn.finish(replies[pos + ng:pos + ng + nb + 2],
                                     replies[pos + ng - 1] if ng else None)
                pos += ng + nb + 2

        try:
            # the partitions' groups first, then the global ones (none if a partition's
            # was refused: e.g. an alert in the feed only with its tier change)
            for phase in (True, False):
                await asyncio.gather(*(run(a, [i for i in idx if bool(groups[i][2]) == phase])
                                       for a, idx in by_node.items()))
        except ReplyError as exc:
            if str(exc).startswith(("MOVED", "ASK")):
                self.stale()
                raise ConnectionError(f"cluster slot moved: {exc}") from exc
            raise
        return out

    async def close(self) -> None:
        for conn in self.nodes.values():
            await conn.close()
        self.nodes.clear()
