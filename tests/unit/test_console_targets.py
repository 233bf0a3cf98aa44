"""The targeting page's list: at most ``SHOWN`` rows are enriched and shown, while the
cards (selected customers, expected churners) cover the whole selection."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from api.console import targets
from api.console.targets import query_of, target_list
from core.settings import Settings


class FakeStore:
    """The reads the risk-sorted list makes (a unit test: no Redis)."""

    def __init__(self, n: int) -> None:
        self.ranking = [(f"u{i:05d}", 1.0 - i / (2 * n)) for i in range(n)]
        self.reasons_asked = 0

    async def count_ranked(self) -> int:
        return len(self.ranking)

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        return self.ranking[offset:offset + count]

    async def top_reasons(self, ids: list[str]) -> list[str]:
        self.reasons_asked += len(ids)
        return ["days_since_last_event"] * len(ids)


class FakeRows:
    def __init__(self) -> None:
        self.asked = 0

    async def rows(self, ids: list[str]) -> list[Any]:
        from state.value_store import RowInfo

        self.asked += len(ids)
        return [RowInfo(u, None, None, None, None, 0.0, None) for u in ids]


class FakeFits:
    def __init__(self) -> None:
        self.store = FakeRows()

    async def get(self) -> None:
        return None


def test_the_page_shows_the_first_rows_and_counts_them_all(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(targets, "SHOWN", 30)
    store, fits = FakeStore(400), FakeFits()
    q, _ = query_of({"percent": "25"})  # 100 customers
    sel = asyncio.run(target_list(store, Settings(), fits, Settings().playbook(), {}, q))  # type: ignore[arg-type]
    assert sel["selected"] == 100 and len(sel["items"]) == 30
    assert [it["user_id"] for it in sel["items"]] == [u for u, _ in store.ranking[:30]]
    assert store.reasons_asked == fits.store.asked == 30  # only the shown rows are read
    want = math.fsum(r for _, r in store.ranking[:100])
    assert sel["prediction"]["expected_churners"] == want
    assert sel["prediction"]["depth_percent"] == 25.0
