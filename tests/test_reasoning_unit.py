"""Reasoning, pure: OpenAI reasoning_effort and Ollama think to the CLI's effort, the profile's
argv and environment, thinking from the CLI's lines to each API's frames, and signed thinking
remembered and written back before the calls; table-style."""

from __future__ import annotations

import json

import pytest

from claude_cli_bridge.api.ollama import translate as ollama
from claude_cli_bridge.api.ollama.protocol import ChatRequest
from claude_cli_bridge.api.openai import translate
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.cli.launch import LaunchFiles, build_argv
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.cli.wire import TurnParser
from claude_cli_bridge.core import reasoning
from claude_cli_bridge.core.messages import TextBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ThinkingDelta, TurnDone, Usage
from claude_cli_bridge.errors import InvalidRequest
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.unit

DONE = TurnDone("end_turn", Usage(5, 3), "m")


# -- reasoning -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (None, reasoning.Reasoning()),
        ("none", reasoning.Reasoning(thinking=False)),
        ("minimal", reasoning.Reasoning(effort="low", show=True)),
        ("low", reasoning.Reasoning(effort="low", show=True)),
        ("medium", reasoning.Reasoning(effort="medium", show=True)),
        ("high", reasoning.Reasoning(effort="high", show=True)),
        ("xhigh", reasoning.Reasoning(effort="xhigh", show=True)),
        ("HIGH", reasoning.Reasoning(effort="high", show=True)),
    ],
)
def test_openai_reasoning_effort_maps_to_the_clis_effort(value, expected):
    assert reasoning.from_openai(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, reasoning.Reasoning()),
        (True, reasoning.Reasoning(show=True)),
        (False, reasoning.Reasoning(thinking=False)),
        ("low", reasoning.Reasoning(effort="low", show=True)),
        ("high", reasoning.Reasoning(effort="high", show=True)),
        ("max", reasoning.Reasoning(effort="max", show=True)),
    ],
)
def test_ollama_think_maps_to_effort_and_showing(value, expected):
    assert reasoning.from_ollama(value) == expected


@pytest.mark.parametrize("value", ["extreme", 3, {"effort": "high"}])
def test_unknown_reasoning_values_are_400s(value):
    with pytest.raises(InvalidRequest, match="reasoning_effort"):
        reasoning.from_openai(value)
    with pytest.raises(InvalidRequest, match="think"):
        reasoning.from_ollama(value)


def test_default_effort_setting_is_checked():
    assert Settings(_env_file=None, default_effort="High").default_effort == "high"
    with pytest.raises(ValueError, match="DEFAULT_EFFORT"):
        Settings(_env_file=None, default_effort="turbo")


def test_profile_effort_thinking_and_tool_choice_reach_argv_and_env():
    profile = Profile(model="sonnet", effort="high", thinking_off=True, tool_choice_json='{"type":"any"}')
    argv = build_argv("claude", profile, LaunchFiles())
    assert argv[argv.index("--effort") + 1] == "high"
    env = profile.env({"PATH": "/bin"}, 1)
    assert env["CLAUDE_CODE_DISABLE_THINKING"] == "1"
    assert json.loads(env["CLAUDE_CODE_EXTRA_BODY"]) == {"tool_choice": {"type": "any"}}
    plain = Profile(model="sonnet")
    assert "--effort" not in build_argv("claude", plain, LaunchFiles())
    assert "CLAUDE_CODE_DISABLE_THINKING" not in plain.env({}, 1) and "CLAUDE_CODE_EXTRA_BODY" not in plain.env({}, 1)


# -- thinking from the CLI -----------------------------------------------------------------------
def test_thinking_deltas_become_thinking_events_and_the_signature_stays_inside():
    parser = TurnParser()
    lines = [
        {"type": "stream_event", "event": {"type": "message_start", "message": {"id": "m1", "usage": {}}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "Hm"}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "s"}}},
        {"type": "assistant", "message": {"id": "m1", "content": [{"type": "thinking", "thinking": "Hm", "signature": "s"}]}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}},
    ]  # fmt: skip
    events = [event for line in lines for event in parser.feed(line)]
    assert events == [ThinkingDelta("Hm"), TextDelta("Hi")]


def test_a_non_streamed_message_yields_its_thinking_then_its_text():
    parser = TurnParser()
    message = {
        "id": "m9",
        "content": [{"type": "thinking", "thinking": "T", "signature": "s"}, {"type": "text", "text": "A"}],
    }
    assert parser.feed({"type": "assistant", "message": message}) == [ThinkingDelta("T"), TextDelta("A")]


def test_openai_chunks_carry_thinking_as_reasoning_content_before_content():
    writer = translate.ChunkWriter(model="sonnet")
    frames = writer.on_event(ThinkingDelta("T1")) + writer.on_event(TextDelta("A")) + writer.on_event(DONE)
    deltas = [frame["choices"][0]["delta"] for frame in frames if isinstance(frame, dict)]
    assert deltas[1] == {"reasoning_content": "T1"} and deltas[2] == {"content": "A"}
    assert all("T1" not in (delta.get("content") or "") for delta in deltas)
    whole = translate.to_completion("A", [], DONE, model="m", completion_id="c", created=0, reasoning="T1")
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "A", "reasoning_content": "T1"}


@pytest.mark.parametrize("think, shown", [(True, "T"), (False, None)])
def test_ollama_frames_carry_thinking_only_when_think_was_set(think, shown):
    writer = ollama.FrameWriter(model="sonnet", think=think)
    frames = writer.on_event(ThinkingDelta("T"), 1) + writer.on_event(TextDelta("A"), 2)
    assert [frame["message"].get("thinking") for frame in frames] == ([shown, None] if think else [None])
    whole = ollama.FrameWriter(model="sonnet", think=think).whole([ThinkingDelta("T"), TextDelta("A"), DONE], 5)
    assert whole["message"].get("thinking") == shown and whole["message"]["content"] == "A"
    generate = ollama.FrameWriter(model="sonnet", kind="generate", think=think)
    assert generate.whole([ThinkingDelta("T"), TextDelta("A"), DONE], 5).get("thinking") == shown


def test_ollama_chat_request_carries_the_think_level():
    turn = ollama.from_chat_request(
        ChatRequest.model_validate(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "think": "high"}
        ),
        MediaLimits.of(1 << 20),
    )
    assert turn is not None and (turn.effort, turn.thinking) == ("high", None)


# -- signed thinking before tool calls -----------------------------------------------------------
def test_thinking_memory_puts_signed_thinking_back_before_the_calls():
    from claude_cli_bridge.core.messages import Message, ThinkingBlock
    from claude_cli_bridge.engine.thinking import ThinkingMemory

    memory = ThinkingMemory(limit=2)
    signed = ThinkingBlock("plan", "sig", model="claude-sonnet-5-5")
    memory.remember(Message("assistant", (signed, ToolUseBlock("toolu_1", "f", '{"a":1}'))))
    memory.remember(Message("assistant", (TextBlock("no calls, nothing kept"),)))
    by_id = Message("assistant", (ToolUseBlock("toolu_1", "f", '{"a":1}'),))
    by_call = Message("assistant", (ToolUseBlock("call_1_0", "f", '{"a":1}'),))  # ids dropped
    other = Message("assistant", (ToolUseBlock("toolu_2", "g", "{}"),))
    restored = memory.restore([by_id, by_call, other])
    assert [m.content[0] for m in restored[:2]] == [signed, signed]
    assert restored[2] == other
    assert by_id.match_key() == restored[0].match_key(), "thinking never changes what a turn is"
    memory.remember(Message("assistant", (signed, ToolUseBlock("toolu_3", "h", "{}"))))
    assert len(memory) == 2  # bounded


def test_a_transcript_names_the_model_that_signed_the_thinking(tmp_path):
    from claude_cli_bridge.cli.wire import write_transcript
    from claude_cli_bridge.core.messages import Message, ThinkingBlock

    messages = [
        Message("user", (TextBlock("q"),)),
        Message("assistant", (ThinkingBlock("plan", "sig", model="claude-sonnet-5-5"), TextBlock("a"))),
    ]
    write_transcript(messages, tmp_path / "t.jsonl")
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert records[1]["message"]["model"] == "claude-sonnet-5-5"
    assert records[1]["message"]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "sig"}
    assert "model" not in records[0]["message"]
