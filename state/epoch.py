"""The state epoch: a marker written once when churnstream state is created in Redis.

``<prefix>:epoch`` is a hash ``{id, created_ms, reason}``. A worker remembers the id it
works under and guards every hot-path transaction with it (:func:`guard_commands`):
``WATCH`` the epoch, then a script that compares it and, on a mismatch, touches a
watched key, so this client's own ``EXEC`` aborts and nothing of the batch lands. A
Redis that restarted empty, a ``FLUSHALL``, or another worker's rebuild all end
there (:class:`state.clients.resp.StateLost`), never in a batch applied to half a state.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from state.clients.resp import pack
from state.keys import Keys

# on a mismatch, change a watched key (this client's own, so that no other client's EXEC
# aborts with it): this client's EXEC then aborts. KEYS epoch, lost[, owners]; ARGV epoch
# id, token, partitions written. Returns 1 (go), 0 (epoch missing or changed: state
# lost), -1 - p (partition p claimed by another worker: fenced)
GUARD = ("local function abort(r) redis.call('INCR', KEYS[2]) "
         "redis.call('PEXPIRE', KEYS[2], 60000) return r end "
         "if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return abort(0) end "
         "for i = 3, #ARGV do local o = redis.call('HGET', KEYS[3], ARGV[i]) "
         "if o and o ~= ARGV[2] then return abort(-1 - tonumber(ARGV[i])) end end "
         "return 1")
_CREATE = ("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGET', KEYS[1], 'id') "
           "end redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created_ms', ARGV[2], 'reason', "
           "ARGV[3]) return ARGV[1]")


def new_id() -> bytes:
    return os.urandom(8).hex().encode()


def guard_commands(keys: Keys, epoch: bytes, token: bytes, at: str | None = None,
                   partitions: Sequence[int] = ()) -> list[bytes]:
    """Commands to send before MULTI so that EXEC applies only under ``epoch`` and only
    while this worker's claims on ``partitions`` hold; ``token`` names this worker (its
    claims, its own touch key); ``at``: a key of the transaction's slot (cluster)."""
    key = keys.epoch if at is None else keys.epoch_for(at)
    lost = f"{key}:lost:{token.decode()}"
    if not partitions:
        return [pack(b"WATCH", key, lost), pack(b"EVAL", GUARD, b"2", key, lost, epoch, token)]
    owners = keys.of("owners", partitions[0])  # (on a cluster: one partition per slot)
    return [pack(b"WATCH", key, lost, owners),
            pack(b"EVAL", GUARD, b"3", key, lost, owners, epoch, token, *partitions)]


def install_guard(hot: Any, keys: Keys, epoch: bytes, token: bytes) -> None:
    """Guard every transaction of the hot-path connection with ``epoch`` and this
    worker's partition claims (:func:`claim`): on a cluster with the epoch copy and the
    owners of the transaction's slot."""
    cache: dict[tuple[str, tuple[int, ...]], list[bytes]] = {}

    def guard_for(key: bytes | str, partitions: Sequence[int]) -> list[bytes]:
        k = key.decode() if isinstance(key, bytes) else key
        at = (keys.epoch_for(k), tuple(partitions))
        got = cache.get(at)
        if got is None:
            if len(cache) > 4096:
                cache.clear()
            got = cache[at] = guard_commands(keys, epoch, token, k, partitions)
        return got

    hot.guard_for = guard_for


async def claim(client: Any, keys: Keys, partitions: Sequence[int], token: bytes) -> None:
    """This worker owns ``partitions`` now (a rebalance gave them to it): the guarded
    writes of any worker that owned them before are refused from here on."""
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.hset(keys.of("owners", p), str(p), token)
    await pipe.execute()


class Epochs:
    """Reads, creates and replaces the epoch; clears what a lost state left behind."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    async def current(self) -> bytes | None:
        """The epoch id, None if missing (on a cluster: if any slot's copy is missing or
        differs, e.g. one primary restarted empty)."""
        copies = self.keys.epochs()
        if len(copies) == 1:
            raw = await self.r.hget(self.keys.epoch, "id")
            return bytes(raw) if raw is not None else None
        pipe = self.r.pipeline(transaction=False)
        for k in copies:
            pipe.hget(k, "id")
        ids = {bytes(x) if x is not None else None for x in await pipe.execute()}
        return ids.pop() if len(ids) == 1 else None

    async def info(self) -> dict[str, str]:
        raw = await self.r.hgetall(self.keys.epoch)
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def ensure(self, reason: str = "created") -> bytes:
        """The current epoch, created if there is none (fresh state, or state from before
        epochs existed: adopted as it is)."""
        got = await self.r.eval(_CREATE, 1, self.keys.epoch, new_id(), int(time.time() * 1000),
                                reason)
        for copy in self.keys.epochs()[1:]:  # cluster: every slot's copy, created alike
            await self.r.eval(_CREATE, 1, copy, got, int(time.time() * 1000), reason)
        return bytes(got)

    async def replace(self, wait: float = 60.0) -> tuple[bytes, bool]:
        """After the epoch was found missing or changed: (the epoch to work under, whether
        this call created it). The first worker to find it missing clears every key of
        the prefix (what the lost state's last writes left, e.g. clocks of a batch that
        ran into the loss) before it publishes a new epoch; the others wait for it."""
        lock = self.keys.epoch + ":lock"
        deadline = time.monotonic() + wait
        while True:
            cur = await self.current()
            if cur is not None:
                return cur, False  # rebuilt by another worker (or not lost): adopt
            if await self.r.set(lock, b"1", nx=True, px=int(wait * 1000)):
                try:
                    if await self.current() is not None:
                        continue
                    await self._clear_all(keep=lock)
                    epoch = new_id()
                    for copy in [*self.keys.epochs()[1:], self.keys.epoch]:  # global last
                        await self.r.hset(copy, mapping={
                            "id": epoch, "created_ms": int(time.time() * 1000),
                            "reason": "rebuilt after state loss"})
                    return epoch, True
                finally:
                    await self.r.delete(lock)
            if time.monotonic() > deadline:
                raise TimeoutError("another worker holds the state rebuild lock")
            await asyncio.sleep(0.2)

    async def _clear_all(self, keep: str) -> int:
        n, batch = 0, []
        pattern = _glob(self.keys.prefix) + ":*"
        async for key in self._scan(pattern):
            if key.decode() != keep:
                batch.append(key)
            if len(batch) >= 1000:
                n += await self.r.unlink(*batch)
                batch = []
        if batch:
            n += await self.r.unlink(*batch)
        return n

    async def clear_partition(self, partition: int) -> None:
        """Drop a partition's clocks, indexes and pending snapshots before rebuilding it
        from its first record (its users' hashes are rebuilt record by record)."""
        k, p = self.keys, partition
        pipe = self.r.pipeline(transaction=not k.cluster)  # (cluster: one slot, one node)
        pipe.hdel(k.of("clock", p), f"a:{p}", f"s:{p}", f"f:{p}")
        for name in ("population", "watermark", "offsets"):
            pipe.hdel(k.of(name, p), str(p))
        pipe.delete(k.active(p), k.gone(p))
        await pipe.execute()
        pending = [key async for key in self.r.scan_iter(
            match=_glob(k.pending(p, 0)[:-1]) + "*", count=1000)]
        if pending:
            await self.r.unlink(*pending)


    async def _scan(self, pattern: str) -> Any:
        """Keys matching ``pattern``; on a cluster also the global keys (``{prefix}:...``)."""
        async for key in self.r.scan_iter(match=pattern, count=1000):
            yield key
        if self.keys.cluster:
            async for key in self.r.scan_iter(match=_glob(self.keys.global_prefix) + ":*",
                                              count=1000):
                yield key


def _glob(text: str) -> str:
    """``text`` with glob metacharacters escaped (for SCAN MATCH)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
