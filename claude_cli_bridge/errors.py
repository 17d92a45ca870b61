"""Typed errors, free of HTTP. Each API maps them to a status and renders its own body.

``status`` is the HTTP status the error stands for; ``retry`` says whether repeating the same
request could help (the OpenAI SDK retries 429/5xx unless told ``x-should-retry: false``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.limits import RateLimitInfo


class BridgeError(Exception):
    status = 500
    kind = "server_error"
    code: str | None = None
    retry = False

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after


class InvalidRequest(BridgeError):
    status = 400
    kind = "invalid_request_error"


class RequestTooLarge(BridgeError):
    status = 413
    kind = "invalid_request_error"
    code = "request_too_large"


class NotSupported(BridgeError):
    """A request this bridge cannot apply (pushing or creating models: it has no model files).

    A 400, not 501: the request is well formed but can never succeed here, and a 5xx would
    invite retries.
    """

    status = 400
    kind = "invalid_request_error"
    code = "not_supported"


class Refused(BridgeError):
    status = 403
    kind = "permission_error"
    code = "refused"


class ModelNotFound(BridgeError):
    status = 404
    kind = "invalid_request_error"
    code = "model_not_found"


class Unauthorized(BridgeError):
    status = 401
    kind = "authentication_error"
    code = "invalid_api_key"


class PoolBusy(BridgeError):
    """Every CLI process is busy and the wait queue is full or timed out."""

    status = 429
    kind = "rate_limit_error"
    code = "pool_busy"
    retry = True


class CliNotLoggedIn(BridgeError):
    status = 401
    kind = "authentication_error"
    code = "cli_not_logged_in"


class UpstreamError(BridgeError):
    """The CLI reported an error answering, mapped from the upstream status.

    ``status`` is what the client gets; ``upstream_status`` what the upstream answered
    (529 "overloaded" becomes 503 for OpenAI clients, for example)."""

    kind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.retry = retry
        self.upstream_status = upstream_status
        self.kind = {
            401: "authentication_error",
            403: "permission_error",
            429: "rate_limit_error",
            503: "overloaded_error",
        }.get(status, "api_error")


class CliCrashed(BridgeError):
    """The CLI process died or went silent mid-turn."""

    status = 502
    kind = "api_error"
    code = "cli_crashed"

    @classmethod
    def without_result(cls) -> CliCrashed:
        """A turn whose events ended before its TurnDone: never a silent success."""
        return cls("The Claude CLI ended the turn without a result.")


class TurnTimeout(BridgeError):
    status = 504
    kind = "api_error"
    code = "timeout"


class FeatureUnavailable(BridgeError):
    """The CLI in use cannot do what the request needs (its start-up probe failed); the
    message names the feature and the CLI version. A 501: no retry can help."""

    status = 501
    kind = "invalid_request_error"
    code = "feature_unavailable"


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
    now: float | None = None,
) -> BridgeError:
    """Map a failed CLI result to a typed error, by the upstream HTTP status it carries and
    the CLI's own error kind (``authentication_failed``, ``rate_limit``...) when it gives one.

    ``rate_limit`` is the turn's last rate-limit reading: when the upstream refused because a
    subscription window is used up, the 429 names that window and its reset, and Retry-After
    points at the reset."""
    if api_status == 429 and rate_limit is not None and rate_limit.rejected and rate_limit.resets_at:
        return window_exhausted(rate_limit.window, rate_limit.resets_at, message, now)
    error = _upstream_error(api_status, message, api_error)
    if isinstance(error, UpstreamError):
        error.upstream_status = api_status
    return error


def window_exhausted(window: str | None, resets_at: int, message: str, now: float | None = None) -> UpstreamError:
    """A 429 for a used-up subscription window: which window, when it resets, Retry-After at the
    reset. A reset more than a minute away is not worth an SDK's automatic retries (each would
    run the CLI again for another refusal): ``x-should-retry: false`` then."""
    from .core.limits import window_label

    wait = max(1, int(resets_at - (time.time() if now is None else now)))
    when = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    error = UpstreamError(
        f"The subscription's {window_label(window)} limit is reached: requests are refused until it resets at "
        f"{when} (in {_duration(wait)}). CLI said: {message.strip()}",
        status=429,
        retry=wait <= 60,
        retry_after=wait,
        upstream_status=429,
    )
    error.code = "subscription_limit_reached"
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


class EmbeddingUnavailable(BridgeError):
    """The embedding model cannot be loaded (offline, missing files); the message says how to fix it."""

    status = 503
    kind = "server_error"
    code = "embedding_model_unavailable"
