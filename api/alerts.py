"""The alerts feed and a customer's tier history, as the API and the console show them:
the crossings the worker stored with its tier changes (``state.store.FEED``,
``HISTORY``), the same events ``risk.alerts`` carries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.tiers import ALL_TIERS, Crossing
from core.timefmt import rfc3339


def crossing_json(c: Crossing) -> dict[str, Any]:
    return {"user_id": c.user_id, "from": ALL_TIERS[c.frm], "to": ALL_TIERS[c.to],
            "risk": c.risk, "at": rfc3339(c.at_ms), "at_ms": c.at_ms}


def crossings_json(cs: Iterable[Crossing]) -> list[dict[str, Any]]:
    return [crossing_json(c) for c in cs]
