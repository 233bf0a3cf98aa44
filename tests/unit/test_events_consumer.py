"""The events consumer's batch loop (stream/worker/consumer.py) over a fake aiokafka
consumer and the real processor on the in-memory store: records in order, offsets
committed only after their batch is applied and only for partitions still assigned,
rebalance callbacks passed on, a stop after the batch under way, and what the processor
does not retry ends the loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest

from core.settings import Settings
from state.memory_store import MemoryFeatureStore
from stream.worker.consumer import EventsConsumer
from stream.worker.processor import BatchProcessor
from stream.worker.records import DeadLetter, Record


class TP(NamedTuple):
    topic: str
    partition: int


class Msg(NamedTuple):
    partition: int
    offset: int
    key: bytes
    value: bytes


def msg(p: int, off: int, user: str) -> Msg:
    body = {"event_id": f"e{p}-{off}", "user_id": user, "event_type": "view",
            "event_time": 1_600_000_000_000 + off * 60_000}
    return Msg(p, off, user.encode(), json.dumps(body).encode())


class FakeConsumer:
    """Hands out ``script`` steps: a batch (dict TP -> messages) or a rebalance (a set of
    partitions, the new assignment); stops the loop when the script is done."""

    def __init__(self, script: list[Any], log: list[str]) -> None:
        self.script, self.log = list(script), log
        self.assigned: set[TP] = set()
        self.listener: Any = None
        self.loop: EventsConsumer | None = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def _rebalance(self, parts: set[int]) -> None:
        await self.listener.on_partitions_revoked(sorted(self.assigned))
        self.assigned = {TP("events", p) for p in parts}
        await self.listener.on_partitions_assigned(sorted(self.assigned))

    async def start(self) -> None:
        self.log.append("start")
        await self._rebalance({0, 1})

    async def getmany(self, *partitions: TP, timeout_ms: int, max_records: int
                      ) -> dict[TP, list[Msg]]:
        if partitions:  # filling a batch, partition by partition: nothing more arrived
            return {}  # (aiokafka: none either from a partition no longer assigned)
        while self.script and isinstance(self.script[0], set):
            await self._rebalance(self.script.pop(0))
        if not self.script:
            assert self.loop is not None
            self.loop.stop()
            return {}
        return self.script.pop(0)  # type: ignore[no-any-return]

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TP, int]) -> None:
        self.log.append("commit " + ",".join(f"{tp.partition}:{o}" for tp, o in
                                             sorted(offsets.items())))

    async def stop(self) -> None:
        self.log.append("stop")


class LoggingProcessor(BatchProcessor):
    def __init__(self, log: list[str], fail_at: int | None = None) -> None:
        async def sink(batch: Sequence[DeadLetter]) -> None:
            pass

        super().__init__(MemoryFeatureStore(), sink)
        self.log, self.fail_at, self.calls = log, fail_at, 0

    async def process(self, records: Sequence[Record]) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("not retried")
        self.log.append("apply " + ",".join(f"{r.partition}:{r.offset}" for r in records))
        return await super().process(records)


def consume(script: list[Any], fail_at: int | None = None) -> tuple[list[str], Any]:
    log: list[str] = []
    proc = LoggingProcessor(log, fail_at)

    async def assigned(tps: Sequence[TP]) -> None:
        log.append("assigned " + ",".join(str(tp.partition) for tp in tps))

    async def revoked(tps: Sequence[TP]) -> None:
        log.append("revoked " + ",".join(str(tp.partition) for tp in tps))

    fake = FakeConsumer(script, log)
    loop = EventsConsumer(Settings(batch_size=100, batch_within=0.5), proc, assigned,
                          revoked, consumer=lambda s: fake)
    fake.loop = loop
    asyncio.run(loop.run())
    assert loop.done.is_set()
    return log, proc.store


def test_batches_in_order_committed_after_they_are_applied() -> None:
    t0, t1 = TP("events", 0), TP("events", 1)
    script = [{t0: [msg(0, 0, "a"), msg(0, 1, "b")], t1: [msg(1, 0, "c")]},
              {1},  # a rebalance takes partition 0 away
              {t0: [msg(0, 2, "a")], t1: [msg(1, 1, "c")]}]
    log, store = consume(script)
    assert log == ["start", "revoked ", "assigned 0,1",
                   "apply 0:0,0:1,1:0", "commit 0:2,1:1",
                   "revoked 0,1", "assigned 1",
                   "apply 0:2,1:1", "commit 1:2",  # partition 0 is another worker's now
                   "stop"]
    assert asyncio.run(store.stats())["applied"] == 5


def test_what_the_processor_does_not_retry_ends_the_loop() -> None:
    t0 = TP("events", 0)
    with pytest.raises(ValueError, match="not retried"):
        consume([{t0: [msg(0, 0, "a")]}, {t0: [msg(0, 1, "a")]}], fail_at=2)


def test_parsing_a_batch_gives_the_batch_under_way_its_turns() -> None:
    """The next batch is parsed while the one before is applied; the parse yields to the
    event loop every PARSE_SLICE records, so the batch under way sends its next request
    to Redis without waiting for the whole parse (a batch of 8000 held the loop ~60 ms)."""
    from stream.worker import consumer as mod

    proc = BatchProcessor(MemoryFeatureStore(), _no_dead_letters)
    calls = []
    real = proc.parser()
    proc.parser = lambda: lambda v: calls.append(1) or real(v)  # type: ignore[method-assign]
    loop = EventsConsumer(Settings(), proc, _nothing, _nothing)
    k = mod.PARSE_SLICE
    n = 4 * k + 3
    got = {TP("events", 0): [msg(0, off, f"u{off % 7}") for off in range(n)]}
    seen: list[int] = []
    parsed: list[Record] = []

    async def other() -> None:  # e.g. a lane whose Redis reply has arrived
        while not parsed:
            seen.append(len(calls))
            await asyncio.sleep(0)

    async def go() -> None:
        async def parse() -> None:
            parsed.extend(await loop._parse(got))
        await asyncio.gather(parse(), other())

    asyncio.run(go())
    assert [r.offset for r in parsed] == list(range(n)) and len(calls) == n
    assert seen == [k, 2 * k, 3 * k, 4 * k]  # a turn after each slice


async def _no_dead_letters(dead: Sequence[DeadLetter]) -> None:
    pass


async def _nothing(tps: Sequence[Any]) -> None:
    pass
