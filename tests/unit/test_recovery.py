"""stream.worker.recovery with fake Kafka and Redis: what is replayed, and the refusal to run
when Kafka no longer holds the records (Tansu has no DeleteRecords: it drops the
connection, so a log that starts after offset 0 cannot be made on the real broker)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from state.clients.resp import StateLost
from state.keys import Keys
from stream.worker.processor import Record
from stream.worker.recovery import EXIT_HISTORY_GONE, HistoryGone, Recovery


class FakeLog:
    def __init__(self, committed: dict[int, int | None], earliest: dict[int, int],
                 records: dict[int, int]) -> None:
        self.committed_, self.earliest_, self.records = committed, earliest, records
        self.reads: list[dict[int, tuple[int, int]]] = []

    async def committed(self, partitions: Sequence[int]) -> dict[int, int | None]:
        return {p: self.committed_.get(p) for p in partitions}

    async def earliest(self, partitions: Sequence[int]) -> dict[int, int]:
        return {p: self.earliest_.get(p, 0) for p in partitions}

    async def read(self, ranges: Mapping[int, tuple[int, int]], max_records: int
                   ) -> AsyncIterator[list[Any]]:
        self.reads.append(dict(ranges))
        for p, (start, stop) in sorted(ranges.items()):
            offsets = list(range(max(start, self.earliest_.get(p, 0)), stop))
            for i in range(0, len(offsets), max_records):
                yield [Record(p, o, b"k", b"{}") for o in offsets[i:i + max_records]]


class FakeEpochs:
    def __init__(self) -> None:
        self.id: bytes | None = b"e1"
        self.cleared: list[int] = []

    async def ensure(self) -> bytes:
        self.id = self.id or b"e1"
        return self.id

    async def current(self) -> bytes | None:
        return self.id

    async def replace(self) -> tuple[bytes, bool]:
        if self.id is None:
            self.id = b"e2"
            return self.id, True
        return self.id, False

    async def clear_partition(self, p: int) -> None:
        self.cleared.append(p)


class FakeStore:
    class R:
        def __init__(self) -> None:
            self.claims: dict[str, bytes] = {}

        async def hincrby(self, *args: object) -> int:
            return 1

        def pipeline(self, transaction: bool = True) -> Any:
            claims, todo = self.claims, []

            class Pipe:
                def hset(self, key: str, field: str, value: bytes) -> None:
                    todo.append((field, value))

                async def execute(self) -> None:
                    claims.update(todo)

            return Pipe()

    def __init__(self, applied: dict[int, int]) -> None:
        self.applied = applied
        self.r = self.R()
        self.keys = Keys("t")
        self.hot = type("Hot", (), {"guard_for": None})()

    async def applied_offsets(self) -> dict[int, int]:
        return dict(self.applied)


def _recovery(applied: dict[int, int], kafka: FakeLog) -> tuple[Recovery, FakeEpochs, list[str]]:
    rec = Recovery(FakeStore(applied), kafka, batch_size=4)
    rec.epochs = FakeEpochs()  # type: ignore[assignment]
    fatal: list[str] = []
    rec.fatal = fatal.append
    return rec, rec.epochs, fatal  # type: ignore[return-value]


def test_new_partitions_replay_what_redis_lacks(caplog) -> None:  # type: ignore[no-untyped-def]
    kafka = FakeLog({0: 10, 1: 20, 2: None, 3: 7}, {}, {})
    rec, epochs, fatal = _recovery({0: 9, 1: 4, 3: 9}, kafka)
    rec.assigned([0, 1, 2, 3])

    async def nothing(records: Sequence[Record]) -> int:
        return 0

    with caplog.at_level(logging.WARNING, "churnstream.recovery"):
        asyncio.run(rec._check([Record(3, 9, b"", b"")]))
    # 0: committed 10 = applied + 1 (consistent); 1: 5..19 missing; 2: nothing committed;
    # 3: its first record follows what Redis applied
    assert rec.plan == {1: (5, 20)} and not rec.unchecked
    assert rec.next == {0: 10, 1: 20, 3: 9}
    asyncio.run(rec.run(nothing, []))  # the idle timer's empty batch runs the replay
    assert kafka.reads == [{1: (5, 20)}] and not rec.plan and rec.floor[1] == 19
    guard = rec.store.hot.guard_for(b"k", [1])
    assert b"e1" in guard[1] and rec.token in guard[1]  # the epoch and this worker's claims
    assert rec.store.r.claims == {str(p): rec.token for p in range(4)}  # claimed first
    assert not fatal and epochs.cleared == []
    assert "replaying 15 records (partition:offsets 1:5..19)" in caplog.text


def test_lost_while_running_replays_owned_partitions_then_the_batch() -> None:
    kafka = FakeLog({0: 0, 1: 0}, {}, {})
    rec, epochs, _ = _recovery({}, kafka)
    rec.assigned([0, 1])
    seen: list[list[tuple[int, int]]] = []
    state = {"lost": False}

    async def process(records: Sequence[Record]) -> int:
        if records and not state["lost"] and records[0].offset == 6:
            state["lost"] = True
            epochs.id = None  # the wipe
            raise StateLost("epoch missing")
        seen.append([(r.partition, r.offset) for r in records])
        return len(records)

    async def go() -> None:
        await rec.run(process, [Record(0, o, b"", b"") for o in range(6)])
        await rec.run(process, [Record(1, o, b"", b"") for o in range(3)])
        await rec.run(process, [Record(0, o, b"", b"") for o in range(6, 9)])

    asyncio.run(go())
    assert state["lost"] and rec.epoch == b"e2" and not rec.plan
    assert kafka.reads == [{0: (0, 6), 1: (0, 3)}]  # up to where the stream stands
    assert sorted(epochs.cleared) == [0, 1]
    flat = [x for chunk in seen[2:] for x in chunk]
    assert flat == [(0, o) for o in range(6)] + [(1, o) for o in range(3)] + [
        (0, o) for o in range(6, 9)]


def test_history_gone_refuses_with_one_line(caplog) -> None:  # type: ignore[no-untyped-def]
    kafka = FakeLog({0: 50, 1: 8}, {0: 30, 1: 0}, {})
    rec, _, fatal = _recovery({1: 7}, kafka)
    rec.assigned([0, 1])
    with caplog.at_level(logging.WARNING, "churnstream.recovery"), pytest.raises(HistoryGone):
        asyncio.run(rec._check([]))
    assert len(fatal) == 1 and "\n" not in fatal[0]
    assert "partition 0 needs offsets 0..49 but the log starts at 30" in fatal[0]
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_history_gone_exits_non_zero() -> None:
    """The real refusal (no fake ``fatal``): one line on stderr, exit code 3."""
    code = (
        "import asyncio, logging, sys\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "sys.path.insert(0, '.')\n"
        "from tests.unit.test_recovery import FakeEpochs, FakeLog, FakeStore\n"
        "from stream.worker.recovery import Recovery\n"
        "rec = Recovery(FakeStore({}), FakeLog({0: 50}, {0: 30}, {}))\n"
        "rec.epochs = FakeEpochs()\n"
        "rec.assigned([0])\n"
        "asyncio.run(rec._check([]))\n"
        "print('still running')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == EXIT_HISTORY_GONE == 3
    assert "still running" not in out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR cannot rebuild redis state"), lines


def test_a_partition_claimed_by_another_worker_is_let_go() -> None:
    """A guarded write refused because another worker claimed a partition (Fenced): that
    partition's records of the batch are left to it, the rest is processed, and the
    processor's cached offsets are reloaded."""
    from state.clients.resp import Fenced

    rec, _, _ = _recovery({0: 9, 1: 9}, FakeLog({0: 10, 1: 10}, {}, {}))
    resets: list[int] = []
    rec.reset = lambda: resets.append(1)
    rec.assigned([0, 1])
    calls: list[list[tuple[int, int]]] = []

    async def process(records: Sequence[Record]) -> int:
        calls.append([(r.partition, r.offset) for r in records])
        if any(r.partition == 1 for r in records):
            raise Fenced(1)
        return len(records)

    batch = [Record(0, 10, b"", b""), Record(1, 10, b"", b""), Record(0, 11, b"", b"")]
    assert asyncio.run(rec.run(process, batch)) == 2
    assert calls == [[(0, 10), (1, 10), (0, 11)], [(0, 10), (0, 11)]]
    assert rec.owned == {0} and 1 not in rec.next and resets
