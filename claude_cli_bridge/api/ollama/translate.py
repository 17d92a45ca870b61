"""Pure converters between Ollama's API and the neutral turn model.

Requests: ``from_chat_request`` and ``from_generate_request`` build a TurnRequest (None for
a model-load request, which is answered at once). Responses: ``FrameWriter`` turns neutral events into
``/api/chat`` or ``/api/generate`` frames (one per-stream state object, durations included);
``tags_body``, ``show_body`` and ``ps_body`` describe the models. Shapes follow ollama-python's
``_types.py`` (ChatResponse, GenerateResponse, ListResponse, ShowResponse, ProcessResponse).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ...core import reasoning, safe_json
from ...core.documents import pdf_from_base64
from ...core.fim import fill_in_the_middle
from ...core.images import image_from_base64
from ...core.messages import (
    Block,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    merge_consecutive,
)
from ...core.models import CATALOG, ModelInfo, family_of, strip_tag
from ...core.served import served_models
from ...core.turn import TextDelta, ThinkingDelta, ToolCall, TurnDone, TurnEvent, TurnRequest
from ...errors import BridgeError, CliCrashed, InvalidRequest
from ..parts import MediaLimits, join_system, tool_input, tool_spec, tool_use
from .protocol import ChatMessage, ChatRequest, GenerateRequest, Options, ToolCallIn

Kind = Literal["chat", "generate"]


# -- requests ----------------------------------------------------------------------------
def from_chat_request(
    chat: ChatRequest,
    media: MediaLimits,
    *,
    conversation_key: str | None = None,
) -> TurnRequest | None:
    """The neutral request, or None when ``messages`` is empty (Ollama's "load the model").

    System messages become the system prompt; assistant ``tool_calls`` become tool_use blocks
    and ``tool`` messages tool_result blocks, paired by ``tool_call_id``, else ``tool_name``,
    else order (ollama-python sends neither id); consecutive same-role turns are merged.
    A PDF among a user message's ``images`` becomes a document (``media.document_bytes``).
    """
    if not chat.messages:
        return None
    system: list[str] = []
    messages: list[Message] = []
    calls = _PendingCalls()
    for index, message in enumerate(chat.messages):
        where = f"messages[{index}]"
        text = _text(message, where)
        if message.role == "system":
            if message.images:
                raise InvalidRequest(f"{where}: a system message cannot carry images.", param=where)
            system.append(text)
        elif message.role == "user":
            attached = _attachments(message.images, where, media)
            messages.append(Message("user", attached + _texts(text)))
        elif message.role == "assistant":
            uses = tuple(calls.issue(call, index, n, where) for n, call in enumerate(message.tool_calls or []))
            messages.append(Message("assistant", _texts(text) + uses))
        elif message.role == "tool":
            tool_id = calls.answer(message.tool_call_id, message.tool_name or message.name, where)
            content = _images(message.images, where, media.image_bytes) + _texts(text)
            messages.append(Message("user", (ToolResultBlock(tool_id, content),)))  # type: ignore[arg-type]
        else:
            raise InvalidRequest(
                f"{where}: unknown role '{message.role}'; use system, user, assistant or tool.", param=f"{where}.role"
            )
    think = reasoning.from_ollama(chat.think)
    return TurnRequest(
        model=strip_tag(chat.model or ""),
        messages=_conversation(messages),
        system=join_system(system),
        max_tokens=_max_tokens(chat.options),
        stop=_stops(chat.options),
        json_schema=json_schema_for(chat.format),
        tools=tuple(
            tool_spec(t.function.name, t.function.description, t.function.parameters) for t in chat.tools or []
        ),
        conversation_key=conversation_key or chat.id,  # `user` names a person, not a conversation
        effort=think.effort,
        thinking=think.thinking,
    )


def from_generate_request(
    generate: GenerateRequest,
    media: MediaLimits,
    *,
    conversation_key: str | None = None,
) -> TurnRequest | None:
    """The neutral request for ``/api/generate``, or None for an empty prompt (a load request).

    ``suffix`` asks for the text between prompt and suffix: the prompt is sent as
    ``<prefix>…</prefix><suffix>…</suffix>`` with a fill-in-the-middle instruction in the
    system prompt. ``raw`` sends the prompt verbatim and, as Ollama does, refuses ``system``,
    ``template`` and ``context`` beside it. ``template`` and ``context`` are otherwise ignored.
    """
    prompt = generate.prompt or ""
    if not prompt and not generate.images:
        return None
    if generate.raw and (generate.system or generate.template or generate.context):
        raise InvalidRequest("raw mode does not support template, system, or context.", param="raw")
    system = generate.system or None
    text = prompt
    if generate.suffix and not generate.raw:
        text, system = fill_in_the_middle(prompt, generate.suffix, system)
    attached = _attachments(generate.images, "images", media)
    blocks = attached + _texts(text)
    think = reasoning.from_ollama(generate.think)
    return TurnRequest(
        model=strip_tag(generate.model or ""),
        messages=[Message("user", blocks)],
        system=system,
        max_tokens=_max_tokens(generate.options),
        stop=_stops(generate.options),
        json_schema=json_schema_for(generate.format),
        conversation_key=conversation_key or generate.id,
        effort=think.effort,
        thinking=think.thinking,
    )


def json_schema_for(format_: Any) -> dict[str, Any] | None:
    """``format``: ``"json"`` -> any object; a schema -> itself. Claude answers structured output
    through a tool whose input must be an object, so the schema's root must be one."""
    if format_ is None or format_ == "":
        return None
    if format_ == "json":
        return {"type": "object"}
    if not isinstance(format_, dict):
        raise InvalidRequest('format must be "json" or a JSON schema object.', param="format")
    schema = dict(format_)
    schema.setdefault("type", "object")
    if schema["type"] != "object":
        raise InvalidRequest(
            f'format: the schema\'s root type must be "object" (got {schema["type"]!r}); wrap other '
            "values in an object property.",
            param="format",
        )
    return schema


def _text(message: ChatMessage, where: str) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise InvalidRequest(
                f"{where}.content: expected a string; send images in the message's 'images' list.",
                param=f"{where}.content",
            )
    return "\n".join(texts)


def _texts(text: str) -> tuple[Block, ...]:
    return (TextBlock(text),) if text else ()


def _attachments(images: list[str] | None, where: str, limits: MediaLimits) -> tuple[Block, ...]:
    """A user turn's ``images``: images, and PDFs as documents (Ollama has no field of its own
    for them, and ollama-python sends any file there as base64)."""
    blocks: list[Block] = []
    for n, data in enumerate(images or []):
        part = f"{where}.images[{n}]"
        document = pdf_from_base64(data, limits.document_bytes, part)
        blocks.append(document if document is not None else image_from_base64(data, limits.image_bytes, part))
    return tuple(blocks)


def _images(images: list[str] | None, where: str, max_bytes: int) -> tuple[Block, ...]:
    return tuple(image_from_base64(data, max_bytes, f"{where}.images[{n}]") for n, data in enumerate(images or []))


def _conversation(messages: list[Message]) -> list[Message]:
    merged = merge_consecutive([m for m in messages if m.content])
    if not merged or merged[-1].role != "user":
        raise InvalidRequest(
            "messages must end with a user or tool message (an answer to continue is not supported).",
            param="messages",
        )
    return merged


def _max_tokens(options: Options | None) -> int | None:
    if options is None or options.num_predict is None or options.num_predict <= 0:
        return None  # -1 and -2 mean "no limit"
    return options.num_predict


def _stops(options: Options | None) -> tuple[str, ...]:
    if options is None or not options.stop:
        return ()
    stops = [options.stop] if isinstance(options.stop, str) else options.stop
    return tuple(stop for stop in stops if stop)


class _PendingCalls:
    """Assistant tool calls not yet answered, to pair each tool message with its call."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def issue(self, call: ToolCallIn, index: int, n: int, where: str) -> ToolUseBlock:
        # Clients that drop ids get ones derived from the position, so a history keeps its ids
        # from request to request.
        call_id = call.id or f"call_{index}_{n}"
        self.pending.append((call_id, call.function.name))
        return tool_use(call_id, call.function.name, _arguments(call, f"{where}.tool_calls[{n}]"))

    def answer(self, call_id: str | None, name: str | None, where: str) -> str:
        for match in (
            lambda p: p[0] == call_id,
            lambda p: bool(name) and p[1] == name,
            lambda p: True,
        ):
            for pending in self.pending:
                if match(pending):
                    self.pending.remove(pending)
                    return pending[0]
        raise InvalidRequest(
            f"{where}: a tool message must answer a tool call of an earlier assistant message.", param=where
        )


def _arguments(call: ToolCallIn, where: str) -> dict[str, Any]:
    arguments = call.function.arguments
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        arguments = safe_json.loads(arguments, f"{where}.function.arguments")
    return tool_input(arguments)


# -- responses ---------------------------------------------------------------------------
DONE_REASONS = {"max_tokens": "length"}  # end_turn, stop_sequence, tool_use...: "stop"


def done_reason(stop_reason: str) -> str:
    return DONE_REASONS.get(stop_reason, "stop")


def rfc3339(moment: datetime | float) -> str:
    """UTC time as Ollama writes it (``2026-01-01T00:00:00.000000Z``)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def tool_call_dict(call: ToolCall, index: int) -> dict[str, Any]:
    return {"id": call.id, "function": {"index": index, "name": call.name, "arguments": call.arguments}}


@dataclass
class FrameWriter:
    """Per-stream state: neutral events in, ``/api/chat`` or ``/api/generate`` frames out.

    Times are ``time.monotonic_ns()`` values passed in (so this stays pure). The final frame's
    durations: ``total_duration`` from ``started_ns`` to the end; ``load_duration`` as the
    engine reports it (``TurnDone.timings["load_ns"]``, else 0); ``prompt_eval_duration`` up
    to the first event; ``eval_duration`` from the first event to the end (at least 1 ns, as
    clients divide by it). Counts are the upstream's: prompt tokens (cache included), output.

    ``think``: the request set ``think``, so the model's thinking is returned as Ollama does,
    in ``message.thinking`` (``thinking`` beside ``response`` for generate); otherwise it is
    left out, as Ollama leaves it out.
    """

    model: str
    kind: Kind = "chat"
    started_ns: int = 0
    first_ns: int | None = None
    finished: bool = False
    think: bool = False
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def frame(self, content: str = "", **extra: Any) -> dict[str, Any]:
        frame: dict[str, Any] = {"model": self.model, "created_at": now_rfc3339()}
        thinking = extra.pop("thinking", None)
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if "tool_calls" in extra:
                message["tool_calls"] = extra.pop("tool_calls")
            frame["message"] = message
        else:
            frame["response"] = content
            if thinking:
                frame["thinking"] = thinking
        frame["done"] = False
        frame.update(extra)
        return frame

    def mark_first(self, now_ns: int) -> None:
        """Note when the turn's first event arrived (the end of "prompt evaluation")."""
        if self.first_ns is None:
            self.first_ns = now_ns

    def on_event(self, event: TurnEvent, now_ns: int) -> list[dict[str, Any]]:
        """The frames one event yields (streaming)."""
        self.mark_first(now_ns)
        if isinstance(event, ThinkingDelta):
            if not self.think or not event.text:
                return []
            self.thinking.append(event.text)
            return [self.frame(thinking=event.text)]
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            return [self.frame(event.text)] if event.text else []
        if isinstance(event, ToolCall):
            call = tool_call_dict(event, len(self.tool_calls))
            self.tool_calls.append(call)
            if self.kind == "generate":
                return []  # /api/generate has no tool calls
            return [self.frame(tool_calls=[call])]
        if isinstance(event, TurnDone):
            return [self.final(event, now_ns)]
        return []

    def final(self, done: TurnDone, now_ns: int, content: str = "") -> dict[str, Any]:
        """The closing frame (``done: true``) with reason, counts and durations."""
        self.finished = True
        first = self.first_ns if self.first_ns is not None else now_ns
        load = max(0, min(int(done.timings.get("load_ns", 0)), first - self.started_ns))
        stats = {
            "done_reason": done_reason(done.stop_reason),
            "total_duration": max(1, now_ns - self.started_ns),
            "load_duration": load,
            "prompt_eval_count": done.usage.prompt_tokens,
            "prompt_eval_duration": max(0, first - self.started_ns - load),
            "eval_count": done.usage.output_tokens,
            "eval_duration": max(1, now_ns - first),
        }
        frame = self.frame(content, **stats)
        frame["done"] = True
        return frame

    def whole(self, events: Iterable[TurnEvent], now_ns: int) -> dict[str, Any]:
        """The single response of a non-streaming request: every event folded into one."""
        done = None
        for event in events:
            if isinstance(event, TurnDone):
                done = event
            else:
                self.on_event(event, now_ns)
        if done is None:
            raise CliCrashed.without_result()
        frame = self.final(done, now_ns, "".join(self.text))
        if self.thinking:
            if self.kind == "chat":
                frame["message"]["thinking"] = "".join(self.thinking)
            else:
                frame["thinking"] = "".join(self.thinking)
        if self.kind == "chat" and self.tool_calls:
            frame["message"]["tool_calls"] = self.tool_calls
        return frame

    def load(self, unload: bool) -> dict[str, Any]:
        """The one frame answering a request with nothing to generate (a model load)."""
        self.finished = True
        frame = self.frame(done_reason="unload" if unload else "load")
        frame["done"] = True
        return frame


_ZERO_DURATION = re.compile(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?")


def is_unload(keep_alive: Any) -> bool:
    """``keep_alive`` 0 (or "0", "0s", "0m"...) asks Ollama to unload the model."""
    if isinstance(keep_alive, bool):
        return False
    if isinstance(keep_alive, (int, float)):
        return keep_alive == 0
    return isinstance(keep_alive, str) and bool(_ZERO_DURATION.fullmatch(keep_alive.strip()))


def error_frame(error: BridgeError) -> dict[str, str]:
    """The in-band error line after streaming began (ollama-python raises on it)."""
    return {"error": error.message}


# -- model descriptions ------------------------------------------------------------------
ARCHITECTURE = "claude"
TEMPLATE = (
    "{{- if .System }}{{ .System }}\n{{ end }}"
    "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}"
    "{{- if .Tools }}Tools: {{ .Tools }}\n{{ end }}"
)
TEMPLATE_NOTE = "{{/* The Claude Code CLI builds the prompt; this only shows which inputs it uses. */}}\n"


def tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def model_info(name: str) -> ModelInfo:
    """The catalog entry for a name (tag stripped), or a generic one for other claude-* ids."""
    bare = strip_tag(name).lower()
    return next((info for info in CATALOG if info.id == bare), ModelInfo(strip_tag(name), family_of(bare)))


def details(info: ModelInfo | None, embedding: bool = False) -> dict[str, Any]:
    family = "bert" if embedding or info is None else ARCHITECTURE
    families = [family] if embedding or info is None else [ARCHITECTURE, info.family]
    return {
        "parent_model": "",
        "format": "",
        "family": family,
        "families": families,
        "parameter_size": "",
        "quantization_level": "",
    }


def _entry(name: str, info: ModelInfo | None, modified: int) -> dict[str, Any]:
    return {
        "name": tagged(name),
        "model": tagged(name),
        "modified_at": rfc3339(modified),
        "size": 0,
        "digest": digest(tagged(name)),
        "details": details(info),
    }


def tags_body(embedding_names: Iterable[str] = (), aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """``/api/tags``: every served model, named with a tag (Open WebUI appends ``:latest``);
    ``aliases`` (MODEL_ALIASES: name -> served model) are listed as the model they name."""
    models = served_models(aliases or {}, embedding_names)
    return {"models": [_entry(m.id, m.info or (model_info(m.target) if m.target else None), m.created) for m in models]}


def show_body(name: str, *, embedding: bool = False) -> dict[str, Any]:
    """``/api/show``: details, parameters, template, capabilities and ``model_info`` with
    ``general.architecture`` and ``<architecture>.context_length`` (LiteLLM and Continue read it)."""
    if embedding:
        info, architecture, context, capabilities = None, "bert", 512, ["embedding"]
        modified = CATALOG[0].created
    else:
        info = model_info(name)
        architecture, context, capabilities = ARCHITECTURE, info.context_length, ["completion", "tools", "vision"]
        modified = info.created
    return {
        "license": "",
        "modelfile": f"# Served by claude-cli-bridge\nFROM {strip_tag(name)}\nPARAMETER num_ctx {context}\n",
        "parameters": f"num_ctx {context}",
        "template": "" if embedding else TEMPLATE_NOTE + TEMPLATE,
        "details": details(info, embedding),
        "model_info": {
            "general.architecture": architecture,
            "general.basename": strip_tag(name),
            f"{architecture}.context_length": context,
        },
        "capabilities": capabilities,
        "modified_at": rfc3339(modified),
    }


def ps_body(models: Iterable[str], expires_at: datetime) -> dict[str, Any]:
    """``/api/ps``: the models with a live CLI process, named as ``/api/tags`` names them."""
    running = []
    for name in sorted(set(models)):
        info = model_info(name)
        entry = _entry(name, info, info.created)
        del entry["modified_at"]
        entry.update(expires_at=rfc3339(expires_at), size_vram=0, context_length=info.context_length)
        running.append(entry)
    return {"models": running}
