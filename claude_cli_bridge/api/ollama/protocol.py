"""Ollama request models (https://github.com/ollama/ollama/blob/main/docs/api.md, ``api/types.go``).

Unknown fields are accepted and ignored (``extra="allow"``): Open WebUI and other clients send
keys of their own. Only fields the bridge reads are typed, so a sampling option in an odd
shape never turns a request into a 400. ``id`` and ``user`` are not Ollama's: they carry a
conversation id, as the original bridge accepted.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..shared_models import Lenient, ToolDef


class Options(Lenient):
    """Runtime options. Read: ``num_predict`` and ``stop``. Accepted without effect, because the
    CLI sets them itself: ``temperature``, ``top_p``, ``top_k``, ``seed``, ``num_ctx`` and the rest."""

    num_predict: int | None = None
    """Most tokens to generate; -1 (infinite) and -2 (fill the context) mean no limit."""

    stop: str | list[str] | None = None
    """Stop sequences: the answer ends before the first one the model writes."""


class ToolCallFunction(Lenient):
    index: int | None = None
    """Position of the call among the message's calls."""

    name: str
    """Name of the function called."""

    arguments: dict[str, Any] | str | None = None
    """Arguments as an object (a JSON string is accepted too)."""


class ToolCallIn(Lenient):
    id: str | None = None
    """Call id (newer Ollama versions send it; ollama-python drops it)."""

    function: ToolCallFunction
    """The call."""


class ChatMessage(Lenient):
    role: str
    """system, user, assistant or tool."""

    content: str | list[Any] | None = None
    """Text of the message (a list of ``{"type": "text"}`` parts is accepted too)."""

    images: list[str] | None = None
    """Base64 images (no ``data:`` prefix) for user and tool messages."""

    tool_calls: list[ToolCallIn] | None = None
    """Tool calls an assistant message made."""

    tool_name: str | None = None
    """On a tool message: the name of the tool whose result this is."""

    tool_call_id: str | None = None
    """On a tool message: the id of the call whose result this is."""

    name: str | None = None
    """Older clients name the tool of a tool message here."""


Format = Any  # "json" or a schema object; checked by translate.json_schema_for for a clear 400
KeepAlive = str | float | None


class _Generation(Lenient):
    model: str | None = None
    """Model name; ``x`` and ``x:latest`` are the same model. Empty: the default model."""

    format: Format = None
    """``"json"`` or a JSON schema object: structured output through the CLI's ``--json-schema``."""

    options: Options | None = None
    """Runtime options."""

    stream: bool | None = None
    """False for one JSON object; absent or true for NDJSON frames."""

    keep_alive: KeepAlive = None
    """Accepted; CLI processes live by the pool's own idle limits. 0 with nothing to answer: "unload"."""

    think: Any = None
    """true: return the model's thinking in ``thinking``; false: the model does not think;
    ``"low"``, ``"medium"``, ``"high"`` (or ``"xhigh"``, ``"max"``): that effort, thinking
    returned (``core.reasoning``)."""

    id: str | None = None
    """Conversation id (not Ollama's; the original bridge's)."""

    user: str | None = None
    """Accepted and ignored: it names a person, not a conversation."""


class ChatRequest(_Generation):
    messages: list[ChatMessage] | None = None
    """The conversation; empty or absent: a model load request, answered at once."""

    tools: list[ToolDef] | None = None
    """Functions the model may call."""


class GenerateRequest(_Generation):
    prompt: str | None = None
    """The prompt; empty: a model load request, answered with ``done_reason: "load"``."""

    suffix: str | None = None
    """Text after the insertion point: the model answers with what goes between prompt and suffix."""

    system: str | None = None
    """System prompt."""

    template: str | None = None
    """Prompt template; ignored (the CLI builds the prompt)."""

    context: list[int] | None = None
    """Token context of an earlier answer; ignored (the bridge returns none)."""

    raw: bool | None = None
    """Send the prompt verbatim, without system prompt or suffix handling."""

    images: list[str] | None = None
    """Base64 images (no ``data:`` prefix)."""


class ModelRequest(Lenient):
    """Body of show, pull, push, delete and create."""

    model: str | None = None
    """Model name."""

    name: str | None = None
    """Older name of ``model``."""

    stream: bool | None = None
    """Pull and push: false for one status object instead of NDJSON."""

    verbose: bool | None = None
    """Show: ask for large fields (none here)."""

    @property
    def model_name(self) -> str:
        return (self.model or self.name or "").strip()


class CopyRequest(Lenient):
    source: str = Field(min_length=1)
    """Existing model name."""

    destination: str = Field(min_length=1)
    """New model name."""
