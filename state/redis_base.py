"""The Redis connection every part of the Redis backend shares: the redis-py client, the
hot-path and lookup connections (``state/clients/``), the key layout, the scripts.

The backend is split by concern, each a class over this base: per-user state and
partition progress (:mod:`state.redis_events`), scores, tiers and the ranking
(:mod:`state.redis_scores`), label snapshots and clocks (:mod:`state.redis_labels`);
:class:`state.redis_store.RedisFeatureStore` is all three.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.features import HORIZON_DAYS
from state.clients.cluster import ClusterConnection, is_cluster_url, node_url
from state.clients.mux import MuxConnection
from state.clients.resp import RespConnection, pack
from state.keys import Keys
from state.scripts import SCRIPTS

RECOMMENDED_LISTPACK_VALUE = 4096
# the scripts of the feature store (the value scripts are value_rows/value_store's)
FEATURE_SCRIPTS = ("apply_event", "commit_batch", "aggregates_at", "write_scores",
                   "rank_scores")


def _url_of(kw: dict[str, Any]) -> str:
    """redis:// URL of a redis-py pool's connection settings (for the hot-path connection)."""
    auth = ""
    if kw.get("password"):
        user = quote(kw.get("username") or "", safe="")
        auth = f"{user}:{quote(kw['password'], safe='')}@"
    return f"redis://{auth}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def connect(url: str, **options: Any) -> Any:
    """Async client; RESP2 so that replies look the same on Redis 6 and 7. ``options``
    go to redis-py (e.g. ``socket_timeout``). ``redis+cluster://host:port`` (any node of
    a Redis Cluster): redis-py's cluster client, and the stores take the cluster
    placement (state/keys.py)."""
    if is_cluster_url(url):
        return aioredis.RedisCluster.from_url(node_url(url), protocol=2,
                                              decode_responses=False, **options)
    return aioredis.Redis.from_url(url, protocol=2, decode_responses=False, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, aioredis.RedisCluster)


def keys_for(client: Any, prefix: str, partitions: int) -> Keys:
    """The key layout of ``client``'s placement (single Redis or cluster)."""
    return Keys(prefix, partitions=partitions) if is_cluster(client) else Keys(prefix)


def store_prefix(client: Any, prefix: str) -> str:
    """The key prefix of the global stores (models, value fits, worker beats): on a
    cluster, hash-tagged so that each store's keys share one slot."""
    return f"{{{prefix}}}" if is_cluster(client) else prefix


class RedisBase:
    """One Redis (or a Redis-protocol server such as Valkey), its keys and scripts."""

    def __init__(self, client: Any, prefix: str = "churn",
                 horizon_days: int = HORIZON_DAYS, partitions: int = 4) -> None:
        self.r = client
        self.hot: Any
        self.mux: Any
        if is_cluster(client):
            seed = next(iter(client.nodes_manager.startup_nodes.values()))
            url = _url_of({**client.nodes_manager.connection_kwargs, "host": seed.host,
                           "port": seed.port, "db": 0})
            self.hot = ClusterConnection(url)
            self.mux = ClusterConnection(url, factory=MuxConnection)  # the API's lookups
            self.keys = keys = Keys(prefix, partitions=partitions)
        else:
            pool = client.connection_pool
            kw = pool.connection_kwargs
            if "path" in kw or "SSL" in pool.connection_class.__name__:
                raise ValueError("the worker's hot path speaks plain TCP to Redis: use a "
                                 "redis:// URL (no rediss:// or unix socket yet)")
            self.hot = RespConnection(_url_of(kw))
            self.mux = MuxConnection(_url_of(kw))  # the API's concurrent lookups
            self.keys = keys = Keys(prefix)
        self._view_cmds = (b"*3\r\n$8\r\nZREVRANK\r\n" + pack(keys.rank)[4:],
                           pack(b"ZCARD", keys.rank), pack(b"HGETALL", keys.population))
        # the user view's population means and when they were read (state.redis_scores)
        self._view_means: tuple[dict[str, float] | None, float] = (None, 0.0)
        self.horizon = str(horizon_days).encode()
        self._shas: dict[str, str] = {}

    async def close(self) -> None:
        """Close the hot-path and lookup connections (the redis-py client is the caller's)."""
        await self.hot.close()
        await self.mux.close()

    async def load_scripts(self) -> None:
        for name in FEATURE_SCRIPTS:  # (on a cluster, redis-py loads them on every primary)
            sha = await self.r.script_load(SCRIPTS[name])
            self._shas[name] = sha.decode() if isinstance(sha, bytes) else sha

    async def merged(self, name: str) -> dict[bytes, bytes]:
        """The fields of the per-partition structure ``name`` (state/keys.py), merged over
        its shards (one key on a single Redis; on a cluster, the fields are disjoint,
        but the counters of ``stats``, ``months`` and ``tiers``, which :meth:`summed` adds)."""
        shards = self.keys.shards(name)
        if len(shards) == 1:
            return dict(await self.r.hgetall(shards[0]))
        pipe = self.r.pipeline(transaction=False)
        for k in shards:
            pipe.hgetall(k)
        out: dict[bytes, bytes] = {}
        for part in await pipe.execute():
            out.update(part)
        return out

    async def summed(self, name: str) -> dict[str, int]:
        """The counters of ``name`` added over its shards."""
        shards = self.keys.shards(name)
        pipe = self.r.pipeline(transaction=False)
        for k in shards:
            pipe.hgetall(k)
        out: dict[str, int] = {}
        for part in await pipe.execute():
            for k, v in part.items():
                key = k.decode()
                out[key] = out.get(key, 0) + int(v)
        return out

    async def _sha(self, name: str) -> str:
        if name not in self._shas:
            await self.load_scripts()
        return self._shas[name]

    async def check_config(self) -> list[str]:
        """Warnings about server settings that cost memory (not errors)."""
        warnings: list[str] = []
        try:
            cfg = await self.r.config_get("hash-max-*-value")
        except ResponseError:
            return warnings
        for name, value in dict(cfg).items():
            if int(value) < RECOMMENDED_LISTPACK_VALUE:
                nm = name.decode() if isinstance(name, bytes) else name
                warnings.append(f"{nm}={int(value)}: user hashes with dedupe records above that "
                                f"size lose the compact encoding; recommended "
                                f">= {RECOMMENDED_LISTPACK_VALUE}")
        return warnings
