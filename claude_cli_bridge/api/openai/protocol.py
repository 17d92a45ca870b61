"""OpenAI Chat Completions request models (https://platform.openai.com/docs/api-reference/chat).

Unknown fields are accepted and ignored (``extra="allow"``): clients send many. Fields the
bridge cannot honour are listed in docs/surfaces.md's compatibility table.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..shared_models import FunctionDef, Lenient, ToolDef


class ImageURL(Lenient):
    url: str
    detail: str | None = None


class TextPart(Lenient):
    type: Literal["text"]
    text: str


class ImagePart(Lenient):
    type: Literal["image_url"]
    image_url: ImageURL | str


class FileData(Lenient):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(Lenient):
    """A document: ``file.file_data`` as a data URL (a PDF or a text file)."""

    type: Literal["file"]
    file: FileData


class OtherPart(Lenient):
    """A part type the bridge cannot pass on (input_audio, refusal...)."""

    type: str


ContentPart = TextPart | ImagePart | FilePart | OtherPart


class FunctionCall(Lenient):
    name: str
    arguments: str | None = None


class ToolCallIn(Lenient):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    #: The deprecated single call of an assistant message (the ``functions`` API).
    function_call: FunctionCall | None = None


class StreamOptions(Lenient):
    include_usage: bool | None = None


class JSONSchemaFormat(Lenient):
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatCompletionRequest(Lenient):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    #: Deprecated forms of ``tools`` and ``tool_choice``; the answer then uses ``function_call``.
    functions: list[FunctionDef] | None = None
    function_call: str | dict[str, Any] | None = None
    #: none, minimal, low, medium, high, xhigh (core.reasoning maps them to the CLI's --effort).
    reasoning_effort: str | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    # The original bridge tracked conversations by an `id` field in the body.
    id: str | None = None
