"""Token budgets per client key: ``tokens_per_day`` (UTC days) and ``tokens_per_week`` (ISO
weeks), input plus output tokens as the upstream reported them for the key's turns.

Checked before a turn starts: a key at or past a budget gets a 429 naming the key and the
budget, with Retry-After until the day or week ends. A turn already running is never cut: its
tokens are charged when it ends (so a key may pass its budget by at most its last turns).
Budgets survive a restart: at start the counts are read back from the usage ledger
(``observe.ledger``), which records every served request with its key and tokens.

One owner (``TokenBudgets``), used from the event loop only: no locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core.caller import Caller
from ..errors import KeyLimitReached


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def week_of(at: float) -> str:
    year, week, _ = datetime.fromtimestamp(at, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def seconds_to_next_day(at: float) -> int:
    moment = datetime.fromtimestamp(at, UTC)
    tomorrow = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - moment).total_seconds()))


def seconds_to_next_week(at: float) -> int:
    moment = datetime.fromtimestamp(at, UTC)
    monday = (moment + timedelta(days=7 - moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((monday - moment).total_seconds()))


def _epoch(value: Any) -> float | None:
    """The ledger's ISO 8601 time ("2026-12-03T05:24:47.123Z") as epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class TokenBudgets:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._used: dict[tuple[str, str], int] = {}  # (key, "YYYY-MM-DD" or "YYYY-Www") -> tokens

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """Count the ledger's usage rows (``time`` ISO 8601, ``key_label``, ``input_tokens``, ``output_tokens``)."""
        for row in rows:
            key, at = row.get("key_label"), _epoch(row.get("time"))
            if isinstance(key, str) and key and at is not None:
                tokens = sum(v for v in (row.get("input_tokens"), row.get("output_tokens")) if isinstance(v, int))
                self.charge(key, tokens, at)

    def charge(self, key: str, tokens: int, at: float | None = None) -> None:
        if not key or tokens <= 0:
            return
        at = self._clock() if at is None else at
        for period in (day_of(at), week_of(at)):
            self._used[(key, period)] = self._used.get((key, period), 0) + tokens

    def used(self, key: str) -> tuple[int, int]:
        """(tokens today, tokens this ISO week) of ``key``."""
        now = self._clock()
        return self._used.get((key, day_of(now)), 0), self._used.get((key, week_of(now)), 0)

    def check(self, caller: Caller) -> None:
        """Raise KeyLimitReached (429, Retry-After until the period ends) for a key at or past
        one of its budgets."""
        if caller.name is None or (caller.tokens_per_day is None and caller.tokens_per_week is None):
            return
        now = self._clock()
        today, week = self.used(caller.name)
        if caller.tokens_per_day is not None and today >= caller.tokens_per_day:
            raise KeyLimitReached(
                f"The key {caller.name!r} used {today} tokens today (UTC), its tokens_per_day budget is "
                f"{caller.tokens_per_day}; it frees at midnight UTC.",
                retry_after=seconds_to_next_day(now),
            )
        if caller.tokens_per_week is not None and week >= caller.tokens_per_week:
            raise KeyLimitReached(
                f"The key {caller.name!r} used {week} tokens this week (ISO, UTC), its tokens_per_week budget is "
                f"{caller.tokens_per_week}; it frees on Monday 00:00 UTC.",
                retry_after=seconds_to_next_week(now),
            )
