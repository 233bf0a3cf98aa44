"""The console in a real headless Chromium, offline, on a replayed log behind API keys:
sign-in (a wrong key refused, the cookie HttpOnly and SameSite=Strict), the overview's
numbers equal ``GET /v1/overview``, its charts drawn, no console errors, at 1280 px and at
a phone's width. The screenshots in docs/console/ come from here."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from offline.replay import replay
from tests.datagen import generate, write_csv
from tests.integration.browser import chromium, errors, shot, wait_for
from tests.integration.conftest import Namespace

pytestmark = pytest.mark.integration
KEY = "console-key-1"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def deployed(services, tmp_path_factory) -> Iterator[Namespace]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("console")
    ns = Namespace(services, tmp)
    ns.extra_env.update(CHURN_API_KEYS=KEY, CHURN_API_READ_AUTH="true")
    try:
        ns.start_worker()
        ns.start_api()
        path = tmp / "events.csv"
        write_csv(generate(users=400, days=80, seed=3), str(path))
        report = replay(path, ns.settings(), progress=False)
        ns.wait_consumed(report.sent)
        ns.wait_scored()
        ns.spawn("learner")  # the model's quality over time; it also fits value on schedule
        ns.wait_learned(timeout=120)
        _fits_settled(ns)
        assert ns.spawn("fit-value").wait(timeout=180) == 0  # CLV and segments for the lists
        yield ns
    finally:
        ns.stop()


def _fits_settled(ns: Namespace) -> None:
    """Wait until the learner's scheduled value fits stop (no new version for 3 s)."""
    import time

    r, seen, since = ns.redis(), None, time.monotonic()
    while time.monotonic() - since < 3:
        v = r.hget(f"t{ns.name}:value:meta", "version")
        if v != seen:
            seen, since = v, time.monotonic()
        time.sleep(0.2)


def test_sign_in_then_the_overview_equals_the_api(deployed: Namespace) -> None:
    import json

    api = deployed.api_url
    code, body = get(api + "/v1/overview", {"X-API-Key": KEY})
    assert code == 200
    want = json.loads(body)
    assert len(want["months"]) >= 3
    assert get(api + "/v1/overview")[0] == 401  # reads need the key here
    with chromium() as b:
        b.get(api + "/console")
        assert b.current_url.startswith(api + "/console/login?next=/console")
        wait_for(b, "form.login")
        shot(b, "login")
        b.find_element(By.ID, "key").send_keys("not-the-key")
        b.find_element(By.CSS_SELECTOR, "form.login button").click()
        assert wait_for(b, "#error")[0].text == "That key is not one of the API's keys."
        assert not b.get_cookies()
        b.find_element(By.ID, "key").send_keys(KEY)
        b.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait_for(b, "#months")
        assert b.current_url == api + "/console"
        (cookie,) = b.get_cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY not in cookie["value"]
        wait_for(b, "#chart-months .main-svg")  # plotly.js, from the wheel, drew them
        wait_for(b, "#chart-rate .main-svg")
        assert [e for e in errors(b) if "401" not in e["message"]] == []  # the login's 401
        assert _tiers(b) == want["tiers"]
        assert _months(b) == want["months"]
        assert _cohorts(b) == want["cohorts"]
        assert want["value_at_risk"] and _value_at_risk(b) == want["value_at_risk"]["tiers"]
        assert len(want["quality"]) >= 10 and _quality(b) == want["quality"]
        assert b.find_element(By.ID, "scorer").text == want["scorer"]
        wait_for(b, "#chart-quality .main-svg")
        shot(b, "overview", full=True)
        b.set_window_size(390, 844)  # a phone
        b.get(api + "/console")
        wait_for(b, "#chart-months .main-svg")
        assert _months(b) == want["months"] and not errors(b)
        shot(b, "overview-phone")
        # the page's CSV link reads with the cookie: the same bytes as with the key
        csv_link = b.find_element(By.CSS_SELECTOR, "#months caption a").get_attribute("href")
        jar = f"{cookie['name']}={cookie['value']}"
        assert get(csv_link, {"Cookie": jar}) == get(csv_link, {"X-API-Key": KEY})
        assert get(csv_link, {"Cookie": jar})[0] == 200
        b.set_window_size(1280, 900)
        _customer(b, api)
        _alerts(b, deployed)
        _targets(b, api)
        _segments(b, api)


def test_nothing_but_the_login_page_without_the_key(deployed: Namespace) -> None:
    api = deployed.api_url
    for path in ("/console", "/console?x=1"):
        req = urllib.request.Request(api + path)
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as exc:
            opener.open(req, timeout=10)
        assert exc.value.code == 303
        assert exc.value.headers["Location"].startswith("/console/login?next=")
    wrong = {"Cookie": "churn_console=" + "0" * 64}
    assert get(api + "/v1/overview", wrong)[0] == 401
    code, page = get(api + "/console/login?next=https://evil.example/")
    assert code == 200 and b'name="next" value="/console"' in page  # no open redirect


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _tiers(b) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {e.get_attribute("id").removeprefix("tier-"): int(e.text)
            for e in b.find_elements(By.CSS_SELECTOR, ".tiers .n")}


def _months(b) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    rows = []
    for tr in b.find_elements(By.CSS_SELECTOR, "#months tbody tr"):
        row: dict[str, object] = {"month": tr.find_element(By.TAG_NAME, "th").text}
        for td in tr.find_elements(By.TAG_NAME, "td"):
            v = td.get_attribute("data-value")
            col = td.get_attribute("data-col")
            row[col] = None if v == "" else float(v) if col == "churn_rate" else int(v)
        rows.append(row)
    return rows


def _cohorts(b) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    out = {}
    for tr in b.find_elements(By.CSS_SELECTOR, "#cohorts tbody tr"):
        cells = [td.get_attribute("data-value") for td in tr.find_elements(By.TAG_NAME, "td")]
        out[tr.find_element(By.TAG_NAME, "th").text] = [int(v) for v in cells if v]
    return out


def _value_at_risk(b) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    return {tr.get_attribute("data-tier"): {
        td.get_attribute("data-col"): float(td.get_attribute("data-value"))
        for td in tr.find_elements(By.CSS_SELECTOR, "td[data-col]")}
        for tr in b.find_elements(By.CSS_SELECTOR, "#value-at-risk tbody tr")}


def _quality(b) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    rows = []
    for tr in b.find_elements(By.CSS_SELECTOR, "#quality tbody tr"):
        cells = {td.get_attribute("data-col"): td for td in tr.find_elements(By.TAG_NAME, "td")}
        num = {c: cells[c].get_attribute("data-value") for c in ("rocauc", "lift_at_10")}
        rows.append({"at": tr.find_element(By.TAG_NAME, "th").get_attribute("data-value"),
                     "examples": int(cells["examples"].get_attribute("data-value")),
                     "scorer": cells["scorer"].get_attribute("textContent"),
                     "window": int(cells["window"].get_attribute("data-value")),
                     **{c: float(v) if v else None for c, v in num.items()}})
    return rows[::-1]  # the page lists the newest first


def _segments(b, api: str) -> None:  # type: ignore[no-untyped-def]
    """The segments page equals GET /v1/segments; each persona's action is the
    playbook's; its CSV link is /v1/top's list of that persona."""
    import json

    from core.settings import Settings
    from core.tiers import TIERS

    hdr = {"X-API-Key": KEY}
    want = json.loads(get(api + "/v1/segments", hdr)[1])
    errors(b)  # drain: the targeting page's 422 on purpose
    b.get(api + "/console/segments")
    rows = wait_for(b, "#segments tbody tr")
    playbook = Settings().playbook()
    got = {}
    for tr in rows:
        name = tr.get_attribute("data-segment")
        cells = {td.get_attribute("data-col"): td.get_attribute("data-value")
                 for td in tr.find_elements(By.CSS_SELECTOR, "td[data-col]")}
        got[name] = cells
        listed = []
        for dd in tr.find_elements(By.CSS_SELECTOR, "dl.playbook dd"):
            for tier in dd.get_attribute("data-tiers").split():
                a = playbook.action(name, tier)
                assert dd.text == (f"{a.text} {a.offer}" if a.offer else a.text)
                listed.append(tier)
        assert sorted(listed) == sorted([*TIERS, "churned"])  # every tier, once
    assert {n: int(c["customers"]) for n, c in got.items()} == want["segments"]
    for name, v in want["value_at_risk"].items():
        c = got[name]
        assert (int(c["scored"]), float(c["value_at_risk"]), float(c["clv"])) == (
            v["scored"], v["value_at_risk"], v["clv"])
        assert (None if c["mean_risk"] == "" else float(c["mean_risk"])) == v["mean_risk"]
    assert sum(v["value_at_risk"] for v in want["value_at_risk"].values()) > 0
    biggest = max(want["value_at_risk"], key=lambda n: want["value_at_risk"][n]["scored"])
    link = b.find_element(By.CSS_SELECTOR, f"tr[data-segment={biggest}] a.csv")
    href = link.get_attribute("href")
    body = get(href, hdr)
    assert body == get(f"{api}/v1/top?percent=100&segment={biggest}&format=csv", hdr)
    assert body[0] == 200 and body[1].count(b"\n") > 1
    assert not errors(b)
    shot(b, "segments", full=True)


def _customer(b, api: str) -> None:  # type: ignore[no-untyped-def]
    """The riskiest customer, found with the search box, shows what the API says."""
    import json

    from core.settings import Settings

    top = json.loads(get(api + "/v1/top?k=1", {"X-API-Key": KEY})[1])["items"][0]
    uid = top["user_id"]
    box = b.find_element(By.ID, "q")
    box.clear()
    box.send_keys(uid)
    b.find_element(By.CSS_SELECTOR, "form.search button").click()
    wait_for(b, "#reasons")
    want = json.loads(get(f"{api}/v1/users/{uid}", {"X-API-Key": KEY})[1])
    assert b.find_element(By.ID, "user-id").text == uid
    assert b.find_element(By.ID, "as-of").text == want["as_of"]
    assert float(b.find_element(By.ID, "risk").get_attribute("data-value")) == want["risk"]
    assert b.find_element(By.ID, "tier").text == want["tier"] == "critical"
    assert b.find_element(By.ID, "scorer").text == want["scorer"]
    rows = b.find_elements(By.CSS_SELECTOR, "#reasons tbody tr")
    assert [r.get_attribute("data-feature") for r in rows] == [
        r["feature"] for r in want["reasons"]] and rows
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == [
        r["text"] for r in want["reasons"]]
    for block, table in (("features", "features"), ("long_range", "long-range")):
        cells = b.find_elements(By.CSS_SELECTOR, f"#{table} td")
        assert {c.get_attribute("data-name"): float(c.get_attribute("data-value"))
                for c in cells} == want[block]
    history = b.find_elements(By.CSS_SELECTOR, "#history li")
    assert [int(li.get_attribute("data-at-ms")) for li in history] == [
        c["at_ms"] for c in want["tier_history"]]
    segment = want["segment"]["name"] if want["segment"] else None
    action = Settings().playbook().action(segment, want["tier"])
    assert b.find_element(By.ID, "action").text.startswith(action.text)
    assert not errors(b)
    shot(b, "customer", full=True)
    b.get(api + "/console/users/nobody-here")
    assert "No customer" in wait_for(b, "h1")[0].text
    assert all("404" in e["message"] for e in errors(b))


def _alerts(b, ns: Namespace) -> None:  # type: ignore[no-untyped-def]
    """The alerts page lists what GET /v1/alerts returns, filtered by the tier chosen;
    the feed holds exactly the crossings risk.alerts carried (no kill here: once each)."""
    import json

    from tests.integration.conftest import read_topic

    api = ns.api_url
    sent = [json.loads(v) for v in read_topic(ns.env["CHURN_KAFKA_BOOTSTRAP"],
                                              ns.env["CHURN_ALERTS_TOPIC"],
                                              ns.stats()["alerts"])]
    feed = json.loads(get(api + "/v1/alerts?limit=10000", {"X-API-Key": KEY})[1])["alerts"]
    key = ("user_id", "from", "to", "risk", "at", "at_ms")
    assert sorted(tuple(a[k] for k in key) for a in feed) == sorted(
        tuple(a[k] for k in key) for a in sent) and len(sent) > 50
    b.get(api + "/console/alerts")
    for tier in ("", "critical"):
        if tier:
            from selenium.webdriver.support.ui import Select

            Select(b.find_element(By.ID, "tier")).select_by_value(tier)
            b.find_element(By.CSS_SELECTOR, "form.filters button").click()
        rows = wait_for(b, "#alerts tbody tr")
        want = json.loads(get(f"{api}/v1/alerts?limit=100&tier={tier}" if tier else
                              f"{api}/v1/alerts?limit=100", {"X-API-Key": KEY})[1])["alerts"]
        got = [(r.find_element(By.CSS_SELECTOR, "a").get_attribute("data-user"),
                int(r.find_element(By.TAG_NAME, "th").get_attribute("data-at-ms")),
                r.find_element(By.CSS_SELECTOR, "td.to").text.lower()) for r in rows]
        assert got == [(a["user_id"], a["at_ms"], a["to"]) for a in want] and got
    assert not errors(b)
    shot(b, "alerts")


def _targets(b, api: str) -> None:  # type: ignore[no-untyped-def]
    """The targeting list equals GET /v1/top for the same selection, and its CSV link
    downloads exactly the API's CSV; a bad selection is a clear error."""
    import json

    from selenium.webdriver.support.ui import Select

    hdr = {"X-API-Key": KEY}
    for form, query in (({}, "k=50"), ({"percent": "10", "k": ""}, "percent=10"),
                        ({"tier": "high", "k": "20"}, "k=20&tier=high"),
                        ({"sort": "saved_value", "k": "30"}, "k=30&sort=saved_value")):
        b.get(api + "/console/targets")
        for name, value in form.items():
            el = b.find_element(By.NAME, name)
            if el.tag_name == "select":
                Select(el).select_by_value(value)
            else:
                el.clear()
                el.send_keys(value)
        b.find_element(By.CSS_SELECTOR, "form.filters button").click()
        wait_for(b, "#targets")
        want = json.loads(get(f"{api}/v1/top?{query}", hdr)[1])["items"]
        rows = b.find_elements(By.CSS_SELECTOR, "#targets tbody tr")
        got = [(int(r.find_element(By.TAG_NAME, "th").text),
                r.find_element(By.CSS_SELECTOR, "a").get_attribute("data-user"),
                float(r.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-value")))
               for r in rows]
        assert got == [(it["rank"], it["user_id"], it["risk"]) for it in want] and got, query
        expected = float(b.find_element(By.ID, "expected").get_attribute("data-value"))
        assert abs(expected - sum(it["risk"] for it in want)) < 1e-9
        link = b.find_element(By.ID, "csv").get_attribute("href")
        assert get(link, hdr) == get(f"{api}/v1/top?{query}&format=csv", hdr), query
        assert not errors(b)
        if query == "k=50":
            shot(b, "targets", full=True)
    b.get(api + "/console/targets?k=0")
    assert "not valid" in wait_for(b, "#error")[0].text
