"""The console's sign-in against hostile input (no Redis needed: these routes never read
it): any bytes as the form, keys that almost match, cookies of the wrong shape, and
redirect targets off the console."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient

from api.console.auth import safe_next
from api.main import create_app
from api.security import COOKIE, signed_in, token
from core.settings import Settings

KEY = "k-123"


def client(keys: list[str]) -> TestClient:
    return TestClient(create_app(Settings(api_keys=keys)), follow_redirects=False)


def test_any_bytes_as_the_login_form_are_refused_without_a_cookie() -> None:
    c = client([KEY])
    rng = random.Random(3)
    bodies = [rng.randbytes(rng.randrange(0, 300)) for _ in range(40)]
    bodies += [b"key=" + KEY.encode()[:-1], b"key=" + KEY.encode() + b"x", b"key=nope&key=k",
               b"\xff\xfe", b"key=%ZZ", b"next=//evil.example&key=nope"]
    for body in bodies:
        r = c.post("/console/login", content=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 401, body
        assert COOKIE not in r.cookies and "not one of the API" in r.text
    ok = c.post("/console/login", content=f"key={KEY}&next=/console/alerts".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ok.status_code == 303 and ok.headers["location"] == "/console/alerts"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie


def test_cookies_and_redirect_targets() -> None:
    s = Settings(api_keys=[KEY, "other"])
    assert signed_in(s, token(KEY)) and signed_in(s, token("other"))
    for bad in (None, "", token("k-12"), token(KEY)[:-1], "é" * 64, token(KEY) + " "):
        assert not signed_in(s, bad)
    assert signed_in(Settings(), None)  # no keys: open
    for target in ("//evil.example", "https://evil.example/x", "/v1/top", "/console\\\\evil",
                   "", None, "/console//evil.example"):
        assert safe_next(target) == "/console", target
    assert safe_next("/console/users/u1?x=1") == "/console/users/u1?x=1"
    c = client([KEY])
    c.cookies.set(COOKIE, "0" * 64)
    r = c.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    assert c.get("/console/login?next=https://evil.example/").text.count(
        'name="next" value="/console"') == 1


def test_without_keys_the_login_just_goes_on() -> None:
    r = client([]).post("/console/login", content=b"\x00\x01garbage",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303 and r.headers["location"] == "/console"
