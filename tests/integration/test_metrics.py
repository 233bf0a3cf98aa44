"""/metrics of the worker, the learner and the API during a real replay: the
counters equal the exactly-once counters in Redis, and no label carries a user id."""

from __future__ import annotations

import urllib.request
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from offline.replay import replay
from services.redis_server import free_port
from tests.datagen import generate, write_csv
from tests.integration.conftest import Namespace, http_json, wait_until

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}}."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def total(samples: dict[tuple[tuple[str, str], ...], float], **match: str) -> float:
    return sum(v for labels, v in samples.items()
               if all(dict(labels).get(k) == want for k, want in match.items()))


def test_metrics_of_every_process(namespace: Namespace, tmp_path: Path) -> None:
    ns = namespace
    worker_port, learner_port = free_port(), free_port()
    ns.extra_env.update(CHURN_WORKER_METRICS_PORT=str(worker_port),
                        CHURN_LEARNER_METRICS_PORT=str(learner_port),
                        CHURN_LABEL_SAMPLE_RATE="0.3",
                        CHURN_VALUE_MIN_CUSTOMERS="10",  # fits every 7 event-time days
                        CHURN_LABEL_WARMUP_DAYS="0")  # a short log: snapshots from day 1
    rows = generate(users=400, days=50, seed=4)
    path = tmp_path / "events.csv"
    write_csv(rows, str(path))
    ns.start_worker()
    ns.spawn("learner")
    api = ns.start_api()
    report = replay(path, ns.settings(), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    prod = KafkaProducer(bootstrap_servers=ns.env["CHURN_KAFKA_BOOTSTRAP"], acks="all")
    junk = [b"junk", b"[1]", b'{"user_id": "x", "event_type": "view"}']  # straight to Kafka
    for value in junk:
        prod.send(ns.env["CHURN_EVENTS_TOPIC"], value=value)
    prod.flush()
    prod.close()
    ns.wait_consumed(report.sent + len(junk))
    ns.wait_scored()
    stats = ns.stats()
    r = ns.redis()
    wait_until(lambda: int(r.hget(f"t{ns.name}:model:meta", "examples") or 0)
               == stats["released"], 60, "all released examples learned")
    for uid in list(ns.user_hashes())[:20]:
        http_json(f"{api}/v1/users/{uid.decode()}")
    http_json(f"{api}/v1/users/nobody")

    def settled() -> bool:  # gauges refresh every 5 s, the learner's at checkpoints
        w = scrape(f"http://127.0.0.1:{worker_port}/metrics")
        tiers = {k.decode(): int(v) for k, v in r.hgetall(f"t{ns.name}:tiers").items()}
        return all(total(w["churn_users"], tier=t) == n for t, n in tiers.items())

    wait_until(settled, 30, "tier gauges")
    w = scrape(f"http://127.0.0.1:{worker_port}/metrics")
    ln = scrape(f"http://127.0.0.1:{learner_port}/metrics")
    a = scrape(f"{api}/metrics")

    # worker counters equal the exactly-once counters (one worker, no crash)
    types = {k[5:]: v for k, v in stats.items() if k.startswith("type:")}
    for t, n in types.items():
        assert total(w["churn_events_consumed_total"], type=t) == n, t
    reasons = {k[9:]: v for k, v in stats.items() if k.startswith("rejected:")}
    assert sum(reasons.values()) == len(junk) == stats["rejected"]
    for reason, n in reasons.items():
        assert total(w["churn_events_rejected_total"], reason=reason) == n, reason
    assert total(w["churn_events_duplicate_total"]) == stats["duplicate"]
    assert total(w["churn_events_late_total"], window="inside") == stats["late"]
    assert total(w["churn_events_late_total"], window="outside") == stats["late_outside"]
    assert total(w["churn_tier_transitions_total"]) == stats["alerts"]
    assert total(w["churn_alerts_total"]) == stats["alerts"]
    assert total(w["churn_label_snapshots_total"]) == stats["snapshots"]
    assert total(w["churn_examples_released_total"]) == stats["released"]
    assert total(w["churn_examples_released_total"], label="1") == stats["released_label_1"]
    assert total(w["churn_batch_size_events_sum"]) == report.sent + len(junk)
    assert total(w["churn_event_processing_seconds_count"]) > 0
    assert total(w["churn_event_lag_seconds_count"]) > 0
    assert total(w["churn_redis_seconds_count"], op="apply") > 0
    assert total(w["churn_sweep_seconds_count"]) > 0
    offsets = {int(k): int(v) for k, v in r.hgetall(f"t{ns.name}:offsets").items()}
    for p, off in offsets.items():
        assert total(w["churn_consumer_position"], partition=str(p)) == off

    # learner: what it learned, and the quality of the newest checkpoint
    assert total(ln["churn_examples_learned_total"]) == stats["released"]
    meta = {k.decode(): v.decode() for k, v in r.hgetall(f"t{ns.name}:model:meta").items()}
    assert total(ln["churn_model_version"]) == int(meta["version"])
    assert 0 < total(ln["churn_model_rocauc"]) <= 1

    # learner: the customer-value fits (on the event-time schedule) cover every user
    users = len(ns.user_hashes())

    def value_fitted() -> bool:
        m = scrape(f"http://127.0.0.1:{learner_port}/metrics")
        version = r.hget(f"t{ns.name}:value:meta", "version")
        return (total(m["churn_segment_users"]) == users and version is not None
                and total(m["churn_value_version"]) >= int(version) - 1
                and total(m["churn_value_fits_total"], outcome="fitted") >= 1
                and 0 < total(m["churn_value_customers"]) <= users)

    wait_until(value_fitted, 30, "value fit metrics")

    # api: requests by route template
    assert total(a["churn_api_request_seconds_count"], route="/v1/users/{user_id}",
                 status="200") == 20
    assert total(a["churn_api_request_seconds_count"], route="/v1/users/{user_id}",
                 status="404") == 1

    # no user id in any label of any process
    users = {u.decode() for u in ns.user_hashes()} | {"nobody"}
    for families in (w, ln, a):
        for samples in families.values():
            for labels in samples:
                assert not {v for _, v in labels} & users, labels
