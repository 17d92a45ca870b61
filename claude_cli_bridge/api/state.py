"""Typed access to what ``create_app`` keeps on ``app.state``: the one place that knows the
attribute names, so handlers read ``state.settings(request)`` instead of an ``Any``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from fastapi import Request

from ..core.caller import Caller
from ..core.turn import Engine

if TYPE_CHECKING:  # types only: api/ does not depend on the wiring at run time
    from ..embeddings.engine import EmbeddingEngine
    from ..settings import Settings


def settings(request: Request) -> Settings:
    return cast("Settings", request.app.state.settings)


def engine(request: Request) -> Engine:
    return cast(Engine, request.app.state.engine)


def embeddings(request: Request) -> EmbeddingEngine | None:
    """The embedding engine, or None when this server has none."""
    return cast("EmbeddingEngine | None", getattr(request.app.state, "embeddings", None))


def caller(request: Request) -> Caller | None:
    """Who sent the request (its key's name and what it may do), as the key middleware found
    it (``api/app.py``); None where no middleware ran (the anonymous caller then)."""
    return cast("Caller | None", getattr(request.state, "caller", None))


def tenant(request: Request) -> str:
    """What owns the request's per-conversation state: its key's name, "" without keys."""
    found = caller(request)
    return found.tenant if found is not None else ""


def get(request: Request, name: str) -> Any:
    """Another value kept on app state (a surface's own, such as the Responses store); None if unset."""
    return getattr(request.app.state, name, None)
