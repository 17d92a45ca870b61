"""The Anthropic Messages translators, pure: requests to neutral turns (blocks one to one, the
system prompt, structured output, refusals) and neutral events to the SDK's message."""

from __future__ import annotations

import base64

import pytest
from anthropic.types import Message as AnthropicMessage

from claude_cli_bridge.api.anthropic import translate as anthropic
from claude_cli_bridge.api.anthropic.protocol import MessagesRequest
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import InvalidRequest

pytestmark = pytest.mark.unit

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
MAX = 1 << 20


# -- Anthropic requests and messages ---------------------------------------------------------
def anthropic_turn(**body):
    request = MessagesRequest.model_validate({"model": "sonnet", "max_tokens": 10, **body})
    return anthropic.from_messages_request(request, MediaLimits.of(MAX))


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
