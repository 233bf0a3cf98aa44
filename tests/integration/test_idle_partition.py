"""An idle partition on the real worker (Tansu + Redis + worker): partition X's users go
quiet on day 15 while the others go on to day 40; after CHURN_IDLE_PARTITION_SECONDS
its anchors follow the others, so its users are swept, churned and labelled. Every
released example equals the independent reference (tests/reference.py), which runs
each partition's anchors from its own events and then, for a partition whose clock
moved on without them, up to where the worker's clock stands."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from offline.replay import replay
from tests.datagen import START, generate, write_csv
from tests.integration.conftest import Namespace, read_examples, read_records, wait_until
from tests.reference import DAY, ref_event_of_json, reference_examples

pytestmark = pytest.mark.integration
H = 7


def test_an_idle_partition_follows_the_others(namespace: Namespace, tmp_path: Path) -> None:
    namespace.extra_env.update(CHURN_IDLE_PARTITION_SECONDS="3", CHURN_HORIZON_DAYS=str(H),
                               CHURN_LABEL_SAMPLE_RATE="1", CHURN_MIN_LABELS="100000",
                               CHURN_LABEL_WARMUP_DAYS="3")
    rows = [r for r in generate(users=300, days=40, seed=7) if r.event is not None]
    cut = START + 15 * DAY
    settings, bootstrap = namespace.settings(), namespace.env["CHURN_KAFKA_BOOTSTRAP"]
    topic = namespace.env["CHURN_EVENTS_TOPIC"]
    namespace.start_worker()
    first = tmp_path / "first.csv"
    write_csv([r for r in rows if r.event.t <= cut], str(first))
    sent = replay(first, settings, progress=False).sent
    namespace.wait_consumed(sent)
    part_of = {json.loads(v)["user_id"]: p for p, _, _, v in read_records(bootstrap, topic, sent)}
    idle = part_of[rows[0].event.user_id]
    rest = tmp_path / "rest.csv"
    write_csv([r for r in rows if r.event.t > cut
               and part_of.get(r.event.user_id, idle) != idle], str(rest))
    sent += replay(rest, settings, progress=False).sent
    namespace.wait_consumed(sent)

    r = namespace.redis()
    wms = {int(p): int(t) for p, t in r.hgetall(f"t{namespace.name}:watermark").items()}
    others = min(t for p, t in wms.items() if p != idle)
    assert wms[idle] <= cut < others - 20 * DAY
    last = others - 1 - (others - 1) % DAY  # the last midnight before every other clock

    wait_until(lambda: namespace.clock().get(f"a:{idle}", 0) >= last, 30,
               f"partition {idle} follows the others")
    namespace.wait_scored()
    clock = namespace.clock()
    stats = namespace.stats()
    got = read_examples(namespace, stats["released"])
    records = read_records(bootstrap, topic, sent)
    partitions: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for p, _, _, value in records:
        partitions[p].append(ref_event_of_json(value))
    # each partition's clock as the worker left it (the idle one moved on without events)
    until = {p: clock[f"a:{p}"] + 1 for p in partitions}
    want = reference_examples(partitions, H, 1.0, warmup_days=3, until=until)
    assert got.keys() == want.keys()
    assert all(ex["label"] == want[key][0] for key, ex in got.items())
    quiet = {k for k in got if k[0] == idle and k[1] > cut}
    assert len(quiet) > 20 and {got[k]["label"] for k in quiet} == {1}
    # without following, the idle partition would have stopped at its own last event
    assert clock[f"a:{idle}"] >= last > wms[idle] + H * DAY
    # silent for more than H days by the clock it followed: every user of it churned
    rank = f"t{namespace.name}:rank"
    mine = [u for u, p in part_of.items() if p == idle]
    assert mine and all(r.zscore(rank, u) is None for u in mine)
    assert r.zcard(rank) > 0
