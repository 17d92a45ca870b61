"""Pure translator tests for the Responses, Anthropic Messages and legacy Completions
surfaces: requests to neutral turns, neutral events to each API's objects, table style."""

from __future__ import annotations

import base64

import pytest
from anthropic.types import Message as AnthropicMessage
from openai.types import Completion
from openai.types.responses import Response as OpenAIResponse

from claude_cli_bridge.api.anthropic import translate as anthropic
from claude_cli_bridge.api.anthropic.protocol import MessagesRequest
from claude_cli_bridge.api.openai import completions
from claude_cli_bridge.api.responses import translate as responses
from claude_cli_bridge.api.responses import writer as responses_writer
from claude_cli_bridge.api.responses.protocol import ResponsesRequest
from claude_cli_bridge.api.responses.store import ResponseStore, StoredResponse
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import InvalidRequest

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
MAX = 1 << 20


# -- Responses requests --------------------------------------------------------------------
def responses_turn(previous=None, **body):
    request = ResponsesRequest.model_validate({"model": "sonnet", **body})
    return responses.from_responses_request(request, previous=previous, default_model="sonnet", max_image_bytes=MAX)


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


# -- Anthropic requests and messages ---------------------------------------------------------
def anthropic_turn(**body):
    request = MessagesRequest.model_validate({"model": "sonnet", "max_tokens": 10, **body})
    return anthropic.from_messages_request(request, max_image_bytes=MAX)


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([{"role": "user", "content": "hi"}], [Message("user", (TextBlock("hi"),))]),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                    ],
                },
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "text", "text": "r"}],
                            "is_error": True,
                        },
                        {"type": "text", "text": "more"},
                    ],
                },
            ],
            [
                Message("user", (ImageBlock("image/png", PNG),)),
                Message("assistant", (ToolUseBlock("t", "f", '{"a":1}'),)),
                Message("user", (ToolResultBlock("t", (TextBlock("r"),), True), TextBlock("more"))),
            ],
        ),
    ],
)
def test_anthropic_blocks_map_one_to_one(messages, expected):
    assert anthropic_turn(messages=messages).messages == expected


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "prefill"}]},
        {"messages": [{"role": "user", "content": "q"}], "tools": [{"name": "f"}]},
        {"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "bash_20250124", "name": "bash"}]},
        {"messages": [{"role": "user", "content": "q"}], "tool_choice": {"type": "tool", "name": "missing"}},
        {"messages": [{"role": "user", "content": "q"}], "output_format": {"type": "json_object"}},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "system", "content": [{"type": "image", "source": {"type": "base64", "data": PNG}}]},
            ]
        },
    ],
)
def test_anthropic_refusals(body):
    with pytest.raises(InvalidRequest):
        anthropic_turn(**body)


def test_anthropic_system_messages_join_the_system_prompt_in_order():
    # Claude Code 2.1.277 as a client sends its environment note as messages[1], role system.
    turn = anthropic_turn(
        system="Base.",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
            {"role": "user", "content": "second"},
            {"role": "system", "content": "Later note."},
        ],
    )
    assert turn.system == "Base.\n\n# Environment\n\nLater note."
    assert turn.messages == [Message("user", (TextBlock("first"), TextBlock("second")))]


def test_anthropic_structured_output_and_tool_choice_none():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    turn = anthropic_turn(
        messages=[{"role": "user", "content": "q"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        tool_choice={"type": "none"},
    )
    assert turn.json_schema == schema and turn.tool_choice == "none"


def test_anthropic_message_validates_as_the_sdks_message():
    events = [TextDelta("a"), TextDelta("b"), ToolCall("t", "f", {"x": 1}), TurnDone("tool_use", Usage(4, 2, 1, 3))]
    message = AnthropicMessage.model_validate(anthropic.to_message(events, model="sonnet", message_id="msg_1"))
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "ab" and message.usage.cache_creation_input_tokens == 3


# -- legacy completions ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, text, system",
    [
        ({"prompt": "p"}, "p", None),
        ({"prompt": ["p"]}, "p", None),
        ({"prompt": "p", "suffix": "s"}, "<prefix>p</prefix><suffix>s</suffix>", "FIM"),
    ],
)
def test_completion_prompts(body, text, system):
    turn = completions.from_completion_request(
        completions.CompletionRequest.model_validate({"model": "sonnet", **body})
    )
    assert turn.messages[0].text == text
    assert (turn.system is not None) == (system is not None)


def test_completion_object_validates_as_the_sdks_completion():
    body = completions.to_completion(
        [TextDelta("x"), TurnDone("max_tokens", Usage(2, 1))], model="m", completion_id="cmpl-1", created=1
    )
    completion = Completion.model_validate(body)
    assert completion.choices[0].finish_reason == "length" and completion.usage.total_tokens == 3


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
