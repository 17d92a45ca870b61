"""Typed errors. Each class names the HTTP status it stands for (``status``), an error
``kind`` and ``code``; each API renders its own body from them (``api/error_shapes.py``),
Ollama and Anthropic changing the status where their APIs differ (busy, overloaded).

``retry`` says whether repeating the same request could help (the OpenAI SDK retries 429/5xx
unless told ``x-should-retry: false``). What a CLI's failure text means is read in
``cli/result.py``, not here.
"""

from __future__ import annotations


class BridgeError(Exception):
    status = 500
    kind = "server_error"
    code: str | None = None
    retry = False
    #: A refusal by a subscription window: (the window's claim, e.g. "five_hour", or None;
    #: its reset, epoch seconds). The Anthropic surface sends them as the upstream's own
    #: ``anthropic-ratelimit-unified-*`` headers, which Claude Code reads.
    limit: tuple[str | None, int] | None = None

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
    """Every CLI process is busy and the wait queue is full or timed out.

    503, not 429: a 429 means the account is refused (the subscription's limit), and a
    router in front (LiteLLM, nginx) should tell a full bridge from a refused account; both
    carry ``Retry-After``, so either cools the bridge down for that long.
    """

    status = 503
    kind = "server_error"
    code = "pool_busy"
    retry = True


class Draining(PoolBusy):
    """The server got SIGTERM: turns in flight finish, new ones are refused so a router
    moves them to another bridge (``Retry-After`` says how long to keep this one out)."""

    code = "draining"


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


class CliUnavailable(BridgeError):
    """New CLI processes keep dying before their first turn (a broken update, a missing
    library): the pool backs off and refuses what needs a new process until the next
    attempt. A 503 with Retry-After; the message carries the CLI's own words."""

    status = 503
    kind = "server_error"
    code = "cli_unavailable"
    retry = True


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


class EmbeddingUnavailable(BridgeError):
    """The embedding model cannot be loaded (offline, missing files); the message says how to fix it."""

    status = 503
    kind = "server_error"
    code = "embedding_model_unavailable"


class KeyLimitReached(BridgeError):
    """A client key's own limit (``max_concurrent``, ``requests_per_minute``) is reached."""

    status = 429
    kind = "rate_limit_error"
    code = "rate_limit_exceeded"
    retry = True


class ModelNotAllowed(BridgeError):
    """The client key may not ask for this model (its ``models`` list)."""

    status = 403
    kind = "permission_error"
    code = "model_not_allowed"


class ExtraUsageRefused(BridgeError):
    """The upstream billed (or refused) a subscription turn as extra usage ("Third-party apps
    now draw from your extra usage, not your plan limits"): named, never a silent failover to
    another subscription; an API-key account listed later for the key may take the turn."""

    status = 429
    kind = "rate_limit_error"
    code = "extra_usage"
    retry = False


class AccountsRefused(BridgeError):
    """None of the key's accounts can take a turn now (windows used up, logins failing);
    ``retry_after`` points at the earliest moment one of them may again."""

    status = 429
    kind = "rate_limit_error"
    code = "rate_limit_exceeded"
    retry = False
