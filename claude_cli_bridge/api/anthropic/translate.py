"""Pure converters between the Anthropic Messages API and the neutral turn model.

``from_messages_request`` builds a TurnRequest; ``to_message`` builds the non-streaming
message; ``EventWriter`` turns neutral events into the SSE events the anthropic SDKs parse
(``lib/streaming/_messages.py`` accumulates them): ``message_start``, ``ping``, per content
block ``content_block_start`` / ``content_block_delta`` (``text_delta``, ``input_json_delta``)
/ ``content_block_stop``, then ``message_delta`` (stop reason and usage) and ``message_stop``.
Every frame carries an ``event:`` name: the SDKs skip frames without one.

The neutral blocks already are Anthropic's, so the translation is mostly checking: what the
bridge cannot pass on faithfully (documents other than base64 PDFs and plain text, server
tools, a final assistant message to prefill) is refused with a 400 naming it.

Thinking: ``thinking`` ``{"type": "disabled"}`` turns the model's thinking off;
``enabled``/``adaptive`` shows it as ``thinking`` blocks (``thinking_delta`` when streaming),
as the API does. ``budget_tokens`` cannot be passed on (the CLI sets no budget: it asks for
adaptive thinking and an effort), so it is accepted and ``output_config.effort`` chooses the
effort. The blocks carry an empty ``signature``: the upstream's signature stays in the bridge,
which puts the thinking back itself when a tool loop goes on (``engine/thinking.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...core.documents import PDF, TEXT, is_pdf
from ...core.encoded import decode_base64
from ...core.images import image_from_base64
from ...core.messages import (
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    merge_consecutive,
)
from ...core.tools import check_tool_choice
from ...core.turn import (
    EFFORT_LEVELS,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolSpec,
    TurnDone,
    TurnEvent,
    TurnRequest,
    Usage,
)
from ...errors import BridgeError, CliCrashed, InvalidRequest, RequestTooLarge
from ..parts import MediaLimits, join_system, new_id, tool_use
from . import protocol as p
from .errors import error_body

Frame = tuple[str, dict[str, Any]]  # (SSE event name, data)

# Blocks of the model's own reasoning in an earlier answer. The API ignores them in earlier
# turns (outside a tool-use loop), and the bridge never returned any: dropped, not refused.
DROPPED_HISTORY_BLOCKS = ("thinking", "redacted_thinking")


# -- requests ----------------------------------------------------------------------------
def from_messages_request(
    request: p.MessagesRequest,
    media: MediaLimits,
    *,
    conversation_key: str | None = None,
) -> TurnRequest:
    """The neutral request: ``system`` becomes the system prompt (text blocks joined by a
    blank line), followed by the text of any ``system`` messages in ``messages``, in order;
    blocks map one to one, consecutive same-role turns are merged."""
    messages: list[Message] = []
    system_parts = [_system(request.system)]
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role == "system":
            system_parts.append(_system_message_text(message, where))
            continue
        blocks = _blocks(message, where, media)
        if blocks:
            messages.append(Message(message.role, blocks))
    messages = merge_consecutive(messages)
    if not messages:
        raise InvalidRequest("messages must contain at least one non-empty user message.", param="messages")
    if messages[-1].role != "user":
        raise InvalidRequest(
            "The last message is an assistant message (a prefill); continuing a prefilled answer is not "
            "supported: end with a user message.",
            param="messages",
        )
    tools = tuple(_tool_spec(tool, n) for n, tool in enumerate(request.tools or []))
    _check_tool_choice(request.tool_choice)
    choice = request.tool_choice
    forced = choice is not None and choice.type in ("any", "tool")
    turn = TurnRequest(
        model=request.model,
        messages=messages,
        system=join_system(system_parts),
        max_tokens=request.max_tokens,
        stop=tuple(stop for stop in request.stop_sequences or [] if stop),
        json_schema=_json_schema(request),
        tools=tools,
        tool_choice="none" if choice is not None and choice.type == "none" else ("required" if forced else "auto"),
        forced_tool=choice.name if choice is not None and choice.type == "tool" else None,
        parallel_tool_calls=not (choice is not None and choice.disable_parallel_tool_use),
        conversation_key=conversation_key,
        effort=_effort(request.output_config),
        thinking=False if thinking_mode(request) == "disabled" else None,
    )
    check_tool_choice(turn)
    return turn


def thinking_mode(request: p.MessagesRequest) -> str | None:
    """``disabled``, ``enabled`` (or ``adaptive``: shown like ``enabled``), or None (absent)."""
    if request.thinking is None:
        return None
    kind = request.thinking.get("type")
    if kind not in ("enabled", "disabled", "adaptive"):
        raise InvalidRequest('thinking.type must be "enabled", "adaptive" or "disabled".', param="thinking.type")
    return str(kind)


def shows_thinking(request: p.MessagesRequest) -> bool:
    return thinking_mode(request) in ("enabled", "adaptive")


def _effort(output_config: dict[str, Any] | None) -> str | None:
    effort = (output_config or {}).get("effort")
    if effort is None:
        return None
    if effort not in EFFORT_LEVELS:
        raise InvalidRequest(
            f"output_config.effort must be one of {', '.join(EFFORT_LEVELS)} (got {effort!r}).",
            param="output_config.effort",
        )
    return str(effort)


def _system(system: str | list[p.SystemBlock] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    texts = []
    for number, block in enumerate(system):
        if block.type != "text":
            raise InvalidRequest(f"system[{number}]: only text blocks are supported.", param=f"system[{number}]")
        texts.append(block.text)
    return join_system(texts)


def _system_message_text(message: p.MessageParam, where: str) -> str:
    """The text of a ``system`` message; text blocks only, as the API allows."""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for number, block in enumerate(message.content):
        if not isinstance(block, p.TextBlock):
            block_where = f"{where}.content[{number}]"
            raise InvalidRequest(f"{block_where}: a system message holds only text blocks.", param=block_where)
        texts.append(block.text)
    return join_system(texts) or ""


def _blocks(message: p.MessageParam, where: str, limits: MediaLimits) -> tuple[Block, ...]:
    if isinstance(message.content, str):
        return (TextBlock(message.content),) if message.content else ()
    blocks: list[Block] = []
    for number, block in enumerate(message.content):
        block_where = f"{where}.content[{number}]"
        if isinstance(block, p.TextBlock):
            if block.text:
                blocks.append(TextBlock(block.text))
        elif isinstance(block, p.ImageBlock):
            blocks.append(_image(block, block_where, limits.image_bytes))
        elif isinstance(block, p.ToolUseBlock):
            if message.role != "assistant":
                raise InvalidRequest(f"{block_where}: tool_use blocks belong in assistant messages.", param=block_where)
            blocks.append(tool_use(block.id, block.name, block.input))
        elif isinstance(block, p.ToolResultBlock):
            if message.role != "user":
                raise InvalidRequest(f"{block_where}: tool_result blocks belong in user messages.", param=block_where)
            blocks.append(_tool_result(block, block_where, limits.image_bytes))
        elif message.role == "assistant" and block.type in DROPPED_HISTORY_BLOCKS:
            continue
        elif block.type == "document" and message.role == "user":
            blocks.append(_document(block, block_where, limits.document_bytes))
        else:
            raise _unsupported(block, block_where)
    return tuple(blocks)


def _unsupported(block: p.OtherBlock, where: str) -> InvalidRequest:
    if block.type in ("text", "image", "tool_use", "tool_result"):
        return InvalidRequest(f"{where}: malformed {block.type} block.", param=where)
    return InvalidRequest(
        f"{where}: content block type '{block.type}' is not supported; use text, image, tool_use or tool_result.",
        param=where,
    )


def _document(block: p.OtherBlock, where: str, max_bytes: int) -> DocumentBlock:
    """A base64 PDF or a plain-text document, byte for byte; anything else is a 400 naming it."""
    source = getattr(block, "source", None)
    source = source if isinstance(source, dict) else {}
    title = getattr(block, "title", None)
    title = title if isinstance(title, str) and title else None
    kind, media_type, data = source.get("type"), source.get("media_type"), source.get("data")
    if kind == "base64" and media_type == PDF and isinstance(data, str):
        if not is_pdf(decode_base64(data, max_bytes, where, "document")):
            raise InvalidRequest(f"{where}: the document is not a PDF.", param=where)
        return DocumentBlock(PDF, "".join(data.split()), title)
    if kind == "text" and media_type in (None, TEXT) and isinstance(data, str):
        if len(data.encode("utf-8")) > max_bytes:
            raise RequestTooLarge(f"{where}: the document is larger than the {max_bytes} byte limit.", param=where)
        if not data.strip():
            raise InvalidRequest(f"{where}: the document is empty.", param=where)
        return DocumentBlock(TEXT, data, title)
    raise InvalidRequest(
        f"{where}: document sources other than base64 PDF and plain text ({kind!r}, {media_type!r}) are not "
        "supported: there is no file store, and URLs are not fetched.",
        param=where,
    )


def _image(block: p.ImageBlock, where: str, max_image_bytes: int) -> ImageBlock:
    source = block.source
    if source.type == "base64" and source.data is not None:
        return image_from_base64(source.data, max_image_bytes, where)
    if source.type == "url":
        raise InvalidRequest(
            f"{where}: image URLs are not fetched by this server (ALLOW_IMAGE_URLS is off); send the image "
            'as base64 ({"type": "base64", "media_type": ..., "data": ...}).',
            param=where,
        )
    raise InvalidRequest(f"{where}: image source type '{source.type}' is not supported; use base64.", param=where)


def _tool_result(block: p.ToolResultBlock, where: str, max_image_bytes: int) -> ToolResultBlock:
    content: list[TextBlock | Any] = []
    if isinstance(block.content, str):
        if block.content:
            content.append(TextBlock(block.content))
    else:
        for number, part in enumerate(block.content or []):
            part_where = f"{where}.content[{number}]"
            if isinstance(part, p.TextBlock):
                if part.text:
                    content.append(TextBlock(part.text))
            elif isinstance(part, p.ImageBlock):
                content.append(_image(part, part_where, max_image_bytes))
            else:
                raise _unsupported(part, part_where)
    return ToolResultBlock(block.tool_use_id, tuple(content), bool(block.is_error))


def _tool_spec(tool: p.ToolParam, number: int) -> ToolSpec:
    where = f"tools[{number}]"
    if tool.type not in (None, "custom"):
        raise InvalidRequest(
            f"{where}: the server tool '{tool.type}' ({tool.name}) cannot be provided by this bridge; "
            "only client tools (name, description, input_schema) are supported.",
            param=where,
        )
    if tool.input_schema is None:
        raise InvalidRequest(f"{where}: input_schema is required.", param=f"{where}.input_schema")
    return ToolSpec(tool.name, tool.description or "", tool.input_schema)


def _check_tool_choice(choice: p.ToolChoice | None) -> None:
    """A named choice needs its name; whether the tool is among the tools is core's check
    (``core.tools.check_tool_choice``)."""
    if choice is not None and choice.type == "tool" and not choice.name:
        raise InvalidRequest('tool_choice of type "tool" needs a name.', param="tool_choice.name")


def _json_schema(request: p.MessagesRequest) -> dict[str, Any] | None:
    output_format = request.output_format
    if output_format is None and isinstance(request.output_config, dict):
        output_format = request.output_config.get("format")
    if output_format is None:
        return None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise InvalidRequest('output_format must be {"type": "json_schema", "schema": {...}}.', param="output_format")
    schema = output_format.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest("output_format.schema must be a JSON Schema object.", param="output_format.schema")
    return schema


# -- responses ---------------------------------------------------------------------------
def new_message_id() -> str:
    return new_id("msg_")


def usage_dict(usage: Usage) -> dict[str, int]:
    """Anthropic's own usage fields, as the upstream reported them through the CLI."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def to_message(
    events: Iterable[TurnEvent], *, model: str, message_id: str, show_thinking: bool = False
) -> dict[str, Any]:
    """The non-streaming message: thinking (when asked for), text and tool_use blocks in the
    order they came."""
    content: list[dict[str, Any]] = []
    done: TurnDone | None = None
    for event in events:
        if isinstance(event, ThinkingDelta):
            if not show_thinking or not event.text:
                continue
            if content and content[-1]["type"] == "thinking":
                content[-1]["thinking"] += event.text
            else:
                content.append({"type": "thinking", "thinking": event.text, "signature": ""})
        elif isinstance(event, TextDelta):
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += event.text
            elif event.text:
                content.append({"type": "text", "text": event.text})
        elif isinstance(event, ToolCall):
            content.append({"type": "tool_use", "id": event.id, "name": event.name, "input": event.arguments})
        elif isinstance(event, TurnDone):
            done = event
    if done is None:
        raise CliCrashed.without_result()
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": done.stop_reason,
        "stop_sequence": done.stop_sequence,
        "usage": usage_dict(done.usage),
    }


@dataclass
class EventWriter:
    """Per-stream state: neutral events in, ``(event name, data)`` SSE frames out.

    Token counts are only known when the turn ends, so ``message_start`` carries zeros and
    ``message_delta`` the real counts (input, cache and output: the SDKs take each count
    present there as the total). Nothing is estimated.
    """

    model: str
    show_thinking: bool = False
    message_id: str = field(default_factory=new_message_id)
    finished: bool = False
    _started: bool = False
    _index: int = -1  # the current content block
    _open: str | None = None  # the type of the open content block

    def _start(self) -> list[Frame]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_dict(Usage()),
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _close_block(self) -> list[Frame]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _open_block(self, block: dict[str, Any]) -> list[Frame]:
        frames = self._close_block()
        self._index += 1
        self._open = block["type"]
        frames.append(
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block})
        )
        return frames

    def on_event(self, event: TurnEvent) -> list[Frame]:
        frames = self._start()
        if isinstance(event, TextDelta):
            if not event.text:
                return frames
            if self._open != "text":
                frames += self._open_block({"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            frames.append(
                ("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})
            )
        elif isinstance(event, ThinkingDelta):
            if not self.show_thinking or not event.text:
                return frames
            if self._open != "thinking":
                frames += self._open_block({"type": "thinking", "thinking": "", "signature": ""})
            delta = {"type": "thinking_delta", "thinking": event.text}
            frames.append(
                ("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})
            )
        elif isinstance(event, ToolCall):
            frames += self._open_block({"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(event.arguments, ensure_ascii=False)}
            frames.append(
                ("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})
            )
            frames += self._close_block()
        elif isinstance(event, TurnDone):
            self.finished = True
            frames += self._close_block()
            ending = {"stop_reason": event.stop_reason, "stop_sequence": event.stop_sequence}
            frames.append(
                ("message_delta", {"type": "message_delta", "delta": ending, "usage": usage_dict(event.usage)})
            )
            frames.append(("message_stop", {"type": "message_stop"}))
        return frames

    def on_error(self, error: BridgeError) -> list[Frame]:
        """A failure after the first byte: Anthropic's ``error`` event (the SDKs raise on it)."""
        return [("error", error_body(error))]

    def closing(self) -> list[Frame]:
        return []
