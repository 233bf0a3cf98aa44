"""Response models (the HTTP contract of docs/design.md section 7)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    feature: str
    value: float = Field(description="The user's value at `as_of`")
    population_mean: float | None = Field(
        description="Mean over the users snapshotted at the latest anchor")
    contribution: float = Field(description="Push towards churn (model units)")
    text: str


class Value(BaseModel):
    purchase_days: int = Field(description="Distinct UTC days with a purchase, ever")
    repeat_purchase_days: int = Field(description="BG/NBD x: purchase days after the first")
    t_x_days: int = Field(description="BG/NBD t_x: first to last purchase day")
    age_days: int = Field(description="BG/NBD T: first purchase day to day(as_of)")
    valued_purchase_days: int = Field(description="Purchase days whose spend is known")
    mean_spend: float = Field(description="Their mean spend")
    fit_version: int | None = Field(description="Value fit used (None: no fit yet)")
    p_alive: float | None = Field(description="BG/NBD probability of being alive")
    expected_purchases: float | None = Field(
        description="Expected purchase days in the next `horizon_days`")
    p_no_purchase: float | None = Field(
        description="Probability of no purchase in the next `horizon_days`")
    value_per_purchase: float | None = Field(
        description="Gamma-Gamma expected spend of a purchase day")
    clv: float | None = Field(description="Discounted expected spend over `clv_days` "
                                          "(CHURN_VALUE_CLV_DAYS, CHURN_VALUE_DISCOUNT)")
    horizon_days: int
    clv_days: int


class Segment(BaseModel):
    name: str = Field(description="RFM persona (champions, loyal, ..., prospect)")
    r: int | None = Field(description="Recency score 1-5 (5 = bought most recently)")
    f: int | None = Field(description="Frequency score 1-5")
    m: int | None = Field(description="Monetary score 1-5")


class Crossing(BaseModel):
    """A tier crossing: what ``risk.alerts`` carried (without the reasons)."""

    model_config = ConfigDict(populate_by_name=True)

    user_id: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    risk: float
    at: str = Field(description="the score's reference time (RFC 3339)")
    at_ms: int


class UserRisk(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "u0000665", "as_of": "2020-01-29T00:00:00.000Z", "risk": 0.81,
        "scorer": "model:logreg", "model_version": 18, "scored_at": "2020-01-29T00:00:00.000Z",
        "rank": 1, "ranked": 641, "percentile": 100.0, "tier": "critical",
        "alert_tier": "critical",
        "reasons": [{"feature": "days_since_last_event", "value": 27.95,
                     "population_mean": 4.66, "contribution": 1.23,
                     "text": "no activity for 28.0 days; typical: 4.7"}],
        "features": {"days_since_last_event": 27.95, "active_days_30d": 1.0},
        "long_range": {"purchase_days_total": 3.0, "purchase_gap_mean_days": 41.5},
        "first_event": "2019-12-11T08:03:00.000Z", "last_event": "2020-01-01T01:11:04.000Z"}]})

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
    features: dict[str, float] = Field(description="The 17 features of docs/design.md section 4")
    long_range: dict[str, float] = Field(
        {}, description="The long-range inputs (purchase days ever and in the last "
                        "90/180/365 days, gaps between purchase days, spend per purchase "
                        "day): README, 'Long-range inputs'")
    value: Value | None = Field(None, description="Customer value; None before a purchase")
    segment: Segment | None = Field(None, description="RFM segment; None before a value fit")
    expected_saved_value: float | None = Field(
        None, description="risk x CLV: what retaining the user is expected to be worth")
    tier_history: list[Crossing] = Field(
        [], description="the user's newest tier crossings (at most 4), oldest first")
    first_event: str
    last_event: str


class WorkerInfo(BaseModel):
    worker: str = Field(description="host:pid")
    state: str = Field(description="running (beat within 15 s), silent, or crashed")
    at: str = Field(description="Last heartbeat (RFC 3339)")
    partitions: list[int]
    reason: str | None = None


class Status(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "watermark": "2020-01-29T23:48:55.023Z", "watermark_ms": 1580341735023,
        "swept_until": "2020-01-29T00:00:00.000Z", "swept_until_ms": 1580256000000,
        "labels": {"anchors": 356, "snapshots": 22937, "released": 12851,
                   "released_label_1": 1215}, "alerts": 2495,
        "partitions": {"0": 1580341735023}, "events_consumed": 84713,
        "events_applied": 84713, "events_rejected": 0, "events_duplicate": 0,
        "events_late": 0, "events_late_outside_window": 0, "rejected_by_reason": {},
        "applied_by_type": {"view": 74308, "purchase": 3156}}]})

    watermark: str | None = Field(description="The newest partition clock (RFC 3339): the "
                                              "largest confirmed event time")
    watermark_ms: int | None
    swept_until: str | None = Field(description="Every user has been rescored up to this "
                                                "time: the oldest sweep over the partitions")
    swept_until_ms: int | None
    labels: dict[str, int] = Field({}, description="Anchors, snapshots taken, examples "
                                                   "released (and with label 1)")
    alerts: int = 0
    partitions: dict[str, int] = Field(description="Each partition's clock (ms): its largest "
                                                   "confirmed event time")
    events_consumed: int
    events_applied: int
    events_rejected: int
    events_duplicate: int
    events_late: int
    events_late_outside_window: int
    rejected_by_reason: dict[str, int]
    applied_by_type: dict[str, int]
    state_rebuilds: int = Field(0, description="Times a worker found the Redis state lost "
                                               "or behind Kafka and rebuilt it by replay")
    events_unconfirmed_time: int = Field(0, description="Events too far ahead of their "
                                         "partition's clock to move it (applied to their user)")
    workers: list[WorkerInfo] = Field([], description="Stream workers by their heartbeats")



class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
    detail: dict[str, str | list[str]] | None = Field(
        default=None, description="When unavailable: {error: worker_crashed | "
                                  "redis_unavailable | kafka_unavailable | unavailable, "
                                  "unavailable: [what failed]}")


class QualityPoint(BaseModel):
    """The prequential window at the end of one anchor day (core/quality_history.py)."""

    at: str = Field(description="The anchor day (event time, RFC 3339)")
    examples: int = Field(description="Examples learned by then")
    scorer: str = Field(description="The scorer that was speaking")
    window: int = Field(description="Examples in the window")
    rocauc: float | None
    lift_at_10: float | None


class ModelInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": 28, "pipeline": "logreg", "scorer": "model:logreg", "examples": 12851,
        "min_labels": 1000, "labels": {"0": 11636, "1": 1215},
        "metrics": {"rocauc": 0.877, "logloss": 0.229, "lift_at_5": 6.74,
                    "precision_at_5": 0.706}, "updated_at": 1795313877.5}]})

    version: int = Field(description="Newest checkpoint (0: none yet)")
    pipeline: str
    scorer: str = Field(description="Who scores now: the rule until `min_labels` examples")
    examples: int = Field(description="Examples learned")
    min_labels: int
    labels: dict[str, int] = Field(description="Examples learned per label")
    value_inputs: bool = Field(
        False, description="The model also learns from the BG/NBD inputs (customer or not, "
                           "P(alive), expected purchase days): CHURN_MODEL_VALUE_INPUTS")
    metrics: dict[str, float | None] = Field(
        description="Prequential (predict, then learn) metrics over the last `window` "
                    "examples: rocauc, logloss, precision/recall/lift at 5/10/20 %")
    updated_at: float | None
    champion: str | None = Field(
        None, description="The candidate that speaks (the best over the window by "
                          "CHURN_CHAMPION_METRIC, with a margin); null before the first "
                          "checkpoint")
    champion_since: str | None = Field(
        None, description="Release time (event time, RFC 3339) of the example at which it "
                          "took over; null while the cold-start rule speaks from the start")
    champion_since_examples: int = Field(0, description="Examples learned when it took over")
    calibration: list[float] | None = Field(
        None, description="Platt parameters (a, b): risk = sigmoid(a g(score) + b), fitted "
                          "on the champion's window; null: too few labels, raw scores")
    candidates: dict[str, dict[str, float | None]] = Field(
        {}, description="Every candidate's prequential metrics over the same window "
                        "(rocauc, pr_auc, lift_at_10, precision_at_10, eligible)")
    switches: list[dict[str, object]] = Field(
        [], description="The last champion changes: examples, release_ms, from, to, metric, "
                        "was")
    history: list[QualityPoint] = Field(
        [], description="Model quality over time: the speaking scorer's prequential window "
                        "at the end of each anchor day learned (the newest 400 days)")


class MonthFigures(BaseModel):
    """One calendar month (UTC, event time) of the monthly picture (core/monthly.py)."""

    month: str = Field(examples=["2019-11"])
    active: int = Field(description="customers with an event in the month")
    new: int = Field(description="customers whose first event is in the month")
    retained: int = Field(description="active in the month before and in this one")
    returning: int = Field(description="active again after a month or more away")
    churned: int = Field(description="active in the month before, not in this one")
    churn_rate: float | None = Field(description="churned / active the month before")


class TierValue(BaseModel):
    customers: int = Field(description="customers (with a purchase) in the tier")
    value_at_risk: float = Field(description="sum of risk x CLV")
    clv: float = Field(description="sum of CLV")


class ValueAtRisk(BaseModel):
    """Value at risk per tier when the newest value fit ran (core/value_at_risk.py)."""

    fit_version: int
    as_of: str = Field(description="event time of the fit's summaries (RFC 3339)")
    tiers: dict[str, TierValue]


class Overview(BaseModel):
    """The retention team's overview: users per tier now and churned, the monthly picture and
    the cohort retention table."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2019-12-19T23:45:19.000Z",
        "tiers": {"critical": 17, "high": 32, "elevated": 49, "low": 227, "churned": 75},
        "months": [{"month": "2019-11", "active": 360, "new": 92, "retained": 268,
                    "returning": 0, "churned": 40, "churn_rate": 0.13}],
        "cohorts": {"2019-10": [308, 268, 209], "2019-11": [92, 79]},
        "value_at_risk": {"fit_version": 7, "as_of": "2019-12-15T00:00:00.000Z", "tiers": {
            "critical": {"customers": 9, "value_at_risk": 310.5, "clv": 402.0},
            "high": {"customers": 20, "value_at_risk": 512.3, "clv": 980.1},
            "elevated": {"customers": 31, "value_at_risk": 401.9, "clv": 1422.7},
            "low": {"customers": 140, "value_at_risk": 377.2, "clv": 5120.4}}},
        "scorer": "bgnbd",
        "quality": [{"at": "2019-12-14T00:00:00.000Z", "examples": 4120, "scorer": "bgnbd",
                     "window": 4120, "rocauc": 0.81, "lift_at_10": 3.9}]}]})

    as_of: str | None = Field(description="event-time watermark (RFC 3339)")
    tiers: dict[str, int] = Field(description="users per tier by rank now, and churned")
    months: list[MonthFigures]
    cohorts: dict[str, list[int]] = Field(
        description="first month -> customers of that cohort active k = 0, 1, ... months "
                    "later (k = 0: the new customers)")
    value_at_risk: ValueAtRisk | None = Field(
        None, description="risk x CLV per tier, taken with the newest value fit (null "
                          "before the first fit, or a fit from before this figure)")
    scorer: str | None = Field(None, description="the scorer speaking now (the champion)")
    quality: list[QualityPoint] = Field(
        [], description="model quality over time (as GET /v1/model's history)")


class AlertsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"alerts": [{
        "user_id": "u0000665", "from": "high", "to": "critical", "risk": 0.81,
        "at": "2020-01-29T00:00:00.000Z", "at_ms": 1580256000000}]}]})

    alerts: list[Crossing] = Field(description="newest first")
