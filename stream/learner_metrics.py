"""Every Prometheus metric of the learner, declared in one place (DESIGN section 7).

Quality gauges are the prequential metrics (predict, then learn) over the last
``CHURN_METRICS_WINDOW`` examples, updated at every checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

KS = (5, 10, 20)


class LearnerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.learned = Counter("churn_examples_learned_total",
                               "Examples learned, by label", ["label"], registry=r)
        self.skipped = Counter("churn_examples_skipped_total",
                               "Examples not learned: invalid, or a repeated release",
                               ["reason"], registry=r)
        self.version = Gauge("churn_model_version", "Newest checkpoint version", registry=r)
        self.info = Gauge("churn_model_info", "1 for the newest checkpoint",
                          ["version", "pipeline"], registry=r)
        self.rocauc = Gauge("churn_model_rocauc", "Prequential ROC-AUC", registry=r)
        self.logloss = Gauge("churn_model_logloss", "Prequential log-loss", registry=r)
        self.lift = Gauge("churn_model_lift", "Prequential Lift@K (K in percent)", ["k"],
                          registry=r)
        self.precision = Gauge("churn_model_precision", "Prequential Precision@K", ["k"],
                               registry=r)
        self.checkpoint_examples = Gauge("churn_model_examples",
                                         "Examples learned by the newest checkpoint", registry=r)
        self._info: tuple[str, str] | None = None

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def counts(self, d_label0: int, d_label1: int, d_invalid: int, d_repeats: int) -> None:
        self.learned.labels("0").inc(d_label0)
        self.learned.labels("1").inc(d_label1)
        self.skipped.labels("invalid").inc(d_invalid)
        self.skipped.labels("repeat").inc(d_repeats)

    def checkpoint(self, version: int, pipeline: str,
                   summary: Mapping[str, float | None]) -> None:
        """Gauges from a checkpoint's summary (NaN, or None from JSON, when undefined)."""

        def num(name: str) -> float:
            v = summary.get(name)
            return math.nan if v is None else float(v)

        self.version.set(version)
        if self._info is not None:
            self.info.remove(*self._info)
        self._info = (str(version), pipeline)
        self.info.labels(*self._info).set(1)
        self.checkpoint_examples.set(num("examples"))
        self.rocauc.set(num("rocauc"))
        self.logloss.set(num("logloss"))
        for k in KS:
            self.lift.labels(str(k)).set(num(f"lift_at_{k}"))
            self.precision.labels(str(k)).set(num(f"precision_at_{k}"))
