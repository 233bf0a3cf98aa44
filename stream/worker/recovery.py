"""Redis state loss: detected, and rebuilt from Kafka (or refused, when Kafka cannot).

Redis is the authority on what has been applied: the per-partition applied offset
moves in the same MULTI/EXEC as the batch it counts. The consumer group's committed
offset is only where faust resumes. So a partition needs replaying whenever the
group has committed past Redis' applied offset + 1:
- at assignment (:meth:`Recovery.assigned`): the state was wiped while no worker
  ran, Redis came back from an older file, or a worker died in a rebuild;
- while running: every hot-path transaction is guarded by the state epoch
  (:mod:`state.epoch`), so a Redis restarted empty or ``FLUSHALL``-ed under a running
  worker aborts the next batch with :class:`~state.clients.resp.StateLost` (nothing applied);
  :meth:`Recovery.run` then replaces the epoch and replays every owned partition up to
  where the stream stands, then applies the batch.
A replay reads ``[Redis applied + 1, where the stream stands)`` with a plain aiokafka
consumer (no group), through the processor's normal batch path. Exactly-once holds as
on any redelivery (applied offsets, per-user last offsets, event ids). If the log no
longer starts at or before that offset (retention deleted it), the worker refuses to
run: one ERROR line, exit code :data:`EXIT_HISTORY_GONE`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from state.clients.resp import Contended, Fenced, StateLost, pack
from state.epoch import Epochs, claim, install_guard, new_id
from stream.worker.kafka_log import KafkaLog

log = logging.getLogger("churnstream.recovery")
EXIT_HISTORY_GONE = 3


class HistoryGone(RuntimeError):
    """State must be rebuilt from records Kafka no longer holds."""


class Log(Protocol):
    """What recovery needs from Kafka, for one topic."""

    async def committed(self, partitions: Sequence[int]) -> dict[int, int | None]: ...
    async def earliest(self, partitions: Sequence[int]) -> dict[int, int]: ...
    def read(self, ranges: Mapping[int, tuple[int, int]], max_records: int
             ) -> AsyncIterator[list[Any]]:
        """Records of ``[start, stop)`` per partition, in offset order, in chunks."""


Process = Callable[[Sequence[Any]], Awaitable[Any]]


class Recovery:
    def __init__(self, store: Any, kafka: Log, batch_size: int = 1000,
                 reset: Callable[[], None] = lambda: None,
                 on_rebuild: Callable[[int], None] = lambda n: None) -> None:
        self.store = store
        self.epochs = Epochs(store.r, store.keys)
        self.kafka = kafka
        self.batch_size = batch_size
        self.reset = reset  # forget the processor's cached offsets and clocks
        self.on_rebuild = on_rebuild  # metrics: records to replay
        self.epoch: bytes | None = None
        self.owned: set[int] = set()
        self.unchecked: set[int] = set()  # assigned, not yet compared with Redis
        self.next: dict[int, int] = {}  # the offset the stream delivers next, per partition
        self.floor: dict[int, int] = {}  # Redis' applied offset is at least this (seen)
        self.plan: dict[int, tuple[int, int]] = {}  # partition -> [start, stop) to replay
        self.suspect = False  # a reconnect found the state lost or behind
        self.fatal: Callable[[str], None] = _exit
        self.token = new_id()
        if hasattr(store.hot, "on_open"):
            store.hot.on_open = self._on_open

    def _work_under(self, epoch: bytes) -> None:
        self.epoch = epoch
        install_guard(self.store.hot, self.store.keys, epoch, self.token)

    def assigned(self, partitions: Sequence[int]) -> None:
        """A new assignment (no I/O: the rebalance must stay short); each new partition
        is compared with Redis before its first record is applied (:meth:`run`)."""
        self.owned = set(partitions)
        self.unchecked = set(partitions)
        for table in (self.plan, self.next, self.floor):
            for p in [p for p in table if p not in self.owned]:
                del table[p]

    async def run(self, process: Process, records: Sequence[Any]) -> Any:
        """``process(records)``, after the checks and any planned replay; a state lost
        on the way is rebuilt first."""
        if self.epoch is None:
            self._work_under(await self.epochs.ensure())
        if self.unchecked:
            await self._check(records)
        if not records and (self.suspect or await self.epochs.current() != self.epoch):
            await self._lost(records)  # an idle worker notices too (the timer's empty batch)
        lost = 0
        while True:
            try:
                if self.plan:
                    await self._replay(process)
                stats = await process(records)
            except StateLost:
                lost += 1
                if lost == 5:
                    raise StateLost("redis state lost again and again during the "
                                    "rebuild") from None
                await self._lost(records)
                continue
            except Fenced as exc:  # a rebalance gave it to another worker, who claimed it
                records = self._let_go(exc.partition, records)
                continue
            except Contended:  # a claim or a new epoch under the transaction: nothing applied
                self.reset()
                continue
            nxt, floor = self.next, self.floor
            for rec in records:  # in offset order per partition; all applied now
                nxt[rec.partition] = rec.offset + 1
                floor[rec.partition] = rec.offset
            return stats

    def _let_go(self, partition: int, records: Sequence[Any]) -> list[Any]:
        """Stop working on ``partition`` (its new owner applies its records, in order,
        from Redis' applied offset): its records of this batch are dropped."""
        log.info("partition %d was claimed by another worker: its records here are left "
                 "to it", partition)
        self.reset()
        self.owned.discard(partition)
        for table in (self.plan, self.next, self.floor):
            table.pop(partition, None)
        return [r for r in records if r.partition != partition]

    async def _check(self, records: Sequence[Any]) -> None:
        """Newly assigned partitions: replay what lies between Redis' applied offset and
        where the stream stands (its first record now, else the group's commit)."""
        todo = sorted(self.unchecked)
        # claimed first: from here on the writes of a worker that owned them before are
        # refused (state/epoch.py), so the offsets read below stay where they are
        await claim(self.store.r, self.store.keys, todo, self.token)
        first: dict[int, int] = {}
        for rec in records:
            if rec.partition in self.unchecked:
                first.setdefault(rec.partition, rec.offset)
        rest = [p for p in todo if p not in first]
        committed = await self.kafka.committed(rest) if rest else {}
        applied = await self.store.applied_offsets()
        for p in todo:
            stop = first.get(p, committed.get(p))
            self.floor[p] = applied.get(p, -1)
            if stop is not None:
                self.next[p] = stop
                if stop > applied.get(p, -1) + 1:
                    self.plan[p] = (applied.get(p, -1) + 1, stop)
        self.unchecked.difference_update(todo)
        if self.plan:
            await self._planned("redis state is behind the consumer group's position", applied)

    async def _on_open(self, exchange: Callable[[list[bytes]], Awaitable[list[Any]]]) -> None:
        """Every new hot-path connection: is the state still the one this worker built?
        (A Redis restarted empty, or from an older append-only file or snapshot.)"""
        keys = self.store.keys
        epoch, flat = await exchange([pack(b"HGET", keys.epoch, b"id"),
                                      pack(b"HGETALL", keys.offsets)])
        if isinstance(epoch, Exception) or isinstance(flat, Exception):
            raise ConnectionError(f"redis not ready: {epoch!r} {flat!r}")
        applied = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        behind = [p for p, f in self.floor.items() if applied.get(p, -1) < f]
        if (self.epoch is not None and epoch != self.epoch) or behind:
            self.suspect = True
            raise StateLost(f"redis state lost or behind on reconnect (partitions {behind})")

    async def _lost(self, records: Sequence[Any]) -> None:
        self.reset()
        self.suspect = False
        old = self.epoch
        epoch, created = await self.epochs.replace()
        first: dict[int, int] = {}
        for rec in records:
            first.setdefault(rec.partition, rec.offset)
        applied = await self.store.applied_offsets()
        for p in (self.owned - self.unchecked) | set(first):
            stop = first.get(p, self.next.get(p, 0))
            start = applied.get(p, -1) + 1
            self.floor[p] = start - 1
            if start < stop:
                self.plan[p] = (start, stop)
        if epoch == old:
            why = ("redis state is behind what this worker applied (restarted from an older "
                   "append-only file or snapshot?)")
        else:
            why = ("redis state lost under a running worker (epoch "
                   f"{(old or b'-').decode()} "
                   f"{'missing' if created else 'replaced by another worker'}"
                   f"; new epoch {epoch.decode()})")
        await claim(self.store.r, self.store.keys, sorted(self.owned), self.token)
        if self.plan:
            await self._planned(why, applied)
        else:  # the batch under way starts where the state was lost: applying it rebuilds
            log.warning("%s: nothing to replay before the batch under way", why)
        self._work_under(epoch)  # only now: an error before this retries the whole rebuild

    async def _planned(self, why: str, applied: Mapping[int, int]) -> None:
        parts = sorted(self.plan)
        earliest = await self.kafka.earliest(parts)
        for p in parts:
            start, stop = self.plan[p]
            if earliest.get(p, 0) > start:
                msg = (f"cannot rebuild redis state: {why}; partition {p} needs offsets "
                       f"{start}..{stop - 1} but the log starts at {earliest[p]} (records "
                       "deleted); refusing to run")
                log.error(msg)
                self.fatal(msg)
                raise HistoryGone(msg)
            if p not in applied:
                await self.epochs.clear_partition(p)  # leftovers of writes into the loss
        total = sum(stop - start for start, stop in self.plan.values())
        ranges = ", ".join(f"{p}:{a}..{b - 1}" for p, (a, b) in sorted(self.plan.items()))
        log.warning("%s: rebuilding from Kafka, replaying %d records (partition:offsets %s)",
                    why, total, ranges)
        await self.store.r.hincrby(self.store.keys.stats, "state_rebuilds", 1)
        self.on_rebuild(total)

    async def _replay(self, process: Process) -> None:
        started, n = time.monotonic(), 0
        self.reset()
        async for chunk in self.kafka.read(dict(self.plan), self.batch_size):
            await process(chunk)
            n += len(chunk)
            for rec in chunk:  # progress: a retry resumes after what landed
                self.plan[rec.partition] = (rec.offset + 1, self.plan[rec.partition][1])
                self.floor[rec.partition] = rec.offset
            self.plan = {p: r for p, r in self.plan.items() if r[0] < r[1]}
        self.plan.clear()
        log.warning("redis state rebuilt: %d records replayed in %.1fs", n,
                    time.monotonic() - started)


def _exit(msg: str) -> None:
    """Refuse to run: the message is already logged; exit without faust's shutdown."""
    logging.shutdown()
    os._exit(EXIT_HISTORY_GONE)


def install(app: Any, proc: Any, store: Any, settings: Any,
            on_rebuild: Callable[[int], None] = lambda n: None) -> Recovery | None:
    """Wire recovery into a worker: the processor's batch path and a timer that runs a
    planned replay when no records arrive (the caller hands it each assignment:
    :meth:`Recovery.assigned`). None for stores without an epoch (the in-memory store)."""
    if not hasattr(store, "hot"):
        return None
    rec = Recovery(store, KafkaLog(settings.events_topic, settings.kafka_bootstrap,
                                   settings.app_id),
                   settings.batch_size, proc.on_rebalance, on_rebuild)
    proc.recovery = rec

    from stream.worker.processor import TRANSIENT_ERRORS

    @app.timer(interval=1.0)
    async def _replay_when_idle() -> None:
        try:
            if (rec.unchecked or rec.plan or rec.suspect
                    or await rec.epochs.current() != rec.epoch):
                await proc.process([])
        except TRANSIENT_ERRORS as exc:
            log.warning("replay interrupted (%s); will resume", exc)

    return rec
