"""Where a request's client key is read from, and which routes need one (``accounts.keys``
identifies the key; ``api/app.py`` refuses requests without a valid one).

Keys come as ``Authorization: Bearer KEY`` (OpenAI SDKs, Ollama clients), ``x-api-key``
(Anthropic style), or as the password of ``Authorization: Basic`` (a browser opening the
dashboard asks for it; the user name is ignored). ``/health``, ``/ready`` and ``GET /`` stay
open so that liveness checks and Ollama's "is it running" probe need no key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..core.caller import Caller
from ..core.record import note
from .gate import Gate

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


def needs_key(method: str, path: str) -> bool:
    return (method, path) not in OPEN_PATHS and method != "OPTIONS"


class Identifies(Protocol):
    """What identifies callers (``accounts.keys.KeyRing``)."""

    anonymous: Caller

    @property
    def required(self) -> bool: ...

    def identify(self, presented: str | None) -> Caller | None: ...


class CallerMiddleware(Gate):
    """Finds each request's caller once, from its key, and keeps it in the request's state
    (``request.state.caller``, read by the turn pipeline); with keys configured, notes the
    key's name for the request record and refuses a request without a valid key on every
    route that needs one (``refuse`` renders the 401 in the path's API shape)."""

    def __init__(self, app: Any, keyring: Identifies, refuse: Callable[[Request], Response]) -> None:
        super().__init__(app, refuse)
        self.keyring = keyring

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        caller = self.keyring.identify(presented_key(headers))
        scope.setdefault("state", {})["caller"] = caller or self.keyring.anonymous
        if self.keyring.required:
            note(key_label=caller.label if caller is not None else "invalid")
        if caller is None and needs_key(scope["method"], scope["path"]):
            await self.refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
