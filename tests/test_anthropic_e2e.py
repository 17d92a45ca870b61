"""The Anthropic Messages surface end to end: the official anthropic SDK and the Claude Code
CLI itself as clients of the bridge (with a key, sent as x-api-key), the real CLI behind it,
the fake upstream behind that. What reached the upstream is asserted as well as the answers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile

import anthropic
import httpx
import pytest
from fake_upstream import Reply, ToolUse, tool_results, weather_model
from harness import find_test_cli
from test_vision_e2e import image_blocks, png_bytes

pytestmark = pytest.mark.e2e

KEY = "bridge-key-for-anthropic-tests"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def keyed_bridge(fake):
    from harness import BridgeServer

    server = BridgeServer(fake.base_url, BRIDGE_API_KEY=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def client(keyed_bridge):
    return anthropic.Anthropic(base_url=keyed_bridge.base_url, api_key=KEY, max_retries=0)


def test_create_multi_turn_with_system_reaches_the_model_as_real_turns(client, fake):
    fake.enqueue(Reply(chunks=["Third", " answer"], input_tokens=30, cache_read_input_tokens=4, output_tokens=2))
    message = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=200,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "First"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": [{"type": "text", "text": "Second"}]},
        ],
        metadata={"user_id": "someone"},
    )
    assert message.type == "message" and message.role == "assistant"
    assert [block.text for block in message.content] == ["Third answer"]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        30,
        4,
        2,
    )
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "First"), ("assistant", "First answer"), ("user", "Second")]
    assert "You are terse." in call.system_text
    assert call.body["max_tokens"] == 200 and call.body["model"] == "claude-sonnet-5-5"


def test_a_system_message_in_messages_reaches_the_model_as_system_text(client, fake):
    # The SDK's MessageParam includes role "system" (text only); older Claude Code clients send one.
    fake.enqueue(Reply(chunks=["ok"]))
    client.messages.create(
        model="sonnet",
        max_tokens=50,
        system="You are terse.",
        messages=[
            {"role": "user", "content": "Question"},
            {"role": "system", "content": [{"type": "text", "text": "Environment note 7f3a"}]},
        ],
    )
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "Question")]
    assert "You are terse." in call.system_text and "Environment note 7f3a" in call.system_text


def test_stream_delivers_text_deltas_and_the_final_message(client, fake):
    fake.enqueue(Reply(chunks=["one ", "two ", "three"], delay=0.05, output_tokens=3))
    with client.messages.stream(
        model="sonnet", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "one two three" and len(pieces) >= 2
    assert final.content[0].text == "one two three"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3


def test_an_image_reaches_the_model_byte_for_byte(client, fake):
    data = base64.b64encode(png_bytes()).decode()
    client.messages.create(
        model="sonnet",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                    {"type": "text", "text": "What colour?"},
                ],
            }
        ],
    )
    [image] = image_blocks(fake.received[-1])
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": data}


def test_tool_round_trip_keeps_the_callers_names(client, fake):
    fake.handler = weather_model
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.messages.create(model="sonnet", max_tokens=300, messages=messages, tools=[WEATHER])
    offered = {tool["name"]: tool for tool in fake.received[-1].body["tools"]}
    assert offered["get_weather"]["input_schema"] == WEATHER["input_schema"]
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Oslo"})

    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-3 C and snowing"}]},
    ]
    with client.messages.stream(model="sonnet", max_tokens=300, messages=messages, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert "-3 C and snowing" in final.content[0].text and final.stop_reason == "end_turn"
    [result] = tool_results(fake.received[-1].body)
    assert result["tool_use_id"] == call.id and "-3 C and snowing" in json.dumps(result["content"])


def test_streamed_tool_use_arrives_as_input_json(client, fake):
    fake.handler = weather_model
    with client.messages.stream(
        model="sonnet", max_tokens=300, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in events and events[-1] == "message_stop"
    [call] = [block for block in final.content if block.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Oslo"})


def test_error_shapes_reach_the_sdk_as_its_own_errors(keyed_bridge, client, fake):
    with pytest.raises(anthropic.AuthenticationError) as unauthorized:
        anthropic.Anthropic(base_url=keyed_bridge.base_url, api_key="wrong", max_retries=0).messages.create(
            model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert unauthorized.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as not_found:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4o" in not_found.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="sonnet",
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}],
                }
            ],
        )
    assert "document sources" in bad.value.message  # no file store, no fetching
    fake.handler = lambda body: Reply(status=529, error_type="overloaded_error", error_message="Overloaded")
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.APIStatusError) as count:
        client.messages.count_tokens(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert count.value.status_code == 501


def test_a_failure_mid_stream_is_an_error_event_the_sdk_raises(client, fake):
    fake.enqueue(Reply(chunks=["partial ", "answer", " never"], delay=0.1, die_after=2))
    fake.handler = None
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(
            model="sonnet", max_tokens=50, messages=[{"role": "user", "content": "go"}]
        ) as stream:
            for _ in stream:
                pass


def warm_turns(server) -> int:
    """Turns served by a process that was already running (held, or a warm worker)."""
    health = httpx.get(f"{server.base_url}/health", headers={"x-api-key": KEY}, timeout=5).json()
    return health["pool"]["counters"]["held"] + health["pool"]["counters"]["spare"]


def run_claude_code(bridge_url: str, prompt: str, *extra: str) -> dict:
    """Claude Code itself, as a client of the bridge, in print mode."""
    with tempfile.TemporaryDirectory() as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))},
            "ANTHROPIC_BASE_URL": bridge_url,
            "ANTHROPIC_API_KEY": KEY,
            "CLAUDE_CONFIG_DIR": os.path.join(home, "config"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        done = subprocess.run(
            [find_test_cli(), "-p", prompt, "--output-format", "json", *extra],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_claude_code_itself_answers_a_prompt_through_the_bridge(keyed_bridge, fake):
    fake.enqueue(Reply(chunks=["Hi from ", "the model"]))
    result = run_claude_code(keyed_bridge.base_url, "Say hi to the bridge")
    assert result["is_error"] is False and result["result"] == "Hi from the model"
    asked = [call for call in fake.received if ("user", "Say hi to the bridge") in call.plain_messages()]
    assert asked, [call.plain_messages() for call in fake.received]
    offered = {tool["name"] for tool in asked[-1].body.get("tools", [])}
    assert "Bash" in offered  # Claude Code's own tools reach the model as the caller's tools


def test_claude_code_runs_its_own_tool_through_the_bridge(keyed_bridge, fake, tmp_path):
    """The model asks for Claude Code's Read tool: the call goes back to Claude Code, which
    reads the file on its side and sends the result; the model answers from it."""
    note = tmp_path / "note.txt"
    note.write_text("the secret word is tangerine\n", encoding="utf-8")

    def model(body: dict) -> Reply:
        results = tool_results(body)
        if not results:
            return Reply(chunks=["Reading."], tool_uses=[ToolUse("mcp__client__Read", {"file_path": str(note)})])
        return Reply(chunks=["The file says: ", json.dumps(results[-1]["content"])[:200]])

    fake.handler = model
    result = run_claude_code(keyed_bridge.base_url, "What does note.txt say?", "--allowedTools", "Read")
    assert result["is_error"] is False and "tangerine" in result["result"]
    [read] = [r for call in fake.received for r in tool_results(call.body)]
    assert "tangerine" in json.dumps(read["content"])


def test_a_follow_up_with_the_exact_history_is_a_warm_turn(keyed_bridge, client, fake):
    fake.enqueue(Reply(chunks=["Paris."]), Reply(chunks=["About 2 million."]))
    history = [{"role": "user", "content": "Capital of France?"}]
    first = client.messages.create(model="sonnet", max_tokens=50, messages=history)
    warm = warm_turns(keyed_bridge)
    history += [{"role": "assistant", "content": first.content[0].text}, {"role": "user", "content": "Population?"}]
    second = client.messages.create(model="sonnet", max_tokens=50, messages=history)
    assert second.content[0].text == "About 2 million."
    assert warm_turns(keyed_bridge) == warm + 1
    assert fake.received[-1].plain_messages() == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "Population?"),
    ]
