"""Every Prometheus metric of the stream worker, declared in one place (names:
docs/design.md section 7).

Names: prefix ``churn_``, base units, ``_total`` counters, no user ids in labels.
Counters count this process's work (sum them over workers); gauges that describe
shared state (users per tier) are the same in every worker (take ``max``).
Served by :meth:`WorkerMetrics.serve` on ``CHURN_WORKER_METRICS_PORT``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from core.apply import DUPLICATE, LATE, LATE_OUTSIDE

if TYPE_CHECKING:
    from stream.worker.live import RescoreStats
    from stream.worker.processor import BatchStats
    from stream.worker.sweeper import SweepStats

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400,
       365 * 86400)
SIZES = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.consumed = Counter("churn_events_consumed_total",
                                "Valid events consumed, by event type", ["type"], registry=r)
        self.rejected = Counter("churn_events_rejected_total",
                                "Invalid events sent to the DLQ, by reason", ["reason"],
                                registry=r)
        self.duplicate = Counter("churn_events_duplicate_total",
                                 "Events whose event_id was already applied", registry=r)
        self.late = Counter("churn_events_late_total",
                            "Events older than the user's newest, inside or outside the "
                            "30-day window", ["window"], registry=r)
        self.processing = Histogram("churn_event_processing_seconds",
                                    "Seconds from a batch's start to its commit (each event "
                                    "waits for its whole batch)", buckets=LATENCY, registry=r)
        self.lag = Histogram("churn_event_lag_seconds",
                             "Wall clock minus event time of each partition's newest event "
                             "in a batch", buckets=LAG, registry=r)
        self.batch_size = Histogram("churn_batch_size_events", "Records per batch",
                                    buckets=SIZES, registry=r)
        self.redis = Histogram("churn_redis_seconds", "Redis round trips by operation",
                               ["op"], buckets=LATENCY, registry=r)
        self._shared_state(r)
        self.transitions = Counter("churn_tier_transitions_total",
                                   "Stored tier changes (each one an alert)", ["from", "to"],
                                   registry=r)
        self.alerts = Counter("churn_alerts_total", "Alerts sent to risk.alerts", registry=r)
        self.model_version = Gauge("churn_model_version",
                                   "Model version this worker scores with (0: rule)", registry=r)
        self.model_info = Gauge("churn_model_info", "1 for the scorer in use",
                                ["version", "scorer"], registry=r)
        self.sweep_seconds = Histogram("churn_sweep_seconds", "Duration of one partition sweep",
                                       buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300),
                                       registry=r)
        self.swept = Counter("churn_users_swept_total", "Users rescored by sweeps", registry=r)
        self.churned = Counter("churn_users_churned_total", "Users moved to churned by sweeps",
                               registry=r)
        self.snapshots = Counter("churn_label_snapshots_total",
                                 "Label snapshots taken at anchors", registry=r)
        self.released = Counter("churn_examples_released_total",
                                "Training examples released, by label", ["label"], registry=r)
        self.value_fit_late = Counter("churn_value_fit_late_total", "Anchors that served an "
                                      "older value fit: the due one was late", registry=r)
        self.position = Gauge("churn_consumer_position",
                              "Last applied offset per owned partition", ["partition"],
                              registry=r)
        self.watermark = Gauge("churn_watermark_timestamp_seconds",
                               "Event-time watermark per owned partition", ["partition"],
                               registry=r)
        self.swept_until = Gauge("churn_swept_until_timestamp_seconds",
                                 "Time up to which every user of the partition is rescored",
                                 ["partition"], registry=r)
        self.rebuilds = Counter("churn_state_rebuilds_total",
                                "Redis state found lost or behind Kafka and rebuilt by replay",
                                registry=r)
        self.replayed = Counter("churn_state_replayed_records_total",
                                "Records replayed from Kafka to rebuild Redis state", registry=r)
        self._scorer: tuple[str, str] | None = None

    def _shared_state(self, r: CollectorRegistry) -> None:
        """Gauges of the state every worker shares (set by ``WorkerTasks.shared_gauges``)."""
        self.users = Gauge("churn_users", "Users per stored tier (shared state)", ["tier"],
                           registry=r)
        # the monthly picture (core/monthly.py) of the newest calendar month seen
        # ("current", still filling) and the one before ("previous")
        self.month_customers = Gauge("churn_month_customers", "Customers per calendar "
                                     "month (event time) by kind: active, new, retained, "
                                     "returning, churned (shared state)", ["month", "kind"],
                                     registry=r)
        self.month_churn_rate = Gauge("churn_month_churn_rate", "Churned / active the month "
                                      "before (shared state)", ["month"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def batch(self, records: int, seconds: float, statuses: Mapping[int, int],
              types: Mapping[str, int], reasons: Mapping[str, int],
              newest_ms: Mapping[int, int]) -> None:
        self.batch_size.observe(records)
        self.processing.observe(seconds)
        for t, n in types.items():
            self.consumed.labels(t).inc(n)
        for reason, n in reasons.items():
            self.rejected.labels(reason).inc(n)
        self.duplicate.inc(statuses.get(DUPLICATE, 0))
        self.late.labels("inside").inc(statuses.get(LATE, 0))
        self.late.labels("outside").inc(statuses.get(LATE_OUTSIDE, 0))
        now = time.time()
        for ms in newest_ms.values():
            self.lag.observe(max(0.0, now - ms / 1000))

    def rescored(self, transitions: Mapping[tuple[str, str], int],
                 redis_seconds: Mapping[str, float]) -> None:
        for (frm, to), n in transitions.items():
            self.transitions.labels(frm, to).inc(n)
            self.alerts.inc(n)
        for op, secs in redis_seconds.items():
            self.redis.labels(op).observe(secs)

    def on_batch(self, st: BatchStats) -> None:
        """The processor's callback after every batch."""
        self.batch(st.records, st.seconds, st.statuses, st.types, st.reasons, st.newest)
        for op, secs in st.redis_seconds.items():
            self.redis.labels(op).observe(secs)
        self.snapshots.inc(st.snapshots)
        for label, n in st.released.items():
            self.released.labels(str(label)).inc(n)

    def on_swept(self, st: SweepStats) -> None:
        """The Sweeper's callback after every partition sweep."""
        self.sweep_seconds.observe(st.seconds)
        self.swept.inc(st.users)
        self.churned.inc(st.churned)

    def on_rescored(self, st: RescoreStats) -> None:
        """Live's callback after every rescore (events and sweeps)."""
        self.rescored(st.transitions, st.redis_seconds)

    def rebuilt(self, records: int) -> None:
        self.rebuilds.inc()
        self.replayed.inc(records)

    def scorer(self, version: int, name: str) -> None:
        self.model_version.set(version)
        if self._scorer is not None:
            self.model_info.remove(*self._scorer)
        self._scorer = (str(version), name)
        self.model_info.labels(*self._scorer).set(1)
