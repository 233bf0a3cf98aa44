"""Customer value in Redis: population summaries, versioned fits and the value index.

Keys: ``<prefix>:value:meta`` (hash: version, the current fit as JSON),
``<prefix>:value:fit:<version>`` (each fit as JSON; the newest ``keep`` are kept) and
``<prefix>:value`` (sorted set: customer -> CLV at the last fit; rebuilt by each fit
under a temporary key and renamed into place, so readers never see half an index).
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import numpy as np

from core.features import DAY_MS
from core.segments import RFMCuts
from core.tiers import tier_bounds
from core.value import ValueParams
from state.clients.mux import ReplyError, pack
from state.codec import decode_score, newest_ms, value_field
from state.keys import Keys
from state.scripts import SCRIPTS
from state.value_rows import SUMMARY


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(b), b)


class RowInfo(NamedTuple):
    """One user of a value-sorted page: CLV in the index, risk and 0-based risk rank,
    and what a segment needs (purchase days, mean spend per valued purchase day, the
    reference time: the stored score's, else the newest event's; None without state)."""

    user_id: str
    clv: float | None
    risk: float | None
    rank: int | None
    purchase_days: set[int] | None
    mean_spend: float
    as_of_ms: int | None


class Summaries(NamedTuple):
    ids: list[str]
    records: np.ndarray  # SUMMARY
    as_of_ms: int
    prospects: int  # users without a purchase
    # retired customers (deleted after CHURN_RETENTION_DAYS): rows of x, t_x, T at
    # ``as_of_ms``, customers
    retired: np.ndarray = np.zeros((0, 4), np.int64)


class ValueFit(NamedTuple):
    """What one fit produced: the models, the RFM cut points, customers per segment."""

    params: ValueParams
    cuts: RFMCuts
    segments: dict[str, int]
    as_of_ms: int  # the newest partition watermark the summaries were taken at
    frequency_days: int
    # value at risk per persona and tier when the fit ran (core.value_at_risk; None in
    # fits from before it)
    book: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps({"params": json.loads(self.params.to_json()),
                           "cuts": self.cuts._asdict(), "segments": self.segments,
                           "as_of_ms": self.as_of_ms, "frequency_days": self.frequency_days,
                           "book": self.book})

    @classmethod
    def from_json(cls, raw: bytes | str) -> ValueFit:
        d = json.loads(raw)
        cuts = RFMCuts(*(tuple(d["cuts"][k]) for k in RFMCuts._fields))
        return cls(ValueParams.from_json(json.dumps(d["params"])), cuts, d["segments"],
                   d["as_of_ms"], d["frequency_days"], d.get("book"))


class ValueStore:
    def __init__(self, client: Any, prefix: str = "churn", keep: int = 4,
                 mux: Any = None, keys: Keys | None = None) -> None:
        self.r = client
        self.mux = mux  # the API's multiplexed connection: rows() needs it
        # the feature store's keys (their placement); the value keys are global ones
        self.keys = keys if keys is not None else Keys(prefix)
        prefix = self.keys.global_prefix
        self.meta_key = f"{prefix}:value:meta"
        self.fit_prefix = f"{prefix}:value:fit:"
        self.index_key = f"{prefix}:value"
        self.keep = keep
        self._scan = client.register_script(SCRIPTS["value_scan"])

    async def summaries(self, frequency_days: int, count: int = 2000) -> Summaries:
        """Every customer's summary, each at its partition's event-time watermark, and
        the number of users without a purchase; one script call per SCAN step."""
        if self.keys.cluster:  # (a SCAN inside a script reads one node's keys)
            raise NotImplementedError("the one-shot value fit (churnstream fit-value) scans "
                                      "a single Redis; on a cluster the learner's scheduled "
                                      "fit (CHURN_VALUE_FIT_EVERY_DAYS) reads the "
                                      "partitions' rows instead")
        marks = {int(p): int(t) for p, t in (await self.r.hgetall(self.keys.watermark)).items()}
        if not marks:
            return Summaries([], np.zeros(0, SUMMARY), 0, 0)
        todays = [marks.get(p, max(marks.values())) // DAY_MS for p in range(max(marks) + 1)]
        pattern = self.keys.user_scan_pattern().encode()
        cursor: bytes | int = 0
        ids: list[str] = []
        blobs: list[bytes] = []
        prospects = 0
        while True:
            res = await self._scan(args=[cursor, pattern, count, frequency_days, *todays])
            cursor, blob = res[0], res[1]
            blobs.append(blob)
            prospects += int(res[2])
            ids.extend(self.keys.user_id_of(k.decode()) for k in res[3:])
            if int(cursor) == 0:
                break
        as_of = max(marks.values())
        return Summaries(ids, np.frombuffer(b"".join(blobs), dtype=SUMMARY), as_of, prospects,
                         await self.retired(as_of // DAY_MS))

    async def retired(self, today: int) -> np.ndarray:
        """The retired customers' archive as rows (x, t_x, T on ``today``, customers)."""
        raw = await self.r.hgetall(self.keys.retired)
        rows = [[*map(int, k.split(b":")), int(n)] for k, n in raw.items()]
        out = np.array(rows, dtype=np.int64).reshape(-1, 4)
        out[:, 2] = today - out[:, 2]
        return out

    async def save(self, fit: ValueFit) -> int:
        """Store a fit as a new version (atomically with the meta); returns the version."""
        version = int(await self.r.hincrby(self.meta_key, "next_version", 1))
        fit = fit._replace(params=fit.params._replace(version=version))
        doc = fit.to_json()
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.fit_prefix}{version}", doc)
        pipe.hset(self.meta_key, mapping={"version": version, "fit": doc})
        if version > self.keep:
            pipe.delete(f"{self.fit_prefix}{version - self.keep}")
        await pipe.execute()
        return version

    async def current(self) -> ValueFit | None:
        raw = await self.r.hget(self.meta_key, "fit")
        return ValueFit.from_json(raw) if raw is not None else None

    async def version(self) -> int:
        raw = await self.r.hget(self.meta_key, "version")
        return int(raw) if raw is not None else 0

    async def risks(self, ids: list[str], chunk: int = 10_000) -> np.ndarray:
        """Each user's risk in the ranking now (NaN: not ranked)."""
        out = np.full(len(ids), np.nan)
        for k in range(0, len(ids), chunk):
            got = await self.r.zmscore(self.keys.rank, ids[k:k + chunk])
            out[k:k + len(got)] = [np.nan if v is None else float(v) for v in got]
        return out

    async def tier_edges(self, cuts: tuple[float, float, float]
                         ) -> list[tuple[float, str] | None]:
        """The (risk, user) at the first rank of each tier after the first, by share of
        the ranking now (None: that tier is empty, at the end; core.tiers.tier_bounds)."""
        n = int(await self.r.zcard(self.keys.rank))
        edges: list[tuple[float, str] | None] = []
        for start, _ in list(tier_bounds(n, cuts).values())[1:]:
            got = await self.desc(self.keys.rank, start, 1) if start < n else []
            edges.append((got[0][1], got[0][0]) if got else None)
        return edges

    async def desc(self, key: str, start: int, count: int) -> list[tuple[str, float]]:
        if self.mux is not None:
            (flat,) = await self.mux.execute_at(key, [pack(b"ZREVRANGE", key, start,
                                                           start + count - 1, b"WITHSCORES")])
            return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        rows = await self.r.zrevrange(key, start, start + count - 1, withscores=True)
        return [(u.decode(), float(sc)) for u, sc in rows]

    async def threshold(self, quantile: float) -> float | None:
        """The smallest CLV among the top (1 - quantile) share of the index (the value
        quantile); None for an empty index."""
        n = int(await self.r.zcard(self.index_key))
        if n == 0:
            return None
        pos = max(0, math.ceil((1 - quantile) * n) - 1)
        rows = await self.r.zrevrange(self.index_key, pos, pos, withscores=True)
        return float(rows[0][1])

    async def rows(self, user_ids: list[str]) -> list[RowInfo]:
        """Per user, in one round trip through the API's multiplexed connection (replies
        parsed by hiredis): CLV in the index, 0-based risk rank, risk, and the hash
        fields a segment needs."""
        if self.mux is None:
            raise RuntimeError("ValueStore.rows reads through the multiplexed connection")
        ids = [u.encode() for u in user_ids]
        glob = self.keys.rank  # the index and the ranking share the global slot
        cmds: list[tuple[bytes | str, bytes]] = [
            (glob, pack(b"ZMSCORE", self.index_key, *ids)), (glob, pack(b"ZMSCORE", glob, *ids))]
        rank, fields = _bulk(glob.encode()), b"$1\r\nv\r\n$1\r\nm\r\n$1\r\ns\r\n"
        for u in user_ids:  # RESP written out: pack() per command was the cost here
            cmds.append((glob, b"*3\r\n$8\r\nZREVRANK\r\n" + rank + _bulk(u.encode())))
            key = self.keys.user(u).encode()
            cmds.append((key, b"*5\r\n$5\r\nHMGET\r\n" + _bulk(key) + fields))
        res = await self.mux.execute_routed(cmds)
        for r in res:
            if isinstance(r, ReplyError):
                raise r
        clv = [None if c is None else float(c) for c in res[0]]
        risk = [None if c is None else float(c) for c in res[1]]
        out = []
        for i, u in enumerate(user_ids):
            v, m, s = res[3 + 2 * i]
            days, mean, now = None, 0.0, None
            if v is not None and m is not None:
                days, n, spend = value_field(v)
                mean = spend / n if n else 0.0
                now = decode_score(s).as_of_ms if s is not None else newest_ms(m)
            out.append(RowInfo(u, clv[i], risk[i], res[2 + 2 * i], days, mean, now))
        return out

    async def write_index(self, ids: list[str], clv: np.ndarray, chunk: int = 5000) -> None:
        """Replace the value index with ``ids`` -> ``clv`` in one RENAME."""
        tmp = f"{self.index_key}:building"
        await self.r.delete(tmp)
        for k in range(0, len(ids), chunk):
            part = dict(zip(ids[k:k + chunk], clv[k:k + chunk].tolist(), strict=True))
            await self.r.zadd(tmp, part)
        if ids:
            await self.r.rename(tmp, self.index_key)
        else:
            await self.r.delete(self.index_key)
