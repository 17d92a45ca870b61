"""The MCP server through which the CLI sees a caller's tools. It executes nothing.

Run by the CLI as ``python -m claude_cli_bridge.cli.mcp_tools SPEC_FILE RESULTS_FILE`` (stdio,
newline-delimited JSON-RPC). ``tools/list`` answers the caller's tool definitions from
SPEC_FILE. A call never runs anything: the PreToolUse hook
(``python -m claude_cli_bridge.cli.mcp_tools hook RESULTS_FILE``) defers every call that has
no stored result, so the turn ends and the bridge hands the call to the caller. When the
caller sends the result back, the bridge stores it, resumes the transcript with a
deferred-tool marker, the CLI repeats the call, the hook lets it through, and this server
answers it from RESULTS_FILE (keyed by the upstream tool_use id, which the CLI passes as
``_meta["claudecode/toolUseId"]`` and to the hook as ``tool_use_id``).
"""

from __future__ import annotations

import json
import sys
from typing import Any, cast

# What the server answers a call with no stored result (a CLI that did not defer, or lost
# the result); cli.wire turns this text reaching the model into an error.
NO_STORED_RESULT = "claude-cli-bridge: no result is stored for this call"


def _reply(request_id: Any, result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def handle(message: dict[str, Any], spec_path: str, results_path: str) -> dict[str, Any] | None:
    """The result for one JSON-RPC request (None for notifications)."""
    method, request_id = message.get("method"), message.get("id")
    if request_id is None:
        return None
    if method == "initialize":
        version = (message.get("params") or {}).get("protocolVersion", "2025-06-18")
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "client", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": _load(spec_path) or []}
    if method == "tools/call":
        params = message.get("params") or {}
        tool_use_id = (params.get("_meta") or {}).get("claudecode/toolUseId")
        results = _load(results_path)
        stored = results.get(tool_use_id)
        if stored is None and tool_use_id is None and len(results) == 1:
            # Older CLIs repeat the deferred call without its id; only that one call is ever
            # repeated (the other results are in the transcript), so its result is the one.
            stored = next(iter(results.values()))
        if stored is None:
            return {"content": [{"type": "text", "text": NO_STORED_RESULT}], "isError": True}
        return cast("dict[str, Any]", stored)
    return {}


DEFER = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}}


def hook(results_path: str) -> int:
    """PreToolUse hook: defer (end the turn, hand the call to the caller) unless the caller's
    result for this very call is already stored."""
    try:
        event = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        event = {}
    if event.get("tool_use_id") not in _load(results_path):
        sys.stdout.write(json.dumps(DEFER))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["hook"]:
        return hook(argv[1])
    spec_path, results_path = argv[0], argv[1]
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        result = handle(message, spec_path, results_path)
        if result is not None:
            _reply(message["id"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
