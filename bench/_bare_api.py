"""Baseline for bench/api_latency.py: a bare FastAPI route returning a constant, served
by uvicorn with the same settings as ``churnstream api``."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/const")
async def const() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
