"""The shape the bridge's own ASGI middlewares share: plain ASGI (not Starlette's
``BaseHTTPMiddleware``, which hides a client's disconnect from the handlers below it: a
non-streaming turn whose client left would run to its end), HTTP requests only (lifespan and
websocket scopes pass straight through), and a refusal rendered by ``refuse(request)`` in the
API shape of the request's path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class Gate:
    """A middleware that sees each HTTP request (``http``) and may refuse it (``refused``)."""

    def __init__(self, app: Any, refuse: Callable[[Request], Response]) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def refused(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.refuse(Request(scope, receive))(scope, receive, send)
