"""The worker's batch handler (stream/worker/handler.py) over a fake faust stream and
the real processor on the in-memory store: order, one batch in flight, acknowledgement
only after the batch is applied, and a crash for what the processor does not retry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from state.memory_store import MemoryFeatureStore
from stream.worker.handler import BatchHandler
from stream.worker.processor import BatchProcessor
from stream.worker.records import DeadLetter, Record


@dataclass
class Message:
    partition: int
    offset: int
    key: bytes | None


@dataclass
class Event:
    message: Message
    value: bytes


def ev(i: int, user: str) -> Event:
    body = {"event_id": f"e{i}", "user_id": user, "event_type": "view",
            "event_time": 1_600_000_000_000 + i * 60_000}
    return Event(Message(i % 2, i // 2, user.encode()), json.dumps(body).encode())


class FakeStream:
    """``noack_take`` yields the given batches; a log records takes and acks in order."""

    def __init__(self, batches: Sequence[Sequence[Event]], log: list[str]) -> None:
        self.batches, self.log = batches, log

    async def noack_take(self, n: int, within: float) -> AsyncIterator[list[Event]]:
        assert (n, within) == (100, 0.5)
        for k, batch in enumerate(self.batches):
            self.log.append(f"take {k}")
            yield list(batch)
            await asyncio.sleep(0)

    async def ack(self, event: Event) -> None:
        self.log.append(f"ack {event.message.partition}:{event.message.offset}")


class Watch:
    def __init__(self) -> None:
        self.crashed: list[tuple[str, str]] = []

    def watch(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self.crash(fut.exception(), "apply_events")  # type: ignore[arg-type]

    def crash(self, exc: BaseException, where: str) -> None:
        self.crashed.append((type(exc).__name__, where))


class LoggingProcessor(BatchProcessor):
    def __init__(self, log: list[str]) -> None:
        async def sink(batch: Sequence[DeadLetter]) -> None:
            pass

        super().__init__(MemoryFeatureStore(), sink)
        self.log = log

    async def process(self, records: Sequence[Record]) -> Any:
        self.log.append("apply " + ",".join(f"{r.partition}:{r.offset}" for r in records))
        await asyncio.sleep(0.01)  # Redis time: the next batch is taken meanwhile
        st = await super().process(records)
        self.log.append("applied")
        return st


def test_batches_apply_in_order_one_in_flight_and_ack_after_apply() -> None:
    log: list[str] = []
    events = [ev(i, f"u{i % 3}") for i in range(6)]
    batches = [events[:2], events[2:4], events[4:]]
    proc = LoggingProcessor(log)
    watch = Watch()
    handler = BatchHandler(proc, watch, 100, 0.5)  # type: ignore[arg-type]
    asyncio.run(handler.run(FakeStream(batches, log)))
    assert log == [
        "take 0", "apply 0:0,1:0", "take 1",  # batch 1 collected while 0 is applied
        "applied", "ack 0:0", "ack 1:0", "apply 0:1,1:1", "take 2",
        "applied", "ack 0:1", "ack 1:1", "apply 0:2,1:2",
        "applied", "ack 0:2", "ack 1:2"]
    assert watch.crashed == []
    state = asyncio.run(proc.store.user("u0"))[0]
    assert state is not None and sum(b.n for b in state.days.values()) == 2  # e0, e3 once


def test_an_error_the_processor_does_not_retry_crashes_and_acks_nothing() -> None:
    log: list[str] = []

    class Broken(LoggingProcessor):
        async def process(self, records: Sequence[Record]) -> Any:
            raise ValueError("WRONGTYPE")

    watch = Watch()
    handler = BatchHandler(Broken(log), watch, 100, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        asyncio.run(handler.run(FakeStream([[ev(0, "u")], [ev(1, "u")]], log)))
    assert watch.crashed and watch.crashed[0] == ("ValueError", "apply_events")
    assert not [entry for entry in log if entry.startswith("ack")]
