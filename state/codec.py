"""Binary layout of the user hash written by ``lua/apply_event.lua``.

Fields: ``m`` lifetime scalars (3 little-endian doubles: first, last, last
purchase ms), ``o`` last applied (partition, offset), ``lb`` last brand,
``x`` dedupe records (uint16 day + 8-byte fingerprint), ``d`` + uint16 day:
that day's aggregates followed by its brand counts, ``s`` the latest score.
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

_META = struct.Struct("<ddd")
_HEAD = struct.Struct("<BI")  # flags, events
_PURCHASES = struct.Struct("<Id")  # flag 1: purchases, spend
_U32 = struct.Struct("<I")  # flag 2: carts; flag 8: brand switches
_PRICES = struct.Struct("<Idd")  # flag 4: priced events, price mean, price M2
_BRAND_HEAD = struct.Struct("<IH")
_DAYNUM = struct.Struct("<H")


class Score(NamedTuple):
    risk: float
    as_of_ms: int
    scorer: str


_SCORE = struct.Struct("<dq")
# scorers stored as one byte; any other name is stored in full after a 0 byte
_SCORER_CODES = {"rule:recency-frequency": b"\x01"}
_SCORER_NAMES = {code: name for name, code in _SCORER_CODES.items()}


def encode_score(score: Score) -> bytes:
    """Risk, reference time and scorer in 17 bytes for the known scorers.

    >>> decode_score(encode_score(Score(0.25, 1000, "rule:recency-frequency")))
    Score(risk=0.25, as_of_ms=1000, scorer='rule:recency-frequency')
    >>> decode_score(encode_score(Score(0.5, 7, "model:v3")))
    Score(risk=0.5, as_of_ms=7, scorer='model:v3')
    """
    code = _SCORER_CODES.get(score.scorer) or b"\x00" + score.scorer.encode()
    return _SCORE.pack(score.risk, score.as_of_ms) + code


def decode_score(raw: bytes) -> Score:
    risk, as_of = _SCORE.unpack_from(raw)
    tail = raw[_SCORE.size:]
    scorer = _SCORER_NAMES[tail] if tail in _SCORER_NAMES else tail[1:].decode()
    return Score(risk, as_of, scorer)


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


def decode_state(h: Mapping[bytes, bytes]) -> UserState | None:
    """Decode a user hash (HGETALL result) into a :class:`UserState`; None if empty."""
    meta = h.get(b"m")
    if meta is None:
        return None
    first, last, lastp = _META.unpack(meta)
    lb = h.get(b"lb")
    st = UserState(first_ms=int(first), last_ms=int(last), last_purchase_ms=int(lastp),
                   last_brand=lb.decode() if lb is not None else None)
    days = st.days
    for field, value in h.items():
        if len(field) == 3 and field[0] == 100:  # b"d" + uint16 day
            days[_DAYNUM.unpack_from(field, 1)[0]] = _day(value)
    return st


_AGG = struct.Struct("<IIIIIIIIIdddddd")


def decode_aggregates(raw: bytes) -> Aggregates:
    """Window aggregates packed by ``aggregates()`` in ``lua/apply_event.lua``."""
    n7, n15, n30, np_, nc, sw, pn, btot, bmax, spend, pmean, pm2, first, last, lastp = \
        _AGG.unpack_from(raw)
    k = (len(raw) - _AGG.size) // 2
    active = struct.unpack_from(f"<{k}H", raw, _AGG.size)
    return Aggregates(now_ms=int(last), n7=n7, n15=n15, n30=n30, active_days=active,
                      purchases=np_, carts=nc, spend=spend, price_n=pn, price_mean=pmean,
                      price_m2=pm2, switches=sw, brand_total=btot, brand_max=bmax,
                      first_ms=int(first), last_ms=int(last), last_purchase_ms=int(lastp))
