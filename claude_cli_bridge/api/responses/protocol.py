"""OpenAI Responses API request models (https://platform.openai.com/docs/api-reference/responses).

Unknown fields are accepted and ignored (``extra="allow"``): Codex, the openai-agents SDK and
the Vercel AI SDK send ``include``, ``prompt_cache_key``, ``client_metadata``, ``service_tier``
and more. Input items and tools are kept as loose dicts here and checked one by one in
``translate``, so a bad item gets a 400 naming its position and type (the item union of the
real API has dozens of members; most are hosted-tool items the bridge cannot take).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(_Lenient):
    format: TextFormat | None = None
    verbosity: str | None = None
    """Accepted and ignored."""


class Reasoning(_Lenient):
    effort: str | None = None
    """``none`` turns thinking off; ``minimal``/``low``... map to the CLI's ``--effort`` as for
    chat completions (``core.reasoning``)."""

    summary: str | None = None
    """Set (``auto``, ``concise``, ``detailed``): the model's thinking comes back as a
    ``reasoning`` output item with its text as the summary."""


InputItem = dict[str, Any]
"""A message (``role`` + ``content``, with or without ``type: "message"``), ``function_call``,
``function_call_output`` or ``reasoning`` item; see ``translate.from_input_items``."""


class ResponsesRequest(_Lenient):
    model: str | None = None
    input: str | list[InputItem]
    """The new input: a string (one user message) or a list of items."""

    instructions: str | None = None
    """The system prompt for this response (not carried over by ``previous_response_id``)."""

    previous_response_id: str | None = None
    """Continue a stored response: its whole conversation comes before ``input``."""

    store: bool | None = None
    """False: keep nothing of this response (default true)."""

    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    """Function tools (and namespace groups of them); hosted tools are left out, see docs/surfaces.md."""

    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, Any] | None = None
    """Echoed in the response."""

    temperature: float | None = None
    top_p: float | None = None
    truncation: str | None = None
    user: str | None = None
    background: bool | None = None
    """True is refused: background responses need polling the bridge does not offer."""

    conversation: Any = None
    """Refused: the Conversations API is not served (use ``previous_response_id``)."""

    prompt: Any = None
    """Refused: stored prompt templates live at OpenAI."""
