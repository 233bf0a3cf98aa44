"""The generated log through replay parsing + the in-memory store equals the reference.

The same check runs over Kafka + Redis + worker + API in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from core.events import Rejected
from core.features import features_at
from offline.replay import read_rows, validate_row
from state.memory_store import MemoryFeatureStore
from state.store import Item
from tests.datagen import generate, write_csv
from tests.reference import DAY, Reference, mismatches


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    rows = generate(users=300, days=64, seed=3)
    path = tmp_path_factory.mktemp("log") / "events.csv"
    write_csv(rows, str(path))
    return path, rows


def test_replay_parsing_matches_truth(log: tuple[Path, list]) -> None:
    path, rows = log
    got_reasons: Counter[str] = Counter()
    n_valid = 0
    allowed = frozenset({"view", "cart", "remove_from_cart", "purchase"})
    for _line, payload, reason in read_rows(path):
        if payload is not None:
            ev = validate_row(payload, allowed)
            reason = ev.reason if isinstance(ev, Rejected) else None
        if reason:
            got_reasons[reason] += 1
        else:
            n_valid += 1
    assert n_valid == sum(1 for r in rows if r.event is not None)
    assert got_reasons == Counter(r.reason for r in rows if r.reason)


def test_memory_store_equals_reference(log: tuple[Path, list]) -> None:
    path, rows = log
    allowed = frozenset({"view", "cart", "remove_from_cart", "purchase"})
    store = MemoryFeatureStore()
    items = []
    for off, (_l, payload, _r) in enumerate(read_rows(path)):
        ev = validate_row(payload, allowed) if payload is not None else None
        if ev is not None and not isinstance(ev, Rejected):
            items.append(Item(ev, 0, off))
    asyncio.run(store.apply(items))
    ref = Reference()
    for r in rows:
        if r.event is not None:
            ref.add(r.event)
    stats = asyncio.run(store.stats())
    assert {k: stats.get(k, 0) for k in ref.counts} == dict(ref.counts)
    assert ref.counts["late_outside"] > 0 and ref.counts["duplicate"] > 0
    assert len(store.users) == len(ref.users)
    for uid, mu in store.users.items():
        for now in (mu.state.last_ms, mu.state.last_ms + 9 * DAY + 17):
            bad = mismatches(features_at(mu.state, now), ref.features(uid, now))
            assert not bad, (uid, now, bad)
