"""The worker's timers and start-up tasks, and the partitions it owns. Each is a named
method with its collaborators from :class:`~stream.worker.parts.WorkerParts`;
:mod:`stream.worker.app` registers them with faust."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.gc_tuning import one_blas_thread, tune_gc
from core.monthly import MonthRow, month_label, month_of_ms, table
from core.settings import Settings
from core.tiers import ALL_TIERS
from core.time_policy import IdleTracker, targets
from state.models import ModelStore
from stream.lifecycle import Lifecycle
from stream.worker.live import Live
from stream.worker.parts import WorkerParts
from stream.worker.processor import TRANSIENT_ERRORS

log = logging.getLogger("churnstream.worker")


class Ownership:
    """The partitions of topic ``events`` this worker owns, from faust's rebalance
    signals; a rebalance makes the processor reload offsets and clocks."""

    def __init__(self, topic: str, parts: WorkerParts) -> None:
        self.topic, self.proc = topic, parts.proc
        self.owned: set[int] = set()

    async def assigned(self, sender: Any, assigned: Any = (), **kwargs: Any) -> None:
        self.proc.on_rebalance()
        mine = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        self.owned.clear()
        self.owned.update(mine)
        log.info("partitions assigned: %s%s", self.topic, mine)

    async def revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        self.proc.on_rebalance()
        self.owned.clear()


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


class WorkerTasks:
    def __init__(self, settings: Settings, parts: WorkerParts, ownership: Ownership,
                 lifecycle: Lifecycle, wall: Callable[[], float] = time.time) -> None:
        self.settings, self.parts, self.lifecycle = settings, parts, lifecycle
        self.owned = ownership.owned
        self.wall = wall  # the wall clock (tests pass a fake one)
        self.idle = IdleTracker(settings.idle_partition_seconds)
        self._had: set[int] = set()  # the partitions owned at the last clock tick
        lifecycle.on_crash = self.report_crash

    async def report_crash(self, exc: BaseException) -> None:
        await self.parts.registry.beat("crashed", sorted(self.owned),
                                       f"{type(exc).__name__}: {exc}")

    # --- start-up -------------------------------------------------------------------
    async def after_start(self) -> None:
        tune_gc()
        one_blas_thread()

    async def check_redis(self) -> None:
        store = self.parts.store
        await store.load_scripts()
        for warning in await store.check_config():
            log.warning("redis config: %s", warning)

    async def serve_metrics(self) -> None:
        s, live, metrics = self.settings, self.parts.live, self.parts.metrics
        metrics.scorer(live.scorer.version, live.scorer.name)
        if not s.worker_metrics_port:
            return
        try:
            metrics.serve(s.worker_metrics_port, s.metrics_host)
        except OSError as exc:  # e.g. a second worker on one host: keep working
            log.error("metrics port %d unavailable (%s); set CHURN_WORKER_METRICS_PORT",
                      s.worker_metrics_port, exc)
        else:
            log.info("metrics on http://%s:%d/metrics", s.metrics_host, s.worker_metrics_port)

    # --- timers ---------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """This worker is alive (the API's /readyz and /v1/status read the beats)."""
        if self.lifecycle.crashed is None:
            try:
                await self.parts.registry.beat("running", sorted(self.owned))
            except TRANSIENT_ERRORS as exc:
                log.warning("heartbeat not written (%s)", exc)

    async def shared_gauges(self) -> None:
        """Gauges of shared state: users per stored tier, positions and clocks of the
        partitions this worker owns."""
        store, metrics = self.parts.store, self.parts.metrics
        try:
            for tier in ALL_TIERS:
                metrics.users.labels(tier).set(0)
            for tier, n in (await store.tier_counts()).items():
                metrics.users.labels(tier).set(n)
            offsets, wms, clock = (await store.applied_offsets(), await store.watermarks(),
                                   await store.clock())
            self._month_gauges(table(await store.months())[0], wms)
            for p in sorted(self.owned):
                if p in offsets:
                    metrics.position.labels(str(p)).set(offsets[p])
                if p in wms:
                    metrics.watermark.labels(str(p)).set(wms[p] / 1000)
                if f"s:{p}" in clock:
                    metrics.swept_until.labels(str(p)).set(clock[f"s:{p}"] / 1000)
        except TRANSIENT_ERRORS as exc:
            log.warning("gauges not updated (%s)", exc)

    def _month_gauges(self, rows: list[MonthRow], wms: dict[int, int]) -> None:
        """The month of the event-time clock (the newest confirmed watermark: a record far
        ahead does not move it) and the month before."""
        if not rows or not wms:
            return
        now = month_label(month_of_ms(max(wms.values())))
        by_month = {r.month: i for i, r in enumerate(rows)}
        i = by_month.get(now, len(rows) - 1)
        metrics = self.parts.metrics
        for name, row in (("current", rows[i]), ("previous", rows[i - 1] if i else None)):
            if row is None:
                continue
            for kind in ("active", "new", "retained", "returning", "churned"):
                metrics.month_customers.labels(name, kind).set(getattr(row, kind))
            if row.churn_rate is not None:
                metrics.month_churn_rate.labels(name).set(row.churn_rate)

    async def reload_model(self) -> None:
        """Hot-reload a new model version (and the population means for reasons)."""
        live = self.parts.live
        try:
            await refresh_model(live, self.parts.models, self.settings)
            self.parts.metrics.scorer(live.scorer.version, live.scorer.name)
        except TRANSIENT_ERRORS as exc:
            log.warning("model reload failed (%s); keeping v%d", exc, live.scorer.version)
        except Exception:  # a bad checkpoint must not stop ingestion
            log.exception("model reload failed; keeping v%d", live.scorer.version)

    async def advance_clocks(self) -> None:
        """Anchors (and so label releases and sweeps) of partitions without traffic:
        idle ones follow the moving ones, or all follow the wall clock (core.time_policy)."""
        s, store = self.settings, self.parts.store
        try:
            now = self.wall()
            owned = set(self.owned)
            self.idle.touch(owned - self._had, now)  # new here: backlog first
            self._had = owned
            self.idle.observe(await store.applied_offsets(), now)  # progress in records
            wms = await store.watermarks()
            wall_ms = int(now * 1000) if s.clock == "wall" else None
            goals = targets(self.idle, owned, wms, now, wall_ms,
                            int(s.wall_clock_grace_seconds * 1000))
            for p, goal in goals.items():
                if p not in self.owned:  # revoked meanwhile
                    continue
                st = await self.parts.proc.advance(p, goal)
                if st.snapshots or st.released:
                    log.info("partition %d advanced without traffic to %d: %d snapshots, "
                             "%s released", p, goal, st.snapshots, st.released)
        except TRANSIENT_ERRORS as exc:
            log.warning("clock advance interrupted (%s); will resume", exc)
        except Exception:  # logged, retried at the next tick; ingestion goes on
            log.exception("clock advance failed; will retry")

    async def sweep(self) -> None:
        sweeper = self.parts.sweeper
        try:
            for p, anchor in await sweeper.due(set(self.owned)):
                if p not in self.owned:
                    continue
                st = await sweeper.sweep(p, anchor)  # (metrics: WorkerMetrics.on_swept)
                log.info("swept partition %d at %s: %d users, %d churned, %d alerts, %.2fs",
                         p, anchor, st.users, st.churned, st.alerts, st.seconds)
        except TRANSIENT_ERRORS as exc:
            log.warning("sweep interrupted (%s); will resume", exc)
        except Exception:  # logged, retried at the next tick; ingestion goes on
            log.exception("sweep failed; will retry")
