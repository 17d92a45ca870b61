"""Pure converters between OpenAI Chat Completions and the neutral turn model.

``from_chat_request`` builds a TurnRequest; ``ChunkWriter`` turns neutral events into SSE
chunk objects (one per-stream state object); ``to_completion`` builds the non-streaming
response. Chunk order follows what openai-python's stream helpers expect: a role chunk,
content chunks, tool-call chunks (id/name once, then argument fragments), a finish chunk,
then (with ``stream_options.include_usage``) a usage chunk with empty ``choices``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ...core import safe_json
from ...core.images import image_from_data_url
from ...core.messages import (
    Block,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    canonical_json,
    merge_consecutive,
)
from ...core.turn import TextDelta, ToolCall, ToolSpec, TurnDone, TurnEvent, TurnRequest, Usage
from ...errors import BridgeError, InvalidRequest
from .protocol import ChatCompletionRequest, ChatMessage, ImagePart, TextPart

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


DONE = "[DONE]"  # the SSE stream's last data, error or not
Frame = dict[str, Any] | str  # a chunk object, or the DONE marker


def finish_reason(stop_reason: str) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


# -- requests ----------------------------------------------------------------------------
def from_chat_request(
    request: ChatCompletionRequest, *, max_image_bytes: int, conversation_key: str | None = None
) -> TurnRequest:
    """The neutral request. system/developer messages become the system prompt; tool results
    become user turns of tool_result blocks; consecutive same-role turns are merged."""
    if request.n is not None and request.n > 1:
        raise InvalidRequest("n > 1 is not supported: the Claude CLI gives one answer per request.", param="n")
    system_parts: list[str] = []
    messages: list[Message] = []
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system_parts.append(_plain_text(message, where))
        elif message.role == "user":
            messages.append(Message("user", _blocks(message, where, max_image_bytes)))
        elif message.role == "assistant":
            messages.append(Message("assistant", _assistant_blocks(message, where)))
        else:  # tool / legacy function results
            if not message.tool_call_id and message.role == "tool":
                raise InvalidRequest(f"{where}: a tool message needs tool_call_id.", param=f"{where}.tool_call_id")
            content = tuple(b for b in _blocks(message, where, max_image_bytes) if not isinstance(b, ToolUseBlock))
            tool_id = message.tool_call_id or message.name or "function"
            messages.append(Message("user", (ToolResultBlock(tool_id, content),)))  # type: ignore[arg-type]
    messages = [m for m in merge_consecutive(messages) if m.content]
    if not messages:
        raise InvalidRequest("messages must contain at least one user message.", param="messages")
    stop = request.stop if isinstance(request.stop, list) else ([request.stop] if request.stop else [])
    return TurnRequest(
        model=request.model or "",
        messages=messages,
        system="\n\n".join(part for part in system_parts if part) or None,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        stop=tuple(stop),
        json_schema=_json_schema(request),
        tools=tuple(
            ToolSpec(t.function.name, t.function.description or "", t.function.parameters or {"type": "object"})
            for t in request.tools or []
        ),
        tool_choice="none" if request.tool_choice == "none" else "auto",
        conversation_key=conversation_key or request.id,  # `user` names a person, not a conversation
    )


def _json_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "object"}
    if response_format.json_schema is None or response_format.json_schema.schema_ is None:
        raise InvalidRequest(
            "response_format json_schema needs json_schema.schema.", param="response_format.json_schema"
        )
    return response_format.json_schema.schema_


def _plain_text(message: ChatMessage, where: str) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if not isinstance(part, TextPart):
            raise InvalidRequest(f"{where}: a {message.role} message may hold only text parts.", param=where)
        texts.append(part.text)
    return "\n".join(texts)


def _blocks(message: ChatMessage, where: str, max_image_bytes: int) -> tuple[Block, ...]:
    if message.content is None:
        return ()
    if isinstance(message.content, str):
        return (TextBlock(message.content),) if message.content else ()
    blocks: list[Block] = []
    for number, part in enumerate(message.content):
        part_where = f"{where}.content[{number}]"
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(TextBlock(part.text))
        elif isinstance(part, ImagePart):
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            blocks.append(image_from_data_url(url, max_image_bytes, part_where))
        else:
            raise InvalidRequest(
                f"{part_where}: content part type '{part.type}' is not supported; use text or image_url.",
                param=part_where,
            )
    return tuple(blocks)


def _assistant_blocks(message: ChatMessage, where: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append(TextBlock(message.content))
    elif message.content:
        for part in message.content:
            text = getattr(part, "text", None) or getattr(part, "refusal", None)
            if isinstance(text, str) and text:
                blocks.append(TextBlock(text))
    for number, call in enumerate(message.tool_calls or []):
        arguments = call.function.arguments or "{}"
        parsed = safe_json.loads(arguments, f"{where}.tool_calls[{number}].function.arguments")
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        blocks.append(ToolUseBlock(call.id, call.function.name, canonical_json(parsed)))
    return tuple(blocks)


# -- responses ---------------------------------------------------------------------------
def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    }


def tool_call_dict(call: ToolCall, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments) if call.arguments else "{}"},
    }


def to_completion(
    text: str, tool_calls: list[ToolCall], done: TurnDone, *, model: str, completion_id: str, created: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = [tool_call_dict(call, n) for n, call in enumerate(tool_calls)]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(done.stop_reason)}
        ],
        "usage": usage_dict(done.usage),
        "system_fingerprint": None,
    }


@dataclass
class ChunkWriter:
    """Per-stream state: turns neutral events into chat.completion.chunk objects."""

    model: str
    include_usage: bool = False
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    finished: bool = False
    _started: bool = False
    _tool_index: int = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _open(self) -> list[Frame]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def on_event(self, event: TurnEvent) -> list[Frame]:
        chunks = self._open()
        if isinstance(event, TextDelta):
            chunks.append(self._chunk({"content": event.text}))
        elif isinstance(event, ToolCall):
            call = tool_call_dict(event, self._tool_index)
            self._tool_index += 1
            arguments = call["function"]["arguments"]
            call["function"]["arguments"] = ""
            chunks.append(self._chunk({"tool_calls": [call]}))
            chunks.append(self._chunk({"tool_calls": [{"index": call["index"], "function": {"arguments": arguments}}]}))
        elif isinstance(event, TurnDone):
            self.finished = True
            chunks.append(self._chunk({}, finish_reason(event.stop_reason)))
            if self.include_usage:
                chunks.append(
                    {
                        "id": self.completion_id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_dict(event.usage),
                    }
                )
        return chunks

    def on_error(self, error: BridgeError) -> list[Frame]:
        """A failure after the first byte: an error frame (the SDKs raise on it)."""
        return [error_body(error)]

    def closing(self) -> list[Frame]:
        return [DONE]


def error_body(error: BridgeError) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}}
