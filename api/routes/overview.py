"""``GET /v1/overview``: users per tier now and churned, the monthly picture (active, new,
retained, returning, churned customers and the churn rate per calendar month) and the
cohort retention table, as JSON or CSV (the monthly rows)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import FitsDep, ModelsDep, SettingsDep, StoreDep
from api.errors import responses
from api.overview import overview as build
from api.schemas import MonthFigures, Overview

router = APIRouter(prefix="/v1", tags=["overview"])
CSV_COLUMNS = tuple(MonthFigures.model_fields)


def months_csv(view: Overview) -> str:
    """The monthly rows as CSV (an empty churn rate when nobody was active before)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for m in view.months:
        out.writerow(["" if v is None else v for v in m.model_dump().values()])
    return buf.getvalue()


@router.get("/overview", response_model=Overview,
            responses={200: {"content": {"text/csv": {}}}, **responses(422, 503)})
async def overview(store: StoreDep, settings: SettingsDep, fits: FitsDep, models: ModelsDep,
                   format: Annotated[Literal["json", "csv"], Query(
                       description="csv: the monthly rows")] = "json") -> Overview | Response:
    view = await build(store, settings, fits, models)
    if format == "csv":
        return Response(months_csv(view), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=overview.csv"})
    return view
