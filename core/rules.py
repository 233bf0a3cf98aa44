"""Transparent cold-start scorer: recency and frequency only.

Until the online model has learned from enough labels, this rule speaks. It is
deliberately simple enough to explain in one sentence: *risk grows linearly with
silence up to the churn horizon, and is higher for users active on few days.*

>>> f = {"days_since_last_event": 15.0, "active_days_30d": 1.0}
>>> recency_frequency_risk(f, horizon_days=30)
0.7
>>> recency_frequency_risk({"days_since_last_event": 0.0, "active_days_30d": 30.0}, 30)
0.0
"""

from __future__ import annotations

from collections.abc import Mapping

RULE_NAME = "rule:recency-frequency"


def recency_frequency_risk(features: Mapping[str, float], horizon_days: int) -> float:
    """0.6 x silence/H (capped at 1) + 0.4 x (1 - (active days - 1)/29), in [0, 1]."""
    recency = min(1.0, features["days_since_last_event"] / horizon_days)
    active = max(1.0, min(30.0, features["active_days_30d"]))
    rarity = 1.0 - (active - 1.0) / 29.0
    return round(0.6 * recency + 0.4 * rarity, 12)
