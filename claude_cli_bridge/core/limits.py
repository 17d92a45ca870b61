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

import math
from collections.abc import Mapping
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

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Parse an upstream response's ``anthropic-ratelimit-unified-*`` headers (the tap reads
        them from every response, 429s included, whatever the login); None without any.

        ``-status`` is the overall status, ``-representative-claim`` the limiting window and
        ``-reset`` its reset; per window (``5h``, ``7d``, ``7d_opus``, ...) ``-utilization``,
        ``-reset`` and ``-status``; ``-overage-status`` and ``-overage-reset`` the overage.
        As the CLI does, overage is in use when the status is rejected and overage allowed.
        """
        unified = {
            key.lower()[len(UNIFIED) :]: value for key, value in headers.items() if key.lower().startswith(UNIFIED)
        }
        if not unified:
            return None
        readings: dict[str, dict[str, Any]] = {}
        for key, value in unified.items():
            short, _, field = key.rpartition("-")
            if short and field in ("utilization", "reset", "status"):
                readings.setdefault(short, {})[field] = value
        windows = tuple(
            WindowReading(
                name=HEADER_WINDOWS.get(short, short),
                utilization=_number(_parse_float(raw.get("utilization"))),
                resets_at=_epoch(_parse_float(raw.get("reset"))),
                status=_text(raw.get("status")),
            )
            for short, raw in readings.items()
            if short != "overage" or "utilization" in raw
        )
        status = _text(unified.get("status")) or "unknown"
        overage_status = _text(unified.get("overage-status"))
        claim = _text(unified.get("representative-claim"))
        return cls(
            status=status,
            window=HEADER_WINDOWS.get(claim, claim) if claim else None,
            resets_at=_epoch(_parse_float(unified.get("reset"))),
            using_overage=status == "rejected" and overage_status in ("allowed", "allowed_warning"),
            windows=windows,
            overage_status=overage_status,
            overage_resets_at=_epoch(_parse_float(unified.get("overage-reset"))),
        )


# What a CLI turn yields: the neutral turn events, plus rate-limit readings the engine keeps.
CliEvent = TurnEvent | RateLimitInfo


UNIFIED = "anthropic-ratelimit-unified-"
# Header names of the windows -> the names the CLI's rate_limit_event uses.
HEADER_WINDOWS = {"5h": "five_hour", "7d": "seven_day", "7d_opus": "seven_day_opus", "7d_sonnet": "seven_day_sonnet"}


def _parse_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epoch(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
