"""What a failed CLI turn means: the error a ``result`` line (or the CLI's text) stands for.

The CLI reports an upstream failure as a result with ``is_error``, the upstream's status in
``api_error_status`` (older CLIs: only in the text, ``API Error: 429 ...``) and its own error
kind in ``api_error`` (``authentication_failed``, ``rate_limit``...); a CLI that is not logged
in says so in words (docs/cli.md "Errors"). This module turns those into the typed errors of
``errors.py``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from ..core.limits import RateLimitInfo, window_label
from ..errors import BridgeError, CliNotLoggedIn, CreditsRequired, ExtraUsageRefused, UpstreamError

#: The result line's ``api_error_code`` for a 429 whose body says the model needs usage credits
#: (docs/cli.md "Limits"): the CLI does not retry it.
CREDITS_REQUIRED = "credits_required"
#: The upstream's words for a subscription turn billed to extra usage (2026: "Third-party apps
#: now draw from your extra usage, not your plan limits...", CLI_NOTES.md).
EXTRA_USAGE = "extra usage"
_STATUS_IN_TEXT = re.compile(r"\b(?:API Error|status(?: code)?)[: ]+(\d{3})\b", re.IGNORECASE)


def status_in_text(message: str) -> int | None:
    """The HTTP status a CLI error text names ("API Error: 429 ..."), for CLIs whose result
    line lacks ``api_error_status``."""
    match = _STATUS_IN_TEXT.search(message)
    return int(match[1]) if match else None


def upstream_error(
    api_status: int | None,
    message: str,
    api_error: str | None = None,
    rate_limit: RateLimitInfo | None = None,
    *,
    now: float | None = None,
    api_error_code: str | None = None,
) -> BridgeError:
    """Map a failed CLI result to a typed error, by the upstream HTTP status it carries, the
    CLI's own error kind (``authentication_failed``, ``rate_limit``...) when it gives one, and
    the upstream body's ``error_code`` (``credits_required``) as the result line passes it on.

    ``rate_limit`` is the turn's last rate-limit reading: when the upstream refused because a
    subscription window is used up, the 429 names that window and its reset, and Retry-After
    points at the reset."""
    if api_status == 429 and rate_limit is not None and rate_limit.rejected and rate_limit.resets_at:
        return window_exhausted(rate_limit.window, rate_limit.resets_at, message, now)
    if api_status == 429 and api_error_code == CREDITS_REQUIRED:
        return CreditsRequired(
            "The upstream refuses this model on this account until usage credits pay for it (429 "
            f"credits_required); the bridge buys none, and a retry will not clear it: {message.strip()}"
        )
    if api_status in (400, 402, 403) and EXTRA_USAGE in message.lower():
        return ExtraUsageRefused(
            "The upstream answers this subscription's turns from its extra usage, not its plan limits "
            f"(upstream {api_status}): {message.strip()}"
        )
    error = _upstream_error(api_status, message, api_error)
    if isinstance(error, UpstreamError):
        error.upstream_status = api_status
    return error


def window_exhausted(window: str | None, resets_at: int, message: str, now: float | None = None) -> UpstreamError:
    """A 429 for a used-up subscription window: which window, when it resets, Retry-After at the
    reset. A reset more than a minute away is not worth an SDK's automatic retries (each would
    run the CLI again for another refusal): ``x-should-retry: false`` then."""
    wait = max(1, int(resets_at - (time.time() if now is None else now)))
    when = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    error = UpstreamError(
        f"The subscription's {window_label(window)} limit is reached: requests are refused until it resets at "
        f"{when} (in {_duration(wait)})." + (f" CLI said: {message.strip()}" if message.strip() else ""),
        status=429,
        retry=wait <= 60,
        retry_after=wait,
        upstream_status=429,
    )
    error.code = "subscription_limit_reached"
    error.limit = (window, int(resets_at))
    return error


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _upstream_error(api_status: int | None, message: str, api_error: str | None) -> BridgeError:
    # The structured kind decides; the wording is a fallback for CLIs that give none.
    not_logged_in = api_error == "authentication_failed" and api_status is None
    if api_error is None:
        lowered = message.lower()
        not_logged_in = "not logged in" in lowered or "/login" in lowered
    if not_logged_in:
        return CliNotLoggedIn(
            "The Claude CLI is not logged in. Run `claude` once on the server machine and log in "
            f"(CLI said: {message.strip()})"
        )
    if api_status in (401, 403):
        return UpstreamError(
            f"Upstream authentication failed ({api_status}): {message.strip()}. "
            "Run `claude` on the server machine and log in again.",
            status=api_status,
        )
    if api_status == 429:
        return UpstreamError(f"Upstream rate limit: {message.strip()}", status=429, retry=True, retry_after=30)
    if api_status in (529, 503):
        return UpstreamError(f"Upstream overloaded: {message.strip()}", status=503, retry=True, retry_after=10)
    if api_status is not None and 400 <= api_status < 500:
        return UpstreamError(f"Upstream rejected the request ({api_status}): {message.strip()}", status=400)
    return UpstreamError(f"Upstream error: {message.strip()}", status=502)
