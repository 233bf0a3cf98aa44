"""Everything a route reads from the application, in one place: plain accessors (for
the hot routes that read the request by hand, see ``api/routes/users.py``) and the same
as ``Annotated`` dependencies. Routes never touch ``request.app.state`` themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request

from api.value import FitCache
from core.playbook import Playbook
from core.settings import Settings
from core.tiers import TierPolicy
from state.models import ModelStore
from state.redis_store import RedisFeatureStore

if TYPE_CHECKING:
    from api.metrics import ApiMetrics
    from api.routes.events import Producer


def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def store_of(request: Request) -> RedisFeatureStore:
    return cast(RedisFeatureStore, request.app.state.store)


def models_of(request: Request) -> ModelStore:
    return cast(ModelStore, request.app.state.models)


def fits_of(request: Request) -> FitCache:
    """The customer-value fits (the newest, and the one serving on each day)."""
    return cast(FitCache, request.app.state.value_fits)


def policy_of(request: Request) -> TierPolicy:
    return cast(TierPolicy, request.app.state.tier_policy)


def playbook_of(request: Request) -> Playbook:
    return cast(Playbook, request.app.state.playbook)


def producer_of(request: Request) -> Producer:
    return cast("Producer", request.app.state.producer)


def metrics_of(request: Request) -> ApiMetrics:
    return cast("ApiMetrics", request.app.state.metrics)


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_store(request: Request) -> RedisFeatureStore:
    return store_of(request)


async def get_models(request: Request) -> ModelStore:
    return models_of(request)


async def get_fits(request: Request) -> FitCache:
    return fits_of(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RedisFeatureStore, Depends(get_store)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
FitsDep = Annotated[FitCache, Depends(get_fits)]
