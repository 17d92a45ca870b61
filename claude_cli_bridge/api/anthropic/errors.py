"""Anthropic's error shape and statuses (https://docs.anthropic.com/en/api/errors).

``{"type": "error", "error": {"type": ..., "message": ...}}``. The bridge's typed errors keep
their status, except overload: a full pool and an overloaded upstream both answer 529
``overloaded_error``, which the anthropic SDKs and Claude Code retry after ``retry-after``.
"""

from __future__ import annotations

from typing import Any

from ...errors import BridgeError, Draining, PoolBusy

OVERLOADED = 529
TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    OVERLOADED: "overloaded_error",
}


def error_status(error: BridgeError) -> int:
    if isinstance(error, Draining):
        return 503  # not 529: a router in front (nginx's proxy_next_upstream) retries a 503 elsewhere
    if isinstance(error, PoolBusy) or error.kind == "overloaded_error":
        return OVERLOADED
    return error.status


def error_type(error: BridgeError) -> str:
    if isinstance(error, Draining):
        return "overloaded_error"
    return TYPES_BY_STATUS.get(error_status(error), "api_error")


def error_body(error: BridgeError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error), "message": error.message}}
