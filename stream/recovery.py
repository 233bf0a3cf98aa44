"""Redis state loss: detected, and rebuilt from Kafka (or refused, when Kafka cannot).

Redis is the authority on what has been applied: the per-partition applied offset
moves in the same MULTI/EXEC as the batch it counts. The consumer group's committed
offset is only where faust resumes. So a partition needs replaying whenever the
group has committed past Redis' applied offset + 1:
- at assignment (:meth:`Recovery.assigned`): the state was wiped while no worker
  ran, Redis came back from an older file, or a worker died in a rebuild;
- while running: every hot-path transaction is guarded by the state epoch
  (:mod:`state.epoch`), so a Redis restarted empty or ``FLUSHALL``-ed under a running
  worker aborts the next batch with :class:`~state.resp.StateLost` (nothing applied);
  :meth:`Recovery.run` then replaces the epoch and replays every owned partition up to
  where the stream stands, then applies the batch.
A replay reads ``[Redis applied + 1, where the stream stands)`` with a plain aiokafka
consumer (no group), through the processor's normal batch path. Exactly-once holds as
on any redelivery (applied offsets, per-user last offsets, event ids). If the log no
longer starts at or before that offset (retention deleted it), the worker refuses to
run: one ERROR line, exit code :data:`EXIT_HISTORY_GONE`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from state.epoch import Epochs, guard_commands, new_id
from state.resp import StateLost

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
        self.next: dict[int, int] = {}  # the offset the stream delivers next, per partition
        self.plan: dict[int, tuple[int, int]] = {}  # partition -> [start, stop) to replay
        self.fatal: Callable[[str], None] = _exit
        self.token = new_id()

    def _work_under(self, epoch: bytes) -> None:
        self.epoch = epoch
        self.store.hot.guard = guard_commands(self.store.keys, epoch, self.token)

    async def assigned(self, partitions: Sequence[int]) -> None:
        """A new assignment: replay what the group committed beyond Redis' state."""
        self.owned = set(partitions)
        self.plan = {p: r for p, r in self.plan.items() if p in self.owned}
        if self.epoch is None:
            self._work_under(await self.epochs.ensure())
        if not partitions:
            return
        committed = await self.kafka.committed(partitions)
        applied = await self.store.applied_offsets()
        for p in partitions:
            c = committed.get(p)
            self.next[p] = c if c is not None else self.next.get(p, 0)
            start = applied.get(p, -1) + 1
            if c is not None and c > start:
                self.plan[p] = (start, c)
        if self.plan:
            await self._planned("redis state is behind the consumer group's committed offsets",
                                applied)

    async def run(self, process: Process, records: Sequence[Any]) -> Any:
        """``process(records)``, after any planned replay; a lost state is rebuilt first."""
        if not records and self.epoch is not None and await self.epochs.current() != self.epoch:
            await self._lost(records)  # an idle worker notices too (the timer's empty batch)
        for _ in range(5):
            try:
                if self.plan:
                    await self._replay(process)
                stats = await process(records)
            except StateLost:
                await self._lost(records)
                continue
            nxt = self.next
            for rec in records:  # in offset order per partition
                nxt[rec.partition] = rec.offset + 1
            return stats
        raise StateLost("redis state lost again and again during the rebuild")

    async def _lost(self, records: Sequence[Any]) -> None:
        self.reset()
        old = self.epoch
        epoch, created = await self.epochs.replace()
        if epoch == old:
            return  # the state is there after all (the abort was not a loss): retry
        first: dict[int, int] = {}
        for rec in records:
            first.setdefault(rec.partition, rec.offset)
        applied = await self.store.applied_offsets()
        for p in self.owned | set(first):
            stop = first.get(p, self.next.get(p, 0))
            start = applied.get(p, -1) + 1
            if start < stop:
                self.plan[p] = (start, stop)
        why = ("redis state lost under a running worker (epoch "
               f"{(old or b'-').decode()} {'missing' if created else 'replaced by another worker'}"
               f"; new epoch {epoch.decode()})")
        await self._planned(why, applied)
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
            self.plan = {p: r for p, r in self.plan.items() if r[0] < r[1]}
        self.plan.clear()
        log.warning("redis state rebuilt: %d records replayed in %.1fs", n,
                    time.monotonic() - started)


def _exit(msg: str) -> None:
    """Refuse to run: the message is already logged; exit without faust's shutdown."""
    logging.shutdown()
    os._exit(EXIT_HISTORY_GONE)


class KafkaLog:
    """:class:`Log` over the worker's faust consumer (committed offsets) and a plain
    aiokafka consumer without a group (earliest offsets, replays)."""

    def __init__(self, app: Any, topic: str, bootstrap: str) -> None:
        self.app, self.topic, self.bootstrap = app, topic, bootstrap

    async def committed(self, partitions: Sequence[int]) -> dict[int, int | None]:
        # faust seeks to these itself once the rebalance completes; asking changes nothing
        got = await self.app.consumer.seek_to_committed()
        return {tp.partition: (off if off is not None and off >= 0 else None)
                for tp, off in got.items() if tp.topic == self.topic}

    def _consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=100)

    async def earliest(self, partitions: Sequence[int]) -> dict[int, int]:
        from aiokafka import TopicPartition

        consumer = self._consumer()
        await consumer.start()
        try:
            got = await consumer.beginning_offsets(
                [TopicPartition(self.topic, p) for p in partitions])
        finally:
            await consumer.stop()
        return {tp.partition: off for tp, off in got.items()}

    async def read(self, ranges: Mapping[int, tuple[int, int]], max_records: int
                   ) -> AsyncIterator[list[Any]]:
        """Records of ``[start, stop)`` per partition, in offset order, in chunks."""
        from aiokafka import TopicPartition

        from stream.processor import Record

        todo = {TopicPartition(self.topic, p): r for p, r in ranges.items() if r[0] < r[1]}
        if not todo:
            return
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(list(todo))
            for tp, (start, _) in todo.items():
                consumer.seek(tp, start)
            idle = time.monotonic()
            while todo:
                got = await consumer.getmany(*todo, timeout_ms=500, max_records=max_records)
                chunk = []
                for tp, msgs in got.items():
                    stop = todo[tp][1]
                    chunk += [Record(tp.partition, m.offset, m.key, m.value)
                              for m in msgs if m.offset < stop]
                    if msgs and msgs[-1].offset >= stop - 1:
                        del todo[tp]
                for tp in list(todo):  # a gap at the end (e.g. control records)
                    if await consumer.position(tp) >= todo[tp][1]:
                        del todo[tp]
                if chunk:
                    idle = time.monotonic()
                    yield chunk
                elif time.monotonic() - idle > 60:
                    raise TimeoutError(f"replay stalled: nothing read for 60 s from {todo}")
        finally:
            await consumer.stop()


def install(app: Any, proc: Any, store: Any, settings: Any,
            on_rebuild: Callable[[int], None] = lambda n: None) -> Recovery | None:
    """Wire recovery into a worker: the assignment check, the processor's batch path,
    and a timer that runs a planned replay when no records arrive. None for stores
    without an epoch (the in-memory store)."""
    if not hasattr(store, "hot"):
        return None
    rec = Recovery(store, KafkaLog(app, settings.events_topic, settings.kafka_bootstrap),
                   settings.batch_size, proc.on_rebalance, on_rebuild)
    proc.recovery = rec

    from stream.processor import TRANSIENT_ERRORS

    @app.on_partitions_assigned.connect
    async def _check(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.events_topic)
        delay = 0.2
        while True:
            try:
                return await rec.assigned(mine)
            except TRANSIENT_ERRORS as exc:  # Redis restarting: the check must still happen
                log.warning("state check at assignment failed (%s); retrying in %.1fs",
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    @app.timer(interval=1.0)
    async def _replay_when_idle() -> None:
        if rec.epoch is None:
            return
        try:
            if rec.plan or await rec.epochs.current() != rec.epoch:
                await proc.process([])
        except TRANSIENT_ERRORS as exc:
            log.warning("replay interrupted (%s); will resume", exc)

    return rec
