"""Bearer-key enforcement for both APIs (``BRIDGE_API_KEY``).

Keys come as ``Authorization: Bearer KEY`` (OpenAI SDKs, Ollama clients) or ``x-api-key``
(Anthropic style). They are compared in constant time. ``/health`` and ``GET /`` stay open
so that liveness checks and Ollama's "is it running" probe need no key.
"""

from __future__ import annotations

import hmac

OPEN_PATHS = {("GET", "/health"), ("HEAD", "/health"), ("GET", "/"), ("HEAD", "/")}


def presented_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


def key_is_valid(presented: str | None, keys: list[str]) -> bool:
    if presented is None:
        return False
    candidate = presented.encode()
    # Compare against every key, so the time taken does not reveal which one matched.
    matches = [hmac.compare_digest(candidate, key.encode()) for key in keys]
    return any(matches)


def needs_key(method: str, path: str) -> bool:
    return (method, path) not in OPEN_PATHS and method != "OPTIONS"
