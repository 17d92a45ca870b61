"""Pure parts of the client-tool route: names, continuation splitting, the MCP server."""

from __future__ import annotations

import io
import json

import pytest

from claude_cli_bridge.cli import mcp_tools
from claude_cli_bridge.cli.client_tools import split_continuation, with_cli_names
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock


def call(id_, name="get"):
    return ToolUseBlock(id_, name, "{}")


def test_history_names_the_callers_tools_as_the_cli_knows_them():
    history = [Message("assistant", (TextBlock("x"), call("a", "get"), call("b", "other")))]
    [renamed] = with_cli_names(history, frozenset({"get"}))
    assert [b.name for b in renamed.content if isinstance(b, ToolUseBlock)] == ["mcp__client__get", "other"]


def test_continuation_marks_the_last_call_and_keeps_the_others_as_results():
    results = Message(
        "user",
        (
            ToolResultBlock("a", (TextBlock("ra"),)),
            ToolResultBlock("b", (TextBlock("rb"), ImageBlock("image/png", "AAAA")), is_error=True),
            TextBlock("and?"),
        ),
    )
    history = [Message("user", (TextBlock("q"),)), Message("assistant", (call("a"), call("b"))), results]
    cont = split_continuation(history)
    assert cont.marked.id == "b" and cont.messages == history[:2]
    assert cont.earlier_results == Message("user", (ToolResultBlock("a", (TextBlock("ra"),)),))
    assert cont.result == {
        "content": [{"type": "text", "text": "rb"}, {"type": "image", "data": "AAAA", "mimeType": "image/png"}],
        "isError": True,
    }
    assert cont.resume_prompt == "and?"


@pytest.mark.parametrize(
    "history",
    [
        [Message("user", (ToolResultBlock("a", ()),))],
        [Message("assistant", (TextBlock("no calls"),)), Message("user", (ToolResultBlock("a", ()),))],
        [Message("assistant", (call("a"),)), Message("user", (ToolResultBlock("zzz", ()),))],
    ],
)
def test_continuation_rejects_results_that_answer_no_call(history):
    with pytest.raises(ValueError):
        split_continuation(history)


def test_the_mcp_server_lists_tools_and_answers_only_stored_results(tmp_path):
    spec, results = tmp_path / "tools.json", tmp_path / "results.json"
    spec.write_text(json.dumps([{"name": "get", "description": "d", "inputSchema": {"type": "object"}}]))
    results.write_text(json.dumps({"toolu_1": {"content": [{"type": "text", "text": "r"}], "isError": False}}))
    handle = lambda message: mcp_tools.handle(message, str(spec), str(results))  # noqa: E731
    assert handle({"id": 1, "method": "initialize", "params": {"protocolVersion": "X"}})["protocolVersion"] == "X"
    assert handle({"id": 2, "method": "tools/list"})["tools"][0]["name"] == "get"
    stored = handle({"id": 3, "method": "tools/call", "params": {"name": "get", "_meta": {"claudecode/toolUseId": "toolu_1"}}})
    assert stored["content"][0]["text"] == "r"
    missing = handle({"id": 4, "method": "tools/call", "params": {"name": "get", "_meta": {"claudecode/toolUseId": "x"}}})
    assert missing["isError"] is True
    assert handle({"method": "notifications/initialized"}) is None


@pytest.mark.parametrize("tool_use_id, defers", [("toolu_1", False), ("toolu_2", True)])
def test_the_hook_defers_calls_without_a_stored_result(tmp_path, monkeypatch, capsys, tool_use_id, defers):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"toolu_1": {"content": []}}))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"tool_use_id": tool_use_id})))
    mcp_tools.hook(str(results))
    out = capsys.readouterr().out
    assert ("defer" in out) == defers
