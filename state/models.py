"""Versioned model checkpoints in Redis.

A checkpoint is the whole learner state (pipeline, prequential window, counts)
plus the offset of the last ``training.examples`` record it has learned, saved
atomically, so a restarted learner resumes exactly where the checkpoint stands:
no example learned twice, none lost. Workers poll the version to hot-reload.

Keys: ``<prefix>:model:meta`` (hash: version, offset, examples, metrics JSON,
updated_at) and ``<prefix>:model:ckpt:<version>`` (pickle); only the newest
``keep`` checkpoints are kept.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from typing import Any, NamedTuple

# classes older checkpoints name where they used to live: (module, name) -> module now
MOVED = {("core.metrics", "Prequential"): "core.prequential",
         ("stream.learner", "LearnerState"): "stream.learner.state",
         ("core.candidates", "SharedScaler"): "core.fast_linear"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get((module, name), module), name)


def loads(blob: bytes) -> Any:
    """A checkpoint's state, also from checkpoints written before a class moved."""
    return _Unpickler(io.BytesIO(blob)).load()


class Checkpoint(NamedTuple):
    version: int
    offset: int  # last learned offset of training.examples (-1: none)
    examples: int
    state: Any  # whatever the learner pickles
    metrics: dict[str, float]


def _finite(v: Any) -> Any:
    """JSON without NaN (null instead), in nested dicts and lists too.

    >>> _finite({"a": float("nan"), "b": [1.0, {"c": float("nan")}]})
    {'a': None, 'b': [1.0, {'c': None}]}
    """
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and v != v else v


class ModelStore:
    def __init__(self, client: Any, prefix: str = "churn", keep: int = 3) -> None:
        self.r = client
        self.meta_key = f"{prefix}:model:meta"
        self.ckpt_prefix = f"{prefix}:model:ckpt:"
        self.keep = keep

    async def save(self, state: Any, offset: int, examples: int,
                   metrics: dict[str, float]) -> int:
        """Store a new version atomically; returns it."""
        version = int(await self.r.hincrby(self.meta_key, "next_version", 1))
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        clean = _finite(metrics)  # NaN -> null, at any depth
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.ckpt_prefix}{version}", blob)
        pipe.hset(self.meta_key, mapping={
            "version": version, "offset": offset, "examples": examples,
            "metrics": json.dumps(clean), "updated_at": time.time()})
        if version > self.keep:
            pipe.delete(f"{self.ckpt_prefix}{version - self.keep}")
        await pipe.execute()
        return version

    async def version(self) -> int:
        raw = await self.r.hget(self.meta_key, "version")
        return int(raw) if raw is not None else 0

    async def meta(self) -> dict[str, Any]:
        raw = await self.r.hgetall(self.meta_key)
        out: dict[str, Any] = {(k.decode() if isinstance(k, bytes) else k):
                               (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
        if "metrics" in out:
            out["metrics"] = json.loads(out["metrics"])
        for name in ("version", "offset", "examples"):
            if name in out:
                out[name] = int(out[name])
        return out

    async def load(self) -> Checkpoint | None:
        """The newest checkpoint, or None before the first save."""
        meta = await self.meta()
        if "version" not in meta:
            return None
        blob = await self.r.get(f"{self.ckpt_prefix}{meta['version']}")
        if blob is None:  # pragma: no cover - meta and blob are written in one transaction
            raise RuntimeError(f"checkpoint {meta['version']} missing")
        return Checkpoint(meta["version"], meta["offset"], meta["examples"], loads(blob),
                          meta.get("metrics", {}))
