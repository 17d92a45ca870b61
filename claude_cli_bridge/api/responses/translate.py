"""Pure converters between the OpenAI Responses API and the neutral turn model.

Requests: ``from_responses_request`` turns input items (plus a stored conversation, for
``previous_response_id``) into a TurnRequest. Responses: ``ResponseWriter`` turns neutral
events into the typed stream events and builds the final response object; a non-streaming
answer is the same writer's final object, so both shapes agree.

Facts relied on, from the clients' source:
- openai-python ``lib/streaming/responses/_responses.py`` needs ``response.created`` first,
  ``response.output_item.added`` before any event naming its ``output_index``,
  ``response.content_part.added`` before ``response.output_text.delta`` on that part, the same
  response ``id`` on every lifecycle event, and the same item identity (type, id, call_id) in
  ``output_item.added`` and ``output_item.done``.
- Codex (``codex-rs/codex-api/src/sse/responses.rs``) takes message and function_call items from
  ``response.output_item.done``, text deltas from ``response.output_text.delta``, ends the turn
  at ``response.completed`` (``response.id``, ``usage`` with ``input_tokens_details.cached_tokens``),
  and reports ``response.failed``'s ``response.error.message``; it sends ``store: false``, a
  ``web_search`` tool, ``namespace`` tool groups and developer-role messages.
- openai-agents (``models/openai_responses.py``) stops at the first of ``response.completed``,
  ``response.failed``, ``response.incomplete`` or ``error``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from ...core import safe_json
from ...core.images import image_from_data_url
from ...core.messages import (
    Block,
    ImageBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    canonical_json,
    merge_consecutive,
)
from ...core.turn import TextDelta, ToolCall, ToolSpec, TurnDone, TurnEvent, TurnRequest, Usage
from ...errors import BridgeError, InvalidRequest
from .protocol import ResponsesRequest

log = logging.getLogger(__name__)

Frame = tuple[str, dict[str, Any]]  # (SSE event name, data)

DOCUMENTS_NOT_SUPPORTED = "documents are not supported yet"
# Tool types the caller runs itself: the bridge offers them to the model.
CLIENT_TOOL_TYPES = ("function", "namespace")
# Input items of the model's own reasoning: the bridge never returned any, and earlier reasoning
# is not needed to continue a conversation (the real API drops it too, outside tool loops).
DROPPED_ITEMS = ("reasoning",)


@dataclass
class Translated:
    """A request in neutral form, plus what the response and the store need."""

    turn: TurnRequest
    namespaces: dict[str, str]  # tool name -> namespace group it came in
    system_inputs: tuple[str, ...]  # system/developer input texts, carried by previous_response_id
    dropped_tools: tuple[str, ...]  # hosted tools offered by the caller and not given to the model


@dataclass(frozen=True)
class Previous:
    """What a stored response contributes to a follow-up."""

    messages: tuple[Message, ...]
    system_inputs: tuple[str, ...]


# -- requests ----------------------------------------------------------------------------
def from_responses_request(
    request: ResponsesRequest,
    *,
    previous: Previous | None,
    default_model: str,
    max_image_bytes: int,
    conversation_key: str | None = None,
) -> Translated:
    """The neutral request. ``instructions`` and system/developer input messages make the
    system prompt (stored ones of earlier responses first); a stored conversation comes before
    the new items; consecutive same-role turns are merged."""
    _refuse_unsupported(request)
    items: list[dict[str, Any]]
    if isinstance(request.input, str):
        items = [{"role": "user", "content": request.input}]
    else:
        items = request.input
    system_inputs, messages = from_input_items(items, max_image_bytes)
    earlier = previous.system_inputs if previous else ()
    history = list(previous.messages) if previous else []
    merged = [m for m in merge_consecutive(history + messages) if m.content]
    if not merged or merged[-1].role != "user":
        raise InvalidRequest(
            "input must end with a user message or function_call_output items.",
            param="input",
        )
    tools, namespaces, dropped = tool_specs(request.tools or [])
    tool_choice = check_tool_choice(request.tool_choice, tools)
    system = "\n\n".join(part for part in (request.instructions or "", *earlier, *system_inputs) if part)
    turn = TurnRequest(
        model=request.model or default_model,
        messages=merged,
        system=system or None,
        max_tokens=request.max_output_tokens,
        json_schema=_json_schema(request),
        tools=tools,
        tool_choice=tool_choice,
        conversation_key=conversation_key,
    )
    return Translated(turn, namespaces, (*earlier, *system_inputs), dropped)


def _refuse_unsupported(request: ResponsesRequest) -> None:
    if request.background:
        raise InvalidRequest(
            "background responses are not supported: the bridge answers in the request (stream or not).",
            param="background",
        )
    if request.conversation is not None:
        raise InvalidRequest(
            "conversation is not supported (the Conversations API is not served); use previous_response_id "
            "or send the history as input items.",
            param="conversation",
        )
    if request.prompt is not None:
        raise InvalidRequest("prompt templates are not supported; send instructions and input.", param="prompt")


def from_input_items(items: list[dict[str, Any]], max_image_bytes: int) -> tuple[tuple[str, ...], list[Message]]:
    """System/developer texts and the conversation messages of a list of input items."""
    system: list[str] = []
    messages: list[Message] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: expected an input item object.", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system.append(_plain_text(item.get("content"), where))
            elif role in ("user", "assistant"):
                messages.append(Message(role, _content(item.get("content"), role, where, max_image_bytes)))
            else:
                raise InvalidRequest(
                    f"{where}: role {role!r} is not one of user, assistant, system, developer.", param=f"{where}.role"
                )
        elif kind == "function_call":
            messages.append(Message("assistant", (_function_call(item, where),)))
        elif kind == "function_call_output":
            messages.append(Message("user", (_function_call_output(item, where, max_image_bytes),)))
        elif kind in DROPPED_ITEMS:
            continue
        else:
            raise InvalidRequest(
                f"{where}: input item type '{kind}' is not supported; use message, function_call, "
                "function_call_output (or reasoning, which is ignored).",
                param=f"{where}.type",
            )
    return tuple(system), messages


def _plain_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts.", param=f"{where}.content")
    texts = []
    for number, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "text", "output_text"):
            raise InvalidRequest(
                f"{where}.content[{number}]: system and developer messages may hold only text.",
                param=f"{where}.content[{number}]",
            )
        texts.append(_text_of(part, f"{where}.content[{number}]"))
    return "\n".join(texts)


def _text_of(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string.", param=f"{where}.text")
    return text


def _content(content: Any, role: str, where: str, max_image_bytes: int) -> tuple[Block, ...]:
    if content is None or isinstance(content, str):
        return (TextBlock(content),) if content else ()
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts.", param=f"{where}.content")
    blocks: list[Block] = []
    for number, part in enumerate(content):
        part_where = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            text = _text_of(part, part_where)
            if text:
                blocks.append(TextBlock(text))
        elif kind == "refusal" and role == "assistant":
            refusal = part.get("refusal")
            if isinstance(refusal, str) and refusal:
                blocks.append(TextBlock(refusal))
        elif kind == "input_image" and role == "user":
            blocks.append(_image(part, part_where, max_image_bytes))
        elif kind == "input_file":
            raise InvalidRequest(f"{part_where}: {DOCUMENTS_NOT_SUPPORTED}.", param=part_where)
        else:
            raise InvalidRequest(
                f"{part_where}: content part type {kind!r} is not supported in a {role} message; use input_text "
                "or input_image (user), output_text (assistant).",
                param=part_where,
            )
    return tuple(blocks)


def _image(part: dict[str, Any], where: str, max_image_bytes: int) -> ImageBlock:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        if part.get("file_id"):
            raise InvalidRequest(f"{where}: file ids are not supported; send the image as a data URL.", param=where)
        raise InvalidRequest(f"{where}: input_image needs image_url (a data URL).", param=where)
    return image_from_data_url(url, max_image_bytes, where)


def _function_call(item: dict[str, Any], where: str) -> ToolUseBlock:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}: a function_call needs call_id and name.", param=where)
    arguments = item.get("arguments") or "{}"
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{where}.arguments must be a JSON string.", param=f"{where}.arguments")
    parsed = safe_json.loads(arguments, f"{where}.arguments")
    if not isinstance(parsed, dict):
        parsed = {"value": parsed}
    return ToolUseBlock(call_id, name, canonical_json(parsed))


def _function_call_output(item: dict[str, Any], where: str, max_image_bytes: int) -> ToolResultBlock:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}: a function_call_output needs call_id.", param=f"{where}.call_id")
    output = item.get("output")
    content: tuple[Block, ...]
    if isinstance(output, str) or output is None:
        content = (TextBlock(output),) if output else ()
    else:
        content = _content(output, "user", f"{where}.output", max_image_bytes)
    return ToolResultBlock(call_id, content)  # type: ignore[arg-type]


def tool_specs(tools: list[dict[str, Any]]) -> tuple[tuple[ToolSpec, ...], dict[str, str], tuple[str, ...]]:
    """Function tools (namespace groups unfolded), each tool's namespace, and the hosted
    tools left out (web_search, file_search...: the bridge cannot run them, and Codex offers
    web_search on every request, so offering is not an error; forcing one is)."""
    specs: list[ToolSpec] = []
    namespaces: dict[str, str] = {}
    dropped: list[str] = []

    def add(tool: dict[str, Any], where: str, namespace: str | None) -> None:
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{where}: a function tool needs a name.", param=where)
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        description = tool.get("description") or ""
        specs.append(ToolSpec(name, description if isinstance(description, str) else "", parameters))
        if namespace is not None:
            namespaces[name] = namespace

    for number, tool in enumerate(tools):
        where = f"tools[{number}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            add(tool, where, None)
        elif kind == "namespace":
            group = tool.get("name") or ""
            for inner_number, inner in enumerate(tool.get("tools") or []):
                inner_where = f"{where}.tools[{inner_number}]"
                if not isinstance(inner, dict) or inner.get("type") != "function":
                    raise _custom_tool(inner, inner_where)
                add(inner, inner_where, str(group))
        elif kind == "custom":
            raise _custom_tool(tool, where)
        elif isinstance(kind, str) and kind:
            dropped.append(kind)
        else:
            raise InvalidRequest(f"{where}: a tool needs a type.", param=where)
    return tuple(specs), namespaces, tuple(dropped)


def _custom_tool(tool: Any, where: str) -> InvalidRequest:
    name = tool.get("name") if isinstance(tool, dict) else None
    return InvalidRequest(
        f"{where}: custom (free-form) tools are not supported ({name!r}); define it as a function tool.",
        param=where,
    )


def check_tool_choice(choice: str | dict[str, Any] | None, tools: tuple[ToolSpec, ...]) -> Literal["auto", "none"]:
    """``"none"`` hides the tools; ``auto``, ``required`` and a named function are accepted
    (the model is not forced, as for chat completions). Forcing a hosted tool is a 400."""
    if choice is None or choice in ("auto", "required"):
        return "auto"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            name = choice.get("name")
            if name not in {tool.name for tool in tools}:
                raise InvalidRequest(
                    f"tool_choice names function {name!r}, which is not in tools.", param="tool_choice"
                )
            return "auto"
        if kind == "allowed_tools":
            raise InvalidRequest(
                "tool_choice allowed_tools is not supported; send only the allowed tools.", param="tool_choice"
            )
        raise InvalidRequest(
            f"tool_choice forces the hosted tool '{kind}', which this bridge cannot provide.", param="tool_choice"
        )
    raise InvalidRequest(
        f"tool_choice {choice!r} is not one of none, auto, required or a function.", param="tool_choice"
    )


def _json_schema(request: ResponsesRequest) -> dict[str, Any] | None:
    text_format = request.text.format if request.text else None
    if text_format is None or text_format.type == "text":
        return None
    if text_format.type == "json_object":
        return {"type": "object"}
    if text_format.schema_ is None:
        raise InvalidRequest("text.format json_schema needs a schema.", param="text.format.schema")
    return text_format.schema_


# -- responses ---------------------------------------------------------------------------
def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def usage_dict(usage: Usage) -> dict[str, Any]:
    """``input_tokens`` counts everything the model read (cache reads and writes included),
    as OpenAI's does; ``cached_tokens`` the cache reads. All as the upstream reported them."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
    }


def echo_fields(request: ResponsesRequest, model: str) -> dict[str, Any]:
    """The request settings a response object repeats."""
    text = request.text.model_dump(by_alias=True, exclude_none=True) if request.text else {}
    return {
        "model": model,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "parallel_tool_calls": request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        "previous_response_id": request.previous_response_id,
        "reasoning": request.reasoning.model_dump() if request.reasoning else {"effort": None, "summary": None},
        "store": request.store is not False,
        "temperature": request.temperature,
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": request.tools or [],
        "top_p": request.top_p,
        "truncation": request.truncation or "disabled",
        "user": request.user,
    }


@dataclass
class ResponseWriter:
    """Per-stream state: neutral events in, Responses stream events out.

    Every event carries ``type`` and an increasing ``sequence_number``. Output items open as
    they come: text opens a message item (``output_item.added`` + ``content_part.added``); a
    tool call closes it and adds a ``function_call`` item. The turn's end gives
    ``response.completed`` (or ``response.incomplete`` when the output limit cut it), whose
    response is ``final``; a failure gives ``response.failed`` and an ``error`` event.
    """

    echo: dict[str, Any]
    namespaces: dict[str, str] = field(default_factory=dict)
    response_id: str = field(default_factory=new_response_id)
    created_at: int = field(default_factory=lambda: int(time.time()))
    finished: bool = False
    final: dict[str, Any] | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # all answer text, for the stored history
    calls: list[ToolCall] = field(default_factory=list)
    _sequence: int = 0
    _started: bool = False
    _message: dict[str, Any] | None = None  # the open message item

    def _event(self, kind: str, **data: Any) -> Frame:
        frame = (kind, {"type": kind, "sequence_number": self._sequence, **data})
        self._sequence += 1
        return frame

    def response(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            **self.echo,
            "output": [_copy(item) for item in self.output],
            "usage": None,
            **extra,
        }

    def _start(self) -> list[Frame]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
        ]

    def _open_message(self) -> list[Frame]:
        item = {
            "type": "message",
            "id": "msg_" + uuid.uuid4().hex,
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.output.append(item)
        self._message = item
        index = len(self.output) - 1
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self._event("response.output_item.added", output_index=index, item=_copy(item)),
            self._event(
                "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
            ),
        ]

    def _close_message(self, status: str = "completed", announce: bool = True) -> list[Frame]:
        """Finish the open message item; ``announce`` sends its done events (not for a failure,
        whose ``response.failed`` lists the item as it stands)."""
        item, self._message = self._message, None
        if item is None:
            return []
        index = self.output.index(item)
        text = item.pop("_text", "")
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item["content"] = [part]
        item["status"] = status
        if not announce:
            return []
        return [
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event(
                "response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part
            ),
            self._event("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def on_event(self, event: TurnEvent) -> list[Frame]:
        frames = self._start()
        if isinstance(event, TextDelta):
            if not event.text:
                return frames
            if self._message is None:
                frames += self._open_message()
            item = self._message
            assert item is not None
            item["_text"] = item.get("_text", "") + event.text
            self.texts.append(event.text)
            frames.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=self.output.index(item),
                    content_index=0,
                    delta=event.text,
                    logprobs=[],
                )
            )
        # (A thinking event, once the engine has one: close any open message, then add a
        # {"type": "reasoning", "summary": [...]} item with response.reasoning_summary_part.added /
        # response.reasoning_summary_text.delta events, like the message item above.)
        elif isinstance(event, ToolCall):
            frames += self._close_message()
            frames += self._function_call(event)
        elif isinstance(event, TurnDone):
            cut = event.stop_reason == "max_tokens"
            frames += self._close_message("incomplete" if cut else "completed")
            self.finished = True
            if cut:
                self.final = self.response(
                    "incomplete", incomplete_details={"reason": "max_output_tokens"}, usage=usage_dict(event.usage)
                )
                frames.append(self._event("response.incomplete", response=self.final))
            else:
                self.final = self.response("completed", usage=usage_dict(event.usage))
                frames.append(self._event("response.completed", response=self.final))
        return frames

    def _function_call(self, call: ToolCall) -> list[Frame]:
        self.calls.append(call)
        arguments = json.dumps(call.arguments, ensure_ascii=False) if call.arguments else "{}"
        item: dict[str, Any] = {
            "type": "function_call",
            "id": "fc_" + uuid.uuid4().hex,
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }
        if call.name in self.namespaces:
            item["namespace"] = self.namespaces[call.name]
        self.output.append(item)
        index = len(self.output) - 1
        frames = [self._event("response.output_item.added", output_index=index, item=_copy(item))]
        frames.append(
            self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=arguments
            )
        )
        item.update(arguments=arguments, status="completed")
        frames.append(
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call.name,
                arguments=arguments,
            )
        )
        frames.append(self._event("response.output_item.done", output_index=index, item=_copy(item)))
        return frames

    def on_error(self, error: BridgeError) -> list[Frame]:
        """After the first byte: ``response.failed`` (with the output so far), then ``error``."""
        self._close_message("incomplete", announce=False)
        code = error.code or error.kind
        failed = self.response("failed", error={"code": code, "message": error.message})
        return [
            self._event("response.failed", response=failed),
            self._event("error", code=code, message=error.message, param=error.param),
        ]

    def closing(self) -> list[Frame]:
        return []

    def answer_message(self) -> Message:
        """The assistant turn this response adds to its conversation, in the shape a CLI
        process records it (all text in one block, then the calls), so a follow-up by
        ``previous_response_id`` finds the process that holds it."""
        blocks: list[Block] = []
        if self.texts:
            blocks.append(TextBlock("".join(self.texts)))
        blocks.extend(ToolUseBlock(call.id, call.name, canonical_json(call.arguments)) for call in self.calls)
        return Message("assistant", tuple(blocks))


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if not key.startswith("_")}


def to_response(writer: ResponseWriter, events: list[TurnEvent]) -> dict[str, Any]:
    """The non-streaming response object: the events run through the stream writer."""
    for event in events:
        writer.on_event(event)
    if writer.final is None:
        raise BridgeError("The Claude CLI ended the turn without a result.")
    return writer.final
