"""The ASGI middleware that gives each API request its ``RequestRecord`` and hands the finished
record to the observer once the response's last byte is sent (or the client left).

Outermost in the app, so refusals by the key check are recorded too. /health, /metrics, the
dashboard and the root "is it running" probe are not API requests and are not recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ..core.record import RequestRecord, current_record

UNOBSERVED_PREFIXES = (
    "/health",
    "/ready",
    "/metrics",
    "/dashboard",
    "/docs",
    "/openapi.json",
    "/redoc",
    "/favicon.ico",
)


def observed(method: str, path: str) -> bool:
    return method != "OPTIONS" and path != "/" and not path.startswith(UNOBSERVED_PREFIXES)


def api_of(path: str) -> str:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/api/"):
        return "ollama"
    return "openai"


def router_headers(record: RequestRecord) -> list[tuple[bytes, bytes]]:
    """What a router or client in front needs to pin a conversation's later turns to this
    bridge: ``x-conversation-id`` (send it back to continue the held process), how the
    CLI process was found (``x-bridge-process``: held, spare, cold, with " queued") and the
    account whose login answered (``x-bridge-account``)."""
    headers = []
    if record.conversation_id and _header_safe(record.conversation_id):
        headers.append((b"x-conversation-id", record.conversation_id.encode("ascii")))
    if record.how:
        headers.append((b"x-bridge-process", record.how.encode("latin-1")))
    if record.account:
        headers.append((b"x-bridge-account", record.account.encode("ascii")))  # which login answered
    return headers


def _header_safe(value: str) -> bool:
    """A client's id (an `id` in the body may hold anything) is echoed only as printable
    ASCII of a sane length: never a line break into the response's headers."""
    return len(value) <= 256 and value.isascii() and value.isprintable() and value == value.strip()


class ObserveMiddleware:
    def __init__(self, app: Any, finish: Callable[[RequestRecord], None]):
        self.app = app
        self.finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not observed(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        # The key's name is noted by the app's key check (api/app.py), which identifies the caller.
        record = RequestRecord(method=scope["method"], path=scope["path"], api=api_of(scope["path"]))
        state = {"status": 0, "done": False}

        async def observing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message = {**message, "headers": [*(message.get("headers") or []), *router_headers(record)]}
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if record.stream is None and record.turn and message["status"] == 200:
                    record.stream = content_type.startswith((b"text/event-stream", b"application/x-ndjson"))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["done"] = True

        token = current_record.set(record)
        try:
            await self.app(scope, receive, observing_send)
        except BaseException:
            if not state["status"]:
                state["status"] = 500
            raise
        finally:
            current_record.reset(token)
            route = scope.get("route")
            record.route = getattr(route, "path", "") or "(no route)"
            if (not state["done"] and not record.in_band_error) or state["status"] == 499:
                record.client_gone = True
            record.finish(state["status"] or 499)
            self.finish(record)
