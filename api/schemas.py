"""Response models (the HTTP contract of DESIGN section 7)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Reason(BaseModel):
    feature: str
    value: float = Field(description="The user's value at `as_of`")
    population_mean: float | None = Field(
        description="Mean over the users snapshotted at the latest anchor")
    contribution: float = Field(description="Push towards churn (model units)")
    text: str


class UserRisk(BaseModel):
    user_id: str
    as_of: str = Field(description="Reference time `now` of the features and the score "
                                   "(RFC 3339, UTC): the newest event, or the latest sweep")
    risk: float | None = Field(description="Churn risk in [0, 1] from `scorer`")
    scorer: str | None = Field(description="Who spoke: `rule:recency-frequency` (cold start, "
                                           "or an `as_of` without a stored score) or "
                                           "`model:<pipeline>`")
    model_version: int = Field(0, description="Model checkpoint version (0: no model)")
    scored_at: str | None = Field(description="Reference time of the stored score")
    rank: int | None = Field(None, description="1 = riskiest; None if not ranked")
    ranked: int = Field(0, description="Number of ranked users")
    percentile: float | None = Field(None, description="100 (N - rank + 1) / N")
    tier: str | None = Field(None, description="critical | high | elevated | low by rank "
                                               "now, or churned (silent > H days)")
    alert_tier: str | None = Field(None, description="Stored tier with hysteresis: the last "
                                                     "one announced on `risk.alerts`")
    reasons: list[Reason] = Field([], description="Top features pushing the risk up")
    features: dict[str, float] = Field(description="All features of DESIGN section 4")
    first_event: str
    last_event: str


class Status(BaseModel):
    watermark: str | None = Field(description="Largest event time seen (RFC 3339)")
    watermark_ms: int | None
    swept_until: str | None = Field(description="Every user has been rescored up to this "
                                                "time: the oldest sweep over the partitions")
    swept_until_ms: int | None
    labels: dict[str, int] = Field({}, description="Anchors, snapshots taken, examples "
                                                   "released (and with label 1)")
    alerts: int = 0
    partitions: dict[str, int] = Field(description="Largest event time (ms) per partition")
    events_consumed: int
    events_applied: int
    events_rejected: int
    events_duplicate: int
    events_late: int
    events_late_outside_window: int
    rejected_by_reason: dict[str, int]
    applied_by_type: dict[str, int]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class ModelInfo(BaseModel):
    version: int = Field(description="Newest checkpoint (0: none yet)")
    pipeline: str
    scorer: str = Field(description="Who scores now: the rule until `min_labels` examples")
    examples: int = Field(description="Examples learned")
    min_labels: int
    labels: dict[str, int] = Field(description="Examples learned per label")
    metrics: dict[str, float | None] = Field(
        description="Prequential (predict, then learn) metrics over the last `window` "
                    "examples: rocauc, logloss, precision/recall/lift at 5/10/20 %")
    updated_at: float | None
