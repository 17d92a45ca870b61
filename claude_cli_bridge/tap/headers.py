"""The subscription's windows read from an upstream response's headers (pure).

Every upstream response, 429s included and whatever the login, carries
``anthropic-ratelimit-unified-*`` headers (CLI_NOTES.md): ``-status`` (allowed,
allowed_warning, rejected), ``-representative-claim`` (the window that limits) and ``-reset``
(its reset, epoch seconds); per window (``5h``, ``7d``, ``7d_opus``, ...) ``-utilization``
(fraction used), ``-reset`` and ``-status``; ``-overage-status`` and ``-overage-reset``. The
tap hands them to ``rate_limit_from_headers``, which gives the same ``RateLimitInfo`` the
CLI's ``rate_limit_event`` lines give (``cli.wire.rate_limit_info``), window names included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..core.limits import RateLimitInfo, WindowReading

UNIFIED = "anthropic-ratelimit-unified-"
# Header names of the windows -> the names the CLI's rate_limit_event uses.
HEADER_WINDOWS = {
    "5h": "five_hour",
    "7d": "seven_day",
    "7d_opus": "seven_day_opus",
    "7d_sonnet": "seven_day_sonnet",
    "7d_oi": "seven_day_overage_included",
}


def rate_limit_from_headers(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The reading the headers carry; None without any unified header. Values that do not
    parse are dropped, never guessed. As the CLI does, overage is in use when the status is
    rejected and overage allowed."""
    unified = {key.lower()[len(UNIFIED) :]: value for key, value in headers.items() if key.lower().startswith(UNIFIED)}
    if not unified:
        return None
    readings: dict[str, dict[str, str]] = {}
    for key, value in unified.items():
        short, _, field = key.rpartition("-")
        if short and field in ("utilization", "reset", "status"):
            readings.setdefault(short, {})[field] = value
    windows = tuple(
        WindowReading(
            name=HEADER_WINDOWS.get(short, short),
            utilization=_number(raw.get("utilization")),
            resets_at=_epoch(raw.get("reset")),
            status=_text(raw.get("status")),
        )
        for short, raw in readings.items()
        if short != "overage" or "utilization" in raw
    )
    status = _text(unified.get("status")) or "unknown"
    overage_status = _text(unified.get("overage-status"))
    claim = _text(unified.get("representative-claim"))
    return RateLimitInfo(
        status=status,
        window=HEADER_WINDOWS.get(claim, claim) if claim else None,
        resets_at=_epoch(unified.get("reset")),
        using_overage=status == "rejected" and overage_status in ("allowed", "allowed_warning"),
        windows=windows,
        overage_status=overage_status,
        overage_resets_at=_epoch(unified.get("overage-reset")),
    )


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _epoch(value: str | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
