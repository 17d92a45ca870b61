"""One API request as the operator sees it: the record the request log, the usage ledger, the
metrics and the dashboard all read. Built once per request (``observe.middleware``), filled by
the HTTP layer (API, route, status, times), the routers (stream or not) and the engine's turn
(model, how the CLI process was found, tokens). No caller content is ever part of it.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from .turn import Usage


@dataclass
class RequestRecord:
    method: str
    path: str
    api: str  # openai, ollama, anthropic, bridge
    started: float = field(default_factory=time.time)  # wall clock, for the ledger
    started_mono: float = field(default_factory=time.monotonic)
    route: str = ""  # the route's path template (bounded, for metric labels)
    key_label: str = ""  # the client key's name (accounts file; "shared" for BRIDGE_API_KEY), never the key
    account: str = ""  # the account whose login served the turn
    failover_from: str = ""  # the account that refused the turn first, if one did
    extra_usage: str = ""  # the account whose turn the upstream refused as extra usage, if one did
    # What the turn was charged of its account's 5-hour window (a fraction) and that window's
    # reset (epoch seconds): the keys' window_share (accounts.shares).
    window_used: float | None = None
    window_reset: int | None = None
    model: str = ""  # as requested (resolved alias), empty for requests without a model
    upstream_model: str = ""  # the model id the upstream answered with
    stream: bool | None = None
    turn: bool = False  # the request asked the engine for a turn
    how: str = ""  # how the CLI process was found: spare, held, cold (+ queued)
    wait_s: float | None = None  # waited for that process (queueing plus any launch)
    first_token_s: float | None = None  # time to the turn's first event, from the request's start
    duration_s: float | None = None
    usage: Usage | None = None
    stop_reason: str = ""
    status: int = 0  # HTTP status; for an error after the first byte, the error's status
    in_band_error: bool = False  # the failure was reported inside a 200 stream
    error: str = ""  # the error's code and kind (never its message: observe.engine.loggable)
    client_gone: bool = False
    # The id under which the bridge holds the conversation after this turn (the client's
    # X-Conversation-Id, or one the pool chose): returned as a header, never logged.
    conversation_id: str = ""

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%d")

    @property
    def failed(self) -> bool:
        return self.status >= 400 or self.in_band_error

    def mark_first(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.monotonic() - self.started_mono

    def finish(self, status: int) -> None:
        if not self.status:
            self.status = status
        self.duration_s = time.monotonic() - self.started_mono

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the time as ISO 8601 and the usage flattened."""
        # Shallow on purpose: every field is a scalar but usage (flattened below), and
        # dataclasses.asdict's deep copies cost more than the rest of a request's bookkeeping.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _UNLOGGED}
        usage = self.usage or Usage()
        data["usage"] = None
        data.update(
            time=datetime.fromtimestamp(self.started, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens,
            has_usage=self.usage is not None,
        )
        for key in ("wait_s", "first_token_s", "duration_s"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        return data


_UNLOGGED = frozenset({"started_mono", "conversation_id"})

# The record of the request being served (set by observe.middleware for each API request;
# the tasks that stream its answer inherit it).
current_record: ContextVar[RequestRecord | None] = ContextVar("current_record", default=None)


def note(**fields: Any) -> None:
    """Set fields of the current request's record (a no-op outside a request)."""
    record = current_record.get()
    if record is not None:
        for name, value in fields.items():
            setattr(record, name, value)
