"""The operator's routes: ``/health`` (the summary to anyone, the details behind a key),
``/ready`` (whether a turn would be taken now, for routers and health checks) and ``GET /``
(Ollama's liveness answer). They read what ``create_app`` keeps on ``app.state``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from .. import __version__
from . import auth, state
from .readiness import readiness

router = APIRouter()


@router.get("/health", tags=["bridge"])
async def health(request: Request) -> Any:
    app_state = request.app.state
    status = state.engine(request).status().as_json()
    draining = app_state.drain.draining
    if draining:  # 503 at once: a router's health check takes this bridge out
        status["status"] = "draining"
    summary = {
        "status": status["status"],
        "version": __version__,
        "cli_found": True,
        "cli_version": status["cli_version"],
    }
    if app_state.keyring.identify(auth.presented_key(dict(request.headers))) is None:
        body = summary  # open to anyone: no paths, process ids or pool details without a key
    else:
        body = {**summary, **status}
        reloader = getattr(app_state, "reloader", None)
        if reloader is not None:
            body["accounts_file"] = reloader.status()
    return JSONResponse(body, status_code=503) if draining else body


@router.get("/ready", tags=["bridge"])
@router.head("/ready", include_in_schema=False)
async def ready(request: Request) -> JSONResponse:
    """Whether a turn would be taken now; reads state only (no quota, no process)."""
    settings = state.settings(request)
    verdict = readiness(
        state.engine(request).status(),
        queue_size=settings.queue_size,
        draining=request.app.state.drain.draining,
        drain_retry_after=settings.drain_retry_after_seconds,
    )
    headers = {"retry-after": str(verdict.retry_after)} if verdict.retry_after is not None else {}
    return JSONResponse(verdict.body(), status_code=200 if verdict.ready else 503, headers=headers)


@router.get("/", include_in_schema=False)
@router.head("/", include_in_schema=False)
async def root() -> PlainTextResponse:
    return PlainTextResponse("Ollama is running")
