"""Every Prometheus metric of the learner, declared in one place (docs/design.md section 7).

Quality gauges are the prequential metrics (predict, then learn) over the last
``CHURN_METRICS_WINDOW`` examples, updated at every checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from state.value_store import ValueFit

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
        # online model selection (core.champion): every candidate on the same window
        self.candidate_rocauc = Gauge("churn_model_candidate_rocauc",
                                      "Prequential ROC-AUC of each candidate scorer",
                                      ["candidate"], registry=r)
        self.candidate_lift = Gauge("churn_model_candidate_lift",
                                    "Prequential Lift@10% of each candidate scorer",
                                    ["candidate"], registry=r)
        self.champion = Gauge("churn_model_champion", "1 for the candidate that speaks",
                              ["candidate"], registry=r)
        self.switches = Counter("churn_model_champion_switches_total",
                                "Champion changes", ["from", "to"], registry=r)
        self.checkpoint_examples = Gauge("churn_model_examples",
                                         "Examples learned by the newest checkpoint", registry=r)
        # customer value (stream/jobs/value_fit.py)
        self.value_fits = Counter("churn_value_fits_total", "Customer-value fits, by outcome",
                                  ["outcome"], registry=r)
        self.value_fit_seconds = Gauge("churn_value_fit_seconds",
                                       "Duration of the last value fit (scan + fit + index)",
                                       registry=r)
        self.value_version = Gauge("churn_value_version", "Newest value-fit version", registry=r)
        self.value_customers = Gauge("churn_value_customers",
                                     "Customers (users with a purchase) in the last value fit",
                                     registry=r)
        self.segment_users = Gauge("churn_segment_users", "Users per RFM segment at the last "
                                   "value fit", ["segment"], registry=r)
        self._info: tuple[str, str] | None = None

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def counts(self, d_label0: int, d_label1: int, d_invalid: int, d_repeats: int) -> None:
        self.learned.labels("0").inc(d_label0)
        self.learned.labels("1").inc(d_label1)
        self.skipped.labels("invalid").inc(d_invalid)
        self.skipped.labels("repeat").inc(d_repeats)

    def value_fit(self, outcome: str, fit: ValueFit | None, seconds: float) -> None:
        """One scheduled value fit: ``fitted``, ``partial`` (a partition missing),
        ``skipped`` (too few customers) or ``failed``."""
        self.value_fits.labels(outcome).inc()
        if fit is None:
            return
        self.value_version.set(fit.params.version)
        self.value_customers.set(fit.params.customers)
        self.value_fit_seconds.set(seconds)
        for name, n in fit.segments.items():
            self.segment_users.labels(name).set(n)

    def candidates(self, summary: Mapping[str, object]) -> None:
        """Candidate gauges and the champion from a checkpoint's summary."""
        cands = summary.get("candidates")
        if not isinstance(cands, dict):
            return
        for name, m in cands.items():
            self.candidate_rocauc.labels(name).set(_num(m.get("rocauc")))
            self.candidate_lift.labels(name).set(_num(m.get("lift_at_10")))
            self.champion.labels(name).set(float(name == summary.get("champion")))

    def checkpoint(self, version: int, pipeline: str,
                   summary: Mapping[str, object]) -> None:
        """Gauges from a checkpoint's summary (NaN, or None from JSON, when undefined)."""

        def num(name: str) -> float:
            return _num(summary.get(name))

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
        self.candidates(summary)


def _num(v: object) -> float:
    return math.nan if v is None else float(v)  # type: ignore[arg-type]
