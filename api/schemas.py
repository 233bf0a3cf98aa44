"""Response models (the HTTP contract of DESIGN section 7)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UserRisk(BaseModel):
    user_id: str
    as_of: str = Field(description="Reference time `now` of the features (RFC 3339, UTC)")
    risk: float | None = Field(description="Churn risk in [0, 1] from `scorer`")
    scorer: str | None
    scored_at: str | None = Field(description="Reference time of the stored score")
    rank: int | None = Field(None, description="1 = riskiest; None if not ranked yet")
    ranked: int = Field(0, description="Number of ranked users")
    percentile: float | None = Field(None, description="100 (N - rank + 1) / N")
    tier: str | None = Field(None, description="critical | high | elevated | low")
    features: dict[str, float] = Field(description="All features of DESIGN section 4")
    first_event: str
    last_event: str


class Status(BaseModel):
    watermark: str | None = Field(description="Largest event time seen (RFC 3339)")
    watermark_ms: int | None
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
