"""Ollama routes (https://github.com/ollama/ollama/blob/main/docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter


router = APIRouter()

# Open WebUI parses this with int() per part and gates features on it: report a recent
# Ollama release rather than the bridge's own version.
OLLAMA_VERSION = "0.12.6"


@router.get("/api/version", tags=["ollama"])
@router.get("/version", tags=["ollama"], include_in_schema=False)
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}
