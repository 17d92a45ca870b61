"""What the pool's one task owns: the shared state of ``owner.Pool`` (the public face),
``owner.Owner`` (the messages) and ``placement.Placement`` (the decisions).

Only the owner task changes it (``Pool`` reads it for ``snapshot``); the tasks that launch,
stop and watch processes report back as messages through ``post``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from .backoff import LaunchBackoff
from .records import Close, Launch, P, PoolLimits, Request
from .spares import SpareDemand
from .table import ProcessTable


@dataclass(eq=False)
class PoolState(Generic[P]):
    launch: Launch[P]
    limits: PoolLimits
    clock: Callable[[], float]
    inbox: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    waiting: deque[Request] = field(default_factory=deque)  # requests waiting for room, first come first served
    memory_bytes: int = 0  # the processes' resident memory at the last reaping
    closing: bool = False
    close_waiters: list[Close] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)  # account -> login generation (retire_account)
    # Workers (tap.inject): a process given back after a turn is a spare again, so a busy one
    # counts towards its profile's spares (else each turn would launch a replacement and each
    # tick retire the surplus).
    workers: bool = False
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("held", "spare", "cold", "busy_refusals", "evictions", "launched", "launch_failures"), 0))  # fmt: skip
    table: ProcessTable = field(init=False)
    spares: SpareDemand = field(init=False)
    backoff: LaunchBackoff = field(init=False)

    def __post_init__(self) -> None:
        self.table = ProcessTable(self.post)
        limits = self.limits
        self.spares = SpareDemand(
            self.clock, limits.spare_demand_window_seconds, limits.spare_profiles, limits.max_spares_per_profile
        )
        self.backoff = LaunchBackoff(self.clock, limits.backoff_max_seconds, self.table.launching)

    def post(self, message: object) -> None:
        """A message for the owner task."""
        self.inbox.put_nowait(message)
