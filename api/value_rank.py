"""Value-aware Top-K for ``GET /v1/top``: sort by CLV or by expected saved value
(risk x CLV), and filter by value quantile or RFM segment.

CLVs come from the value index (``state/value_store.py``: the last fit's CLV of every
customer); risks from the live ranking. Expected saved value is ranked exactly without
reading everyone: Fagin's threshold algorithm walks both sorted sets in step, scores each
user seen in either, and stops once the K-th best product is at least the product of the
two current depths (no unseen user can beat it).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Literal

from api.value import segment_of_row
from state.value_store import RowInfo, ValueFit, ValueStore

Sort = Literal["risk", "value", "saved_value"]
CHUNK = 256


def _keep(fit: ValueFit | None, min_clv: float | None, segment: str | None
          ) -> Callable[[RowInfo], bool]:
    def keep(row: RowInfo) -> bool:
        if row.risk is None:  # not ranked (churned, or not scored yet)
            return False
        if min_clv is not None and (row.clv is None or row.clv < min_clv):
            return False
        if segment is not None:
            seg = segment_of_row(fit, row) if fit is not None else None
            return seg is not None and seg["name"] == segment
        return True
    return keep


async def _walk(vs: ValueStore, key: str, start: int, stop: int | None, need: int,
                keep: Callable[[RowInfo], bool]) -> list[RowInfo]:
    """The first ``need`` kept users of one sorted set in ``[start, stop)``, in its order."""
    out: list[RowInfo] = []
    pos = start
    while len(out) < need and (stop is None or pos < stop):
        count = CHUNK if stop is None else min(CHUNK, stop - pos)
        ids = [u for u, _ in await vs.desc(key, pos, count)]
        if not ids:
            break
        pos += len(ids)
        out.extend(r for r in await vs.rows(ids) if keep(r))
    return out[:need]


async def _saved_value(vs: ValueStore, need: int, keep: Callable[[RowInfo], bool]
                       ) -> list[RowInfo]:
    best: list[tuple[float, str, RowInfo]] = []  # min-heap of the best `need` products
    seen: set[str] = set()
    depth = 0
    while True:
        by_risk = await vs.desc(vs.keys.rank, depth, CHUNK)
        by_value = await vs.desc(vs.index_key, depth, CHUNK)
        if not by_risk or not by_value:
            break  # one list is exhausted: every user with a product has been seen
        depth += CHUNK
        new = [u for u in dict.fromkeys(u for u, _ in by_risk + by_value) if u not in seen]
        seen.update(new)
        for row in await vs.rows(new) if new else []:
            if row.clv is not None and keep(row):
                item = (row.risk * row.clv, row.user_id, row)  # type: ignore[operator]
                if len(best) < need:
                    heapq.heappush(best, item)
                elif item[:2] > best[0][:2]:
                    heapq.heapreplace(best, item)
        bound = by_risk[-1][1] * by_value[-1][1]
        if len(best) >= need and best[0][0] >= bound:
            break
    return [row for _, _, row in sorted(best, key=lambda t: (-t[0], t[1]))]


async def value_page(vs: ValueStore, fit: ValueFit | None, sort: Sort, offset: int, k: int,
                     min_value_quantile: float | None, segment: str | None,
                     tier_range: tuple[int, int] | None = None
                     ) -> tuple[list[RowInfo], float | None]:
    """Rows ``offset .. offset + k`` of the selection and the CLV threshold used; within
    the risk ranks ``tier_range`` when given."""
    min_clv = None
    if min_value_quantile is not None:
        min_clv = await vs.threshold(min_value_quantile)
        if min_clv is None:
            return [], None
    keep = _keep(fit, min_clv, segment)
    if tier_range is not None:
        lo, hi = tier_range
        inner = keep

        def keep(row: RowInfo) -> bool:
            return row.rank is not None and lo <= row.rank < hi and inner(row)
    need = offset + k
    if sort == "saved_value":
        rows = await _saved_value(vs, need, keep)
    else:
        key = vs.keys.rank if sort == "risk" else vs.index_key
        start, stop = tier_range if sort == "risk" and tier_range is not None else (0, None)
        rows = await _walk(vs, key, start, stop, need, keep)
    return rows[offset:need], min_clv


def row_json(row: RowInfo, fit: ValueFit | None, n: int,
             position: Callable[[int, int, float], tuple[float, str]]) -> dict[str, Any]:
    assert row.rank is not None and row.risk is not None
    pct, tier = position(row.rank, n, row.risk)
    return {"user_id": row.user_id, "rank": row.rank + 1, "risk": row.risk, "percentile": pct,
            "tier": tier, "clv": row.clv,
            "expected_saved_value": row.risk * row.clv if row.clv is not None else None,
            "segment": segment_of_row(fit, row)["name"]
            if fit is not None else None}
