"""Binary layout of the user hash written by ``lua/apply_event.lua``.

Fields: ``m`` lifetime scalars (3 little-endian doubles: first, last, last
purchase ms), ``o`` last applied (partition, offset), ``lb`` last brand,
``x`` dedupe records (uint16 day + 8-byte fingerprint), ``d`` + uint16 day:
that day's aggregates followed by its brand counts, ``s`` the latest score,
``t`` the stored tier (:class:`TierRecord`), ``v`` customer-value inputs (a bitmap
of purchase days, the purchase days with known spend and that spend).
One field per day keeps a typical user within the compact listpack encoding
and under the 1 KiB budget (bench/).

>>> import struct
>>> h = {b"m": struct.pack("<ddd", 0, 5, -1),
...      b"d" + struct.pack("<H", 0): struct.pack("<BIIIdd", 2 | 4, 2, 1, 1, 3.0, 0.0)
...      + struct.pack("<IH", 2, 4) + b"acme"}
>>> st = decode_state(h)
>>> st.last_ms, st.days[0].n, st.days[0].brands
(5, 2, {'acme': 2})
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import NamedTuple

from core.features import Aggregates, DayBucket, UserState
from core.tiers import Crossing, TierRecord

_META = struct.Struct("<ddd")
_HEAD = struct.Struct("<BI")  # flags, events
_PURCHASES = struct.Struct("<Id")  # flag 1: purchases, spend
_U32 = struct.Struct("<I")  # flag 2: carts; flag 8: brand switches
_PRICES = struct.Struct("<Idd")  # flag 4: priced events, price mean, price M2
_BRAND_HEAD = struct.Struct("<IH")
_DAYNUM = struct.Struct("<H")


class Score(NamedTuple):
    """A stored score: risk, its reference time, who spoke (scorer name, model version;
    0 = no model) and the reasons as (feature index in FEATURE_NAMES, contribution)."""

    risk: float
    as_of_ms: int
    scorer: str
    version: int = 0
    reasons: tuple[tuple[int, float], ...] = ()


_SCORE = struct.Struct("<ddIB")  # risk, as_of (write_scores.lua reads it at byte 9), version, n
_REASON = struct.Struct("<Bf")
# scorers stored as one byte; any other name is stored in full after a 0 byte
_SCORER_CODES = {"rule:recency-frequency": b"\x01", "model:logreg": b"\x02"}
_SCORER_NAMES = {code: name for name, code in _SCORER_CODES.items()}


def encode_score(score: Score) -> bytes:
    """Risk, reference time, model version, up to 255 reasons and the scorer.

    >>> decode_score(encode_score(Score(0.25, 1000, "rule:recency-frequency")))
    Score(risk=0.25, as_of_ms=1000, scorer='rule:recency-frequency', version=0, reasons=())
    >>> decode_score(encode_score(Score(0.5, 7, "model:arf", 3, ((8, 0.5), (0, 0.25)))))
    Score(risk=0.5, as_of_ms=7, scorer='model:arf', version=3, reasons=((8, 0.5), (0, 0.25)))
    >>> len(encode_score(Score(0.5, 7, "model:logreg", 3, ((8, 0.5), (0, 0.25), (1, 0.1)))))
    37
    """
    code = _SCORER_CODES.get(score.scorer) or b"\x00" + score.scorer.encode()
    parts = [_SCORE.pack(score.risk, score.as_of_ms, score.version, len(score.reasons))]
    parts += [_REASON.pack(i, c) for i, c in score.reasons]
    parts.append(code)
    return b"".join(parts)


def decode_score(raw: bytes) -> Score:
    risk, as_of, version, n = _SCORE.unpack_from(raw)
    pos = _SCORE.size
    reasons = []
    for _ in range(n):
        reasons.append(_REASON.unpack_from(raw, pos))
        pos += _REASON.size
    tail = raw[pos:]
    scorer = _SCORER_NAMES[tail] if tail in _SCORER_NAMES else tail[1:].decode()
    return Score(risk, int(as_of), scorer, version, tuple(reasons))


_TIER = struct.Struct("<BdHB")


def encode_tier(rec: TierRecord) -> bytes:
    """The stored tier in 12 bytes (field ``t`` of the user hash).

    >>> decode_tier(encode_tier(TierRecord(2, 86_400_000, 1, 3)))
    TierRecord(tier=2, entered_ms=86400000, alert_day=1, alerts_that_day=3)
    """
    return _TIER.pack(rec.tier, rec.entered_ms, rec.alert_day, min(255, rec.alerts_that_day))


def decode_tier(raw: bytes) -> TierRecord:
    tier, entered, day, n = _TIER.unpack(raw)
    return TierRecord(tier, int(entered), day, n)


def _brands(raw: bytes, start: int) -> dict[str, int]:
    out: dict[str, int] = {}
    i, end = start, len(raw)
    while i < end:
        cnt, ln = _BRAND_HEAD.unpack_from(raw, i)
        i += 6
        out[raw[i:i + ln].decode()] = cnt
        i += ln
    return out


def _day(v: bytes) -> DayBucket:
    """A day record: only the parts whose flag is set are stored (see apply_event.lua)."""
    flags, n = _HEAD.unpack_from(v)
    pos = _HEAD.size
    b = DayBucket(n=n)
    if flags & 1:
        b.purchases, b.spend = _PURCHASES.unpack_from(v, pos)
        pos += _PURCHASES.size
    if flags & 2:
        (b.carts,) = _U32.unpack_from(v, pos)
        pos += 4
    if flags & 4:
        b.price_n, b.price_mean, b.price_m2 = _PRICES.unpack_from(v, pos)
        pos += _PRICES.size
    if flags & 8:
        (b.switches,) = _U32.unpack_from(v, pos)
        pos += 4
    b.brands = _brands(v, pos)
    return b


_VALUE = struct.Struct("<iIId")  # base day, purchase days, days with known spend, spend


def newest_ms(meta: bytes) -> int:
    """The user's newest event time from field ``m``."""
    return int(_META.unpack(meta)[1])


def value_field(value: bytes) -> tuple[set[int], int, float]:
    """(purchase days, purchase days with known spend, their spend) of field ``v``."""
    _, _, n, spend = _VALUE.unpack_from(value)
    return purchase_days_of(value), n, spend


def retired_key(days: set[int]) -> str | None:
    """The archive field of a retired customer's summary: "x:t_x:first purchase day"
    (None for a user who never purchased).

    >>> retired_key({10, 12, 17}), retired_key(set())
    ('2:7:10', None)
    """
    if not days:
        return None
    first = min(days)
    return f"{len(days) - 1}:{max(days) - first}:{first}"


def purchase_days_of(value: bytes) -> set[int]:
    """Purchase days of field ``v``: bit i of bitmap byte k (LSB first) = base + 8k + i.

    >>> sorted(purchase_days_of(_VALUE.pack(16, 3, 0, 0.0) + bytes([0b101, 0, 0b10000000])))
    [16, 18, 39]
    """
    base = _VALUE.unpack_from(value)[0]
    out = set()
    for k, byte in enumerate(value[_VALUE.size:]):
        while byte:
            low = byte & -byte
            out.add(base + 8 * k + low.bit_length() - 1)
            byte ^= low
    return out


def decode_state(h: Mapping[bytes, bytes]) -> UserState | None:
    """Decode a user hash (HGETALL result) into a :class:`UserState`; None if empty."""
    meta = h.get(b"m")
    if meta is None:
        return None
    first, last, lastp = _META.unpack(meta)
    lb = h.get(b"lb")
    st = UserState(first_ms=int(first), last_ms=int(last), last_purchase_ms=int(lastp),
                   last_brand=lb.decode() if lb is not None else None)
    value = h.get(b"v")
    if value is not None:
        _, _, st.value_n, st.value_sum = _VALUE.unpack_from(value)
        st.purchase_days = purchase_days_of(value)
    days = st.days
    for field, value in h.items():
        if len(field) == 3 and field[0] == 100:  # b"d" + uint16 day
            days[_DAYNUM.unpack_from(field, 1)[0]] = _day(value)
    return st


_AGG = struct.Struct("<IIIIIIIIIdddddddIiIdIIIid")


def decode_aggregates(raw: bytes) -> Aggregates:
    """Window aggregates packed by ``aggregates()`` in ``lua/aggregates.lua``."""
    (n7, n15, n30, np_, nc, sw, pn, btot, bmax, spend, pmean, pm2, first, last, lastp, now_ms,
     npd, fpd, vn, vs, p90, p180, p365, lpd, gsq) = _AGG.unpack_from(raw)
    k = (len(raw) - _AGG.size) // 2
    active = struct.unpack_from(f"<{k}H", raw, _AGG.size)
    return Aggregates(now_ms=int(now_ms), n7=n7, n15=n15, n30=n30, active_days=active,
                      purchases=np_, carts=nc, spend=spend, price_n=pn, price_mean=pmean,
                      price_m2=pm2, switches=sw, brand_total=btot, brand_max=bmax,
                      first_ms=int(first), last_ms=int(last), last_purchase_ms=int(lastp),
                      purchase_days=npd, first_purchase_day=fpd, value_n=vn, value_sum=vs,
                      purchase_days_90d=p90, purchase_days_180d=p180, purchase_days_365d=p365,
                      last_purchase_day=lpd, purchase_gap_sumsq=gsq)


_CROSSING = struct.Struct("<BBdd")  # from, to, at (ms), risk: one entry of field ``th``


def encode_crossing(c: Crossing) -> bytes:
    """One tier-history entry (18 bytes of the user hash's ``th``; the newest last).

    >>> c = Crossing("u", 3, 0, 0.875, 86_400_000)
    >>> decode_history("u", encode_crossing(c) * 2) == (c, c)
    True
    """
    return _CROSSING.pack(c.frm, c.to, c.at_ms, c.risk)


def decode_history(user_id: str, raw: bytes) -> tuple[Crossing, ...]:
    return tuple(Crossing(user_id, f, t, risk, int(at))
                 for f, t, at, risk in _CROSSING.iter_unpack(raw))
