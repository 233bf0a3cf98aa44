"""Binary layout of the user hash written by ``lua/apply_event.lua``.

Fields: ``m`` lifetime scalars (3 little-endian doubles: first, last, last
purchase ms), ``o`` last applied (partition, offset), ``lb`` last brand,
``x`` dedupe records (uint16 day + 8-byte fingerprint), ``d<day>`` day
aggregates, ``b<day>`` the day's brand counts, ``s`` the latest score.

>>> import struct
>>> h = {b"m": struct.pack("<ddd", 0, 5, -1),
...      b"d0": struct.pack("<IIIIdddI", 2, 0, 1, 1, 0.0, 3.0, 0.0, 0),
...      b"b0": struct.pack("<IH", 2, 4) + b"acme"}
>>> st = decode_state(h)
>>> st.last_ms, st.days[0].n, st.days[0].brands
(5, 2, {'acme': 2})
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from core.features import Aggregates, DayBucket, UserState

_META = struct.Struct("<ddd")
_DAY = struct.Struct("<IIIIdddI")
_BRAND_HEAD = struct.Struct("<IH")


class Score(NamedTuple):
    risk: float
    as_of_ms: int
    scorer: str


def encode_score(score: Score) -> str:
    return f"{score.risk!r}|{score.as_of_ms}|{score.scorer}"


def decode_score(raw: bytes | str) -> Score:
    text = raw.decode() if isinstance(raw, bytes) else raw
    risk, as_of, scorer = text.split("|", 2)
    return Score(float(risk), int(as_of), scorer)


def _brands(raw: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    i, end = 0, len(raw)
    while i < end:
        cnt, ln = _BRAND_HEAD.unpack_from(raw, i)
        i += 6
        out[raw[i:i + ln].decode()] = cnt
        i += ln
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
    days = st.days
    brands: dict[int, dict[str, int]] = {}
    for field, value in h.items():
        tag = field[:1]
        if tag == b"d":
            n, np_, nc, pn, spend, pmean, pm2, sw = _DAY.unpack(value)
            days[int(field[1:])] = DayBucket(n, np_, nc, spend, pn, pmean, pm2, sw)
        elif tag == b"b":
            brands[int(field[1:])] = _brands(value)
    for day, counts in brands.items():
        if day in days:
            days[day].brands = counts
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


def pairs_to_dict(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A flat ``[field, value, ...]`` script reply as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=False))
