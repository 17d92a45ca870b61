"""Pure parts of the client-tool route: names, continuation splitting, the MCP server."""

from __future__ import annotations

import io
import json

import pytest

from claude_cli_bridge.cli import mcp_tools
from claude_cli_bridge.cli.client_tools import ToolNames, offered_names, split_continuation, with_cli_names
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.tools import check_history_calls, check_tool_specs
from claude_cli_bridge.core.turn import ToolSpec
from claude_cli_bridge.errors import InvalidRequest

pytestmark = pytest.mark.unit


def call(id_, name="get"):
    return ToolUseBlock(id_, name, "{}")


def test_history_names_the_callers_tools_as_the_cli_knows_them():
    history = [Message("assistant", (TextBlock("x"), call("a", "get"), call("b", "browser.search")))]
    names = ToolNames.of(["get", "browser.search"])
    [renamed] = with_cli_names(history, names)
    cli_names = [b.name for b in renamed.content if isinstance(b, ToolUseBlock)]
    assert cli_names[0] == "mcp__client__get"
    assert cli_names[1].startswith("mcp__client__browser_search_") and names.to_caller[cli_names[1]] == "browser.search"


SAFE_NAME = __import__("re").compile(r"^[A-Za-z0-9_-]{1,64}$")


@pytest.mark.parametrize(
    "names",
    [
        ["get_weather", "search-web"],
        ["browser.search", "browser_search", "a b", "a_b", "wetter-é", "ns:tool", "x" * 64, "x" * 80],
        ["a.b", "a:b", "a b", "a/b"],  # all sanitize to a_b: hashes keep them apart
        ["Get", "get"],
    ],
)
def test_every_caller_name_maps_to_a_distinct_safe_name_and_back(names):
    mapping = ToolNames.of(names)
    assert len(set(mapping.to_cli.values())) == len(names)
    for name in names:
        full = mapping.to_cli[name]
        assert SAFE_NAME.match(full), full
        assert mapping.to_caller[full] == name
    assert ToolNames.of(reversed(names)) == mapping  # deterministic, order-independent


def test_safe_names_are_offered_unchanged():
    assert offered_names(["get_weather", "x-y", "A1"]) == {"get_weather": "get_weather", "x-y": "x-y", "A1": "A1"}


@pytest.mark.parametrize(
    "parameters, fragment",
    [
        ({"type": "array"}, "must describe an object"),
        ({"type": "objekt"}, "must describe an object"),
        ({"type": "object", "properties": {"a": {"type": "strang"}}}, "not a valid JSON Schema"),
        ({"type": "object", "required": "a"}, "not a valid JSON Schema"),
        ([], "must be a JSON Schema object"),
    ],
)
def test_a_schema_the_model_cannot_be_offered_is_refused_naming_the_tool(parameters, fragment):
    with pytest.raises(InvalidRequest) as caught:
        check_tool_specs([ToolSpec("ok", "", {"type": "object"}), ToolSpec("lookup", "", parameters)])
    assert "lookup" in caught.value.message and fragment in caught.value.message


def test_duplicate_and_empty_tool_names_are_refused():
    with pytest.raises(InvalidRequest, match="Two tools"):
        check_tool_specs([ToolSpec("a", "", {"type": "object"}), ToolSpec("a", "", {"type": "object"})])
    with pytest.raises(InvalidRequest, match="not usable"):
        check_tool_specs([ToolSpec("", "", {"type": "object"})])


def test_a_history_calling_an_undefined_tool_is_refused_naming_it():
    history = [Message("user", (TextBlock("q"),)), Message("assistant", (call("a", "Bash"),))]
    with pytest.raises(InvalidRequest) as caught:
        check_history_calls(history, [ToolSpec("get", "", {"type": "object"})])
    assert "'Bash'" in caught.value.message and "CLAUDE_CODE" not in caught.value.message
    check_history_calls(history, [ToolSpec("Bash", "", {"type": "object"})])  # defined: fine


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
    assert cont.beside == Message("user", (TextBlock("and?"),))
    assert cont.records() == [*history[:2], cont.earlier_results, cont.beside]


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
    stored = handle(
        {"id": 3, "method": "tools/call", "params": {"name": "get", "_meta": {"claudecode/toolUseId": "toolu_1"}}}
    )
    assert stored["content"][0]["text"] == "r"
    missing = handle(
        {"id": 4, "method": "tools/call", "params": {"name": "get", "_meta": {"claudecode/toolUseId": "x"}}}
    )
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
