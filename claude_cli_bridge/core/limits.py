"""The subscription's rate-limit windows as the CLI reports them: a neutral event, parsed purely.

With a subscription (OAuth) login the CLI reads the upstream's ``anthropic-ratelimit-unified-*``
headers and prints ``{"type": "rate_limit_event", "rate_limit_info": {...}}`` lines
(CLI_NOTES.md "Effort, thinking, rate limits"): ``status`` (allowed, allowed_warning,
rejected) and ``resetsAt`` of the window that limits (``rateLimitType``), and per window in
``unifiedWindows`` its ``utilization`` (fraction used) and ``resetsAt`` (epoch seconds). With an
API key no such line is printed. ``RateLimitInfo`` is what a turn yields for one such line; it
is never shown to clients (the engine keeps the latest state, see ``windows.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    @classmethod
    def from_cli(cls, info: dict[str, Any]) -> RateLimitInfo:
        """Parse ``rate_limit_info``; fields of the wrong type are dropped, never guessed."""
        windows = []
        unified = info.get("unifiedWindows")
        for name, raw in (unified if isinstance(unified, dict) else {}).items():
            if not isinstance(raw, dict):
                continue
            windows.append(
                WindowReading(
                    name=str(name),
                    utilization=_number(raw.get("utilization")),
                    resets_at=_epoch(raw.get("resetsAt", raw.get("resets_at"))),
                    status=_text(raw.get("status")),
                )
            )
        return cls(
            status=_text(info.get("status")) or "unknown",
            window=_text(info.get("rateLimitType")),
            resets_at=_epoch(info.get("resetsAt")),
            utilization=_number(info.get("utilization")),
            using_overage=info.get("isUsingOverage") is True,
            windows=tuple(windows),
            overage_status=_text(info.get("overageStatus")),
            overage_resets_at=_epoch(info.get("overageResetsAt")),
        )


# What a CLI turn yields: the neutral turn events, plus rate-limit readings the engine keeps.
CliEvent = TurnEvent | RateLimitInfo


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epoch(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
