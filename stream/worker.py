"""The faust stream worker: topic ``events`` -> :class:`~stream.processor.BatchProcessor`.

State lives in Redis, never in faust Tables (Tansu's ListOffsets "latest" makes
table recovery lossy; see ../shared/SERVICES.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust

from core.process import tune_gc
from core.settings import Settings
from core.tiers import ALL_TIERS
from state.models import ModelStore
from state.redis_store import RedisFeatureStore, connect
from state.value_model import ValueModel
from state.value_store import ValueStore
from state.workers import WorkerRegistry
from stream.anchors import Anchors
from stream.lifecycle import Lifecycle, Worker, run
from stream.live import Live, RescoreStats
from stream.processor import TRANSIENT_ERRORS, BatchProcessor, BatchStats, DeadLetter, Record
from stream.recovery import install as install_recovery
from stream.sweeper import Sweeper
from stream.worker_metrics import WorkerMetrics

log = logging.getLogger("churnstream.worker")


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


def log_retry(exc: BaseException, delay: float) -> None:
    log.warning("batch not applied (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)


def build_app(settings: Settings) -> tuple[faust.App, BatchProcessor, Lifecycle]:
    app = faust.App(settings.app_id, **faust_settings(settings))
    lifecycle = Lifecycle(app, settings.shutdown_timeout)
    events = app.topic(settings.events_topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)
    # topics are declared (and created) by ensure_topics; messages go straight to the
    # producer (faust's topic.send adds per-message callbacks the hot path does not need)
    client = connect(settings.redis_url)
    store = RedisFeatureStore(client, settings.redis_prefix)  # 30-day feature horizon
    models = ModelStore(client, settings.redis_prefix)

    async def produce(topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send and wait for the broker's acknowledgement of every message."""
        send = app.producer.send
        futures = [await send(topic, key, value, None, None, None) for key, value in messages]
        await asyncio.gather(*futures)

    async def send_dead_letters(dead: Sequence[DeadLetter]) -> None:
        await produce(settings.dlq_topic,
                      [(d.record.key, d.to_json(settings.events_topic)) for d in dead])

    async def send_training(examples: Sequence[bytes]) -> None:
        await produce(settings.training_topic, [(None, v) for v in examples])

    async def send_alerts(messages: Sequence[tuple[bytes, bytes]]) -> None:
        await produce(settings.alerts_topic, messages)

    metrics = WorkerMetrics()

    def on_batch(st: BatchStats) -> None:
        metrics.batch(st.records, st.seconds, st.statuses, st.types, st.reasons, st.newest)
        for op, secs in st.redis_seconds.items():
            metrics.redis.labels(op).observe(secs)
        metrics.snapshots.inc(st.snapshots)
        for label, n in st.released.items():
            metrics.released.labels(str(label)).inc(n)

    def on_rescored(st: RescoreStats) -> None:
        metrics.rescored(st.transitions, st.redis_seconds)

    live = Live.from_settings(store, send_alerts, settings)
    live.on_rescored = on_rescored
    # the BG/NBD fit: snapshots always carry its inputs (the learner decides whether to
    # use them, CHURN_MODEL_VALUE_INPUTS), the scorer needs them when the model does
    live.value = ValueModel(ValueStore(client, settings.redis_prefix),
                            settings.churn_horizon_days,
                            every_days=settings.value_fit_every_days,
                            lag_days=settings.value_fit_lag_days,
                            wait_seconds=settings.value_fit_wait_seconds,
                            frequency_days=settings.rfm_frequency_days,
                            on_late=metrics.value_fit_late.inc)
    anchors = Anchors(store, send_training, settings.churn_horizon_days,
                      settings.label_sample_rate, settings.sweep_chunk,
                      settings.label_warmup_days, live.value)
    proc = BatchProcessor(store, send_dead_letters, settings.allowed_types(),
                          settings.churn_horizon_days, live, anchors, on_batch,
                          max_future_seconds=settings.max_future_seconds,
                          clock_step_ms=int(settings.clock_max_step_hours * 3_600_000),
                          clock_users=settings.clock_confirm_users)
    sweeper = Sweeper(store, live, proc.lock, settings.churn_horizon_days, settings.sweep_chunk,
                      settings.retention_days, swept=proc.swept)
    proc.catch_up = sweeper.catch_up
    install_recovery(app, proc, store, settings, metrics.rebuilt)  # Redis state loss
    owned: set[int] = set()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        proc.on_rebalance()
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.events_topic)
        owned.clear()
        owned.update(mine)
        log.info("partitions assigned: %s%s", settings.events_topic, mine)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        proc.on_rebalance()
        owned.clear()

    @app.task
    async def serve_metrics() -> None:
        metrics.scorer(live.scorer.version, live.scorer.name)
        if settings.worker_metrics_port:
            try:
                metrics.serve(settings.worker_metrics_port, settings.metrics_host)
            except OSError as exc:  # e.g. a second worker on one host: keep working
                log.error("metrics port %d unavailable (%s); set CHURN_WORKER_METRICS_PORT",
                          settings.worker_metrics_port, exc)
            else:
                log.info("metrics on http://%s:%d/metrics", settings.metrics_host,
                         settings.worker_metrics_port)

    registry = WorkerRegistry(client, settings.redis_prefix)

    async def report_crash(exc: BaseException) -> None:
        await registry.beat("crashed", sorted(owned), f"{type(exc).__name__}: {exc}")

    lifecycle.on_crash = report_crash

    @app.timer(interval=5.0)
    async def heartbeat() -> None:
        """This worker is alive (the API's /readyz and /v1/status read the beats)."""
        if lifecycle.crashed is None:
            try:
                await registry.beat("running", sorted(owned))
            except TRANSIENT_ERRORS as exc:
                log.warning("heartbeat not written (%s)", exc)

    @app.timer(interval=5.0)
    async def shared_gauges() -> None:
        """Gauges of shared state: users per stored tier, positions and clocks of the
        partitions this worker owns."""
        try:
            for tier in ALL_TIERS:
                metrics.users.labels(tier).set(0)
            for tier, n in (await store.tier_counts()).items():
                metrics.users.labels(tier).set(n)
            offsets, wms, clock = (await store.applied_offsets(), await store.watermarks(),
                                   await store.clock())
            for p in sorted(owned):
                if p in offsets:
                    metrics.position.labels(str(p)).set(offsets[p])
                if p in wms:
                    metrics.watermark.labels(str(p)).set(wms[p] / 1000)
                if f"s:{p}" in clock:
                    metrics.swept_until.labels(str(p)).set(clock[f"s:{p}"] / 1000)
        except TRANSIENT_ERRORS as exc:
            log.warning("gauges not updated (%s)", exc)

    @app.timer(interval=settings.model_poll_seconds)
    async def reload_model() -> None:
        """Hot-reload a new model version (and the population means for reasons)."""
        try:
            await refresh_model(live, models, settings)
            metrics.scorer(live.scorer.version, live.scorer.name)
        except TRANSIENT_ERRORS as exc:
            log.warning("model reload failed (%s); keeping v%d", exc, live.scorer.version)
        except Exception:  # a bad checkpoint must not stop ingestion
            log.exception("model reload failed; keeping v%d", live.scorer.version)

    @app.timer(interval=settings.sweep_interval_seconds)
    async def sweep() -> None:
        try:
            for p, anchor in await sweeper.due(set(owned)):
                if p not in owned:
                    continue
                st = await sweeper.sweep(p, anchor)
                metrics.sweep_seconds.observe(st.seconds)
                metrics.swept.inc(st.users)
                metrics.churned.inc(st.churned)
                log.info("swept partition %d at %s: %d users, %d churned, %d alerts, %.2fs",
                         p, anchor, st.users, st.churned, st.alerts, st.seconds)
        except TRANSIENT_ERRORS as exc:
            log.warning("sweep interrupted (%s); will resume", exc)
        except Exception:  # logged, retried at the next tick; ingestion goes on
            log.exception("sweep failed; will retry")

    @app.task
    async def after_start() -> None:
        tune_gc()

    @app.task
    async def check_redis() -> None:
        await store.load_scripts()
        for warning in await store.check_config():
            log.warning("redis config: %s", warning)

    @app.agent(events, name="apply_events")
    async def apply_events(stream: faust.StreamT) -> None:
        """Batches are applied one at a time, in order, and acknowledged once applied.

        While Redis runs batch N the agent already collects batch N+1 from faust
        (at most one batch in flight), so Redis time overlaps faust's per-event work.
        """

        async def apply_then_ack(batch: Sequence[Any]) -> None:
            records = [Record(e.message.partition, e.message.offset, e.message.key, e.value)
                       for e in batch]
            await proc.process_until_done(records, on_retry=log_retry)
            for event in batch:
                await stream.ack(event)

        inflight: asyncio.Future[None] | None = None
        try:
            async for batch in stream.noack_take(  # type: ignore[attr-defined]
                    settings.batch_size, within=settings.batch_within):
                if inflight is not None:
                    await inflight
                inflight = asyncio.ensure_future(apply_then_ack(batch))
                inflight.add_done_callback(lifecycle.watch)
        except Exception as exc:  # anything not retried: end the process, see lifecycle
            lifecycle.crash(exc, "apply_events")
            raise
        finally:
            if inflight is not None:
                await inflight

    return app, proc, lifecycle


async def refresh_model(live: Live, models: ModelStore, settings: Settings) -> None:
    live.means = (await live.store.population())[1]
    await live.value.refresh()
    version = await models.version()
    if version == live.loaded_version:
        return
    ckpt = await models.load()
    if ckpt is None:
        return
    state = ckpt.state
    live.scorer = state.scorer(ckpt.version, settings.min_labels,
                               settings.model_handoff == "compare", settings.model_pipeline)
    live.loaded_version = ckpt.version
    log.info("model v%d loaded (%d examples); scorer %s", ckpt.version, state.examples,
             live.scorer.name)


def run_worker(settings: Settings) -> int:
    """Run one worker until SIGINT/SIGTERM (several may share the consumer group); the
    exit status (70 after a crash, see :mod:`stream.lifecycle`)."""
    from stream.topics import ensure_topics

    ensure_topics(settings)
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    app, _, lifecycle = build_app(settings)
    return run(Worker(app, lifecycle, loglevel=settings.log_level, redirect_stdouts=False))
