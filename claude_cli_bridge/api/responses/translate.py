"""Pure converters from OpenAI Responses API requests to the neutral turn model.

``from_responses_request`` turns input items (plus a stored conversation, for
``previous_response_id``) into a TurnRequest; the answer side is ``writer``.

Facts relied on, from the clients' source: Codex (``codex-rs``) sends ``store: false``, a
``web_search`` tool, ``namespace`` tool groups, developer-role messages with ids, its whole
history as input items (with ``reasoning`` items) and ``include``/``prompt_cache_key``/
``client_metadata``; the openai-agents SDK sends the whole history as items too, unless it is
told to chain by ``previous_response_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...core import reasoning, safe_json
from ...core.documents import document_from_file_data
from ...core.images import image_from_data_url
from ...core.messages import (
    Block,
    ImageBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    merge_consecutive,
)
from ...core.tools import check_tool_choice
from ...core.turn import ToolSpec, TurnRequest
from ...errors import InvalidRequest
from ..parts import MediaLimits, join_system, tool_use
from .protocol import ResponsesRequest

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
    show_reasoning: bool = False  # reasoning.summary was asked for: the thinking is a reasoning item


@dataclass(frozen=True)
class Previous:
    """What a stored response contributes to a follow-up."""

    messages: tuple[Message, ...]
    system_inputs: tuple[str, ...]


# -- requests ----------------------------------------------------------------------------
def from_responses_request(
    request: ResponsesRequest,
    media: MediaLimits,
    *,
    previous: Previous | None,
    default_model: str,
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
    system_inputs, messages = from_input_items(items, media)
    earlier = previous.system_inputs if previous else ()
    history = list(previous.messages) if previous else []
    merged = [m for m in merge_consecutive(history + messages) if m.content]
    if not merged or merged[-1].role != "user":
        raise InvalidRequest(
            "input must end with a user message or function_call_output items.",
            param="input",
        )
    tools, namespaces, dropped = tool_specs(request.tools or [])
    tool_choice, forced = tool_choice_of(request.tool_choice)
    system = join_system((request.instructions, *earlier, *system_inputs))
    asked = request.reasoning
    think = reasoning.from_openai(asked.effort if asked else None)
    turn = TurnRequest(
        model=request.model or default_model,
        messages=merged,
        system=system,
        max_tokens=request.max_output_tokens,
        json_schema=_json_schema(request),
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        conversation_key=conversation_key,
        effort=think.effort,
        thinking=think.thinking,
    )
    check_tool_choice(turn)
    show = asked is not None and asked.summary is not None and think.thinking is not False
    return Translated(turn, namespaces, (*earlier, *system_inputs), dropped, show_reasoning=show)


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


def from_input_items(items: list[dict[str, Any]], media: MediaLimits) -> tuple[tuple[str, ...], list[Message]]:
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
                messages.append(Message(role, _content(item.get("content"), role, where, media)))
            else:
                raise InvalidRequest(
                    f"{where}: role {role!r} is not one of user, assistant, system, developer.", param=f"{where}.role"
                )
        elif kind == "function_call":
            messages.append(Message("assistant", (_function_call(item, where),)))
        elif kind == "function_call_output":
            messages.append(Message("user", (_function_call_output(item, where, media.image_bytes),)))
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


def _content(content: Any, role: str, where: str, limits: MediaLimits) -> tuple[Block, ...]:
    max_image_bytes, max_document_bytes = limits.image_bytes, limits.document_bytes
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
        elif kind == "input_file" and role == "user":
            blocks.append(_file(part, part_where, max_document_bytes))
        else:
            raise InvalidRequest(
                f"{part_where}: content part type {kind!r} is not supported in a {role} message; use input_text "
                "or input_image (user), output_text (assistant).",
                param=part_where,
            )
    return tuple(blocks)


def _file(part: dict[str, Any], where: str, max_bytes: int) -> Block:
    """``input_file`` with ``file_data`` (a data URL or base64): a PDF or text document."""
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        if part.get("file_id") or part.get("file_url"):
            raise InvalidRequest(
                f"{where}: file ids and file URLs are not supported (there is no file store); send the file "
                "as file_data.",
                param=where,
            )
        raise InvalidRequest(f"{where}: input_file needs file_data.", param=where)
    filename = part.get("filename")
    return document_from_file_data(data, filename if isinstance(filename, str) else None, max_bytes, where)


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
    return tool_use(call_id, name, safe_json.loads(arguments, f"{where}.arguments"))


def _function_call_output(item: dict[str, Any], where: str, max_image_bytes: int) -> ToolResultBlock:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}: a function_call_output needs call_id.", param=f"{where}.call_id")
    output = item.get("output")
    content: tuple[Block, ...]
    if isinstance(output, str) or output is None:
        content = (TextBlock(output),) if output else ()
    else:
        content = _content(output, "user", f"{where}.output", MediaLimits(max_image_bytes, max_image_bytes))
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


def tool_choice_of(choice: str | dict[str, Any] | None) -> tuple[Literal["auto", "none", "required"], str | None]:
    """The neutral tool choice and the forced tool's name: ``"none"`` hides the tools;
    ``required`` and a named function force a call, as for chat completions. Forcing a hosted
    tool is a 400."""
    if choice is None or choice == "auto":
        return "auto", None
    if choice in ("none", "required"):
        return choice, None  # type: ignore[return-value]
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            name = choice.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest('tool_choice of type "function" needs a name.', param="tool_choice")
            # Whether it is among the tools is core's check (core.tools.check_tool_choice).
            return "required", name
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
