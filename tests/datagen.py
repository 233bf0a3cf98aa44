"""Generated test logs in the public e-commerce CSV layout, with their ground truth.

The log has late events (some inside the 30-day horizon, some beyond it),
exact duplicate rows, unknown event types and malformed rows of every class
the contract names. ``Row.event`` is the truth for valid rows (the reference
uses the raw line as the event id: identical rows are the same event);
``Row.reason`` is the expected DLQ reason for the others.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.reference import DAY, RefEvent

HEADER = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand",
          "price", "user_id", "user_session"]
START = 1_569_888_000_000  # 2019-10-01T00:00:00Z
BRANDS = ["acme", "zenith", "nova", "orbit", "lumen", "kappa", "ünïcode", "a,b"]
TYPES = ["view"] * 6 + ["cart"] * 2 + ["purchase", "remove_from_cart"]


@dataclass
class Row:
    line: bytes
    event: RefEvent | None = None  # valid rows
    reason: str | None = None  # invalid rows


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _csv_line(cells: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue().encode()


def _valid(rng: random.Random, user: str, t: int, price_level: float, brand: str) -> Row:
    typ = rng.choice(TYPES)
    t = t - t % 1000  # the public layout has whole seconds
    b = brand if rng.random() < 0.75 else rng.choice([*BRANDS, ""])
    r = rng.random()
    factor = rng.choice([1, 1, 1.1, 0.9, 2.5])
    price = "" if r < 0.1 else ("0" if r < 0.12 else f"{price_level * factor:.2f}")
    cells = [_fmt(t), typ, str(rng.randrange(1000)), "2053013555631882655", "electronics.x",
             b, price, user, f"s-{user}-{t // 3_600_000}"]
    line = _csv_line(cells)
    ev = RefEvent(line.decode(), user, typ, t, float(price) if price else None, b or None)
    return Row(line, ev)


def generate(users: int = 1100, days: int = 65, seed: int = 1) -> list[Row]:
    rng = random.Random(seed)
    timed: list[tuple[int, Row]] = []
    for i in range(users):
        uid = f"{500000000 + i}"
        start = rng.randrange(days // 2) * DAY
        rate = rng.choice([0.05, 0.1, 0.15, 0.3, 0.6])
        stop = days * DAY if rng.random() < 0.6 else start + rng.randrange(5, days) * DAY
        level, brand = rng.choice([3.0, 19.99, 120.0, 999.0]), rng.choice(BRANDS)
        t = START + start + rng.randrange(DAY)
        while t < START + min(stop, days * DAY):
            for _ in range(1 + int(rng.expovariate(1 / 3))):
                timed.append((t, _valid(rng, uid, t, level, brand)))
                t += rng.randrange(1000, 600_000)
            t += int(rng.expovariate(rate) * DAY) + 1000
    timed.sort(key=lambda x: x[0])
    rows = [r for _, r in timed]
    n = len(rows)
    # late: move some rows later in the file (arrive after newer events of the same user)
    for _ in range(n // 30):
        i = rng.randrange(n // 2)
        j = min(len(rows) - 1, i + rng.randrange(50, 3000))
        rows.insert(j, rows.pop(i))
    # very late: early rows arrive at the very end, beyond the 30-day horizon
    early = [r for r in rows[: n // 5] if rng.random() < 0.02]
    for r in early:
        rows.remove(r)
    # duplicates: identical rows re-sent later
    for _ in range(n // 50):
        i = rng.randrange(len(rows))
        rows.insert(min(len(rows), i + rng.randrange(1, 2000)), rows[i])
    bad = _bad_rows(rng)
    for r in bad:
        rows.insert(rng.randrange(len(rows)), r)
    rows.extend(early)
    return rows


def _bad_rows(rng: random.Random) -> list[Row]:
    def cells(**kw: str) -> list[str]:
        base = {"event_time": "2019-10-20 10:00:00 UTC", "event_type": "view", "product_id": "1",
                "category_id": "", "category_code": "", "brand": "acme", "price": "5.00",
                "user_id": "777000001", "user_session": "s"}
        base.update(kw)
        return [base[h] for h in HEADER]

    out: list[Row] = []
    for _ in range(12):
        out += [
            Row(_csv_line(cells(event_type="wishlist")), reason="event_type:unknown"),
            Row(_csv_line(cells(event_time="yesterday")), reason="event_time:invalid_time"),
            Row(_csv_line(cells(event_time="2019-13-45 00:00:00 UTC")),
                reason="event_time:invalid_time"),
            Row(_csv_line(cells(event_time="2019-10-20 10:00:00")),
                reason="event_time:invalid_time"),
            Row(_csv_line(cells(event_time="")), reason="event_time:missing"),
            Row(_csv_line(cells(price="-3.50")), reason="price:negative"),
            Row(_csv_line(cells(price="abc")), reason="price:invalid_type"),
            Row(_csv_line(cells(price="nan")), reason="price:invalid_type"),
            Row(_csv_line(cells(user_id="")), reason="user_id:missing"),
            Row(_csv_line(cells(user_id="   ")), reason="user_id:empty"),
            Row(_csv_line(cells(event_type="")), reason="event_type:missing"),
            Row(_csv_line(cells(brand="x" * 5000)), reason="brand:too_long"),
            Row(_csv_line(cells(user_id="u" * 300)), reason="user_id:too_long"),
            Row(_csv_line(cells())[:-12], reason="payload:wrong_column_count"),
            Row(_csv_line(cells(brand="cafX")).replace(b"cafX", b"caf\xe9"),
                reason="payload:invalid_utf8"),
        ]
    rng.shuffle(out)
    return out


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "wb") as fh:
        fh.write(",".join(HEADER).encode() + b"\n")
        for r in rows:
            fh.write(r.line + b"\n")
