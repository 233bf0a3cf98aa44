"""Kafka -> worker -> Redis -> API against an independent reference, on real services."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import signal
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.routes.ranking import TopPage
from api.schemas import UserRisk
from core.tiers import ALL_TIERS
from core.timefmt import parse_time
from offline.replay import ReplayReport, replay
from services.redis_server import RedisServer
from tests.datagen import Row, generate, write_csv
from tests.integration.conftest import Namespace, http_json, read_topic, wait_until
from tests.reference import DAY, Reference, mismatches, month_index, monthly_rows, read_raw_csv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row], Reference]:
    rows = generate(users=1100, days=65, seed=1)
    path = tmp_path_factory.mktemp("log") / "events.csv"
    write_csv(rows, str(path))
    ref = Reference()  # from the raw file, parsed without production code
    for ev in read_raw_csv(str(path)):
        if ev is not None:
            ref.add(ev)
    return path, rows, ref


def replayed(ns: Namespace, path: Path) -> Iterator[tuple[Namespace, ReplayReport]]:
    """One uninterrupted run on ``ns``: its worker, the whole log replayed, the API up."""
    try:
        ns.start_worker()
        ns.start_api()
        report = replay(path, ns.settings(), progress=False)
        ns.wait_consumed(report.sent)
        ns.wait_scored()
        yield ns, report
    finally:
        ns.stop()


@pytest.fixture(scope="module")
def baseline(services, log, tmp_path_factory) -> Iterator[tuple[Namespace, ReplayReport]]:  # type: ignore[no-untyped-def]
    """One uninterrupted run: one worker, the whole log replayed, the API up."""
    yield from replayed(Namespace(services, tmp_path_factory.mktemp("baseline")), log[0])


def test_log_shape(log) -> None:  # type: ignore[no-untyped-def]
    path, rows, ref = log
    # the independent parse of the raw file agrees with the generator's ground truth
    assert read_raw_csv(str(path)) == [r.event for r in rows]
    assert len(ref.users) >= 1000
    assert sum(1 for r in rows if r.event) >= 30_000
    times = [r.event.t for r in rows if r.event]
    assert (max(times) - min(times)) / DAY >= 60
    for kind in ("late", "late_outside", "duplicate"):
        assert ref.counts[kind] > 0, kind


def test_nothing_lost_nothing_doubled(baseline, log) -> None:  # type: ignore[no-untyped-def]
    ns, report = baseline
    _, rows, ref = log
    truth = Counter(r.reason for r in rows if r.reason)
    assert report.rows == len(rows)
    assert report.rejected == truth
    assert report.sent == len(rows) - sum(truth.values())
    code, status = http_json(ns.api_url + "/v1/status")
    assert code == 200
    assert status["events_consumed"] == report.sent
    assert status["events_consumed"] == (status["events_applied"] + status["events_duplicate"]
                                         + status["events_rejected"])
    assert status["events_duplicate"] == ref.counts["duplicate"]
    assert status["events_late"] == ref.counts["late"] + ref.counts["late_outside"]
    assert status["events_late_outside_window"] == ref.counts["late_outside"]
    assert status["events_rejected"] == 0  # replay validated; its rejects went to the DLQ
    assert status["watermark_ms"] == max(r.event.t for r in rows if r.event)
    dlq = [json.loads(v) for v in read_topic(ns.svc.broker.bootstrap, f"dlq-{ns.name}",
                                             sum(truth.values()))]
    assert Counter(d["reason"] for d in dlq) == truth
    assert all("raw" in d for d in dlq)


def test_every_feature_of_every_user(baseline, log) -> None:  # type: ignore[no-untyped-def]
    ns, _ = baseline
    _, _, ref = log
    later = max(u.newest for u in ref.users.values()) + 3 * DAY + 12345
    rng = random.Random(5)
    for uid in ref.users:
        code, body = http_json(f"{ns.api_url}/v1/users/{urllib.parse.quote(uid)}")
        assert code == 200, body
        UserRisk.model_validate(body, strict=True)  # the documented response model
        # the stored score: at the newest event, or at the sweep of the partition's last
        # anchor (a UTC midnight), or at the user's churn anchor
        now = parse_time(body["as_of"])
        newest = ref.users[uid].newest
        assert now == newest or (now > newest and now % DAY == 0), (uid, body["as_of"])
        assert not mismatches(body["features"], ref.features(uid, now)), uid
        assert not mismatches(body["long_range"], ref.long_range(uid, now)), uid
        assert body["scorer"] == "rule:recency-frequency" and body["model_version"] == 0
        assert [r["feature"] for r in body["reasons"]] and all(r["text"] for r in body["reasons"])
        want = ref.features(uid, now)
        assert body["risk"] == pytest.approx(
            0.6 * min(1, want["days_since_last_event"] / 30)
            + 0.4 * (1 - (max(1, min(30, want["active_days_30d"])) - 1) / 29), abs=1e-11)
        if rng.random() < 0.2:  # a later reference time: windows slide, recency grows
            code, body = http_json(f"{ns.api_url}/v1/users/{uid}?as_of={later}")
            assert code == 200
            assert not mismatches(body["features"], ref.features(uid, later)), uid
            assert not mismatches(body["long_range"], ref.long_range(uid, later)), uid


def test_the_monthly_picture_equals_the_raw_log(baseline, log) -> None:  # type: ignore[no-untyped-def]
    """GET /v1/overview (JSON and CSV) against the months of every user's counted events
    in the raw file (duplicates and events outside the 30-day horizon left out)."""
    ns, _ = baseline
    _, _, ref = log
    months_of = {uid: {month_index(e.t) for e, _ in u.kept} for uid, u in ref.users.items()}
    rows, cohorts = monthly_rows(months_of)
    assert len(rows) >= 3 and sum(r["returning"] for r in rows) > 0  # type: ignore[misc]
    code, body = http_json(ns.api_url + "/v1/overview")
    assert code == 200
    assert body["months"] == rows and body["cohorts"] == cohorts
    tiers = http_json(ns.api_url + "/v1/tiers")[1]
    assert body["tiers"] == {**{t: v["count"] for t, v in tiers["tiers"].items()},
                             "churned": tiers["churned"]}
    with urllib.request.urlopen(ns.api_url + "/v1/overview?format=csv") as resp:
        got = list(csv.DictReader(io.StringIO(resp.read().decode())))
    assert [{k: v for k, v in r.items()} for r in got] == [
        {k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


@pytest.fixture(scope="module")
def fitted(baseline):  # type: ignore[no-untyped-def]
    """`churnstream fit-value` run once on the replayed log."""
    from state.value_store import ValueFit

    ns, _ = baseline
    fitter = ns.spawn("fit-value")
    assert fitter.wait(120) == 0, ns.logs[-1].read_text()
    time.sleep(2.2)  # the API re-reads the fit at most every 2 s
    return ValueFit.from_json(ns.redis().hget(f"t{ns.name}:value:meta", "fit"))


def test_value_and_segment_of_every_user(baseline, log, fitted) -> None:  # type: ignore[no-untyped-def]
    """After `churnstream fit-value`: each user's value block and RFM segment equal the
    formulas applied to the reference's purchase summary, under the stored fit."""
    from core import segments
    from core.settings import Settings
    from core.value import ValueInputs, user_value

    ns, _ = baseline
    _, _, ref = log
    fit = fitted
    assert fit.params.customers == sum(1 for u in ref.users.values() if u.purchase_days) > 100
    d = Settings()
    customers = 0
    for uid in ref.users:
        code, body = http_json(f"{ns.api_url}/v1/users/{urllib.parse.quote(uid)}")
        assert code == 200
        UserRisk.model_validate(body, strict=True)
        now = parse_time(body["as_of"])
        want = ref.value_summary(uid, now)
        if want is None:
            assert body["value"] is None and body["segment"]["name"] == "prospect"
            continue
        customers += 1
        x, t_x, T, n, spend = want
        v = body["value"]
        assert (v["repeat_purchase_days"], v["t_x_days"], v["age_days"],
                v["valued_purchase_days"]) == (x, t_x, T, n)
        uv = user_value(fit.params, ValueInputs(x, t_x, T, n, spend), d.churn_horizon_days,
                        d.value_clv_days, d.value_discount)
        for name, expect in uv._asdict().items():
            assert v[name] == pytest.approx(expect, rel=1e-9, abs=1e-12), (uid, name)
        assert body["expected_saved_value"] == pytest.approx(body["risk"] * uv.clv, rel=1e-9)
        days, today = ref.users[uid].purchase_days, now // DAY
        freq = sum(1 for dd in days if today - fit.frequency_days < dd <= today)
        r, f, m = segments.scores(fit.cuts, today - max(days), freq, spend / n if n else 0.0)
        assert body["segment"] == {"name": segments.persona(r, f), "r": r, "f": f, "m": m}
    assert customers == fit.params.customers


def test_value_targeting_equals_brute_force(baseline, fitted) -> None:  # type: ignore[no-untyped-def]
    """/v1/top by CLV, by risk x CLV (threshold algorithm), within the top value quartile
    and within a segment, against sorts over the whole rank and value indexes."""
    ns, _ = baseline
    r = ns.redis()
    order = [u.decode() for u in r.zrevrange(f"t{ns.name}:rank", 0, -1)]
    risk = {u.decode(): s for u, s in r.zrange(f"t{ns.name}:rank", 0, -1, withscores=True)}
    clv = {u.decode(): s for u, s in r.zrange(f"t{ns.name}:value", 0, -1, withscores=True)}
    assert len(clv) == fitted.params.customers

    def top(query: str) -> list[str]:
        code, body = http_json(f"{ns.api_url}/v1/top?{query}")
        assert code == 200, body
        TopPage.model_validate(body)
        assert body["value_fit_version"] == fitted.params.version
        return [it["user_id"] for it in body["items"]]

    saved = sorted((u for u in risk if u in clv), key=lambda u: (-risk[u] * clv[u], u))
    assert top("sort=saved_value&k=40") == saved[:40]
    assert top("sort=saved_value&k=10&offset=15") == saved[15:25]
    by_value = [u.decode() for u in r.zrevrange(f"t{ns.name}:value", 0, -1)]
    assert top("sort=value&k=30") == [u for u in by_value if u in risk][:30]
    cut = sorted(clv.values(), reverse=True)[math.ceil(0.25 * len(clv)) - 1]
    assert top("min_value_quantile=0.75&k=30") == [u for u in order if clv.get(u, -1) >= cut][:30]
    # a segment: every user listed has it, and no riskier ranked user does
    code, seg = http_json(f"{ns.api_url}/v1/segments")
    assert code == 200 and seg["fit_version"] == fitted.params.version
    name = max((s for s in seg["segments"] if s != "prospect"), key=seg["segments"].get)
    got = top(f"segment={name}&k=15")
    assert len(got) == 15
    upto = order.index(got[-1])
    want = [u for u in order[:upto + 1]
            if http_json(f"{ns.api_url}/v1/users/{u}")[1]["segment"]["name"] == name]
    assert got == want
    # a value query reads at most 100,000 rows deep: the page stops there and says so
    code, body = http_json(f"{ns.api_url}/v1/top?sort=value&offset=100000&k=1")
    assert code == 200 and body["items"] == [] and body["truncated"] is True
    assert body["max_depth"] == 100_000
    assert http_json(f"{ns.api_url}/v1/top?sort=value&k=1")[1]["truncated"] is False
    # bad value queries: a clear 422 each
    for query in ("sort=clv", "segment=whales", "min_value_quantile=1",
                  "min_value_quantile=-0.1", "sort=value&offset=1000000001"):
        code, body = http_json(f"{ns.api_url}/v1/top?{query}")
        assert code == 422, query


def test_unknown_user_and_bad_as_of(baseline, log) -> None:  # type: ignore[no-untyped-def]
    ns, _ = baseline
    uid = next(iter(log[2].users))
    assert http_json(ns.api_url + "/v1/users/nobody-here")[0] == 404
    code, body = http_json(f"{ns.api_url}/v1/users/{uid}?as_of=2001-01-01T00:00:00Z")
    assert code == 409 and body["detail"]["error"] == "as_of_before_newest_event"
    assert http_json(f"{ns.api_url}/v1/users/{uid}?as_of=not-a-time")[0] == 422
    code, ready = http_json(ns.api_url + "/readyz")
    assert code == 200 and ready["checks"] == {"redis": "ok", "kafka": "ok", "workers": "ok"}


def test_sigkill_mid_replay_gives_identical_state(baseline, log, namespace) -> None:  # type: ignore[no-untyped-def]
    base_ns, report = baseline
    worker = namespace.start_worker()
    sender = threading.Thread(target=replay, args=(log[0], namespace.settings()),
                              kwargs={"progress": False, "rate": 15000})
    sender.start()
    wait_until(lambda: namespace.consumed() > report.sent // 4, 120, "a quarter consumed")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = namespace.consumed()
    assert killed_at < report.sent
    namespace.start_worker()
    sender.join()
    namespace.wait_consumed(report.sent)
    namespace.wait_scored()
    assert namespace.consumed() == report.sent
    assert _stable(namespace.stats()) == _stable(base_ns.stats())
    _assert_same_hashes(namespace.user_hashes(), base_ns.user_hashes())


def _stable(stats: dict[str, int]) -> dict[str, int]:
    """Counters that must not depend on timing. Alerts and tier transitions do: a tier
    is a rank position, and ranks depend on how batches and sweeps interleave."""
    return {k: v for k, v in stats.items() if k != "alerts" and not k.startswith("transition:")}


def _assert_same_hashes(got: dict, want: dict) -> None:  # type: ignore[type-arg]
    """Equal user hashes except the stored tier (``t``: a rank position, see _stable) and
    the tier crossings it went through (``th``, for the same reason)."""
    got = {u: {f: v for f, v in h.items() if f not in (b"t", b"th")} for u, h in got.items()}
    want = {u: {f: v for f, v in h.items() if f not in (b"t", b"th")} for u, h in want.items()}
    assert got.keys() == want.keys()
    diff = {(u, f): (got[u].get(f), want[u].get(f)) for u in want
            for f in set(got[u]) | set(want[u]) if got[u].get(f) != want[u].get(f)}
    def show(u: bytes, h: dict) -> object:  # type: ignore[type-arg]
        from state.codec import decode_score, decode_state
        st = decode_state(h)
        return (st.last_ms if st else None, decode_score(h[b"s"]) if b"s" in h else None)
    assert not diff, [(u, show(u, got[u]), show(u, want[u])) for u, _ in list(diff)[:3]]


def test_two_workers_share_partitions_same_result(baseline, log, namespace) -> None:  # type: ignore[no-untyped-def]
    base_ns, report = baseline
    namespace.extra_env["CHURN_LOG_LEVEL"] = "info"
    namespace.start_worker()
    namespace.start_worker()

    def split_between_both() -> bool:  # each worker's latest assignment, from its log
        owned = []
        for path in namespace.logs:
            found = re.findall(rf"partitions assigned: events-{namespace.name}\[([0-9, ]*)\]",
                               path.read_text(errors="replace"))
            owned.append({int(p) for p in found[-1].split(",") if p.strip()} if found else set())
        return all(owned) and owned[0] | owned[1] == {0, 1, 2, 3} and not owned[0] & owned[1]

    wait_until(split_between_both, 60, "the four partitions split between the two workers")
    replay(log[0], namespace.settings(), progress=False)
    namespace.wait_consumed(report.sent)
    namespace.wait_scored()
    assert split_between_both()  # both worked through the whole replay
    assert _stable(namespace.stats()) == _stable(base_ns.stats())
    _assert_same_hashes(namespace.user_hashes(), base_ns.user_hashes())


def test_redis_killed_mid_replay_worker_retries_same_state(baseline, log, namespace) -> None:  # type: ignore[no-untyped-def]
    """A durable Redis dies (SIGKILL) and comes back: the worker waits, retries, and
    ends with exactly the state of an uninterrupted run."""
    base_ns, report = baseline
    server = RedisServer(durable=True).start()
    try:
        namespace.extra_env["CHURN_REDIS_URL"] = server.url
        worker = namespace.start_worker()
        sender = threading.Thread(target=replay, args=(log[0], namespace.settings()),
                                  kwargs={"progress": False, "rate": 15000})
        sender.start()
        wait_until(lambda: namespace.consumed() > report.sent // 4, 120, "a quarter consumed")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        time.sleep(2)
        server = RedisServer(server.port, server.workdir, durable=True).start()
        sender.join()
        namespace.wait_consumed(report.sent)
        namespace.wait_scored()
        assert worker.poll() is None, "the worker must ride out the outage"
        assert _stable(namespace.stats()) == _stable(base_ns.stats())
        _assert_same_hashes(namespace.user_hashes(), base_ns.user_hashes())
        log_text = namespace.logs[0].read_text(errors="replace")
        assert "retrying in" in log_text
        assert "rebuilding from Kafka" not in log_text  # the AOF kept the state: no replay
    finally:
        server.stop()


def test_top_k_and_tiers_match_an_independent_sort(baseline) -> None:  # type: ignore[no-untyped-def]
    ns, _ = baseline
    stored, churned = {}, []
    for uid, h in ns.user_hashes().items():
        if h[b"t"][0] == ALL_TIERS.index("churned"):  # silent > H days: out of the ranking
            churned.append(uid.decode())
            continue
        risk = struct.unpack_from("<d", h[b"s"])[0]  # the score's first 8 bytes
        stored[uid.decode()] = risk
    assert churned, "the log has users silent for more than 30 days"
    _, gone = http_json(f"{ns.api_url}/v1/users/{urllib.parse.quote(churned[0])}")
    assert gone["tier"] == gone["alert_tier"] == "churned" and gone["rank"] is None
    # riskiest first; equal risks in descending user-id byte order (the index's order)
    want = sorted(stored.items(), key=lambda ur: (ur[1], ur[0].encode()), reverse=True)
    n = len(want)
    code, page = http_json(f"{ns.api_url}/v1/top?k={n}")
    assert code == 200 and page["ranked"] == n
    TopPage.model_validate(page, strict=True)  # the documented response model
    assert [(i["user_id"], i["risk"]) for i in page["items"]] == want
    cuts = (0.05, 0.15, 0.30)
    for item in page["items"]:
        r0 = item["rank"] - 1
        share = r0 / n
        assert item["tier"] == ("critical" if share < cuts[0] else "high" if share < cuts[1]
                                else "elevated" if share < cuts[2] else "low")
        assert item["percentile"] == pytest.approx(100 * (n - r0) / n)
    _, tiers = http_json(f"{ns.api_url}/v1/tiers")
    counts = Counter(i["tier"] for i in page["items"])
    assert {t: v["count"] for t, v in tiers["tiers"].items()} == dict(counts)
    assert tiers["churned"] == len(churned)
    assert tiers["tiers"]["critical"]["count"] == math.ceil(0.05 * n)
    _, high = http_json(f"{ns.api_url}/v1/top?tier=high")
    assert [i["user_id"] for i in high["items"]] == [
        i["user_id"] for i in page["items"] if i["tier"] == "high"]
    assert tiers["tiers"]["high"]["min_risk"] == high["items"][-1]["risk"]
    _, pct = http_json(f"{ns.api_url}/v1/top?percent=10&offset=3")
    assert [i["rank"] for i in pct["items"]] == list(range(4, math.ceil(0.1 * n) + 1))
    uid = page["items"][7]["user_id"]
    _, one = http_json(f"{ns.api_url}/v1/users/{uid}")
    assert (one["rank"], one["tier"], one["ranked"]) == (8, page["items"][7]["tier"], n)
    # k and percent together: at most k of the top percent %
    _, both = http_json(f"{ns.api_url}/v1/top?k=3&percent=5")
    assert [i["rank"] for i in both["items"]] == list(range(1, min(3, math.ceil(0.05 * n)) + 1))
    _, few = http_json(f"{ns.api_url}/v1/top?k=1000&percent=5")
    assert len(few["items"]) == math.ceil(0.05 * n)
    assert http_json(f"{ns.api_url}/v1/top?tier=doomed")[0] == 422
    assert http_json(f"{ns.api_url}/v1/top?k=0")[0] == 422
