"""Ollama's error shape: ``{"error": "message"}``."""

from __future__ import annotations

from ...errors import BridgeError, PoolBusy


def error_body(error: BridgeError) -> dict[str, str]:
    return {"error": error.message}


def error_status(error: BridgeError) -> int:
    """Ollama answers 503 when busy (OpenAI's 429)."""
    return 503 if isinstance(error, PoolBusy) else error.status
