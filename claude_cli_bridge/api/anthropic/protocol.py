"""Anthropic Messages API request models (https://docs.anthropic.com/en/api/messages).

Unknown fields are accepted and ignored (``extra="allow"``): clients send ``cache_control``,
``betas``, ``context_management``, ``container`` and more. ``model``, ``max_tokens`` and
``messages`` are required, as the real API requires them. Content blocks are a union with a
catch-all (``OtherBlock``) so that an unsupported block type gets a 400 naming it, from the
translator, rather than a validation error about every union member.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Lenient):
    type: Literal["text"]
    text: str
    """Text; ``cache_control`` and ``citations`` beside it are ignored."""


class OtherBlock(_Lenient):
    """Any other block (document, thinking, server tool blocks...); the translator decides."""

    type: str


class ImageSource(_Lenient):
    type: str
    """``base64`` (``media_type`` + ``data``) or ``url`` (fetched only with ALLOW_IMAGE_URLS)."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(_Lenient):
    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(_Lenient):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    """The call's input object."""


class ToolResultBlock(_Lenient):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | OtherBlock] | None = None
    """Text, or text and image blocks."""

    is_error: bool | None = None


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | OtherBlock


class MessageParam(_Lenient):
    role: Literal["user", "assistant", "system"]
    """``system`` messages (text only; Claude Code sends its environment note as one) join the
    system prompt: the CLI has no place for a system message inside the conversation."""

    content: str | list[ContentBlock]


class SystemBlock(_Lenient):
    type: str = "text"
    text: str = ""


class ToolParam(_Lenient):
    name: str
    """The tool's name; calls come back under it, unchanged."""

    description: str | None = None
    input_schema: dict[str, Any] | None = None
    """JSON Schema of the input object (required for client tools)."""

    type: str | None = None
    """Absent or ``custom`` for client tools; server tool types (``web_search_20250305``...) are refused."""


class ToolChoice(_Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Lenient):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    """Most output tokens; the upstream's ``max_tokens`` (through the CLI)."""

    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None
    """``{"type": "enabled"|"adaptive"|"disabled"}``: disabled turns thinking off, the others
    show it; ``budget_tokens`` is accepted without effect (the CLI sets no budget)."""

    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    output_format: dict[str, Any] | None = None
    """Structured outputs: ``{"type": "json_schema", "schema": {...}}`` (also under ``output_config.format``)."""

    output_config: dict[str, Any] | None = None
