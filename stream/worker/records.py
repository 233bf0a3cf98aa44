"""What the worker reads from Kafka, and what it sends to the DLQ for a record that is
not an event.

>>> DeadLetter(Record(0, 7, None, None), "payload:tombstone").to_json("events")[:44]
b'{"reason": "payload:tombstone", "topic": "ev'
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from core.events import Rejected


class Record(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (a Kafka record with a null value)


class DeadLetter(NamedTuple):
    record: Record
    reason: str

    def to_json(self, topic: str) -> bytes:
        """DLQ payload: reason, source position and the raw payload (text or base64)."""
        body: dict[str, object] = {"reason": self.reason, "topic": topic,
                                   "partition": self.record.partition,
                                   "offset": self.record.offset, "at": time.time()}
        for name, raw in (("raw", self.record.value), ("key", self.record.key)):
            if raw is None:
                body[name] = None
                continue
            try:
                body[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                body[name + "_b64"] = base64.b64encode(raw).decode()
        return json.dumps(body, ensure_ascii=False).encode()


TOMBSTONE = Rejected("payload:tombstone")
DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]
