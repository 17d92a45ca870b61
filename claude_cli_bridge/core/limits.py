"""The subscription's rate-limit windows: a neutral event a turn yields.

``RateLimitInfo`` is one reading of the windows (the CLI's ``rate_limit_event`` lines, parsed
by ``cli.wire.rate_limit_info``): the overall status, the window that limits and its reset,
and each window's use. It is never shown to clients (the engine keeps the latest state, see
``windows.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .turn import TurnEvent

# The windows the CLI names, in display order, with the words people use for them.
WINDOW_LABELS = {
    "five_hour": "5-hour",
    "seven_day": "7-day",
    "seven_day_opus": "7-day Opus",
    "seven_day_sonnet": "7-day Sonnet",
    "seven_day_overage_included": "7-day (overage included)",
    "overage": "overage",
}


def window_label(name: str | None) -> str:
    return WINDOW_LABELS.get(name or "", name or "subscription")


@dataclass(frozen=True)
class WindowReading:
    """One window as last reported: fraction used (0..1, may pass 1), reset (epoch seconds),
    and the window's own status when the upstream sent one."""

    name: str
    utilization: float | None = None
    resets_at: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class RateLimitInfo:
    """One ``rate_limit_event``: the overall ``status`` (``rejected`` means requests are refused
    until ``resets_at``), the ``window`` that limits, and every window the line carried."""

    status: str
    window: str | None = None
    resets_at: int | None = None
    utilization: float | None = None
    using_overage: bool = False
    windows: tuple[WindowReading, ...] = ()
    overage_status: str | None = None
    overage_resets_at: int | None = None

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"


# What a CLI turn yields: the neutral turn events, plus rate-limit readings the engine keeps.
CliEvent = TurnEvent | RateLimitInfo
