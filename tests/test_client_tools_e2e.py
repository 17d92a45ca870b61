"""A caller's tools reach the model; its calls come back to the caller, never run on the host;
its results go back to the model as real tool_result blocks. Real CLI, fake upstream."""

from __future__ import annotations

import json

import ollama
import openai
import pytest
from fake_upstream import Reply, ToolUse, weather_model

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def offered(body: dict) -> dict:
    return {tool["name"]: tool for tool in body.get("tools", [])}


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="x", max_retries=0)


def test_a_tool_call_round_trip_through_the_openai_sdk(client, fake):
    fake.handler = weather_model
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    tool = offered(fake.received[-1].body)["get_weather"]
    assert tool["input_schema"] == WEATHER["function"]["parameters"]
    assert tool["description"] == "Current weather for a city."
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert call.id.startswith("toolu_")

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "-3 C and snowing"},
    ]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert "-3 C and snowing" in second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"
    upstream = [m for m in fake.received[-1].messages if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in upstream] == ["user", "assistant", "user"]
    tool_use = next(b for b in upstream[1]["content"] if b["type"] == "tool_use")
    tool_result = next(b for b in upstream[2]["content"] if b["type"] == "tool_result")
    assert tool_use["id"] == call.id == tool_result["tool_use_id"]
    assert "-3 C and snowing" in json.dumps(tool_result["content"]) and not tool_result.get("is_error")


def test_streamed_tool_calls_arrive_as_tool_call_chunks(client, fake):
    fake.handler = weather_model
    chunks = list(
        client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], stream=True
        )
    )
    fragments = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert fragments[0].id and fragments[0].function.name == "get_weather"
    assert json.loads("".join(f.function.arguments or "" for f in fragments)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_hides_the_tools(client, fake):
    client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER], tool_choice="none"
    )
    assert "get_weather" not in offered(fake.received[-1].body)


def test_a_tool_call_round_trip_through_the_ollama_sdk(bridge, fake):
    fake.handler = weather_model
    client = ollama.Client(host=bridge.ollama_url)
    tools = [WEATHER]
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat(model="sonnet", messages=messages, tools=tools)
    [call] = first.message.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Oslo"}
    messages += [first.message, {"role": "tool", "content": "-3 C", "tool_name": "get_weather"}]
    second = client.chat(model="sonnet", messages=messages, tools=tools)
    assert "-3 C" in second.message.content
    tool_result = next(
        b
        for m in fake.received[-1].messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    )
    assert "-3 C" in json.dumps(tool_result["content"])


def test_results_without_tools_get_a_clear_400(client):
    with pytest.raises(openai.BadRequestError, match="tools"):
        client.chat.completions.create(
            model="sonnet",
            messages=[
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            ],
        )


def test_parallel_tool_calls_and_their_results(client, fake):
    def model(body):
        results = [
            b
            for m in body["messages"]
            if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
        if not results:
            return Reply(
                chunks=[],
                tool_uses=[
                    ToolUse("mcp__client__get_weather", {"city": "Oslo"}),
                    ToolUse("mcp__client__get_weather", {"city": "Bergen"}),
                ],
            )
        return Reply(chunks=["Both known."])

    fake.handler = model
    messages = [{"role": "user", "content": "Weather in Oslo and Bergen?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    calls = first.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Oslo", "Bergen"]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"weather {n}"} for n, c in enumerate(calls)]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Both known."
    results = {
        b["tool_use_id"]: json.dumps(b["content"])
        for m in fake.received[-1].messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    }
    assert set(results) == {c.id for c in calls}
    assert "weather 0" in results[calls[0].id] and "weather 1" in results[calls[1].id]


def test_the_model_cannot_reach_the_host_through_a_callers_tool(client, fake, tmp_path):
    """The MCP server behind a caller's tool executes nothing: a call without the caller's
    result never produces content, and nothing ran."""
    fake.handler = lambda body: Reply(
        chunks=[], tool_uses=[ToolUse("mcp__client__get_weather", {"city": str(tmp_path)})]
    )
    response = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "x"}], tools=[WEATHER]
    )
    assert response.choices[0].finish_reason == "tool_calls"
    assert len(fake.received) == 1  # the turn ended at the call: no tool result went upstream
    assert list(tmp_path.iterdir()) == []


ODD_NAMES = ["browser.search", "a b", "wetter-é", "ns:lookup"]


def named_tool(name: str) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
    }


def call_the_offered(name_fragment: str):
    """A model that calls the offered tool whose name starts with the safe form of a caller name."""

    def model(body):
        results = [b for m in body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
                   for b in m["content"] if b.get("type") == "tool_result"]  # fmt: skip
        if results:
            return Reply(chunks=["done"])
        [name] = [t["name"] for t in body.get("tools", []) if t["name"].startswith(name_fragment)]
        return Reply(chunks=[], tool_uses=[ToolUse(name, {"q": "x"})])

    return model


@pytest.mark.parametrize("name", ODD_NAMES)
def test_dotted_spaced_and_non_ascii_tool_names_round_trip_through_openai(client, fake, name):
    fake.handler = call_the_offered(name[:2].replace(" ", "_").replace(".", "_").replace(":", "_"))
    messages = [{"role": "user", "content": "go"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[named_tool(name), WEATHER])
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls
    assert call.function.name == name  # the caller's own name comes back
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "r"},
    ]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=[named_tool(name), WEATHER])
    assert second.choices[0].message.content == "done"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_dotted_spaced_and_non_ascii_tool_names_round_trip_through_ollama(bridge, fake, name):
    fake.handler = call_the_offered(name[:2].replace(" ", "_").replace(".", "_").replace(":", "_"))
    client = ollama.Client(host=bridge.ollama_url)
    messages = [{"role": "user", "content": "go"}]
    first = client.chat(model="sonnet", messages=messages, tools=[named_tool(name)])
    [call] = first.message.tool_calls
    assert call.function.name == name
    messages += [first.message, {"role": "tool", "content": "r", "tool_name": name}]
    assert client.chat(model="sonnet", messages=messages, tools=[named_tool(name)]).message.content == "done"


@pytest.mark.parametrize(
    "parameters", [{"type": "array"}, {"type": "objekt"}, {"type": "object", "properties": {"a": {"type": "strang"}}}]
)
def test_a_tool_the_model_cannot_be_offered_is_a_400_naming_it(client, fake, parameters):
    bad = {"type": "function", "function": {"name": "broken_tool", "parameters": parameters}}
    with pytest.raises(openai.BadRequestError, match="broken_tool"):
        client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "x"}], tools=[WEATHER, bad]
        )
    assert not fake.received
