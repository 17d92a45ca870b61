"""Draining on SIGTERM, so a router in front moves traffic before the process exits.

From the first SIGTERM on (``server.DrainingServer`` calls ``Drain.begin``): ``/health``
answers 503 ``draining``, requests already running go on (a streaming answer too), and every
new request that could start work (anything but GET, HEAD and OPTIONS) is refused with a
503 and ``Retry-After: DRAIN_RETRY_AFTER_SECONDS`` in its API's error shape. The server
exits once nothing is in flight, or after ``SHUTDOWN_GRACE_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .gate import Gate

READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class Drain:
    """Whether the server is draining, since when, and how many requests are in flight."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.since: float | None = None
        self.in_flight = 0

    @property
    def draining(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since = self._clock()

    def elapsed(self) -> float:
        return 0.0 if self.since is None else self._clock() - self.since


class DrainMiddleware(Gate):
    """Counts requests in flight; while draining, refuses new work with ``refuse(request)``."""

    def __init__(self, app: Any, drain: Drain, refuse: Callable[[Request], Response]) -> None:
        super().__init__(app, refuse)
        self.drain = drain

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.drain.draining and scope["method"] not in READ_ONLY:
            await self.refused(scope, receive, send)
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1
