"""Bearer-key enforcement for every API (``BRIDGE_API_KEY``).

Keys come as ``Authorization: Bearer KEY`` (OpenAI SDKs, Ollama clients), ``x-api-key``
(Anthropic style), or as the password of ``Authorization: Basic`` (a browser opening the
dashboard asks for it; the user name is ignored). They are compared in constant time.
``/health`` and ``GET /`` stay open so that liveness checks and Ollama's "is it running" probe
need no key.
"""

from __future__ import annotations

import base64
import binascii
import hmac

OPEN_PATHS = {(method, path) for method in ("GET", "HEAD") for path in ("/health", "/ready", "/")}


def presented_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
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
