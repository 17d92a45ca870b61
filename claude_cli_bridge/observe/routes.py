"""/metrics (Prometheus text) and /dashboard (a page polling /dashboard/data), on both ports,
behind the key like every route but /health and GET /."""

from __future__ import annotations

import asyncio
import importlib.resources
from typing import Any

import psutil
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import __version__
from ..core.status import BridgeStatus
from ..errors import ModelNotFound
from .metrics import CONTENT_TYPE

router = APIRouter(include_in_schema=False)

STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.observer.metrics.render(), media_type=CONTENT_TYPE)


def _asset(name: str) -> bytes:
    return (importlib.resources.files("claude_cli_bridge.dashboard") / "static" / name).read_bytes()


@router.get("/dashboard")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers={"cache-control": "no-store"})


@router.get("/dashboard/static/{name}")
async def dashboard_asset(name: str) -> Response:
    if name not in STATIC:
        raise ModelNotFound(f"No dashboard file {name!r}.")
    return Response(_asset(name), media_type=STATIC[name], headers={"cache-control": "no-cache"})


@router.get("/dashboard/data")
async def dashboard_data(request: Request) -> dict[str, Any]:
    """Everything the page shows, in one poll: the same numbers as /health, the latest
    requests, usage per model per day and failed requests per route from the ledger."""
    observer = request.app.state.observer
    status: BridgeStatus = request.app.state.engine.status()
    health = status.as_json()
    processes = await asyncio.to_thread(_with_memory, health["pool"]["process_list"])
    recent = [record.as_dict() for record in reversed(observer.recent)]
    return {
        "version": __version__,
        "status": status.status,
        "degraded": status.degraded,
        "cli_version": status.cli_version,
        "cli_path": status.cli_path,
        "features": health["features"],
        "pool": health["pool"],
        "processes": processes,
        "subscription": health["subscription"],
        "accounts": health["accounts"],
        "failovers": status.failovers,
        "key_budgets": _key_budgets(request),
        "usage_by_key": observer.ledger.summary(14, "key"),
        "usage_by_account": observer.ledger.summary(14, "account"),
        "recent": recent[:50],
        "usage": observer.ledger.summary(14),
        "errors": observer.ledger.errors_by_route(14),
    }


def _key_budgets(request: Request) -> list[dict[str, Any]]:
    """Each key's use against its budgets (``create_app`` wires it; none without keys)."""
    view = getattr(request.app.state, "key_budgets", None)
    return view() if view is not None else []


def _with_memory(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each process with its resident memory (the CLI and its children), read now."""
    out = []
    for process in processes:
        rss = 0
        try:
            root = psutil.Process(process.get("pid"))
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except (psutil.Error, TypeError, ValueError):
            pass
        out.append({**process, "rss_mb": round(rss / 1024 / 1024, 1)})
    return out
