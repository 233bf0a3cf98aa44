"""The console's targeting list: the selection of ``GET /v1/top`` (``api/targeting.py``)
with what a retention manager needs beside each row (top reason, CLV, segment, the
playbook's action) and what the live metrics predict for it."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from api.targeting import TopQuery, risk_items, value_items, window
from api.value import FitCache, segment_of_row
from core.playbook import Playbook
from core.settings import Settings
from state.redis_store import RedisFeatureStore

KS = (5, 10, 20)  # the prequential window's depths (core.prequential.summary)
# rows the page shows (the cards cover the whole selection; the CSV link has every row):
# 10,000 rows of HTML took 750 ms at 1M users (bench/console_pages.py)
SHOWN = 1000


def query_of(params: dict[str, str]) -> tuple[TopQuery, dict[str, str]]:
    """A TopQuery from the form (blank fields left out), and the parameters as given."""
    def num(name: str, kind: type) -> Any:
        v = params.get(name, "").strip()
        return kind(v) if v else None

    q = TopQuery(k=num("k", int), percent=num("percent", float), offset=0,
                 tier=params.get("tier") or None, sort=params.get("sort") or "risk",  # type: ignore[arg-type]
                 min_value_quantile=num("min_value_quantile", float),
                 segment=params.get("segment") or None)
    return q, {k: v for k, v in params.items() if v}


def csv_link(given: dict[str, str]) -> str:
    """/v1/top with the same selection, as CSV: the rows of the page, byte for byte what
    the API gives."""
    return "/v1/top?" + urlencode({**given, "format": "csv"})


async def target_list(store: RedisFeatureStore, settings: Settings, fits: FitCache,
                      playbook: Playbook, metrics: dict[str, Any], q: TopQuery
                      ) -> dict[str, Any]:
    policy = settings.tier_policy()
    n, start, end = await window(store, settings, q)
    if q.value_aware:
        selected, _ = await value_items(fits, policy, n, start, end, q)
        items = selected[:SHOWN]
    else:
        selected = await risk_items(store, policy, n, start, end, q)
        items = selected[:SHOWN]
        fit = await fits.get()
        rows = await fits.store.rows([it["user_id"] for it in items]) if items else []
        for it, row in zip(items, rows, strict=True):
            seg = segment_of_row(fit, row) if fit is not None else None
            it["clv"], it["segment"] = row.clv, seg["name"] if seg else None
            it["expected_saved_value"] = it["risk"] * row.clv if row.clv is not None else None
    reasons = await store.top_reasons([it["user_id"] for it in items])
    for it, why in zip(items, reasons, strict=True):
        it["top_reason"] = why
        a = playbook.action(it.get("segment"), it["tier"])
        it["action"], it["offer"] = a.text, a.offer
    return {"ranked": n, "items": items, "selected": len(selected),
            "prediction": predict(selected, n, metrics)}


def predict(items: list[dict[str, Any]], n: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Expected churners among the rows (their risks are calibrated probabilities), and
    the prequential window's precision and lift at the K % nearest the list's depth."""
    if not items or not n:
        return {"expected_churners": 0.0, "depth_percent": 0.0}
    depth = 100 * max(it["rank"] for it in items) / n
    k = min(KS, key=lambda x: abs(x - depth))
    out = {"expected_churners": math.fsum(it["risk"] for it in items),
           "depth_percent": depth, "k": k,
           "precision": metrics.get(f"precision_at_{k}"),
           "lift": metrics.get(f"lift_at_{k}")}
    return out
