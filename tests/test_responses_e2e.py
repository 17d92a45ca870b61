"""The OpenAI Responses surface end to end: the openai SDK (responses.create / stream / parse),
the openai-agents SDK with its default Responses model, and Codex CLI (``codex exec`` with a
custom provider), against the real server driving the real CLI and the fake upstream."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import openai
import pytest
from fake_upstream import Reply, ToolUse, structured_reply, tool_results, weather_model
from harness import ROOT
from pydantic import BaseModel

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


def warm_turns(bridge) -> int:
    """Turns served by a process that was already running (held, or a warm worker)."""
    counters = bridge.health()["pool"]["counters"]
    return counters["held"] + counters["spare"]


def test_create_answers_with_output_text_usage_and_instructions(client, fake):
    fake.enqueue(Reply(chunks=["Hello", " world"], input_tokens=21, cache_read_input_tokens=5, output_tokens=7))
    response = client.responses.create(
        model="sonnet",
        instructions="You are terse.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]},
        ],
        metadata={"run": "e2e"},
        store=True,
    )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Hello world"
    assert response.usage.input_tokens == 26 and response.usage.input_tokens_details.cached_tokens == 5
    assert response.usage.output_tokens == 7 and response.usage.total_tokens == 33
    assert response.metadata == {"run": "e2e"}
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "Say hello")]
    assert "You are terse.\n\nAnswer in English." in call.system_text


def test_stream_delivers_typed_events_and_the_final_response(client, fake):
    fake.enqueue(Reply(chunks=["one ", "two ", "three ", "four"], delay=0.2, output_tokens=4))
    with client.responses.stream(model="sonnet", input="count") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three four" and len(deltas) >= 2  # streamed, not one block
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "one two three four" and final.usage.output_tokens == 4


def test_function_tool_round_trip_with_function_call_output(client, fake):
    fake.handler = weather_model
    first = client.responses.create(model="sonnet", input="Weather in Oslo?", tools=[WEATHER], store=False)
    offered = {tool["name"]: tool for tool in fake.received[-1].body["tools"]}
    assert offered["get_weather"]["input_schema"] == WEATHER["parameters"]
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    # store: false, so the caller sends the whole history back, as Codex and the agents SDK do
    history = [{"role": "user", "content": "Weather in Oslo?"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history += [{"type": "function_call_output", "call_id": call.call_id, "output": "-3 C and snowing"}]
    second = client.responses.create(model="sonnet", input=history, tools=[WEATHER], store=False)
    assert "-3 C and snowing" in second.output_text
    [result] = tool_results(fake.received[-1].body)
    assert result["tool_use_id"] == call.call_id and "-3 C and snowing" in json.dumps(result["content"])
    with pytest.raises(openai.NotFoundError):  # store: false kept nothing
        client.responses.retrieve(second.id)


def test_previous_response_id_continues_warm_with_real_turns(bridge, client, fake):
    fake.enqueue(Reply(chunks=["Paris."]), Reply(chunks=["About 2 million."]))
    first = client.responses.create(model="sonnet", input="Capital of France?")
    warm_before = warm_turns(bridge)
    second = client.responses.create(model="sonnet", input="Its population?", previous_response_id=first.id)
    assert second.output_text == "About 2 million." and second.previous_response_id == first.id
    assert fake.received[-1].plain_messages() == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "Its population?"),
    ]
    assert warm_turns(bridge) == warm_before + 1  # a running process answered
    assert client.responses.retrieve(second.id).output_text == "About 2 million."
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="sonnet", input="more", previous_response_id=second.id)


def test_previous_response_id_carries_a_tool_round_trip(client, fake):
    fake.handler = weather_model
    first = client.responses.create(model="sonnet", input="Weather in Oslo?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    second = client.responses.create(
        model="sonnet",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert "sunny" in second.output_text
    upstream = [m for m in fake.received[-1].messages if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in upstream] == ["user", "assistant", "user"]


def test_json_schema_output_through_parse(client, fake):
    class Answer(BaseModel):
        answer: int

    fake.handler = lambda body: structured_reply(body, {"answer": 42})
    parsed = client.responses.parse(model="sonnet", input="6 times 7?", text_format=Answer)
    assert parsed.output_parsed == Answer(answer=42)
    tools = {tool["name"]: tool for tool in fake.received[-1].body["tools"]}
    assert tools["StructuredOutput"]["input_schema"]["properties"]["answer"]["type"] == "integer"


def test_max_output_tokens_gives_an_incomplete_response(client, fake):
    fake.enqueue(Reply(chunks=["cut"], stop_reason="max_tokens"))
    response = client.responses.create(model="sonnet", input="long story", max_output_tokens=64)
    assert fake.received[-1].body["max_tokens"] == 64
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"


def test_openai_agents_default_model_runs_a_function_tool(bridge, fake):
    agents = pytest.importorskip("agents")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    agents.set_default_openai_client(AsyncOpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0))
    agents.set_default_openai_api("responses")
    ran: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        ran.append(city)
        return "-3 C and snowing"

    fake.handler = weather_model
    agent = agents.Agent(name="Weather", instructions="Use the tool.", model="sonnet", tools=[get_weather])
    result = agents.Runner.run_sync(agent, "Weather in Oslo?")
    assert ran == ["Oslo"]
    assert "-3 C and snowing" in result.final_output
    assert "Use the tool." in fake.received[-1].system_text
    [result_block] = tool_results(fake.received[-1].body)
    assert "-3 C and snowing" in json.dumps(result_block["content"])


def codex_binary() -> str | None:
    configured = os.environ.get("CODEX_PATH")
    local = ROOT / ".cache" / "codex" / "node_modules" / ".bin" / "codex"
    return configured or (str(local) if local.exists() else None)


def run_codex(bridge, prompt: str) -> subprocess.CompletedProcess:
    """``codex exec`` with a custom Responses provider pointed at the bridge."""
    with tempfile.TemporaryDirectory() as home:
        Path(home, "config.toml").write_text(
            'model = "sonnet"\nmodel_provider = "bridge"\n\n[model_providers.bridge]\nname = "bridge"\n'
            f'base_url = "{bridge.openai_url}"\nwire_api = "responses"\n',
            encoding="utf-8",
        )
        work = Path(home, "work")
        work.mkdir()
        return subprocess.run(
            [codex_binary(), "exec", "--skip-git-repo-check", prompt],
            env={**os.environ, "CODEX_HOME": home},
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )


@pytest.mark.skipif(codex_binary() is None, reason="Codex CLI not installed (scripts/test installs it)")
def test_codex_exec_answers_through_the_bridge(bridge, fake):
    fake.enqueue(Reply(chunks=["Hi from ", "the bridge"]))
    done = run_codex(bridge, "Say hi")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Hi from the bridge" in done.stdout
    call = fake.received[-1]
    role, text = call.plain_messages()[-1]  # Codex's environment message and the prompt, one user turn
    assert role == "user" and "<environment_context>" in text and text.endswith("Say hi")
    assert "Codex" in call.system_text  # its developer instructions became the system prompt
    offered = {tool["name"] for tool in call.body["tools"]}
    assert "exec_command" in offered and "close_agent" in offered  # namespace unfolded
    assert not any("web_search" in name for name in offered)  # hosted tool left out


@pytest.mark.skipif(codex_binary() is None, reason="Codex CLI not installed (scripts/test installs it)")
def test_codex_runs_its_own_tool_through_the_bridge(bridge, fake):
    """The model calls Codex's exec_command; Codex runs it on its side and sends the
    function_call_output back in its next request; the model answers from it."""

    def model(body: dict) -> Reply:
        results = tool_results(body)
        if not results:
            return Reply(
                chunks=["Running it."], tool_uses=[ToolUse("mcp__client__exec_command", {"cmd": "echo bridge-tool-ok"})]
            )
        return Reply(chunks=["The command said: ", json.dumps(results[-1]["content"])[:300]])

    fake.handler = model
    done = run_codex(bridge, "Run echo bridge-tool-ok")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    [result] = [r for call in fake.received for r in tool_results(call.body)]
    assert "bridge-tool-ok" in json.dumps(result["content"])
    assert "The command said" in done.stdout and "bridge-tool-ok" in done.stdout


def test_stored_responses_survive_a_restart_and_the_history_is_rebuilt(start_bridge, fake, tmp_path):
    """RESPONSES_STORE_PERSIST: a new server finds the stored conversation on disk; no process
    holds it, so the CLI is resumed from a transcript and the model still gets real turns."""
    state = str(tmp_path / "state")
    first_server = start_bridge(RESPONSES_STORE_PERSIST="true", STATE_DIR=state)
    fake.enqueue(Reply(chunks=["Paris."]), Reply(chunks=["About 2 million."]))
    first = openai.OpenAI(base_url=first_server.openai_url, api_key="x", max_retries=0).responses.create(
        model="sonnet", input="Capital of France?"
    )
    first_server.stop()
    second_server = start_bridge(RESPONSES_STORE_PERSIST="true", STATE_DIR=state)
    client = openai.OpenAI(base_url=second_server.openai_url, api_key="x", max_retries=0)
    second = client.responses.create(model="sonnet", input="Its population?", previous_response_id=first.id)
    assert second.output_text == "About 2 million."
    assert fake.received[-1].plain_messages() == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "Its population?"),
    ]
    assert second_server.health()["pool"]["counters"]["held"] == 0  # rebuilt, not held
    assert client.responses.retrieve(first.id).output_text == "Paris."
