"""The worker's components, built from the settings, each given its collaborators in
its constructor (the composition root's first half; :mod:`stream.worker.app` wires
them into faust)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from core.settings import Settings
from state.keys import Keys
from state.models import ModelStore
from state.redis_store import RedisFeatureStore, connect, store_prefix
from state.value_model import ValueModel
from state.value_store import ValueStore
from state.workers import WorkerRegistry
from stream.anchors import Anchors
from stream.worker.live import Live
from stream.worker.metrics import WorkerMetrics
from stream.worker.outputs import Outputs
from stream.worker.processor import BatchProcessor
from stream.worker.sweeper import Sweeper


@dataclass
class WorkerParts:
    client: Any
    store: RedisFeatureStore
    models: ModelStore
    registry: WorkerRegistry
    metrics: WorkerMetrics
    live: Live
    anchors: Anchors
    sweeper: Sweeper
    proc: BatchProcessor


def value_model(settings: Settings, client: Any, metrics: WorkerMetrics,
                keys: Keys | None = None) -> ValueModel:
    """The BG/NBD fit serving on each day: snapshots always carry its inputs (the learner
    decides whether to use them, ``CHURN_MODEL_VALUE_INPUTS``), the scorer needs them
    when the model does."""
    return ValueModel(ValueStore(client, settings.redis_prefix, keys=keys),
                      settings.churn_horizon_days,
                      every_days=settings.value_fit_every_days,
                      lag_days=settings.value_fit_lag_days,
                      wait_seconds=settings.value_fit_wait_seconds,
                      frequency_days=settings.rfm_frequency_days,
                      on_late=metrics.value_fit_late.inc)


def build_parts(settings: Settings, outputs: Outputs,
                metrics: WorkerMetrics | None = None) -> WorkerParts:
    client = connect(settings.redis_url)
    store = RedisFeatureStore(client, settings.redis_prefix,  # 30-day feature horizon
                              partitions=settings.partitions)
    metrics = metrics or WorkerMetrics()
    live = Live.from_settings(store, outputs.alerts, settings, on_rescored=metrics.on_rescored,
                              value=value_model(settings, client, metrics, store.keys))
    anchors = Anchors(store, outputs.training, settings.churn_horizon_days,
                      settings.label_sample_rate, settings.sweep_chunk,
                      settings.label_warmup_days, live.value)
    # batches and sweep chunks take turns (one lock: a sweep never rescores a user from a
    # state a batch is half-way through), and batches catch up users who arrive
    # entirely behind the anchor a partition's sweep has reached (swept)
    turns = asyncio.Lock()
    swept: dict[int, int] = {}
    sweeper = Sweeper(store, live, turns, settings.churn_horizon_days, settings.sweep_chunk,
                      settings.retention_days, swept=swept, on_swept=metrics.on_swept)
    proc = BatchProcessor(store, outputs.dead_letters, settings.allowed_types(),
                          settings.churn_horizon_days, live, anchors, metrics.on_batch,
                          max_future_seconds=settings.max_future_seconds,
                          clock_step_ms=int(settings.clock_max_step_hours * 3_600_000),
                          clock_users=settings.clock_confirm_users, turns=turns,
                          swept=swept, lanes=settings.batch_lanes,
                          chunks=settings.batch_chunks,
                          catch_up=sweeper.catch_up, sweep_behind=sweeper.behind)
    glob = store_prefix(client, settings.redis_prefix)
    return WorkerParts(client, store, ModelStore(client, glob),
                       WorkerRegistry(client, glob), metrics, live, anchors,
                       sweeper, proc)
