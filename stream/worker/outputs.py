"""What the worker sends to Kafka besides its state: dead letters, training examples,
alerts. Straight to the faust producer (``topic.send`` adds per-message callbacks the
hot path does not need), each call waiting for the broker's acknowledgement of every
message, so a batch is acknowledged only after everything it sent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import faust

from core.settings import Settings
from stream.anchors import Release
from stream.worker.records import DeadLetter


class Outputs:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def produce(self, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send and wait for the broker's acknowledgement of every message."""
        send = self.app.producer.send
        futures = [await send(topic, key, value, None, None, None) for key, value in messages]
        await asyncio.gather(*futures)

    async def dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        s = self.settings
        await self.produce(s.dlq_topic, [(d.record.key, d.to_json(s.events_topic)) for d in dead])

    async def training(self, examples: Sequence[Release]) -> None:
        await self.produce(self.settings.training_topic, [(None, r.message()) for r in examples])

    async def alerts(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        await self.produce(self.settings.alerts_topic, messages)
