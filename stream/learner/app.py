"""``churnstream learner``: the process around :class:`~stream.learner.state.LearnerState`.

The single consumer of the single-partition topic ``training.examples``. Every N
examples or T seconds it saves a versioned checkpoint of its whole state to Redis
together with the offset of the last example learned, and on start it resumes from the
newest checkpoint at the next offset: the Kafka offset lives in the checkpoint, not in
a consumer group, so no example is learned twice or lost across crashes. Beside it, the
scheduled customer-value fits (:mod:`stream.jobs.value_fit`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from core.settings import Settings
from state.models import ModelStore
from stream.jobs.value_fit import scheduled_fits
from stream.learner.metrics import LearnerMetrics
from stream.learner.state import new_state

log = logging.getLogger("churnstream.learner")


class Learner:
    def __init__(self, settings: Settings, store: ModelStore,
                 metrics: LearnerMetrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or LearnerMetrics()
        self.state = new_state(settings)
        self.version = 0
        self._saved_offset = -1
        self._saved_at = time.monotonic()

    async def resume(self) -> None:
        ckpt = await self.store.load()
        if ckpt is not None:
            self.state, self.version = ckpt.state, ckpt.version
            self._saved_offset = self.state.offset
            if getattr(self.state, "value_inputs", False) != self.settings.model_value_inputs:
                # the setting wins; River's models take new inputs at weight 0 and
                # workers follow the next checkpoint
                log.warning("CHURN_MODEL_VALUE_INPUTS changed to %s since checkpoint v%d",
                            self.settings.model_value_inputs, ckpt.version)
                self.state.value_inputs = self.settings.model_value_inputs
            self.metrics.checkpoint(ckpt.version, self.settings.model_pipeline, ckpt.metrics)
            log.info("resumed model v%d at offset %d (%d examples)", ckpt.version,
                     self.state.offset, self.state.examples)

    async def checkpoint(self) -> int:
        summary = self.state.summary()
        self.version = await self.store.save(self.state, self.state.offset, self.state.examples,
                                             summary)
        self.metrics.checkpoint(self.version, self.settings.model_pipeline, summary)
        self._saved_offset = self.state.offset
        self._saved_at = time.monotonic()
        return self.version

    def speaking(self) -> str | None:
        ch = getattr(self.state, "champion", None)
        return ch.champion if ch is not None else None

    def announce(self, before: str | None) -> None:
        """A champion change: a log line and a counter (the gauges follow the checkpoint)."""
        ch = getattr(self.state, "champion", None)
        if ch is None or before is None or ch.champion == before:
            return
        last = ch.switches[-1] if ch.switches else {}
        log.warning("champion %s -> %s after %d examples (%s %.4f vs %.4f)", before,
                    ch.champion, ch.examples, ch.metric, last.get("metric") or math.nan,
                    last.get("was") or math.nan)
        self.metrics.switches.labels(before, ch.champion).inc()

    def due(self) -> bool:
        unsaved = self.state.offset - self._saved_offset
        return unsaved >= self.settings.learner_checkpoint_every or (
            unsaved > 0
            and time.monotonic() - self._saved_at >= self.settings.learner_checkpoint_seconds)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume from the checkpoint's offset until ``stop`` is set."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        await self.resume()
        tp = TopicPartition(self.settings.training_topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, self.state.offset + 1)
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=2000)
                st = self.state
                before = (st.labels[0], st.labels[1], st.invalid, st.repeats)
                speaking = self.speaking()
                for msg in batches.get(tp, []):
                    st.learn(msg.value, msg.offset)
                    if self.due():
                        await self.checkpoint()
                    st = self.state
                self.announce(speaking)
                self.metrics.counts(st.labels[0] - before[0], st.labels[1] - before[1],
                                    st.invalid - before[2], st.repeats - before[3])
                if self.due():
                    await self.checkpoint()
        finally:
            if self.state.offset > self._saved_offset:
                await self.checkpoint()
            await consumer.stop()


def run_learner(settings: Settings) -> None:
    """``churnstream learner``: run until SIGINT/SIGTERM, checkpointing on the way out."""
    import signal

    from state.redis_store import connect, store_prefix
    from stream.topics import ensure_topics

    logging.basicConfig(level=settings.log_level.upper().replace("WARN", "WARNING"),
                        format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    ensure_topics(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = connect(settings.redis_url)
        metrics = LearnerMetrics()
        if settings.learner_metrics_port:
            try:
                metrics.serve(settings.learner_metrics_port, settings.metrics_host)
            except OSError as exc:
                log.error("metrics port %d unavailable (%s); set CHURN_LEARNER_METRICS_PORT",
                          settings.learner_metrics_port, exc)
        fits = (asyncio.create_task(scheduled_fits(settings, client, stop, metrics.value_fit))
                if settings.value_fit_every_days > 0 else None)
        try:
            await Learner(settings, ModelStore(client, store_prefix(client, settings.redis_prefix)),
                          metrics).run(stop)
        finally:
            stop.set()
            if fits is not None:
                await fits
            await client.aclose()

    asyncio.run(main())
