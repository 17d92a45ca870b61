"""OpenAI Chat Completions request models (https://platform.openai.com/docs/api-reference/chat).

Unknown fields are accepted and ignored (``extra="allow"``): clients send many. Fields the
bridge cannot honour are listed in the README's compatibility table.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageURL(_Lenient):
    url: str
    detail: Optional[str] = None


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: Union[ImageURL, str]


class OtherPart(_Lenient):
    """A part type the bridge cannot pass on (input_audio, file, refusal...)."""

    type: str


ContentPart = Union[TextPart, ImagePart, OtherPart]


class FunctionCall(_Lenient):
    name: str
    arguments: Optional[str] = None


class ToolCallIn(_Lenient):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallIn]] = None
    tool_call_id: Optional[str] = None


class FunctionDef(_Lenient):
    name: str
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None


class ToolDef(_Lenient):
    type: str = "function"
    function: FunctionDef


class StreamOptions(_Lenient):
    include_usage: Optional[bool] = None


class JSONSchemaFormat(_Lenient):
    name: Optional[str] = None
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[bool] = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[JSONSchemaFormat] = None


class ChatCompletionRequest(_Lenient):
    model: Optional[str] = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    stop: Union[str, list[str], None] = None
    n: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    tools: Optional[list[ToolDef]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[ResponseFormat] = None
    user: Optional[str] = None
    # The original bridge tracked conversations by an `id` field in the body.
    id: Optional[str] = None
