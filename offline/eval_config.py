"""What ``churnstream evaluate`` runs: anchors, labels, pipelines, baselines, and the
learner's settings it shares with the live system (:meth:`EvalConfig.from_settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.bgnbd import BGNBD
from core.evaluation import KS
from core.labels import DAY_MS

SHORT = "-long"  # a pipeline suffix: the 17 features only, no long-range inputs


@dataclass(frozen=True)
class EvalConfig:
    horizon_days: int = 30
    every_days: int = 7
    first_day: int | None = None  # first anchor, in days after the log's first midnight
    sample_rate: float = 1 / 30
    warmup_days: int = 30  # no training snapshots in the log's first days (as the worker)
    ks: tuple[float, ...] = KS
    pipelines: tuple[str, ...] = ("logreg",)
    model_lr: float = 0.005
    min_labels: int = 1000
    hgb: bool = True
    bgnbd: bool = True  # the BG/NBD expected-purchases baseline (offline/value_fits.py)
    value_params: BGNBD | None = None  # fixed BG/NBD parameters instead of scheduled fits
    # the live schedule of the value fit (CHURN_VALUE_FIT_EVERY_DAYS / _LAG_DAYS, and
    # CHURN_VALUE_MIN_CUSTOMERS)
    value_fit_every_days: int = 7
    value_fit_lag_days: int = 7
    value_min_customers: int = 100
    hgb_max_examples: int = 300_000
    calibration_bins: int = 10
    # the event-time clock, as the worker's (core.clock): a record more than a step ahead
    # moves it only once events of clock_users users confirm the jump
    clock_step_ms: int = DAY_MS
    clock_users: int = 2
    # the live learner's model selection (core.champion; Settings of the same names)
    metrics_window: int = 10_000
    champion_every: int = 1000
    champion_window: int = 2000
    champion_margin: float = 0.002
    champion_metric: str = "rocauc"
    champion_batch: bool = True
    batch_every_days: int = 7
    handoff_compare: bool = True  # False: CHURN_MODEL_HANDOFF=count

    def __post_init__(self) -> None:
        """Bad settings fail here, with the setting's name, not minutes into a run."""
        checks = [(self.horizon_days >= 1, "horizon_days must be >= 1"),
                  (self.every_days >= 1, "every_days must be >= 1"),
                  (self.first_day is None or self.first_day >= 0, "first_day must be >= 0"),
                  (0 <= self.sample_rate <= 1, "sample_rate must be in [0, 1]"),
                  (self.warmup_days >= 0, "warmup_days must be >= 0"),
                  (bool(self.ks) and all(0 < k <= 1 for k in self.ks),
                   "every K must be a share in (0, 100] percent"),
                  (bool(self.pipelines), "at least one pipeline"),
                  (self.min_labels >= 0, "min_labels must be >= 0"),
                  (self.calibration_bins >= 1, "calibration_bins must be >= 1")]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise ValueError("; ".join(bad))

    @classmethod
    def from_settings(cls, settings: Any, **given: Any) -> EvalConfig:
        """The live stack's settings (core.settings.Settings) as ``evaluate`` uses them:
        the same labels, value schedule and model selection; ``given`` wins (the CLI's
        options; None = not given)."""
        s = settings
        cfg: dict[str, Any] = dict(
            horizon_days=s.churn_horizon_days, sample_rate=s.label_sample_rate,
            warmup_days=s.label_warmup_days, model_lr=s.model_lr, min_labels=s.min_labels,
            value_fit_every_days=s.value_fit_every_days,
            value_fit_lag_days=s.value_fit_lag_days, value_min_customers=s.value_min_customers,
            metrics_window=s.metrics_window, champion_every=s.champion_every,
            champion_window=s.champion_window, champion_margin=s.champion_margin,
            champion_metric=s.champion_metric, champion_batch=s.champion_batch,
            batch_every_days=s.batch_every_days, handoff_compare=s.model_handoff == "compare")
        cfg.update({k: v for k, v in given.items() if v is not None})
        return cls(**cfg)
