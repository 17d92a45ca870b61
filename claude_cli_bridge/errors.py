"""Typed errors. Each class names the HTTP status it stands for (``status``), an error
``kind`` and ``code``; each API renders its own body from them (``api/error_shapes.py``),
Ollama and Anthropic changing the status where their APIs differ (busy, overloaded).

``retry`` says whether repeating the same request could help (the OpenAI SDK retries 429/5xx
unless told ``x-should-retry: false``). What a CLI's failure text means is read in
``cli/result.py``, not here.
"""

from __future__ import annotations


class BridgeError(Exception):
    """The base: a 500 ``server_error``. A subclass states its wire identity in its class line,
    ``class Refused(BridgeError, status=403, kind="permission_error", code="refused")``; what it
    leaves out it inherits."""

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

    def __init_subclass__(
        cls, *, status: int | None = None, kind: str | None = None, code: str | None = None, retry: bool | None = None
    ) -> None:
        super().__init_subclass__()
        for name, value in (("status", status), ("kind", kind), ("code", code), ("retry", retry)):
            if value is not None:
                setattr(cls, name, value)


class InvalidRequest(BridgeError, status=400, kind="invalid_request_error"):
    pass


class RequestTooLarge(BridgeError, status=413, kind="invalid_request_error", code="request_too_large"):
    pass


class NotSupported(BridgeError, status=400, kind="invalid_request_error", code="not_supported"):
    """A request this bridge cannot apply (pushing or creating models: it has no model files).

    A 400, not 501: the request is well formed but can never succeed here, and a 5xx would
    invite retries.
    """


class Refused(BridgeError, status=403, kind="permission_error", code="refused"):
    pass


class ModelNotFound(BridgeError, status=404, kind="invalid_request_error", code="model_not_found"):
    pass


class Unauthorized(BridgeError, status=401, kind="authentication_error", code="invalid_api_key"):
    pass


class PoolBusy(BridgeError, status=503, kind="server_error", code="pool_busy", retry=True):
    """Every CLI process is busy and the wait queue is full or timed out.

    503, not 429: a 429 means the account is refused (the subscription's limit), and a
    router in front (LiteLLM, nginx) should tell a full bridge from a refused account; both
    carry ``Retry-After``, so either cools the bridge down for that long.
    """


class Draining(PoolBusy, code="draining"):
    """The server got SIGTERM: turns in flight finish, new ones are refused so a router
    moves them to another bridge (``Retry-After`` says how long to keep this one out)."""


class CliNotLoggedIn(BridgeError, status=401, kind="authentication_error", code="cli_not_logged_in"):
    pass


class UpstreamError(BridgeError, kind="api_error"):
    """The CLI reported an error answering, mapped from the upstream status.

    ``status`` is what the client gets; ``upstream_status`` what the upstream answered
    (529 "overloaded" becomes 503 for OpenAI clients, for example)."""

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


class CliCrashed(BridgeError, status=502, kind="api_error", code="cli_crashed"):
    """The CLI process died or went silent mid-turn."""

    @classmethod
    def without_result(cls) -> CliCrashed:
        """A turn whose events ended before its TurnDone: never a silent success."""
        return cls("The Claude CLI ended the turn without a result.")


class CliUnavailable(BridgeError, status=503, kind="server_error", code="cli_unavailable", retry=True):
    """New CLI processes keep dying before their first turn (a broken update, a missing
    library): the pool backs off and refuses what needs a new process until the next
    attempt. A 503 with Retry-After; the message carries the CLI's own words."""


class TurnTimeout(BridgeError, status=504, kind="api_error", code="timeout"):
    pass


class FeatureUnavailable(BridgeError, status=501, kind="invalid_request_error", code="feature_unavailable"):
    """The CLI in use cannot do what the request needs (its start-up probe failed); the
    message names the feature and the CLI version. A 501: no retry can help."""


class EmbeddingUnavailable(BridgeError, status=503, kind="server_error", code="embedding_model_unavailable"):
    """The embedding model cannot be loaded (offline, missing files); the message says how to fix it."""


class KeyLimitReached(BridgeError, status=429, kind="rate_limit_error", code="rate_limit_exceeded", retry=True):
    """A client key's own limit (``max_concurrent``, ``requests_per_minute``) is reached."""


class ModelNotAllowed(BridgeError, status=403, kind="permission_error", code="model_not_allowed"):
    """The client key may not ask for this model (its ``models`` list)."""


class ExtraUsageRefused(BridgeError, status=429, kind="rate_limit_error", code="extra_usage", retry=False):
    """The upstream billed (or refused) a subscription turn as extra usage ("Third-party apps
    now draw from your extra usage, not your plan limits"): named, never a silent failover to
    another subscription; an API-key account listed later for the key may take the turn."""


class CreditsRequired(BridgeError, status=429, kind="rate_limit_error", code="credits_required", retry=False):
    """The upstream refused the model on this account until usage credits pay for it (its 429
    with ``error_code: credits_required``): nothing clears it by itself, so no retry; another
    account of the key may serve the model (the engine tries them), this one keeps serving others."""


class AccountsRefused(BridgeError, status=429, kind="rate_limit_error", code="rate_limit_exceeded", retry=False):
    """None of the key's accounts can take a turn now (windows used up, logins failing);
    ``retry_after`` points at the earliest moment one of them may again."""
