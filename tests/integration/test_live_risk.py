"""Live risk end to end on real Tansu + Redis: worker, learner and API on a simulated
population with known churners, with the worker and the learner SIGKILLed mid-stream.

Phase 1 (days 0-69) is replayed at a fixed rate and both processes are killed and
restarted while it streams; phase 2 (days 70-84) runs undisturbed, so alerts can be
counted exactly there (alerts are at least once across a crash).
"""

from __future__ import annotations

import itertools
import json
import signal
import struct
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from core.tiers import ALL_TIERS
from offline import simulate
from offline.replay import replay
from state.codec import decode_score, decode_state, decode_tier
from tests.integration.conftest import (
    Namespace,
    http_json,
    read_examples,
    read_records,
    wait_until,
)
from tests.reference import DAY, close, ref_event_of_json, reference_examples

pytestmark = pytest.mark.integration
USERS, DAYS, SEED, SPLIT = 800, 85, 11, 70
RATE = 0.5


def _write(path: Path, events: list[dict]) -> None:  # type: ignore[type-arg]
    with open(path, "wb") as fh:
        for line in simulate.to_jsonl(iter(events)):
            fh.write(line)


def _ranks(ns: Namespace) -> dict[str, float]:
    r = ns.redis()
    ranked = r.zrevrange(f"t{ns.name}:rank", 0, -1)
    return {u.decode(): i / len(ranked) for i, u in enumerate(ranked)}


def test_live_risk_with_kills(namespace: Namespace, tmp_path: Path) -> None:
    ns = namespace
    ns.extra_env.update(CHURN_LABEL_SAMPLE_RATE=str(RATE), CHURN_MIN_LABELS="500",
                        CHURN_LABEL_WARMUP_DAYS="0",
                        CHURN_LEARNER_CHECKPOINT_EVERY="500",
                        CHURN_LEARNER_CHECKPOINT_SECONDS="1", CHURN_MODEL_POLL_SECONDS="0.5")
    truth = {u.user_id: u for u in simulate.Population(USERS, DAYS, SEED).truth()}
    events = list(simulate.events(USERS, DAYS, SEED))
    split_ms = simulate.START_MS + SPLIT * DAY
    first = [e for e in events if int(e["event_time"]) < split_ms]  # type: ignore[call-overload]
    second = events[len(first):]
    assert all(int(e["event_time"]) >= split_ms for e in second)  # type: ignore[call-overload]
    _write(tmp_path / "p1.jsonl", first)
    _write(tmp_path / "p2.jsonl", second)

    r = ns.redis()
    meta = f"t{ns.name}:model:meta"
    versions: list[int] = []
    stop = threading.Event()

    def watch_versions() -> None:  # the model version as workers would see it
        while not stop.is_set():
            versions.append(int(r.hget(meta, "version") or 0))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_versions, daemon=True)
    watcher.start()
    worker, learner = ns.start_worker(), ns.spawn("learner")
    api = ns.start_api()
    sender = threading.Thread(target=replay, args=(tmp_path / "p1.jsonl", ns.settings()),
                              kwargs={"progress": False, "rate": 6000})
    sender.start()
    wait_until(lambda: int(r.hget(meta, "version") or 0) >= 2, 180, "two model versions")
    assert ns.consumed() < len(first), "kill mid-stream"
    worker.send_signal(signal.SIGKILL)
    learner.send_signal(signal.SIGKILL)
    worker.wait()
    learner.wait()
    killed_version = int(r.hget(meta, "version"))
    ns.start_worker()
    learner = ns.spawn("learner")
    sender.join()
    ns.wait_consumed(len(first))
    ns.wait_scored()

    # --- the state between the phases
    hashes1 = ns.user_hashes()
    ranks1 = _ranks(ns)
    tiers1 = {u.decode(): ALL_TIERS[decode_tier(h[b"t"]).tier] for u, h in hashes1.items()}
    last1 = {u.decode(): decode_state(h).last_ms for u, h in hashes1.items()}  # type: ignore[union-attr]
    alerts_before = ns.stats()["alerts"]

    replay(tmp_path / "p2.jsonl", ns.settings(), progress=False)
    ns.wait_consumed(len(events))
    ns.wait_scored()
    stats = ns.stats()
    ns.wait_learned()
    stop.set()
    watcher.join()

    # --- learner: exactly the released examples, versions only go up
    code, model = http_json(api + "/v1/model")
    assert code == 200 and model["examples"] == stats["released"] > 5000
    assert model["labels"]["0"] + model["labels"]["1"] == model["examples"]
    # a learned candidate speaks (the champion: core.champion), not the cold-start rule
    assert model["scorer"] == model["champion"] != "rule:recency-frequency"
    assert model["version"] > killed_version
    assert set(model["candidates"]) == {"model:logreg", "stacked:logreg", "bgnbd", "recency",
                                        "blend", "rule:recency-frequency", "batch:hgb"}
    assert versions == sorted(versions) and killed_version < versions[-1] <= model["version"]
    assert model["metrics"]["rocauc"] > 0.8, model["metrics"]
    assert model["metrics"]["lift_at_5"] > 3, model["metrics"]
    # ... and the released examples are exactly those of the reference, despite the kills
    got = read_examples(ns, stats["released"])
    parts: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for p, _, _, value in read_records(ns.env["CHURN_KAFKA_BOOTSTRAP"],
                                       ns.env["CHURN_EVENTS_TOPIC"], len(events)):
        parts[p].append(ref_event_of_json(value))
    want = reference_examples(parts, 30, RATE)
    assert got.keys() == want.keys() and len(got) == stats["released"]
    for key, ex in got.items():
        assert ex["label"] == want[key][0], key
        mine = {**ex["features"], **ex["long"]}  # the 17 and the long-range inputs
        assert all(close(mine[n], float(v)) for n, v in want[key][1].items()), key

    # --- silent users climb the ranking as days pass without any event of theirs
    hashes2 = ns.user_hashes()
    ranks2 = _ranks(ns)
    clock = ns.clock()
    silent = [u for u, last in last1.items()
              if split_ms - 10 * DAY <= last < split_ms - DAY
              and decode_state(hashes2[u.encode()]).last_ms == last  # type: ignore[union-attr]
              and u in ranks1 and u in ranks2]
    assert len(silent) >= 20
    climbed = sum(ranks2[u] < ranks1[u] for u in silent)
    assert climbed >= 0.9 * len(silent), (climbed, len(silent))
    for u in silent:  # rescored by the sweeper at its partition's last anchor
        as_of = decode_score(hashes2[u.encode()][b"s"]).as_of_ms
        assert as_of % DAY == 0 and as_of in {clock[k] for k in clock if k.startswith("s:")}

    # --- churners reach a high tier before their H days are up
    alerts = [json.loads(v) for _, _, _, v in read_records(
        ns.env["CHURN_KAFKA_BOOTSTRAP"], ns.env["CHURN_ALERTS_TOPIC"], stats["alerts"])]
    by_user: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for a in alerts:
        by_user[a["user_id"]].append(a)
    final_last = {u.decode(): decode_state(h).last_ms for u, h in hashes2.items()}  # type: ignore[union-attr]
    churners = [u for u, t in truth.items() if t.churn_day is not None and u in final_last
                and (final_last[u] - simulate.START_MS) // DAY + 31 < DAYS]
    assert len(churners) >= 50
    early = 0
    for u in churners:
        deadline = final_last[u] + 30 * DAY
        early += any((a["to"] in ("critical", "high") and a["at_ms"] < deadline)
                     or (a["to"] == "churned" and a["from"] in ("critical", "high"))
                     for a in by_user[u])
    assert early >= 0.8 * len(churners), (early, len(churners))

    # --- phase 2 (no crash): alerts are exactly the stored tier changes
    # a user's alerts share a partition (key = user id), so they come in order
    per_user: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for a in alerts:
        if a["at_ms"] >= split_ms:  # every phase-2 alert is about a time after the split
            per_user[a["user_id"]].append(a)
    assert sum(map(len, per_user.values())) == stats["alerts"] - alerts_before
    assert sum(v for k, v in stats.items() if k.startswith("transition:")) == stats["alerts"]
    for u, chain in per_user.items():
        if u in tiers1:  # continues from the stored tier (a new user's first is silent)
            assert chain[0]["from"] == tiers1[u], u
        for a, b in itertools.pairwise(chain):
            assert a["to"] == b["from"], u
        assert chain[-1]["to"] == ALL_TIERS[decode_tier(hashes2[u.encode()][b"t"]).tier], u
        per_day = Counter(a["at_ms"] // DAY for a in chain
                          if "churned" not in (a["from"], a["to"]))
        assert max(per_day.values(), default=0) <= 3, u  # CHURN_ALERTS_PER_DAY

    # --- Top-K equals an independent sort of every stored risk; tiers by definition
    stored = {u.decode(): struct.unpack_from("<d", h[b"s"])[0] for u, h in hashes2.items()
              if decode_tier(h[b"t"]).tier != ALL_TIERS.index("churned")}
    want_rank = sorted(stored.items(), key=lambda ur: (ur[1], ur[0].encode()), reverse=True)
    code, page = http_json(f"{api}/v1/top?k={len(want_rank)}")
    assert [(i["user_id"], i["risk"]) for i in page["items"]] == want_rank
    n = len(want_rank)
    for item in page["items"]:
        share = (item["rank"] - 1) / n
        assert item["tier"] == ("critical" if share < 0.05 else "high" if share < 0.15
                                else "elevated" if share < 0.30 else "low")
    top = page["items"][0]["user_id"]
    code, one = http_json(f"{api}/v1/users/{urllib.parse.quote(top)}")
    assert code == 200 and one["scorer"] == model["champion"] and one["model_version"] > 0
    assert one["tier"] == "critical" and 1 <= len(one["reasons"]) <= 3
    assert all(r["text"] and r["contribution"] > 0 for r in one["reasons"])
