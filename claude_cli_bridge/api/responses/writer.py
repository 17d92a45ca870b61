"""Neutral events to the OpenAI Responses API: the stream events and the response object.

``ResponseWriter`` turns neutral events into the typed stream events and builds the final
response object; a non-streaming answer is the same writer's final object (``to_response``),
so both shapes agree.

Facts relied on, from the clients' source:
- openai-python ``lib/streaming/responses/_responses.py`` needs ``response.created`` first,
  ``response.output_item.added`` before any event naming its ``output_index``,
  ``response.content_part.added`` before ``response.output_text.delta`` on that part, the same
  response ``id`` on every lifecycle event, and the same item identity (type, id, call_id) in
  ``output_item.added`` and ``output_item.done``.
- Codex (``codex-rs/codex-api/src/sse/responses.rs``) takes message and function_call items from
  ``response.output_item.done``, text deltas from ``response.output_text.delta``, ends the turn
  at ``response.completed`` (``response.id``, ``usage`` with ``input_tokens_details.cached_tokens``),
  and reports ``response.failed``'s ``response.error.message``.
- openai-agents (``models/openai_responses.py``) stops at the first of ``response.completed``,
  ``response.failed``, ``response.incomplete`` or ``error``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ...core.messages import Block, Message, TextBlock, ToolUseBlock, canonical_json
from ...core.turn import TextDelta, ThinkingDelta, ToolCall, TurnDone, TurnEvent, Usage
from ...errors import BridgeError, CliCrashed
from .protocol import ResponsesRequest

Frame = tuple[str, dict[str, Any]]  # (SSE event name, data)


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
    show_reasoning: bool = False  # the thinking as a reasoning item (reasoning.summary was set)
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
    _reasoning: dict[str, Any] | None = None  # the open reasoning item

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
        self._message = item
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return self._opened(item, "response.content_part.added", "content_index", part)

    def _close_message(self, status: str = "completed", announce: bool = True) -> list[Frame]:
        """Finish the open message item; ``announce`` sends its done events (not for a failure,
        whose ``response.failed`` lists the item as it stands)."""
        item, self._message = self._message, None
        if item is None:
            return []
        part = {"type": "output_text", "text": item.pop("_text", ""), "annotations": [], "logprobs": []}
        item["content"] = [part]
        item["status"] = status
        if not announce:
            return []
        done = ("response.output_text.done", "response.content_part.done")
        return self._closed(item, done, "content_index", part, logprobs=[])

    def _open_reasoning(self) -> list[Frame]:
        item = {"type": "reasoning", "id": "rs_" + uuid.uuid4().hex, "summary": []}
        self._reasoning = item
        part = {"type": "summary_text", "text": ""}
        return self._opened(item, "response.reasoning_summary_part.added", "summary_index", part)

    def _close_reasoning(self, announce: bool = True) -> list[Frame]:
        item, self._reasoning = self._reasoning, None
        if item is None:
            return []
        part = {"type": "summary_text", "text": item.pop("_text", "")}
        item["summary"] = [part]
        if not announce:
            return []
        done = ("response.reasoning_summary_text.done", "response.reasoning_summary_part.done")
        return self._closed(item, done, "summary_index", part)

    def _opened(self, item: dict[str, Any], part_added: str, slot: str, part: dict[str, Any]) -> list[Frame]:
        """A new output item (a message or a reasoning item) and its first part, announced."""
        self.output.append(item)
        index = len(self.output) - 1
        return [
            self._event("response.output_item.added", output_index=index, item=_copy(item)),
            self._event(part_added, item_id=item["id"], output_index=index, **{slot: 0}, part=part),
        ]

    def _closed(
        self, item: dict[str, Any], done: tuple[str, str], slot: str, part: dict[str, Any], **extra: Any
    ) -> list[Frame]:
        """The done events of a finished item: its text's, its part's, then the item's."""
        text_done, part_done = done
        where = {"item_id": item["id"], "output_index": self.output.index(item), slot: 0}
        return [
            self._event(text_done, **where, text=part["text"], **extra),
            self._event(part_done, **where, part=part),
            self._event("response.output_item.done", output_index=where["output_index"], item=_copy(item)),
        ]

    def on_event(self, event: TurnEvent) -> list[Frame]:
        frames = self._start()
        if isinstance(event, ThinkingDelta):
            if not self.show_reasoning or not event.text:
                return frames
            if self._reasoning is None:
                frames += self._close_message()
                frames += self._open_reasoning()
            where = self._grow(self._reasoning, event.text)
            frames.append(
                self._event("response.reasoning_summary_text.delta", **where, summary_index=0, delta=event.text)
            )
            return frames
        frames += self._close_reasoning()
        if isinstance(event, TextDelta):
            if not event.text:
                return frames
            if self._message is None:
                frames += self._open_message()
            where = self._grow(self._message, event.text)
            self.texts.append(event.text)
            frames.append(
                self._event("response.output_text.delta", **where, content_index=0, delta=event.text, logprobs=[])
            )
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

    def _grow(self, item: dict[str, Any] | None, text: str) -> dict[str, Any]:
        """Add ``text`` to an open output item; the fields that name it in a delta event."""
        assert item is not None
        item["_text"] = item.get("_text", "") + text
        return {"item_id": item["id"], "output_index": self.output.index(item)}

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
        self._close_reasoning(announce=False)
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
        raise CliCrashed.without_result()
    return writer.final
