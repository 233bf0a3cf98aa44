"""``churnstream worker``: the composition root of the faust app on topic ``events``.

:func:`build_app` builds the components (:mod:`stream.worker.parts`), registers the
events consumer's batch loop (:mod:`stream.worker.consumer`) as a task of the app and
the timers (:mod:`stream.worker.tasks`) with faust. State lives in Redis, never in faust Tables
(Tansu's ListOffsets "latest" makes table recovery lossy; see docs/services.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from core.settings import Settings
from stream.lifecycle import Lifecycle, Worker, run
from stream.worker.consumer import EventsConsumer
from stream.worker.outputs import Outputs
from stream.worker.parts import build_parts
from stream.worker.processor import BatchProcessor
from stream.worker.recovery import install as install_recovery
from stream.worker.tasks import Ownership, WorkerTasks


def faust_settings(settings: Settings) -> dict[str, Any]:
    """faust configuration that matters on Tansu and on Kafka alike."""
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "store": "memory://",
        "topic_replication_factor": 1,
        "topic_partitions": settings.partitions,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": settings.kafka_session_timeout,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval,
        "broker_rebalance_timeout": max(10.0, settings.kafka_session_timeout * 2),
        "broker_commit_every": 10_000,
        "broker_commit_interval": 1.0,
        "stream_buffer_maxsize": 4 * settings.batch_size,
        "web_enabled": False,
        "datadir": str(settings.state_dir / "faust"),
        "producer_acks": -1,
    }


def build_app(settings: Settings) -> tuple[faust.App, BatchProcessor, Lifecycle]:
    # faust's own consumer reads nothing: a group of its own (topic ``events`` is read by
    # the events consumer in group CHURN_APP_ID; topics are created by ensure_topics)
    app = faust.App(f"{settings.app_id}-app", **faust_settings(settings))
    lifecycle = Lifecycle(app, settings.shutdown_timeout)
    parts = build_parts(settings, Outputs(app, settings))
    recovery = install_recovery(app, parts.proc, parts.store, settings, parts.metrics.rebuilt)
    ownership = Ownership(settings.events_topic, parts)
    parts.live.value.owned = ownership.owned  # value fits wait for other workers only

    async def assigned(tps: Sequence[Any]) -> None:
        await ownership.assigned(None, tps)
        if recovery is not None:
            recovery.assigned(sorted(tp.partition for tp in tps
                                     if tp.topic == settings.events_topic))

    async def revoked(tps: Sequence[Any]) -> None:
        await ownership.revoked(None, tps)

    consumer = EventsConsumer(settings, parts.proc, assigned, revoked)
    app.task(consumer_task(consumer, lifecycle))
    app.on_before_shutdown.connect(consumer.on_shutdown)  # type: ignore[arg-type]
    tasks = WorkerTasks(settings, parts, ownership, lifecycle)
    for start in (tasks.serve_metrics, tasks.after_start, tasks.check_redis):
        app.task(start)
    app.timer(interval=5.0)(tasks.heartbeat)
    app.timer(interval=5.0)(tasks.shared_gauges)
    app.timer(interval=settings.model_poll_seconds)(tasks.reload_model)
    app.timer(interval=settings.sweep_interval_seconds)(tasks.sweep)
    app.timer(interval=settings.sweep_interval_seconds)(tasks.advance_clocks)
    return app, parts.proc, lifecycle


def consumer_task(consumer: EventsConsumer, lifecycle: Lifecycle
                  ) -> Callable[[], Awaitable[None]]:
    """The app's task running the events consumer: anything it does not retry ends the
    process (:mod:`stream.lifecycle`)."""
    async def apply_events() -> None:
        try:
            await consumer.run()
        except Exception as exc:
            lifecycle.crash(exc, "apply_events")
            raise

    return apply_events


def run_worker(settings: Settings) -> int:
    """Run one worker until SIGINT/SIGTERM (several may share the consumer group); the
    exit status (70 after a crash, see :mod:`stream.lifecycle`)."""
    from stream.topics import ensure_topics

    ensure_topics(settings)
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    app, _, lifecycle = build_app(settings)
    return run(Worker(app, lifecycle, loglevel=settings.log_level, redirect_stdouts=False))
