"""Tool choice and the deprecated functions API, pure: functions as tools (one call at most),
function-call histories, the tool_choice forms, legacy answers as function_call, and the
tool_choice the upstream gets; table-style."""

from __future__ import annotations

import pytest

from claude_cli_bridge.api.openai import translate
from claude_cli_bridge.api.openai.protocol import ChatCompletionRequest
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.cli.client_tools import upstream_tool_choice
from claude_cli_bridge.core.messages import TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import ToolCall, ToolSpec, TurnDone, TurnRequest, Usage
from claude_cli_bridge.errors import InvalidRequest, UpstreamError

pytestmark = pytest.mark.unit


def chat(**body):
    return translate.from_chat_request(ChatCompletionRequest.model_validate(body), MediaLimits.of(1 << 20))


FN = {"name": "get_weather", "parameters": {"type": "object"}}


def test_functions_are_tools_and_one_call_at_most():
    turn = chat(messages=[{"role": "user", "content": "w?"}], functions=[FN])
    assert turn.tools == (ToolSpec("get_weather", "", {"type": "object"}),)
    assert (turn.tool_choice, turn.parallel_tool_calls) == ("auto", False)


def test_a_function_call_history_pairs_results_by_name():
    turn = chat(
        messages=[
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"c":1}'}},
            {"role": "function", "name": "get_weather", "content": "sunny"},
        ],
        functions=[FN],
    )
    assert turn.messages[1].content == (ToolUseBlock("call_1_0", "get_weather", '{"c":1}'),)
    assert turn.messages[2].content == (ToolResultBlock("call_1_0", (TextBlock("sunny"),)),)
    with pytest.raises(InvalidRequest, match="function_call of an earlier"):
        chat(messages=[{"role": "user", "content": "w?"}, {"role": "function", "name": "x", "content": "1"}])


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, ("auto", None)),
        ({"tool_choice": "none"}, ("none", None)),
        ({"tool_choice": "required"}, ("required", None)),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, ("required", "f")),
        ({"function_call": {"name": "f"}}, ("required", "f")),
        ({"function_call": "none"}, ("none", None)),
    ],
)
def test_tool_choice_forms(body, expected):
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **body})
    assert translate.tool_choice_of(request) == expected


def test_legacy_answers_use_function_call():
    call = ToolCall("toolu_1", "get_weather", {"c": 1})
    done = TurnDone("tool_use", Usage(1, 1))
    whole = translate.to_completion("", [call], done, model="m", completion_id="c", created=0, legacy=True)
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "get_weather", "arguments": '{"c": 1}'}
    assert "tool_calls" not in choice["message"]
    with pytest.raises(UpstreamError, match="2 function calls"):
        translate.to_completion("", [call, call], done, model="m", completion_id="c", created=0, legacy=True)
    writer = translate.ChunkWriter(model="m", legacy=True)
    frames = writer.on_event(call) + writer.on_event(done)
    deltas = [frame["choices"][0]["delta"] for frame in frames if isinstance(frame, dict)]
    assert deltas[1] == {"function_call": {"name": "get_weather", "arguments": ""}}
    assert deltas[2] == {"function_call": {"arguments": '{"c": 1}'}}
    assert frames[-1]["choices"][0]["finish_reason"] == "function_call"


@pytest.mark.parametrize(
    "choice, forced, parallel, expected",
    [
        ("auto", None, True, None),
        ("none", None, False, None),
        ("auto", None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", None, True, {"type": "any"}),
        ("required", "f", True, {"type": "tool", "name": "mcp__client__f"}),
        ("required", "f", False, {"type": "tool", "name": "mcp__client__f", "disable_parallel_tool_use": True}),
    ],
)
def test_upstream_tool_choice(choice, forced, parallel, expected):
    request = TurnRequest(
        model="s",
        messages=[],
        tools=(ToolSpec("f", "", {"type": "object"}),),
        tool_choice=choice,
        forced_tool=forced,
        parallel_tool_calls=parallel,
    )
    assert upstream_tool_choice(request, {"f": "mcp__client__f"}) == expected
