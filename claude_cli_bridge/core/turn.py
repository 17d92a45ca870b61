"""One turn: what a client asks for (TurnRequest) and what comes back (events).

A turn's event stream is a sequence of ``ThinkingDelta``, ``TextDelta`` and ``ToolCall``
events closed by exactly one ``TurnDone``. ``ThinkingDelta`` carries the model's thinking
(the upstream's ``thinking`` blocks) as it streams; each API decides whether to show it, and
an answer's text never contains it. Errors are raised as ``errors.BridgeError`` subclasses; if that
happens after the first event, the API layer reports it in-band.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, Protocol

from .caller import Caller
from .messages import Message
from .status import BridgeStatus

#: Effort levels the CLI's ``--effort`` takes (CLI 2.1.332); it sends them to the upstream as
#: ``output_config.effort``. ``core.reasoning`` maps the APIs' own values onto these.
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the caller defines; the model may call it, the bridge never runs it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass
class TurnRequest:
    """Everything needed to answer one request.

    ``messages`` is the whole conversation the client sent (alternating, merged), ending
    with a user turn; the system prompt is kept apart because the CLI takes it as a flag.
    ``conversation_key`` is the client's explicit conversation id, if it gave one.
    ``tools`` are every tool the caller defined (its history may call any of them);
    ``tool_choice`` "none" means the model is not offered them this turn, "required" that it
    must call one of them (``forced_tool``, a caller tool name: that one);
    ``parallel_tool_calls`` False allows at most one call per answer.
    ``effort`` is one of ``EFFORT_LEVELS`` (None: the bridge's default); ``thinking`` False
    turns the model's thinking off, None leaves the CLI's default (adaptive thinking).
    ``one_off`` marks a turn nobody continues (an Open WebUI title or tags task).
    ``caller`` is who asked (its key's name and accounts); None: the anonymous caller.
    """

    model: str
    messages: list[Message]
    system: str | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    conversation_key: str | None = None
    forced_tool: str | None = None
    parallel_tool_calls: bool = True
    effort: str | None = None
    thinking: bool | None = None
    one_off: bool = False  # nobody continues it (a background task): its process is not held
    caller: Caller | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts as the upstream reported them through the CLI."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Everything the model read: fresh input plus cache reads and writes."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of the model's thinking, before the answer's text. The upstream's signature of
    the thinking block stays inside the CLI (it keeps the block for its next turns)."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call by the model; ``arguments`` is its input object."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class TurnDone:
    """The end of a turn. ``stop_sequence`` is the caller's stop sequence that ended it
    (``stop_reason`` "stop_sequence"); Anthropic's API reports which one matched. ``timings``
    (nanoseconds) carries ``load_ns``, the wait for a CLI process (queueing plus any launch);
    ``how`` says how that process was found: ``spare``, ``held`` (the conversation's own),
    ``cold`` (launched for this request), each with ``queued`` appended when the request had
    to wait in the queue first."""

    stop_reason: str
    usage: Usage
    model: str = ""
    timings: dict[str, int] = field(default_factory=dict)
    _: KW_ONLY
    stop_sequence: str | None = None
    how: str = ""


TurnEvent = ThinkingDelta | TextDelta | ToolCall | TurnDone


class Engine(Protocol):
    """What the API layers call (``engine.BridgeEngine``; a scripted engine in the route tests).

    ``stream`` is an async generator: closing it early (a client that left) cancels the turn
    and frees its CLI process. ``resolve_model`` raises ModelNotFound for names nobody serves.
    ``status`` feeds /health, /ready, /metrics and the dashboard (``core.status``).
    ``start``/``close`` run with the app's lifespan.
    """

    def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]: ...

    def resolve_model(self, requested: str | None) -> str: ...

    def status(self) -> BridgeStatus: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
