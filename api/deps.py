"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.settings import Settings
from state.models import ModelStore
from state.redis_store import RedisFeatureStore


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> RedisFeatureStore:
    store: RedisFeatureStore = request.app.state.store
    return store


async def get_models(request: Request) -> ModelStore:
    models: ModelStore = request.app.state.models
    return models


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RedisFeatureStore, Depends(get_store)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
