"""The console's pages: ``/console`` (overview) and the sign-in; assets under
``/console/static`` (ours) and ``/console/assets`` (plotly.js from the installed wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import plotly
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from api.alerts import crossings_json
from api.console.auth import require_console, safe_next
from api.console.targets import csv_link, query_of, target_list
from api.deps import fits_of, models_of, playbook_of, policy_of, settings_of, store_of
from api.overview import overview
from api.schemas import MonthFigures
from api.security import COOKIE, key_matches, token
from api.targeting import TopQueryChecks
from api.user_risk import default_as_of, user_risk
from core.monthly import COHORT_MONTHS
from core.segments import SEGMENTS
from core.tiers import ALL_TIERS, CHURNED, TIERS
from core.timefmt import rfc3339
from state.store import FEED

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
templates = Jinja2Templates(directory=HERE / "templates")
pages = APIRouter(prefix="/console", include_in_schema=False,
                  dependencies=[Depends(require_console)])
public = APIRouter(prefix="/console", include_in_schema=False)


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(public)
    app.include_router(pages)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"nav": True, **context},
                                      status_code=status)


@public.get("/assets/plotly.min.js")
async def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


@public.get("/login")
async def login_page(request: Request, next: str = "/console") -> HTMLResponse:
    return render(request, "login.html", title="Sign in", nav=False, next=safe_next(next),
                  error=None)


@public.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    key, target = form.get("key", [""])[0], safe_next(form.get("next", [None])[0])
    settings = settings_of(request)
    if settings.api_keys and not key_matches(settings, key):
        return render(request, "login.html", status=401, title="Sign in", nav=False,
                      next=target, error="That key is not one of the API's keys.")
    out = RedirectResponse(target, status_code=303)
    if settings.api_keys:
        out.set_cookie(COOKIE, token(key), httponly=True, samesite="strict",
                       secure=request.url.scheme == "https", path="/")
    return out


@public.post("/logout")
async def logout() -> Response:
    out = RedirectResponse("/console/login", status_code=303)
    out.delete_cookie(COOKIE, path="/")
    return out


@pages.get("")
async def overview_page(request: Request, refresh: int = 0) -> HTMLResponse:
    """``refresh``: reload every that many seconds (5-3600; the demo's URL has it)."""
    view = await overview(store_of(request), settings_of(request), fits_of(request),
                          models_of(request))
    columns = list(MonthFigures.model_fields)
    chart: dict[str, Any] = {c: [getattr(m, c) for m in view.months] for c in columns}
    chart["quality"] = {k: [getattr(q, k) for q in view.quality]
                        for k in ("at", "scorer", "rocauc", "lift_at_10")}
    width = max((len(v) for v in view.cohorts.values()), default=0)
    return render(request, "overview.html", title="Overview", page="overview", view=view,
                  columns=columns, chart=chart, width=min(width, COHORT_MONTHS),
                  refresh=min(3600, max(5, refresh)) if refresh else 0)


@pages.get("/users")
async def search(user_id: str = "") -> Response:
    """The search box: straight to the customer's page."""
    return RedirectResponse(f"/console/users/{quote(user_id.strip(), safe='')}",
                            status_code=303)


@pages.get("/users/{user_id}")
async def user_page(request: Request, user_id: str) -> HTMLResponse:
    view = await store_of(request).user_view(user_id)
    if view is None:
        return render(request, "not_found.html", status=404, title="Unknown customer",
                      user_id=user_id, query=user_id)
    u = await user_risk(user_id, view, default_as_of(view), fits_of(request), settings_of(request),
                        policy_of(request))
    segment = u["segment"]["name"] if u["segment"] else None
    action = playbook_of(request).action(segment, u["tier"] or u["alert_tier"])
    return render(request, "user.html", title=f"Customer {user_id}", page="user", u=u,
                  action=action, query=user_id)


@pages.get("/alerts")
async def alerts_page(request: Request, tier: str = "", limit: int = 100) -> HTMLResponse:
    tier_or_none = tier if tier in ALL_TIERS else None
    limit = max(1, min(FEED, limit))
    rows = crossings_json(await store_of(request).alerts_feed(limit, tier_or_none))
    return render(request, "alerts.html", title="Alerts", page="alerts", rows=rows,
                  tier=tier_or_none, tiers=ALL_TIERS, limit=limit, feed=FEED)


@pages.get("/targets")
async def targets_page(request: Request) -> HTMLResponse:
    params = dict(request.query_params)
    params.setdefault("k", "" if params.get("percent") else "50")
    error, sel, link = None, None, ""
    try:
        q, given = query_of(params)
        TopQueryChecks.model_validate(q._asdict())
        meta = await models_of(request).meta()
        sel = await target_list(store_of(request), settings_of(request), fits_of(request),
                                 playbook_of(request), meta.get("metrics", {}), q)
        link = csv_link(given)
    except (ValueError, ValidationError) as exc:
        given = {k: v for k, v in params.items() if v}
        error = f"That selection is not valid: {str(exc).splitlines()[0]}"
    return render(request, "targets.html", status=422 if error else 200, title="Targeting",
                  page="targets", sel=sel, given=given, csv=link, error=error, tiers=TIERS,
                  segments=SEGMENTS)


@pages.get("/segments")
async def segments_page(request: Request) -> HTMLResponse:
    """Each RFM persona at the newest value fit: size, mean risk, value at risk, the
    playbook's actions per tier, and the persona's targeting list as CSV."""
    fit = await fits_of(request).get()
    book = fit.book if fit is not None else None
    playbook = playbook_of(request)
    rows = []
    for name in SEGMENTS:
        v = (book or {}).get("segments", {}).get(name)
        actions: dict[Any, list[str]] = {}  # the same action for several tiers: one line
        for t in (*TIERS, CHURNED):
            actions.setdefault(playbook.action(name, t), []).append(t)
        rows.append({"name": name, "customers": fit.segments.get(name, 0) if fit else 0,
                     "value": v, "actions": [(tiers, a) for a, tiers in actions.items()],
                     "csv": f"/v1/top?percent=100&segment={name}&format=csv"})
    total = sum(r["customers"] for r in rows) or 1
    return render(request, "segments.html", title="Segments", page="segments", fit=fit,
                  rows=rows, total=total,
                  as_of=rfc3339(fit.as_of_ms) if fit is not None else None)
