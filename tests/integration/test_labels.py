"""Labels without leakage or timing bias, on real Tansu + Redis + worker + learner.

The released training examples are compared with an independent reference
(tests/reference.py) that replays the events topic partition by partition from
docs/design.md section 5 alone; a hand-made log then walks the adversarial cases one
step at a time.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path

import pytest

from offline.replay import replay
from stream.topics import ensure_topics
from tests.datagen import generate, write_csv
from tests.integration.conftest import (
    Namespace,
    read_examples,
    read_records,
    read_topic,
    wait_until,
)
from tests.reference import DAY, close, ref_event_of_json, reference_examples

pytestmark = pytest.mark.integration


def test_released_examples_equal_the_reference(namespace: Namespace, tmp_path: Path) -> None:
    rows = generate(users=1100, days=65, seed=1)  # late, out-of-horizon and duplicate events
    path = tmp_path / "events.csv"
    write_csv(rows, str(path))
    rate = 0.3
    namespace.extra_env.update(CHURN_LABEL_SAMPLE_RATE=str(rate), CHURN_MIN_LABELS="100000",
                               CHURN_LABEL_WARMUP_DAYS="5")  # no snapshots in days 1-4
    namespace.start_worker()
    learner = namespace.spawn("learner")
    report = replay(path, namespace.settings(), progress=False)
    namespace.wait_consumed(report.sent)
    namespace.wait_scored()
    stats = namespace.stats()
    assert stats["released"] > 3000 and 0 < stats["released_label_1"] < stats["released"]
    got = read_examples(namespace, stats["released"])
    assert len(got) == stats["released"]

    records = read_records(namespace.env["CHURN_KAFKA_BOOTSTRAP"],
                           namespace.env["CHURN_EVENTS_TOPIC"], report.sent)
    assert len(records) == report.sent
    partitions: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for p, _, _, value in records:
        partitions[p].append(ref_event_of_json(value))
    want = reference_examples(partitions, 30, rate, warmup_days=5)
    assert got.keys() == want.keys()
    for key, ex in got.items():
        label, feats = want[key]
        assert ex["label"] == label, key
        assert ex["release"] == key[1] + 30 * DAY  # both classes wait exactly H
        mine = {**ex["features"], **ex["long"]}  # the 17, the long-range inputs
        bad = {n: (mine[n], v) for n, v in feats.items() if not close(mine[n], float(v))}
        assert not bad, (key, bad)
    # the learner learned each released example once
    r, meta = namespace.redis(), namespace.model_meta
    wait_until(lambda: int(r.hget(meta, "examples") or 0) == len(got), 60, "all learned")
    learner.terminate()
    assert learner.wait(30) == 0


def _send(ns: Namespace, events: list[tuple[str, int]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    prod = KafkaProducer(bootstrap_servers=ns.env["CHURN_KAFKA_BOOTSTRAP"], acks="all")
    for i, (user, t) in enumerate(events):
        body = {"event_id": f"{user}-{t}-{i}", "user_id": user, "event_type": "view",
                "event_time": t}
        prod.send(ns.env["CHURN_EVENTS_TOPIC"], key=user.encode(), value=json.dumps(body).encode())
    prod.flush()
    prod.close()


def test_adversarial_labels_step_by_step(namespace: Namespace) -> None:
    """H = 2 days, every active user snapshotted, one partition (one clock).

    Anchor A1 = T + 1d snapshots a..e. Then: a returns inside (A1, A1 + H]; b returns
    at exactly A1 + H (inside: label 0); c's only later event is a late one from
    before A1 (not a return, and not in its snapshot); d returns 1 ms after A1 + H
    (too late: label 1; that event is what releases A1's snapshots); e never returns
    in time, and its late event from inside the horizon arrives after the release.
    """
    namespace.extra_env.update(CHURN_PARTITIONS="1", CHURN_LABEL_WARMUP_DAYS="0",
                               CHURN_HORIZON_DAYS="2",
                               CHURN_LABEL_SAMPLE_RATE="1.0", CHURN_RETENTION_DAYS="0")
    # one event of one user steps the clock by days here: trust every record (core.clock)
    namespace.extra_env["CHURN_CLOCK_CONFIRM_USERS"] = "1"
    ensure_topics(namespace.settings())  # one partition (a produce would create four)
    namespace.start_worker()
    t0 = 18_300 * DAY
    h = 2 * DAY
    a1 = t0 + DAY
    hour = 3_600_000
    step1 = [(u, t0 + hour) for u in "abcde"] + [("x", a1 + hour), ("c", t0 + 2 * hour),
                                                 ("a", a1 + 5 * hour), ("b", a1 + h)]
    _send(namespace, step1)
    namespace.wait_consumed(len(step1))
    namespace.wait_scored()
    stats = namespace.stats()
    # A1 and A1 + 1d were anchors (b's event at A1 + 2d passed A1 + 1d); A1 + H is not yet
    assert stats["anchors"] == 2 and stats.get("released", 0) == 0
    assert read_topic(namespace.env["CHURN_KAFKA_BOOTSTRAP"],
                      namespace.env["CHURN_TRAINING_TOPIC"], 1, timeout=3) == []

    step2 = [("d", a1 + h + 1), ("e", a1 + DAY)]
    _send(namespace, step2)
    namespace.wait_consumed(len(step1) + len(step2))
    namespace.wait_scored()
    got = read_examples(namespace, 5)
    first = {u: ex for (_, t, u), ex in got.items() if t == a1}
    assert {u: ex["label"] for u, ex in first.items()} == {"a": 0, "b": 0, "c": 1, "d": 1,
                                                          "e": 1}
    for u, ex in first.items():
        assert ex["release"] == a1 + h
        f = ex["features"]
        # only what was known at A1: one event each, 23 hours before the anchor
        assert (f["n_events_30d"], f["days_since_last_event"]) == (1, 23 / 24), u
    assert len(got) == 5  # nothing else is due before A1 + 1d + H
    assert namespace.stats()["released"] == 5
