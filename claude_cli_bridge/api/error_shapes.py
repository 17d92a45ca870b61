"""Each API's error shape (status mapping and body), and the one path -> shape rule.

A turn surface names its shape in its declaration (``pipeline.Surface.errors``), so its
errors render in it whatever its path. Errors raised before any route runs (the key
middleware's 401, a 404 for an unknown route) and those of the other routes (model lists,
stored responses, embeddings) have no surface: ``for_path`` picks theirs: ``/api/*`` gets
Ollama's ``{"error": "..."}``, ``/v1/messages*`` Anthropic's ``{"type": "error", "error":
{...}}``, everything else (``/v1/responses`` included) OpenAI's ``{"error": {...}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from ..errors import BridgeError
from .anthropic import errors as anthropic_errors
from .ollama import errors as ollama_errors
from .openai.translate import error_body as openai_error_body


@dataclass(frozen=True)
class ErrorShape:
    """How one API answers an error before the first byte: its status and its body."""

    name: str
    status: Callable[[BridgeError], int]
    body: Callable[[BridgeError], Any]
    #: Headers of the API's own that an error carries (the Anthropic API's rate-limit ones).
    headers: Callable[[BridgeError], dict[str, str]] = lambda error: {}

    def render(self, error: BridgeError, headers: dict[str, str] | None = None) -> JSONResponse:
        """The error as an HTTP response, with ``retry-after`` and ``x-should-retry: false``
        (the OpenAI and Anthropic SDKs read them) where they apply."""
        extra = {**self.headers(error), **(headers or {})}
        if error.retry_after is not None:
            extra["retry-after"] = str(int(error.retry_after))
        if not error.retry:
            extra["x-should-retry"] = "false"
        return JSONResponse(self.body(error), status_code=self.status(error), headers=extra)


def _own_status(error: BridgeError) -> int:
    return error.status


OPENAI = ErrorShape("openai", _own_status, openai_error_body)


def unified_limit_headers(error: BridgeError) -> dict[str, str]:
    """A window's refusal as the upstream words it (CLI 2.1.332 reads these on a 429 to show
    its usage-limit message and reset time rather than "temporarily limiting requests")."""
    if error.limit is None:
        return {}
    claim, resets_at = error.limit
    headers = {"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": str(resets_at)}
    if claim:
        headers["anthropic-ratelimit-unified-representative-claim"] = claim
    return headers


ANTHROPIC = ErrorShape("anthropic", anthropic_errors.error_status, anthropic_errors.error_body, unified_limit_headers)
OLLAMA = ErrorShape("ollama", ollama_errors.error_status, ollama_errors.error_body)


def for_path(path: str) -> ErrorShape:
    """The shape for an error that no surface renders (see the module docstring)."""
    if path.startswith("/api/"):
        return OLLAMA
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC
    return OPENAI
