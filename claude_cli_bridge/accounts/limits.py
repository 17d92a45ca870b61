"""Per-key limits, checked before a turn starts: ``max_concurrent`` turns at once and
``requests_per_minute`` within any 60 seconds. One more is refused at once with a 429 and a
``Retry-After`` (for the minute: the seconds until the oldest request leaves the window).

One owner (``KeyLimits``), used from the event loop only: no locks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from ..core.caller import Caller
from ..errors import KeyLimitReached

WINDOW_SECONDS = 60.0


class Admission:
    """A turn let in: ``release()`` (idempotent) when it ends, however it ends."""

    def __init__(self, release: Callable[[], None] | None = None):
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class KeyLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._running: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}

    def running(self, name: str) -> int:
        return self._running.get(name, 0)

    def admit(self, caller: Caller) -> Admission:
        """Let a turn of ``caller`` in, or raise KeyLimitReached (429 with Retry-After)."""
        name = caller.label
        if caller.max_concurrent is None and caller.requests_per_minute is None:
            return Admission()
        if caller.max_concurrent is not None and self.running(name) >= caller.max_concurrent:
            raise KeyLimitReached(
                f"The key {name!r} already runs {caller.max_concurrent} turn(s) at once (its max_concurrent); "
                "retry when one ends.",
                retry_after=1,
            )
        if caller.requests_per_minute is not None:
            now = self._clock()
            recent = self._recent.setdefault(name, deque())
            while recent and recent[0] <= now - WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= caller.requests_per_minute:
                wait = max(1, math.ceil(recent[0] + WINDOW_SECONDS - now))
                raise KeyLimitReached(
                    f"The key {name!r} made {caller.requests_per_minute} requests in the last minute "
                    f"(its requests_per_minute); retry in {wait} s.",
                    retry_after=wait,
                )
            recent.append(now)
        self._running[name] = self.running(name) + 1

        def release() -> None:
            self._running[name] = max(0, self.running(name) - 1)

        return Admission(release)
