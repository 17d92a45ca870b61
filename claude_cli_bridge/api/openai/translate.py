"""Pure converters between OpenAI Chat Completions and the neutral turn model.

``from_chat_request`` builds a TurnRequest; ``ChunkWriter`` turns neutral events into SSE
chunk objects (one per-stream state object); ``to_completion`` builds the non-streaming
response. Chunk order follows what openai-python's stream helpers expect: a role chunk,
reasoning chunks (``delta.reasoning_content``), content chunks, tool-call chunks (id/name
once, then argument fragments), a finish chunk, then (with ``stream_options.include_usage``)
a usage chunk with empty ``choices``.

The model's thinking is returned as ``reasoning_content`` (the field Open WebUI, LiteLLM and
LangChain read), never inside ``content``. A request that defines ``functions`` (the deprecated
form of ``tools``) is answered the old way: ``message.function_call`` (``delta.function_call``)
and ``finish_reason: "function_call"``, one call at most.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ...core import reasoning, safe_json
from ...core.documents import document_from_file_data
from ...core.images import image_from_data_url
from ...core.messages import (
    Block,
    DocumentBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    merge_consecutive,
)
from ...core.turn import TextDelta, ThinkingDelta, ToolCall, ToolSpec, TurnDone, TurnEvent, TurnRequest, Usage
from ...errors import BridgeError, CliCrashed, InvalidRequest, UpstreamError
from ..parts import MediaLimits, join_system, new_id, tool_spec, tool_use
from ..shared_models import FunctionDef
from .protocol import ChatCompletionRequest, ChatMessage, FilePart, ImagePart, TextPart

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
    request: ChatCompletionRequest,
    media: MediaLimits,
    *,
    conversation_key: str | None = None,
) -> TurnRequest:
    """The neutral request. system/developer messages become the system prompt; tool results
    become user turns of tool_result blocks; consecutive same-role turns are merged.
    ``file`` parts become documents (``media.document_bytes`` each)."""
    if request.n is not None and request.n > 1:
        raise InvalidRequest("n > 1 is not supported: the Claude CLI gives one answer per request.", param="n")
    system_parts: list[str] = []
    messages: list[Message] = []
    legacy_calls: dict[str, list[str]] = {}  # function name -> ids of its unanswered calls
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system_parts.append(_plain_text(message, where))
        elif message.role == "user":
            messages.append(Message("user", _blocks(message, where, media, documents=True)))
        elif message.role == "assistant":
            messages.append(Message("assistant", _assistant_blocks(message, where, index, legacy_calls)))
        else:  # tool / legacy function results
            if not message.tool_call_id and message.role == "tool":
                raise InvalidRequest(f"{where}: a tool message needs tool_call_id.", param=f"{where}.tool_call_id")
            content = tuple(b for b in _blocks(message, where, media) if not isinstance(b, ToolUseBlock))
            tool_id = message.tool_call_id or _answer_function(legacy_calls, message.name, where)
            messages.append(Message("user", (ToolResultBlock(tool_id, content),)))  # type: ignore[arg-type]
    messages = [m for m in merge_consecutive(messages) if m.content]
    if not messages:
        raise InvalidRequest("messages must contain at least one user message.", param="messages")
    stop = request.stop if isinstance(request.stop, list) else ([request.stop] if request.stop else [])
    choice, forced = tool_choice_of(request)
    think = reasoning.from_openai(request.reasoning_effort)
    return TurnRequest(
        model=request.model or "",
        messages=messages,
        system=join_system(system_parts),
        max_tokens=request.max_completion_tokens or request.max_tokens,
        stop=tuple(stop),
        json_schema=_json_schema(request),
        tools=tuple(_tool_spec(function) for function in _functions(request)),
        tool_choice=choice,
        forced_tool=forced,
        # The functions API returns one call per answer.
        parallel_tool_calls=request.parallel_tool_calls is not False and not is_legacy(request),
        conversation_key=conversation_key or request.id,  # `user` names a person, not a conversation
        effort=think.effort,
        thinking=think.thinking,
    )


def is_legacy(request: ChatCompletionRequest) -> bool:
    """Whether the request uses the deprecated ``functions`` (answered with ``function_call``)."""
    return bool(request.functions) and not request.tools


def _functions(request: ChatCompletionRequest) -> list[FunctionDef]:
    if request.functions and request.tools:
        raise InvalidRequest("Send either tools or the deprecated functions, not both.", param="functions")
    return list(request.functions or []) or [tool.function for tool in request.tools or []]


def _tool_spec(function: FunctionDef) -> ToolSpec:
    return tool_spec(function.name, function.description, function.parameters)


def tool_choice_of(request: ChatCompletionRequest) -> tuple[Literal["auto", "none", "required"], str | None]:
    """``tool_choice`` (or the deprecated ``function_call``) as (choice, forced tool name):
    "none", "auto", "required", ``{"type": "function", "function": {"name": N}}`` (or
    ``{"name": N}``) forces N. Anything else is a 400."""
    value = request.tool_choice if request.tool_choice is not None else request.function_call
    param = "tool_choice" if request.tool_choice is not None else "function_call"
    if value is None or value == "auto":
        return "auto", None
    if value in ("none", "required"):
        return value, None  # type: ignore[return-value]
    if isinstance(value, dict):
        function = value.get("function") if value.get("type") == "function" else value
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return "required", name
    raise InvalidRequest(
        f'{param} must be "none", "auto", "required" or {{"type": "function", "function": {{"name": ...}}}} '
        f"(got {json.dumps(value)[:200]}).",
        param=param,
    )


def _answer_function(pending: dict[str, list[str]], name: str | None, where: str) -> str:
    """The id of the earlier ``function_call`` a ``function`` message answers (by name)."""
    ids = pending.get(name or "")
    if not ids:
        raise InvalidRequest(
            f"{where}: a function message must answer a function_call of an earlier assistant message "
            "(matched by name).",
            param=f"{where}.name",
        )
    return ids.pop(0)


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


def _blocks(message: ChatMessage, where: str, limits: MediaLimits, documents: bool = False) -> tuple[Block, ...]:
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
            blocks.append(image_from_data_url(url, limits.image_bytes, part_where))
        elif isinstance(part, FilePart) and documents:
            blocks.append(_document(part, part_where, limits.document_bytes))
        elif isinstance(part, FilePart):
            raise InvalidRequest(
                f"{part_where}: files are accepted in user messages only (a tool result cannot carry one).",
                param=part_where,
            )
        else:
            raise InvalidRequest(
                f"{part_where}: content part type '{part.type}' is not supported; use text, image_url or file.",
                param=part_where,
            )
    return tuple(blocks)


def _document(part: FilePart, where: str, max_bytes: int) -> DocumentBlock:
    if part.file.file_data:
        return document_from_file_data(part.file.file_data, part.file.filename, max_bytes, where)
    if part.file.file_id:
        raise InvalidRequest(
            f"{where}: file_id is not supported: this server has no file store. Send the file's content "
            "as file_data (a data URL such as data:application/pdf;base64,...).",
            param=where,
        )
    raise InvalidRequest(f"{where}: a file part needs file.file_data.", param=where)


def _assistant_blocks(
    message: ChatMessage, where: str, index: int, legacy_calls: dict[str, list[str]]
) -> tuple[Block, ...]:
    """Text and tool calls of an assistant turn. Thinking a client echoes back (parts of other
    types, ``reasoning_content``) is dropped: the model's thinking is not the conversation."""
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
        blocks.append(tool_use(call.id, call.function.name, parsed))
    if message.function_call is not None and not message.tool_calls:
        # The functions API gives calls no id: one derived from the position keeps a history's
        # ids stable from request to request.
        call_id = f"call_{index}_0"
        given = safe_json.loads(message.function_call.arguments or "{}", f"{where}.function_call.arguments")
        legacy_calls.setdefault(message.function_call.name, []).append(call_id)
        blocks.append(tool_use(call_id, message.function_call.name, given))
    return tuple(blocks)


# -- responses ---------------------------------------------------------------------------
def new_completion_id() -> str:
    return new_id("chatcmpl-")


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


def function_call_dict(call: ToolCall) -> dict[str, Any]:
    """The deprecated functions API's ``function_call`` (no id, one per answer)."""
    return {"name": call.name, "arguments": json.dumps(call.arguments) if call.arguments else "{}"}


def one_call_only(count: int) -> UpstreamError:
    return UpstreamError(
        f"The model made {count} function calls at once; the deprecated functions API returns one. "
        "Use tools instead of functions.",
        status=502,
    )


def legacy_finish(stop_reason: str, legacy: bool) -> str:
    reason = finish_reason(stop_reason)
    return "function_call" if legacy and reason == "tool_calls" else reason


def to_completion_from_events(events: list[TurnEvent], *, model: str, legacy: bool = False) -> dict[str, Any]:
    """The non-streaming response from a whole turn's events (``common.collect_turn``: the
    last is its TurnDone)."""
    done = events[-1]
    if not isinstance(done, TurnDone):
        raise CliCrashed.without_result()
    return to_completion(
        "".join(e.text for e in events if isinstance(e, TextDelta)),
        [e for e in events if isinstance(e, ToolCall)],
        done,
        model=model,
        completion_id=new_completion_id(),
        created=int(time.time()),
        reasoning="".join(e.text for e in events if isinstance(e, ThinkingDelta)),
        legacy=legacy,
    )


def to_completion(
    text: str,
    tool_calls: list[ToolCall],
    done: TurnDone,
    *,
    model: str,
    completion_id: str,
    created: int,
    reasoning: str = "",
    legacy: bool = False,
) -> dict[str, Any]:
    """The non-streaming response; ``reasoning`` is the model's thinking, ``legacy`` answers
    calls as ``function_call`` (one at most: the request allowed no parallel calls)."""
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls and legacy:
        if len(tool_calls) > 1:
            raise one_call_only(len(tool_calls))
        message["function_call"] = function_call_dict(tool_calls[0])
    elif tool_calls:
        message["tool_calls"] = [tool_call_dict(call, n) for n, call in enumerate(tool_calls)]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": legacy_finish(done.stop_reason, legacy),
            }
        ],
        "usage": usage_dict(done.usage),
        "system_fingerprint": None,
    }


@dataclass
class ChunkWriter:
    """Per-stream state: turns neutral events into chat.completion.chunk objects.

    ``legacy``: calls go out as ``delta.function_call`` (the functions API)."""

    model: str
    include_usage: bool = False
    legacy: bool = False
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
        if isinstance(event, ThinkingDelta):
            if event.text:
                chunks.append(self._chunk({"reasoning_content": event.text}))
        elif isinstance(event, TextDelta):
            chunks.append(self._chunk({"content": event.text}))
        elif isinstance(event, ToolCall) and self.legacy:
            if self._tool_index:  # the upstream was told: one call at most
                raise one_call_only(self._tool_index + 1)
            call = function_call_dict(event)
            chunks.append(self._chunk({"function_call": {"name": call["name"], "arguments": ""}}))
            chunks.append(self._chunk({"function_call": {"arguments": call["arguments"]}}))
            self._tool_index += 1
        elif isinstance(event, ToolCall):
            call = tool_call_dict(event, self._tool_index)
            self._tool_index += 1
            arguments = call["function"]["arguments"]
            call["function"]["arguments"] = ""
            chunks.append(self._chunk({"tool_calls": [call]}))
            chunks.append(self._chunk({"tool_calls": [{"index": call["index"], "function": {"arguments": arguments}}]}))
        elif isinstance(event, TurnDone):
            self.finished = True
            chunks.append(self._chunk({}, legacy_finish(event.stop_reason, self.legacy)))
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
