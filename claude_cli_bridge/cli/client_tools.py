"""A caller's tools, offered to the model through the CLI without ever running them.

The route (observed, see docs/cli.md "Client-defined tools"):

1. The tools are served by ``cli.mcp_tools`` (an MCP server named ``client``), so the model
   sees them as ``mcp__client__NAME`` with the caller's exact input schemas.
2. A PreToolUse hook answers ``defer`` for calls without a stored result: the CLI ends the
   turn with ``stop_reason: "tool_deferred"`` and the bridge returns the calls to the caller.
3. When the caller sends results back, the history is written as a transcript ending with the
   assistant's tool calls, the other parallel results as a user tool_result line, and a
   ``hook_deferred_tool`` marker for the last call, and the caller's result is stored. Resumed,
   the CLI repeats that call, the hook lets it through, ``cli.mcp_tools`` answers it with the
   stored result, and the model goes on (a further call is deferred again). Text the caller
   sent beside its results is a user record of the transcript, before the marker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.messages import DocumentBlock, ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from ..core.turn import TurnRequest

SERVER = "client"
PREFIX = f"mcp__{SERVER}__"
# The upstream takes tool names matching ^[a-zA-Z0-9_-]{1,64}$, and the CLI rewrites MCP tool
# names outside that set. Callers' names are looser (OpenAI allows "." and ":", Ollama almost
# anything), so the bridge offers each tool under a name of its own and maps calls back.
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_NAME = 64 - len(PREFIX)


def offered_names(names: Iterable[str]) -> dict[str, str]:
    """The name under which each caller tool is offered (without PREFIX), caller name first.

    A name already safe and short enough is kept, so the model sees the caller's own name;
    any other becomes its safe characters plus a hash of the original, so distinct caller
    names never share an offered name. Deterministic: equal tool sets map equally.
    """
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    ordered = sorted(set(names), key=lambda name: (not _is_safe(name), name))
    for name in ordered:
        offered = name if _is_safe(name) else _hashed(name, 8)
        width = 8
        while offered in taken:  # a hashed name met a caller's own: lengthen the hash
            width += 4
            offered = _hashed(name, width)
        taken.add(offered)
        mapping[name] = offered
    return mapping


def _is_safe(name: str) -> bool:
    return len(name) <= _MAX_NAME and _SAFE.fullmatch(name) is not None


def _hashed(name: str, width: int) -> str:
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:width]
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)[: _MAX_NAME - width - 1]
    return f"{base}_{digest}"


@dataclasses.dataclass(frozen=True)
class ToolNames:
    """Caller tool names and the full names the CLI gives the model (``mcp__client__...``)."""

    to_cli: Mapping[str, str]  # caller name -> full CLI name

    @classmethod
    def of(cls, names: Iterable[str]) -> ToolNames:
        return cls({name: PREFIX + offered for name, offered in offered_names(names).items()})

    @property
    def to_caller(self) -> dict[str, str]:
        return {cli: caller for caller, cli in self.to_cli.items()}

    def offered(self, caller: str) -> str:
        """The bare offered name (what the MCP server lists)."""
        return self.to_cli[caller][len(PREFIX) :]


def is_client_call(name: str) -> bool:
    """Whether a tool_use names one of the caller's tools (as opposed to a CLI tool)."""
    return name.startswith(PREFIX)


def with_cli_names(messages: list[Message], names: ToolNames) -> list[Message]:
    """History as the CLI knows it: calls of the caller's tools carry their offered names.
    (Calls of tools the request does not define are refused before this, by the engine.)"""
    renamed = []
    for message in messages:
        blocks = tuple(
            dataclasses.replace(block, name=names.to_cli[block.name])
            if isinstance(block, ToolUseBlock) and block.name in names.to_cli
            else block
            for block in message.content
        )
        renamed.append(Message(message.role, blocks))
    return renamed


def write_config(directory: Path, tools_json: str, results: Path) -> Path:
    """Write the MCP server's config and the tools it lists into ``directory``; return the
    config's path. ``results`` is where the caller's results for this process are stored
    (it may not exist)."""
    tools = json.loads(tools_json)
    names = ToolNames.of(tool["name"] for tool in tools)
    spec = [
        {"name": names.offered(tool["name"]), "description": tool["description"], "inputSchema": tool["input_schema"]}
        for tool in tools
    ]
    (directory / "tools.json").write_text(json.dumps(spec), encoding="utf-8")
    server = {
        "command": sys.executable,
        "args": ["-m", "claude_cli_bridge.cli.mcp_tools", str(directory / "tools.json"), str(results)],
        "env": {"PYTHONPATH": _PACKAGE_ROOT},
    }
    config = directory / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {SERVER: server}}), encoding="utf-8")
    return config


def hook_settings(results: Path) -> dict[str, Any]:
    """The ``--settings`` entries of the PreToolUse hook that defers the caller's tool calls."""
    command = " ".join(
        shlex.quote(part)
        for part in (
            "env",
            f"PYTHONPATH={_PACKAGE_ROOT}",
            sys.executable,
            "-m",
            "claude_cli_bridge.cli.mcp_tools",
            "hook",
            str(results),
        )
    )
    return {"hooks": {"PreToolUse": [{"matcher": f"{PREFIX}.*", "hooks": [{"type": "command", "command": command}]}]}}


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the CLI runs the server elsewhere


@dataclasses.dataclass
class Continuation:
    """How to resume after tool calls: the transcript's records beyond the plain messages."""

    messages: list[Message]  # up to and including the assistant message with the calls
    earlier_results: Message | None  # results of all but the marked call, as a user turn
    marked: ToolUseBlock
    result: dict[str, Any]  # the marked call's result, in MCP form
    beside: Message | None  # the caller's own text (images, documents) beside its results

    def records(self) -> list[Message]:
        """The transcript's messages before the deferred-call marker.

        The caller's text beside its results is a user record of its own: transcript history
        is never interpreted by the CLI, where CLAUDE_CODE_RESUME_PROMPT would be (``@path``
        read from the host, ``/cost`` answered locally), so it reaches the model as written.
        """
        extra = [record for record in (self.earlier_results, self.beside) if record is not None]
        return self.messages + extra


def split_continuation(messages: list[Message]) -> Continuation:
    """Split a history whose last message holds tool results (for calls in the message
    before it) into what the transcript needs. Raises ValueError if it does not fit."""
    *before, last = messages
    if not before or before[-1].role != "assistant":
        raise ValueError("tool results must follow the assistant message that made the calls")
    calls = [block for block in before[-1].content if isinstance(block, ToolUseBlock)]
    results = {block.tool_use_id: block for block in last.content if isinstance(block, ToolResultBlock)}
    if not calls or set(results) - {call.id for call in calls}:
        raise ValueError("tool results must answer the calls of the message before them")
    answered = [call for call in calls if call.id in results]
    marked = answered[-1]
    others = tuple(results[call.id] for call in answered[:-1])
    beside = tuple(block for block in last.content if isinstance(block, (TextBlock, ImageBlock, DocumentBlock)))
    return Continuation(
        messages=list(before),
        earlier_results=Message("user", others) if others else None,
        marked=marked,
        result=_mcp_result(results[marked.id]),
        beside=Message("user", beside) if beside else None,
    )


def _mcp_result(block: ToolResultBlock) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in block.content:
        if isinstance(part, TextBlock):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImageBlock):
            content.append({"type": "image", "data": part.data, "mimeType": part.media_type})
    return {"content": content or [{"type": "text", "text": ""}], "isError": block.is_error}


def upstream_tool_choice(request: TurnRequest, cli_names: Mapping[str, str]) -> dict[str, Any] | None:
    """The upstream ``tool_choice`` a request needs, or None for the CLI's own (auto). The CLI
    has no flag for it: the launch passes it in ``CLAUDE_CODE_EXTRA_BODY`` (cli.profile).

    "required" is ``any`` (or ``tool`` naming the CLI's name of the forced tool);
    ``parallel_tool_calls`` False adds ``disable_parallel_tool_use``.
    """
    if request.tool_choice == "none" or not request.tools:
        return None
    choice: dict[str, Any] | None = None
    if request.tool_choice == "required":
        forced = request.forced_tool
        choice = {"type": "tool", "name": cli_names[forced]} if forced is not None else {"type": "any"}
    if not request.parallel_tool_calls:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return choice
