"""The Responses translators and store, pure: requests to neutral turns, neutral events to the
SDK's response, the store on disk and its bounds; table style."""

from __future__ import annotations

import base64

import pytest
from openai.types.responses import Response as OpenAIResponse

from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.api.responses import translate as responses
from claude_cli_bridge.api.responses import writer as responses_writer
from claude_cli_bridge.api.responses.protocol import ResponsesRequest
from claude_cli_bridge.api.responses.store import ResponseStore, StoredResponse
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import InvalidRequest

pytestmark = pytest.mark.unit

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
MAX = 1 << 20


# -- Responses requests --------------------------------------------------------------------
def responses_turn(previous=None, **body):
    request = ResponsesRequest.model_validate({"model": "sonnet", **body})
    return responses.from_responses_request(request, MediaLimits.of(MAX), previous=previous, default_model="sonnet")


@pytest.mark.parametrize(
    "body, messages, system",
    [
        ({"input": "hi"}, [Message("user", (TextBlock("hi"),))], None),
        (
            {"instructions": "I", "input": [{"role": "developer", "content": "D"}, {"role": "user", "content": "q"}]},
            [Message("user", (TextBlock("q"),))],
            "I\n\nD",
        ),
        (
            {
                "input": [
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
                    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "b", "annotations": []}],
                    },
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
                    {"type": "function_call_output", "call_id": "c1", "output": "r"},
                ]
            },
            [
                Message("user", (TextBlock("a"),)),
                Message("assistant", (TextBlock("b"), ToolUseBlock("c1", "f", '{"x":1}'))),
                Message("user", (ToolResultBlock("c1", (TextBlock("r"),)),)),
            ],
            None,
        ),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]}
                ]
            },
            [Message("user", (ImageBlock("image/png", PNG),))],
            None,
        ),
    ],
)
def test_responses_input_items_become_neutral_messages(body, messages, system):
    translated = responses_turn(**body)
    assert translated.turn.messages == messages and translated.turn.system == system


def test_responses_previous_conversation_comes_first_and_its_system_inputs_carry_over():
    previous = responses.Previous(
        (Message("user", (TextBlock("q1"),)), Message("assistant", (TextBlock("a1"),))), ("D",)
    )
    translated = responses_turn(previous, input="q2", instructions="new")
    assert [m.text for m in translated.turn.messages] == ["q1", "a1", "q2"]
    assert translated.turn.system == "new\n\nD" and translated.system_inputs == ("D",)


@pytest.mark.parametrize(
    "tools, names, namespaces, dropped",
    [
        ([{"type": "function", "name": "f"}], ["f"], {}, ()),
        (
            [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]}, {"type": "web_search"}],
            ["g"],
            {"g": "ns"},
            ("web_search",),
        ),
        ([{"type": "file_search"}, {"type": "code_interpreter"}], [], {}, ("file_search", "code_interpreter")),
    ],
)
def test_responses_tools_unfold_namespaces_and_leave_hosted_tools_out(tools, names, namespaces, dropped):
    translated = responses_turn(input="x", tools=tools)
    assert [tool.name for tool in translated.turn.tools] == names
    assert (translated.namespaces, translated.dropped_tools) == (namespaces, dropped)


@pytest.mark.parametrize(
    "choice, expected",
    [
        (None, "auto"),
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ({"type": "function", "name": "f"}, "required"),
    ],
)
def test_responses_tool_choice(choice, expected):
    tools = [{"type": "function", "name": "f"}]
    turn = responses_turn(input="x", tools=tools, tool_choice=choice).turn
    assert turn.tool_choice == expected
    assert turn.forced_tool == ("f" if isinstance(choice, dict) else None)


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x", "tool_choice": {"type": "file_search"}},
        {"input": "x", "tool_choice": {"type": "function", "name": "nope"}},
        {"input": [{"type": "item_reference", "id": "x"}]},
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        {"input": [{"type": "function_call", "name": "f"}]},
        {"input": "x", "conversation": "conv_1"},
    ],
)
def test_responses_refusals(body):
    with pytest.raises(InvalidRequest):
        responses_turn(**body)


@pytest.mark.parametrize(
    "text, schema",
    [
        ({"format": {"type": "text"}}, None),
        ({"format": {"type": "json_object"}}, {"type": "object"}),
        ({"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}, {"type": "object"}),
    ],
)
def test_responses_text_format(text, schema):
    assert responses_turn(input="x", text=text).turn.json_schema == schema


def test_responses_writer_objects_validate_as_the_sdks_response():
    request = ResponsesRequest.model_validate(
        {"model": "sonnet", "input": "x", "tools": [{"type": "function", "name": "f"}]}
    )
    writer = responses_writer.ResponseWriter(
        echo=responses_writer.echo_fields(request, "sonnet"), namespaces={"f": "ns"}
    )
    final = responses_writer.to_response(
        writer, [TextDelta("a"), ToolCall("t1", "f", {"k": 1}), TextDelta("b"), TurnDone("tool_use", Usage(3, 2, 1, 0))]
    )
    parsed = OpenAIResponse.model_validate(final)
    assert parsed.output_text == "ab"
    assert [item.type for item in parsed.output] == ["message", "function_call", "message"]
    assert parsed.output[1].namespace == "ns" and parsed.output[1].call_id == "t1"
    assert writer.answer_message() == Message("assistant", (TextBlock("ab"), ToolUseBlock("t1", "f", '{"k":1}')))


def test_store_keeps_entries_on_disk_across_instances(tmp_path):
    entry = StoredResponse(
        {"id": "resp_abc", "object": "response"},
        (
            Message("user", (TextBlock("q"), ImageBlock("image/png", PNG))),
            Message("assistant", (ToolUseBlock("t", "f", "{}"),)),
        ),
        ("D",),
    )
    ResponseStore(10, tmp_path).put(entry)
    assert ResponseStore(10, tmp_path).get("resp_abc") == entry
    assert ResponseStore(10, tmp_path).get("../etc/passwd") is None


def test_store_is_bounded_by_size_too():
    def entry(number: int) -> StoredResponse:
        return StoredResponse({"id": f"resp_{number}"}, (Message("user", (TextBlock("x" * 1000),)),), ())

    store = ResponseStore(100, max_bytes=2500)
    for number in range(4):
        store.put(entry(number))
    assert [store.get(f"resp_{n}") is not None for n in range(4)] == [False, False, True, True]
    assert store.total_bytes <= 2500
    store.put(StoredResponse({"id": "resp_big"}, (Message("user", (TextBlock("x" * 5000),)),), ()))
    assert store.get("resp_big") is None  # larger than the whole store: not kept
