"""A caller's tools, offered to the model through the CLI without ever running them.

The route (observed, see CLI_NOTES.md "Client-defined tools"):

1. The tools are served by ``cli.mcp_tools`` (an MCP server named ``client``), so the model
   sees them as ``mcp__client__NAME`` with the caller's exact input schemas.
2. A PreToolUse hook answers ``defer`` for calls without a stored result: the CLI ends the
   turn with ``stop_reason: "tool_deferred"`` and the bridge returns the calls to the caller.
3. When the caller sends results back, the history is written as a transcript ending with the
   assistant's tool calls, the other parallel results as a user tool_result line, and a
   ``hook_deferred_tool`` marker for the last call, and the caller's result is stored. Resumed,
   the CLI repeats that call, the hook lets it through, ``cli.mcp_tools`` answers it with the
   stored result, and the model goes on (a further call is deferred again). Text the caller sent beside its results becomes ``CLAUDE_CODE_RESUME_PROMPT``.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock

SERVER = "client"
PREFIX = f"mcp__{SERVER}__"


def cli_name(name: str) -> str:
    return PREFIX + name


def client_name(name: str) -> str:
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def with_cli_names(messages: list[Message], tools: frozenset[str]) -> list[Message]:
    """History as the CLI knows it: calls of the caller's tools carry the MCP names."""
    renamed = []
    for message in messages:
        blocks = tuple(
            dataclasses.replace(block, name=cli_name(block.name))
            if isinstance(block, ToolUseBlock) and block.name in tools
            else block
            for block in message.content
        )
        renamed.append(Message(message.role, blocks))
    return renamed


def write_config(directory: Path, tools_json: str, results: Path) -> list[str]:
    """Write the MCP config and the deferring hook into ``directory``; return the CLI flags.

    ``results`` is where the caller's results for this process are stored (it may not exist).
    """
    spec = [
        {"name": tool["name"], "description": tool["description"], "inputSchema": tool["input_schema"]}
        for tool in json.loads(tools_json)
    ]
    (directory / "tools.json").write_text(json.dumps(spec), encoding="utf-8")
    package_root = str(Path(__file__).resolve().parents[2])  # the CLI runs elsewhere
    server = {
        "command": sys.executable,
        "args": ["-m", "claude_cli_bridge.cli.mcp_tools", str(directory / "tools.json"), str(results)],
        "env": {"PYTHONPATH": package_root},
    }
    (directory / "mcp.json").write_text(json.dumps({"mcpServers": {SERVER: server}}), encoding="utf-8")
    command = " ".join(
        shlex.quote(part)
        for part in ("env", f"PYTHONPATH={package_root}", sys.executable, "-m", "claude_cli_bridge.cli.mcp_tools", "hook", str(results))
    )
    settings = {"hooks": {"PreToolUse": [{"matcher": f"{PREFIX}.*", "hooks": [{"type": "command", "command": command}]}]}}
    (directory / "hooks.json").write_text(json.dumps(settings), encoding="utf-8")
    return ["--mcp-config", str(directory / "mcp.json"), "--allowedTools", f"{PREFIX}*", "--settings", str(directory / "hooks.json")]


@dataclasses.dataclass
class Continuation:
    """How to resume after tool calls: the transcript's records beyond the plain messages."""

    messages: list[Message]  # up to and including the assistant message with the calls
    earlier_results: Message | None  # results of all but the marked call, as a user turn
    marked: ToolUseBlock
    result: dict[str, Any]  # the marked call's result, in MCP form
    resume_prompt: str  # the caller's text beside its results ("" for none)


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
    text = "".join(block.text for block in last.content if isinstance(block, TextBlock))
    return Continuation(
        messages=list(before),
        earlier_results=Message("user", others) if others else None,
        marked=marked,
        result=_mcp_result(results[marked.id]),
        resume_prompt=text,
    )


def _mcp_result(block: ToolResultBlock) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in block.content:
        if isinstance(part, TextBlock):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImageBlock):
            content.append({"type": "image", "data": part.data, "mimeType": part.media_type})
    return {"content": content or [{"type": "text", "text": ""}], "isError": block.is_error}
