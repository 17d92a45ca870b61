"""The CLI's JSON lines, both ways. Pure: no processes, no I/O but transcript writing.

Output (``--output-format stream-json --verbose --include-partial-messages``): ``system/init``,
``stream_event`` lines wrapping the upstream's raw SSE events, ``assistant`` messages,
``control_response`` lines, and a ``result`` line closing each turn. Input
(``--input-format stream-json``): ``user`` lines and ``control_request`` lines.
What the CLI was seen to do is in docs/cli.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.limits import CliEvent, RateLimitInfo, WindowReading
from ..core.messages import Message, ThinkingBlock, ToolUseBlock
from ..core.turn import TextDelta, ThinkingDelta, ToolCall, TurnDone, Usage
from ..errors import CliCrashed, UpstreamError
from .client_tools import is_client_call
from .mcp_tools import NO_STORED_RESULT
from .result import status_in_text, upstream_error

# Tool-result texts that mean the caller's result never reached the model.
MISSING_RESULT_MARKERS = (NO_STORED_RESULT, "Tool result missing due to internal error")


def user_line(message: Message) -> str:
    """A stdin line that starts a turn with ``message`` (a user message of Anthropic blocks).

    ``client_composed`` tells the CLI the text was not typed at its prompt: it is delivered
    as written, with no ``@path`` expansion and no slash-command dispatch (the SDK message
    schema documents the field; docs/cli.md "Caller text"). Without it, a caller's
    ``@/etc/passwd`` would be read from the host and ``/init`` handled locally.
    """
    return json.dumps({"type": "user", "message": message.to_anthropic(), "client_composed": True}) + "\n"


def initialize_line(request_id: str) -> str:
    """A stdin line with the SDK's ``initialize`` handshake (no fields: nothing changes).

    The CLI holds part of its start-up work (plugin and telemetry set-up, config writes:
    about 0.1 s of CPU) until the host's handshake, a one-second fallback timer that a
    start-up race sometimes leaves unarmed, or the first turn, during which it then runs.
    Sent at launch, the handshake releases that work at once, while a spare idles; a turn
    that arrives meanwhile goes first. The upstream requests stay byte for byte the same
    and none is added (bench/bench_first_turn.py). The CLI answers with a
    ``control_response`` line, which turn parsing ignores.
    """
    request = {"type": "control_request", "request_id": request_id, "request": {"subtype": "initialize"}}
    return json.dumps(request) + "\n"


def interrupt_line(request_id: str) -> str:
    """A stdin line asking the CLI to stop the current turn and drop its upstream request."""
    return json.dumps({"type": "control_request", "request_id": request_id, "request": {"subtype": "interrupt"}}) + "\n"


def write_transcript(messages: list[Message], path: Path, deferred: ToolUseBlock | None = None) -> None:
    """Write ``messages`` as a minimal CLI transcript that ``--resume`` replays as real turns.

    The records chain by ``uuid``/``parentUuid`` and share one ``sessionId``; each needs a
    ``timestamp``. The history must end with an assistant message (else the CLI inserts a
    synthetic "No response requested." answer), so callers send the newest user message as
    the turn's prompt instead. After tool calls, the messages may end with the user turn of
    the other calls' results, and ``deferred`` names the call whose ``hook_deferred_tool``
    marker closes the transcript: resumed, the CLI repeats that call (see cli.client_tools).
    """
    ends_with = messages[-1].role if messages else None
    if ends_with != "assistant" and not (deferred is not None and ends_with == "user"):
        raise ValueError("a transcript must end with an assistant message")
    session_id = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    parent: str | None = None
    lines = []

    def add(record: dict[str, Any]) -> None:
        nonlocal parent
        record_id = str(uuid.uuid4())
        lines.append(
            json.dumps({**record, "uuid": record_id, "parentUuid": parent, "sessionId": session_id, "timestamp": stamp})
        )
        parent = record_id

    for message in messages:
        record = message.to_anthropic()
        if message.role == "assistant":
            # Each answer its own id: the CLI merges assistant records that share one (an
            # absent id included, in older CLIs), which would move text across tool calls.
            record["id"] = f"msg_bridge_{uuid.uuid4().hex[:24]}"
        signed_by = next((block.model for block in message.content if isinstance(block, ThinkingBlock)), "")
        if signed_by:
            record["model"] = signed_by  # the CLI keeps thinking only of the model it runs (docs/cli.md "History")
        add({"type": message.role, "message": record})
    if deferred is not None:
        add(
            {
                "type": "attachment",
                "attachment": {
                    "type": "hook_deferred_tool",
                    "toolUseID": deferred.id,
                    "toolName": deferred.name,
                    "toolInput": deferred.input,
                    "hookName": "settings",
                    "hookEvent": "PreToolUse",
                    "permissionMode": "default",
                },
            }
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class TurnParser:
    """Turns one turn's output lines into neutral events.

    ``feed`` returns the events a line yields, and raises a ``BridgeError`` if the turn's
    ``result`` reports a failure. ``done`` is set once the ``result`` line was read. Tool calls
    are gathered from complete ``assistant`` messages; ``client_tools`` names the tools whose
    calls are reported to the caller (the CLI's own tools are off, so other calls never run).

    Once an upstream message called the caller's tools, the turn's answer is complete: what
    the CLI does next (a worker's follow-up after "No such tool available", answered by the
    tap, ``tap.inject``) yields nothing, and the turn ends with stop reason ``tool_use``.
    """

    client_tools: Mapping[str, str] = field(default_factory=dict)  # CLI tool name -> caller's name
    done: bool = False
    cut_short: bool = False  # done before the CLI finished its turn (the process must not be reused)
    model: str = ""
    last_usage: Usage = field(default_factory=Usage)
    # The turn runs with --json-schema: its answer is the result line's structured_output.
    structured: bool = False
    # The CLI's structured error kind for this turn ("authentication_failed", "rate_limit"...).
    api_error: str | None = None
    # The upstream message being streamed: whether it ended properly and whether any of its
    # text was passed on. The CLI retries a broken stream (and finally falls back to a
    # non-streaming request), which would repeat text the caller already has.
    _streamed_ids: set[Any] = field(default_factory=set)
    _open_broken_risk: bool = False
    #: The turn's signed thinking blocks, from the assistant lines (see core.messages.ThinkingBlock).
    thinking_blocks: list[ThinkingBlock] = field(default_factory=list)
    # The upstream message that called the caller's tools, and whether a later one began.
    _calls_in: Any = None
    _after_calls: bool = False
    # The turn's last rate_limit_event: a refusal's 429 names its window and reset.
    rate_limit: RateLimitInfo | None = None

    def feed(self, line: dict[str, Any]) -> list[CliEvent]:
        """The events one line yields; a ``rate_limit_event`` yields a ``RateLimitInfo``
        (for the engine's window state, never for clients)."""
        kind = line.get("type")
        if kind == "rate_limit_event":
            info = line.get("rate_limit_info")
            if not isinstance(info, dict):
                return []
            self.rate_limit = rate_limit_info(info)
            return [self.rate_limit]
        if kind == "stream_event":
            return self._stream_event(line.get("event") or {})
        if kind == "assistant":
            return self._assistant(line.get("message") or {}, line.get("error"))
        if kind == "user":
            self._check_tool_results(line.get("message") or {})
            return []
        if kind == "result":
            return self._result(line)
        if kind == "system" and line.get("subtype") == "init":
            self.model = line.get("model") or self.model
        if kind == "system" and line.get("subtype") == "api_retry":
            self._check_not_repeating()
        return []

    def _check_not_repeating(self) -> None:
        """A new attempt after part of an unfinished message was passed on cannot be merged
        into the same answer: report the broken stream instead of repeating text."""
        if self._open_broken_risk:
            raise UpstreamError(
                "The upstream connection broke after part of the answer was sent; retry the request.",
                status=502,
                retry=True,
            )

    def _stream_event(self, event: dict[str, Any]) -> list[CliEvent]:
        kind = event.get("type")
        if self._after_calls:
            return []  # the tap's answer to the CLI's follow-up: not the model's
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                # The model's thinking, streamed before its answer; the signature_delta that
                # closes the block stays with the CLI, which sends the block back next turn.
                self._open_broken_risk = True
                return [ThinkingDelta(delta["thinking"])]
            if delta.get("type") == "text_delta" and delta.get("text"):
                if self.structured:
                    return []  # prose around the StructuredOutput call is not the answer
                self._open_broken_risk = True
                return [TextDelta(delta["text"])]
        elif kind == "message_start":
            message = event.get("message") or {}
            if self._calls_in is not None and message.get("id") != self._calls_in:
                self._after_calls = True
                return []
            self._check_not_repeating()
            self._streamed_ids.add(message.get("id"))
            self.model = message.get("model") or self.model
            self.last_usage = _usage(message.get("usage") or {})
        elif kind == "message_delta":
            output = (event.get("usage") or {}).get("output_tokens")
            if isinstance(output, int):
                self.last_usage = Usage(
                    self.last_usage.input_tokens,
                    output,
                    self.last_usage.cache_read_input_tokens,
                    self.last_usage.cache_creation_input_tokens,
                )
            if (event.get("delta") or {}).get("stop_reason"):
                self._open_broken_risk = False
            if (event.get("delta") or {}).get("stop_reason") == "max_tokens":
                # The CLI would go on by itself ("continue" recovery) and so exceed the
                # caller's max_tokens: the answer ends here, as the upstream ended it.
                self.done = self.cut_short = True
                return [TurnDone(stop_reason="max_tokens", usage=self.last_usage, model=self.model)]
        return []

    def _assistant(self, message: dict[str, Any], error: str | None = None) -> list[CliEvent]:
        events: list[CliEvent] = []
        if message.get("model") == "<synthetic>":
            # The CLI's own notice (an API error's text); the result line reports it, and the
            # line's "error" field says what kind of failure it was.
            self.api_error = error or self.api_error
            return []
        if self._calls_in is not None and message.get("id") != self._calls_in:
            return []  # after the caller's calls: the tap's answer to the CLI's follow-up
        if message.get("id") not in self._streamed_ids and not self.structured:
            # A message that was not streamed: the CLI's non-streaming fallback.
            self._check_not_repeating()
            for block in message.get("content") or []:
                if block.get("type") == "thinking" and block.get("thinking"):
                    events.append(ThinkingDelta(block["thinking"]))
                if block.get("type") == "text" and block.get("text"):
                    events.append(TextDelta(block["text"]))
        for block in message.get("content") or []:
            model = message.get("model") or self.model
            if block.get("type") == "thinking" and block.get("signature"):
                self.thinking_blocks.append(ThinkingBlock(block.get("thinking") or "", block["signature"], model=model))
            elif block.get("type") == "redacted_thinking" and block.get("data"):
                self.thinking_blocks.append(ThinkingBlock("", block["data"], redacted=True, model=model))
        for block in message.get("content") or []:
            name = block.get("name", "")
            if block.get("type") != "tool_use":
                continue
            if name in self.client_tools:
                events.append(ToolCall(block["id"], self.client_tools[name], block.get("input") or {}))
                self._calls_in = message.get("id")
            elif is_client_call(name):
                raise CliCrashed(
                    f"The model called a tool named {name!r}, which is none of the request's tools; "
                    "the call cannot be returned."
                )
            # else: one of the CLI's own tools (StructuredOutput); the others are off
        return events

    def _check_tool_results(self, message: dict[str, Any]) -> None:
        """The CLI echoes the tool results it gives the model. A result that says the caller's
        result went missing means the model answered without it: an internal error, never
        an answer (older CLIs did not match deferred results)."""
        for block in message.get("content") or []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            text = json.dumps(block.get("content"))
            if any(marker in text for marker in MISSING_RESULT_MARKERS):
                raise CliCrashed(
                    "The caller's tool result did not reach the model (the Claude CLI lost it); "
                    "this CLI version cannot continue after tool calls."
                )

    def _result(self, line: dict[str, Any]) -> list[CliEvent]:
        self.done = True
        subtype = str(line.get("subtype") or "")
        if line.get("is_error") or subtype.startswith("error"):
            # Some CLIs report failures (error_max_structured_output_retries...) with
            # is_error false: the subtype decides as much as the flag.
            message = line.get("result") or "; ".join(line.get("errors") or []) or subtype or "CLI error"
            status = line.get("api_error_status")
            if not isinstance(status, int):
                status = status_in_text(str(message))
            code = line.get("api_error_code")
            raise upstream_error(
                status,
                str(message),
                line.get("api_error") or self.api_error,
                self.rate_limit,
                api_error_code=code if isinstance(code, str) else None,
            )
        usage = _usage(line.get("usage") or {})
        stop_reason = line.get("stop_reason") or "end_turn"
        if stop_reason == "tool_deferred" or self._calls_in is not None:
            stop_reason = "tool_use"  # the caller's tool was called: the caller runs it
        events: list[CliEvent] = []
        if self.structured:
            # --json-schema: the CLI offers the schema as a StructuredOutput tool, validates the
            # model's call and reports its input as structured_output; a model that never
            # called it leaves its last text in result.
            if "structured_output" in line:
                events.append(TextDelta(json.dumps(line["structured_output"], ensure_ascii=False)))
            elif line.get("result"):
                events.append(TextDelta(str(line["result"])))
            if stop_reason == "tool_use":
                stop_reason = "end_turn"
        events.append(TurnDone(stop_reason=stop_reason, usage=usage, model=self.model))
        return events


def _usage(raw: dict[str, Any]) -> Usage:
    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) else 0

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
        cache_creation_input_tokens=count("cache_creation_input_tokens"),
    )


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One stdout line as JSON; None for blank or non-JSON noise (the CLI can print warnings)."""
    raw = raw.strip()
    if not raw or not raw.startswith(b"{"):
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def rate_limit_info(info: dict[str, Any]) -> RateLimitInfo:
    """Parse a ``rate_limit_event``'s ``rate_limit_info`` (docs/cli.md "Rate limits"): with a
    subscription login the CLI reads the upstream's ``anthropic-ratelimit-unified-*`` headers
    and reports ``status`` (allowed, allowed_warning, rejected), ``rateLimitType`` and
    ``resetsAt`` of the window that limits, and per window in ``unifiedWindows`` its
    ``utilization`` (fraction used) and ``resetsAt`` (epoch seconds). With an API key no such
    line is printed. Fields of the wrong type are dropped, never guessed."""
    windows = []
    unified = info.get("unifiedWindows")
    for name, raw in (unified if isinstance(unified, dict) else {}).items():
        if not isinstance(raw, dict):
            continue
        windows.append(
            WindowReading(
                name=str(name),
                utilization=_number(raw.get("utilization")),
                resets_at=_epoch(raw.get("resetsAt", raw.get("resets_at"))),
                status=_text(raw.get("status")),
            )
        )
    return RateLimitInfo(
        status=_text(info.get("status")) or "unknown",
        window=_text(info.get("rateLimitType")),
        resets_at=_epoch(info.get("resetsAt")),
        utilization=_number(info.get("utilization")),
        using_overage=info.get("isUsingOverage") is True,
        windows=tuple(windows),
        overage_status=_text(info.get("overageStatus")),
        overage_resets_at=_epoch(info.get("overageResetsAt")),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _epoch(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
