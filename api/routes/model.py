"""``GET /v1/model``: the newest model checkpoint and its prequential quality."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ModelsDep, SettingsDep
from api.overview import quality_points
from api.schemas import ModelInfo
from core.rules import RULE_NAME
from core.scoring import model_speaks
from core.timefmt import rfc3339

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo)
async def model(models: ModelsDep, settings: SettingsDep) -> ModelInfo:
    """Version, examples learned, label counts and prequential metrics (test-then-train
    over the last ``CHURN_METRICS_WINDOW`` examples) of the newest checkpoint, with the
    cold-start rule's ROC-AUC on the same examples (``rule_rocauc``): the model speaks
    once it has ``min_labels`` examples and ranks them at least as well as the rule."""
    meta = await models.meta()
    metrics: dict[str, float | None] = dict(meta.get("metrics", {}))
    examples = int(meta.get("examples", 0))
    labels = {str(y): int(metrics.pop(f"label_{y}", 0) or 0) for y in (0, 1)}
    value_inputs = bool(metrics.pop("value_inputs", 0))
    for name in ("examples", "invalid", "repeats"):
        metrics.pop(name, None)
    extra: dict[str, Any] = {k: metrics.pop(k, None) for k in (
        "champion", "champion_since_ms", "champion_since_examples", "calibration",
        "candidates", "switches", "history")}
    if extra["champion"] is not None:
        scorer = str(extra["champion"])
    else:  # a checkpoint from before the champion
        speaks = meta.get("version") and model_speaks(
            examples, settings.min_labels, metrics.get("rocauc"), metrics.get("rule_rocauc"),
            settings.model_handoff == "compare")
        scorer = f"model:{settings.model_pipeline}" if speaks else RULE_NAME
    since = extra["champion_since_ms"]
    updated = meta.get("updated_at")
    return ModelInfo(version=int(meta.get("version", 0)), pipeline=settings.model_pipeline,
                     scorer=scorer, examples=examples, min_labels=settings.min_labels,
                     labels=labels, metrics=metrics, value_inputs=value_inputs,
                     updated_at=float(updated) if updated is not None else None,
                     champion=extra["champion"],
                     champion_since=rfc3339(int(since)) if since is not None and since >= 0
                     else None,
                     champion_since_examples=int(extra["champion_since_examples"] or 0),
                     calibration=extra["calibration"], candidates=extra["candidates"] or {},
                     switches=extra["switches"] or [],
                     history=quality_points({"history": extra["history"]}))
