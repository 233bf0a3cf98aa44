"""The events topic's batch loop: a plain aiokafka consumer, supervised by the faust app.

faust's stream machinery costs about 70 us of CPU per event (a task per message in the
fetcher, an Event object, the stream's buffers, a per-message ack): more than the
worker's own work. Topic ``events`` is therefore read here, in whole batches
(``getmany``), with no per-event framework object: each Kafka message becomes a
:class:`~stream.worker.records.Record` and the batch goes to
:meth:`~stream.worker.processor.BatchProcessor.process_until_done`; its offsets are
committed once it is applied. faust stays the worker's framework: the app runs this
loop as one of its tasks, with its timers (sweeps, clocks, gauges, model reloads), its
producer (DLQ, training examples, alerts) and its lifecycle; the rebalance callbacks of
this consumer drive the same ownership and recovery hooks as faust's signals did.

The group is ``CHURN_APP_ID`` (the committed positions of earlier versions carry
over); faust's own consumer, which reads nothing, runs in a group of its own.
Exactly-once is unchanged: Redis holds what was applied (applied offsets, per-user
offsets, claims); the group's commit is only where a worker resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.settings import Settings
from stream.worker.processor import BatchProcessor
from stream.worker.records import Record

log = logging.getLogger("churnstream.worker")

Partitions = Callable[[Sequence[Any]], Awaitable[None]]
PARSE_SLICE = 256  # records parsed between two turns of the event loop (about 2 ms)


def log_retry(exc: BaseException, delay: float) -> None:
    log.warning("batch not applied (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)


def kafka_consumer(settings: Settings) -> Any:
    """The events consumer (aiokafka), configured as faust's was."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id,
        client_id=f"{settings.app_id}-events", enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_uncommitted",
        session_timeout_ms=int(settings.kafka_session_timeout * 1000),
        heartbeat_interval_ms=int(settings.kafka_heartbeat_interval * 1000),
        rebalance_timeout_ms=int(max(10.0, settings.kafka_session_timeout * 2) * 1000),
        max_poll_interval_ms=300_000, fetch_max_wait_ms=max(1, int(settings.batch_within * 1000)),
        max_partition_fetch_bytes=4 << 20)


class EventsConsumer:
    """``run()`` consumes topic ``events`` until :meth:`stop`; ``on_assigned`` /
    ``on_revoked`` get the consumer's topic-partitions at each rebalance."""

    def __init__(self, settings: Settings, proc: BatchProcessor,
                 on_assigned: Partitions, on_revoked: Partitions,
                 consumer: Callable[[Settings], Any] = kafka_consumer) -> None:
        self.settings, self.proc = settings, proc
        self.on_assigned, self.on_revoked = on_assigned, on_revoked
        self.make_consumer = consumer
        self.stopping = asyncio.Event()
        self.done = asyncio.Event()
        self.batches = 0
        # the batch being applied and the offsets to commit after it; what it raised
        self.running: tuple[asyncio.Future[Any], dict[Any, int]] | None = None
        self.failed: BaseException | None = None

    def stop(self) -> None:
        """Finish the batch under way, then leave the group."""
        self.stopping.set()

    async def on_shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        """faust's ``on_before_shutdown``: stop after the batch under way (bounded by
        ``CHURN_SHUTDOWN_TIMEOUT``; an unfinished batch is read again, exactly once)."""
        self.stop()
        if not self.done.is_set():
            try:
                await asyncio.wait_for(self.done.wait(), self.settings.shutdown_timeout)
            except TimeoutError:
                log.warning("the batch under way did not finish before shutdown")

    async def run(self) -> None:
        from aiokafka import ConsumerRebalanceListener

        outer = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                outer.proc.on_rebalance()  # (a batch waiting for a value fit stops waiting)
                await outer._settle(consumer)  # the batch under way, applied and committed
                await outer.on_revoked(list(revoked))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await outer.on_assigned(list(assigned))

        consumer = self.make_consumer(self.settings)
        consumer.subscribe([self.settings.events_topic], listener=Listener())
        try:
            await consumer.start()
            await self._loop(consumer)
        finally:
            try:
                await consumer.stop()
            finally:
                self.done.set()

    async def _loop(self, consumer: Any) -> None:
        """Batches in order, one applied at a time; the next one is read and parsed while
        the one before waits for Redis (two cores: Redis and this process work at once).
        Offsets are committed once their batch is applied."""
        size, wait_ms = self.settings.batch_size, max(1, int(self.settings.batch_within * 1000))
        stopping, proc = self.stopping, self.proc
        try:
            while not stopping.is_set():
                got = await self._take(consumer, size, wait_ms)
                if got:
                    records = await self._parse(got)
                await self._settle(consumer)
                if got:
                    self.running = (asyncio.ensure_future(proc.process_until_done(
                        records, on_retry=log_retry)),
                        {tp: messages[-1].offset + 1 for tp, messages in got.items()})
                    await asyncio.sleep(0)  # under way (up to its first Redis call)
            await self._settle(consumer)
        finally:
            if self.running is not None:  # (the loop failed or was cancelled)
                self.running[0].cancel()

    async def _parse(self, got: dict[Any, list[Any]]) -> list[Record]:
        """The batch's records, parsed while the batch before is applied: in slices of
        ``PARSE_SLICE`` with a turn for the event loop after each, so that the batch under
        way sends its next request to Redis as soon as it is ready (parsing 8000 records
        at once held the loop for about 60 ms while Redis waited; README, "The hot path:
        batches of 8000")."""
        parse, records = self.proc.parser(), []
        for messages in got.values():
            for m in messages:
                records.append(Record(m.partition, m.offset, m.key, m.value, parse(m.value)))
                if len(records) % PARSE_SLICE == 0:
                    await asyncio.sleep(0)
        return records

    async def _settle(self, consumer: Any) -> None:
        """The batch under way applied and its offsets committed (before the next batch
        and before a rebalance moves partitions). What it raises ends the loop, also when
        a rebalance callback waited for it."""
        if self.failed is not None:
            raise self.failed
        if self.running is None:
            return
        (applied, offsets), self.running = self.running, None
        try:
            await applied
        except BaseException as exc:
            self.failed = exc
            raise
        self.batches += 1
        await self._commit(consumer, offsets)

    async def _take(self, consumer: Any, size: int, wait_ms: int) -> dict[Any, list[Any]]:
        """Up to ``size`` messages, an equal share from each assigned partition, waiting at
        most ``CHURN_BATCH_WITHIN`` for them (a batch costs a few Redis round trips
        whatever its size, so it is filled while records keep coming). Equal shares keep
        the partitions together in event time: aiokafka's ``getmany`` drains one
        partition's buffer (megabytes, days of events) before the next, and a partition
        days ahead runs its anchors before the day's value fit can see the others."""
        tps = list(consumer.assignment())
        per = -(-size // max(1, len(tps)))
        got = await consumer.getmany(timeout_ms=wait_ms, max_records=per)
        n = sum(len(m) for m in got.values())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while 0 < n < size:  # (a partition a rebalance took meanwhile gives nothing)
            short = [tp for tp in tps if len(got.get(tp, ())) < per]
            more: dict[Any, list[Any]] = {}
            for tp in short:  # what the fetcher holds already
                more.update(await consumer.getmany(
                    tp, timeout_ms=0, max_records=per - len(got.get(tp, ()))))
            if not more:
                left = deadline - loop.time()
                if not short or left <= 0:
                    break
                more = await consumer.getmany(*short, timeout_ms=max(1, int(left * 1000)),
                                              max_records=per)
                if not more:
                    break
            for tp, messages in more.items():
                got.setdefault(tp, []).extend(messages)
                n += len(messages)
        return got

    async def _commit(self, consumer: Any, offsets: dict[Any, int]) -> None:
        """Where this worker resumes (Redis holds what was applied): partitions that a
        rebalance took meanwhile are left to their new owner."""
        from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

        mine = consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in mine}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.info("offsets not committed (%s: %s): a rebalance is under way",
                     type(exc).__name__, exc)
