"""The Kafka side of a rebuild (:mod:`stream.worker.recovery`): committed and earliest
offsets of the worker's partitions, and reading a range of them again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any


class KafkaLog:
    """:class:`Log` over plain aiokafka consumers: one with the worker's group id that
    never joins (committed offsets), one without a group (earliest offsets, replays)."""

    def __init__(self, topic: str, bootstrap: str, group: str) -> None:
        self.topic, self.bootstrap, self.group = topic, bootstrap, group

    def _consumer(self, group: str | None = None) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=100)

    async def committed(self, partitions: Sequence[int]) -> dict[int, int | None]:
        from aiokafka import TopicPartition

        consumer = self._consumer(self.group)  # no subscribe(): it never joins the group
        await consumer.start()
        try:
            return {p: await consumer.committed(TopicPartition(self.topic, p))
                    for p in partitions}
        finally:
            await consumer.stop()

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

        from stream.worker.processor import Record

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
